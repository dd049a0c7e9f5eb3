//! `mod_wsgi-telemetry serve`: the ingester with its web UI and API.
//!
//! Start-up binds the datagram socket and the HTTP listener first and exits
//! with a one-line error if either fails (the reference keeps serving HTTP
//! without a receiver). SIGINT/SIGTERM close WebSocket clients with 1001,
//! stop the receive threads and remove the socket file.

use crate::api::http::{self, HttpConfig};
use crate::ingest::history::store::OpenError;
use crate::ingest::history::History;
use crate::ingest::persist;
use crate::ingest::receive::{self, Shared};
use crate::ingest::state::{Limits, State};
use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Options of `serve` (also accepted with no subcommand).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Datagram socket to bind (`unix:<path>` only).
    #[arg(long, default_value = "unix:/tmp/mod_wsgi-telemetry.sock", value_parser = crate::cmd::args::parse_unix_spec)]
    pub(crate) listen: PathBuf,
    /// Octal permission bits (0 to 0777) applied to the socket after bind.
    #[arg(long, default_value = "0660", value_parser = crate::cmd::args::parse_socket_mode)]
    pub(crate) socket_mode: u32,
    /// Group name or numeric GID to chown the socket to.
    #[arg(long, value_parser = crate::cmd::args::parse_socket_group)]
    pub(crate) socket_group: Option<String>,
    /// HTTP bind address (keep it on loopback unless a proxy with
    /// authentication is in front).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) http_host: std::net::IpAddr,
    /// HTTP port.
    #[arg(long, default_value_t = 8888)]
    pub(crate) http_port: u16,
    /// URL prefix when a reverse proxy strips a mount point.
    #[arg(long, default_value = "", value_parser = parse_root_path)]
    pub(crate) root_path: String,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "INFO", value_parser = parse_level)]
    pub(crate) log_level: tracing::Level,
    /// Most concurrent WebSocket clients.
    #[arg(long, default_value_t = 64)]
    pub(crate) max_clients: usize,
    /// Byte budget of a WebSocket client's first snapshot and of
    /// `/api/state`; older history is left out beyond it (0 = no limit).
    /// Clients may ask for less (`/api/state?budget=N`), not for more:
    /// `/ws?history=full` and `/api/state?budget=0` get this budget too
    /// (counted as `http_state_trimmed` when something was left out).
    #[arg(long, default_value_t = 3_500_000)]
    pub(crate) snapshot_budget: usize,
    /// Most processes tracked at once: datagrams that would add another
    /// are refused (counted as `processes_refused` in /api/state, logged
    /// once per interval); tracked processes keep working, and a place
    /// frees when a process goes stale.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_processes: u32,
    /// Most (host, process_group) groups `/metrics` counts apart (each
    /// about 430 series, kept while the ingester runs so counters never go
    /// down); a further group's figures are counted under
    /// host="(other)", process_group="(other)" (`groups_folded` in
    /// /api/state, logged once per interval).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_groups: u32,
    /// Most slow-request records kept in all; past it the oldest completed
    /// one (else the oldest) is dropped and counted (`slow_evicted`).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_slow: u32,
    /// Most slow-request records kept per process (as --max-slow, counted
    /// as `slow_evicted_per_process`).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_slow_per_process: u32,
    /// Label `/metrics` series by `pid` as well as `host` and
    /// `process_group` (one series set per process: mind the cardinality).
    #[arg(long)]
    pub(crate) metrics_per_process: bool,
    /// Most snapshots produced and sent at once (`/api/state` bodies and
    /// WebSocket first snapshots); further `/api/state` requests get 503
    /// (counted as `http_state_refused`), WebSocket clients wait their turn.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub(crate) max_state_responses: u64,
    /// Seconds a snapshot's write may wait for its client to read before,
    /// when all --max-state-responses places are taken, the longest stalled
    /// one is cut to make room for a new request (`http_state_cancelled`).
    /// A reader that keeps reading, however slowly, is not cut.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub(crate) state_stall_timeout: Duration,
    /// Most open HTTP connections, WebSocket ones included. A new one
    /// replaces the connection waiting longest for a request
    /// (`http_connections_evicted`), or is answered 503 and closed if none
    /// waits (`http_connections_refused`). Lowered at start to fit the
    /// open-files limit.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_connections: u64,
    /// Seconds a client has to send a request head, from connecting or from
    /// its first byte (`http_read_timeouts`).
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    pub(crate) header_timeout: Duration,
    /// Seconds a kept-alive connection may wait for its next request, and a
    /// WebSocket client may stay silent (pings are answered automatically
    /// by browsers and `top`).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    pub(crate) idle_timeout: Duration,
    /// Seconds a write (a response, a WebSocket message) may make no
    /// progress before the connection is closed: a client that stops reading
    /// is dropped (`http_write_timeouts`, `ws_clients_dropped_slow`).
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    pub(crate) write_timeout: Duration,
    /// Another name or address the `Host` header may carry (repeatable): a
    /// reverse proxy's public name when it preserves Host, or the address
    /// browsers use when --http-host is 0.0.0.0. Always allowed: localhost,
    /// loopback addresses and the --http-host address. Others get 421
    /// (`http_host_refused`).
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub(crate) allowed_hosts: Vec<String>,
    /// Also run a built-in simulator feeding this ingester (demo mode).
    #[arg(long)]
    pub(crate) demo: bool,
    /// Keep the history, lifecycle events and completed slow requests in
    /// this directory across restarts (docs/history.md). Without it they
    /// are kept in memory only.
    #[arg(long, value_name = "DIR")]
    pub(crate) state_dir: Option<PathBuf>,
    /// History tiers, STEP:RETENTION each, finest first.
    #[arg(long, default_value = "1s:10m,10s:6h,1m:7d", value_parser = crate::ingest::history::parse_tiers)]
    pub(crate) history_tiers: crate::ingest::history::TierList,
    /// Most history series (process groups and hosts); ticks of further
    /// ones are counted in `history_ticks_refused`.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) history_max_series: u32,
    /// Seconds a tick's stamp may be ahead of this host's clock: later
    /// ones are kept out of the history (counted in `history_ticks_future`),
    /// so one datagram from a broken clock cannot move the history's
    /// newest second days ahead and expire what it holds.
    #[arg(long, value_name = "SECONDS", default_value_t = crate::ingest::history::DEFAULT_MAX_AHEAD, value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 86400))]
    pub(crate) history_max_ahead: u64,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("expected seconds between 0 and 86400, got '{s}'")),
    }
}

fn parse_root_path(s: &str) -> Result<String, String> {
    match crate::api::http::guard::prefix_problem(s) {
        Some(why) => Err(format!("root-path '{}' {why}", s.escape_debug())),
        None => Ok(s.to_string()),
    }
}

fn parse_level(s: &str) -> Result<tracing::Level, String> {
    let l = s.trim().to_ascii_lowercase();
    let l = match l.as_str() {
        "warning" => "warn",
        "critical" | "fatal" => "error",
        other => other,
    };
    l.parse()
        .map_err(|_| format!("unknown log level '{s}' (use error, warn, info, debug or trace)"))
}

/// Runs `serve`; returns the exit status.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<i32> {
    let _ = tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let bound =
        crate::ingest::socket::bind(&args.listen, args.socket_mode, args.socket_group.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = std::net::SocketAddr::new(args.http_host, args.http_port);
        // Handlers first: a signal that comes once the port answers must
        // find them installed (not the default action, which kills).
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr} for HTTP"))?;
        let limits = Limits {
            max_processes: args.max_processes as usize,
            max_groups: args.max_groups as usize,
            slow_entries: args.max_slow as usize,
            slow_entries_per_process: args.max_slow_per_process as usize,
            ..Limits::default()
        };
        let mut state = State::new(limits);
        state.history = History::new(&args.history_tiers.0, args.history_max_series as usize)
            .map_err(|e| anyhow::anyhow!("--history-tiers: {e}"))?;
        state.history.set_max_ahead(Some(args.history_max_ahead));
        let store = match &args.state_dir {
            None => None,
            Some(dir) => match persist::open(dir, &args.history_tiers.0, &mut state) {
                Ok(store) => Some(store),
                // A directory that is not ours to use: the operator decides.
                Err(e @ (OpenError::Newer { .. } | OpenError::Foreign { .. } | OpenError::Locked { .. })) => {
                    return Err(anyhow::anyhow!("--state-dir {e}"));
                }
                Err(e) => {
                    tracing::error!(
                        "--state-dir {e}: the history is kept in memory only (restart with a writable directory to keep it)"
                    );
                    state.history_write_errors += 1;
                    None
                }
            },
        };
        let shared = Shared::new(state, 1024);
        let threads = receive::start(bound.socket.try_clone()?, shared.clone())?;
        let history_writer = persist::spawn(shared.clone(), store)?;
        tracing::info!("listening on unix:{}", args.listen.display());
        if let Some(advice) = crate::ingest::socket::kernel_dgram_qlen().and_then(crate::ingest::socket::dgram_qlen_advice) {
            tracing::warn!("{advice}");
        }
        let mut allowed = args.allowed_hosts.clone();
        // 0.0.0.0 / :: is no address a browser should name in `Host`.
        if !args.http_host.is_unspecified() {
            allowed.push(args.http_host.to_string());
        }
        let cfg = HttpConfig {
            root_path: http::normalize_base(&args.root_path),
            max_clients: args.max_clients,
            snapshot_budget: (args.snapshot_budget > 0).then_some(args.snapshot_budget),
            metrics_per_process: args.metrics_per_process,
            max_state_responses: args.max_state_responses as usize,
            state_stall_timeout: args.state_stall_timeout,
            allowed_hosts: http::guard::AllowedHosts::new(allowed),
            ws_idle_timeout: args.idle_timeout,
        };
        let (max_connections, lowered) = http::server::fit_connections(args.max_connections as usize);
        if let Some(why) = lowered {
            tracing::warn!("{why}");
        }
        let limits = http::server::ConnLimits {
            max_connections,
            header_timeout: args.header_timeout,
            idle_timeout: args.idle_timeout,
            write_timeout: args.write_timeout,
        };
        let counters = Arc::new(crate::api::http_counters::HttpCounters::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let routes = http::routes(shared.clone(), cfg, counters.clone(), stop_rx.clone());
        tracing::info!("UI on http://{addr}/ (root-path='{}')", args.root_path);
        if !args.http_host.is_loopback() {
            tracing::warn!(
                "the UI and API on {addr} are reachable from other hosts and have no authentication: anyone who can connect sees request URLs and can clear the slow-request list; keep --http-host on 127.0.0.1 behind an authenticating reverse proxy (docs/security.md)"
            );
        }
        let logger = tokio::spawn(counters.clone().log_every(Duration::from_secs(10)));
        if args.demo {
            super::simulate::spawn_demo(args.listen.clone());
            tracing::info!("demo: a built-in simulator is feeding this ingester (no Apache needed)");
        }
        let signal = async move {
            async fn on(s: Option<&mut tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            let name = tokio::select! {
                _ = on(int.as_mut()) => "SIGINT",
                _ = on(term.as_mut()) => "SIGTERM",
            };
            tracing::info!("received {name}, shutting down");
            let _ = stop_tx.send(true);
        };
        tokio::spawn(signal);
        http::server::serve(listener, routes, limits, counters, stop_rx).await;
        logger.abort();
        shared.stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            threads.join();
            let _ = history_writer.join();
        })
        .await
        .ok();
        drop(bound);
        Ok(0)
    })
}
