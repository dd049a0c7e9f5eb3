//! A real Prometheus scraping `/metrics`.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, http_get, last_lines, read_lossy, signal, PATIENCE};

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
