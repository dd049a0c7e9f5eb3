//! What the module does beside a given mod_wsgi: the version it is loaded
//! with (from httpd's server description) decides which capabilities that
//! rely on mod_wsgi's internals (its GOT, its handler hook entry, its
//! exported globals, its shutdown-reason call) are used, and the start-up
//! log line that says so. Pure: the FFI layer gathers the inputs and logs.
//!
//! Tested releases are the ones the container matrix runs (mod_wsgi 4.7,
//! 4.9, 5.0). Any other version (older, newer, unparsable, absent) keeps
//! only what needs none of mod_wsgi's internals: embedded accounting with
//! httpd filters, embedded lifecycle reasons, GC through the explicit
//! attach script in Apache's children. mod_wsgi 6 and later has its own
//! reporter (the module refuses to start beside it when it exports
//! `wsgi_telemetry_is_enabled`).

/// `major.minor` pairs the container matrix tests.
pub const TESTED: [(u32, u32); 3] = [(4, 7), (4, 9), (5, 0)];

/// How the mod_wsgi version relates to what is tested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A tested release: every capability it offers is used.
    Tested,
    /// A 4.x/5.x release outside the tested ones.
    Untested,
    /// 6.x or later: mod_wsgi has its own reporter.
    OwnReporter,
    /// No version, or one that does not parse.
    Unknown,
}

/// Parses `major.minor[.patch…]` (digits, suffixes after the numbers
/// ignored: `5.0.1.rc1`, `4.9.4-debian`).
pub fn parse_version(v: &[u8]) -> Option<(u32, u32)> {
    let mut parts = v.split(|b| *b == b'.');
    let num = |p: Option<&[u8]>| -> Option<u32> {
        let p = p?;
        let digits = p.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 6 {
            return None;
        }
        std::str::from_utf8(&p[..digits]).ok()?.parse().ok()
    };
    let major = num(parts.next())?;
    let minor = num(parts.next())?;
    Some((major, minor))
}

/// The verdict for a version string as mod_wsgi reports it.
pub fn verdict(version: &[u8]) -> Verdict {
    match parse_version(version) {
        None => Verdict::Unknown,
        Some((major, _)) if major >= 6 => Verdict::OwnReporter,
        Some(mm) if TESTED.contains(&mm) => Verdict::Tested,
        Some(_) => Verdict::Untested,
    }
}

/// What the Apache parent found of mod_wsgi (exported symbols, its
/// handler hook entry) and of the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// One `handler` hook entry registered by `mod_wsgi.c` and the
    /// exported `wsgi_start_request`.
    pub direct_mode_symbols: bool,
    /// `MOD_WSGI_TELEMETRY_FILTERS` is set (filter mode forced).
    pub filters_forced: bool,
    /// Exported `wsgi_daemon_process` (mod_wsgi built with daemon mode).
    pub daemon_symbols: bool,
    /// Exported `wsgi_python_initialized` and `PyGILState_Ensure`.
    pub python_symbols: bool,
    /// Exported `wsgi_publish_process_stopping`.
    pub publish_symbol: bool,
}

impl Found {
    /// Everything a tested mod_wsgi exports.
    pub const ALL: Found = Found {
        direct_mode_symbols: true,
        filters_forced: false,
        daemon_symbols: true,
        python_symbols: true,
        publish_symbol: true,
    };
}

/// One capability: used, or not and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    /// Used, in the way named.
    On(&'static str),
    /// Not used, for the reason given.
    Off(&'static str),
}

impl Cap {
    /// Whether the capability is used.
    pub fn on(self) -> bool {
        matches!(self, Cap::On(_))
    }
}

/// What the module uses beside this mod_wsgi.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub verdict: Verdict,
    /// Wrapping mod_wsgi's handler and its GOT calls in MPM children
    /// (`On`), or httpd filters (`Off`, embedded requests still counted).
    pub embedded_direct: Cap,
    /// Reporters in mod_wsgi daemon processes, requests from the GOT hooks.
    pub daemon_accounting: Cap,
    /// GC attach in daemons with no configuration (GIL from our thread).
    pub gc_auto_attach: Cap,
    /// mod_wsgi's own shutdown reasons (hook on its publish call).
    pub lifecycle_reasons: Cap,
    /// Reading mod_wsgi's `wsgi_python_required` in MPM children.
    pub read_python_required: bool,
}

const NOT_TESTED: &str = "not tested with this mod_wsgi version";

/// Decides the capabilities from the version and what was found.
pub fn decide(version: &[u8], found: Found) -> Capabilities {
    let v = verdict(version);
    if v != Verdict::Tested {
        return Capabilities {
            verdict: v,
            embedded_direct: Cap::Off(NOT_TESTED),
            daemon_accounting: Cap::Off(NOT_TESTED),
            gc_auto_attach: Cap::Off(NOT_TESTED),
            lifecycle_reasons: Cap::Off(NOT_TESTED),
            read_python_required: false,
        };
    }
    let embedded_direct = if found.filters_forced {
        Cap::Off("MOD_WSGI_TELEMETRY_FILTERS is set")
    } else if !found.direct_mode_symbols {
        Cap::Off("mod_wsgi's handler hook or wsgi_start_request not found")
    } else {
        Cap::On("mod_wsgi's own calls")
    };
    let daemon_accounting = if found.daemon_symbols {
        Cap::On("request hooks in mod_wsgi's GOT")
    } else {
        Cap::Off("mod_wsgi exports no wsgi_daemon_process (built without daemon mode)")
    };
    let gc_auto_attach = if !daemon_accounting.on() {
        Cap::Off("no daemon reporter")
    } else if !found.python_symbols {
        Cap::Off("wsgi_python_initialized or PyGILState_Ensure not exported")
    } else {
        Cap::On("main interpreter, no configuration")
    };
    let lifecycle_reasons = if !daemon_accounting.on() {
        Cap::Off("no daemon reporter")
    } else if !found.publish_symbol {
        Cap::Off("mod_wsgi exports no wsgi_publish_process_stopping; reasons inferred from signals")
    } else {
        Cap::On("mod_wsgi's publish call")
    };
    Capabilities {
        verdict: v,
        embedded_direct,
        daemon_accounting,
        gc_auto_attach,
        lifecycle_reasons,
        read_python_required: true,
    }
}

fn show(c: Cap) -> String {
    match c {
        Cap::On(how) => format!("yes ({how})"),
        Cap::Off(why) => format!("no ({why})"),
    }
}

impl Capabilities {
    /// The `notice` line logged once per start: the version and each
    /// capability, with the reason for any that is off.
    pub fn notice_line(&self, version: &[u8]) -> String {
        let embedded = match self.embedded_direct {
            Cap::On(how) => format!("yes ({how})"),
            Cap::Off(why) => format!("yes (httpd filters: {why})"),
        };
        format!(
            "mod_wsgi {} ({}): embedded accounting {}; daemon accounting {}; \
             GC attach {}; lifecycle reasons {}.",
            shown_version(version),
            match self.verdict {
                Verdict::Tested => "tested",
                Verdict::Untested => "untested",
                Verdict::OwnReporter => "has its own reporter",
                Verdict::Unknown => "version unknown",
            },
            embedded,
            show(self.daemon_accounting),
            match self.gc_auto_attach {
                Cap::On(how) => format!("yes ({how}; WSGIImportScript for the rest)"),
                Cap::Off(why) => format!("only with WSGIImportScript in Apache's children ({why})"),
            },
            show(self.lifecycle_reasons),
        )
    }

    /// The `warn` line for a version outside the tested ones (None for a
    /// tested one).
    pub fn warning_line(&self, version: &[u8]) -> Option<String> {
        if self.verdict == Verdict::Tested {
            return None;
        }
        Some(format!(
            "mod_wsgi {} is not a tested version (tested: 4.7.x, 4.9.x, 5.0.x): turned off \
             what relies on mod_wsgi's internals: accounting from mod_wsgi's own calls \
             (httpd filters used instead), daemon-process reporters (daemon requests, \
             their GC and mod_wsgi's shutdown reasons are not reported). \
             Embedded requests, their lifecycle reasons and GC through WSGIImportScript \
             in Apache's children still work.",
            shown_version(version)
        ))
    }
}

/// The version as logged: printable ASCII, at most 32 bytes, or `unknown`.
fn shown_version(v: &[u8]) -> String {
    if v.is_empty() {
        return "'unknown'".into();
    }
    let s: String = v
        .iter()
        .take(32)
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    if parse_version(v).is_some() {
        s
    } else {
        format!("'{s}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(v: &str) -> (Capabilities, String, Option<String>) {
        let c = decide(v.as_bytes(), Found::ALL);
        (c, c.notice_line(v.as_bytes()), c.warning_line(v.as_bytes()))
    }

    fn all_on(c: &Capabilities) -> bool {
        c.embedded_direct.on()
            && c.daemon_accounting.on()
            && c.gc_auto_attach.on()
            && c.lifecycle_reasons.on()
            && c.read_python_required
    }

    fn all_off(c: &Capabilities) -> bool {
        !c.embedded_direct.on()
            && !c.daemon_accounting.on()
            && !c.gc_auto_attach.on()
            && !c.lifecycle_reasons.on()
            && !c.read_python_required
    }

    #[test]
    fn tested_versions_use_everything() {
        for v in ["4.7.1", "4.9.4", "5.0.0", "5.0.2", "5.0.1.rc1"] {
            let (c, notice, warn) = line(v);
            assert_eq!(c.verdict, Verdict::Tested, "{v}");
            assert!(all_on(&c), "{v}");
            assert!(warn.is_none(), "{v}");
            assert_eq!(
                notice,
                format!(
                    "mod_wsgi {v} (tested): embedded accounting yes (mod_wsgi's own calls); \
                     daemon accounting yes (request hooks in mod_wsgi's GOT); GC attach yes \
                     (main interpreter, no configuration; WSGIImportScript for the rest); \
                     lifecycle reasons yes (mod_wsgi's publish call)."
                )
            );
        }
    }

    #[test]
    fn untested_versions_keep_only_what_needs_no_internals() {
        for (v, want) in [
            ("4.6.8", Verdict::Untested),
            ("5.1.0", Verdict::Untested),
            ("4.5.24", Verdict::Untested),
            ("6.1.1", Verdict::OwnReporter),
            ("garbage", Verdict::Unknown),
            ("", Verdict::Unknown),
            ("5", Verdict::Unknown),
        ] {
            let (c, notice, warn) = line(v);
            assert_eq!(c.verdict, want, "{v:?}");
            assert!(all_off(&c), "{v:?}");
            assert!(
                notice.contains("embedded accounting yes (httpd filters: not tested with"),
                "{notice}"
            );
            assert!(
                notice.contains("daemon accounting no (not tested"),
                "{notice}"
            );
            assert!(
                notice.contains("GC attach only with WSGIImportScript in Apache's children"),
                "{notice}"
            );
            let warn = warn.expect("a warning");
            assert!(warn.contains("is not a tested version"), "{warn}");
        }
        assert!(line("4.6.8").1.starts_with("mod_wsgi 4.6.8 (untested): "));
        assert!(line("6.1.1")
            .1
            .starts_with("mod_wsgi 6.1.1 (has its own reporter): "));
        assert!(line("garbage")
            .1
            .starts_with("mod_wsgi 'garbage' (version unknown): "));
        assert!(line("")
            .1
            .starts_with("mod_wsgi 'unknown' (version unknown): "));
        assert!(line("5.1.0")
            .2
            .unwrap()
            .starts_with("mod_wsgi 5.1.0 is not a tested version (tested: 4.7.x, 4.9.x, 5.0.x)"));
    }

    #[test]
    fn garbage_is_shown_printable_and_short() {
        let v = b"\x01evil\nversion-that-is-far-too-long-to-log-in-full";
        let c = decide(v, Found::ALL);
        let n = c.notice_line(v);
        assert!(
            n.starts_with("mod_wsgi '?evil?version-that-is-far-too-lo' ("),
            "{n}"
        );
    }

    #[test]
    fn what_a_tested_version_lacks_is_named_with_its_reason() {
        let c = decide(
            b"4.9.4",
            Found {
                filters_forced: true,
                publish_symbol: false,
                ..Found::ALL
            },
        );
        let n = c.notice_line(b"4.9.4");
        assert!(
            n.contains(
                "embedded accounting yes (httpd filters: MOD_WSGI_TELEMETRY_FILTERS is set)"
            ),
            "{n}"
        );
        assert!(
            n.contains("lifecycle reasons no (mod_wsgi exports no wsgi_publish_process_stopping"),
            "{n}"
        );
        assert!(c.daemon_accounting.on() && c.gc_auto_attach.on());
        let c = decide(
            b"5.0.2",
            Found {
                daemon_symbols: false,
                ..Found::ALL
            },
        );
        assert_eq!(c.gc_auto_attach, Cap::Off("no daemon reporter"));
        assert_eq!(c.lifecycle_reasons, Cap::Off("no daemon reporter"));
        assert!(c.embedded_direct.on());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version(b"4.9.4"), Some((4, 9)));
        assert_eq!(parse_version(b"5.0.1.rc1"), Some((5, 0)));
        assert_eq!(parse_version(b"4.9.4-debian"), Some((4, 9)));
        assert_eq!(parse_version(b"4"), None);
        assert_eq!(parse_version(b"x.1"), None);
        assert_eq!(parse_version(b"4.x"), None);
        assert_eq!(parse_version(b"9999999.1"), None);
    }
}
