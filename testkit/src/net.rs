//! Loopback ports and raw HTTP/1.0: what the tests send is exactly what
//! they wrote, and what comes back is read to the server's close.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A free TCP port on 127.0.0.1 (best effort: another process may take it
/// before the caller binds it, so whoever starts a server on it retries or
/// fails clearly on a clash).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// One HTTP exchange with 127.0.0.1:`port`: `req` is sent as written, with
/// `{HOST}` replaced by the host and port; returns (status, head, body).
/// The server closes the connection after the body (HTTP/1.0), except after
/// refusing an upgrade, which is read up to the end of its head.
pub fn http(port: u16, req: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.write_all(
        req.replace("{HOST}", &format!("127.0.0.1:{port}"))
            .as_bytes(),
    )
    .expect("send the request");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if out.starts_with(b"HTTP/1.1 403") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8(out).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// One HTTP/1.0 GET to 127.0.0.1:`port` with `headers` (lines ending in
/// `\r\n`, may be empty): (status, response head, body), or `None` when
/// nothing answers or the answer is not HTTP.
pub fn http_get(port: u16, path: &str, headers: &str) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head, resp[split + 4..].to_vec()))
}
