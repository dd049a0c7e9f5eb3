//! `GET` over HTTP/1.0 with the time to the first byte, the body counted
//! as it streams.

use anyhow::Result;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- HTTP

pub(crate) struct HttpResult {
    pub(crate) status: u16,
    pub(crate) ttfb: Duration,
    pub(crate) total: Duration,
    pub(crate) body_bytes: u64,
    /// The whole body when it was at most `keep` bytes.
    pub(crate) body: Option<Vec<u8>>,
    /// The last 4 KiB of the body.
    pub(crate) tail: Vec<u8>,
}

/// `GET path` over HTTP/1.0 (no chunking; the server closes at the end).
/// The body is counted while it streams; kept only when <= `keep` bytes.
pub(crate) fn http_get(port: u16, path: &str, keep: usize) -> Result<HttpResult> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(300)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut ttfb = None;
    let mut body: Option<Vec<u8>> = Some(Vec::new());
    let mut body_bytes = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let mut in_body = false;
    let mut on_body = |chunk: &[u8], body: &mut Option<Vec<u8>>, tail: &mut Vec<u8>| {
        body_bytes += chunk.len() as u64;
        if let Some(b) = body.as_mut() {
            if b.len() + chunk.len() <= keep {
                b.extend_from_slice(chunk);
            } else {
                *body = None;
            }
        }
        tail.extend_from_slice(chunk);
        if tail.len() > 8192 {
            tail.drain(..tail.len() - 4096);
        }
    };
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if ttfb.is_none() {
            ttfb = Some(t0.elapsed());
        }
        if in_body {
            on_body(&buf[..n], &mut body, &mut tail);
        } else {
            head.extend_from_slice(&buf[..n]);
            if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let rest = head.split_off(p + 4);
                in_body = true;
                on_body(&rest, &mut body, &mut tail);
            }
        }
    }
    let total = t0.elapsed();
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(HttpResult {
        status,
        ttfb: ttfb.unwrap_or(total),
        total,
        body_bytes,
        body,
        tail,
    })
}
