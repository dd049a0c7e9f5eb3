//! Option parsers shared by several subcommands (`--listen`, `--target`,
//! `--socket-mode`, `--socket-group`): each returns the one-line message
//! clap prints before exiting 2.

/// `--socket-mode` parser: octal as `0660`, `660` or `0o660`, permission
/// bits only (at most 0777: setuid, setgid and sticky mean nothing on a
/// socket).
pub(crate) fn parse_socket_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o777 => Ok(m),
        _ => Err(format!(
            "socket-mode must be octal permission bits from 0 to 0777 (e.g. 0660 or 660), got '{s}'"
        )),
    }
}

/// `--socket-group` parser: a group name, or a numeric GID below
/// 4294967295 (that one is `(gid_t)-1`, which chown(2) takes as "leave the
/// group unchanged"). Names are looked up when the socket is bound.
pub(crate) fn parse_socket_group(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("socket-group must be a group name or a numeric GID, got ''".into());
    }
    match crate::ingest::socket::numeric_gid(s) {
        Some(Err(e)) => Err(e),
        _ => Ok(s.to_string()),
    }
}

/// `--listen` / `--target` parser: only `unix:<path>`.
pub(crate) fn parse_unix_spec(s: &str) -> Result<std::path::PathBuf, String> {
    match s.strip_prefix("unix:") {
        Some(p) if !p.is_empty() => Ok(std::path::PathBuf::from(p)),
        _ => Err(format!(
            "unknown scheme '{s}': expected 'unix:/path' (remote 'udp:host:port' targets are not supported)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_mode_forms() {
        assert_eq!(parse_socket_mode("0660"), Ok(0o660));
        assert_eq!(parse_socket_mode("660"), Ok(0o660));
        assert_eq!(parse_socket_mode("0o600"), Ok(0o600));
        assert!(parse_socket_mode("999").is_err());
        assert!(parse_socket_mode("").is_err());
        assert!(parse_socket_mode("17777").is_err());
        assert_eq!(parse_socket_mode("0777"), Ok(0o777));
        assert_eq!(parse_socket_mode("0"), Ok(0));
        for m in ["4777", "1777", "2660", "7777", "1000", "0o4000"] {
            let e = parse_socket_mode(m).unwrap_err();
            assert!(e.contains("0777") && e.contains(m), "{m}: {e}");
        }
    }

    #[test]
    fn socket_group_forms() {
        assert_eq!(parse_socket_group("www-data").as_deref(), Ok("www-data"));
        assert_eq!(parse_socket_group("0").as_deref(), Ok("0"));
        assert_eq!(
            parse_socket_group("4294967294").as_deref(),
            Ok("4294967294")
        );
        for g in ["4294967295", "4294967296", "99999999999999999999", ""] {
            let e = parse_socket_group(g).unwrap_err();
            assert!(e.contains("socket-group") && e.contains(g), "{g}: {e}");
        }
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_unix_spec("unix:/tmp/x.sock").unwrap(),
            std::path::PathBuf::from("/tmp/x.sock")
        );
        assert!(parse_unix_spec("udp:1.2.3.4:5")
            .unwrap_err()
            .contains("unknown scheme"));
        assert!(parse_unix_spec("unix:").is_err());
    }
}
