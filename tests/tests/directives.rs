//! Every directive error form of `docs/module.md` "Directives" makes `apache2 -t` fail
//! with our message; every valid form passes.
//!
//! `apache2 -t` runs in the harness's backend, the bookworm image by
//! default (docs/containers.md). So does the refusal beside mod_wsgi 6.1.1:
//! scripts/mod-wsgi-6-venv.sh builds it on the host into the temp dir,
//! which the container sees at the same path, and it links the Python 3.11
//! that the image has too; no image of its own is needed.

use integration_tests::*;

fn opts(mpm: Mpm, lines: &str) -> Options {
    Options {
        mpm,
        load_module: true,
        directives: format!("{lines}\n"),
        wsgi_module: None,
        env: Vec::new(),
    }
}

fn directive_errors_and_valid_forms(mpm: Mpm) {
    let errors: &[(&str, &str)] = &[
        // An empty word ends httpd's argument list, so httpd's own arity
        // error comes first (the reference's "target required" text is
        // unreachable through httpd; the unit tests cover it).
        (r#"WSGITelemetryService """#, "WSGITelemetryService takes 1-2 arguments"),
        (
            "WSGITelemetryService udp:127.0.0.1:9000",
            "WSGITelemetryService target must be 'unix:/path' (remote 'udp:host:port' targets are no longer supported)",
        ),
        ("WSGITelemetryService /tmp/x.sock", "WSGITelemetryService target must be 'unix:/path'"),
        ("WSGITelemetryService unix:/tmp/x.sock every=2", "WSGITelemetryService second argument must be 'interval=N'"),
        ("WSGITelemetryService unix:/tmp/x.sock interval=0.1", "WSGITelemetryService interval must be at least 0.5 seconds"),
        ("WSGITelemetryService unix:/tmp/x.sock interval=fast", "WSGITelemetryService interval must be a number of seconds"),
        ("WSGITelemetryService unix:/tmp/x.sock interval=2s", "WSGITelemetryService interval must be a number of seconds"),
        ("WSGITelemetryService unix:/tmp/x.sock interval=1 extra", "WSGITelemetryService takes 1-2 arguments"),
        // Out of range: refused at config time (1e300 used to pass `-t` and
        // then panic in every child converting it to a Duration).
        (
            "WSGITelemetryService unix:/tmp/x.sock interval=1e300",
            "WSGITelemetryService interval must be at most 3600 seconds (write interval=N with N from 0.5 to 3600)",
        ),
        (
            "WSGITelemetryService unix:/tmp/x.sock interval=3600.5",
            "WSGITelemetryService interval must be at most 3600 seconds",
        ),
        (r#"WSGISlowRequests """#, "WSGISlowRequests takes one argument"),
        ("WSGISlowRequests -1", "WSGISlowRequests threshold must be non-negative"),
        ("WSGISlowRequests slow", "WSGISlowRequests threshold must be a number of seconds"),
        (
            "WSGISlowRequests 1e300",
            "WSGISlowRequests threshold must be at most 86400 seconds (one day); 0 turns slow-request records off",
        ),
        ("WSGISlowRequests 86400.5", "WSGISlowRequests threshold must be at most 86400 seconds"),
        ("WSGITelemetryOptions", "WSGITelemetryOptions: at least one flag required"),
        ("WSGITelemetryOptions +", "WSGITelemetryOptions: bare '+' / '-' is not a flag"),
        (
            "WSGITelemetryOptions +CaptureUserAgent None",
            "WSGITelemetryOptions: cannot mix +/- form with absolute names in a single directive",
        ),
        ("WSGITelemetryOptions +None", "WSGITelemetryOptions: 'None' may not have a +/- prefix"),
        ("WSGITelemetryOptions -All", "WSGITelemetryOptions: 'All' may not have a +/- prefix"),
        ("WSGITelemetryOptions CaptureCookies", "WSGITelemetryOptions: unknown flag 'CaptureCookies'"),
        (
            "WSGITelemetryOptions +AppMetric",
            "WSGITelemetryOptions: unknown flag 'AppMetric' (the flags are CaptureUserAgent, AppMetrics; or None, All)",
        ),
        // Server config only: httpd's own context error.
        (
            "<VirtualHost 127.0.0.1:*>\nWSGITelemetryService unix:/tmp/x.sock\n</VirtualHost>",
            "WSGITelemetryService cannot occur within <VirtualHost> section",
        ),
        ("<Directory />\nWSGISlowRequests 1\n</Directory>", "WSGISlowRequests not allowed in <Directory> context"),
        (
            "<Location />\nWSGITelemetryOptions All\n</Location>",
            "WSGITelemetryOptions not allowed in <Location> context",
        ),
    ];
    for (conf, msg) in errors {
        let (ok, out) = config_test(&opts(mpm, conf));
        assert!(!ok, "{conf:?} must fail, got:\n{out}");
        assert!(out.contains(msg), "{conf:?}: expected {msg:?} in:\n{out}");
    }
    let valid = [
        "WSGITelemetryService unix:/tmp/x.sock",
        "WSGITelemetryService unix:/tmp/x.sock interval=2.5",
        "WSGITelemetryService unix:/tmp/x.sock interval=0.5",
        "WSGITelemetryService unix:/tmp/x.sock interval=3600",
        "WSGITelemetryService unix:",
        "WSGISlowRequests 0",
        "WSGISlowRequests 0.25",
        "WSGISlowRequests 86400",
        "WSGITelemetryOptions None",
        "WSGITelemetryOptions All",
        "WSGITelemetryOptions +CaptureUserAgent",
        "WSGITelemetryOptions -CaptureUserAgent",
        "WSGITelemetryOptions None CaptureUserAgent",
        "WSGITelemetryOptions captureuseragent",
        "WSGITelemetryOptions +AppMetrics",
        "WSGITelemetryOptions -AppMetrics",
        "WSGITelemetryOptions CaptureUserAgent AppMetrics",
        "WSGITelemetryService unix:/tmp/x.sock interval=1\nWSGISlowRequests 2\nWSGITelemetryOptions +CaptureUserAgent",
    ];
    for conf in valid {
        let (ok, out) = config_test(&opts(mpm, conf));
        assert!(ok, "{conf:?} must pass, got:\n{out}");
    }
}

/// Without our module the directives are unknown: proves the errors above
/// come from it.
fn directives_need_the_module(mpm: Mpm) {
    let o = Options {
        mpm,
        load_module: false,
        directives: "WSGISlowRequests 1\n".into(),
        wsgi_module: None,
        env: Vec::new(),
    };
    let (ok, out) = config_test(&o);
    assert!(
        !ok && out.contains("Invalid command 'WSGISlowRequests'"),
        "{out}"
    );
}

/// Beside a mod_wsgi that has its own reporter (6.x), the module refuses to
/// start: one reporter per process, never two. Without our module the same
/// mod_wsgi 6 configuration is fine.
fn refuses_beside_builtin_reporter(mpm: Mpm) {
    let (so, venv) = mod_wsgi6();
    let mut o = Options {
        mpm,
        load_module: true,
        directives: format!("WSGIPythonHome {}\n", venv.display()),
        wsgi_module: Some(so),
        env: Vec::new(),
    };
    let (ok, out) = config_test(&o);
    assert!(!ok, "must refuse:\n{out}");
    assert!(
        out.contains("already has a built-in telemetry reporter"),
        "{out}"
    );
    o.load_module = false;
    let (ok, out) = config_test(&o);
    assert!(ok, "mod_wsgi 6 alone is fine:\n{out}");
}

/// The shipped configuration examples pass `apache2 -t` with our module.
fn conf_examples_pass(mpm: Mpm) {
    let conf = std::fs::read_to_string(
        workspace_root().join("conf-examples/debian/mods-available/wsgi_telemetry.conf"),
    )
    .unwrap();
    let (ok, out) = config_test(&opts(mpm, &conf));
    assert!(ok, "{out}");
    // The daemon-mode lines on top of it.
    let daemon =
        std::fs::read_to_string(workspace_root().join("conf-examples/httpd-daemon-snippet.conf"))
            .unwrap();
    let (ok, out) = config_test(&opts(mpm, &format!("{conf}\n{daemon}")));
    assert!(ok, "{out}");
    let load = std::fs::read_to_string(
        workspace_root().join("conf-examples/debian/mods-available/wsgi_telemetry.load"),
    )
    .unwrap();
    assert!(load.contains(
        "LoadModule wsgi_telemetry_module /usr/lib/apache2/modules/mod_wsgi_telemetry.so"
    ));
}

both_mpms!(
    directive_errors_and_valid_forms,
    directives_need_the_module,
    refuses_beside_builtin_reporter,
    conf_examples_pass
);
