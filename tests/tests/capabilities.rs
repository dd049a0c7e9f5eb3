//! The start-up line: beside the host's mod_wsgi (Debian 12's 4.9.4, a
//! tested version) the Apache parent logs, once per start and once per
//! restart, at `notice` level (so also under `LogLevel warn`), one line
//! naming the version and each capability, with the reason for any that
//! is off; the children then do what it says.

use integration_tests::testkit::wait_until;
use integration_tests::*;

const PREFIX: &str = "mod_wsgi_telemetry: mod_wsgi ";

/// The mod_wsgi version httpd announces ("... mod_wsgi/4.9.4 Python/3.11
/// configured -- resuming normal operations").
fn announced_version(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("resuming normal operations"))
        .expect("resuming line");
    let at = line.find("mod_wsgi/").expect("mod_wsgi/ in the banner") + "mod_wsgi/".len();
    line[at..].split_whitespace().next().unwrap().to_string()
}

fn capability_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(PREFIX))
        .map(str::to_string)
        .collect()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// `extra` goes into the configuration after ours; `env` into httpd's.
fn start(mpm: Mpm, extra: &str, env: &[(&str, &str)]) -> (Httpd, Collector) {
    let root = ServerRoot::new();
    let col = Collector::bind(&root.path("run/telemetry.sock"));
    let mut opts = Options::telemetry(mpm, &col.path, 0.5, extra);
    opts.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let httpd = Httpd::start_in(root, &opts);
    wait_until("httpd resuming normal operations", || {
        httpd.error_log().contains("resuming normal operations")
    });
    (httpd, col)
}

fn one_line_per_start_naming_version_and_capabilities(mpm: Mpm) {
    // LogLevel warn: notice lines are logged whatever the level.
    let (mut httpd, col) = start(mpm, "LogLevel warn", &[]);
    let log = httpd.error_log();
    let version = announced_version(&log);
    let want = format!(
        "{PREFIX}{version} (tested): embedded accounting yes (mod_wsgi's own calls); \
         daemon accounting yes (request hooks in mod_wsgi's GOT); GC attach yes \
         (main interpreter, no configuration; WSGIImportScript for the rest); \
         lifecycle reasons yes (mod_wsgi's publish call)."
    );
    let lines = capability_lines(&log);
    assert_eq!(lines.len(), 1, "exactly one line per start:\n{log}");
    assert!(lines[0].contains("[wsgi_telemetry:notice]"), "{}", lines[0]);
    assert!(lines[0].ends_with(&want), "{}\nwanted …{want}", lines[0]);
    assert!(!log.contains("is not a tested version"), "{log}");
    // Logged by the parent, before its children exist.
    assert!(
        lines[0].contains(&format!("[pid {}", httpd.pid())),
        "{}",
        lines[0]
    );
    assert_eq!(httpd.get("/app/hello").0, 200);

    // A graceful restart is a new start: one more line, no more.
    httpd.graceful();
    wait_until("the second generation", || {
        count(&httpd.error_log(), "resuming normal operations") == 2
    });
    assert_eq!(httpd.get("/app/hello").0, 200);
    let log = httpd.error_log();
    let lines = capability_lines(&log);
    assert_eq!(lines.len(), 2, "one line per start:\n{log}");
    assert!(lines[1].ends_with(&want), "{}", lines[1]);
    httpd.stop();
    col.wait_for("every child stopped", all_stopped);
    let log = httpd.error_log();
    assert_eq!(capability_lines(&log).len(), 2, "{log}");
}

/// What the line says is what the children do: with filter mode forced the
/// line says so and why, and the children account with filters.
fn the_line_names_a_capability_that_is_off_and_why(mpm: Mpm) {
    let (mut httpd, col) = start(mpm, "", &[("MOD_WSGI_TELEMETRY_FILTERS", "1")]);
    assert_eq!(httpd.get("/app/hello").0, 200);
    let log = httpd.error_log();
    let lines = capability_lines(&log);
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains(
            "(tested): embedded accounting yes (httpd filters: MOD_WSGI_TELEMETRY_FILTERS is set); \
             daemon accounting yes"
        ),
        "{}",
        lines[0]
    );
    assert!(
        log.contains("Requests are accounted with filters (MOD_WSGI_TELEMETRY_FILTERS is set)."),
        "{log}"
    );
    assert!(
        !log.contains("Requests are accounted from mod_wsgi's own calls."),
        "{log}"
    );
    httpd.stop();
    let s = col.wait_for("every child stopped", all_stopped);
    assert_eq!(sum_u64(&s, wire::id::REQUEST_COUNT), 1);
}

both_mpms!(
    one_line_per_start_naming_version_and_capabilities,
    the_line_names_a_capability_that_is_off_and_why
);
