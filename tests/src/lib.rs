//! Harness for end-to-end tests of `mod_wsgi_telemetry.so`: a real Debian
//! 12 httpd 2.4 (`/usr/sbin/apache2`) with Debian's mod_wsgi 4.9, each test
//! in its own ServerRoot under a temp dir, listening on a free 127.0.0.1
//! port, run in the foreground so the test owns the parent pid and stops it
//! by that pid. That httpd is the bookworm image's when a Docker engine
//! answers, else the host's ([`backend`]: how it is chosen, what the
//! container shares with the host). Datagrams are received on the test's own UNIX datagram socket
//! ([`Collector`]) and decoded with the `wire` crate.
//!
//! The module under test: `$MOD_WSGI_TELEMETRY_SO` if set, else built once
//! per test binary with `cargo build -p mod_wsgi_reporter` into
//! `<target dir>/module-for-tests` (a separate target dir, so the nested
//! cargo never waits for the outer `cargo test`'s lock).
//!
//! What is not about httpd (free ports, waits, our ingester and the
//! reference's, logs) comes from the workspace's test kit, re-exported here.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use testkit;
pub use testkit::{
    drop_counter, free_port, http_get, last_lines, read_lossy, reference_exe, signal,
    workspace_root, Serve, PATIENCE,
};
pub use wire;

pub mod backend;
pub mod containers;
use backend::backend;
use wire::{id, Kind, Sample};

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds one artifact of this workspace with cargo into the separate
/// target dir the tests use (so the nested cargo never waits on the outer
/// one's lock) and returns its path: `$env_var` if set, else
/// `<target>/module-for-tests/debug/<artifact>`.
fn built_artifact(env_var: &str, cargo_args: &[&str], artifact: &str, what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let dir = target_dir().join("module-for-tests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet"])
        .args(cargo_args)
        .arg("--target-dir")
        .arg(&dir)
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {what}: {e}"));
    assert!(st.success(), "building {what} failed");
    dir.join("debug").join(artifact)
}

/// Path of the module `.so` under test (built on first use).
pub fn module_so() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        built_artifact(
            "MOD_WSGI_TELEMETRY_SO",
            &["-p", "mod_wsgi_reporter"],
            "libmod_wsgi_telemetry.so",
            "the module",
        )
    })
    .clone()
}

/// Apache MPMs the tests run under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    /// Threaded, event MPM.
    Event,
    /// One single-threaded process per connection.
    Prefork,
}

impl Mpm {
    /// Spare limits as high as the worker limits: httpd never retires an
    /// idle child (or, in event, idle threads) behind a test's back, so
    /// every child exit a test sees is one the test caused. (A retired
    /// child reports `graceful_signal`, correctly, which a test checking
    /// the reason for a stop would take for a wrong reason. This was a
    /// suspect for a flaky stop reason under load; the real cause was a
    /// child forked after the stop signal, see docs/module.md.)
    fn config(self) -> &'static str {
        match self {
            Mpm::Event => {
                "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
                 StartServers 2\nServerLimit 4\nThreadsPerChild 4\nThreadLimit 4\n\
                 MinSpareThreads 1\nMaxSpareThreads 16\nMaxRequestWorkers 16\n"
            }
            Mpm::Prefork => {
                "LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\n\
                 StartServers 2\nMinSpareServers 1\nMaxSpareServers 6\nServerLimit 6\nMaxRequestWorkers 6\n"
            }
        }
    }
    /// Most children httpd runs at once under [`Mpm::config`]
    /// (`ServerLimit`). A test that must know every child before it stalls
    /// the receiver adds `StartServers` of this many: httpd then never forks
    /// another one (nor retires one, see there).
    pub fn server_limit(self) -> usize {
        match self {
            Mpm::Event => 4,
            Mpm::Prefork => 6,
        }
    }
    /// `mpm_name` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Prefork => "prefork",
        }
    }
}

/// The WSGI application every test serves under `/app`.
pub const APP: &str = r#"
import time
def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/notfound':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'nope']
    if path == '/error':
        raise RuntimeError('telemetry test: deliberate failure')
    if path == '/post':
        n = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(n)
        out = str(len(body)).encode()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [out]
    if path.startswith('/size/'):
        n = int(path[6:])
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(n))])
        return [b'x' * n]
    if path.startswith('/write-then-sleep/'):
        n, ms = path[18:].split('/')
        write = start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        write(b'w' * int(n))
        time.sleep(int(ms) / 1000.0)
        return [b'']
    if path.startswith('/sleep/'):
        time.sleep(int(path[7:]) / 1000.0)
    if path == '/pid':
        import os
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(os.getpid()).encode()]
    if path.startswith('/environ-has/'):
        # whether the WSGI environ holds a key (what mod_wsgi passed on)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'1' if path[13:] in environ else b'0']
    if path == '/subscribers':
        # mod_wsgi's event subscribers in this interpreter
        import mod_wsgi
        n = len(getattr(mod_wsgi, 'event_callbacks', None) or [])
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(n).encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']
"#;

/// One HTTP/1.0 request to 127.0.0.1:`port`; returns (status, body).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &[u8],
    user_agent: &str,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to httpd");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: {user_agent}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let status = std::str::from_utf8(&resp[9..12]).unwrap().parse().unwrap();
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (status, resp[split..].to_vec())
}

/// What to put in the generated httpd.conf.
#[derive(Clone, Debug)]
pub struct Options {
    /// MPM.
    pub mpm: Mpm,
    /// Load our module at all.
    pub load_module: bool,
    /// Lines added at server level (directives under test).
    pub directives: String,
    /// Another mod_wsgi build instead of Debian's (None = Debian's 4.9).
    pub wsgi_module: Option<PathBuf>,
    /// Environment variables for httpd (and so every child).
    pub env: Vec<(String, String)>,
}

impl Options {
    /// Our module with `WSGITelemetryService` pointing at `socket`.
    pub fn telemetry(mpm: Mpm, socket: &Path, interval: f64, extra: &str) -> Options {
        Options {
            mpm,
            load_module: true,
            directives: format!(
                "WSGITelemetryService unix:{} interval={interval}\n{extra}\n",
                socket.display()
            ),
            wsgi_module: None,
            env: Vec::new(),
        }
    }
}

/// A temp ServerRoot with config, app and logs; world-readable so Apache
/// children running as www-data can use it.
pub struct ServerRoot {
    /// Holds the directory.
    pub dir: tempfile::TempDir,
}

impl ServerRoot {
    /// Creates the directory tree and the app.
    pub fn new() -> ServerRoot {
        // WSGI_TEL_KEEP=1 keeps every ServerRoot (config, error log) for
        // inspection after the test.
        let dir = tempfile::Builder::new()
            .prefix("wsgi-tel-")
            .disable_cleanup(std::env::var_os("WSGI_TEL_KEEP").is_some())
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("app.wsgi"), APP).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::set_permissions(
            dir.path().join("run"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        ServerRoot { dir }
    }
    /// Path inside the root.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Writes `httpd.conf` for `opts` on `port`; returns its path.
    pub fn write_config(&self, opts: &Options, port: u16) -> PathBuf {
        let root = self.dir.path().display().to_string();
        let user = if unsafe_is_root() {
            "User www-data\nGroup www-data\n"
        } else {
            ""
        };
        let module = if opts.load_module {
            backend().assert_visible(&module_so(), "the module");
            format!(
                "LoadModule wsgi_telemetry_module {}\n",
                module_so().display()
            )
        } else {
            String::new()
        };
        if let Some(so) = &opts.wsgi_module {
            backend().assert_visible(so, "the mod_wsgi");
        }
        let conf = format!(
            "ServerRoot {root}\nListen 127.0.0.1:{port}\nServerName 127.0.0.1\n{mpm}\
             LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
             LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n\
             LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so\n\
             LoadModule wsgi_module {wsgi}\n\
             {module}{user}\
             PidFile {root}/run/httpd.pid\nCoreDumpDirectory {root}/run\nErrorLog {root}/error.log\nLogLevel info\n\
             DefaultRuntimeDir {root}/run\nTypesConfig /etc/mime.types\n\
             WSGISocketPrefix {root}/run/wsgi\n\
             WSGIScriptAlias /app {root}/app.wsgi\nWSGIApplicationGroup %{{GLOBAL}}\n\
             <Directory {root}>\n  Require all granted\n</Directory>\n{directives}",
            mpm = opts.mpm.config(),
            directives = opts.directives,
            wsgi = opts
                .wsgi_module
                .as_deref()
                .unwrap_or(Path::new("/usr/lib/apache2/modules/mod_wsgi.so"))
                .display(),
        );
        let path = self.dir.path().join("httpd.conf");
        std::fs::write(&path, conf).unwrap();
        path
    }
}

impl Default for ServerRoot {
    fn default() -> Self {
        Self::new()
    }
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `apache2 -t` on a config with these options, by the [`backend`]'s
/// httpd: (success, output).
pub fn config_test(opts: &Options) -> (bool, String) {
    let root = ServerRoot::new();
    let conf = root.write_config(opts, free_port());
    let env = opts.env.iter().map(|(k, v)| (k, v));
    let out = backend()
        .apache2([OsStr::new("-t"), "-f".as_ref(), conf.as_os_str()], env)
        .stdin(Stdio::null())
        .output()
        .expect("run apache2 -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A running httpd (foreground parent owned by the test).
pub struct Httpd {
    /// httpd itself, or the `docker exec` that ends with it.
    child: Option<Child>,
    /// The parent's (host) pid.
    pid: u32,
    /// Its ServerRoot.
    pub root: ServerRoot,
    /// Listening port.
    pub port: u16,
    /// When [`Httpd::request`] last had its answer.
    last_response: Mutex<Option<Instant>>,
}

/// How long [`Httpd::stop`] lets the last answered request's connection
/// finish before it stops httpd. httpd's event MPM has a race on an
/// ungraceful stop or restart: the child's main thread closes every
/// connection a worker still holds (`close_worker_sockets`), reading the
/// worker's socket without a lock, and a worker that is just closing that
/// connection has already freed its pool: the child dies of SIGSEGV (seen
/// here with Debian's httpd 2.4.71 and a core file: the faulting thread is
/// the MPM's main thread in `close_worker_sockets` → `apr_os_sock_get`,
/// none of our code on its stack). A request's answer reaches the test a
/// moment before its worker lets go of the connection.
const SETTLE: Duration = Duration::from_millis(300);

impl Httpd {
    /// Starts httpd and waits until it accepts connections.
    pub fn start(opts: &Options) -> Httpd {
        Self::start_in(ServerRoot::new(), opts)
    }

    /// Starts in a given ServerRoot (whose paths the options may refer to).
    pub fn start_in(root: ServerRoot, opts: &Options) -> Httpd {
        for _attempt in 0..5 {
            let port = free_port();
            let conf = root.write_config(opts, port);
            let _ = std::fs::remove_file(root.path("error.log"));
            let (mut child, pid) = backend().spawn_httpd(&conf, &opts.env);
            let t0 = Instant::now();
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Httpd {
                        child: Some(child),
                        pid,
                        root,
                        port,
                        // The probe just above was a connection too.
                        last_response: Mutex::new(Some(Instant::now())),
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port clash or config error: retry / report
                }
                assert!(
                    t0.elapsed() < PATIENCE,
                    "httpd did not start: {}",
                    read_lossy(&root.path("error.log"))
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let log = read_lossy(&root.path("error.log"));
            if !log.contains("Address already in use") {
                panic!("httpd exited at start:\n{log}");
            }
        }
        panic!("no free port after 5 attempts");
    }

    /// Parent pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|_| self.pid as i32).unwrap_or(0)
    }

    /// Pids of the parent's child processes (`/proc/PID/task/*/children`).
    pub fn children(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return out;
        };
        for t in tasks.flatten() {
            out.extend(
                read_lossy(&t.path().join("children"))
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        out
    }

    /// Sends a signal to the parent (by its pid).
    pub fn signal(&self, sig: i32) {
        signal(self.pid() as u32, sig);
    }

    /// Graceful restart (SIGUSR1).
    pub fn graceful(&self) {
        self.signal(libc::SIGUSR1);
    }

    /// Stops (SIGTERM) and waits for the parent to exit. httpd drops a
    /// SIGTERM that lands while it is still setting up a new generation
    /// after a restart, so the signal is repeated every 2 s; after
    /// [`PATIENCE`] the parent's process group is killed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.settle();
            let t0 = Instant::now();
            loop {
                signal(self.pid, libc::SIGTERM);
                let tick = Instant::now();
                while tick.elapsed() < Duration::from_secs(2) {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if t0.elapsed() > PATIENCE {
                    eprintln!(
                        "httpd {} did not stop within {PATIENCE:?} of SIGTERMs: killing its process group",
                        self.pid
                    );
                    // SAFETY: the process group httpd leads (spawned with
                    // process_group(0), or made a session leader by
                    // `docker exec`), ours.
                    unsafe { libc::kill(-(self.pid as i32), libc::SIGKILL) };
                    // A `docker exec` whose container went away may never
                    // end by itself.
                    let _ = c.kill();
                    let _ = c.wait();
                    return;
                }
            }
        }
    }

    /// The error log so far.
    pub fn error_log(&self) -> String {
        read_lossy(&self.root.path("error.log"))
    }

    /// One HTTP/1.0 request; returns (status, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        user_agent: &str,
    ) -> (u16, Vec<u8>) {
        let answer = http_request(self.port, method, path, body, user_agent);
        *self.last_response.lock().unwrap() = Some(Instant::now());
        answer
    }

    /// One HTTP/1.1 keep-alive POST whose response is read by its
    /// `Content-Length` (httpd then keeps the connection, so it reads and
    /// discards whatever of the body the handler left unread); returns
    /// (status, body).
    pub fn post_keepalive(&self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to httpd");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            resp.extend_from_slice(&buf[..n]);
            let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&resp[..split]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("a Content-Length");
            if resp.len() >= split + 4 + len {
                *self.last_response.lock().unwrap() = Some(Instant::now());
                let status = std::str::from_utf8(&resp[9..12]).unwrap().parse().unwrap();
                return (status, resp[split + 4..split + 4 + len].to_vec());
            }
        }
    }

    /// Waits until [`SETTLE`] has passed since the last answered request
    /// (see there). Tests that signal httpd themselves to end children at
    /// once (SIGHUP) call it first.
    pub fn settle(&self) {
        let last = *self.last_response.lock().unwrap();
        if let Some(t) = last {
            if let Some(rest) = SETTLE.checked_sub(t.elapsed()) {
                std::thread::sleep(rest);
            }
        }
    }

    /// `thread apply all bt` of every core file in the ServerRoot's `run/`
    /// (`CoreDumpDirectory`), read by gdb with httpd's own files (the
    /// image's, in a container), printed and returned.
    pub fn core_backtraces(&self) -> Vec<String> {
        core_backtraces(&self.root.path("run"))
    }

    /// GET with a default User-Agent.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.request("GET", path, b"", "integration-tests")
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        self.stop();
        let log = self.error_log();
        let crashes = crashed_children(&log);
        let mut cores = Vec::new();
        if std::thread::panicking() || !crashes.is_empty() {
            // A failed test: what httpd said beyond the info chatter.
            eprintln!(
                "--- error log of the failed test's httpd (last 80 lines):\n{}",
                last_lines(&log, 80)
            );
            cores = self.core_backtraces();
        }
        if crashes.is_empty() || std::thread::panicking() {
            return;
        }
        // A child that crashed fails the test even when everything it
        // checked held, unless it was httpd's own race (see SETTLE), which
        // only its core file can tell.
        if crashes.len() == 1 && cores.len() == 1 && is_event_close_race(&cores[0]) {
            eprintln!(
                "--- the crash above is httpd's event MPM race on an ungraceful stop \
                 (close_worker_sockets), not this module's: not failing the test for it"
            );
            return;
        }
        panic!("httpd children crashed:\n{}", crashes.join("\n"));
    }
}

/// The error log's lines saying a child died of a crash signal.
pub fn crashed_children(log: &str) -> Vec<String> {
    const CRASHES: [&str; 5] = [
        "exit signal Segmentation fault",
        "exit signal Aborted",
        "exit signal Bus error",
        "exit signal Illegal instruction",
        "exit signal Floating point exception",
    ];
    log.lines()
        .filter(|l| CRASHES.iter().any(|c| l.contains(c)))
        .map(str::to_string)
        .collect()
}

/// Whether a core's backtrace is httpd's `close_worker_sockets` race: the
/// thread that took the fault was in `apr_os_sock_get`, called straight
/// from the event MPM (`close_socket_nonblocking_`). That frame is the
/// thread's innermost, or the one under httpd's fatal-signal handler, which
/// re-raises the signal (the core then shows the handler on top when
/// another thread took the re-raised signal).
pub fn is_event_close_race(bt: &str) -> bool {
    let frames: Vec<&str> = bt.lines().filter(|l| l.starts_with('#')).collect();
    (0..frames.len().saturating_sub(1)).any(|i| {
        frames[i].contains(" apr_os_sock_get ")
            && frames[i + 1].contains("mod_mpm_event.so")
            && (frames[i].starts_with("#0 ")
                || i > 0 && frames[i - 1].contains("<signal handler called>"))
    })
}

/// `thread apply all bt` of every core file in `dir` (gdb, when present,
/// with the backend's files), printed and returned.
fn core_backtraces(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("core") {
            continue;
        }
        match backend().backtrace(&e.path()) {
            Ok(o) => {
                let bt = String::from_utf8_lossy(&o.stdout).into_owned();
                eprintln!("--- backtrace of {}:\n{bt}", e.path().display());
                out.push(bt);
            }
            Err(err) => eprintln!(
                "--- {} found; no gdb to read it ({err})",
                e.path().display()
            ),
        }
    }
    out
}

/// A received datagram.
#[derive(Clone, Debug)]
pub struct Received {
    /// Decoded.
    pub sample: Sample,
}

/// Receives datagrams on its own socket in a background thread.
pub struct Collector {
    /// Socket path.
    pub path: PathBuf,
    samples: Arc<Mutex<Vec<Sample>>>,
    apps: Arc<Mutex<Vec<(u32, wire::app::AppMetrics)>>>,
    decode_errors: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Binds `path` (mode 0666 so www-data children can send).
    pub fn bind(path: &Path) -> Collector {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path).expect("bind collector socket");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let apps = Arc::new(Mutex::new(Vec::new()));
        let decode_errors = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (s2, a2, e2, st2, p2) = (
            samples.clone(),
            apps.clone(),
            decode_errors.clone(),
            stop.clone(),
            paused.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !st2.load(Ordering::SeqCst) {
                if p2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if let Ok(n) = sock.recv(&mut buf) {
                    match wire::decode(&buf[..n]) {
                        Ok(s) => {
                            if s.header.kind == Kind::APP_METRICS {
                                // Also read as application metrics.
                                let app = wire::decode_ref(&buf[..n])
                                    .ok()
                                    .and_then(|r| wire::app::decode(&r).ok());
                                match app {
                                    Some(a) => a2.lock().unwrap().push((s.header.pid, a)),
                                    None => *e2.lock().unwrap() += 1,
                                }
                            }
                            s2.lock().unwrap().push(s)
                        }
                        Err(_) => *e2.lock().unwrap() += 1,
                    }
                }
            }
        });
        Collector {
            path: path.to_path_buf(),
            samples,
            apps,
            decode_errors,
            stop,
            paused,
            thread: Some(thread),
        }
    }

    /// Stops reading (like a SIGSTOPped ingester) or resumes.
    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The `app_metrics` datagrams (kind 10) received so far, read with
    /// `wire::app::decode`, with the sender's pid, in arrival order.
    pub fn app_metrics(&self) -> Vec<(u32, wire::app::AppMetrics)> {
        self.apps.lock().unwrap().clone()
    }

    /// Undecodable datagrams (kind 10 ones included: `wire::app::decode`
    /// must read them too).
    pub fn decode_errors(&self) -> u64 {
        *self.decode_errors.lock().unwrap()
    }

    /// Waits until `cond` holds on the samples (panics after [`PATIENCE`]
    /// with `what`).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let t0 = Instant::now();
        loop {
            let s = self.samples();
            if cond(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "timed out waiting for: {what}; received {} datagrams:\n{}",
                s.len(),
                per_pid_summary(&s)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One line per pid: the kind and sequence number of the last datagrams it
/// sent (a gap in the numbers is a lost datagram; no STOPPED after the last
/// one is a child that died or is still running) and the highest
/// `reporter_dropped_datagrams` its REQUEST datagrams carried.
pub fn per_pid_summary(s: &[Sample]) -> String {
    let mut by_pid: std::collections::BTreeMap<u32, (Vec<String>, Option<u64>)> =
        Default::default();
    for x in s {
        let e = by_pid.entry(x.header.pid).or_default();
        e.0.push(format!("{}#{}", x.header.kind.0, x.header.seq));
        if x.header.kind == Kind::REQUEST {
            e.1 = e.1.max(x.u64(id::REPORTER_DROPPED_DATAGRAMS));
        }
    }
    by_pid
        .iter()
        .map(|(p, (v, dropped))| {
            let tail = &v[v.len().saturating_sub(8)..];
            format!(
                "  pid {p}: {} sent, last {}, dropped {dropped:?}",
                v.len(),
                tail.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Samples of one kind.
pub fn of_kind(s: &[Sample], k: Kind) -> Vec<&Sample> {
    s.iter().filter(|x| x.header.kind == k).collect()
}

/// Sum of a U64 field over REQUEST samples.
pub fn sum_u64(s: &[Sample], field: u16) -> u64 {
    of_kind(s, Kind::REQUEST)
        .iter()
        .map(|x| x.u64(field).unwrap_or(0))
        .sum()
}

/// Pids that sent STOPPED.
pub fn stopped_pids(s: &[Sample]) -> Vec<u32> {
    of_kind(s, Kind::PROCESS_STOPPED)
        .iter()
        .map(|x| x.header.pid)
        .collect()
}

/// Pids that sent STARTED.
pub fn started_pids(s: &[Sample]) -> Vec<u32> {
    of_kind(s, Kind::PROCESS_STARTED)
        .iter()
        .map(|x| x.header.pid)
        .collect()
}

/// Every process that started has stopped.
pub fn all_stopped(s: &[Sample]) -> bool {
    let st = started_pids(s);
    let sp = stopped_pids(s);
    !st.is_empty() && st.iter().all(|p| sp.contains(p))
}

/// Element-wise sum of an I32 array field over REQUEST samples.
pub fn sum_buckets(s: &[Sample], field: u16) -> Vec<i64> {
    let mut out = vec![0i64; wire::histogram::BUCKETS];
    for x in of_kind(s, Kind::REQUEST) {
        if let Some(wire::Value::I32Array(a)) = x.get(field) {
            for (o, v) in out.iter_mut().zip(a) {
                *o += *v as i64;
            }
        }
    }
    out
}

/// Slow records (kind 4) for a given path.
pub fn slow_for<'a>(s: &'a [Sample], path_info: &str) -> Vec<&'a Sample> {
    of_kind(s, Kind::SLOW_REQUEST)
        .into_iter()
        .filter(|x| x.text(id::SLOW_PATH_INFO).as_deref() == Some(path_info))
        .collect()
}

/// Number of open descriptors and threads of a process.
pub fn fds_and_threads(pid: i32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let th = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    (fds, th)
}

/// The signals a thread must never take from the process it lives in: the
/// ones httpd and mod_wsgi use to stop, restart and wake their processes.
pub const PROCESS_SIGNALS: [i32; 7] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGXCPU,
];

/// `(thread name, blocked-signal mask)` of every thread of `pid` whose name
/// starts with `prefix` (from `/proc/PID/task/*/{comm,status}`).
pub fn thread_signal_masks(pid: u32, prefix: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = read_lossy(&t.path().join("comm")).trim().to_string();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = read_lossy(&t.path().join("status"));
        if let Some(hex) = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .map(str::trim)
        {
            out.push((comm, u64::from_str_radix(hex, 16).unwrap_or(0)));
        }
    }
    out
}

/// Asserts that `pid` runs at least one of our threads (named
/// `wsgi-telemetry…`) and that each blocks every [`PROCESS_SIGNALS`]: a
/// signal sent to the process must reach httpd's or mod_wsgi's own thread
/// (prefork runs its exit path from the handler, on whatever thread took
/// the signal).
pub fn assert_our_threads_block_process_signals(pid: u32) {
    // STARTED goes out just before the reporter thread is created, and a
    // new thread names itself when it first runs: wait for the name.
    let t0 = Instant::now();
    let masks = loop {
        let m = thread_signal_masks(pid, "wsgi-telemetry");
        if m.iter().any(|(n, _)| n == "wsgi-telemetry") {
            break m;
        }
        assert!(
            t0.elapsed() < PATIENCE,
            "pid {pid}: no wsgi-telemetry thread (threads: {:?})",
            thread_signal_masks(pid, "")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    for (name, m) in &masks {
        for sig in PROCESS_SIGNALS {
            assert!(
                m & (1u64 << (sig - 1)) != 0,
                "pid {pid}: thread {name} takes signal {sig} (SigBlk {m:016x})"
            );
        }
    }
}

/// Whether the receive queue of the datagram socket bound at `path` is
/// full, so that the next datagram sent to it is refused (`EAGAIN`): a
/// probe socket connected to it is not writable (`poll(2)`; nothing is
/// sent). The kernel holds `net.unix.max_dgram_qlen` + 1 datagrams.
pub fn socket_queue_full(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let probe = UnixDatagram::unbound().expect("probe socket");
    if probe.connect(path).is_err() {
        return false;
    }
    let mut p = libc::pollfd {
        fd: probe.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd on a socket we own, no wait.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0 || p.revents & libc::POLLOUT == 0
}

/// Read syscalls so far of the reporter thread (`wsgi-telemetry`) of `pid`
/// (`syscr` in `/proc/PID/task/TID/io`). The thread reads only
/// `/proc/self/statm`, first thing in each tick, before the tick's sends.
pub fn reporter_reads(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|t| {
        if read_lossy(&t.path().join("comm")).trim() != "wsgi-telemetry" {
            return None;
        }
        read_lossy(&t.path().join("io"))
            .lines()
            .find_map(|l| l.strip_prefix("syscr:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Most read syscalls one tick's `read_to_string("/proc/self/statm")`
/// makes (std: a 32-byte probe read, the rest, the read that returns 0;
/// 2 or 3 by the length of the text; 2 seen with Debian's httpd), with
/// room to spare.
const READS_PER_TICK_MAX: u64 = 4;

/// Waits until the reporter of each of `pids` has run one whole tick (all
/// its sends) after this call: its read count has grown by more than two
/// ticks' worth ([`READS_PER_TICK_MAX`]), so a tick that began after this
/// call has finished and the next one has begun (the reads of a tick in
/// progress at the call, and of the next one, are at most twice that).
pub fn wait_for_a_whole_tick_of_each(pids: &[u32]) {
    let base: Vec<(u32, u64)> = pids
        .iter()
        .map(|&p| {
            let r = reporter_reads(p)
                .unwrap_or_else(|| panic!("pid {pid}: no readable wsgi-telemetry thread", pid = p));
            (p, r)
        })
        .collect();
    let t0 = Instant::now();
    for (pid, b) in base {
        while reporter_reads(pid).is_none_or(|r| r <= b + 2 * READS_PER_TICK_MAX) {
            assert!(
                t0.elapsed() < PATIENCE,
                "pid {pid}: its reporter did not tick (syscr {:?}, from {b})",
                reporter_reads(pid)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// With the receiver at `path` no longer reading: waits until its queue is
/// full and then until every reporter in `pids` has run a whole tick, so
/// each of them has had at least one datagram refused (counted in field 19,
/// `reporter_dropped_datagrams`). However fast or slow the machine, no
/// fixed amount of load or time is assumed.
pub fn overflow_receiver_queue(path: &Path, pids: &[u32]) {
    let t0 = Instant::now();
    while !socket_queue_full(path) {
        assert!(
            t0.elapsed() < PATIENCE,
            "the receive queue of {} never filled up",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for_a_whole_tick_of_each(pids);
}

/// Generates `#[test]`s for both MPMs from `fn name(mpm: Mpm)`.
#[macro_export]
macro_rules! both_mpms {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn event() {
                    super::$name($crate::Mpm::Event)
                }
                #[test]
                fn prefork() {
                    super::$name($crate::Mpm::Prefork)
                }
            }
        )*
    };
}

/// Our ingester binary: `$MOD_WSGI_TELEMETRY_BIN` if set, else built once
/// with cargo into the same separate target dir as the module.
pub fn ingester_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        built_artifact(
            "MOD_WSGI_TELEMETRY_BIN",
            &["-p", "mod_wsgi-telemetry", "--bin", "mod_wsgi-telemetry"],
            "mod_wsgi-telemetry",
            "the ingester",
        )
    })
    .clone()
}

/// Sum of a numeric sample field over every process in an `/api/state`.
pub fn state_sum(state: &serde_json::Value, field: &str) -> u64 {
    state["processes"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .flat_map(|p| p["samples"].as_array().cloned().unwrap_or_default())
                .filter(|s| s["kind"] == "request_metrics")
                .map(|s| s["fields"][field].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Per-pid sum of `request_count` in an `/api/state`.
pub fn state_counts(state: &serde_json::Value) -> std::collections::BTreeMap<u64, u64> {
    let mut m = std::collections::BTreeMap::new();
    for p in state["processes"].as_array().cloned().unwrap_or_default() {
        let n: u64 = p["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|s| s["kind"] == "request_metrics")
            .map(|s| s["fields"]["request_count"].as_u64().unwrap_or(0))
            .sum();
        m.insert(p["pid"].as_u64().unwrap_or(0), n);
    }
    m
}

/// STOPPED events in an `/api/state`.
pub fn state_stopped(state: &serde_json::Value) -> Vec<serde_json::Value> {
    state["lifecycle_events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["kind"] == "process_stopped")
        .collect()
}

/// mod_wsgi 6.1.1 built from PyPI against this apxs, in a throwaway venv
/// (scripts/mod-wsgi-6-venv.sh builds it when missing): (module .so, venv).
pub fn mod_wsgi6() -> (PathBuf, PathBuf) {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    let so = SO
        .get_or_init(|| testkit::script_path("scripts/mod-wsgi-6-venv.sh", "build mod_wsgi 6.1.1"))
        .clone();
    // <venv>/lib/pythonX.Y/site-packages/mod_wsgi/server/<so>
    let venv = so.ancestors().nth(6).unwrap().to_path_buf();
    (so, venv)
}

/// Percent-encodes `s` for a query string.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Prometheus (Debian's `/usr/bin/prometheus`, package
/// `prometheus`) on a free loopback port, with its own TSDB in a temp
/// dir, scraping `127.0.0.1:<port>/metrics` of each target every second.
/// Stopped by its pid when dropped (the Debian service is never used).
pub struct Prometheus {
    child: Option<Child>,
    /// Its HTTP port (UI and API).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus and waits until `/-/ready` answers 200.
    pub fn start(targets: &[u16]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("wsgi-tel-prom-")
            .tempdir()
            .unwrap();
        let list: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: mod_wsgi\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
            let child = Command::new("/usr/bin/prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn /usr/bin/prometheus (Debian package prometheus)");
            let mut child = child;
            let t0 = Instant::now();
            loop {
                if let Some((200, _, _)) = http_get(port, "/-/ready", "") {
                    return Prometheus {
                        child: Some(child),
                        port,
                        dir,
                    };
                }
                if matches!(child.try_wait(), Ok(Some(_))) || t0.elapsed() > PATIENCE {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            signal(child.id(), libc::SIGTERM);
            let _ = child.wait();
            let log = read_lossy(&dir.path().join("prometheus.log"));
            if !log.contains("address already in use") {
                panic!("prometheus did not come up:\n{}", last_lines(&log, 40));
            }
        }
        panic!("no free port for prometheus after 5 attempts");
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("prometheus.log"))
    }

    /// An instant query through the HTTP API: the `data.result` array.
    pub fn query(&self, promql: &str) -> Option<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, _, body) = http_get(self.port, &path, "")?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (status == 200 && v["status"] == "success").then(|| v["data"]["result"].clone())
    }

    /// The value of a query with one result (`None` when it has none).
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        let r = self.query(promql)?;
        let v = r.as_array()?.first()?["value"][1].as_str()?.parse().ok()?;
        Some(v)
    }

    /// Polls `promql` until its single value satisfies `cond`; returns it.
    pub fn wait_for(&self, what: &str, promql: &str, cond: impl Fn(f64) -> bool) -> f64 {
        let t0 = Instant::now();
        let mut last = None;
        loop {
            let v = self.scalar(promql);
            if let Some(v) = v.filter(|v| cond(*v)) {
                return v;
            }
            last = v.or(last);
            if t0.elapsed() >= PATIENCE {
                panic!(
                    "timed out waiting for {what}: `{promql}` was {last:?}\n--- prometheus log:\n{}",
                    last_lines(&self.log(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let _ = c.wait();
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The faulting thread of a real core (Debian httpd 2.4.71, event MPM,
    /// SIGTERM while a worker closed its connection), abridged.
    const RACE: &str = "\
Thread 2 (Thread 0x7fc3e778e780 (LWP 22578)):
#0  0x00007fc3e7840267 in __GI_kill () at ../sysdeps/unix/syscall-template.S:120
#1  <signal handler called>
#2  0x00007fc3e7a0e180 in apr_os_sock_get () from /lib/x86_64-linux-gnu/libapr-1.so.0
#3  0x00007fc3e774b06c in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so
#4  0x00007fc3e774c507 in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so
#9  0x00005599fa37e850 in ap_run_mpm ()
";

    #[test]
    fn httpd_close_race_is_told_apart_from_other_crashes() {
        assert!(is_event_close_race(RACE));
        // The same fault reached from anywhere else is not the race.
        let ours = RACE.replace(
            "#3  0x00007fc3e774b06c in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so",
            "#3  0x00007fc3e7539f03 in mod_wsgi_telemetry::ffi::lifecycle::stop::child_exit () at src/ffi/lifecycle/stop.rs:136",
        );
        assert!(!is_event_close_race(&ours));
        let elsewhere = RACE.replace(" apr_os_sock_get ", " apr_socket_close ");
        assert!(!is_event_close_race(&elsewhere));
        // The same fault, the re-raised signal taken by the faulting thread.
        let direct = "\
Thread 1 (Thread 0x7f8ff447f780 (LWP 23118)):
#0  0x00007f8ff46ff180 in apr_os_sock_get () from /lib/x86_64-linux-gnu/libapr-1.so.0
#1  0x00007f8ff443c06c in ?? () from /usr/lib/apache2/modules/mod_mpm_event.so
#7  0x000055e7f54c9850 in ap_run_mpm ()
";
        assert!(is_event_close_race(direct));
        // apr_os_sock_get merely on a stack (not where it faulted) is not.
        let deeper = direct.replace("#0  0x00007f8ff46ff180", "#3  0x00007f8ff46ff180");
        assert!(!is_event_close_race(&deeper));
        assert!(!is_event_close_race(""));
        let log = "[core:notice] [pid 1:tid 1] AH00052: child pid 1799 exit signal Segmentation fault (11)\n\
                   [core:notice] [pid 1:tid 1] AH00052: child pid 1800 exit signal Killed (9)\n";
        assert_eq!(crashed_children(log).len(), 1);
    }
}
