//! Command-line dispatcher. A bare `mod_wsgi-telemetry`, and one that starts
//! with a `serve` option (`mod_wsgi-telemetry --listen …`), run `serve`.
//! Usage errors exit 2 with one line; runtime errors exit 1.

use clap::{Parser, Subcommand};

/// Live telemetry for Apache httpd + mod_wsgi.
#[derive(Parser, Debug)]
#[command(
    name = "mod_wsgi-telemetry",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: crate::serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ingester and web UI (default).
    Serve(crate::serve::ServeArgs),
    /// Terminal monitor.
    Top(crate::top::TopArgs),
    /// Bind the listen socket and print decoded datagrams.
    Dump(crate::dump::DumpArgs),
    /// Send a capture file to a socket, optionally as many processes.
    Replay(crate::replay::ReplayArgs),
    /// Emit synthetic telemetry for demos and UI development.
    Simulate(crate::simulate::SimulateArgs),
}

/// Parses arguments, runs the command, returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return 0;
            }
            // One clear line, as for runtime errors.
            let text = e.to_string();
            let lines: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let joined = lines.join(" ");
            let first = joined.trim_start_matches("error: ");
            eprintln!("mod_wsgi-telemetry: {first} (see --help)");
            return 2;
        }
    };
    let result = match cli.command {
        None => crate::serve::run(cli.serve),
        Some(Command::Serve(a)) => crate::serve::run(a),
        Some(Command::Top(a)) => crate::top::run(a),
        Some(Command::Dump(a)) => crate::dump::run(a),
        Some(Command::Replay(a)) => crate::replay::run(a),
        Some(Command::Simulate(a)) => crate::simulate::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mod_wsgi-telemetry: {}", one_line_report(&e));
            1
        }
    }
}

/// The error and its causes on one line, `error: cause: cause`, each cause
/// once: a typed error whose message already quotes its source (as
/// `SocketError::Os` does, so that it reads well on its own) would
/// otherwise print the OS error twice.
pub fn one_line_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// `--socket-mode` parser: octal as `0660`, `660` or `0o660`, permission
/// bits only (at most 0777: setuid, setgid and sticky mean nothing on a
/// socket).
pub fn parse_socket_mode(s: &str) -> Result<u32, String> {
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
pub fn parse_socket_group(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("socket-group must be a group name or a numeric GID, got ''".into());
    }
    match crate::socket::numeric_gid(s) {
        Some(Err(e)) => Err(e),
        _ => Ok(s.to_string()),
    }
}

/// `--listen` / `--target` parser: only `unix:<path>`.
pub fn parse_unix_spec(s: &str) -> Result<std::path::PathBuf, String> {
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
    fn each_cause_is_reported_once() {
        let os = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let quoted: anyhow::Error = crate::socket::SocketError::Os {
            what: "cannot bind",
            path: "/x/y.sock".into(),
            source: os(),
        }
        .into();
        assert_eq!(
            one_line_report(&quoted),
            format!("cannot bind '/x/y.sock': {}", os())
        );
        assert_eq!(one_line_report(&quoted).matches("(os error 2)").count(), 1);
        let chained = anyhow::Error::new(os()).context("cannot read capture 'c.bin'");
        assert_eq!(
            one_line_report(&chained),
            format!("cannot read capture 'c.bin': {}", os())
        );
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
