//! Benchmark of `GET /metrics` (not a timed test: it prints figures and
//! asserts nothing about time): scrape time and size with 50, 200 and
//! 1,000 processes, with and without `--metrics-per-process`, and whether
//! ingestion goes on while scrapes run back to back.
//!
//! Each process (4 daemon groups, one host) sends PROCESS_STARTED, five
//! REQUEST ticks with all five phase histograms filled and a GC snapshot.
//! Then 20 scrapes (OpenMetrics, as Prometheus asks) are timed from the
//! client (to the last byte) and by the server
//! (`mod_wsgi_telemetry_scrape_duration_seconds`). Then, for 3 s, scrapes
//! run back to back while a probe stream of 2,000 REQUEST datagrams/s
//! (non-blocking sends) goes to the same server: the probes refused by a
//! full socket queue and `receive_pauses` show whether ingestion stalled.
//!
//! Run: `cargo test --release -p mod_wsgi-telemetry --test metrics_bench -- --ignored --nocapture`

mod common;

use common::{datagrams, tick, Serve};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

const OM: &str = "Accept: application/openmetrics-text;version=1.0.0\r\n";

fn scrape(s: &Serve) -> (Duration, String) {
    let t0 = Instant::now();
    let (st, _, body) = s.http(&format!(
        "GET /metrics HTTP/1.0\r\nHost: {{HOST}}\r\n{OM}\r\n"
    ));
    assert_eq!(st, 200);
    (t0.elapsed(), body)
}

fn server_seconds(body: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix("mod_wsgi_telemetry_scrape_duration_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn ms(d: f64) -> String {
    format!("{:.2}", d * 1000.0)
}

#[test]
#[ignore = "benchmark: prints figures"]
fn scrape_time_and_size() {
    println!(
        "{:>6} {:>12} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "procs",
        "per-process",
        "KiB",
        "series",
        "client_p50",
        "client_max",
        "server_p50",
        "server_max",
        "refused",
        "pauses"
    );
    for n in [50u32, 200, 1000] {
        for per_process in [false, true] {
            let extra: &[&str] = if per_process {
                &["--metrics-per-process"]
            } else {
                &[]
            };
            let s = Serve::start(extra);
            let all: Vec<Vec<u8>> = (0..n).flat_map(|i| datagrams(100_000 + i)).collect();
            s.send_all(&all);
            s.wait_received(all.len());
            let mut client = Vec::new();
            let mut server = Vec::new();
            let mut body = String::new();
            for _ in 0..20 {
                let (d, b) = scrape(&s);
                client.push(d.as_secs_f64());
                server.push(server_seconds(&b));
                body = b;
            }
            let series = body
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
                .count();
            // Scrapes back to back for 3 s while probes arrive.
            let pauses0 = s.state()["receive_pauses"].as_u64().unwrap_or(0);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let refused = std::thread::scope(|sc| {
                let probe = sc.spawn(|| {
                    let tx = UnixDatagram::unbound().unwrap();
                    tx.set_nonblocking(true).unwrap();
                    let d = tick(100_000, 1_000);
                    let (mut sent, mut refused) = (0u64, 0u64);
                    let t0 = Instant::now();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let due = (t0.elapsed().as_secs_f64() * 2000.0) as u64;
                        while sent < due {
                            if tx.send_to(&d, &s.sock).is_err() {
                                refused += 1;
                            }
                            sent += 1;
                        }
                        std::thread::sleep(Duration::from_micros(500));
                    }
                    (sent, refused)
                });
                let t0 = Instant::now();
                while t0.elapsed() < Duration::from_secs(3) {
                    scrape(&s);
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                probe.join().unwrap()
            });
            let pauses = s.state()["receive_pauses"].as_u64().unwrap_or(0) - pauses0;
            client.sort_by(f64::total_cmp);
            server.sort_by(f64::total_cmp);
            println!(
                "{:>6} {:>12} {:>9.0} {:>8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
                n,
                per_process,
                body.len() as f64 / 1024.0,
                series,
                ms(client[10]),
                ms(client[19]),
                ms(server[10]),
                ms(server[19]),
                format!("{}/{}", refused.1, refused.0),
                pauses
            );
        }
    }
}

/// The part of a scrape that holds the state lock ([`capture`]) against
/// the part that does not ([`render`]), in process, on the same state as
/// above.
///
/// [`capture`]: mwt_ingester::api::metrics::capture
/// [`render`]: mwt_ingester::api::metrics::render
#[test]
#[ignore = "benchmark: prints figures"]
fn lock_hold_of_a_scrape() {
    use mwt_ingester::api::metrics::{capture, render, IngesterCounters};
    use mwt_ingester::ingest::state::{Limits, State};
    println!(
        "{:>6} {:>12} {:>14} {:>14}",
        "procs", "per-process", "capture_ms", "render_ms"
    );
    for n in [50u32, 200, 1000] {
        let mut st = State::new(Limits::default());
        let now = Instant::now();
        for i in 0..n {
            for d in datagrams(100_000 + i) {
                st.ingest_quiet(&d, now);
            }
        }
        for per_process in [false, true] {
            let (mut cap, mut ren) = (Vec::new(), Vec::new());
            for _ in 0..20 {
                let t0 = Instant::now();
                let c = capture(&st, per_process, IngesterCounters::default(), now);
                let t1 = Instant::now();
                let text = render(c, true, || 0.0);
                cap.push((t1 - t0).as_secs_f64());
                ren.push(t1.elapsed().as_secs_f64());
                assert!(text.ends_with("# EOF\n"));
            }
            cap.sort_by(f64::total_cmp);
            ren.sort_by(f64::total_cmp);
            println!(
                "{:>6} {:>12} {:>14} {:>14}",
                n,
                per_process,
                ms(cap[10]),
                ms(ren[10])
            );
        }
    }
}
