//! Helpers of the browser tests and the UI benchmark, on top of the shared
//! harness ([`common`]: the real `mod_wsgi-telemetry serve` on a free port
//! with its own socket, `replay`, raw HTTP): `replay` of the corpus into
//! `serve`, and headless Chromium through chromedriver.
//! Every process started here is killed by its pid when its guard drops.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

pub use common::*;

use fantoccini::{Client, ClientBuilder};
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
    wait_until(&format!("{what} to listen on {port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// What the browser tests add to the shared harness's `serve`.
impl Serve {
    /// The page's URL.
    pub fn page_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `/api/state` with a query string (e.g. `?budget=…`).
    pub fn api_state(&self, query: &str) -> serde_json::Value {
        let (status, body) = self.get(&format!("/api/state{query}"));
        assert_eq!(status, 200, "/api/state{query}: {body:.300}");
        serde_json::from_str(&body).expect("/api/state JSON")
    }

    fn replay_args<'a>(&self, sock: &'a str, corpus: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--socket", sock];
        args.extend_from_slice(extra);
        args.push(corpus);
        args
    }

    /// `replay` of the corpus with extra arguments, to its end.
    pub fn replay(&self, extra: &[&str]) {
        let (sock, corpus) = (listen(&self.sock), corpus_path().display().to_string());
        run_replay(&self.replay_args(&sock, &corpus, extra));
    }

    /// `replay` of the corpus in the background.
    pub fn replay_spawn(&self, extra: &[&str]) -> Guard {
        let (sock, corpus) = (listen(&self.sock), corpus_path().display().to_string());
        let child = Command::new(bin())
            .arg("replay")
            .args(self.replay_args(&sock, &corpus, extra))
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
