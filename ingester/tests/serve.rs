//! `serve` end to end: the real binary, a real socket, real HTTP and
//! WebSocket clients, fed with the real mod_wsgi 6.1.1 capture.

mod common;

use common::hostile::{huge_slow_record, padded_request};
use common::*;
use futures_util::{SinkExt, StreamExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[test]
fn corpus_replay_gives_reference_shaped_state() {
    let dgrams = corpus_records();
    let s = Serve::start(bin(), &[]);
    s.send_all(&dgrams);
    s.send_all([
        &b""[..],
        b"WSGX-not-telemetry-at-all-xxxxxxxxxxx",
        &dgrams[0][..30],
    ]);
    let v = s.wait_received(11_891);
    assert_eq!(v["type"], "snapshot");
    assert_eq!(v["decode_errors"], 3);
    assert_eq!(v["seq_gaps"], 0);
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 22);
    let samples = sample_count(&v);
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

/// Datagrams of unusual size (60 KB REQUESTs, beyond the 8 KB any
/// reporter sends, within the 64 KB taken in) arrive whole through the
/// socket and are stored until the process's history reaches its 4 MiB
/// budget; then the oldest leave, and the snapshot says how many.
#[test]
fn oversized_datagrams_are_held_to_the_byte_budget() {
    // The kept samples (4 MiB) are more than the default snapshot budget
    // lets a state list: lift it to see every one.
    let s = Serve::start(bin(), &["--snapshot-budget", "0"]);
    let n = 100u32;
    // 60,000 bytes of padding after the 35-byte sample, as before.
    let dgrams: Vec<Vec<u8>> = (1..=n)
        .map(|seq| padded_request(4242, seq, 1000.0 + f64::from(seq), 60_040))
        .collect();
    s.send_all(&dgrams);
    let v = s.wait_received(n as usize);
    assert_eq!(v["decode_errors"], 0);
    let p = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == 4242)
        .expect("the process");
    let kept = p["samples"].as_array().unwrap();
    // 4 MiB / (60 KB + a few dozen bytes) = 69 samples, the newest.
    assert_eq!(kept.len(), 69, "samples kept");
    assert_eq!(kept.last().unwrap()["fields"]["request_count"], 1);
    assert_eq!(v["history_evicted_for_bytes"], u64::from(n) - 69);
    let last_stamp = kept.last().unwrap()["stamp"].as_f64().unwrap();
    assert_eq!(last_stamp, 1000.0 + f64::from(n));
}

/// A datagram larger than the 64 KB receive buffer is refused and counted
/// as a decode error, even when the buffer's cut falls between two fields
/// (the reference reads such a datagram's first 65,536 bytes as a whole,
/// shorter sample); one of exactly 65,536 bytes is taken.
#[test]
fn datagrams_larger_than_the_receive_buffer_are_refused() {
    let s = Serve::start(bin(), &[]);
    let exact = padded_request(5001, 1, 1000.0, wire::RECV_BUFFER);
    let mut over = padded_request(5002, 1, 1000.0, wire::RECV_BUFFER);
    // One more whole field after the first 65,536 bytes.
    over.extend_from_slice(&wire::id::REQUEST_COUNT.to_le_bytes());
    over.push(0x01);
    over.extend_from_slice(&2u64.to_le_bytes());
    assert_eq!(
        wire::decode(&over[..wire::RECV_BUFFER]).unwrap().header.pid,
        5002
    );
    s.send_all([&exact, &over]);
    let v = s.wait_received(2);
    assert_eq!(v["decode_errors"], 1);
    let pids = state_pids(&v);
    assert_eq!(pids, vec![5001]);
}

/// The pids of an `/api/state`'s processes, in its order.
fn state_pids(v: &serde_json::Value) -> Vec<u64> {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

#[test]
fn socket_file_mode_and_cleanup() {
    let s = Serve::start(bin(), &["--socket-mode", "0640"]);
    let mode = std::fs::metadata(&s.sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    let path = s.sock.clone();
    let mut s = s;
    let st = s.terminate();
    assert!(st.success(), "serve exited {st} on SIGTERM");
    assert!(!Path::new(&path).exists(), "socket file removed on SIGTERM");
}

#[test]
fn root_path_and_forwarded_prefix_are_injected_escaped() {
    let s = Serve::start(bin(), &[]);
    let (_, _, body) =
        s.http("GET / HTTP/1.0\r\nHost: {HOST}\r\nX-Forwarded-Prefix: /tele</script><b>/\r\n\r\n");
    assert!(
        body.contains("window.TELEMETRY_BASE = \"/tele\\u003c/script\\u003e\\u003cb\\u003e\";"),
        "{body}"
    );
    assert!(!body.contains("</script><b>"));
    drop(s);
    let s = Serve::start(bin(), &["--root-path", "telemetry/"]);
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
    let s = Serve::start(bin(), &[]);
    let (st, _, _) = s.http("POST /api/slow/clear HTTP/1.0\r\nHost: {HOST}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(st, 403);
    let (st, _, body) = s.http("POST /api/slow/clear HTTP/1.0\r\nHost: {HOST}\r\nOrigin: http://{HOST}\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((st, body.trim()), (200, "{\"ok\": true}"));
    let (st, _, _) = s.http("GET /ws HTTP/1.1\r\nHost: {HOST}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_then_live_messages() {
    let dgrams = corpus_records();
    let s = Serve::start(bin(), &[]);
    let url = s.url();
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
        for (i, d) in dgrams.iter().enumerate() {
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
                assert!(
                    !v["fields"]["request_threads_completed"]
                        .as_array()
                        .unwrap()
                        .is_empty(),
                    "{v}"
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

/// Samples listed per process in a snapshot message.
fn samples_per_process(v: &serde_json::Value) -> Vec<usize> {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["samples"].as_array().unwrap().len())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_respects_budget() {
    let s = Serve::start(bin(), &["--snapshot-budget", "400000"]);
    s.send_all(corpus_records());
    // The whole state is 3.7 MB (`snapshot_budget_zero_sends_everything`).
    // Waited for with small snapshots, which are not counted as trimmed.
    poll("the corpus received", || {
        let v: serde_json::Value =
            serde_json::from_str(&s.get("/api/state?budget=1").1).map_err(|e| e.to_string())?;
        match v["total_received"].as_u64() {
            Some(n) if n >= 11_888 => Ok(()),
            n => Err(format!("{n:?}")),
        }
    });
    let url = s.url();
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
    // `?history=full` asks for everything and gets the budget too: the
    // oldest samples of each process are left out, it says so, and the
    // trimming is counted. (Before the cap: 3.7 MB, every sample.)
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?history=full"))
        .await
        .unwrap();
    let snap = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(
        snap.len() < 500_000,
        "?history=full snapshot is {} bytes",
        snap.len()
    );
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["history_truncated"], true);
    assert_eq!(v["processes"].as_array().unwrap().len(), 22);
    assert!(
        samples_per_process(&v).iter().all(|&n| n > 0),
        "{:?}",
        samples_per_process(&v)
    );
    assert!(sample_count(&v) < 386);
    // `/api/state` naming no budget is held to the same budget; `?budget=N`
    // picks a smaller one; `?budget=0`, `?history=full` and a budget over
    // the server's get the server's.
    let (st, plain) = s.get("/api/state");
    assert_eq!(st, 200);
    assert!(
        plain.len() < 500_000,
        "plain /api/state is {} bytes",
        plain.len()
    );
    let v: serde_json::Value = serde_json::from_str(&plain).unwrap();
    assert_eq!(v["history_truncated"], true);
    let (_, small) = s.get("/api/state?budget=200000");
    assert!(
        small.len() < 250_000,
        "?budget=200000 gave {} bytes",
        small.len()
    );
    let asks_all = [
        "/api/state?budget=0",
        "/api/state?history=full",
        "/api/state?budget=1000000000",
    ];
    for all in asks_all {
        let (_, body) = s.get(all);
        assert!(body.len() < 500_000, "{all} is {} bytes", body.len());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["history_truncated"], true, "{all}");
    }
    // One WebSocket and three `/api/state` asked for more than the budget;
    // the plain and the smaller requests are not counted (a writer counts
    // once its last piece is out, so the count may trail the body).
    poll("4 trimmed snapshots counted", || {
        let v: serde_json::Value = serde_json::from_str(&s.get("/api/state?budget=1").1).unwrap();
        match v["http_state_trimmed"].as_u64() {
            Some(4) => Ok(()),
            n => Err(format!("{n:?}")),
        }
    });
    let _ = ws.close(None).await;
}

/// `--snapshot-budget 0` lifts the budget: `?history=full` and
/// `/api/state?budget=0` get every sample, and nothing is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_budget_zero_sends_everything() {
    let s = Serve::start(bin(), &["--snapshot-budget", "0"]);
    s.send_all(corpus_records());
    s.wait_received(11_888);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}?history=full", s.url()))
        .await
        .unwrap();
    let snap = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let v: serde_json::Value = serde_json::from_str(&snap).unwrap();
    assert_eq!(v["history_truncated"], false);
    assert_eq!(sample_count(&v), 386);
    for all in [
        "/api/state",
        "/api/state?budget=0",
        "/api/state?history=full",
    ] {
        let (_, body) = s.get(all);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["history_truncated"], false, "{all}");
        assert_eq!(v["http_state_trimmed"], 0, "{all}");
        assert!(body.len() > 1_000_000, "{all} is {} bytes", body.len());
    }
    let _ = ws.close(None).await;
}

/// At start `serve` warns when the kernel's per-socket datagram queue
/// (`net.unix.max_dgram_qlen`) is below `LOW_DGRAM_QLEN` (128), naming the
/// sysctl and the fix,
/// and says nothing when it is not (whichever this machine has).
#[test]
fn low_kernel_datagram_queue_is_reported_at_start() {
    let qlen = mwt_ingester::ingest::socket::kernel_dgram_qlen().expect("readable on Linux");
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("q.sock");
    let log = dir.path().join("stderr.txt");
    let port = free_port();
    let mut child = std::process::Command::new(bin())
        .args(["serve", "--listen", &listen(&sock)])
        .args(["--http-port", &port.to_string(), "--log-level", "warn"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until("serve to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // SAFETY: signalling our own child by pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_exit(&mut child, "serve");
    let err = std::fs::read_to_string(&log).unwrap();
    let warned = err.contains(&format!("net.unix.max_dgram_qlen is {qlen}:"));
    if qlen < mwt_ingester::ingest::socket::LOW_DGRAM_QLEN {
        assert!(warned, "no warning for a queue of {qlen}:\n{err}");
        assert!(
            err.contains("sysctl -w net.unix.max_dgram_qlen=512"),
            "{err}"
        );
    } else {
        assert!(!warned && !err.contains("max_dgram_qlen"), "{err}");
    }
}

/// A header-only datagram (`kind`, `pid`, `seq`), version `version`.
fn header_only(kind: wire::Kind, pid: u32, seq: u32, version: u8) -> Vec<u8> {
    let mut h = wire::Header::new(kind, pid, seq, 1000.0);
    h.version = version;
    h.to_bytes().to_vec()
}

/// Resident memory of `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    common::hostile::rss_kb(pid) * 1024
}

/// 20,000 forged pids each sending one 16 KB REQUEST, then 3,000 slow
/// records of 60 KB each: the processes past --max-processes are refused
/// and counted in /api/state, memory stays bounded, and the first
/// WebSocket message stays near the snapshot budget, saying what it left
/// out. (Before the bounds: 20,000 processes held ~330 MB, and the first
/// message carried every process and every slow record whole.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_floods_are_bounded_in_memory_and_in_the_first_message() {
    let budget = 1_000_000;
    let s = Serve::start(
        bin(),
        &[
            "--max-processes",
            "1000",
            "--snapshot-budget",
            &budget.to_string(),
        ],
    );
    let n = 20_000u32;
    for chunk in (1..=n).collect::<Vec<_>>().chunks(1000) {
        let dgrams: Vec<Vec<u8>> = chunk
            .iter()
            .map(|&pid| padded_request(pid, 1, 1000.0, 16_000))
            .collect();
        s.send_all(&dgrams);
    }
    let slow: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| huge_slow_record(1 + i % 10, 2 + i, u64::from(i)))
        .collect();
    s.send_all(&slow);
    // The state is held to the same budget: what it lists plus what it
    // says it left out is what serve keeps.
    let v = s.wait_received(n as usize + slow.len());
    let listed = |k: &str| v[k].as_array().unwrap().len() as u64;
    let omitted = |k: &str| v[format!("{k}_omitted")].as_u64().unwrap();
    assert_eq!(listed("processes") + omitted("processes"), 1000);
    assert_eq!(v["processes_refused"], u64::from(n) - 1000);
    // A scraper sees the same refusals.
    let (status, text) = s.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        text.lines()
            .any(|l| l == format!("mod_wsgi_telemetry_processes_refused_total {}", n - 1000)),
        "{text}"
    );
    assert_eq!(listed("slow_requests") + omitted("slow_requests"), 3000);
    let ua = v["slow_requests"][0]["entry"]["user_agent"]
        .as_str()
        .unwrap();
    assert_eq!(ua.len(), 511, "forged text cut as a reporter cuts it");
    let rss = rss(s.child.id());
    println!("RSS after the flood: {} MB", rss >> 20);
    assert!(rss < 150 << 20, "RSS {} MB", rss >> 20);

    let (mut ws, _) = tokio_tungstenite::connect_async(s.url()).await.unwrap();
    let first = ws.next().await.unwrap().unwrap().into_text().unwrap();
    println!("first message: {} bytes", first.len());
    assert!(
        first.len() < budget + budget / 5,
        "first message {} bytes for a budget of {budget}",
        first.len()
    );
    let m: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(m["history_truncated"], true);
    let listed = m["processes"].as_array().unwrap().len() as u64;
    assert_eq!(listed + m["processes_omitted"].as_u64().unwrap(), 1000);
    let slow_listed = m["slow_requests"].as_array().unwrap().len() as u64;
    assert!(
        slow_listed > 0 && listed > 0,
        "{slow_listed} slow, {listed} processes"
    );
    assert_eq!(
        slow_listed + m["slow_requests_omitted"].as_u64().unwrap(),
        3000
    );
    // The newest slow requests are the ones listed.
    let last = m["slow_requests"].as_array().unwrap().last().unwrap();
    assert_eq!(last["entry"]["thread_id"], 2999);
    let _ = ws.close(None).await;
}

/// A forged seq (2^31 after 1) is counted as a reset, not as 2^31 lost
/// datagrams; a version-2 REQUEST is a decode error of its own reason and
/// makes no process.
#[test]
fn forged_sequence_numbers_and_versions_are_counted_apart() {
    let s = Serve::start(bin(), &[]);
    s.send_all([
        header_only(wire::Kind::REQUEST, 700, 1, 1),
        header_only(wire::Kind::REQUEST, 700, 1 << 31, 1),
        header_only(wire::Kind::REQUEST, 700, (1 << 31) + 2, 1),
        header_only(wire::Kind::REQUEST, 701, 1, 2),
    ]);
    let v = s.wait_received(4);
    assert_eq!(v["seq_gaps"], 1);
    assert_eq!(v["seq_resets"], 1);
    assert_eq!(v["decode_errors"], 1);
    assert_eq!(v["unsupported_version"], 1);
    let pids = state_pids(&v);
    assert_eq!(pids, vec![700]);
}

/// 30,000 one-byte datagrams make a few warning lines, not 30,000: the
/// first at once, then one summary with the count when the interval ends.
#[test]
fn repeated_decode_errors_are_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.txt");
    let s = Serve::start_logging(
        bin(),
        dir,
        free_port(),
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    let n = 30_000;
    s.send_all((0..n).map(|_| [0u8]));
    s.wait_received(n);
    wait_for_log(&log, "more in the last");
    let text = read_lossy(&log);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("decode error"))
        .collect();
    assert!(lines.len() <= 4, "{} lines:\n{text:.2000}", lines.len());
    let total: usize = lines
        .iter()
        .map(|l| match l.split("decode error: ").nth(1) {
            Some(rest) if rest.contains(" more in the last ") => {
                rest.split(' ').next().unwrap().parse::<usize>().unwrap()
            }
            _ => 1,
        })
        .sum();
    assert_eq!(total, n, "{text}");
}
