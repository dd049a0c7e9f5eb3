//! The browser UI behind a real reverse proxy at a sub-path: Debian's
//! Apache (its own ServerRoot in a temp dir, on a free loopback port) runs
//! the example we ship, `conf-examples/reverse-proxy.conf`, in front of the
//! real `serve`; headless Chromium opens `http://127.0.0.1:PORT/telemetry/`.
//!
//! Two set-ups: `serve --root-path /telemetry` (the example without its
//! `X-Forwarded-Prefix` line), and plain `serve` with the prefix set by the
//! proxy. Each asserts that the page's assets load under the prefix, that
//! the WebSocket connects through the proxy and live data arrives on it,
//! and that `POST /api/slow/clear` works through the proxy (the Origin check
//! passes on `X-Forwarded-Host`) while a foreign Origin is still refused.
//!
//! Needs `apache2` (Debian: the modules in /usr/lib/apache2/modules),
//! `chromium` and `chromium-driver`.

mod ui_support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use ui_support::{
    bin, corpus_records, free_port, http, poll, replay_corpus, wait_for_port, Browser, KillTree,
    Serve,
};

const EXAMPLE: &str = include_str!("../../conf-examples/reverse-proxy.conf");
/// serve's address as written in the example.
const EXAMPLE_UPSTREAM: &str = "127.0.0.1:8888";

fn modules_dir() -> PathBuf {
    std::env::var_os("APACHE_MODULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/apache2/modules"))
}

/// A running Apache; killed (with its children, by pid) on drop.
struct Apache {
    _guard: KillTree,
    port: u16,
    root: tempfile::TempDir,
}

impl Apache {
    /// Starts Apache with the shipped example, pointed at `upstream_port`;
    /// `forwarded_prefix: false` drops the example's RequestHeader line
    /// (the `--root-path` variant).
    fn start(upstream_port: u16, forwarded_prefix: bool) -> Apache {
        assert!(
            EXAMPLE.contains(EXAMPLE_UPSTREAM),
            "the example proxies to {EXAMPLE_UPSTREAM}"
        );
        assert!(
            EXAMPLE.contains("RequestHeader set X-Forwarded-Prefix \"/telemetry\""),
            "the example sets X-Forwarded-Prefix"
        );
        let example: String = EXAMPLE
            .lines()
            .filter(|l| forwarded_prefix || !l.trim_start().starts_with("RequestHeader"))
            .map(|l| l.replace(EXAMPLE_UPSTREAM, &format!("127.0.0.1:{upstream_port}")))
            .collect::<Vec<_>>()
            .join("\n");
        let root = tempfile::tempdir().expect("apache root");
        let port = free_port();
        let r = root.path().display();
        let m = modules_dir();
        let load =
            |name: &str, file: &str| format!("LoadModule {name} {}\n", m.join(file).display());
        let mut conf = format!(
            "ServerRoot \"{r}\"\nListen 127.0.0.1:{port}\nServerName 127.0.0.1:{port}\n\
             PidFile \"{r}/httpd.pid\"\nDefaultRuntimeDir \"{r}\"\nErrorLog \"{r}/error.log\"\n\
             LogLevel warn\nLogFormat \"%h \\\"%r\\\" %>s %b\" plain\nCustomLog \"{r}/access.log\" plain\n"
        );
        // Apache refuses to run its children as root.
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            conf.push_str("User nobody\nGroup nogroup\n");
        }
        conf.push_str(&load("mpm_event_module", "mod_mpm_event.so"));
        conf.push_str(&load("authz_core_module", "mod_authz_core.so"));
        conf.push_str(&load("alias_module", "mod_alias.so"));
        conf.push_str(&load("headers_module", "mod_headers.so"));
        conf.push_str(&load("proxy_module", "mod_proxy.so"));
        conf.push_str(&load("proxy_http_module", "mod_proxy_http.so"));
        conf.push('\n');
        conf.push_str(&example);
        conf.push('\n');
        let conf_path = root.path().join("httpd.conf");
        std::fs::write(&conf_path, conf).expect("write httpd.conf");
        let child = Command::new(std::env::var("APACHE2").unwrap_or_else(|_| "apache2".into()))
            .arg("-f")
            .arg(&conf_path)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .spawn()
            .expect("start apache2 (Debian package apache2)");
        let guard = KillTree(child, "apache2");
        wait_for_port(port, "apache2");
        Apache {
            _guard: guard,
            port,
            root,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/telemetry/", self.port)
    }

    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.root.path().join(f)).unwrap_or_default();
        format!(
            "--- error.log\n{}\n--- access.log\n{}",
            read("error.log"),
            read("access.log")
        )
    }
}

async fn ui_through_proxy(serve_args: &[&str], forwarded_prefix: bool, shot: &str) {
    let serve = Serve::start(bin(), serve_args);
    let apache = Apache::start(serve.port, forwarded_prefix);
    let ap = apache.port;

    // The mount point without its slash redirects to the UI.
    let (status, head, _) = http(
        ap,
        &format!("GET /telemetry HTTP/1.0\r\nHost: 127.0.0.1:{ap}\r\n\r\n"),
    );
    assert!(
        status == 301 && head.contains("/telemetry/"),
        "redirect: {status}\n{head}\n{}",
        apache.logs()
    );
    // The page names its assets under the prefix.
    let (status, _, body) = http(
        ap,
        &format!("GET /telemetry/ HTTP/1.0\r\nHost: 127.0.0.1:{ap}\r\n\r\n"),
    );
    assert_eq!(status, 200, "index through the proxy\n{}", apache.logs());
    assert!(
        body.contains("window.TELEMETRY_BASE = \"/telemetry\""),
        "base path injected:\n{}",
        &body[..body.len().min(600)]
    );

    // Data that is already there (the snapshot), then the browser.
    replay_corpus(&serve.sock, &["--restamp"]);
    let b = Browser::start(1400, 900).await;
    b.client.goto(&apache.url()).await.expect("open page");
    b.wait_true(
        "return !!(window.__telemetry && window.__telemetry.conn.state === 'open' && window.__telemetry.store.procs.size > 0);",
        "page loaded its modules and its WebSocket opened through the proxy",
    )
    .await;
    let page = b
        .js(r#"
            const t = window.__telemetry;
            const sheets = [...document.styleSheets].filter(s => s.href).map(s => ({href: s.href, rules: s.cssRules.length}));
            const scripts = performance.getEntriesByType('resource').filter(e => e.name.includes('/static/')).map(e => e.name);
            return {
              base: window.TELEMETRY_BASE,
              ws: t.conn.url,
              sheets,
              scripts,
              // style.css applied: the top bar is a flex row
              topbar: getComputedStyle(document.getElementById('topbar')).display,
            };"#)
        .await;
    let base = format!("http://127.0.0.1:{ap}/telemetry/static/");
    assert_eq!(page["base"], "/telemetry", "{page}");
    assert_eq!(
        page["ws"],
        // The page asks for the batched stream (`?batch=500`); the query
        // must pass the proxy too.
        Value::String(format!("ws://127.0.0.1:{ap}/telemetry/ws?batch=500")),
        "{page}"
    );
    assert_eq!(page["topbar"], "flex", "stylesheet applied: {page}");
    let sheets = page["sheets"].as_array().unwrap();
    assert!(
        sheets
            .iter()
            .any(|s| s["href"] == Value::String(format!("{base}style.css"))
                && s["rules"].as_u64().unwrap_or(0) > 10),
        "style.css through the proxy: {page}"
    );
    let scripts: Vec<&str> = page["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for f in ["app.js", "js/store.js", "js/views/capacity.js"] {
        assert!(
            scripts.contains(&format!("{base}{f}").as_str()),
            "{f} loaded through the proxy: {scripts:?}"
        );
    }
    assert!(
        scripts.iter().all(|s| s.starts_with(&base)),
        "every asset under the prefix: {scripts:?}"
    );

    // Live data on the proxied WebSocket after the snapshot: batched frames
    // (the page's default), or sample messages on the per-datagram stream.
    let live = "((window.__telemetryPerf.byType.sample || 0) + (window.__telemetryPerf.byType.batch || 0))";
    let before = b.js(&format!("return {live};")).await.as_u64().unwrap();
    replay_corpus(&serve.sock, &["--restamp"]);
    b.wait_true(
        &format!("return {live} > {before} && document.querySelectorAll('#proc-cards .pcard').length > 0;"),
        "live samples through the proxied WebSocket",
    )
    .await;
    // The clears go out once serve has taken in the whole replay. Before
    // that it is still publishing the replay's ~12,000 messages, and a
    // WebSocket client that has fallen more than the server's ring of recent
    // messages behind (this page, through the proxy, on a busy machine)
    // loses the oldest (counted as ws_messages_dropped, docs/security.md):
    // a slow_clear published mid-flood could be among them, and none would
    // come after to make up for it.
    // (Polled with a small history budget: a full snapshot every 20 ms
    // would slow the ingest it waits for.)
    let replayed = 2 * corpus_records().len() as u64;
    poll(
        &format!("serve took in both replays ({replayed} datagrams)"),
        || {
            let (status, _, body) = http(
                serve.port,
                "GET /api/state?budget=1 HTTP/1.0\r\nHost: {HOST}\r\n\r\n",
            );
            let st: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}"))?;
            match st["total_received"].as_u64() {
                Some(n) if n == replayed => Ok(()),
                n => Err(format!("total_received {n:?}")),
            }
        },
    );

    // POST /api/slow/clear from the page, through the proxy: the same-origin
    // check passes, and the server's slow_clear broadcast comes back on the
    // WebSocket.
    let status = b
        .js("return fetch(window.TELEMETRY_BASE + '/api/slow/clear', {method: 'POST'}).then(r => r.status);")
        .await;
    assert_eq!(
        status,
        200,
        "POST /api/slow/clear via the proxy\n{}",
        apache.logs()
    );
    // One clear at a time: the batched stream carries the clears of one
    // frame (500 ms) as one.
    b.wait_true(
        "return (window.__telemetryPerf.byType.slow_clear || 0) >= 1;",
        "the first slow_clear arrived on the proxied WebSocket",
    )
    .await;
    b.js("document.querySelector('.tab-btn[data-tab=slow]').click(); document.getElementById('slow-clear').click(); return true;")
        .await;
    b.wait_true(
        "return (window.__telemetryPerf.byType.slow_clear || 0) >= 2;",
        "both slow_clear broadcasts arrived on the proxied WebSocket",
    )
    .await;
    // The check is still there: another site's page is refused through the proxy.
    let (status, _, _) = http(
        ap,
        &format!(
            "POST /telemetry/api/slow/clear HTTP/1.0\r\nHost: 127.0.0.1:{ap}\r\nOrigin: http://evil.example\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert_eq!(status, 403, "cross-origin POST through the proxy");
    let (status, _, _) = http(
        ap,
        &format!(
            "GET /telemetry/ws HTTP/1.1\r\nHost: 127.0.0.1:{ap}\r\nOrigin: http://evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    );
    assert_eq!(status, 403, "cross-origin WebSocket through the proxy");

    b.js("document.querySelector('.tab-btn[data-tab=overview]').click(); return true;")
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.screenshot(shot).await;
    assert_eq!(
        b.errors().await,
        Vec::<String>::new(),
        "uncaught page errors"
    );
    // Everything so far went through the proxy without an error.
    assert!(
        !apache.logs().contains("[proxy:error]"),
        "proxy errors:\n{}",
        apache.logs()
    );
    b.close().await;
    // The browser leaving may catch the tunnel writing what serve sent to a
    // socket the browser has just closed: Apache logs AH03307 "error on
    // origin" ("origin" names the side the data came from) with EPIPE.
    // That is the client leaving, not a fault; anything else is.
    let logs = apache.logs();
    let unexpected: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("[proxy:error]") && !is_client_gone(l))
        .collect();
    assert!(
        unexpected.is_empty(),
        "proxy errors after the browser closed:\n{}",
        logs
    );
}

/// Apache's tunnel failing to pass serve's data on to a browser that left.
fn is_client_gone(line: &str) -> bool {
    line.contains("AH03307")
        && line.contains("error on origin - ap_pass_brigade")
        && (line.contains("(32)Broken pipe") || line.contains("(104)Connection reset by peer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_behind_apache_with_root_path() {
    ui_through_proxy(&["--root-path", "/telemetry"], false, "proxy-root-path").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_behind_apache_with_forwarded_prefix() {
    ui_through_proxy(&[], true, "proxy-forwarded-prefix").await;
}

#[test]
fn only_the_client_leaving_is_excused() {
    // As logged by Debian's Apache 2.4.71 when the browser closed.
    let gone = "[Thu Nov 26 11:35:57.309840 2026] [proxy:error] [pid 12239:tid 12253] (32)Broken pipe: [client 127.0.0.1:51600] AH03307: ap_proxy_transfer_between_connections: error on origin - ap_pass_brigade";
    assert!(is_client_gone(gone));
    // serve failing to take the browser's data, or a refused connection, is not.
    assert!(!is_client_gone(
        &gone.replace("error on origin", "error on client")
    ));
    assert!(!is_client_gone("[proxy:error] [pid 1:tid 2] (111)Connection refused: AH00957: http: attempt to connect to 127.0.0.1:8888 (127.0.0.1:8888) failed"));
}
