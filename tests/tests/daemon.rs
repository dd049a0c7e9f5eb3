//! Daemon mode (issue 6): a reporter in every mod_wsgi daemon process of a
//! real httpd with Debian's mod_wsgi 4.9, `WSGIDaemonProcess g processes=2
//! threads=4`: request-level data, slow requests, lifecycle with reasons
//! and Python GC per interpreter, by the zero-configuration path and by the
//! explicit `WSGIImportScript` path; nothing counted twice.

use std::collections::{BTreeMap, BTreeSet};

use integration_tests::wire::{id, Kind, Sample, Value};
use integration_tests::*;

/// Pid -> process group, from every datagram that names one.
fn groups(s: &[Sample]) -> BTreeMap<u32, String> {
    let mut m = BTreeMap::new();
    for x in s {
        if let Some(g) = x.text(id::PROCESS_GROUP) {
            m.insert(x.header.pid, g.to_string());
        }
    }
    m
}

fn pids_of(s: &[Sample], group: &str) -> BTreeSet<u32> {
    groups(s)
        .into_iter()
        .filter(|(_, g)| g == group)
        .map(|(p, _)| p)
        .collect()
}

/// REQUEST samples of the given pids.
fn requests_of<'a>(s: &'a [Sample], pids: &BTreeSet<u32>) -> Vec<&'a Sample> {
    of_kind(s, Kind::REQUEST)
        .into_iter()
        .filter(|x| pids.contains(&x.header.pid))
        .collect()
}

fn sum(v: &[&Sample], field: u16) -> u64 {
    v.iter().map(|x| x.u64(field).unwrap_or(0)).sum()
}

/// Pids that sent a GC snapshot, with the interpreter names seen.
fn gc_interpreters(s: &[Sample]) -> BTreeMap<u32, BTreeSet<String>> {
    let mut m: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    for x in of_kind(s, Kind::GC_SNAPSHOT) {
        m.entry(x.header.pid)
            .or_default()
            .insert(x.text(id::INTERPRETER_NAME).unwrap_or_default().to_string());
    }
    m
}

fn daemon_conf(mpm: Mpm, root: &ServerRoot, sock: &std::path::Path, extra: &str) -> Options {
    let app = root.path("app.wsgi");
    let directives = format!(
        "WSGISlowRequests 0.5\n\
         WSGIDaemonProcess g processes=2 threads=4 {extra}\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n",
        app = app.display()
    );
    Options::telemetry(mpm, sock, 0.5, &directives)
}

/// Waits until both daemons of group `g` have attached (their GC
/// snapshots arrive: the attach code sends counters right away).
fn wait_attached(col: &Collector, group: &str, n: usize) -> BTreeSet<u32> {
    let s = col.wait_for("both daemons attached", |s| {
        let pids = pids_of(s, group);
        let gc = gc_interpreters(s);
        pids.len() >= n && pids.iter().filter(|p| gc.contains_key(p)).count() >= n
    });
    pids_of(&s, group)
}

/// The request mix and what the daemons must report for it.
fn run_mix(httpd: &Httpd, col: &Collector, daemons: &BTreeSet<u32>) {
    const OK: u64 = 30;
    for _ in 0..OK {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    for _ in 0..3 {
        assert_eq!(httpd.get("/d/notfound").0, 404);
    }
    for _ in 0..2 {
        assert_eq!(httpd.get("/d/error").0, 500);
    }
    let body = vec![b'p'; 12_345];
    assert_eq!(httpd.request("POST", "/d/post", &body, "t").0, 200);
    assert_eq!(httpd.get("/d/size/5000").0, 200);
    // A slow one, watched while it runs.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| httpd.get("/d/sleep/1500"));
        col.wait_for("an active slow record from a daemon", |s| {
            slow_for(s, "/sleep/1500")
                .iter()
                .any(|r| r.u64(id::SLOW_RECORD_STATE) == Some(0))
        });
        assert_eq!(h.join().unwrap().0, 200);
    });
    let total = OK + 3 + 2 + 1 + 1 + 1;
    let s = col.wait_for("every request of the mix reported", |s| {
        sum(&requests_of(s, daemons), id::REQUEST_COUNT) >= total
    });
    let req = requests_of(&s, daemons);
    assert_eq!(sum(&req, id::REQUEST_COUNT), total);
    assert_eq!(sum(&req, id::STATUS_2XX_TOTAL), OK + 3);
    assert_eq!(sum(&req, id::STATUS_4XX_TOTAL), 3);
    assert_eq!(sum(&req, id::STATUS_5XX_TOTAL), 2);
    assert_eq!(sum(&req, id::INPUT_BYTES_TOTAL), 12_345);
    // hello x30 (5 B), "nope" x3, "12345", 5000 B, sleep's "hello".
    assert_eq!(
        sum(&req, id::OUTPUT_BYTES_TOTAL),
        OK * 5 + 3 * 4 + 5 + 5000 + 5
    );
    for x in &req {
        assert_eq!(x.u64(id::REQUEST_THREADS_MAXIMUM), Some(4));
        if x.u64(id::REQUEST_COUNT).unwrap_or(0) > 0 {
            assert!(x.f64(id::QUEUE_TIME).is_some(), "queue time present");
            assert!(x.f64(id::DAEMON_TIME).is_some(), "daemon time present");
            assert!(x.get(id::QUEUE_TIME_BUCKETS).is_some());
        }
    }
    // No request of the mix is counted by an Apache child.
    let children: BTreeSet<u32> = of_kind(&s, Kind::PROCESS_STARTED)
        .iter()
        .filter(|x| x.text(id::PROCESS_GROUP).is_none())
        .map(|x| x.header.pid)
        .collect();
    assert!(!children.is_empty());
    assert_eq!(
        sum(&requests_of(&s, &children), id::REQUEST_COUNT),
        0,
        "the Apache children report none of the daemon's requests"
    );
    // The slow request: active then completed, from a daemon, naming the
    // Apache child that accepted it.
    let s = col.wait_for("the completed slow record", |s| {
        slow_for(s, "/sleep/1500")
            .iter()
            .any(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
    });
    let recs = slow_for(&s, "/sleep/1500");
    for r in &recs {
        assert!(daemons.contains(&r.header.pid), "sent by a daemon");
        let server = r.u64(id::SLOW_SERVER_PID).unwrap() as u32;
        assert!(
            children.contains(&server),
            "slow_server_pid {server} is an Apache child {children:?}"
        );
        assert_eq!(r.text(id::SLOW_METHOD).as_deref(), Some("GET"));
        assert_eq!(r.text(id::SLOW_SCRIPT_NAME).as_deref(), Some("/d"));
    }
    let done: Vec<_> = recs
        .iter()
        .filter(|r| r.u64(id::SLOW_RECORD_STATE) == Some(1))
        .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].u64(id::SLOW_STATUS), Some(200));
    assert!(done[0].f64(id::SLOW_DURATION).unwrap() >= 1.5);
    assert!(done[0].f64(id::SLOW_DAEMON_TIME).is_some());
}

/// Under both MPMs: the Apache children in front of the daemons differ.
fn zero_config_daemons_report_requests_slow_and_gc(mpm: Mpm) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let opts = daemon_conf(mpm, &root, &col.path, "");
    let mut httpd = Httpd::start_in(root, &opts);
    let daemons = wait_attached(&col, "g", 2);
    assert_eq!(daemons.len(), 2);
    for p in &daemons {
        // The watcher and the reporter thread: mod_wsgi's daemon signals
        // (SIGTERM, SIGUSR1, SIGXCPU...) are for its own threads.
        assert_our_threads_block_process_signals(*p);
    }
    run_mix(&httpd, &col, &daemons);
    // GC events arrive (the attach code hooks gc.callbacks); force some.
    col.wait_for("GC events from a daemon", |s| {
        of_kind(s, Kind::GC_EVENT)
            .iter()
            .any(|x| daemons.contains(&x.header.pid))
    });
    httpd.stop();
    let s = col.wait_for("every process stopped", all_stopped);
    for p in &daemons {
        let st: Vec<_> = of_kind(&s, Kind::PROCESS_STOPPED)
            .into_iter()
            .filter(|x| x.header.pid == *p)
            .collect();
        assert_eq!(st.len(), 1, "one STOPPED per daemon");
        assert_eq!(
            st[0].text(id::SHUTDOWN_REASON).as_deref(),
            Some("shutdown_signal")
        );
        assert_eq!(st[0].text(id::PROCESS_GROUP).as_deref(), Some("g"));
    }
    assert!(!httpd.error_log().contains("exit signal"), "no crash");
}

both_mpms!(
    zero_config_daemons_report_requests_slow_and_gc,
    restricted_embedded_children_do_not_report
);

/// `WSGIRestrictEmbedded On` (every application in a daemon group): the
/// MPM children run no Python, so they send nothing; the ingester's
/// process list holds only the two daemons, with every request counted,
/// and a daemon's slow record still names the Apache child that accepted
/// the request. (Before: every MPM child reported an idle process.)
fn restricted_embedded_children_do_not_report(mpm: Mpm) {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let mut opts = daemon_conf(mpm, &root, &sock, "");
    opts.directives.push_str("WSGIRestrictEmbedded On\n");
    let mut httpd = Httpd::start_in(root, &opts);
    const N: u64 = 20;
    for _ in 0..N {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    assert_eq!(httpd.get("/d/sleep/700").0, 200);
    ing.wait_state("every request reported", |st| {
        state_sum(st, "request_count") > N
    });
    httpd.stop();
    let st = ing.wait_state("every reporting process STOPPED", |st| {
        let stopped: Vec<u64> = state_stopped(st)
            .iter()
            .filter_map(|e| e["pid"].as_u64())
            .collect();
        let c = state_counts(st);
        !c.is_empty() && c.keys().all(|p| stopped.contains(p))
    });
    let procs = st["processes"].as_array().unwrap();
    let listed: Vec<(u64, String)> = procs
        .iter()
        .map(|p| {
            (
                p["pid"].as_u64().unwrap(),
                p["process_group"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        listed.iter().all(|(_, g)| g == "g"),
        "only daemon processes of group g report: {listed:?}\n{}",
        httpd.error_log()
    );
    assert_eq!(listed.len(), 2, "processes=2: {listed:?}");
    assert_eq!(state_sum(&st, "request_count"), N + 1);
    assert_eq!(st["decode_errors"], 0);
    // The daemons still get the child's stamps: queue time is reported.
    let with_requests: Vec<&serde_json::Value> = procs
        .iter()
        .flat_map(|p| p["samples"].as_array().unwrap())
        .filter(|x| x["kind"] == "request_metrics" && x["fields"]["request_count"] != 0)
        .collect();
    assert!(!with_requests.is_empty());
    for x in with_requests {
        assert!(x["fields"]["queue_time"].is_number(), "{}", x["fields"]);
        assert!(x["fields"]["server_time"].is_number(), "{}", x["fields"]);
    }
    let slow: Vec<&serde_json::Value> = st["slow_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["entry"])
        .filter(|e| e["path_info"] == "/sleep/700" && e["state"] == 1)
        .collect();
    assert_eq!(slow.len(), 1, "{slow:?}");
    let server_pid = slow[0]["server_pid"].as_u64().unwrap();
    assert!(
        server_pid != 0 && listed.iter().all(|(p, _)| *p != server_pid),
        "the slow record names the Apache child, not a daemon: {server_pid} {listed:?}"
    );
    assert!(
        httpd
            .error_log()
            .contains("No telemetry reporter in this child"),
        "the children say why they do not report"
    );
}

/// Zero configuration counts the requests of every interpreter (also a
/// sub-interpreter application group no attach code runs in) from the
/// daemon's first request, through the module's request hooks in the
/// daemon, with no mod_wsgi event subscriber (they cost throughput).
#[test]
fn zero_config_counts_every_interpreter_from_the_first_request() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let directives = format!(
        "WSGIDaemonProcess g processes=1 threads=4\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /s {app} process-group=g application-group=site2\n",
        app = app.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    // At once, before anything could attach through Python.
    for _ in 0..6 {
        assert_eq!(httpd.get("/s/hello").0, 200);
    }
    for _ in 0..4 {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    let body = vec![b'q'; 777];
    assert_eq!(httpd.request("POST", "/s/post", &body, "t").0, 200);
    // A body the application never reads is not its input.
    assert_eq!(httpd.request("POST", "/d/hello", &body, "t").0, 200);
    let s = col.wait_for("12 requests from the daemon", |s| {
        let d = pids_of(s, "g");
        sum(&requests_of(s, &d), id::REQUEST_COUNT) >= 12
    });
    let d = pids_of(&s, "g");
    assert_eq!(d.len(), 1);
    let req = requests_of(&s, &d);
    assert_eq!(sum(&req, id::REQUEST_COUNT), 12, "{}", dump_kinds(&s));
    assert_eq!(sum(&req, id::STATUS_2XX_TOTAL), 12);
    assert_eq!(sum(&req, id::INPUT_BYTES_TOTAL), 777);
    assert_eq!(sum(&req, id::OUTPUT_BYTES_TOTAL), 11 * 5 + 3);
    // Once the main interpreter is attached (GC only), still no subscriber
    // in either interpreter.
    wait_attached(&col, "g", 1);
    for p in ["/d/subscribers", "/s/subscribers"] {
        let (st, body) = httpd.get(p);
        assert_eq!((st, body.as_slice()), (200, &b"0"[..]), "{p}");
    }
    // Without WSGISlowRequests no slow record names the Apache child, so
    // the child does not send its pid along with every request (a key
    // more in each WSGI environ, built as Python strings in the daemon).
    let (st, body) = httpd.get("/d/environ-has/mod_wsgi_telemetry.server_pid");
    assert_eq!((st, body.as_slice()), (200, &b"0"[..]));
    httpd.stop();
    col.wait_for("every process stopped", all_stopped);
    assert!(!httpd.error_log().contains("exit signal"), "no crash");
    assert!(
        !httpd.error_log().contains("request hooks unavailable"),
        "the request hooks were installed"
    );
}

/// mod_wsgi's reaper ends a daemon whose requests outlast
/// `shutdown-timeout` (here after a SIGTERM to the daemon) with exit():
/// STOPPED (and the final interval) is still sent, from our atexit
/// handler, with the reason that started the shutdown.
#[test]
fn a_daemon_aborted_after_its_shutdown_timeout_still_reports_stopped() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let directives = format!(
        "WSGISlowRequests 0.5\n\
         WSGIDaemonProcess g processes=1 threads=2 shutdown-timeout=1\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n",
        app = app.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    let first = col.wait_for("the daemon started", |s| !pids_of(s, "g").is_empty());
    let first = *pids_of(&first, "g").iter().next().unwrap();
    // A request that will still run when the daemon retires: its client
    // sees the connection end early, whatever the status.
    let port = httpd.port;
    let slow = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /d/sleep/8000 HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
    });
    col.wait_for("the slow request active", |s| {
        slow_for(s, "/sleep/8000")
            .iter()
            .any(|r| r.u64(id::SLOW_RECORD_STATE) == Some(0))
    });
    assert_eq!(httpd.get("/d/hello").0, 200);
    // SAFETY: a signal to the daemon process this test started.
    assert_eq!(unsafe { libc::kill(first as i32, libc::SIGTERM) }, 0);
    let s = col.wait_for("the first daemon stopped", |s| {
        of_kind(s, Kind::PROCESS_STOPPED)
            .iter()
            .any(|x| x.header.pid == first)
    });
    let stopped: Vec<_> = of_kind(&s, Kind::PROCESS_STOPPED)
        .into_iter()
        .filter(|x| x.header.pid == first)
        .collect();
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        stopped[0].text(id::SHUTDOWN_REASON).as_deref(),
        Some("shutdown_signal")
    );
    slow.join().unwrap();
    // mod_wsgi starts a daemon in its place: stop only once that one is up
    // (attached: its GC snapshots arrive). A daemon signalled before
    // mod_wsgi has installed its handlers dies by the signal's default
    // action and cannot send STOPPED (as in the restart test below); seen
    // once, a stop 7 ms after the replacement was forked.
    col.wait_for("the replacement daemon attached", |s| {
        let gc = gc_interpreters(s);
        pids_of(s, "g")
            .iter()
            .any(|p| *p != first && gc.contains_key(p))
    });
    httpd.stop();
    col.wait_for("every process stopped", all_stopped);
    let log = httpd.error_log();
    assert!(
        log.contains("Aborting process"),
        "the reaper ended it:\n{log}"
    );
    assert!(!log.contains("exit signal"), "no crash");
}

/// Reasons only mod_wsgi knows (here `inactivity-timeout`) reach
/// STOPPING and STOPPED: the module hooks the call in which mod_wsgi
/// publishes its shutdown reason.
#[test]
fn mod_wsgi_s_own_shutdown_reason_is_reported() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let directives = format!(
        "WSGIDaemonProcess g processes=1 threads=2 inactivity-timeout=1\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n",
        app = app.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    assert_eq!(httpd.get("/d/hello").0, 200);
    let s = col.wait_for("a daemon retired for inactivity", |s| {
        of_kind(s, Kind::PROCESS_STOPPED)
            .iter()
            .any(|x| x.text(id::PROCESS_GROUP).as_deref() == Some("g"))
    });
    let stopped = of_kind(&s, Kind::PROCESS_STOPPED)
        .into_iter()
        .find(|x| x.text(id::PROCESS_GROUP).as_deref() == Some("g"))
        .unwrap();
    let pid = stopped.header.pid;
    let stopping: Vec<_> = of_kind(&s, Kind::PROCESS_STOPPING)
        .into_iter()
        .filter(|x| x.header.pid == pid)
        .collect();
    assert_eq!(stopping.len(), 1);
    for x in [&stopping[0], &stopped] {
        assert_eq!(
            x.text(id::SHUTDOWN_REASON).as_deref(),
            Some("inactivity_timeout"),
            "{:?}",
            x.header.kind
        );
    }
    httpd.stop();
    col.wait_for("every process stopped", all_stopped);
    assert!(!httpd.error_log().contains("exit signal"), "no crash");
}

fn dump_kinds(s: &[Sample]) -> String {
    let mut m: BTreeMap<(u32, u8), usize> = BTreeMap::new();
    for x in s {
        *m.entry((x.header.pid, x.header.kind.0)).or_default() += 1;
    }
    format!("{m:?}")
}

#[test]
fn explicit_attach_with_two_interpreters() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let attach = workspace_root().join("mod_wsgi_reporter/python/mod_wsgi_telemetry_attach.py");
    let directives = format!(
        "WSGIDaemonProcess g processes=1 threads=4\n\
         WSGIImportScript {attach} process-group=g application-group=%{{GLOBAL}}\n\
         WSGIImportScript {attach} process-group=g application-group=site2\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /s {app} process-group=g application-group=site2\n",
        attach = attach.display(),
        app = app.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    // No wait for attach: the import scripts run before the daemon accepts
    // requests, so none may be missed.
    for _ in 0..7 {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    for _ in 0..5 {
        assert_eq!(httpd.get("/s/hello").0, 200);
    }
    let s = col.wait_for("12 requests and GC from two interpreters", |s| {
        let d = pids_of(s, "g");
        sum(&requests_of(s, &d), id::REQUEST_COUNT) >= 12
            && gc_interpreters(s).values().any(|n| n.len() >= 2)
    });
    let d = pids_of(&s, "g");
    assert_eq!(d.len(), 1);
    assert_eq!(
        sum(&requests_of(&s, &d), id::REQUEST_COUNT),
        12,
        "{}",
        dump_kinds(&s)
    );
    let names = gc_interpreters(&s);
    let names = &names[d.iter().next().unwrap()];
    assert!(names.contains("site2"), "{names:?}");
    assert!(
        names.len() == 2,
        "main interpreter unnamed, site2 named: {names:?}"
    );
    // Switch interval from the interpreter itself.
    let req = requests_of(&s, &d);
    assert!(req
        .iter()
        .any(|x| matches!(x.get(id::SWITCH_INTERVAL), Some(Value::F64(v)) if *v > 0.0)));
    httpd.stop();
    col.wait_for("every process stopped", all_stopped);
}

#[test]
fn maximum_requests_restarts_are_reported() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let app = root.path("app.wsgi");
    let attach = workspace_root().join("mod_wsgi_reporter/python/mod_wsgi_telemetry_attach.py");
    let directives = format!(
        "WSGIDaemonProcess g processes=1 threads=2 maximum-requests=20\n\
         WSGIImportScript {attach} process-group=g application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n",
        attach = attach.display(),
        app = app.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    for _ in 0..100 {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    // mod_wsgi retires a daemon after its 20th request: 100 requests give
    // at least 4 retirements (a 5th when the last daemon also reaches 20).
    col.wait_for("4 daemons retired by maximum_requests", |s| {
        of_kind(s, Kind::PROCESS_STOPPED)
            .iter()
            .filter(|x| x.text(id::SHUTDOWN_REASON).as_deref() == Some("maximum_requests"))
            .count()
            >= 4
    });
    httpd.stop();
    let s = col.wait_for("every process stopped", all_stopped);
    let d = pids_of(&s, "g");
    assert!(d.len() >= 5, "5+ daemon lifetimes: {d:?}");
    assert_eq!(
        sum(&requests_of(&s, &d), id::REQUEST_COUNT),
        100,
        "no request lost across daemon restarts"
    );
    for p in &d {
        let reasons = |k: Kind| -> Vec<String> {
            of_kind(&s, k)
                .iter()
                .filter(|x| x.header.pid == *p)
                .map(|x| x.text(id::SHUTDOWN_REASON).unwrap_or_default().to_string())
                .collect()
        };
        let (started, stopping, stopped) = (
            of_kind(&s, Kind::PROCESS_STARTED)
                .iter()
                .filter(|x| x.header.pid == *p)
                .count(),
            reasons(Kind::PROCESS_STOPPING),
            reasons(Kind::PROCESS_STOPPED),
        );
        assert_eq!(started, 1, "pid {p}: one STARTED");
        assert_eq!(stopping.len(), 1, "pid {p}: one STOPPING");
        assert_eq!(stopping, stopped, "pid {p}: same reason twice");
        let served: u64 = requests_of(&s, &[*p].into())
            .iter()
            .map(|x| x.u64(id::REQUEST_COUNT).unwrap_or(0))
            .sum();
        let want = if served >= 20 {
            "maximum_requests"
        } else {
            "shutdown_signal"
        };
        assert_eq!(stopped[0], want, "pid {p} served {served}");
    }
    assert!(!httpd.error_log().contains("exit signal"), "no crash");
}

/// STOPPED reason per pid.
fn stop_reasons(s: &[Sample]) -> BTreeMap<u32, String> {
    of_kind(s, Kind::PROCESS_STOPPED)
        .iter()
        .map(|x| {
            (
                x.header.pid,
                x.text(id::SHUTDOWN_REASON).unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn graceful_restart_daemon_signal_and_stop_give_their_reasons() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let opts = daemon_conf(Mpm::Event, &root, &col.path, "");
    let mut httpd = Httpd::start_in(root, &opts);
    let first = wait_attached(&col, "g", 2);
    assert_eq!(httpd.get("/d/hello").0, 200);
    // Apache graceful restart: mod_wsgi 6.x labels the daemons'
    // SIGTERM from Apache `shutdown_signal`; new daemons start.
    httpd.graceful();
    let s = col.wait_for("old daemons stopped, new ones started", |s| {
        let r = stop_reasons(s);
        first.iter().all(|p| r.contains_key(p)) && pids_of(s, "g").len() >= 4
    });
    for p in &first {
        assert_eq!(stop_reasons(&s)[p], "shutdown_signal", "pid {p}");
    }
    let second: BTreeSet<u32> = pids_of(&s, "g").difference(&first).copied().collect();
    // SIGUSR1 to one daemon: mod_wsgi restarts it gracefully.
    let victim = *second.iter().next().unwrap();
    col.wait_for("the new daemons attached", |s| {
        let gc = gc_interpreters(s);
        second.iter().all(|p| gc.contains_key(p))
    });
    // SAFETY: kill(2) on a daemon pid of the httpd this test started.
    unsafe { libc::kill(victim as i32, libc::SIGUSR1) };
    let s = col.wait_for("the signalled daemon stopped and was replaced", |s| {
        stop_reasons(s).contains_key(&victim) && pids_of(s, "g").len() >= 5
    });
    assert_eq!(stop_reasons(&s)[&victim], "graceful_signal");
    // The daemons running now (the second generation, the replacement).
    let live: BTreeSet<u32> = pids_of(&s, "g")
        .into_iter()
        .filter(|p| !stop_reasons(&s).contains_key(p))
        .collect();
    // Stop only once they are fully up (attached): a daemon that gets
    // SIGTERM before mod_wsgi has installed its handlers dies by the
    // signal's default action and cannot send STOPPED.
    col.wait_for("the running daemons attached", |s| {
        let gc = gc_interpreters(s);
        live.iter().all(|p| gc.contains_key(p))
    });
    httpd.stop();
    let s = col.wait_for("the running daemons stopped", |s| {
        let r = stop_reasons(s);
        live.iter().all(|p| r.contains_key(p))
    });
    let r = stop_reasons(&s);
    for p in &live {
        assert_eq!(r[p], "shutdown_signal", "pid {p} at stop");
    }
    assert!(!httpd.error_log().contains("exit signal"), "no crash");
}

#[test]
fn reference_ingester_decodes_daemon_datagrams() {
    let root = ServerRoot::new();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(reference_exe(), &sock, &["--socket-mode", "0666"]);
    // One interpreter per process: the reference ingester cannot serve
    // GC data that carries interpreter_name (docs/compatibility.md C11).
    let opts = daemon_conf(Mpm::Event, &root, &sock, "");
    let mut httpd = Httpd::start_in(root, &opts);
    ing.wait_state("two daemons with GC data in the reference", |st| {
        st["processes"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["process_group"] == "g")
                    .filter(|p| p["gc_snapshots"].as_object().is_some_and(|m| !m.is_empty()))
                    .count()
                    >= 2
            })
            .unwrap_or(false)
    });
    for _ in 0..10 {
        assert_eq!(httpd.get("/d/hello").0, 200);
    }
    assert_eq!(httpd.get("/d/error").0, 500);
    httpd.stop();
    let st = ing.wait_state("every daemon's STOPPED in the reference", |st| {
        state_stopped(st)
            .iter()
            .filter(|e| e["process_group"] == "g")
            .count()
            >= 2
    });
    assert_eq!(
        st["decode_errors"], 0,
        "the reference decodes every datagram"
    );
    let daemons: Vec<u64> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["process_group"] == "g")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(daemons.len(), 2, "the reference shows the daemon group");
    let counts = state_counts(&st);
    assert_eq!(daemons.iter().map(|p| counts[p]).sum::<u64>(), 11);
}

#[test]
fn embedded_children_report_gc_with_the_attach_script() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let attach = workspace_root().join("mod_wsgi_reporter/python/mod_wsgi_telemetry_attach.py");
    let directives = format!(
        "WSGIImportScript {} process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}\n",
        attach.display()
    );
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, &directives);
    let mut httpd = Httpd::start_in(root, &opts);
    for _ in 0..10 {
        assert_eq!(httpd.get("/app/hello").0, 200);
    }
    let s = col.wait_for("GC snapshots from an Apache child", |s| {
        !gc_interpreters(s).is_empty()
    });
    let children: BTreeSet<u32> = started_pids(&s).into_iter().collect();
    assert!(gc_interpreters(&s).keys().all(|p| children.contains(p)));
    let s = col.wait_for("10 requests", |s| sum_u64(s, id::REQUEST_COUNT) >= 10);
    assert_eq!(
        sum_u64(&s, id::REQUEST_COUNT),
        10,
        "the hooks count requests; the attach code adds none in embedded mode"
    );
    httpd.stop();
}
