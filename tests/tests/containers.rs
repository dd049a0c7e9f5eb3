//! Each Debian release's own httpd and mod_wsgi, in containers, with our
//! packages installed the way a user would install them: the release's
//! `.deb`s (scripts/containers/build-debs.sh, built in that release's
//! builder image) go in with `apt-get install ./…deb`, then `a2enmod
//! wsgi_telemetry` and `apache2ctl graceful` in the running httpd
//! container. The ingester runs in a container of its own, from its
//! package, started by its systemd unit's own settings
//! (scripts/containers/run-unit.sh: user `mod-wsgi-telemetry`, group
//! `www-data`, socket mode 0660 in `/run/mod_wsgi-telemetry`); the two
//! share only that directory, a docker volume. Apache's children run as
//! www-data and the ingester as its own user: the socket's group is what
//! lets them send. Requests go through httpd's port published on
//! 127.0.0.1, `/api/state` through the ingester's.
//!
//! Every scenario runs on bookworm (mod_wsgi 4.9, Python 3.11); those
//! that depend on mod_wsgi also on bullseye (4.7, 3.9) and trixie (5.0,
//! 3.13); mod_wsgi 4.6.8, 5.0.0 and 6.1.1 from PyPI each run what shows
//! what the module does beside them (the `matrix!` lines at the end).
//! Every test removes the containers and the volume it created, by id,
//! failed or not; images and packages are kept for the next run.
//!
//! On wherever a Docker engine answers; `MWT_CONTAINERS=0` opts out (see
//! `integration_tests::containers`).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use integration_tests::containers::{self, Container};
use integration_tests::*;
use serde_json::Value;

/// A release's images and packages, built once per test process.
struct Prepared {
    images: containers::Images,
    /// target/containers/<release>/debian, mounted at /debs.
    deb_dir: PathBuf,
    ingester_deb: String,
    module_deb: String,
}

fn prepared(release: &'static str) -> &'static Prepared {
    // Held while building: tests of one release wait for its packages,
    // and two releases never compile at once on a shared machine.
    static DONE: Mutex<BTreeMap<&'static str, &'static Prepared>> = Mutex::new(BTreeMap::new());
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = done.get(release) {
        return p;
    }
    let images = containers::images(release);
    let t0 = Instant::now();
    let out = Command::new(workspace_root().join("scripts/containers/build-debs.sh"))
        .arg(release)
        .arg(&images.builder)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/containers/build-debs.sh");
    assert!(out.status.success(), "build-debs.sh {release} failed");
    let debs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    eprint_now(&format!(
        "containers::{release}: packages built in {:.0} s: {debs:?}",
        t0.elapsed().as_secs_f64()
    ));
    let name = |prefix: &str| {
        debs.iter()
            .filter_map(|d| d.file_name()?.to_str())
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}*.deb among {debs:?}"))
            .to_string()
    };
    let p: &'static Prepared = Box::leak(Box::new(Prepared {
        deb_dir: debs[0].parent().expect("deb directory").to_path_buf(),
        ingester_deb: name("mod-wsgi-telemetry_"),
        module_deb: name("libapache2-mod-wsgi-telemetry_"),
        images,
    }));
    done.insert(release, p);
    p
}

/// A point of the matrix: a Debian release with its own mod_wsgi, or with
/// a mod_wsgi release from PyPI built against its httpd and Python.
#[derive(Clone, Copy, Debug)]
struct Point {
    release: &'static str,
    /// The PyPI mod_wsgi version, if not the release's own.
    pypi: Option<&'static str>,
}

impl std::fmt::Display for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pypi {
            None => write!(f, "{}", self.release),
            Some(v) => write!(f, "{}+mod_wsgi-{v}", self.release),
        }
    }
}

impl Point {
    /// The image httpd runs from.
    fn httpd_image(self, p: &Prepared) -> &str {
        match self.pypi {
            None => &p.images.httpd,
            Some(v) => p.images.pypi(v),
        }
    }
}

/// On the terminal even when the test passes (the harness captures
/// `eprintln!` of passing tests).
fn eprint_now(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A docker volume this test created, removed by name when dropped.
struct Volume(String);

impl Volume {
    /// Named `mwt-test-<pid>-<n>`: a short name keeps the socket's path on
    /// the host (/var/lib/docker/volumes/<name>/_data/telemetry.sock)
    /// within the 107 bytes a UNIX socket address holds, so the test can
    /// probe the ingester's queue; an anonymous volume's 64-digit name
    /// would not.
    fn create() -> Volume {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mwt-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        docker(&[
            "volume",
            "create",
            "--label",
            "org.mod-wsgi-telemetry.role=test",
            &name,
        ])
        .expect("docker volume create");
        Volume(name)
    }

    /// Where the volume's files are on this host.
    fn host_path(&self) -> PathBuf {
        let p = docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &self.0])
            .expect("docker volume inspect");
        PathBuf::from(p.trim())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = docker(&["volume", "rm", "-f", &self.0]);
    }
}

/// net.unix.max_dgram_qlen from the sysctl.d file the ingester's package
/// ships: applied to the ingester container's network namespace, as
/// systemd-sysctl would at boot.
fn packaged_dgram_qlen() -> String {
    let f = std::fs::read_to_string(
        workspace_root().join("conf-examples/sysctl.d/60-mod_wsgi-telemetry.conf"),
    )
    .expect("the packaged sysctl.d file");
    f.lines()
        .find_map(|l| l.strip_prefix("net.unix.max_dgram_qlen"))
        .and_then(|v| v.trim().strip_prefix('='))
        .map(|v| v.trim().to_string())
        .expect("net.unix.max_dgram_qlen in the sysctl.d file")
}

/// What a test adds to Apache's configuration (conf-available/mwt-test.conf,
/// enabled with a2enconf) besides the package's own mods-available files.
/// The application runs in the main interpreter, as production setups
/// usually do: with Debian 12's mod_wsgi 4.9.4 and Python 3.11, a child
/// that served a request in a sub-interpreter hangs for ever in
/// `Py_EndInterpreter` (waiting in `threading`'s shutdown for a thread
/// that is gone) on a graceful stop, with or without our module, and
/// httpd's parent waits for it (seen with `docker stop`: SIGKILL after the
/// timeout).
/// Enables what [`Stack::launch`] installed, as an administrator would.
const ENABLE: &str = "ln -s /srv/app/mwt-test.conf /etc/apache2/conf-available/ \
     && a2enconf -q mwt-test && a2enmod -q wsgi_telemetry && apache2ctl graceful";

/// Why the module turns off what relies on an untested mod_wsgi's internals.
const NOT_TESTED: &str = "not tested with this mod_wsgi version";

const APP_CONF: &str = "\
WSGIScriptAlias /app /srv/app/app.wsgi
WSGIApplicationGroup %{GLOBAL}
<Directory /srv/app>
    Require all granted
</Directory>
LogLevel info
";

/// The ingester's and httpd's containers of one test, sharing a volume.
struct Stack {
    at: Point,
    ingester: Container,
    httpd: Container,
    /// httpd's port on 127.0.0.1.
    port: u16,
    /// The ingester's UI/API port on 127.0.0.1.
    ui_port: u16,
    _app: tempfile::TempDir,
    volume: Volume,
}

impl Stack {
    /// Ingester from its package, then httpd with its release's mod_wsgi,
    /// then our module's package installed into the running httpd and
    /// enabled with `conf` added; returns once the new children report.
    fn start(at: Point, mpm: Mpm, conf: &str) -> Stack {
        Stack::start_with_qlen(at, mpm, conf, &packaged_dgram_qlen())
    }

    /// [`Stack::start`] with another `net.unix.max_dgram_qlen` for the
    /// ingester's socket.
    fn start_with_qlen(at: Point, mpm: Mpm, conf: &str, qlen: &str) -> Stack {
        let stack = Stack::launch(at, mpm, conf, qlen);
        stack.sh(ENABLE);
        stack.wait_for("the children's process_started", |s| {
            assert!(stack.httpd.running(), "{at}: httpd's container exited");
            !s["processes"].as_array().is_none_or(Vec::is_empty)
        });
        stack.check_capability_line();
        stack
    }

    /// The ingester running from its package, httpd with the point's
    /// mod_wsgi, our module's package installed (not enabled) and `conf`
    /// in conf-available/mwt-test.conf.
    fn launch(at: Point, mpm: Mpm, conf: &str, qlen: &str) -> Stack {
        let release = at.release;
        let p = prepared(release);
        let volume = Volume::create();
        let app = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(app.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(app.path().join("app.wsgi"), APP).unwrap();
        std::fs::write(
            app.path().join("mwt-test.conf"),
            format!("{APP_CONF}{conf}"),
        )
        .unwrap();
        let debs = format!("{}:/debs:ro", p.deb_dir.display());
        let run_dir = format!("{}:/run/mod_wsgi-telemetry", volume.0);

        let ui_port = free_port();
        // As an administrator would: install, let the UI listen on the
        // container's interfaces (published on the host's loopback only),
        // start the service.
        let start_ingester = format!(
            "apt-get install -y /debs/{deb} >&2 \
             && sed -i 's/--http-host 127.0.0.1/--http-host 0.0.0.0/' /etc/default/mod_wsgi-telemetry \
             && exec run-unit /usr/lib/systemd/system/mod_wsgi-telemetry.service",
            deb = p.ingester_deb
        );
        let ingester = Container::run(
            &[
                "--sysctl",
                &format!("net.unix.max_dgram_qlen={qlen}"),
                "-p",
                &format!("127.0.0.1:{ui_port}:8888"),
                "-v",
                &run_dir,
                "-v",
                &debs,
                "-v",
                &format!(
                    "{}:/usr/local/sbin/run-unit:ro",
                    workspace_root()
                        .join("scripts/containers/run-unit.sh")
                        .display()
                ),
            ],
            &p.images.base,
            &["sh", "-c", &start_ingester],
        );
        wait_until(&format!("{at}: the ingester's /api/state"), || {
            assert!(ingester.running(), "{at}: the ingester's container exited");
            http_get(ui_port, "/api/state", "").is_some_and(|r| r.0 == 200)
        });

        let port = free_port();
        // prefork is chosen before httpd starts: an MPM cannot change on a
        // graceful restart.
        let prefork = "a2dismod -q mpm_event && a2enmod -q mpm_prefork \
             && . /etc/apache2/envvars && mkdir -p \"$APACHE_RUN_DIR\" \"$APACHE_LOCK_DIR\" \
             && exec apache2 -D FOREGROUND";
        let cmd: &[&str] = match mpm {
            Mpm::Event => &[],
            Mpm::Prefork => &["sh", "-c", prefork],
        };
        let httpd = Container::run(
            &[
                "-p",
                &format!("127.0.0.1:{port}:80"),
                "-v",
                &run_dir,
                "-v",
                &debs,
                "-v",
                &format!("{}:/srv/app:ro", app.path().display()),
            ],
            at.httpd_image(p),
            cmd,
        );
        wait_until(&format!("{at}: httpd answers"), || {
            assert!(httpd.running(), "{at}: httpd's container exited");
            http_get(port, "/", "").is_some_and(|r| r.0 == 200)
        });
        let stack = Stack {
            at,
            ingester,
            httpd,
            port,
            ui_port,
            _app: app,
            volume,
        };
        stack.sh(&format!("apt-get install -y /debs/{} >&2", p.module_deb));
        stack
    }

    /// The start-up line of the Apache parent (once per start: here the
    /// graceful restart that loaded the module), at `notice` level, for
    /// this mod_wsgi: everything used for a tested version; for another
    /// one, what needs no mod_wsgi internals, and one `warn` line.
    fn check_capability_line(&self) {
        let version = self.mod_wsgi_version();
        let tested = ["4.7.", "4.9.", "5.0."]
            .iter()
            .any(|s| version.starts_with(s));
        let want = if tested {
            format!(
                "mod_wsgi_telemetry: mod_wsgi {version} (tested): embedded accounting yes \
                 (mod_wsgi's own calls); daemon accounting yes (request hooks in mod_wsgi's GOT); \
                 GC attach yes (main interpreter, no configuration; WSGIImportScript for the rest); \
                 lifecycle reasons yes (mod_wsgi's publish call)."
            )
        } else {
            format!(
                "mod_wsgi_telemetry: mod_wsgi {version} (untested): embedded accounting yes \
                 (httpd filters: {NOT_TESTED}); daemon accounting no ({NOT_TESTED}); GC attach only \
                 with WSGIImportScript in Apache's children ({NOT_TESTED}); lifecycle reasons no \
                 ({NOT_TESTED})."
            )
        };
        let mut lines = Vec::new();
        wait_until(&format!("{}: the module's start-up line", self.at), || {
            lines = self
                .error_log()
                .lines()
                .filter(|l| {
                    l.contains("mod_wsgi_telemetry: mod_wsgi ")
                        && !l.contains("is not a tested version")
                })
                .map(str::to_string)
                .collect();
            !lines.is_empty()
        });
        assert_eq!(
            lines.len(),
            1,
            "{}: one line per start: {lines:#?}",
            self.at
        );
        assert!(
            lines[0].contains("[wsgi_telemetry:notice]") && lines[0].ends_with(&want),
            "{}: {}\nwanted [wsgi_telemetry:notice] …{want}",
            self.at,
            lines[0]
        );
        let warnings: Vec<String> = self
            .error_log()
            .lines()
            .filter(|l| l.contains("[wsgi_telemetry:warn]"))
            .map(str::to_string)
            .collect();
        if tested {
            assert!(warnings.is_empty(), "{}: {warnings:#?}", self.at);
        } else {
            assert_eq!(warnings.len(), 1, "{}: one warning: {warnings:#?}", self.at);
            assert!(
                warnings[0].contains(&format!(
                    "mod_wsgi {version} is not a tested version (tested: 4.7.x, 4.9.x, 5.0.x)"
                )),
                "{}: {}",
                self.at,
                warnings[0]
            );
        }
    }

    /// The mod_wsgi Apache runs: the PyPI version, or the upstream part of
    /// the release's package version ("4.9.4-1" -> "4.9.4").
    fn mod_wsgi_version(&self) -> String {
        match self.at.pypi {
            Some(v) => v.to_string(),
            None => self.shipped_mod_wsgi(),
        }
    }

    /// `sh -c <script>` in the httpd container; its stdout.
    fn sh(&self, script: &str) -> String {
        self.httpd.exec(&["sh", "-c", script])
    }

    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        http_request(self.port, "GET", path, b"", "containers")
    }

    fn try_state(&self) -> Option<Value> {
        let (status, _, body) = http_get(self.ui_port, "/api/state", "")?;
        (status == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let mut last = None;
        wait_until(&format!("{}: {what}", self.at), || {
            last = self.try_state();
            last.as_ref().is_some_and(&cond)
        });
        last.unwrap()
    }

    /// Debian's /var/log/apache2/error.log (`docker cp`: also once the
    /// container has stopped).
    fn error_log(&self) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("error.log");
        let copied = docker(&[
            "cp",
            &format!("{}:/var/log/apache2/error.log", self.httpd.id),
            &file.display().to_string(),
        ]);
        assert!(copied.is_some(), "docker cp of Apache's error.log");
        std::fs::read_to_string(&file).expect("Apache's error.log")
    }

    /// The mod_wsgi version the release's package ships, upstream part
    /// ("4.9.4-1" -> "4.9.4").
    fn shipped_mod_wsgi(&self) -> String {
        let v = self.httpd.exec(&[
            "dpkg-query",
            "-W",
            "-f",
            "${Version}",
            "libapache2-mod-wsgi-py3",
        ]);
        v.trim().split('-').next().unwrap().to_string()
    }

    /// Graceful stop (SIGWINCH to httpd, pid 1), then every process's
    /// STOPPED: the final state.
    fn stop_httpd(&self) -> Value {
        self.httpd.stop(30);
        let exit = docker(&["inspect", "-f", "{{.State.ExitCode}}", &self.httpd.id]);
        assert_eq!(
            exit.as_deref().map(str::trim),
            Some("0"),
            "{}: httpd stopped gracefully within 30 s (137: killed)",
            self.at
        );
        self.wait_for("every process's process_stopped", |s| {
            let started = s["processes"].as_array().map_or(0, Vec::len);
            started > 0 && stopped_pids(s).len() >= started
        })
    }

    /// Host pids of the httpd container's processes that run our reporter
    /// thread (Apache children, mod_wsgi daemons).
    fn reporting_host_pids(&self) -> Vec<u32> {
        let top = docker(&["top", &self.httpd.id, "-o", "pid"]).expect("docker top");
        top.lines()
            .filter_map(|l| l.trim().parse::<u32>().ok())
            .filter(|&p| reporter_reads(p).is_some())
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {}: Apache's error.log (last 60 lines):\n{}",
                self.at,
                tail(&self.error_log(), 60)
            );
        }
    }
}

/// Sets its flag when dropped: a client thread looping until the flag is
/// set stops even when the test panics (a scope joins its threads before
/// the panic goes on).
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `cond` every 100 ms for up to [`PATIENCE`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < PATIENCE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn processes(s: &Value) -> Vec<Value> {
    s["processes"].as_array().cloned().unwrap_or_default()
}

fn stopped_pids(s: &Value) -> BTreeSet<u64> {
    state_stopped(s)
        .iter()
        .filter_map(|e| e["pid"].as_u64())
        .collect()
}

/// Requests counted per process group ("" = Apache's children).
fn counts_by_group(s: &Value) -> BTreeMap<String, u64> {
    let counts = state_counts(s);
    let mut m = BTreeMap::new();
    for p in processes(s) {
        let g = p["process_group"].as_str().unwrap_or("").to_string();
        *m.entry(g).or_default() += counts[&p["pid"].as_u64().unwrap()];
    }
    m
}

/// Pids of `group` ("" = Apache's children) that sent GC snapshots.
fn gc_pids(s: &Value, group: &str) -> BTreeSet<u64> {
    processes(s)
        .iter()
        .filter(|p| p["process_group"].as_str().unwrap_or("") == group)
        .filter(|p| p["gc_snapshots"].as_object().is_some_and(|m| !m.is_empty()))
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

/// (kind, process group, shutdown_reason) of every lifecycle event after
/// STARTED.
fn reasons(s: &Value) -> BTreeSet<(String, String, String)> {
    s["lifecycle_events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] != "process_started")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["process_group"].as_str().unwrap_or("").to_string(),
                e["shutdown_reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The module's lines in Apache's error log, for the report.
fn module_lines(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("mod_wsgi_telemetry") || l.contains("wsgi_telemetry"))
        .map(|l| format!("\n    {l}"))
        .collect()
}

/// (uid, gid, command) of each process in a container (`docker top`).
fn ids(c: &Container) -> Vec<(u32, u32, String)> {
    docker(&["top", &c.id, "-o", "pid,uid,gid,comm"])
        .expect("docker top")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip(1);
            Some((
                w.next()?.parse().ok()?,
                w.next()?.parse().ok()?,
                w.next()?.to_string(),
            ))
        })
        .collect()
}

const REQUESTS: u64 = 20;

/// The package's defaults, embedded mode: every request counted exactly,
/// each process naming the release's mod_wsgi; the socket owned by the
/// ingester's user and Apache's group, mode 0660, and the two sides
/// running as different users.
fn embedded_requests_counted_exactly(at: Point, mpm: Mpm) {
    if !containers::should_run(&format!("containers::{at}::embedded::{}", mpm.name())) {
        return;
    }
    let st = Stack::start(at, mpm, "");
    let shipped = st.mod_wsgi_version();
    if at.pypi.is_none() {
        let series = containers::target(at.release).mod_wsgi_series;
        assert!(
            shipped.starts_with(series),
            "{at} ships mod_wsgi {shipped}, expected {series}x"
        );
    }
    let sock = st.ingester.exec(&[
        "stat",
        "-c",
        "%U %G %a",
        "/run/mod_wsgi-telemetry",
        "/run/mod_wsgi-telemetry/telemetry.sock",
    ]);
    assert_eq!(
        sock, "mod-wsgi-telemetry www-data 750\nmod-wsgi-telemetry www-data 660\n",
        "the unit's runtime directory and socket"
    );
    let www_data = st.httpd.exec(&["id", "-u", "www-data"]);
    let www_data: u32 = www_data.trim().parse().unwrap();
    let children: Vec<_> = ids(&st.httpd)
        .into_iter()
        .filter(|(u, _, _)| *u != 0)
        .collect();
    assert!(
        !children.is_empty()
            && children
                .iter()
                .all(|(u, g, _)| *u == www_data && *g == www_data),
        "Apache's children run as www-data: {children:?}"
    );
    let ingester = ids(&st.ingester);
    assert!(
        ingester.len() == 1
            && ingester[0].0 != 0
            && ingester[0].0 != www_data
            && ingester[0].1 == www_data,
        "the ingester runs as its own user, group www-data: {ingester:?}"
    );

    for _ in 0..REQUESTS {
        assert_eq!(st.get("/app/hello"), (200, b"hello".to_vec()));
    }
    st.wait_for("every request counted", |s| {
        state_sum(s, "request_count") >= REQUESTS
    });
    let state = st.stop_httpd();
    assert_eq!(state_sum(&state, "request_count"), REQUESTS, "{at}");
    for p in processes(&state) {
        assert_eq!(
            p["mod_wsgi_version"],
            shipped.as_str(),
            "{at}: pid {}",
            p["pid"]
        );
    }
    let p = &state["processes"][0];
    eprint_now(&format!(
        "containers::{at}::embedded::{}: mod_wsgi {shipped}, Python {}, {}, mpm {}; {} processes, \
         request_count {}; module log lines:{}",
        mpm.name(),
        p["python_version"],
        p["apache_version"],
        p["mpm_name"],
        processes(&state).len(),
        state_sum(&state, "request_count"),
        module_lines(&st.error_log())
    ));
}

/// httpd with a daemon group `g` that has nothing but `WSGIDaemonProcess`
/// (zero configuration) and the packaged attach script for the Apache
/// children (as the package's wsgi_telemetry.conf shows), once
/// [`REQUESTS`] requests went to each and the children sent GC snapshots.
fn daemon_and_children_served(at: Point) -> Stack {
    let conf = "\
WSGIDaemonProcess g processes=2 threads=4
WSGIScriptAlias /d /srv/app/app.wsgi process-group=g application-group=%{GLOBAL}
WSGIImportScript /usr/lib/apache2/modules/mod_wsgi_telemetry_attach.py process-group=%{GLOBAL} application-group=%{GLOBAL}
";
    let st = Stack::start(at, Mpm::Event, conf);
    for _ in 0..REQUESTS {
        assert_eq!(st.get("/d/hello"), (200, b"hello".to_vec()));
        assert_eq!(st.get("/app/hello"), (200, b"hello".to_vec()));
    }
    st.wait_for("GC snapshots from the Apache children", |s| {
        !gc_pids(s, "").is_empty()
    });
    st
}

/// A daemon group with nothing but `WSGIDaemonProcess` (zero
/// configuration): its requests counted exactly under its group's name and
/// not again by the Apache children, and Python GC snapshots from both
/// daemons (attached by the module) and from the Apache children (the
/// packaged attach script, as the package's wsgi_telemetry.conf shows).
fn daemon_zero_config_and_gc(at: Point) {
    if !containers::should_run(&format!("containers::{at}::daemon_and_gc")) {
        return;
    }
    let st = daemon_and_children_served(at);
    let s = st.wait_for("GC snapshots from both daemons", |s| {
        gc_pids(s, "g").len() >= 2
    });
    let daemons = gc_pids(&s, "g");
    let state = st.stop_httpd();
    let counts = counts_by_group(&state);
    assert_eq!(
        counts.get("g"),
        Some(&REQUESTS),
        "daemon requests: {counts:?}"
    );
    assert_eq!(
        counts.get(""),
        Some(&REQUESTS),
        "embedded requests: {counts:?}"
    );
    eprint_now(&format!(
        "containers::{at}::daemon_and_gc: requests by group {counts:?}, daemons with GC {daemons:?}, \
         children with GC {:?}; module log lines:{}",
        gc_pids(&state, ""),
        module_lines(&st.error_log())
    ));
}

/// A request over `WSGISlowRequests` in embedded mode and in a daemon;
/// a daemon retired by `maximum-requests`, one by SIGUSR1, the rest by the
/// graceful stop: each reason as the module's docs list it.
fn slow_requests_and_lifecycle_reasons(at: Point) {
    if !containers::should_run(&format!("containers::{at}::slow_and_lifecycle")) {
        return;
    }
    let conf = "\
WSGISlowRequests 0.5
WSGIDaemonProcess g processes=1 threads=2
WSGIScriptAlias /d /srv/app/app.wsgi process-group=g application-group=%{GLOBAL}
WSGIDaemonProcess m processes=1 threads=1 maximum-requests=3
WSGIScriptAlias /m /srv/app/app.wsgi process-group=m application-group=%{GLOBAL}
";
    let st = Stack::start(at, Mpm::Event, conf);
    assert_eq!(st.get("/app/sleep/1200").0, 200);
    assert_eq!(st.get("/d/sleep/1200").0, 200);
    let s = st.wait_for("two completed slow records", |s| {
        slow_paths(s)
            .iter()
            .filter(|(p, state)| p == "/sleep/1200" && *state == 1)
            .count()
            >= 2
    });
    let slow_groups: BTreeSet<String> = s["slow_requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["entry"]["path_info"] == "/sleep/1200")
        .filter_map(|e| group_of(&s, e["entry"]["pid"].as_u64()?))
        .collect();
    assert_eq!(
        slow_groups,
        BTreeSet::from(["".into(), "g".into()]),
        "embedded and daemon"
    );

    for _ in 0..3 {
        assert_eq!(st.get("/m/hello").0, 200);
    }
    st.wait_for("the daemon of m retired by maximum-requests", |s| {
        reasons(s).contains(&(
            "process_stopped".into(),
            "m".into(),
            "maximum_requests".into(),
        ))
    });
    // Its successor reports before Apache stops: one that Apache stopped
    // before its reporter started would have no STOPPED to carry
    // `shutdown_signal` (seen on a loaded machine).
    st.wait_for("the successor of m's daemon reporting", |s| {
        processes(s)
            .iter()
            .filter(|p| p["process_group"] == "m")
            .count()
            >= 2
    });
    let g: Vec<u64> = processes(&s)
        .iter()
        .filter(|p| p["process_group"] == "g")
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(g.len(), 1);
    st.sh(&format!("kill -USR1 {}", g[0]));
    st.wait_for("the daemon of g restarted by SIGUSR1", |s| {
        reasons(s).contains(&(
            "process_stopped".into(),
            "g".into(),
            "graceful_signal".into(),
        ))
    });
    let state = st.stop_httpd();
    let seen = reasons(&state);
    for (kind, group, reason) in [
        ("process_stopping", "m", "maximum_requests"),
        ("process_stopped", "m", "maximum_requests"),
        ("process_stopping", "g", "graceful_signal"),
        ("process_stopped", "g", "graceful_signal"),
        ("process_stopped", "m", "shutdown_signal"),
    ] {
        assert!(
            seen.contains(&(kind.into(), group.into(), reason.into())),
            "{kind} {group} {reason} among {seen:?}"
        );
    }
    eprint_now(&format!(
        "containers::{at}::slow_and_lifecycle: slow records from groups {slow_groups:?}; \
         lifecycle (kind, group, reason): {seen:?}"
    ));
}

/// (path_info, state) of every slow record (state 0 active, 1 completed).
fn slow_paths(s: &Value) -> Vec<(String, u64)> {
    s["slow_requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["entry"]["path_info"].as_str().unwrap_or("").to_string(),
                e["entry"]["state"].as_u64().unwrap_or(9),
            )
        })
        .collect()
}

fn group_of(s: &Value, pid: u64) -> Option<String> {
    processes(s)
        .iter()
        .find(|p| p["pid"] == pid)
        .map(|p| p["process_group"].as_str().unwrap_or("").to_string())
}

/// `apache2ctl graceful` while a client keeps sending requests: every
/// response the client got is counted once, over both generations.
fn graceful_restart_under_load(at: Point) {
    if !containers::should_run(&format!("containers::{at}::graceful_under_load")) {
        return;
    }
    let st = Stack::start(at, Mpm::Event, "");
    let before: BTreeSet<u64> = processes(&st.state_now())
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    let stop = AtomicBool::new(false);
    let served = std::thread::scope(|sc| {
        let client = sc.spawn(|| {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(st.get("/app/hello").0, 200, "served across the restart");
                n += 1;
            }
            n
        });
        let stop_client = SetOnDrop(&stop);
        st.wait_for("load counted", |s| state_sum(s, "request_count") >= 20);
        st.sh("apache2ctl graceful");
        st.wait_for("a new generation serving", |s| {
            processes(s).iter().any(|p| {
                !before.contains(&p["pid"].as_u64().unwrap())
                    && state_counts(s)[&p["pid"].as_u64().unwrap()] > 0
            })
        });
        drop(stop_client);
        client.join().unwrap()
    });
    let state = st.stop_httpd();
    assert_eq!(state_sum(&state, "request_count"), served, "{at}");
    assert_eq!(state["seq_gaps"], 0, "no datagram lost");
    eprint_now(&format!(
        "containers::{at}::graceful_under_load: {served} requests served and counted, {} processes",
        processes(&state).len()
    ));
}

impl Stack {
    fn state_now(&self) -> Value {
        self.try_state().expect("GET /api/state")
    }
}

/// The ingester frozen (`docker pause`, the cgroup freezer: it reads
/// nothing) while load goes on: once its socket's queue is full and every
/// reporter has ticked, each datagram refused is counted by its reporter
/// (field 19) and seen by the thawed ingester as a sequence gap, the two
/// equal.
fn drops_counted_while_ingester_frozen(at: Point) {
    if !containers::should_run(&format!("containers::{at}::drops")) {
        return;
    }
    // Every child up front (none starts while the ingester is frozen) and
    // a slow record per request (one datagram each: the queue fills fast).
    let conf = "\
WSGISlowRequests 0.000001
<IfModule mpm_event_module>
    StartServers 2
    MinSpareThreads 1
    MaxSpareThreads 50
    ThreadsPerChild 25
    MaxRequestWorkers 50
</IfModule>
";
    // A queue of 10 (as some hosts have) fills within a tick or two of
    // the load, however fast the machine; the packaged 512 would take
    // minutes of slow records on a loaded one.
    let st = Stack::start_with_qlen(at, Mpm::Event, conf, "10");
    let s = st.wait_for("both children reporting", |s| processes(s).len() >= 2);
    assert_eq!(processes(&s).len(), 2);
    let pids = st.reporting_host_pids();
    assert_eq!(pids.len(), 2, "host pids of the two children");
    let sock = st.volume.host_path().join("telemetry.sock");
    docker(&["pause", &st.ingester.id]).expect("docker pause");
    let stop = AtomicBool::new(false);
    let thawed_at = std::thread::scope(|sc| {
        let client = sc.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(
                    st.get("/app/hello").0,
                    200,
                    "served while the ingester is frozen"
                );
            }
        });
        let stop_client = SetOnDrop(&stop);
        overflow_receiver_queue(&sock, &pids);
        drop(stop_client);
        client.join().unwrap();
        docker(&["unpause", &st.ingester.id]).expect("docker unpause");
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    });
    // Compared once each process's two newest REQUESTs come from ticks
    // after the thaw and agree (the ingester has caught up).
    let state = st.wait_for("two REQUESTs of each child after the thaw", |s| {
        processes(s).iter().all(|p| {
            let r: Vec<&Value> = p["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|x| x["kind"] == "request_metrics")
                .collect();
            r.len() >= 2 && {
                let (a, b) = (r[r.len() - 2], r[r.len() - 1]);
                a["stamp"].as_f64().unwrap_or(0.0) > thawed_at + 1.0
                    && drop_counter(&a["fields"]) == drop_counter(&b["fields"])
            }
        })
    });
    let mut dropped_total = 0;
    for p in processes(&state) {
        let newest = p["samples"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .filter(|x| x["kind"] == "request_metrics")
            .find_map(|x| drop_counter(&x["fields"]))
            .unwrap_or(0);
        assert!(
            newest > 0,
            "pid {}: a datagram refused while the queue was full",
            p["pid"]
        );
        assert_eq!(
            p["drops"].as_u64(),
            Some(newest),
            "pid {}: gaps vs field 19",
            p["pid"]
        );
        dropped_total += newest;
    }
    assert_eq!(state["seq_gaps"], dropped_total);
    assert_eq!(state["decode_errors"], 0);
    eprint_now(&format!(
        "containers::{at}::drops: {dropped_total} datagrams refused while frozen, all counted \
         by the reporters and seen as gaps"
    ));
}

/// A mod_wsgi outside the tested releases (4.6.8 from PyPI): the start-up
/// line and one warning say what is off, and what needs none of mod_wsgi's
/// internals works: embedded requests counted exactly (httpd filters),
/// daemon requests served but not reported (no daemon reporter, and not
/// counted by the children that pass them on), GC from Apache's children
/// through the packaged attach script, every child's stop reported.
fn untested_version_keeps_what_needs_no_internals(at: Point) {
    if !containers::should_run(&format!("containers::{at}::untested")) {
        return;
    }
    let st = daemon_and_children_served(at);
    let state = st.stop_httpd();
    let counts = counts_by_group(&state);
    assert_eq!(
        counts,
        BTreeMap::from([(String::new(), REQUESTS)]),
        "embedded requests only, each once"
    );
    let log = st.error_log();
    assert!(
        log.contains("Requests are accounted with filters"),
        "{at}: the children say they use filters:{}",
        module_lines(&log)
    );
    eprint_now(&format!(
        "containers::{at}::untested: requests by group {counts:?}, children with GC {:?}; \
         module log lines:{}",
        gc_pids(&state, ""),
        module_lines(&log)
    ));
}

/// mod_wsgi 6.1.1 (from PyPI) has its own reporter: with our package
/// installed and enabled, `apache2ctl graceful` refuses the configuration
/// with the module's one line, and the running httpd goes on serving with
/// its previous configuration; nothing reaches the ingester.
fn refused_beside_its_own_reporter(at: Point) {
    if !containers::should_run(&format!("containers::{at}::refused")) {
        return;
    }
    let st = Stack::launch(at, Mpm::Event, "", &packaged_dgram_qlen());
    let out = Command::new("docker")
        .args(["exec", &st.httpd.id, "sh", "-c", ENABLE])
        .stdin(Stdio::null())
        .output()
        .expect("docker exec");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{at}: apache2ctl graceful refused: {stderr}"
    );
    assert!(
        stderr.contains(
            "the loaded mod_wsgi already has a built-in telemetry reporter (mod_wsgi >= 6); \
             use its WSGITelemetryService and remove the LoadModule line for \
             wsgi_telemetry_module: one reporter per process, never two"
        ),
        "{at}: {stderr}"
    );
    assert!(st.httpd.running(), "{at}: httpd still running");
    assert_eq!(st.get("/").0, 200, "{at}: still serving");
    let banner = st
        .error_log()
        .lines()
        .filter(|l| l.contains("resuming normal operations"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(
        banner.len() == 1 && banner[0].contains("mod_wsgi/6.1.1"),
        "{at}: one start, with mod_wsgi 6.1.1: {banner:?}"
    );
    let state = st.state_now();
    assert_eq!(processes(&state).len(), 0, "{at}: nothing reported");
    eprint_now(&format!(
        "containers::{at}::refused: apache2ctl graceful said:\n{}",
        stderr.trim()
    ));
}

/// The scenarios that name a point and an MPM.
fn embedded_event(at: Point) {
    embedded_requests_counted_exactly(at, Mpm::Event)
}

fn embedded_prefork(at: Point) {
    embedded_requests_counted_exactly(at, Mpm::Prefork)
}

/// `mod <name>` of one `#[test]` per scenario listed, at a point of the
/// matrix: a Debian release (its own mod_wsgi), or a release and a PyPI
/// mod_wsgi version.
macro_rules! matrix {
    ($name:ident = $release:literal $(+ $pypi:literal)?: $($scenario:ident),+ $(,)?) => {
        mod $name {
            use super::Point;
            const AT: Point = Point { release: $release, pypi: matrix!(@pypi $($pypi)?) };
            $(
                #[test]
                fn $scenario() {
                    super::$scenario(AT)
                }
            )+
        }
    };
    (@pypi) => { None };
    (@pypi $v:literal) => { Some($v) };
}

// Debian 12 runs every scenario; Debian 11 and 13 those whose outcome
// depends on mod_wsgi (what the module finds in it, how it runs requests,
// daemons, GC and their stops). Restarting httpd under load and the
// ingester's socket queue overflowing depend on httpd and the kernel, not
// on mod_wsgi's version, and run on bookworm only (README, compatibility
// table).
matrix!(bookworm = "bookworm": embedded_event, embedded_prefork, daemon_zero_config_and_gc,
    slow_requests_and_lifecycle_reasons, graceful_restart_under_load,
    drops_counted_while_ingester_frozen);
matrix!(bullseye = "bullseye": embedded_event, embedded_prefork, daemon_zero_config_and_gc,
    slow_requests_and_lifecycle_reasons);
matrix!(trixie = "trixie": embedded_event, embedded_prefork, daemon_zero_config_and_gc,
    slow_requests_and_lifecycle_reasons);
// mod_wsgi from PyPI, each built against the release whose Python builds it.
matrix!(bullseye_mod_wsgi_4_6_8 = "bullseye" + "4.6.8": untested_version_keeps_what_needs_no_internals);
matrix!(bookworm_mod_wsgi_5_0_0 = "bookworm" + "5.0.0": embedded_event, daemon_zero_config_and_gc);
matrix!(bookworm_mod_wsgi_6_1_1 = "bookworm" + "6.1.1": refused_beside_its_own_reporter);
