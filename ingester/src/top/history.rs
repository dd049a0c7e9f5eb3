//! `top`'s time ranges beyond the live window: the overview's series read
//! from `serve`'s `GET /api/history` (plain HTTP/1.0 to the WebSocket's host
//! and port, under the same path prefix) by a background thread, again once
//! per step of the answer. A server without the endpoint (the reference's
//! `serve` answers 404) or a `wss://` URL gives "history not available";
//! the live view is unaffected. It never touches the terminal.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Ranges offered by `t`; index 0 is the live window.
pub const RANGES: [&str; 5] = ["live", "1h", "6h", "24h", "7d"];
/// An answer is asked for again after its step, but not more often than this.
const MIN_REFRESH: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers are a few hundred points; refuse anything absurd.
const MAX_BODY: u64 = 64 << 20;

/// What is asked: (range, group filter as `top` holds it).
pub type HistoryKey = (&'static str, Option<String>);

/// One point of an answer, the figures the overview draws.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPoint {
    pub t: f64,
    pub rate: f64,
    pub capacity: Option<f64>,
    pub cpu: f64,
    pub rss_mean: f64,
    /// p95 of the total time over the point's requests (merged buckets).
    pub p95: Option<f64>,
}

/// An answer of `/api/history`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryAnswer {
    pub from: f64,
    pub to: f64,
    pub step: f64,
    pub points: Vec<HistoryPoint>,
}

/// The ranged overview's data as `top` knows it.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum HistoryState {
    /// Live window selected: nothing asked.
    #[default]
    Idle,
    Loading,
    Ready(HistoryAnswer),
    /// Why not (shown as "history not available: …").
    Unavailable(String),
}

/// Parses an answer body.
pub fn parse_answer(body: &str) -> Result<HistoryAnswer, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    let num = |v: &Value, k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("no {k:?} in the answer"))
    };
    let points = v["points"]
        .as_array()
        .ok_or("no \"points\" in the answer")?
        .iter()
        .map(|p| {
            Ok(HistoryPoint {
                t: num(p, "t")?,
                rate: num(p, "rate")?,
                capacity: p["capacity_utilization"].as_f64(),
                cpu: num(p, "cpu_user")? + num(p, "cpu_system")?,
                rss_mean: p["gauges"]["rss_bytes"]["mean"].as_f64().unwrap_or(0.0),
                p95: p["latency"]["total"]["p95"]
                    .as_f64()
                    .filter(|_| p["latency"]["total"]["count"].as_u64() > Some(0)),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HistoryAnswer {
        from: num(&v, "from")?,
        to: num(&v, "to")?,
        step: num(&v, "step")?,
        points,
    })
}

fn encode(s: &str) -> String {
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

/// `(host:port, path)` of the history request for a WebSocket URL such as
/// `ws://host:8888/ws` or `ws://host/telemetry/ws?history=full`.
pub fn history_target(ws_url: &str, key: &HistoryKey) -> Result<(String, String), String> {
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
    let mut path = format!("{prefix}/api/history?range={}", key.0);
    if let Some(g) = &key.1 {
        path.push_str("&group=");
        path.push_str(&encode(g));
    }
    Ok((host, path))
}

/// One HTTP/1.0 GET: (status, body).
fn get(host: &str, path: &str) -> Result<(u16, String), String> {
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

/// Asks for `key` once: the state to show.
pub fn fetch(ws_url: &str, key: &HistoryKey) -> HistoryState {
    let answer = history_target(ws_url, key).and_then(|(host, path)| match get(&host, &path)? {
        (200, body) => parse_answer(&body),
        (404, _) => Err("the server has no /api/history".into()),
        (st, body) => Err(format!("HTTP {st}: {}", body.trim())),
    });
    match answer {
        Ok(a) => HistoryState::Ready(a),
        Err(e) => HistoryState::Unavailable(e),
    }
}

/// The background fetcher: [`Fetcher::want`] says what to show; answers
/// arrive on `answers` with the key they are for.
pub struct Fetcher {
    pub answers: mpsc::Receiver<(HistoryKey, HistoryState)>,
    want: Arc<Mutex<Option<HistoryKey>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Fetcher {
    pub fn spawn(ws_url: String) -> Fetcher {
        let (tx, rx) = mpsc::channel();
        let want: Arc<Mutex<Option<HistoryKey>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (want2, stop2) = (want.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut last: Option<HistoryKey> = None;
            let mut due = Instant::now();
            while !stop2.load(Ordering::SeqCst) {
                let key = want2.lock().map(|w| w.clone()).unwrap_or(None);
                let wanted = key.is_some();
                if let Some(key) = key.filter(|k| last.as_ref() != Some(k) || Instant::now() >= due)
                {
                    let state = fetch(&ws_url, &key);
                    due = Instant::now()
                        + match &state {
                            HistoryState::Ready(a) => {
                                MIN_REFRESH.max(Duration::from_secs_f64(a.step))
                            }
                            _ => RETRY,
                        };
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
        Fetcher {
            answers: rx,
            want,
            stop,
            thread: Some(thread),
        }
    }

    /// What to fetch now (`None`: the live window, nothing).
    pub fn want(&self, key: Option<HistoryKey>) {
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
        let k = ("1h", None);
        assert_eq!(
            history_target("ws://127.0.0.1:8888/ws?history=full", &k).unwrap(),
            ("127.0.0.1:8888".into(), "/api/history?range=1h".into())
        );
        assert_eq!(
            history_target(
                "ws://example.org/telemetry/ws",
                &("24h", Some("my app".into()))
            )
            .unwrap(),
            (
                "example.org:80".into(),
                "/telemetry/api/history?range=24h&group=my%20app".into()
            )
        );
        assert!(history_target("wss://example.org/ws", &k).is_err());
    }

    #[test]
    fn answers_parse_and_refusals_are_reasons() {
        let a = parse_answer(
            r#"{"from":100,"to":160,"step":20,"points":[{"t":120,"rate":2.5,"cpu_user":0.25,"cpu_system":0.5,
            "capacity_utilization":null,"gauges":{"rss_bytes":{"min":1,"mean":2048,"max":4096}},
            "latency":{"total":{"count":0,"p95":null}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            HistoryAnswer {
                from: 100.0,
                to: 160.0,
                step: 20.0,
                points: vec![HistoryPoint {
                    t: 120.0,
                    rate: 2.5,
                    capacity: None,
                    cpu: 0.75,
                    rss_mean: 2048.0,
                    p95: None
                }]
            }
        );
        assert!(parse_answer("{\"error\":\"x\"}").is_err());
    }
}
