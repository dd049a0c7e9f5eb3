//! Which of our hooks an MPM child keeps in httpd's hook arrays
//! (`mod_wsgi_reporter/src/ffi/lifecycle/unused_hooks.rs`), as the child
//! itself reports them: mod_info's `/server-info?hooks` page is generated
//! from the arrays of the process that serves it. Not configured: none of
//! our per-request or per-connection hooks; direct mode: only
//! `pre_connection`, and only with `MaxConnectionsPerChild`; filter mode:
//! all of them. mod_wsgi's own handler entry stays in every case, and the
//! application is served.

use integration_tests::*;

const INFO: &str = "LoadModule info_module /usr/lib/apache2/modules/mod_info.so\n\
                    <Location /server-info>\n  SetHandler server-info\n</Location>\n";

/// Module names listed under one hook of `/server-info?hooks`.
fn hook_modules(page: &str, hook: &str) -> Vec<String> {
    let head = format!("<strong>{hook}:</strong>");
    let start = page
        .find(&head)
        .unwrap_or_else(|| panic!("no {hook:?} section in server-info:\n{page}"));
    let rest = &page[start + head.len()..];
    let section = &rest[..rest.find("</tt>").expect("end of the hook's list")];
    section
        .split("href=\"?")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

struct Seen {
    pre_connection: Vec<String>,
    handlers: Vec<String>,
    insert_errors: Vec<String>,
    log: String,
}

fn run(opts: &Options) -> Seen {
    let mut httpd = Httpd::start(opts);
    assert_eq!(httpd.get("/app/hello").0, 200, "the application is served");
    let (status, body) = httpd.get("/server-info?hooks");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&body).into_owned();
    httpd.stop();
    Seen {
        pre_connection: hook_modules(&page, "Pre-Connection"),
        handlers: hook_modules(&page, "Content Handlers"),
        insert_errors: hook_modules(&page, "Insert Errors"),
        log: httpd.error_log(),
    }
}

const OURS: &str = "mod_wsgi_telemetry.c";

fn has(v: &[String], m: &str) -> bool {
    v.iter().any(|x| x == m)
}

fn telemetry(mpm: Mpm, extra: &str) -> Options {
    let dir = tempfile::tempdir().unwrap();
    // Nobody listens: the datagrams are dropped (and counted); only the
    // hook arrays matter here.
    Options::telemetry(
        mpm,
        &dir.path().join("absent.sock"),
        1.0,
        &format!("{INFO}{extra}"),
    )
}

fn not_configured_keeps_no_request_hook(mpm: Mpm) {
    let opts = Options {
        mpm,
        load_module: true,
        directives: INFO.to_string(),
        wsgi_module: None,
        env: Vec::new(),
    };
    let s = run(&opts);
    assert!(has(&s.handlers, "mod_wsgi.c"), "{:?}", s.handlers);
    assert!(!has(&s.handlers, OURS), "handlers: {:?}", s.handlers);
    assert!(
        !has(&s.pre_connection, OURS),
        "pre_connection: {:?}",
        s.pre_connection
    );
    assert!(
        !has(&s.insert_errors, OURS),
        "insert_error_filter: {:?}",
        s.insert_errors
    );
    // The arrays still hold everybody else's hooks.
    assert!(has(&s.pre_connection, "core.c"), "{:?}", s.pre_connection);
}

fn direct_mode_keeps_pre_connection_only_for_max_connections(mpm: Mpm) {
    let s = run(&telemetry(mpm, ""));
    assert!(
        s.log
            .contains("Requests are accounted from mod_wsgi's own calls."),
        "direct mode:\n{}",
        s.log
    );
    assert!(has(&s.handlers, "mod_wsgi.c"), "{:?}", s.handlers);
    assert!(!has(&s.handlers, OURS), "handlers: {:?}", s.handlers);
    assert!(!has(&s.pre_connection, OURS), "{:?}", s.pre_connection);
    assert!(!has(&s.insert_errors, OURS), "{:?}", s.insert_errors);

    let s = run(&telemetry(mpm, "MaxConnectionsPerChild 1000\n"));
    assert!(has(&s.pre_connection, OURS), "{:?}", s.pre_connection);
    assert!(!has(&s.handlers, OURS), "handlers: {:?}", s.handlers);
}

fn filter_mode_keeps_every_hook(mpm: Mpm) {
    let mut opts = telemetry(mpm, "");
    opts.env
        .push(("MOD_WSGI_TELEMETRY_FILTERS".into(), "1".into()));
    let s = run(&opts);
    assert!(
        s.log.contains("Requests are accounted with filters"),
        "filter mode:\n{}",
        s.log
    );
    assert!(has(&s.handlers, OURS), "{:?}", s.handlers);
    assert!(has(&s.handlers, "mod_wsgi.c"), "{:?}", s.handlers);
    assert!(has(&s.pre_connection, OURS), "{:?}", s.pre_connection);
    assert!(has(&s.insert_errors, OURS), "{:?}", s.insert_errors);
}

both_mpms!(
    not_configured_keeps_no_request_hook,
    direct_mode_keeps_pre_connection_only_for_max_connections,
    filter_mode_keeps_every_hook
);
