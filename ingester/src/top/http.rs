//! `top`'s plain HTTP side: the JSON endpoints of `serve` beside its
//! WebSocket (`/api/history`, `/api/stats/detail`), asked with HTTP/1.0 on
//! the WebSocket's host and port, under the same path prefix, by
//! [`Poller`]s: background threads that ask again once per period while
//! the screen wants the answer. Nothing here touches the terminal.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers are small JSON documents; refuse anything absurd.
const MAX_BODY: u64 = 64 << 20;

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `(host:port, path)` of `api` (`/api/...?...`) for a WebSocket URL such
/// as `ws://host:8888/ws` or `ws://host/telemetry/ws?history=full`.
pub fn api_target(ws_url: &str, api: &str) -> Result<(String, String), String> {
    let rest = match ws_url.strip_prefix("ws://") {
        Some(r) => r,
        None if ws_url.starts_with("wss://") => return Err("not over wss://".into()),
        None => return Err(format!("unexpected URL {ws_url}")),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = if host.contains(':') && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let prefix = path.strip_suffix("/ws").unwrap_or("").trim_end_matches('/');
    Ok((host, format!("{prefix}{api}")))
}

/// One HTTP/1.0 GET: (status, body).
pub fn get(host: &str, path: &str) -> Result<(u16, String), String> {
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.take(MAX_BODY)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("truncated HTTP answer")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad HTTP status line")?;
    Ok((status, body.to_string()))
}

/// GET of `api` beside the WebSocket `ws_url`, parsed by `parse` when it
/// answers 200; `missing` is the reason given for a 404 (a server without
/// that endpoint, such as the reference's).
pub fn get_json<T>(
    ws_url: &str,
    api: &str,
    missing: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let (host, path) = api_target(ws_url, api)?;
    match get(&host, &path)? {
        (200, body) => parse(&body),
        (404, _) => Err(missing.to_string()),
        (st, body) => Err(format!("HTTP {st}: {}", body.trim())),
    }
}

/// A background thread that asks for what [`Poller::want`] names, again
/// whenever the last answer is older than the period `ask` returned with
/// it (and at once when the key changes); answers arrive on `answers` with
/// the key they are for.
pub struct Poller<K, S> {
    pub answers: mpsc::Receiver<(K, S)>,
    want: Arc<Mutex<Option<K>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<K, S> Drop for Poller<K, S> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<K, S> Poller<K, S>
where
    K: Clone + PartialEq + Send + 'static,
    S: Send + 'static,
{
    /// Starts the thread; `ask` fetches one key and says when to ask again.
    pub fn spawn(ask: impl Fn(&K) -> (S, Duration) + Send + 'static) -> Poller<K, S> {
        let (tx, rx) = mpsc::channel();
        let want: Arc<Mutex<Option<K>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (want2, stop2) = (want.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last: Option<K> = None;
            let mut due = Instant::now();
            while !stop2.load(Ordering::SeqCst) {
                let key = want2.lock().map(|w| w.clone()).unwrap_or(None);
                let wanted = key.is_some();
                if let Some(key) = key.filter(|k| last.as_ref() != Some(k) || Instant::now() >= due)
                {
                    let (state, again) = ask(&key);
                    due = Instant::now() + again;
                    last = Some(key.clone());
                    if tx.send((key, state)).is_err() {
                        return;
                    }
                } else if !wanted {
                    last = None;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Poller {
            answers: rx,
            want,
            stop,
            thread: Some(thread),
        }
    }

    /// What to ask for now (`None`: nothing).
    pub fn want(&self, key: Option<K>) {
        if let Ok(mut w) = self.want.lock() {
            *w = key;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_follow_the_websocket_url() {
        assert_eq!(
            api_target("ws://127.0.0.1:8888/ws?history=full", "/api/stats/detail").unwrap(),
            ("127.0.0.1:8888".into(), "/api/stats/detail".into())
        );
        assert_eq!(
            api_target("ws://example.org/telemetry/ws", "/api/x?a=1").unwrap(),
            ("example.org:80".into(), "/telemetry/api/x?a=1".into())
        );
        assert!(api_target("wss://example.org/ws", "/api/x").is_err());
        assert_eq!(encode("my app/é"), "my%20app%2F%C3%A9");
    }
}
