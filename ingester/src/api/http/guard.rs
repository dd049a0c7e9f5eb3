//! Which requests may reach the routes at all: the `Host` allow-list (a
//! defence against DNS rebinding) and the validation of URL prefixes that
//! end up in the page (`--root-path`, `X-Forwarded-Prefix`).
//!
//! Pure functions of strings; no I/O, no HTTP types.

use std::net::IpAddr;

/// Host names a request's `Host` header may carry.
///
/// Always allowed: `localhost` (and `*.localhost`) and loopback IP literals
/// (`127.0.0.0/8`, `::1`). A DNS-rebinding page reaches the server under
/// the attacker's *name*, and the browser puts that name in `Host`; an
/// attacker's page can also be served from an address of its own, so other
/// IP literals are no safer than names. Everything else must be configured:
/// the `--http-host` value and each `--allowed-host` (a reverse proxy's
/// public name when it preserves `Host`, or the address an operator types
/// when serving on `0.0.0.0`).
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// The defaults plus `extra` names (case-insensitive, port ignored).
    pub(crate) fn new<S: AsRef<str>>(extra: impl IntoIterator<Item = S>) -> AllowedHosts {
        AllowedHosts {
            names: extra
                .into_iter()
                .filter_map(|n| canonical(host_name(n.as_ref())?.trim()))
                .collect(),
        }
    }

    /// True when a request with this `Host` header may be served. A request
    /// without one (HTTP/1.0 tools) is not a browser's and is allowed.
    pub(crate) fn allows(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return true };
        let Some(name) = host_name(host).and_then(canonical) else {
            return false;
        };
        name == "localhost"
            || name.ends_with(".localhost")
            || name
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || is_mapped_loopback(ip))
            || self.names.contains(&name)
    }
}

/// A host name or IP literal in one comparable form: lower case, IPv6
/// without brackets and in its shortest spelling (`[0:0::1]` -> `::1`).
/// None for an empty or malformed (`[::1`) value.
fn canonical(name: &str) -> Option<String> {
    let bare = match name.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None => name,
    };
    if bare.is_empty() {
        return None;
    }
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    })
}

/// `::ffff:127.x.y.z`, the IPv4 loopback seen through an IPv6 socket.
fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// The name part of a `Host` value: `[::1]:8888` → `[::1]`,
/// `example.com:80` → `example.com`, a trailing dot dropped. None when the
/// value is malformed: an unclosed `[`, or anything after the name but a
/// port of one to five digits (`127.0.0.1:80@evil.example`, which no
/// browser sends).
fn host_name(host: &str) -> Option<&str> {
    let h = host.trim();
    let (name, rest) = if h.starts_with('[') {
        let end = h.find(']')? + 1;
        h.split_at(end)
    } else if h.matches(':').count() == 1 {
        h.split_at(h.find(':')?)
    } else {
        (h, "")
    };
    if !rest.is_empty() {
        let port = rest.strip_prefix(':')?;
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some(name.strip_suffix('.').unwrap_or(name))
}

/// Why a URL prefix cannot be used as the page's base path.
pub(crate) fn prefix_problem(raw: &str) -> Option<&'static str> {
    if raw.contains('\\') {
        Some("contains a backslash")
    } else if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("contains whitespace or control characters")
    } else if raw.contains("://") {
        Some("contains a URL scheme")
    } else if raw.trim_start().starts_with("//") {
        Some("starts with // (another host)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let a = AllowedHosts::new(["Ops.Example.com:443", "192.0.2.7", "fd00::5"]);
        for ok in [
            "localhost",
            "localhost:8888",
            "LOCALHOST.",
            "ui.localhost:1",
            "127.0.0.1:8888",
            "127.3.4.5",
            "[::1]:8888",
            "[::1]",
            "[0:0::1]:8888",
            "[::ffff:127.0.0.1]:8888",
            "192.0.2.7:8888",
            "[FD00:0::5]:8888",
            "ops.example.com",
            "ops.example.com:8443",
        ] {
            assert!(a.allows(Some(ok)), "{ok}");
        }
        assert!(a.allows(None));
        for bad in [
            "evil.example:8888",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "[::1",
            "ops.example.com.evil",
            "10.1.2.3:8888",
            "192.0.2.8",
            "[fd00::6]:8888",
            "[::ffff:10.0.0.1]",
            "0.0.0.0:8888",
            "127.0.0.1:8888@evil.example",
            "localhost:@evil.example",
            "localhost:",
            "[::1]evil.example",
            "[::1]:88x",
            "127.0.0.1:123456",
        ] {
            assert!(!a.allows(Some(bad)), "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        for ok in ["", "/", "/telemetry", "telemetry/", "/a/b//", "/x:y"] {
            assert_eq!(prefix_problem(ok), None, "{ok}");
        }
        for bad in [
            "//evil.example",
            " //evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "/x/https://evil.example",
            "/\t/evil.example",
            "/a b",
        ] {
            assert!(prefix_problem(bad).is_some(), "{bad:?}");
        }
    }
}
