//! Delivery: with the receiver absent or stalled, requests are still served
//! and the drop counter (field 19) rises; once the receiver is back,
//! datagrams flow again. And only requests mod_wsgi runs in the child are
//! counted by the Apache children (not those mod_wsgi hands to a daemon
//! process, which reports them itself: see daemon.rs).

use std::time::{Duration, Instant};

use integration_tests::wire::{id, Kind, Sample};
use integration_tests::*;

fn max_dropped(s: &[Sample]) -> u64 {
    of_kind(s, Kind::REQUEST)
        .iter()
        .filter_map(|x| x.u64(id::REPORTER_DROPPED_DATAGRAMS))
        .max()
        .unwrap_or(0)
}

/// Datagrams each reporter could not send, as its newest report says
/// (field 19 is cumulative per process).
fn total_dropped(s: &[Sample]) -> u64 {
    let mut per_pid = std::collections::HashMap::new();
    for x in of_kind(s, Kind::REQUEST) {
        let d = x.u64(id::REPORTER_DROPPED_DATAGRAMS).unwrap_or(0);
        let e = per_pid.entry(x.header.pid).or_insert(0);
        *e = d.max(*e);
    }
    per_pid.values().sum()
}

/// After a stall: requests one at a time, each reported before the next
/// (a burst of slow records could fill the 10-deep queue again), unless a
/// datagram is refused once more, which field 19 then counts.
fn flows_again(col: &Collector, httpd: &Httpd, n: u64) {
    let before = sum_u64(&col.samples(), id::REQUEST_COUNT);
    let dropped = total_dropped(&col.samples());
    for i in 1..=n {
        assert_eq!(httpd.get("/app/hello").0, 200);
        col.wait_for("datagrams flow again", |s| {
            let counted = sum_u64(s, id::REQUEST_COUNT);
            counted >= before + i || (counted > before && total_dropped(s) > dropped)
        });
    }
}

fn load(httpd: &Httpd, n: usize, path: &str) -> Vec<Duration> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(|| {
                    (0..n / 4)
                        .map(|_| {
                            let t = Instant::now();
                            assert_eq!(httpd.get(path).0, 200, "served while the receiver is away");
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The children of `httpd` that run a reporter thread.
fn reporting_children(httpd: &Httpd) -> Vec<u32> {
    let pids: Vec<u32> = httpd
        .children()
        .into_iter()
        .filter(|&p| reporter_reads(p).is_some())
        .collect();
    assert!(!pids.is_empty(), "no child of httpd runs a reporter");
    pids
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn drops_counted_while_receiver_absent(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let opts = Options::telemetry(mpm, &sock, 0.5, "");
    let mut httpd = Httpd::start_in(root, &opts);
    load(&httpd, 40, "/app/hello");
    // A whole tick of every reporter goes nowhere (ENOENT).
    wait_for_a_whole_tick_of_each(&reporting_children(&httpd));
    let col = Collector::bind(&sock);
    col.wait_for("a REQUEST reporting earlier drops", |s| max_dropped(s) > 0);
    // Datagrams flow again: new requests are counted.
    flows_again(&col, &httpd, 20);
    httpd.stop();
}

fn drops_counted_while_receiver_stalled(mpm: Mpm) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    // Every request is "slow": one datagram per request fills the queue fast.
    let opts = Options::telemetry(mpm, &col.path, 0.5, "WSGISlowRequests 0.000001");
    let mut httpd = Httpd::start_in(root, &opts);
    col.wait_for("STARTED", |s| !started_pids(s).is_empty());
    let normal = p50(load(&httpd, 200, "/app/hello"));
    col.pause(true);
    let stalled = p50(load(&httpd, 2000, "/app/hello"));
    // However fast the load went: stalled until the queue overflows.
    overflow_receiver_queue(&col.path, &reporting_children(&httpd));
    col.pause(false);
    col.wait_for("a REQUEST reporting drops", |s| max_dropped(s) > 0);
    flows_again(&col, &httpd, 20);
    httpd.stop();
    eprintln!(
        "median latency: receiver reading {normal:?}, receiver stalled {stalled:?} (not asserted)"
    );
}

fn only_embedded_requests_are_counted(mpm: Mpm) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let extra = format!(
        "WSGISlowRequests 0.05\nWSGIDaemonProcess telemetry-d processes=1 threads=2\n\
         WSGIScriptAlias /daemon {} process-group=telemetry-d application-group=%{{GLOBAL}}\n",
        app.display()
    );
    let opts = Options::telemetry(mpm, &col.path, 0.5, &extra);
    let mut httpd = Httpd::start_in(root, &opts);
    for _ in 0..5 {
        assert_eq!(httpd.get("/daemon/hello").0, 200);
    }
    assert_eq!(httpd.get("/daemon/sleep/100").0, 200);
    for _ in 0..3 {
        assert_eq!(httpd.get("/app/hello").0, 200);
    }
    httpd.stop();
    let all = col.wait_for("every process stopped", all_stopped);
    // The Apache children's datagrams (the daemon reports its own).
    let children: Vec<u32> = of_kind(&all, Kind::PROCESS_STARTED)
        .iter()
        .filter(|x| x.text(id::PROCESS_GROUP).is_none())
        .map(|x| x.header.pid)
        .collect();
    let s: Vec<Sample> = all
        .iter()
        .filter(|x| children.contains(&x.header.pid))
        .cloned()
        .collect();
    assert_eq!(
        sum_u64(&s, id::REQUEST_COUNT),
        3,
        "daemon-mode requests are the daemon's to report"
    );
    assert_eq!(sum_u64(&s, id::STATUS_2XX_TOTAL), 3);
    assert!(
        slow_for(&s, "/sleep/100").is_empty(),
        "no slow record from a child for a proxied request"
    );
}

both_mpms!(
    drops_counted_while_receiver_absent,
    drops_counted_while_receiver_stalled,
    only_embedded_requests_are_counted
);
