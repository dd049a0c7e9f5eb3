//! The harness runs httpd where its backend says (`tests/src/backend.rs`):
//! in the bookworm image's container (the default with a Docker engine) its
//! parent, children and `apache2 -t` run on the image's files, in the
//! container's mount namespace, with the module under test loaded from the
//! workspace; with `MWT_HTTPD=host`, the host's. A child that crashes
//! leaves a core whose backtrace gdb reads with the files that httpd ran
//! (the image's, not the host's, whose httpd may be another version), and
//! fails the test.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use integration_tests::backend::{backend, Backend, Choice};
use integration_tests::*;

/// The mount namespace `pid` lives in (`/proc/PID/ns/mnt`'s inode).
fn mount_ns(pid: impl std::fmt::Display) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/ns/mnt: {e}"))
        .ino()
}

/// `Apache/2.4.x` from a text (`apache2 -v`, the start-up notice).
fn apache_version(text: &str) -> Option<&str> {
    text.split_whitespace().find(|w| w.starts_with("Apache/"))
}

#[test]
fn httpd_runs_where_the_backend_says() {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let opts = Options::telemetry(Mpm::Event, &col.path, 0.5, "");
    let mut httpd = Httpd::start_in(root, &opts);
    assert_eq!(httpd.get("/app/hello").0, 200);
    let mut pids = vec![httpd.pid() as u32];
    pids.extend(httpd.children());
    assert!(pids.len() > 1, "no children: {pids:?}");
    let want = match backend() {
        Backend::Host => mount_ns("self"),
        Backend::Container(s) => {
            assert_ne!(mount_ns(s.watcher), mount_ns("self"));
            mount_ns(s.watcher)
        }
    };
    for &p in &pids {
        assert_eq!(mount_ns(p), want, "pid {p} runs outside the backend");
    }
    // The module under test, from the workspace, in a child of the backend.
    let so = module_so().display().to_string();
    let child = pids[1];
    let maps = read_lossy(Path::new(&format!("/proc/{child}/maps")));
    assert!(maps.contains(&so), "child {child} has not mapped {so}");
    // Its datagrams reach the test's socket, from the pids the test sees.
    col.wait_for("a STARTED from a child", |s| {
        started_pids(s).iter().any(|p| pids.contains(p))
    });
    // The httpd that ran is the one `apache2 -v` of the backend names.
    let v = backend()
        .apache2(["-v"], std::iter::empty())
        .output()
        .expect("apache2 -v");
    let v = String::from_utf8_lossy(&v.stdout).into_owned();
    httpd.stop();
    let log = httpd.error_log();
    assert!(apache_version(&v).is_some(), "{v}");
    assert_eq!(
        apache_version(&log),
        apache_version(&v),
        "start-up line vs `apache2 -v`"
    );
}

#[test]
fn config_test_runs_the_backends_httpd() {
    // A file only the host has: the container has a /dev/shm of its own.
    let marker = tempfile::Builder::new()
        .prefix("mwt-host-only-")
        .tempfile_in("/dev/shm")
        .expect("a file in /dev/shm");
    let opts = Options {
        mpm: Mpm::Event,
        load_module: true,
        directives: format!(
            "<IfFile {}>\n  Error \"read on the host\"\n</IfFile>\nWSGISlowRequests 1\n",
            marker.path().display()
        ),
        wsgi_module: None,
        env: Vec::new(),
    };
    let (ok, out) = config_test(&opts);
    match backend().choice() {
        Choice::Host => assert!(!ok && out.contains("read on the host"), "{out}"),
        Choice::Container => assert!(ok, "{out}"),
    }
}

#[test]
fn a_crashed_childs_core_is_read_with_the_backends_files() {
    let opts = Options {
        mpm: Mpm::Prefork,
        load_module: false,
        directives: String::new(),
        wsgi_module: None,
        env: Vec::new(),
    };
    let httpd = Httpd::start(&opts);
    assert_eq!(httpd.get("/app/hello").0, 200);
    let child = *httpd.children().first().expect("a child");
    signal(child, libc::SIGSEGV);
    // The parent logs the child's end once the core is written.
    let t0 = Instant::now();
    while crashed_children(&httpd.error_log()).is_empty() {
        assert!(t0.elapsed() < PATIENCE, "{}", httpd.error_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let bts = httpd.core_backtraces();
    assert_eq!(bts.len(), 1, "one core in run/");
    // httpd's own exported function, resolved in its own binary.
    assert!(bts[0].contains(" ap_run_mpm "), "{}", bts[0]);
    // The crash fails the test that saw it (Drop).
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(httpd)));
    let msg = dropped.expect_err("a crashed child fails the test");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("httpd children crashed"), "{msg}");
}
