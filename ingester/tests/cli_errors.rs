//! Bad options and hostile surroundings: usage errors exit 2, runtime errors
//! exit 1, each with one clear line on stderr; nothing at the socket path is
//! destroyed; malformed datagrams are counted, never fatal.

mod common;

use common::*;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

/// Runs the binary to completion (killed, and the test failed, after
/// [`PATIENCE`]).
fn run(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, &format!("{args:?}"));
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// The one line that explains the error (clap's `--help` hint aside).
fn one_line(err: &str) -> String {
    let lines: Vec<&str> = err
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    lines[0].to_string()
}

/// `cmd --listen spec`, and for `serve` `--http-port port` (a free port,
/// never the default that something else may hold).
fn on_socket<'a>(cmd: &'a str, spec: &'a str, port: &'a str) -> Vec<&'a str> {
    let mut args = vec![cmd, "--listen", spec];
    if cmd == "serve" {
        args.extend(["--http-port", port]);
    }
    args
}

#[test]
fn socket_mode_999_is_a_usage_error() {
    for cmd in ["serve", "dump"] {
        let (code, _, err) = run(&[cmd, "--socket-mode", "999"]);
        assert_eq!(code, 2, "{cmd}: {err}");
        let line = one_line(&err);
        assert!(
            line.contains("999") && line.contains("octal"),
            "{cmd}: {line}"
        );
    }
}

#[test]
fn udp_listen_is_a_usage_error() {
    for args in [
        &["serve", "--listen", "udp:1.2.3.4:5"][..],
        &["--listen", "udp:1.2.3.4:5"][..],
        &["dump", "--listen", "udp:1.2.3.4:5"][..],
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        let line = one_line(&err);
        assert!(
            line.contains("udp:1.2.3.4:5") && line.contains("unix:"),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn unknown_socket_group_is_a_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("g.sock");
    let port = free_port().to_string();
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        &listen(&sock),
        "--socket-group",
        "no-such-group-xyz",
        "--http-port",
        &port,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(one_line(&err).contains("no-such-group-xyz"), "{err}");
    assert!(!sock.exists(), "socket file left behind");
    // HTTP was not left running either.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_err());
}

#[test]
fn http_port_in_use_is_a_runtime_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("p.sock");
    let (code, _, err) = run(&["serve", "--listen", &listen(&sock), "--http-port", &port]);
    assert_eq!(code, 1, "{err}");
    let line = one_line(&err);
    assert!(line.contains(&port), "{line}");
    assert!(!sock.exists(), "socket file left behind");
}

#[test]
fn regular_file_at_the_socket_path_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious");
    std::fs::write(&path, b"do not delete").unwrap();
    let spec = listen(&path);
    for cmd in ["serve", "dump"] {
        let port = free_port().to_string();
        let (code, _, err) = run(&on_socket(cmd, &spec, &port));
        assert_eq!(code, 1, "{cmd}: {err}");
        let line = one_line(&err);
        assert!(line.contains("not a socket"), "{cmd}: {line}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"do not delete",
            "{cmd} touched the file"
        );
    }
}

fn valid_datagram(pid: u32, seq: u32) -> Vec<u8> {
    wire::Sample {
        header: wire::Header::new(wire::Kind::REQUEST, pid, seq, 1_700_000_000.0 + seq as f64),
        fields: vec![
            (wire::id::HOSTNAME, wire::Value::Bytes(b"web1".to_vec())),
            (wire::id::REQUEST_COUNT, wire::Value::U64(3)),
        ],
    }
    .encode()
    .unwrap()
}

#[test]
fn malformed_datagrams_are_counted_and_serve_keeps_running() {
    let mut serve = Serve::start(bin(), &["--log-level", "error"]);
    let good = valid_datagram(4242, 2);
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut bad_tag = good.clone();
    bad_tag[wire::HEADER_LEN + 2] = 0x7f;
    let mut past_end = good[..wire::HEADER_LEN].to_vec();
    past_end.extend_from_slice(&[5, 0, 0x04, 0xff, 0xff, b'a']); // BYTES claiming 65535
    let malformed: Vec<Vec<u8>> = vec![
        Vec::new(),                      // empty
        good[..10].to_vec(),             // shorter than the header
        good[..good.len() - 3].to_vec(), // truncated value
        bad_magic,
        bad_tag,
        past_end,
    ];
    let tx = UnixDatagram::unbound().unwrap();
    for round in 0..50 {
        for d in &malformed {
            tx.send_to(d, &serve.sock).unwrap();
        }
        if round == 0 {
            tx.send_to(&good, &serve.sock).unwrap();
        }
    }
    tx.send_to(&valid_datagram(4242, 3), &serve.sock).unwrap();
    let n_bad = 50 * malformed.len() as u64;
    let st = serve.wait_state("all datagrams counted", |st| {
        st["total_received"].as_u64() == Some(n_bad + 2)
    });
    assert_eq!(st["decode_errors"].as_u64(), Some(n_bad), "{st:.300}");
    assert!(serve.sock.exists());
    // Still alive and still ingesting: the valid datagrams made a process.
    let procs = st["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0]["pid"], 4242);
    assert_eq!(procs[0]["last_seq"], 3);
    assert_eq!(procs[0]["samples"].as_array().unwrap().len(), 2);
    assert!(serve.child.try_wait().unwrap().is_none(), "serve died");
}

#[test]
fn a_live_socket_is_not_stolen_by_a_second_serve_or_dump() {
    let serve = Serve::start(bin(), &["--log-level", "error"]);
    let spec = listen(&serve.sock);
    let port = free_port().to_string();
    for cmd in ["serve", "dump"] {
        let mut args = on_socket(cmd, &spec, &port);
        if cmd == "dump" {
            args.extend(["--count", "1"]);
        }
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            one_line(&err).contains("another process"),
            "{args:?}: {err}"
        );
    }
    // The first serve still owns the path and receives on it.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(&valid_datagram(77, 2), &serve.sock)
        .unwrap();
    serve.wait_state("datagram after the refused binds", |st| {
        st["total_received"].as_u64() == Some(1)
    });
}

/// `serve` and `dump` with `option value` on a fresh socket path: exit 2
/// with one line naming the value and holding `expect`, no socket created.
fn socket_option_is_a_usage_error(option: &str, value: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("o.sock");
    let spec = listen(&sock);
    let port = free_port().to_string();
    for cmd in ["serve", "dump"] {
        let mut args = on_socket(cmd, &spec, &port);
        args.extend([option, value]);
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        let line = one_line(&err);
        assert!(
            line.contains(value) && line.contains(expect),
            "{args:?}: {line}"
        );
        assert!(!sock.exists(), "{args:?}: socket created");
    }
}

#[test]
fn socket_mode_beyond_permission_bits_is_a_usage_error() {
    for mode in ["4777", "1777", "2660", "7777", "0o4660"] {
        socket_option_is_a_usage_error("--socket-mode", mode, "0777");
    }
}

#[test]
fn socket_group_out_of_gid_range_is_a_usage_error() {
    // 4294967295 is (gid_t)-1, which chown(2) takes as "leave the group as
    // it is": accepting it would silently not do what was asked.
    for gid in ["4294967295", "4294967296", "99999999999999999999", ""] {
        socket_option_is_a_usage_error("--socket-group", gid, "socket-group");
    }
}

#[test]
fn an_os_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("no-such-dir").join("x.sock");
    let spec = listen(&sock);
    let port = free_port().to_string();
    for cmd in ["serve", "dump"] {
        let args = on_socket(cmd, &spec, &port);
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        let line = one_line(&err);
        assert_eq!(line.matches("(os error").count(), 1, "{args:?}: {line}");
        assert!(
            line.contains("cannot bind") && line.contains("no-such-dir"),
            "{args:?}: {line}"
        );
    }
}
