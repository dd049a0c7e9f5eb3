//! Command-line dispatcher. A bare `mod_wsgi-telemetry`, and one that starts
//! with a `serve` option (`mod_wsgi-telemetry --listen …`), run `serve`.
//! Usage errors exit 2 with one line; runtime errors exit 1.
//!
//! Each subcommand is one module: [`serve`] (ingest + API, the default),
//! [`dump`] (bind the socket, print datagrams), [`replay`] (send a capture),
//! [`simulate`] (synthetic reporters); `top` is its own module at the crate
//! root. [`args`] holds the option parsers they share.

pub(crate) mod args;
pub(crate) mod dump;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod simulate;

use clap::{Parser, Subcommand};

/// Live telemetry for Apache httpd + mod_wsgi.
#[derive(Parser, Debug)]
#[command(
    name = "mod_wsgi-telemetry",
    version,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ingester and web UI (default).
    Serve(serve::ServeArgs),
    /// Terminal monitor.
    Top(crate::top::TopArgs),
    /// Bind the listen socket and print decoded datagrams.
    Dump(dump::DumpArgs),
    /// Send a capture file to a socket, optionally as many processes.
    Replay(replay::ReplayArgs),
    /// Emit synthetic telemetry for demos and UI development.
    Simulate(simulate::SimulateArgs),
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
        None => serve::run(cli.serve),
        Some(Command::Serve(a)) => serve::run(a),
        Some(Command::Top(a)) => crate::top::run(a),
        Some(Command::Dump(a)) => dump::run(a),
        Some(Command::Replay(a)) => replay::run(a),
        Some(Command::Simulate(a)) => simulate::run(a),
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
pub(crate) fn one_line_report(e: &anyhow::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_reported_once() {
        let os = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let quoted: anyhow::Error = crate::ingest::socket::SocketError::Os {
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
}
