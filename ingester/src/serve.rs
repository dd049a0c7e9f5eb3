//! `mod_wsgi-telemetry serve`: the ingester with its web UI and API.

use std::path::PathBuf;

/// Options of `serve` (also accepted with no subcommand).
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Datagram socket to bind (`unix:<path>` only).
    #[arg(long, default_value = "unix:/tmp/mod_wsgi-telemetry.sock", value_parser = crate::cli::parse_unix_spec)]
    pub listen: PathBuf,
    /// Octal mode applied to the socket after bind.
    #[arg(long, default_value = "0660", value_parser = crate::cli::parse_socket_mode)]
    pub socket_mode: u32,
    /// Group name or numeric GID to chown the socket to.
    #[arg(long)]
    pub socket_group: Option<String>,
    /// HTTP bind address.
    #[arg(long, default_value = "127.0.0.1")]
    pub http_host: String,
    /// HTTP port.
    #[arg(long, default_value_t = 8888)]
    pub http_port: u16,
    /// URL prefix when a reverse proxy strips a mount point.
    #[arg(long, default_value = "")]
    pub root_path: String,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "INFO")]
    pub log_level: String,
    /// Also run a built-in simulator feeding this ingester (demo mode).
    #[arg(long)]
    pub demo: bool,
}

/// Runs `serve`; returns the exit status.
pub fn run(_args: ServeArgs) -> anyhow::Result<i32> {
    anyhow::bail!("serve is not implemented yet")
}
