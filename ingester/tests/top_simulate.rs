//! `simulate` sends datagrams that both our decoder (`dump`, `wire`) and the
//! reference decoder (mod_wsgi-telemetry 1.1.0) read without a single error.

mod top_support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;
use top_support::*;

/// Runs `simulate` against a socket bound here; returns the datagrams.
fn simulated(extra: &[&str]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = Command::new(bin())
        .arg("simulate")
        .arg("--target")
        .arg(format!("unix:{}", path.display()))
        .args(["--processes", "6", "--interval", "0.1", "--duration", "6"])
        .args(["--seed", "11", "--restart-probability", "0.05"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => {
                if child.try_wait().unwrap().is_some() {
                    // Drain what is still queued.
                    while let Ok(n) = rx.recv(&mut buf) {
                        out.push(buf[..n].to_vec());
                    }
                    break;
                }
            }
        }
    }
    let st = child.wait_with_output().unwrap();
    assert!(st.status.success());
    let summary = String::from_utf8(st.stdout).unwrap();
    assert_eq!(
        summary.trim(),
        format!("sent {} datagrams (0 failed)", out.len())
    );
    out
}

fn capture(datagrams: &[Vec<u8>]) -> tempfile::NamedTempFile {
    let mut bytes = Vec::new();
    for d in datagrams {
        wire::capture::append_record(&mut bytes, d);
    }
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

#[test]
fn simulate_output_decodes_in_wire_dump_and_the_reference() {
    let dgrams = simulated(&[]);
    assert!(dgrams.len() > 200, "{}", dgrams.len());
    let mut kinds = std::collections::BTreeSet::new();
    for d in &dgrams {
        kinds.insert(wire::decode(d).expect("wire decodes").header.kind.0);
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec![2, 4, 5, 6, 7, 8, 9]
    );
    let cap = capture(&dgrams);

    // Our dump.
    let out = Command::new(bin())
        .args(["dump", "--json", "--file"])
        .arg(cap.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        dgrams.len()
    );

    // The reference decoder.
    let venv = ref_venv();
    let script = r#"
import sys
from mod_wsgi.telemetry import wire
data = open(sys.argv[1], 'rb').read()
off = ok = bad = 0
kinds = set()
while off < len(data):
    n = int.from_bytes(data[off:off + 4], 'little')
    d = data[off + 4:off + 4 + n]
    off += 4 + n
    try:
        s = wire.decode(d)
        kinds.add(s.kind_name)
        ok += 1
    except Exception as e:
        bad += 1
        print('error', e, file=sys.stderr)
print(ok, bad, ','.join(sorted(kinds)))
"#;
    let line = run_ok(
        Command::new(venv.join("bin/python"))
            .arg("-c")
            .arg(script)
            .arg(cap.path()),
        "the reference decoder",
    );
    assert_eq!(
        line.trim(),
        format!(
            "{} 0 gc_event,gc_snapshot,process_started,process_stopped,process_stopping,request_metrics,slow_request",
            dgrams.len()
        )
    );
}

#[test]
fn simulate_reports_send_failures_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .arg("simulate")
        .arg("--target")
        .arg(format!("unix:{}", dir.path().join("nobody.sock").display()))
        .args(["--interval", "0.1", "--duration", "0.5"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Reported once per run of failures, not once per datagram.
    assert_eq!(err.matches("sendto failed:").count(), 1, "{err}");
    let summary = String::from_utf8(out.stdout).unwrap();
    assert!(summary.starts_with("sent 0 datagrams ("), "{summary}");

    let out = Command::new(bin())
        .args(["simulate", "--target", "udp:127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
}
