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
            eprintln!("mod_wsgi-telemetry: {e:#}");
            1
        }
    }
}

/// `--socket-mode` parser: octal as `0660`, `660` or `0o660`, at most 0o7777.
pub fn parse_socket_mode(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "socket-mode must be octal (e.g. 0660 or 660), got '{s}'"
        )),
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
