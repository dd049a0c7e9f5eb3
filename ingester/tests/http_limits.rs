//! `serve`'s HTTP side under hostile or careless clients: readers that
//! never read, idle and half-sent connections, a small descriptor limit,
//! WebSocket clients that stop reading, foreign `Host` names (DNS
//! rebinding), unsafe URL prefixes, a UI bound to every interface.
//! The real binary, real sockets; waits have deadlines, never timings.

mod common;

use common::hostile::*;
use common::*;
use serde_json::Value as J;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// `/api/state` once it answers 200 (it may answer 503 while the limits
/// are reached).
fn state_when_served(s: &Serve) -> J {
    poll("/api/state to answer 200", || match s.get("/api/state") {
        (200, body) => serde_json::from_str(&body).map_err(|e| e.to_string()),
        (st, body) => Err(format!("{st} {body:.200}")),
    })
}

/// Reads until the server closes the connection; `Ok(bytes)` on EOF,
/// `Err` if it is still open after [`PATIENCE`].
fn read_to_close(c: &mut TcpStream) -> Result<usize, String> {
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut got = 0;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!("still open after {got} bytes"));
        }
        c.set_read_timeout(Some(left)).unwrap();
        match c.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("still open after {got} bytes: {e}")),
        }
    }
}

/// 530 connections ask for `/api/state` and never read. Before the limit
/// each held a blocking thread and its share of the body (517 threads,
/// 1.6 GB) and a fresh `/api/state` got no body. Now a few are produced at
/// a time, stalled writers are dropped after `--write-timeout`, the rest
/// are refused with 503 and counted, and a fresh reader and `top --once`
/// are served.
#[test]
fn readers_that_never_read_do_not_pin_threads_or_memory() {
    let s = Serve::start(
        bin(),
        &["--write-timeout", "2", "--max-state-responses", "4"],
    );
    s.send_all(corpus_records());
    let full = s.wait_received(11_888);
    assert!(full.to_string().len() > 1_000_000);
    let pid = s.child.id();
    let rss0 = rss_kb(pid);
    let mut stalled: Vec<TcpStream> = (0..530)
        .map(|_| {
            let mut c = tight_connect(s.port);
            c.write_all(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            c
        })
        .collect();
    let v = state_when_served(&s);
    let refused = v["http_state_refused"].as_u64().unwrap();
    assert!(refused > 0, "no refusal counted: {refused}");
    let v = s.wait_state("a stalled writer to be dropped", |v| {
        v["http_write_timeouts"].as_u64().unwrap() > 0
    });
    assert_eq!(v["processes"].as_array().unwrap().len(), 22);
    let out = Command::new(bin())
        .args(["top", "--once", "--once-timeout", "30", "--url", &s.url()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "top --once: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (rss, nthreads) = (rss_kb(pid), threads(pid));
    eprintln!(
        "530 non-reading /api/state clients: RSS {} MB -> {} MB, {nthreads} threads, {refused} refused",
        rss0 / 1024,
        rss / 1024
    );
    assert!(rss < rss0 + 200 * 1024, "RSS {rss0} kB -> {rss} kB");
    assert!(nthreads < 100, "{nthreads} threads");
    stalled.clear();
}

/// A client that sends half a request head is closed after
/// `--header-timeout`; one that keeps a connection alive after a response
/// is closed after `--idle-timeout`; both are counted.
#[test]
fn half_sent_heads_and_idle_keepalives_are_closed() {
    let s = Serve::start(bin(), &["--header-timeout", "1", "--idle-timeout", "1"]);
    let mut half = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    half.write_all(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    assert_eq!(read_to_close(&mut half), Ok(0));
    let mut idle = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    idle.write_all(b"GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let got = read_to_close(&mut idle).unwrap();
    assert!(got > 1000, "the response came first ({got} bytes)");
    let v = s.state();
    assert!(v["http_read_timeouts"].as_u64().unwrap() >= 2, "{v:.300}");
}

/// 200 idle connections against a `serve` limited to 128 descriptors: the
/// connections above the cap make room by closing the idle ones waiting
/// longest (or are refused, 503) instead of exhausting the descriptors,
/// idle ones are closed at `--header-timeout` as well, and the API
/// stays reachable. Before, accept failed with "Too many open files" for
/// as long as the idle clients stayed.
#[test]
fn idle_connections_cannot_exhaust_descriptors() {
    let s = serve_with_nofile(bin(), 128, &["--header-timeout", "2"]);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    let v = state_when_served(&s);
    let cut: u64 = [
        "http_connections_refused",
        "http_connections_evicted",
        "http_read_timeouts",
    ]
    .iter()
    .map(|k| v[k].as_u64().unwrap())
    .sum();
    assert!(cut > 0, "{v:.300}");
    drop(idle);
}

/// 150 clients hold connections that never send a request, under a
/// 128-descriptor limit (96 connections), and reopen each one the moment
/// it is closed; the header timeout is long. A fresh client must still be
/// answered at its first attempt, every time: it takes the place of the
/// connection that waited longest. Before, it was answered 503 for as
/// long as the holders kept reopening.
#[test]
fn reopening_idle_clients_cannot_keep_a_fresh_client_out() {
    let s = serve_with_nofile(bin(), 128, &["--header-timeout", "60"]);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (opened, all_open) = std::sync::mpsc::channel();
        let holders = scope.spawn(|| hold_and_reopen(s.port, 150, opened, &stop));
        // Accepted in order: the holders' 150 fill the cap first.
        all_open.recv_timeout(PATIENCE).expect("holders connected");
        let answers: Vec<u16> = (0..5).map(|_| s.get("/api/state").0).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reopened = holders.join().unwrap().unwrap();
        assert_eq!(
            answers, [200; 5],
            "fresh clients refused ({reopened} reopens)"
        );
    });
    let v = s.state();
    assert!(
        v["http_connections_evicted"].as_u64().unwrap() >= 5,
        "{v:.400}"
    );
}

/// WebSocket clients that never read held their `--max-clients` slots for
/// ever. Now a client whose messages cannot be written for
/// `--write-timeout` is disconnected and counted, and a new client gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_that_never_read_are_disconnected() {
    let s = Serve::start(bin(), &["--max-clients", "2", "--write-timeout", "1"]);
    let stuck = stuck_ws_clients(s.port, 2);
    let dgrams = corpus_records();
    let v = poll("both stuck clients to be dropped", || {
        s.send_all(&dgrams);
        let v = s.state();
        match v["ws_clients_dropped_slow"].as_u64().unwrap() {
            n if n >= 2 => Ok(v),
            n => Err(format!("{n} dropped")),
        }
    });
    assert!(v["http_write_timeouts"].as_u64().unwrap() >= 2);
    let (mut ws, _) = tokio_tungstenite::connect_async(s.url()).await.unwrap();
    let first = futures_util::StreamExt::next(&mut ws)
        .await
        .unwrap()
        .unwrap();
    let v: J = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "snapshot");
    drop(stuck);
}

/// On a quiet server nothing fills a silent client's queue: a WebSocket
/// client that answers no ping for `--idle-timeout` is disconnected and
/// counted, while one that reads (and so answers pings) stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_websocket_clients_are_disconnected_on_a_quiet_server() {
    let s = Serve::start(bin(), &["--max-clients", "2", "--idle-timeout", "1"]);
    let (mut live, _) = tokio_tungstenite::connect_async(s.url()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut live).await {
            n += 1;
        }
        n
    });
    let mut silent = stuck_ws_clients(s.port, 1);
    assert_eq!(read_to_close(&mut silent[0]).map(|n| n > 0), Ok(true));
    let v = s.state();
    assert_eq!(v["ws_clients_dropped_slow"], 1, "{v:.300}");
    assert!(!reader.is_finished(), "the reading client was dropped too");
    reader.abort();
}

/// A DNS-rebinding page reaches the server under the attacker's name: its
/// `Host` (with a matching Origin) is refused with 421 on every route and
/// counted, and so is a non-loopback IP literal (a page served from the
/// attacker's own address); loopback names and addresses and
/// `--allowed-host` names and addresses pass.
#[test]
fn foreign_host_names_are_refused() {
    let s = Serve::start(
        bin(),
        &[
            "--allowed-host",
            "ops.example.com",
            "--allowed-host",
            "192.0.2.7",
        ],
    );
    let p = s.port;
    for evil in [
        format!("evil.example:{p}"),
        format!("10.1.2.3:{p}"),
        format!("[fd00::6]:{p}"),
        // A loopback name with a malformed port part.
        format!("127.0.0.1:{p}@evil.example"),
    ] {
        refused_on_every_route(&s, &evil);
    }
    for host in [
        format!("localhost:{p}"),
        format!("127.0.0.1:{p}"),
        format!("127.0.0.2:{p}"),
        format!("[::1]:{p}"),
        format!("ops.example.com:{p}"),
        format!("192.0.2.7:{p}"),
    ] {
        let (st, _, _) = s.http(&format!(
            "POST /api/slow/clear HTTP/1.0\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(st, 200, "{host}");
    }
    assert_eq!(s.state()["http_host_refused"], 16);
}

fn refused_on_every_route(s: &Serve, evil: &str) {
    let reqs = [
        format!("GET /api/state HTTP/1.0\r\nHost: {evil}\r\n\r\n"),
        format!("GET / HTTP/1.0\r\nHost: {evil}\r\n\r\n"),
        format!("POST /api/slow/clear HTTP/1.0\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nContent-Length: 0\r\n\r\n"),
        format!("GET /ws HTTP/1.1\r\nHost: {evil}\r\nOrigin: http://{evil}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
    ];
    for r in &reqs {
        let (st, _, body) = s.http(r);
        assert_eq!(st, 421, "{r}");
        assert_eq!(
            body,
            format!("Host '{evil}' is not served here (allow it with serve --allowed-host NAME)\n")
        );
    }
}

/// A prefix that would make the page load its script from another origin
/// (`//host`, a backslash, a scheme) is ignored as `X-Forwarded-Prefix`
/// (counted) and refused as `--root-path` (exit 2, one line).
#[test]
fn prefixes_naming_another_origin_are_refused() {
    let s = Serve::start(bin(), &[]);
    for prefix in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/x",
    ] {
        let (_, _, body) = s.http(&format!(
            "GET / HTTP/1.0\r\nHost: {{HOST}}\r\nX-Forwarded-Prefix: {prefix}\r\n\r\n"
        ));
        assert!(body.contains("window.TELEMETRY_BASE = \"\";"), "{prefix}");
    }
    let (_, _, body) =
        s.http("GET / HTTP/1.0\r\nHost: {HOST}\r\nX-Forwarded-Prefix: /telemetry/\r\n\r\n");
    assert!(body.contains("window.TELEMETRY_BASE = \"/telemetry\";"));
    assert_eq!(s.state()["http_prefix_refused"], 3);
    let out = Command::new(bin())
        .args(["serve", "--root-path", "//evil.example"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("root-path '//evil.example' starts with //"),
        "{err}"
    );
}

/// `--http-host` other than loopback: one warning line at start that the
/// unauthenticated UI is reachable from other hosts; none on loopback.
#[test]
fn non_loopback_http_host_is_warned_about() {
    for (host, warned) in [("0.0.0.0", true), ("127.0.0.1", false)] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.txt");
        let port = free_port();
        let sock = dir.path().join("t.sock");
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", &listen(&sock), "--http-host", host])
            .args(["--http-port", &port.to_string(), "--log-level", "warn"])
            .stderr(std::fs::File::create(&log).unwrap());
        let mut s = Serve::spawn(cmd, dir, port, sock, "serve");
        assert!(s.terminate().success());
        let err = std::fs::read_to_string(&log).unwrap();
        let lines = err
            .lines()
            .filter(|l| l.contains("reachable from other hosts and have no authentication"))
            .count();
        assert_eq!(lines, usize::from(warned), "{host}: {err}");
    }
}

/// A WebSocket client that falls more than the server's ring of messages
/// behind loses messages (counted in `ws_messages_dropped`); when one of
/// them was a `slow_clear`, the client would show cleared records until it
/// reconnects. After the lag the server re-sends the slow list as a
/// `slow_clear`, so the client's list is the server's again.
#[test]
fn a_lagging_client_does_not_miss_a_slow_clear() {
    use tokio_tungstenite::tungstenite;
    let s = Serve::start(bin(), &["--write-timeout", "300"]);
    let completed = wire::Sample {
        header: wire::Header::new(wire::Kind::SLOW_REQUEST, 1, 1, 1000.0),
        fields: vec![
            (wire::id::SLOW_THREAD_ID, wire::Value::U64(7)),
            (wire::id::SLOW_RECORD_STATE, wire::Value::U64(1)),
        ],
    }
    .encode()
    .unwrap();
    s.send_all([&completed]);
    s.wait_received(1);
    let stream = tight_connect(s.port);
    let (mut ws, _) = tungstenite::client(s.url(), stream).unwrap();
    let first = ws.read().unwrap().into_text().unwrap();
    let snap: J = serde_json::from_str(&first).unwrap();
    assert_eq!(snap["slow_requests"].as_array().unwrap().len(), 1);
    // The client stops reading: more than the ring (1,024) before the
    // clear and after it, so the clear itself falls out of the ring.
    let ticks = |from: u32| {
        (from..from + 3000)
            .map(|seq| tick(2, seq))
            .collect::<Vec<_>>()
    };
    s.send_all(ticks(1));
    s.wait_received(3001);
    let clear = "POST /api/slow/clear HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(s.http(clear).0, 200);
    s.send_all(ticks(3001));
    s.wait_received(6001);
    assert_eq!(s.state()["slow_requests"].as_array().unwrap().len(), 0);
    // Read everything there is; the slow list as a client builds it.
    ws.get_mut()
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let mut slow = std::collections::BTreeSet::new();
    slow.insert(snap["slow_requests"][0]["key"].to_string());
    let mut clears = 0;
    while let Ok(m) = ws.read() {
        // Not `into_text`: a ping (every --idle-timeout / 2, reached on
        // a loaded machine) would read as an empty text.
        let tungstenite::Message::Text(text) = m else {
            continue;
        };
        let v: J = serde_json::from_str(&text).unwrap();
        match v["type"].as_str() {
            Some("slow_request") => {
                slow.insert(v["key"].to_string());
            }
            Some("slow_clear") => {
                clears += 1;
                slow = v["kept"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k["key"].to_string())
                    .collect();
            }
            _ => {}
        }
    }
    assert!(
        s.state()["ws_messages_dropped"].as_u64().unwrap() > 1024,
        "the client did not lag"
    );
    assert!(clears >= 1, "no slow_clear reached the client");
    assert!(slow.is_empty(), "the client still lists {slow:?}");
}

/// A state whose whole `/api/state` is several times the kernel's send
/// buffer (megabytes on loopback), so a reader's place is held through
/// many waits.
fn big_state() -> Vec<Vec<u8>> {
    (1..=24)
        .flat_map(|pid| (1..=200).map(move |seq| tick(pid, seq)))
        .collect()
}

/// A connection that asks for the whole `/api/state`, reads the status
/// line (it holds a place now, or was refused) and then stops reading.
fn stalled_reader(port: u16) -> (TcpStream, String) {
    let mut c = tight_connect(port);
    c.write_all(b"GET /api/state?budget=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut line = [0u8; 12];
    c.read_exact(&mut line).unwrap();
    (c, String::from_utf8_lossy(&line).into_owned())
}

/// A stalled reader that holds a place (retried while refused with 503).
fn stalled_holder(port: u16) -> TcpStream {
    poll("a stalled reader to get a place", || {
        match stalled_reader(port) {
            (c, line) if line == "HTTP/1.1 200" => Ok(c),
            (_, line) => Err(line),
        }
    })
}

/// Readers that ask for `/api/state`, then stop reading, hold every
/// `--max-state-responses` place. Before, a fresh `/api/state` got 503
/// until `--write-timeout` (here longer than the tests' patience); now the
/// reader stalled longest (past `--state-stall-timeout`) is cut and the
/// fresh request takes its place. Each new request cuts one, oldest first,
/// and each cut is counted.
#[test]
fn stalled_state_readers_give_their_places_to_new_requests() {
    let s = Serve::start(
        bin(),
        // The whole state, uncapped (the operator's choice): a response
        // many times the socket buffers, so a stalled reader stays stalled.
        &[
            "--write-timeout",
            "600",
            "--max-state-responses",
            "4",
            "--snapshot-budget",
            "0",
        ],
    );
    let dgrams = big_state();
    s.send_all(&dgrams);
    s.wait_received(dgrams.len());
    let first: Vec<TcpStream> = (0..4).map(|_| stalled_holder(s.port)).collect();
    // A hang guard, not a timing: before the cut this answers 503 for
    // --write-timeout.
    let v = state_when_served(&s);
    assert_eq!(
        v["http_state_cancelled"], 1,
        "{:?}",
        v["http_state_cancelled"]
    );
    // Four more stalled readers: the first takes the place the fresh
    // request left, each of the others that of one of the first four.
    let second: Vec<TcpStream> = (0..4).map(|_| stalled_holder(s.port)).collect();
    for mut c in first {
        // What the kernel had queued arrives, then the close, before the
        // end of the chunked body.
        let mut got = Vec::new();
        c.read_to_end(&mut got).expect("a stalled reader was cut");
        assert!(
            !got.ends_with(b"\r\n0\r\n\r\n"),
            "it was sent the whole body"
        );
    }
    let (status, body) = s.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l == "mod_wsgi_telemetry_state_responses_cancelled_total 4"),
        "{body}"
    );
    drop(second);
}

/// A reader that keeps reading, slowly, through a small receive buffer
/// (so the server's writes wait on it again and again) keeps its place
/// while fresh requests are refused, and gets the whole body.
#[test]
fn a_slow_but_reading_client_is_not_cut() {
    // Uncapped, as above: the body must outlast many waits of the writer.
    let s = Serve::start(
        bin(),
        &["--max-state-responses", "1", "--snapshot-budget", "0"],
    );
    let dgrams = big_state();
    s.send_all(&dgrams);
    s.wait_received(dgrams.len());
    let mut c = tight_connect(s.port);
    c.write_all(b"GET /api/state?budget=0 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut refused = 0;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() > 20_000 && s.get("/api/state?budget=1000").0 == 503 {
            refused += 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = String::from_utf8_lossy(&got);
    let body = text.split_once("\r\n\r\n").expect("a response").1;
    let v: J = serde_json::from_str(body).expect("the whole body");
    assert!(refused > 0, "the slow reader held no place");
    assert_eq!(v["http_state_cancelled"], 0);
    assert_eq!(s.state()["http_state_cancelled"], 0);
}

/// Every HTTP refusal counted in `/api/state` is a counter family on
/// `/metrics` with the same value, and a burst of refusals is logged as one
/// line per interval, not one per request. Before: only
/// `state_responses_cancelled` was exported, and WebSocket upgrades refused
/// at `--max-clients` were not counted at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refusals_are_metrics_and_logged_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.txt");
    let s = Serve::start_logging(
        bin(),
        tempfile::tempdir().unwrap(),
        free_port(),
        &["--max-clients", "1"],
        Stdio::from(std::fs::File::create(&log).unwrap()),
    );
    for _ in 0..30 {
        let (st, _, _) = s.http("GET /api/state HTTP/1.0\r\nHost: evil.example\r\n\r\n");
        assert_eq!(st, 421);
    }
    for _ in 0..3 {
        s.http("GET / HTTP/1.0\r\nHost: {HOST}\r\nX-Forwarded-Prefix: //evil.example\r\n\r\n");
    }
    let (_held, _) = tokio_tungstenite::connect_async(s.url()).await.unwrap();
    for _ in 0..5 {
        assert!(tokio_tungstenite::connect_async(s.url()).await.is_err());
    }
    let v = s.state();
    let keys = [
        ("http_state_refused", "state_responses_refused"),
        ("http_state_cancelled", "state_responses_cancelled"),
        ("http_state_trimmed", "state_responses_trimmed"),
        ("http_connections_refused", "http_connections_refused"),
        ("http_connections_evicted", "http_connections_evicted"),
        ("http_read_timeouts", "http_read_timeouts"),
        ("http_write_timeouts", "http_write_timeouts"),
        ("ws_clients_dropped_slow", "websocket_clients_dropped_slow"),
        ("ws_clients_refused", "websocket_clients_refused"),
        ("http_host_refused", "http_host_refused"),
        ("http_prefix_refused", "http_prefix_refused"),
        ("ws_messages_dropped", "websocket_messages_dropped"),
    ];
    let (st, _, text) = s.http("GET /metrics HTTP/1.0\r\nHost: {HOST}\r\n\r\n");
    assert_eq!(st, 200);
    for (key, family) in keys {
        let n = v[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in /api/state"));
        let want = format!(
            "# TYPE mod_wsgi_telemetry_{family}_total counter\nmod_wsgi_telemetry_{family}_total {n}\n"
        );
        assert!(text.contains(&want), "{want} not in /metrics:\n{text}");
    }
    for (key, n) in [
        ("http_host_refused", 30),
        ("http_prefix_refused", 3),
        ("ws_clients_refused", 5),
    ] {
        assert_eq!(v[key], n, "{key}");
    }
    // One line for the whole burst, at the end of its interval.
    let line = wait_for_log(&log, "http limits in the last");
    for part in [
        "http_host_refused +30",
        "http_prefix_refused +3",
        "ws_clients_refused +5",
    ] {
        assert!(line.contains(part), "{part} not in {line}");
    }
    let text = read_lossy(&log);
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(
        warnings
            .iter()
            .filter(|l| !l.contains("max_dgram_qlen"))
            .count(),
        1,
        "{warnings:#?}"
    );
}
