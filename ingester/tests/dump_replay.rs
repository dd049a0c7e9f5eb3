//! `dump` and `replay` end to end: the real binary, real sockets, the real
//! mod_wsgi 6.1.1 capture, and the reference `dump` (mod_wsgi-telemetry 1.1.0,
//! from the virtualenv `scripts/ref-venv.sh` makes) as the judge of the
//! output format.

mod common;

use common::*;
use serde_json::Value as J;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for_socket(p: &Path, child: &mut Child) {
    let t0 = Instant::now();
    while !p.exists() {
        assert!(child.try_wait().unwrap().is_none(), "exited before binding");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_all(r: Option<impl Read>) -> String {
    let mut s = String::new();
    r.unwrap().read_to_string(&mut s).unwrap();
    s
}

/// Reads a pipe to its end on a thread, into a shared string.
fn drain(mut r: impl Read + Send + 'static) -> std::sync::Arc<std::sync::Mutex<String>> {
    let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 65536];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

/// A plain receiving socket collecting `n` datagrams on a thread.
fn collect(
    n: usize,
) -> (
    PathBuf,
    tempfile::TempDir,
    std::thread::JoinHandle<Vec<Vec<u8>>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rx.sock");
    let rx = UnixDatagram::bind(&path).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let h = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 65536];
        while got.len() < n {
            let k = rx.recv(&mut buf).expect("datagram within 30 s");
            got.push(buf[..k].to_vec());
        }
        got
    });
    (path, dir, h)
}

#[test]
fn replay_sends_the_capture_byte_identical_and_lossless() {
    let cap = corpus_records();
    let (path, _dir, h) = collect(cap.len());
    let summary = run_replay(&[
        corpus_path().to_str().unwrap(),
        "--socket",
        path.to_str().unwrap(),
    ]);
    assert!(
        summary.contains(&format!("sent {} datagrams", cap.len())),
        "{summary}"
    );
    assert!(summary.contains(" 0 errors"), "{summary}");
    let got = h.join().unwrap();
    assert_eq!(got.len(), cap.len());
    for (i, (a, b)) in got.iter().zip(&cap).enumerate() {
        assert!(a == b, "datagram {i} differs");
    }
}

#[test]
fn replay_drop_field_processes_restamp_and_loop() {
    let cap = corpus_records();
    let originals: Vec<u32> = {
        let mut v = Vec::new();
        for d in &cap {
            let pid = wire::decode_header(d).unwrap().pid;
            if !v.contains(&pid) {
                v.push(pid);
            }
        }
        v
    };
    // 44 processes = every capture process twice, looped: 2.5 passes.
    let n = cap.len() * 2 * 5 / 2;
    let (path, _dir, h) = collect(n);
    let before = wall_now();
    let summary = run_replay(&[
        corpus_path().to_str().unwrap(),
        "--socket",
        &listen(&path),
        "--processes",
        "44",
        "--restamp",
        "--loop",
        "--count",
        &n.to_string(),
        "--drop-field",
        "interpreter_name",
    ]);
    assert!(
        summary.contains(&format!("sent {n} datagrams")),
        "{summary}"
    );
    let got: Vec<wire::Sample> = h
        .join()
        .unwrap()
        .iter()
        .map(|d| wire::decode(d).expect("rewritten datagrams decode"))
        .collect();
    let first_stamp = cap
        .iter()
        .map(|d| wire::decode_header(d).unwrap().stamp)
        .fold(f64::INFINITY, f64::min);
    // Restamped: the capture starts when the replay did (not in the past).
    let shift = got[0].header.stamp - wire::decode_header(&cap[0]).unwrap().stamp;
    assert!(
        shift > 0.0 && first_stamp + shift >= before - 1.0,
        "shift {shift}"
    );
    let mut per_pid: std::collections::HashMap<u32, Vec<&wire::Sample>> = Default::default();
    for s in &got {
        assert!(
            s.get(wire::id::INTERPRETER_NAME).is_none(),
            "field 8 dropped"
        );
        per_pid.entry(s.header.pid).or_default().push(s);
    }
    assert_eq!(per_pid.len(), 44, "44 synthetic processes");
    for orig in &originals {
        assert!(per_pid.contains_key(orig), "copy 0 keeps pid {orig}");
    }
    for (pid, v) in &per_pid {
        for w in v.windows(2) {
            // One process per pid: seq +1 each datagram (the capture has no
            // gaps), stamps never go back, across loop passes too.
            assert_eq!(w[1].header.seq, w[0].header.seq + 1, "pid {pid}");
            assert!(w[1].header.stamp >= w[0].header.stamp, "pid {pid}");
        }
    }
    // Stamp fields move with the header stamps.
    let slow = got
        .iter()
        .find(|s| s.header.kind == wire::Kind::SLOW_REQUEST)
        .unwrap();
    let start = slow.f64(wire::id::SLOW_START_STAMP).unwrap();
    assert!(start <= slow.header.stamp && start > slow.header.stamp - 60.0);
    let ev = got
        .iter()
        .find(|s| s.header.kind == wire::Kind::GC_EVENT)
        .unwrap();
    let start = ev.f64(wire::id::GC_EVENT_START_STAMP).unwrap();
    assert!(
        (start - ev.header.stamp).abs() < 5.0,
        "{start} vs {}",
        ev.header.stamp
    );
}

#[test]
fn dump_reads_a_socket_and_removes_it_on_ctrl_c() {
    let cap = corpus_records();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("d.sock");
    let mut child = Command::new(bin())
        .args(["dump", "--json", "--listen", &listen(&sock)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain its output while it runs (a full pipe would stall it).
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    wait_for_socket(&sock, &mut child);
    run_replay(&[
        corpus_path().to_str().unwrap(),
        "--socket",
        &listen(&sock),
        "--count",
        "500",
    ]);
    // A malformed one: reported on stderr, not counted, not fatal.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"WSGI", &sock)
        .unwrap();
    let t0 = Instant::now();
    while !(err.lock().unwrap().contains("decode error")
        && out.lock().unwrap().lines().count() == 500)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "dump output incomplete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let code = wait_exit(&mut child, "dump").code().unwrap_or(-1);
    let out = out.lock().unwrap().clone();
    let err = err.lock().unwrap().clone();
    assert_eq!(code, 0, "{err}");
    assert!(!sock.exists(), "socket file removed on exit");
    assert_eq!(
        err.trim(),
        "decode error: datagram too short: 4 bytes (len=4)"
    );
    let lines: Vec<J> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 500);
    let first = wire::decode(&cap[0]).unwrap();
    assert_eq!(lines[0]["kind"], "process_started");
    assert_eq!(lines[0]["pid"], first.header.pid);
    assert_eq!(lines[0]["stamp"].as_f64(), Some(first.header.stamp));
}

/// What the reference `dump` prints for the whole capture, fed by our replay.
fn reference_dump(format: &str) -> String {
    let n = corpus_records().len().to_string();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("ref.sock");
    let mut child = Command::new(reference_exe())
        .args([
            "dump",
            "--listen",
            &listen(&sock),
            "--format",
            format,
            "--count",
            &n,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&sock, &mut child);
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || read_all(Some(out)));
    run_replay(&[corpus_path().to_str().unwrap(), "--socket", &listen(&sock)]);
    let code = wait_exit(&mut child, "reference dump").code().unwrap_or(-1);
    let text = reader.join().unwrap();
    assert_eq!(code, 0, "reference dump: {}", read_all(child.stderr.take()));
    text
}

fn our_dump_file(format: &str) -> String {
    run_ok(
        Command::new(bin()).args([
            "dump",
            "--format",
            format,
            "--file",
            corpus_path().to_str().unwrap(),
        ]),
        "dump --file",
    )
}

#[test]
fn dump_text_is_the_reference_dump_text_character_for_character() {
    let theirs = reference_dump("text");
    let ours = our_dump_file("text");
    assert_eq!(ours.lines().count(), theirs.lines().count());
    for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        assert_eq!(a, b, "line {}", i + 1);
    }
    assert_eq!(ours, theirs);
}

#[test]
fn dump_json_has_the_reference_dump_json_values() {
    let theirs = reference_dump("json");
    let ours = our_dump_file("json");
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        let (a, b): (J, J) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        // Same keys in the same order, same values, same int/float typing.
        assert_eq!(a, b, "datagram {i}");
        let keys = |v: &J| {
            v["fields"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&a), keys(&b), "datagram {i} field order");
    }
}

#[test]
fn truncated_captures_and_bad_targets_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cap = corpus_records();
    let mut buf = Vec::new();
    for d in &cap[..3] {
        wire::capture::append_record(&mut buf, d);
    }
    let whole = buf.len();
    buf.extend_from_slice(&100u32.to_le_bytes());
    buf.extend_from_slice(b"short");
    let file = dir.path().join("cut.bin");
    std::fs::write(&file, &buf).unwrap();
    let f = file.to_str().unwrap();

    // dump prints what it could decode, then says where the capture breaks.
    let out = Command::new(bin())
        .args(["dump", "--json", "--file", f])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("offset {whole}")), "{err}");

    // replay refuses it before sending anything.
    let (rx_path, _rx_dir, _h) = collect(0);
    let out = Command::new(bin())
        .args(["replay", f, "--socket", rx_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated"), "{err}");

    // Nobody listening, and a scheme that is not unix:.
    let nobody = dir.path().join("nobody.sock");
    let out = Command::new(bin())
        .args(["replay", corpus_path().to_str().unwrap(), "--socket"])
        .arg(&nobody)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is an ingester listening"), "{err}");
    let out = Command::new(bin())
        .args([
            "replay",
            corpus_path().to_str().unwrap(),
            "--socket",
            "udp:1.2.3.4:5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scheme"));
}
