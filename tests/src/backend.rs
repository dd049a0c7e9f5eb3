//! Where the tests' httpd runs: in the bookworm httpd image
//! (`mwt-httpd:bookworm-<hash>`, see [`crate::containers::images`]), the
//! default when a Docker engine answers, or on the host
//! (`/usr/sbin/apache2`), with `MWT_HTTPD=host` or when no engine answers.
//! Each test process says once on stderr which one it uses and why.
//!
//! The container is one per test process and runs nothing but a watcher
//! (`tail --pid=<test pid>`): every httpd and every `apache2 -t` is a
//! `docker exec` in it, so each costs an exec, not a container start.
//! It shares the host's network (the tests' free 127.0.0.1 ports), pid
//! namespace (the pids httpd writes, reports on the wire and the test
//! signals are the host's) and, at identical paths, the temp dir
//! (ServerRoots, sockets, venvs), the workspace and the target dir
//! (module, WSGI apps), the last two read-only. httpd runs as the test's
//! own uid and gid, as on the host, so `User`/`Group` apply as there.
//! The container ends with the test process: removed by id at exit, and
//! on any other end the watcher exits and `--rm` removes it. It never
//! removes a container it did not start.
//!
//! What must never happen here: a silent switch of backend. A
//! `MWT_HTTPD` that is neither `host` nor `container`, or `container`
//! without an engine, or an image that cannot be built, fails the test
//! with the reason.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::artifacts::target_dir;
use crate::containers::{self, Container};
use crate::{workspace_root, PATIENCE};

/// The Debian release whose image runs the tests' httpd: the host
/// path's Debian 12 and its mod_wsgi 4.9.4.
pub const RELEASE: &str = "bookworm";

/// httpd's binary, on the host and in the image.
pub const APACHE2: &str = "/usr/sbin/apache2";

/// Which backend, decided from `MWT_HTTPD` and whether an engine answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The host's `/usr/sbin/apache2`.
    Host,
    /// The bookworm httpd image.
    Container,
}

/// The decision and the reason to print, from the value of `MWT_HTTPD`
/// and the engine check ([`containers::docker_engine`]); an error for a
/// value that is not understood or a container that cannot run.
pub fn choose(
    setting: Option<&str>,
    engine: impl FnOnce() -> Result<String, String>,
) -> Result<(Choice, String), String> {
    match setting {
        Some("host") => Ok((Choice::Host, "MWT_HTTPD=host".into())),
        Some("container") => match engine() {
            Ok(v) => Ok((
                Choice::Container,
                format!("MWT_HTTPD=container, Docker engine {v}"),
            )),
            Err(e) => Err(format!("MWT_HTTPD=container, but {e}")),
        },
        None | Some("") => match engine() {
            Ok(v) => Ok((
                Choice::Container,
                format!("Docker engine {v} answers; MWT_HTTPD=host runs the host's {APACHE2}"),
            )),
            Err(e) => Ok((Choice::Host, e)),
        },
        Some(other) => Err(format!(
            "MWT_HTTPD must be `host` or `container` (or unset), not `{other}`"
        )),
    }
}

/// The chosen backend of this test process.
pub enum Backend {
    /// httpd on the host.
    Host,
    /// httpd in the image, by `docker exec` in this container.
    Container(Sandbox),
}

/// The test process's container (see the module's documentation).
pub struct Sandbox {
    /// Its id and guard; never dropped (a static), removed at exit.
    pub container: Container,
    /// Its image.
    pub image: String,
    /// Host pid of its watcher: `/proc/<pid>/root` is the image's root.
    pub watcher: u32,
    /// Host directories it sees at the same path.
    pub mounts: Vec<PathBuf>,
}

/// This process's backend, chosen (and announced on stderr) on first use.
pub fn backend() -> &'static Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let setting = std::env::var("MWT_HTTPD").ok();
        let (choice, why) = choose(setting.as_deref(), containers::docker_engine)
            .unwrap_or_else(|e| panic!("httpd backend: {e}"));
        let backend = match choice {
            Choice::Host => Backend::Host,
            Choice::Container => Backend::Container(Sandbox::start()),
        };
        // Straight to the process's stderr: the harness captures
        // eprintln! of passing tests, and this line is for every run.
        let _ = writeln!(
            std::io::stderr(),
            "httpd backend: {} ({why})",
            backend.describe()
        );
        backend
    })
}

/// Host directories the container must see where the host has them:
/// the temp dir read-write, then the workspace, the target dir and the
/// module under test (`$MOD_WSGI_TELEMETRY_SO`) read-only, each unless a
/// directory before it already holds it.
fn mount_dirs() -> Vec<(PathBuf, bool)> {
    let mut want = vec![(std::env::temp_dir(), true), (workspace_root(), false)];
    want.push((target_dir(), false));
    if let Some(so) = std::env::var_os("MOD_WSGI_TELEMETRY_SO") {
        if let Some(dir) = Path::new(&so).parent() {
            want.push((dir.to_path_buf(), false));
        }
    }
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    for (dir, rw) in want {
        let dir = dir.canonicalize().unwrap_or(dir);
        if !out.iter().any(|(d, _)| dir.starts_with(d)) {
            out.push((dir, rw));
        }
    }
    out
}

impl Sandbox {
    fn start() -> Sandbox {
        let image = containers::httpd_image(RELEASE);
        let mounts = mount_dirs();
        let me = std::process::id().to_string();
        let mut args: Vec<String> = [
            "--rm",
            "--label",
            &format!("org.mod-wsgi-telemetry.test-pid={me}"),
            "--network",
            "host",
            "--pid",
            "host",
            "--ulimit",
            "core=-1",
        ]
        .map(String::from)
        .to_vec();
        for (dir, rw) in &mounts {
            let d = dir.display();
            args.push("-v".into());
            args.push(format!("{d}:{d}:{}", if *rw { "rw" } else { "ro" }));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let container = Container::run(
            &args,
            &image,
            &["tail", &format!("--pid={me}"), "-f", "/dev/null"],
        );
        remove_at_exit(&container.id);
        let watcher: u32 = Command::new("docker")
            .args(["inspect", "-f", "{{.State.Pid}}", &container.id])
            .stdin(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(0);
        // The pids, sockets and paths the tests use are this machine's:
        // an engine elsewhere (another host, a VM, a parent container)
        // would run httpd where none of them mean anything.
        // (It may still be runc's init, about to exec the watcher.)
        let comm = || std::fs::read_to_string(format!("/proc/{watcher}/comm"));
        let t0 = Instant::now();
        while comm().is_ok_and(|c| c.trim() != "tail") && t0.elapsed() < PATIENCE {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            comm().is_ok_and(|c| c.trim() == "tail"),
            "httpd backend: the container's process (pid {watcher}) is not visible here \
             ({:?}): the Docker engine does not share this machine's pid namespace; \
             set MWT_HTTPD=host",
            comm()
        );
        Sandbox {
            container,
            image,
            watcher,
            mounts: mounts.into_iter().map(|(d, _)| d).collect(),
        }
    }

    /// `docker exec` as this process's uid and gid, with `env`.
    fn exec<'a>(&self, env: impl IntoIterator<Item = (&'a String, &'a String)>) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("exec");
        // SAFETY: geteuid and getegid have no preconditions.
        let ids = unsafe { (libc::geteuid(), libc::getegid()) };
        cmd.arg("-u").arg(format!("{}:{}", ids.0, ids.1));
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.arg(&self.container.id);
        cmd
    }
}

/// Registers `docker rm -f <id>` for the end of the process (`exit`, which
/// the test harness calls whether tests failed or not).
fn remove_at_exit(id: &str) {
    static IDS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    extern "C" fn remove() {
        let ids = IDS.lock().map(|v| v.clone()).unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(ids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
    let Ok(mut ids) = IDS.lock() else { return };
    if ids.is_empty() {
        // SAFETY: `remove` is a plain function that never unwinds (it
        // ignores every error); registering it has no preconditions.
        unsafe { libc::atexit(remove) };
    }
    ids.push(id.to_string());
}

impl Backend {
    /// One line: the backend and what it runs.
    pub fn describe(&self) -> String {
        match self {
            Backend::Host => format!("host {APACHE2}"),
            Backend::Container(s) => format!(
                "container {} from {}, {APACHE2} by docker exec",
                &s.container.id[..12.min(s.container.id.len())],
                s.image
            ),
        }
    }

    /// Which one.
    pub fn choice(&self) -> Choice {
        match self {
            Backend::Host => Choice::Host,
            Backend::Container(_) => Choice::Container,
        }
    }

    /// `apache2 <args>` with `env` added to httpd's environment (the host's
    /// is inherited on the host; the image's in the container).
    pub fn apache2<'a, I, S>(
        &self,
        args: I,
        env: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        match self {
            Backend::Host => {
                let mut cmd = Command::new(APACHE2);
                cmd.args(args).envs(env);
                cmd
            }
            Backend::Container(s) => {
                let mut cmd = s.exec(env);
                cmd.arg(APACHE2).args(args);
                cmd
            }
        }
    }

    /// Spawns httpd in the foreground with core dumps allowed, in a process
    /// group of its own (on shutdown httpd signals its whole group, which
    /// must not include the test runner): the process to wait for (httpd
    /// itself, or the `docker exec` that ends with it) and httpd's pid.
    pub fn spawn_httpd(&self, conf: &Path, env: &[(String, String)]) -> (Child, u32) {
        let env = env.iter().map(|(k, v)| (k, v));
        match self {
            Backend::Host => {
                let child = self
                    .apache2(
                        [OsStr::new("-f"), conf.as_os_str(), "-DFOREGROUND".as_ref()],
                        env,
                    )
                    .process_group(0)
                    .stdin(Stdio::null())
                    .spawn_with_core_dumps()
                    .expect("spawn /usr/sbin/apache2");
                let pid = child.id();
                (child, pid)
            }
            Backend::Container(s) => {
                // The shell prints its pid (a host pid: the container
                // shares the pid namespace), then becomes httpd. `docker
                // exec` makes it a session and group leader; the container
                // allows core files of any size (`--ulimit core=-1`).
                let mut child = s
                    .exec(env)
                    .args(["sh", "-c", "echo $$ && exec \"$@\"", "sh", APACHE2, "-f"])
                    .arg(conf)
                    .arg("-DFOREGROUND")
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn docker exec");
                let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
                let mut line = String::new();
                let _ = out.read_line(&mut line);
                let pid = line.trim().parse().unwrap_or_else(|_| {
                    let _ = child.kill();
                    panic!(
                        "docker exec in {} printed no pid ({line:?}; its stderr is above)",
                        s.container.id
                    )
                });
                // Whatever httpd writes on stdout, as on the host.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut out, &mut std::io::stderr());
                });
                (child, pid)
            }
        }
    }

    /// gdb's `thread apply all bt` of a core file httpd left, read with the
    /// files that httpd ran: the image's in a container (its root, seen
    /// through `/proc/<watcher>/root`), the host's otherwise.
    pub fn backtrace(&self, core: &Path) -> std::io::Result<std::process::Output> {
        let mut gdb = Command::new("gdb");
        gdb.args(["-batch", "-nx"]).stdin(Stdio::null());
        let _copy = match self {
            Backend::Host => {
                gdb.args(["-ex", "thread apply all bt", APACHE2]);
                None
            }
            Backend::Container(s) => {
                let root = format!("/proc/{}/root", s.watcher);
                // gdb resolves the executable's path, and the magic link
                // /proc/<pid>/root reads as `/`: it would load the host's
                // apache2. A copy keeps the image's; the libraries are
                // found under the sysroot (set before the files load).
                let dir = tempfile::tempdir()?;
                let exe = dir.path().join("apache2");
                std::fs::copy(format!("{root}{APACHE2}"), &exe)?;
                gdb.arg("-iex")
                    .arg(format!("set sysroot {root}"))
                    .args(["-ex", "thread apply all bt"])
                    .arg(&exe);
                Some(dir)
            }
        };
        gdb.arg(core).output()
    }

    /// Panics with a clear message if httpd could not see `path` (the
    /// container sees only its mounts).
    pub fn assert_visible(&self, path: &Path, what: &str) {
        if let Backend::Container(s) = self {
            let p = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            assert!(
                s.mounts.iter().any(|m| p.starts_with(m)) || is_in_image(path),
                "{what} {} is not visible in the httpd container, which sees {:?} \
                 (move it under one of them, or set MWT_HTTPD=host)",
                path.display(),
                s.mounts
            );
        }
    }
}

/// Paths the image itself provides (httpd's own modules).
fn is_in_image(path: &Path) -> bool {
    path.starts_with("/usr/lib/apache2/modules")
}

/// Spawning with core dumps allowed: a child that crashes leaves `core*`
/// in the ServerRoot's `run/` (`CoreDumpDirectory`, when the kernel's
/// `core_pattern` is a plain file name), and [`crate::Collector::wait_for`]
/// prints its backtrace.
trait SpawnWithCoreDumps {
    fn spawn_with_core_dumps(&mut self) -> std::io::Result<Child>;
}

impl SpawnWithCoreDumps for Command {
    fn spawn_with_core_dumps(&mut self) -> std::io::Result<Child> {
        // SAFETY: setrlimit is async-signal-safe; nothing else runs
        // between fork and exec.
        unsafe {
            self.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: libc::RLIM_INFINITY,
                    rlim_max: libc::RLIM_INFINITY,
                };
                // Not fatal: without the limit there is just no core.
                let _ = libc::setrlimit(libc::RLIMIT_CORE, &lim);
                Ok(())
            })
        };
        self.spawn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine_up() -> Result<String, String> {
        Ok("20.10.24".into())
    }
    fn engine_down() -> Result<String, String> {
        Err("no Docker engine reachable: Cannot connect".into())
    }
    fn never() -> Result<String, String> {
        panic!("the engine must not be asked")
    }

    #[test]
    fn the_backend_follows_mwt_httpd_and_the_engine() {
        assert_eq!(choose(Some("host"), never).unwrap().0, Choice::Host);
        assert_eq!(choose(None, engine_up).unwrap().0, Choice::Container);
        assert_eq!(choose(Some(""), engine_up).unwrap().0, Choice::Container);
        let (c, why) = choose(None, engine_down).unwrap();
        assert_eq!(c, Choice::Host);
        assert!(why.contains("no Docker engine"), "{why}");
        assert_eq!(
            choose(Some("container"), engine_up).unwrap().0,
            Choice::Container
        );
        // Asked for explicitly, never a silent fallback.
        let e = choose(Some("container"), engine_down).unwrap_err();
        assert!(e.contains("no Docker engine"), "{e}");
        let e = choose(Some("docker"), never).unwrap_err();
        assert!(e.contains("`docker`"), "{e}");
    }
}
