//! Harness shared by the browser tests and the UI benchmark: the real
//! `mod_wsgi-telemetry serve` on a free port with its own socket, `replay`
//! of the corpus into it, and headless Chromium through chromedriver.
//! Every process started here is killed by its pid when its guard drops.

#![allow(dead_code)]

use fantoccini::{Client, ClientBuilder};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills (SIGKILL, by pid) and reaps the child when dropped.
pub struct Guard(pub Child, pub &'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        // Chromium outlives a killed chromedriver: take the child's whole
        // process tree (found through /proc, by pid), deepest first.
        let mut tree = descendants(self.0.id());
        tree.reverse();
        for pid in tree {
            // SAFETY: plain kill(2) on pids that are descendants of our child.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pids of every descendant of `root` (breadth first).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) {
                // the ppid is the second field after the ")" closing the name
                if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                    if let Some(ppid) = rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u32>().ok())
                    {
                        parent_of.push((pid, ppid));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"))
}

pub fn corpus_bin() -> PathBuf {
    corpus_dir().join("anchor-6.1.1-mixed.bin")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mod_wsgi-telemetry")
}

pub fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("ui-screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/ui-screenshots"));
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_for_port(port: u16, what: &str) {
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Minimal HTTP/1.0 request; returns (status, body).
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = raw_http(
        port,
        &format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"),
    );
    (status, body)
}

/// Sends a whole request as written; returns (status, head, body). An
/// HTTP/1.0 request is read to the end of the connection; any other stops
/// after the head (an upgrade request may keep the connection open).
pub fn raw_http(port: u16, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.write_all(request.as_bytes()).expect("send");
    let whole = request.contains(" HTTP/1.0\r\n");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if !whole && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// A running `serve`.
pub struct Serve {
    pub guard: Guard,
    pub port: u16,
    pub socket: PathBuf,
}

impl Serve {
    pub fn start(dir: &Path) -> Serve {
        Serve::start_with(dir, &[])
    }

    /// `serve` with extra options (e.g. `--root-path /telemetry`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Serve {
        let port = free_port();
        let socket = dir.join("telemetry.sock");
        let child = Command::new(bin())
            .args(["serve", "--listen"])
            .arg(format!("unix:{}", socket.display()))
            .args(["--http-port", &port.to_string(), "--log-level", "warn"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start serve");
        let guard = Guard(child, "serve");
        wait_for_port(port, "serve");
        let t0 = Instant::now();
        while !socket.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "serve did not bind its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Serve {
            guard,
            port,
            socket,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn state(&self, query: &str) -> serde_json::Value {
        let (status, body) = http(self.port, "GET", &format!("/api/state{query}"));
        assert_eq!(status, 200, "/api/state");
        serde_json::from_str(&body).expect("/api/state JSON")
    }

    /// `replay` with extra arguments, waiting for it to finish.
    pub fn replay(&self, extra: &[&str]) {
        let st = Command::new(bin())
            .arg("replay")
            .arg("--socket")
            .arg(format!("unix:{}", self.socket.display()))
            .args(extra)
            .arg(corpus_bin())
            .stdout(Stdio::null())
            .status()
            .expect("run replay");
        assert!(st.success(), "replay failed: {st}");
    }

    /// `replay` in the background.
    pub fn replay_spawn(&self, extra: &[&str]) -> Guard {
        let child = Command::new(bin())
            .arg("replay")
            .arg("--socket")
            .arg(format!("unix:{}", self.socket.display()))
            .args(extra)
            .arg(corpus_bin())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn replay");
        Guard(child, "replay")
    }
}

/// Headless Chromium driven through chromedriver.
pub struct Browser {
    pub client: Client,
    _driver: Guard,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver =
            Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver (Debian package chromium-driver)");
        let driver = Guard(driver, "chromedriver");
        wait_for_port(port, "chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--no-first-run".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--enable-precise-memory-info".into(),
            "--js-flags=--expose-gc".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut opts = serde_json::json!({ "args": args });
        if let Ok(b) = std::env::var("CHROMIUM") {
            opts["binary"] = b.into();
        } else if Path::new("/usr/bin/chromium").exists() {
            opts["binary"] = "/usr/bin/chromium".into();
        }
        caps.insert("goog:chromeOptions".into(), opts);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("WebDriver session");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Runs a script (its `return` value as JSON).
    pub async fn js(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns true (or panics with `what`).
    pub async fn wait_true(&self, script: &str, what: &str) {
        let t0 = Instant::now();
        loop {
            if self.js(script).await == serde_json::Value::Bool(true) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let p = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&p, png).expect("write screenshot");
        p
    }

    /// Uncaught page errors collected by index.html.
    pub async fn errors(&self) -> Vec<String> {
        serde_json::from_value(self.js("return window.__telemetryErrors || [];").await)
            .unwrap_or_default()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
