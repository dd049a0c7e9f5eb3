//! The application's own metrics (issue 20) in a real httpd with Debian's
//! mod_wsgi 4.9: a WSGI application imports the `mod_wsgi_telemetry`
//! package from `python/` and calls `incr` / `set` / `record` from many
//! threads of two sub-interpreters at once, in embedded mode and in daemon
//! processes; the `app_metrics` datagrams (kind 10) our module sends are
//! decoded with `wire::app` and their totals, summed over the processes,
//! must equal exactly what the application sent. Also: off by default (no
//! kind 10, `enabled()` False), names past the table's limit counted as
//! dropped, the package finds the module's symbols in the process's global
//! scope, and mod_wsgi's own `process_metrics()` / `request_metrics()` /
//! `server_metrics()` keep answering with our module loaded.

use std::collections::BTreeMap;

use integration_tests::testkit::poll;
use integration_tests::wire::app::{AppMetrics, MetricValue};
use integration_tests::wire::histogram::{bucket_index, quantile_seconds, BUCKETS};
use integration_tests::wire::{id, Kind};
use integration_tests::*;

/// The application: `/enabled`, `/symbols`, `/burst/THREADS/CALLS`,
/// `/many/N`, `/accessors`. Its interpreter's name (the application
/// group) tags the names it uses.
const METRICS_APP: &str = r#"
import json, os, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'pylib'))
import mod_wsgi_telemetry as mwt

def work(tag, calls):
    for i in range(calls):
        mwt.incr('hits')
        mwt.incr('bytes', 3)
        mwt.incr('hits.' + tag)
        mwt.record('lat.{0}', ((i % 64) + 1) / 1024.0)
    mwt.set('level.' + tag, 5)

def symbols():
    import ctypes
    try:
        ctypes.PyDLL(None).mwt_app_abi_version
        return 'global'
    except AttributeError:
        return 'absent'

def application(environ, start_response):
    import mod_wsgi
    tag = mod_wsgi.application_group or 'main'
    parts = environ.get('PATH_INFO', '').strip('/').split('/')
    body = ''
    if parts[0] == 'enabled':
        body = '1' if mwt.enabled() else '0'
    elif parts[0] == 'symbols':
        body = symbols()
    elif parts[0] == 'burst':
        threads, calls = int(parts[1]), int(parts[2])
        ts = [threading.Thread(target=work, args=(tag, calls)) for _ in range(threads)]
        for t in ts:
            t.start()
        work(tag, calls)  # the request's own thread too
        for t in ts:
            t.join()
        # Long enough that the concurrent requests outnumber one
        # process's threads: several processes serve them.
        time.sleep(0.5)
        mwt.set('pid', os.getpid())
        body = str(os.getpid())
    elif parts[0] == 'many':
        for i in range(int(parts[1])):
            mwt.incr('many.%d' % i)
        body = str(os.getpid())
    elif parts[0] == 'accessors':
        out = {'pid': os.getpid()}
        for name in ('process_metrics', 'request_metrics', 'server_metrics'):
            f = getattr(mod_wsgi, name, None)
            try:
                v = f() if f else None
                out[name] = v if isinstance(v, (dict, type(None))) else repr(v)
            except Exception as e:
                out[name] = 'error: %r' % (e,)
        body = json.dumps(out, default=repr)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]
"#;

/// A ServerRoot with the application and a copy of the package (the
/// ServerRoot is world-readable for the children's user).
fn root_with_app() -> ServerRoot {
    let root = ServerRoot::new();
    std::fs::write(root.path("metrics.wsgi"), METRICS_APP).unwrap();
    let pkg = root.path("pylib/mod_wsgi_telemetry");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::copy(
        workspace_root().join("python/mod_wsgi_telemetry/__init__.py"),
        pkg.join("__init__.py"),
    )
    .unwrap();
    root
}

/// Two aliases of the application, one sub-interpreter each (`one`,
/// `two`), in process group `group` (None: embedded mode).
fn aliases(root: &ServerRoot, group: Option<&str>) -> String {
    let app = root.path("metrics.wsgi");
    let pg = group
        .map(|g| format!(" process-group={g}"))
        .unwrap_or_default();
    format!(
        "WSGIScriptAlias /one {app}{pg} application-group=one\n\
         WSGIScriptAlias /two {app}{pg} application-group=two\n",
        app = app.display()
    )
}

/// One daemon process (group `g`) serving the application at `/d`, and
/// the two embedded aliases.
fn daemon_and_embedded(root: &ServerRoot) -> String {
    format!(
        "WSGIDaemonProcess g processes=1 threads=2\n\
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}\n{aliases}",
        app = root.path("metrics.wsgi").display(),
        aliases = aliases(root, None),
    )
}

/// The newest value of each (pid, name), and each pid's newest dropped
/// count (datagrams arrive in each process's send order).
struct Latest {
    values: BTreeMap<(u32, String), MetricValue>,
    dropped: BTreeMap<u32, u64>,
    groups: BTreeMap<u32, String>,
}

fn latest(apps: &[(u32, AppMetrics)]) -> Latest {
    let mut l = Latest {
        values: BTreeMap::new(),
        dropped: BTreeMap::new(),
        groups: BTreeMap::new(),
    };
    for (pid, a) in apps {
        l.dropped.insert(*pid, a.dropped_calls);
        l.groups.insert(*pid, a.process_group.clone());
        for m in &a.metrics {
            l.values.insert((*pid, m.name.clone()), m.value.clone());
        }
    }
    l
}

impl Latest {
    /// Sum over processes of a counter's newest total.
    fn counter(&self, name: &str) -> f64 {
        self.values
            .iter()
            .filter(|((_, n), _)| n == name)
            .map(|(_, v)| match v {
                MetricValue::Counter(c) => *c,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The distribution merged over processes: (count, sum, min, max, buckets).
    fn distribution(&self, name: &str) -> (u64, f64, f64, f64, Vec<u64>) {
        let mut out = (0, 0.0, f64::INFINITY, 0.0, vec![0u64; BUCKETS]);
        for ((_, n), v) in &self.values {
            if n != name {
                continue;
            }
            let MetricValue::Distribution(d) = v else {
                panic!("{name} is not a distribution: {v:?}")
            };
            out.0 += d.count;
            out.1 += d.sum;
            out.2 = f64::min(out.2, d.min);
            out.3 = f64::max(out.3, d.max);
            for (o, b) in out.4.iter_mut().zip(d.buckets.iter()) {
                *o += *b as u64;
            }
        }
        out
    }
}

/// What one `/burst/THREADS/CALLS` request sends.
const THREADS: usize = 3;
const CALLS: usize = 200;
/// Requests per alias, from this many client threads at once.
const REQUESTS: usize = 8;
const CLIENTS: usize = 4;

/// Runs the bursts on both aliases at once (8 requests at a time, each
/// holding its thread 0.5 s: more than one process's 4 threads, so the
/// totals are summed over several processes); returns the pids that served.
fn run_bursts(httpd: &Httpd) -> Vec<u32> {
    let mut p: Vec<u32> = bursts_on(httpd, ["one", "two"])
        .into_iter()
        .map(|(_, pid)| pid)
        .collect();
    p.sort();
    p.dedup();
    p
}

/// [`run_bursts`] on two other aliases: each (alias, pid that served it),
/// sorted, once.
fn bursts_on<'a>(httpd: &Httpd, aliases: [&'a str; 2]) -> Vec<(&'a str, u32)> {
    let path_of = |alias: &str| format!("/{alias}/burst/{THREADS}/{CALLS}");
    let served = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for alias in aliases {
            for _ in 0..CLIENTS {
                let (served, path) = (&served, path_of(alias));
                s.spawn(move || {
                    for _ in 0..REQUESTS / CLIENTS {
                        let (st, body) = httpd.get(&path);
                        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
                        let pid = String::from_utf8_lossy(&body).parse::<u32>().unwrap();
                        served.lock().unwrap().push((alias, pid));
                    }
                });
            }
        }
    });
    let mut v = served.into_inner().unwrap();
    v.sort();
    v.dedup();
    let mut pids: Vec<u32> = v.iter().map(|(_, p)| *p).collect();
    pids.sort();
    pids.dedup();
    assert!(pids.len() >= 2, "one process served every burst: {v:?}");
    v
}

/// Checks that the newest totals of the processes `of` keeps add up to
/// exactly what the bursts sent (waiting for the ticks that carry them).
fn check_totals(col: &Collector, group: &str, of: impl Fn(u32) -> bool) {
    // Per alias: REQUESTS requests, each THREADS + 1 threads of CALLS calls.
    let per_alias = (REQUESTS * (THREADS + 1) * CALLS) as f64;
    let want_hits = 2.0 * per_alias;
    let l = poll(
        "the newest app_metrics totals to add up to what was sent",
        || {
            let mut apps = col.app_metrics();
            apps.retain(|(p, _)| of(*p));
            let l = latest(&apps);
            let got = (l.counter("hits"), l.distribution("lat.{0}").0);
            if got == (want_hits, want_hits as u64) {
                Ok(l)
            } else {
                Err(format!("hits, lat count = {got:?}, want {want_hits}"))
            }
        },
    );
    assert!(l.groups.values().all(|g| g == group), "{:?}", l.groups);
    assert_eq!(l.counter("bytes"), 3.0 * want_hits);
    assert_eq!(l.counter("hits.one"), per_alias);
    assert_eq!(l.counter("hits.two"), per_alias);
    let (count, sum, min, max, buckets) = l.distribution("lat.{0}");
    let mut want_buckets = vec![0u64; BUCKETS];
    let mut want_sum = 0.0;
    for i in 0..CALLS {
        let v = ((i % 64) + 1) as f64 / 1024.0;
        want_buckets[bucket_index(v)] += count / CALLS as u64;
        want_sum += v;
    }
    assert_eq!(count, want_hits as u64);
    // Multiples of 1/1024 well below 2^43: every sum is exact.
    assert_eq!(sum, want_sum * (count / CALLS as u64) as f64);
    assert_eq!((min, max), (1.0 / 1024.0, 64.0 / 1024.0));
    assert_eq!(buckets, want_buckets);
    for ((pid, name), v) in &l.values {
        if name.starts_with("level.") {
            assert_eq!(*v, MetricValue::Gauge(5.0), "pid {pid} {name}");
        }
    }
    assert!(
        l.values.keys().any(|(_, n)| n == "level.one")
            && l.values.keys().any(|(_, n)| n == "level.two"),
        "both interpreters set their gauge"
    );
    assert!(l.dropped.values().all(|&d| d == 0), "{:?}", l.dropped);
    assert_eq!(col.decode_errors(), 0);
}

/// httpd (ticks every 0.5 s) serving the application with
/// `directives(root)`, and the collector of its datagrams.
fn serve(mpm: Mpm, directives: impl FnOnce(&ServerRoot) -> String) -> (Httpd, Collector) {
    let root = root_with_app();
    let sock = root.path("run/t.sock");
    let col = Collector::bind(&sock);
    let directives = directives(&root);
    let opts = Options::telemetry(mpm, &sock, 0.5, &directives);
    (Httpd::start_in(root, &opts), col)
}

/// Each alias's `enabled()` answer is `want`, and the package found the
/// module's functions in the process's global scope.
fn assert_enabled(httpd: &Httpd, aliases: &[&str], want: &[u8]) {
    for alias in aliases {
        assert_eq!(httpd.get(&format!("/{alias}/symbols")).1, b"global");
        assert_eq!(httpd.get(&format!("/{alias}/enabled")).1, want, "{alias}");
    }
}

fn embedded_threads_and_two_interpreters_sum_exactly(mpm: Mpm) {
    let (httpd, col) = serve(mpm, |root| {
        format!("WSGITelemetryOptions +AppMetrics\n{}", aliases(root, None))
    });
    assert_enabled(&httpd, &["one", "two"], b"1");
    let pids = run_bursts(&httpd);
    eprintln!("embedded: served by {pids:?}");
    check_totals(&col, "", |_| true);
    // Each process's kind-10 datagrams are in its own sequence, right
    // before a REQUEST datagram of the same tick.
    let s = col.samples();
    for (i, x) in s.iter().enumerate() {
        if x.header.kind != Kind::APP_METRICS {
            continue;
        }
        let next = s[i + 1..]
            .iter()
            .find(|y| y.header.pid == x.header.pid && y.header.kind != Kind::APP_METRICS);
        if let Some(n) = next {
            assert_eq!(n.header.kind, Kind::REQUEST, "pid {}", x.header.pid);
        }
    }
}

both_mpms!(embedded_threads_and_two_interpreters_sum_exactly);

#[test]
fn daemon_threads_and_two_interpreters_sum_exactly_and_extra_names_are_dropped() {
    let (httpd, col) = serve(Mpm::Event, |root| {
        format!(
            "WSGITelemetryOptions +AppMetrics\n\
             WSGIDaemonProcess g processes=2 threads=4\n\
             WSGIDaemonProcess few processes=1 threads=2\n\
             WSGIScriptAlias /few {app} process-group=few application-group=%{{GLOBAL}}\n{aliases}",
            app = root.path("metrics.wsgi").display(),
            aliases = aliases(root, Some("g")),
        )
    });
    assert_enabled(&httpd, &["one", "two"], b"1");
    let pids = run_bursts(&httpd);
    eprintln!("daemon: served by {pids:?}");

    // 300 names in a fresh process: its table holds 256.
    let (st, body) = httpd.get("/few/many/300");
    assert_eq!(st, 200);
    let few: u32 = String::from_utf8_lossy(&body).parse().unwrap();
    poll(
        "the dropped calls of the process past its name limit",
        || {
            let l = latest(&col.app_metrics());
            let names: Vec<&str> = l
                .values
                .keys()
                .filter(|(p, _)| *p == few)
                .map(|(_, n)| n.as_str())
                .collect();
            let want_names =
                names.len() == 256 && (0..256).all(|i| l.counter(&format!("many.{i}")) == 1.0);
            match l.dropped.get(&few) {
                Some(44) if want_names => Ok(()),
                d => Err(format!("dropped {d:?}, {} names", names.len())),
            }
        },
    );
    assert_eq!(latest(&col.app_metrics()).groups[&few], "few");

    check_totals(&col, "g", |p| p != few);
}

#[test]
fn off_by_default() {
    let (httpd, col) = serve(Mpm::Event, daemon_and_embedded);
    assert_enabled(&httpd, &["one", "d"], b"0");
    for alias in ["one", "d"] {
        // The calls are no-ops, never errors.
        assert_eq!(httpd.get(&format!("/{alias}/burst/2/50")).0, 200);
    }
    // The 6 requests reported, then every process ticks twice more.
    let requests = |s: &[wire::Sample]| {
        let r = of_kind(s, Kind::REQUEST);
        let done = r
            .iter()
            .map(|x| x.u64(id::REQUEST_COUNT).unwrap_or(0))
            .sum::<u64>();
        (done, r.len())
    };
    let s = col.wait_for("the 6 requests reported", |s| requests(s).0 >= 6);
    let ticks = requests(&s).1;
    let procs = started_pids(&s).len();
    col.wait_for("two more ticks of every process", |s| {
        requests(s).1 >= ticks + 2 * procs
    });
    assert!(of_kind(&col.samples(), Kind::APP_METRICS).is_empty());
    assert!(col.app_metrics().is_empty());
    assert_eq!(col.decode_errors(), 0);
}

/// What mod_wsgi's accessors answer in a daemon process (`/d`) and an
/// embedded one (`/one`) after `N` requests, with or without our module;
/// and with it, our reporter's count of the daemon's requests.
fn accessors(with_module: bool) -> (serde_json::Value, serde_json::Value) {
    const N: u64 = 20;
    let root = root_with_app();
    let sock = root.path("run/t.sock");
    let col = Collector::bind(&sock);
    let directives = format!(
        "WSGIServerMetrics On
         WSGIDaemonProcess g processes=1 threads=2
         WSGIScriptAlias /d {app} process-group=g application-group=%{{GLOBAL}}
{aliases}",
        app = root.path("metrics.wsgi").display(),
        aliases = aliases(&root, None),
    );
    let mut opts = Options::telemetry(Mpm::Event, &sock, 0.5, "WSGITelemetryOptions +AppMetrics");
    if !with_module {
        opts.load_module = false;
        opts.directives = String::new();
    }
    opts.directives += &directives;
    let httpd = Httpd::start_in(root, &opts);
    for _ in 0..N {
        assert_eq!(httpd.get("/d/burst/0/1").0, 200);
    }
    let get = |path: &str| -> serde_json::Value {
        let (st, body) = httpd.get(path);
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let (d, e) = (get("/d/accessors"), get("/one/accessors"));
    let pm = &d["process_metrics"];
    // The N requests done, and this one in progress.
    assert_eq!(pm["request_count"].as_u64(), Some(N), "{pm}");
    assert_eq!(pm["active_requests"].as_u64(), Some(1), "{pm}");
    let per_thread: u64 = pm["threads"]
        .as_array()
        .map(|t| t.iter().map(|t| t["request_count"].as_u64().unwrap()).sum())
        .unwrap_or(0);
    assert_eq!(per_thread, N + 1, "{pm}");
    assert_eq!(pm["pid"], d["pid"]);
    if with_module {
        let pid = d["pid"].as_u64().unwrap() as u32;
        col.wait_for("our count of the daemon's requests", |s| {
            of_kind(s, Kind::REQUEST)
                .iter()
                .filter(|x| x.header.pid == pid)
                .map(|x| x.u64(id::REQUEST_COUNT).unwrap_or(0))
                .sum::<u64>()
                == N + 1
        });
    }
    (d, e)
}

/// The keys of each accessor's answer, and whether it answered at all.
fn shape(v: &serde_json::Value) -> Vec<(String, String)> {
    ["process_metrics", "request_metrics", "server_metrics"]
        .iter()
        .map(|k| {
            let keys = match &v[*k] {
                serde_json::Value::Object(o) => o.keys().cloned().collect::<Vec<_>>().join(","),
                other => other.to_string(),
            };
            (k.to_string(), keys)
        })
        .collect()
}

#[test]
fn mod_wsgi_accessors_keep_answering() {
    let (d_ours, e_ours) = accessors(true);
    let (d_alone, e_alone) = accessors(false);
    eprintln!("with our module: {d_ours:#}\n{e_ours:#}");
    eprintln!("without: {d_alone:#}\n{e_alone:#}");
    // The same answers, field for field, as without our module.
    assert_eq!(shape(&d_ours), shape(&d_alone));
    assert_eq!(shape(&e_ours), shape(&e_alone));
    assert!(e_ours["process_metrics"].is_object());
    assert!(e_ours["server_metrics"].is_object(), "{e_ours}");
}

/// The values one `/burst` request's threads record, each `REQUESTS *
/// (THREADS + 1)` times per alias.
fn burst_values() -> Vec<f64> {
    (0..CALLS).map(|i| ((i % 64) + 1) as f64 / 1024.0).collect()
}

/// What `/api/stats` must say about the bursts on two aliases (`one`,
/// `two`) served by `served` (alias, pid): every figure exact.
fn expected_stats(served: &[(&str, u32)]) -> BTreeMap<String, f64> {
    let per_alias = (REQUESTS * (THREADS + 1) * CALLS) as f64;
    let repeat = (2 * REQUESTS * (THREADS + 1)) as u64;
    let mut m = BTreeMap::new();
    m.insert("hits".to_string(), 2.0 * per_alias);
    m.insert("bytes".to_string(), 6.0 * per_alias);
    for tag in ["one", "two"] {
        m.insert(format!("hits.{tag}"), per_alias);
        let procs = served.iter().filter(|(a, _)| a.ends_with(tag)).count();
        m.insert(format!("level.{tag}"), 5.0 * procs as f64);
    }
    let mut pids: Vec<u32> = served.iter().map(|(_, p)| *p).collect();
    pids.sort();
    pids.dedup();
    m.insert("pid".into(), pids.iter().map(|&p| f64::from(p)).sum());
    // The distribution, from the values themselves.
    let values = burst_values();
    let mut counts = vec![0i64; BUCKETS];
    for &v in &values {
        counts[bucket_index(v)] += repeat as i64;
    }
    let (min, max) = (1.0 / 1024.0, 64.0 / 1024.0);
    m.insert("lat.count".into(), (values.len() as u64 * repeat) as f64);
    // Multiples of 1/1024 far below 2^43: the sums are exact.
    m.insert("lat.sum".into(), values.iter().sum::<f64>() * repeat as f64);
    m.insert("lat.min".into(), min);
    m.insert("lat.max".into(), max);
    for (stat, q) in [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)] {
        let p = quantile_seconds(&counts, q).unwrap().clamp(min, max);
        // Exact to the bucket: the value of that rank among every value
        // recorded lies in the same bucket.
        let mut all: Vec<f64> = values.clone();
        all.sort_by(f64::total_cmp);
        let rank = ((q * all.len() as f64).ceil() as usize).clamp(1, all.len());
        assert_eq!(
            bucket_index(p),
            bucket_index(all[rank - 1]),
            "{stat} {p} vs the value of rank {rank}"
        );
        m.insert(format!("lat.{stat}"), p);
    }
    m
}

/// `/api/stats` (with `query`) of the ingester, as a map.
fn api_stats(ing: &Serve, query: &str) -> BTreeMap<String, f64> {
    let (st, body) = ing.get(&format!("/api/stats{query}"));
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// Equal names, and values equal to 1e-12 (the JSON's decimal round trip).
fn assert_stats_eq(got: &BTreeMap<String, f64>, want: &BTreeMap<String, f64>, what: &str) {
    let names = |m: &BTreeMap<String, f64>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}");
    for (k, w) in want {
        let g = got[k];
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1.0),
            "{what}: {k} = {g}, want {w}"
        );
    }
}

/// End to end: httpd (embedded children and two daemon processes, two
/// interpreters in each mode) → our module → a real `serve` → `/api/stats`,
/// `/api/stats/detail`, `/metrics` and a real Prometheus scraping it. Every
/// figure exact: counters summed over processes and threads, gauges one
/// level per process and summed, the distribution's percentiles those of
/// the values recorded (exact to the bucket), the calls of a process past
/// its 256 names counted as dropped.
#[test]
fn end_to_end_through_serve_and_prometheus() {
    let root = root_with_app();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let prom = Prometheus::start(&[ing.port]);
    let app = root.path("metrics.wsgi");
    let directives = format!(
        "WSGITelemetryOptions +AppMetrics\n\
         WSGIDaemonProcess g processes=2 threads=4\n\
         WSGIDaemonProcess few processes=1 threads=2\n\
         WSGIScriptAlias /gone {app} process-group=g application-group=one\n\
         WSGIScriptAlias /gtwo {app} process-group=g application-group=two\n\
         WSGIScriptAlias /few {app} process-group=few application-group=%{{GLOBAL}}\n{aliases}",
        app = app.display(),
        aliases = aliases(&root, None),
    );
    let opts = Options::telemetry(Mpm::Event, &sock, 0.5, &directives);
    let httpd = Httpd::start_in(root, &opts);

    // One after the other: a daemon request holds an Apache worker too.
    let embedded = bursts_on(&httpd, ["one", "two"]);
    let daemon = bursts_on(&httpd, ["gone", "gtwo"]);
    eprintln!("embedded: {embedded:?}\ndaemon: {daemon:?}");
    let (st, body) = httpd.get("/few/many/300");
    assert_eq!(st, 200);
    let few: u32 = String::from_utf8_lossy(&body).parse().unwrap();

    let want_e = expected_stats(&embedded);
    let want_g = expected_stats(&daemon);
    let want_few: BTreeMap<String, f64> = (0..256).map(|i| (format!("many.{i}"), 1.0)).collect();
    // Both modes: counters and gauges add, the distribution's buckets add.
    let both: Vec<(&str, u32)> = embedded.iter().chain(&daemon).copied().collect();
    let mut want_all = expected_stats(&both);
    for k in [
        "hits",
        "bytes",
        "hits.one",
        "hits.two",
        "lat.count",
        "lat.sum",
    ] {
        want_all.insert(k.into(), 2.0 * want_e[k]);
    }
    want_all.extend(want_few.clone());

    // Wait for the last tick of every process to arrive.
    poll("serve's sums to reach what the application sent", || {
        let got = api_stats(&ing, "");
        if got.get("lat.count") == want_all.get("lat.count")
            && got.get("hits") == want_all.get("hits")
            && got.get("pid") == want_all.get("pid")
            && got.keys().filter(|k| k.starts_with("many.")).count() == 256
        {
            Ok(())
        } else {
            Err(format!(
                "hits {:?} lat.count {:?} pid {:?}, want {} {} {}",
                got.get("hits"),
                got.get("lat.count"),
                got.get("pid"),
                want_all["hits"],
                want_all["lat.count"],
                want_all["pid"]
            ))
        }
    });
    assert_stats_eq(&api_stats(&ing, ""), &want_all, "all");
    assert_stats_eq(&api_stats(&ing, "?group="), &want_e, "embedded");
    assert_stats_eq(&api_stats(&ing, "?group=g"), &want_g, "daemon group g");
    assert_stats_eq(&api_stats(&ing, "?group=few"), &want_few, "group few");

    // The detail: the groups, how many processes hold each gauge, and the
    // 44 calls past the 256 names of `few`'s process.
    let (st, detail) = ing.get("/api/stats/detail");
    assert_eq!(st, 200, "{detail}");
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let groups: Vec<(String, String)> = detail["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let s = |k: &str| g[k].as_str().unwrap().to_string();
            (s("host"), s("process_group"))
        })
        .collect();
    let host = groups[0].0.clone();
    let group_names: Vec<&str> = groups.iter().map(|(_, g)| g.as_str()).collect();
    assert_eq!(group_names, ["", "few", "g"], "{groups:?}");
    assert!(groups.iter().all(|(h, _)| *h == host), "{groups:?}");
    let metric = |name: &str| {
        detail["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {detail}"))
            .clone()
    };
    let distinct = |v: &[(&str, u32)]| {
        let mut p: Vec<u32> = v.iter().map(|(_, p)| *p).collect();
        p.sort();
        p.dedup();
        p.len()
    };
    assert_eq!(
        metric("pid")["processes"],
        distinct(&embedded) + distinct(&daemon)
    );
    assert_eq!(metric("pid")["type"], "gauge");
    assert_eq!(metric("hits")["type"], "counter");
    assert_eq!(metric("lat.{0}")["type"], "distribution");
    assert_eq!(metric("lat.{0}")["count"], want_all["lat.count"] as u64);
    assert!(!both.iter().any(|(_, p)| *p == few));
    assert_eq!(
        detail["dropped"],
        serde_json::json!({"series": 0, "processes": 0, "type_conflicts": 0, "calls": 44})
    );

    // /metrics: the same sums per (host, group), as exact text.
    let (st, metrics) = ing.get("/metrics");
    assert_eq!(st, 200);
    let line = |family: &str, group: &str, name: &str| {
        let head =
            format!("{family}{{host=\"{host}\",process_group=\"{group}\",name=\"{name}\"}} ");
        metrics
            .lines()
            .find(|l| l.starts_with(&head))
            .unwrap_or_else(|| panic!("no {head} in\n{metrics}"))
            .to_string()
    };
    for (group, want) in [("", &want_e), ("g", &want_g)] {
        let head = |family: &str, name: &str| {
            format!("{family}{{host=\"{host}\",process_group=\"{group}\",name=\"{name}\"}}")
        };
        assert_eq!(
            line("mod_wsgi_app_counter_total", group, "hits"),
            format!(
                "{} {:?}",
                head("mod_wsgi_app_counter_total", "hits"),
                want["hits"]
            )
        );
        assert_eq!(
            line("mod_wsgi_app_gauge", group, "pid"),
            format!("{} {:?}", head("mod_wsgi_app_gauge", "pid"), want["pid"])
        );
        assert_eq!(
            line("mod_wsgi_app_distribution_seconds_count", group, "lat.{0}"),
            format!(
                "{} {}",
                head("mod_wsgi_app_distribution_seconds_count", "lat.{0}"),
                want["lat.count"]
            )
        );
        assert_eq!(
            line("mod_wsgi_app_distribution_seconds_sum", group, "lat.{0}"),
            format!(
                "{} {:?}",
                head("mod_wsgi_app_distribution_seconds_sum", "lat.{0}"),
                want["lat.sum"]
            )
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l == "mod_wsgi_app_metrics_dropped_total{reason=\"calls\"} 44"),
        "{metrics}"
    );

    // Prometheus scraping serve: the sums across groups, and the median
    // from the merged buckets in the bucket of the values' median.
    prom.wait_for(
        "the hits of both modes",
        "sum(mod_wsgi_app_counter_total{name=\"hits\"})",
        |v| v == want_all["hits"],
    );
    prom.wait_for(
        "each process's pid, summed",
        "sum(mod_wsgi_app_gauge{name=\"pid\"})",
        |v| v == want_all["pid"],
    );
    let p50 = prom
        .scalar(
            "histogram_quantile(0.5, sum by (le) \
             (mod_wsgi_app_distribution_seconds_bucket{name=\"lat.{0}\"}))",
        )
        .unwrap();
    assert_eq!(
        bucket_index(p50),
        bucket_index(want_all["lat.p50"]),
        "Prometheus's p50 {p50}, ours {}",
        want_all["lat.p50"]
    );
    assert_eq!(prom.scalar("min(up{job=\"mod_wsgi\"})"), Some(1.0));
    assert_eq!(ing.get("/api/stats?x=1").0, 400);
    drop(httpd);
}

/// A graceful restart replaces both daemon processes: in `serve`, their
/// counters stay in the sums (never go down) and their gauges leave at
/// once (their PROCESS_STOPPED); the new processes' figures add to them.
#[test]
fn graceful_restart_keeps_counters_and_drops_the_old_gauges() {
    let root = root_with_app();
    let sock = root.path("run/telemetry.sock");
    let ing = Serve::at_socket(ingester_bin(), &sock, &["--socket-mode", "0666"]);
    let directives = format!(
        "WSGITelemetryOptions +AppMetrics\n\
         WSGIDaemonProcess g processes=2 threads=4\n\
         WSGIScriptAlias /ga {app} process-group=g application-group=%{{GLOBAL}}\n\
         WSGIScriptAlias /gb {app} process-group=g application-group=%{{GLOBAL}}\n",
        app = root.path("metrics.wsgi").display(),
    );
    let opts = Options::telemetry(Mpm::Event, &sock, 0.5, &directives);
    let httpd = Httpd::start_in(root, &opts);
    let per_round = (2 * REQUESTS * (THREADS + 1) * CALLS) as f64;
    let pid_sum = |served: &[(&str, u32)]| {
        let mut p: Vec<u32> = served.iter().map(|(_, p)| *p).collect();
        p.sort();
        p.dedup();
        p.iter().map(|&p| f64::from(p)).sum::<f64>()
    };
    let wait = |what: &str, hits: f64, pid: Option<f64>| {
        poll(what, || {
            let got = api_stats(&ing, "?group=g");
            let now = (got.get("hits").copied(), got.get("pid").copied());
            if now == (Some(hits), pid) {
                Ok(got)
            } else {
                Err(format!("hits, pid = {now:?}, want {hits}, {pid:?}"))
            }
        })
    };
    let old = bursts_on(&httpd, ["ga", "gb"]);
    let got = wait("the first round", per_round, Some(pid_sum(&old)));
    assert_eq!(got["lat.count"], per_round);

    httpd.graceful();
    // The old processes stopped: no live process holds the gauge, the
    // counter and the distribution keep what they counted.
    let got = wait("the old daemons' stop", per_round, None);
    assert_eq!(got["lat.count"], per_round);

    let new = bursts_on(&httpd, ["ga", "gb"]);
    assert!(
        new.iter().all(|(_, p)| old.iter().all(|(_, q)| p != q)),
        "{old:?} {new:?}"
    );
    let got = wait("the second round", 2.0 * per_round, Some(pid_sum(&new)));
    assert_eq!(got["lat.count"], 2.0 * per_round);
    assert_eq!(got["bytes"], 6.0 * per_round);
}
