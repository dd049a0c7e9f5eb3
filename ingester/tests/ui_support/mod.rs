//! Helpers of the browser tests and the UI benchmark, on top of the crate's
//! harness ([`common`], with the test kit: the real `mod_wsgi-telemetry
//! serve` on a free port with its own socket, `replay` of the corpus, raw
//! HTTP): headless Chromium through chromedriver.
//! Every process started here is killed by its pid when its guard drops.

#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

pub use common::*;

use fantoccini::{Client, ClientBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn screenshot_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|p| p.join("ui-screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/ui-screenshots"));
    std::fs::create_dir_all(&d).expect("screenshot dir");
    d
}

/// Headless Chromium driven through chromedriver.
pub struct Browser {
    pub client: Client,
    _driver: KillTree,
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
        let driver = KillTree(driver, "chromedriver");
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

    /// Polls `script` until it returns true; after the test kit's
    /// [`PATIENCE`] (a hang guard, not a timing assertion: on a loaded
    /// 2-core machine a page busy with a multi-megabyte snapshot beside
    /// another test's browser took more than 30 s) panics with `what` and
    /// what the page was doing ([`PAGE_STATE`]).
    pub async fn wait_true(&self, script: &str, what: &str) {
        let t0 = Instant::now();
        loop {
            if self.js(script).await == serde_json::Value::Bool(true) {
                return;
            }
            if t0.elapsed() >= PATIENCE {
                let state = self.js(PAGE_STATE).await;
                panic!("timed out after {PATIENCE:?} waiting for: {what}\npage: {state}");
            }
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

    /// Runs a Chrome DevTools protocol command on the page (chromedriver's
    /// `goog/cdp/execute`): its result as JSON.
    pub async fn cdp(&self, cmd: &str, params: serde_json::Value) -> serde_json::Value {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_string(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("DevTools command {cmd} failed: {e}"))
    }

    /// The page's cumulative DevTools `Performance` metrics by name
    /// (`ThreadTime`, `TaskDuration`, `ScriptDuration`, `JSHeapUsedSize`, …);
    /// enables the domain on first use.
    pub async fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        self.cdp("Performance.enable", serde_json::json!({})).await;
        let m = self
            .cdp("Performance.getMetrics", serde_json::json!({}))
            .await;
        m["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_f64()?)))
            .collect()
    }

    /// JS heap in use after a full garbage collection, in bytes (DevTools
    /// `HeapProfiler.collectGarbage`, then `Runtime.getHeapUsage`).
    pub async fn heap_after_gc(&self) -> f64 {
        self.cdp("HeapProfiler.collectGarbage", serde_json::json!({}))
            .await;
        self.cdp("Runtime.getHeapUsage", serde_json::json!({}))
            .await["usedSize"]
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// What a timed-out [`Browser::wait_true`] shows of the page: its
/// connection, what it holds, whether a redraw is still spread over frames,
/// how many redraws it made and its uncaught errors.
const PAGE_STATE: &str = r#"
const a = window.__telemetry;
if (!a) return { loaded: document.readyState, app: false, errors: window.__telemetryErrors || [] };
const v = a.views[a.ui.tab];
return { conn: a.conn.state, snapshots: a.store.snapshotCount || 0, procs: a.store.procs.size,
  datagrams: a.store.datagrams, now: a.store.now, cards: document.querySelectorAll('#proc-cards .pcard').length,
  tab: a.ui.tab, viewPending: !!(v && v.pending && v.pending()), sidebarPending: a.sidebar.pending(),
  rafPending: !!a.rafPending, redraws: (window.__telemetryPerf || {}).redraws,
  visibility: document.visibilityState, errors: window.__telemetryErrors || [] };
"#;

/// A DevTools protocol command sent through chromedriver.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(serde_json::json!({"cmd": self.cmd, "params": self.params}).to_string()),
        )
    }
}

/// Picks `value` in the `<select id=id>` (as a user would: change event).
pub async fn select(b: &Browser, id: &str, value: &str) {
    let ok = b
        .js(&format!(
            "const s = document.getElementById({id:?}); if (![...s.options].some(o => o.value === {value:?})) return false; s.value = {value:?}; s.dispatchEvent(new Event('change')); return true;"
        ))
        .await;
    assert_eq!(
        ok,
        serde_json::Value::Bool(true),
        "select #{id} has no option {value:?}"
    );
}

/// Clicks tab `name` and waits until it is drawn.
pub async fn tab(b: &Browser, name: &str) {
    b.js(&format!(
        "document.querySelector('.tab-btn[data-tab={name}]').click(); return true;"
    ))
    .await;
    b.wait_true(
        &format!("return document.getElementById('tab-{name}').classList.contains('active') && window.__telemetryPerf.lastRedrawTab === '{name}' && !(window.__telemetry.views['{name}'].pending && window.__telemetry.views['{name}'].pending());"),
        &format!("tab {name} drawn"),
    )
    .await;
    // one more frame so that the canvas content is on screen
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}
