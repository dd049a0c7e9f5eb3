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
use integration_tests::wire::histogram::{bucket_index, BUCKETS};
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
    let path_of = |alias: &str| format!("/{alias}/burst/{THREADS}/{CALLS}");
    let pids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for alias in ["one", "two"] {
            for _ in 0..CLIENTS {
                let (pids, path) = (&pids, path_of(alias));
                s.spawn(move || {
                    for _ in 0..REQUESTS / CLIENTS {
                        let (st, body) = httpd.get(&path);
                        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
                        let pid = String::from_utf8_lossy(&body).parse::<u32>().unwrap();
                        pids.lock().unwrap().push(pid);
                    }
                });
            }
        }
    });
    let mut p = pids.into_inner().unwrap();
    p.sort();
    p.dedup();
    assert!(p.len() >= 2, "one process served every burst: {p:?}");
    p
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
