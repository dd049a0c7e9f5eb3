//! The three directives (`docs/module.md` "Directives"), parsed without Apache.
//!
//! Error texts are the reference's, word for word, plus some of ours where
//! the reference silently accepted bad input (documented in docs/module.md):
//! a number that does not parse is an error instead of 0, a socket path
//! that cannot fit in `sun_path` is refused at config time instead of
//! failing silently in every child, and so are an interval above one hour
//! and a slow threshold above one day (an unbounded interval failed in
//! every child when it became a `Duration`).

/// Longest socket path `sockaddr_un` holds (108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// Longest `interval=` accepted, seconds (one hour). Anything longer is a
/// typo, and an unbounded value overflows the reporter's `Duration`.
pub const MAX_INTERVAL_S: f64 = 3600.0;
/// Largest `WSGISlowRequests` threshold accepted, seconds (one day).
pub const MAX_SLOW_THRESHOLD_S: f64 = 86400.0;
/// `WSGITelemetryOptions` flag `CaptureUserAgent`.
pub const CAPTURE_USER_AGENT: u32 = 0x01;
/// `WSGITelemetryOptions` flag `AppMetrics`: the application's own metrics
/// (docs/app-metrics.md). Off by default, and not part of `All`: the
/// reference ingester misreads their datagrams, so an administrator turns
/// them on by name once the socket's reader is this project's `serve`.
pub const APP_METRICS: u32 = 0x02;
/// `WSGITelemetryOptions All`: every flag the reference has (not
/// `AppMetrics`, see there).
pub const ALL_OPTIONS: u32 = CAPTURE_USER_AGENT;
/// The flags `WSGITelemetryOptions` knows, for its error message.
const KNOWN_FLAGS: &str = "CaptureUserAgent, AppMetrics; or None, All";

/// Process-global reporter configuration. `Copy` and heap-free, so it can
/// live in a plain static of the parent without any destructor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// `WSGITelemetryService` seen.
    pub enabled: bool,
    /// Socket path bytes (after `unix:`), `target_len` of them.
    pub target: [u8; MAX_SOCKET_PATH],
    /// Length of `target`.
    pub target_len: usize,
    /// Seconds between ticks.
    pub interval: f64,
    /// `WSGISlowRequests` in whole microseconds; 0 = off.
    pub slow_threshold_us: u64,
    /// `WSGITelemetryOptions` bits.
    pub options: u32,
}

impl Config {
    /// Defaults before any directive.
    pub const DEFAULT: Config = Config {
        enabled: false,
        target: [0; MAX_SOCKET_PATH],
        target_len: 0,
        interval: 1.0,
        slow_threshold_us: 0,
        options: 0,
    };

    /// The socket path.
    pub fn target_path(&self) -> &[u8] {
        &self.target[..self.target_len]
    }

    /// Whether `+CaptureUserAgent` is on.
    pub fn capture_user_agent(&self) -> bool {
        self.options & CAPTURE_USER_AGENT != 0
    }

    /// Whether `+AppMetrics` is on.
    pub fn app_metrics(&self) -> bool {
        self.options & APP_METRICS != 0
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Strict decimal number: the whole argument must parse (no `atof`
/// leniency), and it must be finite.
fn number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    // Only plain decimal notation, as an administrator writes it.
    if !t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-' | b'e' | b'E'))
    {
        return None;
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `WSGITelemetryService unix:/path [interval=SECONDS]`.
pub fn telemetry_service(
    cfg: &mut Config,
    target: &str,
    second: Option<&str>,
) -> Result<(), String> {
    if target.is_empty() {
        return Err("WSGITelemetryService target required".into());
    }
    let Some(path) = target.strip_prefix("unix:") else {
        return Err("WSGITelemetryService target must be 'unix:/path' (remote 'udp:host:port' targets are no longer supported)".into());
    };
    if path.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "WSGITelemetryService socket path is longer than {MAX_SOCKET_PATH} bytes"
        ));
    }
    let mut interval = 1.0;
    if let Some(arg) = second {
        let Some(v) = arg.strip_prefix("interval=") else {
            return Err("WSGITelemetryService second argument must be 'interval=N'".into());
        };
        let Some(v) = number(v) else {
            return Err("WSGITelemetryService interval must be a number of seconds".into());
        };
        if v < 0.5 {
            return Err("WSGITelemetryService interval must be at least 0.5 seconds".into());
        }
        if v > MAX_INTERVAL_S {
            return Err(format!(
                "WSGITelemetryService interval must be at most {MAX_INTERVAL_S} seconds (write interval=N with N from 0.5 to {MAX_INTERVAL_S})"
            ));
        }
        interval = v;
    }
    cfg.enabled = true;
    cfg.target = [0; MAX_SOCKET_PATH];
    cfg.target[..path.len()].copy_from_slice(path.as_bytes());
    cfg.target_len = path.len();
    cfg.interval = interval;
    Ok(())
}

/// `WSGISlowRequests SECONDS`.
pub fn slow_requests(cfg: &mut Config, arg: &str) -> Result<(), String> {
    if arg.is_empty() {
        return Err("WSGISlowRequests threshold (seconds) required".into());
    }
    let Some(v) = number(arg) else {
        return Err("WSGISlowRequests threshold must be a number of seconds".into());
    };
    if v < 0.0 {
        return Err("WSGISlowRequests threshold must be non-negative".into());
    }
    if v > MAX_SLOW_THRESHOLD_S {
        return Err(format!(
            "WSGISlowRequests threshold must be at most {MAX_SLOW_THRESHOLD_S} seconds (one day); 0 turns slow-request records off"
        ));
    }
    cfg.slow_threshold_us = (v * 1e6) as u64;
    Ok(())
}

/// `WSGITelemetryOptions [+|-]Flag ... | None | All`, given the words of the
/// argument string (split by Apache's config-word rules).
pub fn telemetry_options<S: AsRef<str>>(cfg: &mut Config, words: &[S]) -> Result<(), String> {
    if words.is_empty() {
        return Err("WSGITelemetryOptions: at least one flag required".into());
    }
    let mut incremental = cfg.options;
    let mut absolute = 0u32;
    let (mut seen_inc, mut seen_abs) = (false, false);
    for w in words {
        let w = w.as_ref();
        let (prefix, name) = match w.as_bytes().first() {
            Some(b'+') | Some(b'-') => {
                seen_inc = true;
                let name = &w[1..];
                if name.is_empty() {
                    return Err("WSGITelemetryOptions: bare '+' / '-' is not a flag".into());
                }
                (Some(w.as_bytes()[0]), name)
            }
            _ => {
                seen_abs = true;
                (None, w)
            }
        };
        if seen_inc && seen_abs {
            return Err("WSGITelemetryOptions: cannot mix +/- form with absolute names in a single directive".into());
        }
        if name.eq_ignore_ascii_case("None") {
            if prefix.is_some() {
                return Err("WSGITelemetryOptions: 'None' may not have a +/- prefix".into());
            }
            absolute = 0;
            continue;
        }
        if name.eq_ignore_ascii_case("All") {
            if prefix.is_some() {
                return Err("WSGITelemetryOptions: 'All' may not have a +/- prefix".into());
            }
            absolute = ALL_OPTIONS;
            continue;
        }
        let flag = if name.eq_ignore_ascii_case("CaptureUserAgent") {
            CAPTURE_USER_AGENT
        } else if name.eq_ignore_ascii_case("AppMetrics") {
            APP_METRICS
        } else {
            return Err(format!(
                "WSGITelemetryOptions: unknown flag '{name}' (the flags are {KNOWN_FLAGS})"
            ));
        };
        match prefix {
            Some(b'-') => incremental &= !flag,
            Some(_) => incremental |= flag,
            None => absolute |= flag,
        }
    }
    cfg.options = if seen_inc { incremental } else { absolute };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_forms() {
        let mut c = Config::DEFAULT;
        assert_eq!(
            telemetry_service(&mut c, "", None).unwrap_err(),
            "WSGITelemetryService target required"
        );
        assert!(telemetry_service(&mut c, "udp:h:1", None)
            .unwrap_err()
            .contains("no longer supported"));
        assert!(telemetry_service(&mut c, "UNIX:/x", None).is_err());
        assert_eq!(
            telemetry_service(&mut c, "unix:/x", Some("every=1")).unwrap_err(),
            "WSGITelemetryService second argument must be 'interval=N'"
        );
        assert_eq!(
            telemetry_service(&mut c, "unix:/x", Some("interval=0.4")).unwrap_err(),
            "WSGITelemetryService interval must be at least 0.5 seconds"
        );
        assert!(telemetry_service(&mut c, "unix:/x", Some("interval=abc"))
            .unwrap_err()
            .contains("number"));
        assert!(telemetry_service(&mut c, "unix:/x", Some("interval=2s")).is_err());
        assert!(telemetry_service(&mut c, "unix:/x", Some("interval=nan")).is_err());
        for big in ["interval=1e300", "interval=3600.001", "interval=inf"] {
            assert!(
                telemetry_service(&mut c, "unix:/x", Some(big)).is_err(),
                "{big}"
            );
        }
        assert!(!c.enabled);
        telemetry_service(&mut c, "unix:/run/t.sock", Some("interval=2.5")).unwrap();
        assert!(c.enabled);
        assert_eq!(c.target_path(), b"/run/t.sock");
        assert_eq!(c.interval, 2.5);
        telemetry_service(&mut c, "unix:/run/t.sock", Some("interval=3600")).unwrap();
        assert_eq!(c.interval, 3600.0);
        telemetry_service(&mut c, "unix:", None).unwrap();
        assert_eq!(c.target_path(), b"");
        assert_eq!(c.interval, 1.0);
        let long = format!("unix:/{}", "a".repeat(107));
        assert!(telemetry_service(&mut c, &long, None).is_err());
    }

    #[test]
    fn slow_forms() {
        let mut c = Config::DEFAULT;
        assert_eq!(
            slow_requests(&mut c, "").unwrap_err(),
            "WSGISlowRequests threshold (seconds) required"
        );
        assert_eq!(
            slow_requests(&mut c, "-1").unwrap_err(),
            "WSGISlowRequests threshold must be non-negative"
        );
        assert!(slow_requests(&mut c, "fast")
            .unwrap_err()
            .contains("number"));
        assert_eq!(
            slow_requests(&mut c, "1e300").unwrap_err(),
            "WSGISlowRequests threshold must be at most 86400 seconds (one day); 0 turns slow-request records off"
        );
        slow_requests(&mut c, "86400").unwrap();
        assert_eq!(c.slow_threshold_us, 86_400_000_000);
        slow_requests(&mut c, "0.25").unwrap();
        assert_eq!(c.slow_threshold_us, 250_000);
        slow_requests(&mut c, "0").unwrap();
        assert_eq!(c.slow_threshold_us, 0);
    }

    #[test]
    fn options_forms() {
        let mut c = Config::DEFAULT;
        let none: [&str; 0] = [];
        assert_eq!(
            telemetry_options(&mut c, &none).unwrap_err(),
            "WSGITelemetryOptions: at least one flag required"
        );
        assert_eq!(
            telemetry_options(&mut c, &["+"]).unwrap_err(),
            "WSGITelemetryOptions: bare '+' / '-' is not a flag"
        );
        assert!(telemetry_options(&mut c, &["+CaptureUserAgent", "None"])
            .unwrap_err()
            .contains("cannot mix"));
        assert!(telemetry_options(&mut c, &["+None"])
            .unwrap_err()
            .contains("'None' may not"));
        assert!(telemetry_options(&mut c, &["-All"])
            .unwrap_err()
            .contains("'All' may not"));
        assert_eq!(
            telemetry_options(&mut c, &["Bogus"]).unwrap_err(),
            "WSGITelemetryOptions: unknown flag 'Bogus' (the flags are CaptureUserAgent, AppMetrics; or None, All)"
        );
        telemetry_options(&mut c, &["None", "captureuseragent"]).unwrap();
        assert!(c.capture_user_agent());
        telemetry_options(&mut c, &["CaptureUserAgent", "None"]).unwrap();
        assert!(!c.capture_user_agent());
        telemetry_options(&mut c, &["+CaptureUserAgent"]).unwrap();
        assert!(c.capture_user_agent());
        telemetry_options(&mut c, &["-CaptureUserAgent"]).unwrap();
        assert!(!c.capture_user_agent());
        telemetry_options(&mut c, &["All"]).unwrap();
        assert!(c.capture_user_agent());
        assert!(!c.app_metrics(), "off by default, and not in All");
        telemetry_options(&mut c, &["+AppMetrics"]).unwrap();
        assert!(c.app_metrics() && c.capture_user_agent());
        telemetry_options(&mut c, &["-appmetrics"]).unwrap();
        assert!(!c.app_metrics() && c.capture_user_agent());
        telemetry_options(&mut c, &["AppMetrics"]).unwrap();
        assert!(c.app_metrics() && !c.capture_user_agent());
        telemetry_options(&mut c, &["None"]).unwrap();
        assert!(!c.app_metrics());
        assert!(telemetry_options(&mut c, &["+AppMetric"])
            .unwrap_err()
            .contains("unknown flag 'AppMetric' (the flags are"));
    }
}
