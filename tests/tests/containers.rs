//! Smoke test against each Debian release's own httpd and mod_wsgi, in a
//! container: the module built for that release (its headers, its glibc)
//! is copied in with a one-line LoadModule and `WSGITelemetryService`
//! pointing at a socket in a bind-mounted host directory, where our
//! ingester runs on the host; requests go through the container's port
//! published on 127.0.0.1. `/api/state` must count them exactly and name
//! the mod_wsgi version the release ships.
//!
//! Opt-in (`MWT_CONTAINERS=1`, see `integration_tests::containers`).

use std::os::unix::fs::PermissionsExt;

use integration_tests::containers::{self, Container};
use integration_tests::*;

const REQUESTS: u64 = 20;

/// Debian's apache2.conf includes conf-enabled/*.conf after mods-enabled
/// (mod_wsgi), so this loads our module beside the release's mod_wsgi.
const CONF: &str = "\
LoadModule wsgi_telemetry_module /mwt/mod_wsgi_telemetry.so
WSGITelemetryService unix:/mwt/telemetry.sock interval=0.5
# To the container's log: `docker logs`, printed if the test fails.
ErrorLog /proc/self/fd/2
LogLevel info
WSGIScriptAlias /app /mwt/app.wsgi
<Directory /mwt>
    Require all granted
</Directory>
";

fn smoke(release: &str) {
    if !containers::should_run(&format!("containers::{release}")) {
        return;
    }
    let target = containers::target(release);
    let images = containers::images(release);
    let so = containers::module_for(release, &images);

    let dir = tempfile::tempdir().expect("temp dir");
    // www-data in the container must reach the socket and the app.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = |name: &str| dir.path().join(name);
    std::fs::copy(&so, file("mod_wsgi_telemetry.so")).expect("copy the module");
    std::fs::write(file("app.wsgi"), APP).unwrap();
    std::fs::write(file("mwt.conf"), CONF).unwrap();
    let ingester = Serve::at_socket(ingester_bin(), &file("telemetry.sock"), &[]);

    let port = free_port();
    let httpd = Container::run(
        &[
            "-p",
            &format!("127.0.0.1:{port}:80"),
            "-v",
            &format!("{}:/mwt", dir.path().display()),
            "-v",
            &format!(
                "{}:/etc/apache2/conf-enabled/mwt.conf:ro",
                file("mwt.conf").display()
            ),
        ],
        &images.httpd,
        &[],
    );
    // The children reporting is the sign httpd is up (its parent opened the
    // listening socket before forking them); a request sent earlier could
    // meet docker's port proxy with nothing behind it yet.
    // An httpd that could not start (a module it cannot load) ends the
    // container: say so now rather than at the wait's hang guard.
    ingester.wait_state("the children's process_started", |s| {
        assert!(httpd.running(), "{release}: httpd's container exited");
        !s["processes"].as_array().is_none_or(Vec::is_empty)
    });
    let shipped = httpd.exec(&[
        "dpkg-query",
        "-W",
        "-f",
        "${Version}",
        "libapache2-mod-wsgi-py3",
    ]);
    // Debian version "4.9.4-1" -> upstream "4.9.4".
    let shipped = shipped.trim().split('-').next().unwrap().to_string();
    assert!(
        shipped.starts_with(target.mod_wsgi_series),
        "{release} ships mod_wsgi {shipped}, expected {}x",
        target.mod_wsgi_series
    );

    for _ in 0..REQUESTS {
        assert_eq!(
            http_request(port, "GET", "/app/hello", b"", "containers"),
            (200, b"hello".to_vec())
        );
    }
    ingester.wait_state("every request counted", |s| {
        state_sum(s, "request_count") >= REQUESTS
    });
    // A graceful stop flushes each child's final interval: nothing more may
    // arrive than was sent.
    httpd.stop(30);
    let state = ingester.wait_state("every child's process_stopped", |s| {
        let started = s["processes"].as_array().map_or(0, Vec::len);
        started > 0 && state_stopped(s).len() >= started
    });
    assert_eq!(state_sum(&state, "request_count"), REQUESTS, "{release}");

    let log = httpd.logs();
    for p in state["processes"].as_array().unwrap() {
        assert_eq!(
            p["mod_wsgi_version"], shipped,
            "{release}: process {} names another mod_wsgi; error log:\n{log}",
            p["pid"]
        );
    }
    let _ = writeln_summary(release, &shipped, &state, &log);
}

/// The figures the report quotes, on the terminal even when the test passes.
fn writeln_summary(
    release: &str,
    shipped: &str,
    state: &serde_json::Value,
    log: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    let p = &state["processes"][0];
    let notices: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mod_wsgi_telemetry"))
        .collect();
    writeln!(
        std::io::stderr(),
        "containers::{release}: mod_wsgi {shipped} (reported {}), Python {}, {}, mpm {}; \
         {} processes, request_count {}\n  module log lines:\n    {}",
        p["mod_wsgi_version"],
        p["python_version"],
        p["apache_version"],
        p["mpm_name"],
        state["processes"].as_array().map_or(0, Vec::len),
        state_sum(state, "request_count"),
        notices.join("\n    ")
    )
}

#[test]
fn bullseye() {
    smoke("bullseye")
}

#[test]
fn bookworm() {
    smoke("bookworm")
}

#[test]
fn trixie() {
    smoke("trixie")
}
