//! `serve` end to end: the real binary, a real socket, real HTTP and
//! WebSocket clients, fed with the real mod_wsgi 6.1.1 capture.

use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn corpus() -> Vec<u8> {
    let dir = std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join("anchor-6.1.1-mixed.bin")).expect("corpus")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `serve`, killed (by pid) on drop.
struct Serve {
    child: Child,
    port: u16,
    sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("t.sock");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_mod_wsgi-telemetry"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("unix:{}", sock.display()))
            .args(["--http-port", &port.to_string(), "--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let s = Serve {
            child,
            port,
            sock,
            _dir: dir,
        };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "serve did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn send_all(&self, datagrams: &[&[u8]]) {
        let tx = UnixDatagram::unbound().unwrap();
        for d in datagrams {
            // Blocking send: waits while the (tiny) kernel queue is full.
            tx.send_to(d, &self.sock).unwrap();
        }
    }

    fn http(&self, req: &str) -> (u16, String, String) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(
            req.replace("{HOST}", &format!("127.0.0.1:{}", self.port))
                .as_bytes(),
        )
        .unwrap();
        // An answered upgrade request may leave the connection open.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
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
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    fn get(&self, path: &str) -> (u16, String) {
        let (st, _, body) = self.http(&format!("GET {path} HTTP/1.0\r\nHost: {{HOST}}\r\n\r\n"));
        (st, body)
    }

    fn state(&self) -> serde_json::Value {
        let (st, body) = self.get("/api/state");
        assert_eq!(st, 200);
        serde_json::from_str(&body).unwrap()
    }

    fn wait_received(&self, n: u64) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let v = self.state();
            if v["total_received"].as_u64() == Some(n) {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "received {} of {n}",
                v["total_received"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn records(bin: &[u8]) -> Vec<&[u8]> {
    wire::capture::records(bin).map(|r| r.unwrap()).collect()
}

#[test]
fn corpus_replay_gives_reference_shaped_state() {
    let bin = corpus();
    let dgrams = records(&bin);
    let s = Serve::start(&[]);
    s.send_all(&dgrams);
    s.send_all(&[
        b"",
        b"WSGX-not-telemetry-at-all-xxxxxxxxxxx",
        &dgrams[0][..30],
    ]);
    let v = s.wait_received(11_891);
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["decode_errors"], 3);
    assert_eq!(v["seq_gaps"], 0);
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 22);
    let samples: usize = procs
        .iter()
        .map(|p| p["samples"].as_array().unwrap().len())
        .sum();
    assert_eq!(samples, 386);
    // First process in order of appearance: the first STARTED of the capture.
    assert_eq!(procs[0]["pid"], 19867);
    assert_eq!(procs[0]["mpm_name"], "event");
    assert_eq!(procs[0]["process_group"], "");
    let app = procs.iter().find(|p| p["pid"] == 19864).unwrap();
    assert_eq!(app["process_group"], "app");
    assert_eq!(app["mod_wsgi_version"], "6.1.1");
    assert_eq!(app["drops"], 0);
    // Multi-interpreter GC data is served as text (the reference fails here).
    let emb = procs.iter().find(|p| p["pid"] == 19866).unwrap();
    let mut interps: Vec<&String> = emb["gc_snapshots"].as_object().unwrap().keys().collect();
    interps.sort();
    assert_eq!(interps, vec!["", "127.0.0.1:18000|/embedded"]);
    let named = emb["gc_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["interpreter"] != "")
        .count();
    assert!(named > 0);
    assert_eq!(v["lifecycle_events"].as_array().unwrap().len(), 66);
    let reasons: Vec<&str> = v["lifecycle_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "process_stopped")
        .map(|e| e["shutdown_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "maximum_requests").count(),
        3
    );
    let slow = v["slow_requests"].as_array().unwrap();
    assert!(!slow.is_empty());
    for e in slow {
        assert_eq!(e["key"][0], e["entry"]["pid"]);
        assert!(e["entry"]["path_info"].as_str().unwrap().starts_with('/'));
    }
}

#[test]
fn socket_file_mode_and_cleanup() {
    let s = Serve::start(&["--socket-mode", "0640"]);
    let mode = std::fs::metadata(&s.sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let path = s.sock.clone();
    drop(s);
    assert!(!Path::new(&path).exists(), "socket file removed on SIGTERM");
}

#[test]
fn root_path_and_forwarded_prefix_are_injected_escaped() {
    let s = Serve::start(&[]);
    let (_, _, body) =
        s.http("GET / HTTP/1.0\r\nHost: {HOST}\r\nX-Forwarded-Prefix: /tele</script><b>/\r\n\r\n");
    assert!(
        body.contains("window.TELEMETRY_BASE = \"/tele\\u003c/script\\u003e\\u003cb\\u003e\";"),
        "{body}"
    );
    assert!(!body.contains("</script><b>"));
    drop(s);
    let s = Serve::start(&["--root-path", "telemetry/"]);
    let (_, _, body) =
        s.http("GET / HTTP/1.0\r\nHost: {HOST}\r\nX-Forwarded-Prefix: /other\r\n\r\n");
    assert!(
        body.contains("window.TELEMETRY_BASE = \"/telemetry\";"),
        "{body}"
    );
    assert_eq!(s.get("/nope").0, 404);
}

#[test]
fn cross_origin_requests_are_refused() {
    let s = Serve::start(&[]);
    let (st, _, _) = s.http("POST /api/slow/clear HTTP/1.0\r\nHost: {HOST}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(st, 403);
    let (st, _, body) = s.http("POST /api/slow/clear HTTP/1.0\r\nHost: {HOST}\r\nOrigin: http://{HOST}\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((st, body.trim()), (200, "{\"ok\": true}"));
    let (st, _, _) = s.http("GET /ws HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_then_live_messages() {
    let bin = corpus();
    let s = Serve::start(&[]);
    let url = format!("ws://127.0.0.1:{}/ws", s.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone().into_client_request().unwrap())
        .await
        .unwrap();
    let first = ws.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["processes"].as_array().unwrap().len(), 0);

    let sock = s.sock.clone();
    let sender = std::thread::spawn(move || {
        let tx = UnixDatagram::unbound().unwrap();
        for (i, d) in records(&bin).iter().enumerate() {
            tx.send_to(d, &sock).unwrap();
            if i % 100 == 99 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while kinds.get("sample").copied().unwrap_or(0) < 380 {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("messages stopped")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            let ty = v["type"].as_str().unwrap().to_string();
            if ty == "gc_snapshot" || ty == "gc_event" {
                if let Some(n) = v["fields"].get("interpreter_name") {
                    assert_eq!(n, &v["interpreter"]);
                }
            }
            if ty == "sample" {
                assert_eq!(v["kind"], "request_metrics");
                assert_eq!(
                    v["fields"]["request_threads_completed"]
                        .as_array()
                        .unwrap()
                        .len()
                        > 0,
                    true
                );
            }
            *kinds.entry(ty).or_default() += 1;
        }
    }
    sender.join().unwrap();
    for k in ["lifecycle", "gc_snapshot", "gc_event", "slow_request"] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 0,
            "no {k} message: {kinds:?}"
        );
    }
    // A second client gets the whole state in its snapshot.
    let (mut ws2, _) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap();
    let snap = ws2.next().await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(snap.to_text().unwrap()).unwrap();
    assert_eq!(v["processes"].as_array().unwrap().len(), 22);
    let _ = ws.close(None).await;
    let _ = ws2.send(Message::Close(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_respects_budget() {
    let bin = corpus();
    let s = Serve::start(&["--snapshot-budget", "400000"]);
    s.send_all(&records(&bin));
    let full = s.wait_received(11_888).to_string();
    assert!(full.len() > 1_000_000, "full state is {} bytes", full.len());
    let url = format!("ws://127.0.0.1:{}/ws", s.port);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.clone()).await.unwrap();
    let snap = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(
        snap.len() < 500_000,
        "budgeted snapshot is {} bytes",
        snap.len()
    );
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["history_truncated"], true);
    assert_eq!(v["processes"].as_array().unwrap().len(), 22);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?history=full"))
        .await
        .unwrap();
    let snap = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["history_truncated"], false);
    let samples: usize = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["samples"].as_array().unwrap().len())
        .sum();
    assert_eq!(samples, 386);
}
