//! Clients a hostile or careless user points at `serve`'s HTTP side, and
//! what they cost it: shared by the HTTP limit tests and the probes.

use super::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::process::{Command, Stdio};

/// A connection to 127.0.0.1:`port` whose receive buffer is set small
/// before connecting, so the server's writes stall as soon as the client
/// stops reading (loopback windows are otherwise megabytes).
pub fn tight_connect(port: u16) -> TcpStream {
    // SAFETY: a fresh socket we own; setsockopt/connect get valid pointers
    // to local values of the sizes passed; from_raw_fd takes ownership once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let small: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// Resident memory of `pid` in kB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Threads of `pid`.
pub fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count()
}

/// `serve` (`bin`) limited to `nofile` open files (`--max-connections`
/// is lowered to fit), with `extra` options.
pub fn serve_with_nofile(bin: &str, nofile: u32, extra: &[&str]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sock = dir.path().join("t.sock");
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .args(["--", bin, "serve"])
        .args(["--listen", &listen(&sock), "--http-port", &port.to_string()])
        .args(["--log-level", "error"])
        .args(extra)
        .stderr(Stdio::inherit());
    Serve::spawn(cmd, dir, port, sock, "serve under prlimit")
}

/// Holds `n` connections to `port` that never send anything, reopening
/// each one as soon as the server closes it (refused or evicted), until
/// `stop` is set; `opened` is told once all `n` are connected (queued
/// ahead of any connection opened later). Returns how many times it
/// reopened one.
pub fn hold_and_reopen(
    port: u16,
    n: usize,
    opened: std::sync::mpsc::Sender<()>,
    stop: &std::sync::atomic::AtomicBool,
) -> std::io::Result<u64> {
    use std::sync::atomic::Ordering;
    let open = || -> std::io::Result<TcpStream> {
        let c = TcpStream::connect(("127.0.0.1", port))?;
        c.set_nonblocking(true)?;
        Ok(c)
    };
    let mut held: Vec<TcpStream> = (0..n).map(|_| open()).collect::<Result<_, _>>()?;
    let _ = opened.send(());
    let mut reopened = 0;
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        for c in held.iter_mut() {
            let closed = match c.read(&mut buf) {
                Ok(_) => true, // a 503 or EOF: the server is done with it
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            if closed {
                *c = open()?;
                reopened += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(reopened)
}

/// Sends `ws` handshakes on `n` tight connections that then never read.
pub fn stuck_ws_clients(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = tight_connect(port);
            c.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
            c
        })
        .collect()
}

/// A REQUEST from `pid` (request_count 1) of exactly `total` bytes: an
/// unknown bytes field (id 999, kept as every unknown field is) pads it,
/// appended by hand since the encoder stops at 8 KB.
pub fn padded_request(pid: u32, seq: u32, stamp: f64, total: usize) -> Vec<u8> {
    let mut d = wire::Sample {
        header: wire::Header::new(wire::Kind::REQUEST, pid, seq, stamp),
        fields: vec![(wire::id::REQUEST_COUNT, wire::Value::U64(1))],
    }
    .encode()
    .unwrap();
    let pad = total - d.len() - 5;
    d.extend_from_slice(&999u16.to_le_bytes());
    d.push(0x04);
    d.extend_from_slice(&(pad as u16).to_le_bytes());
    d.resize(total, b'x');
    d
}

/// A completed slow-request record of `pid` (worker slot `thread`) with a
/// 60 KB user agent, appended by hand (beyond the encoder's 8 KB; the
/// ingester cuts it as a reporter would).
pub fn huge_slow_record(pid: u32, seq: u32, thread: u64) -> Vec<u8> {
    let mut d = wire::Sample {
        header: wire::Header::new(wire::Kind::SLOW_REQUEST, pid, seq, 1000.0),
        fields: vec![
            (wire::id::SLOW_THREAD_ID, wire::Value::U64(thread)),
            (wire::id::SLOW_RECORD_STATE, wire::Value::U64(1)),
        ],
    }
    .encode()
    .unwrap();
    d.extend_from_slice(&wire::id::SLOW_USER_AGENT.to_le_bytes());
    d.push(0x04);
    d.extend_from_slice(&60_000u16.to_le_bytes());
    d.resize(d.len() + 60_000, b'u');
    d
}
