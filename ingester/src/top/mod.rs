//! `mod_wsgi-telemetry top`: the terminal twin of the browser UI.
//!
//! Data flow: [`client`] (WebSocket, own thread) → [`model`] (the
//! [`Replica`]: what `serve` told us) → [`view_model`] (every statistic, once
//! per frame) → [`widgets`] (ratatui drawing only); [`format`] writes numbers
//! for both screens. [`history`] and [`stats`] poll `serve`'s JSON API over
//! [`http`] for the overview's ranges and the application metrics. [`app`] holds the interactive state between frames and
//! turns keys and client events into changes of it. [`once`] and [`health`]
//! are the scriptable `--once` side.
//! The terminal is restored on every exit path: normal quit, Ctrl-C and
//! SIGINT/SIGTERM/SIGHUP (as quit events), and panics (ratatui's hook).

mod app;
mod client;
mod format;
mod health;
mod history;
mod http;
mod model;
mod once;
mod stats;
mod view_model;
mod widgets;

#[cfg(test)]
mod fixture;

use anyhow::Context;
use app::{Action, App};
use model::Replica;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use std::time::{Duration, Instant};
use view_model::{UiState, View, REFRESH};

const DEFAULT_URL: &str = "ws://127.0.0.1:8888/ws";

/// Options of `top`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_long_help = long_help())]
pub struct TopArgs {
    /// WebSocket endpoint of a running `serve`.
    #[arg(long, env = "MOD_WSGI_TELEMETRY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Render period in seconds, snapped to 0.5, 1, 2 or 5.
    #[arg(long, default_value_t = 1.0)]
    pub refresh: f64,
    /// Initial view.
    #[arg(long, default_value = "overview",
          value_parser = ["overview", "processes", "workers", "latency", "slow", "custom"])]
    pub view: String,
    /// Window of the latency figures and charts: 10s, 1m or 10m.
    #[arg(long, default_value = "1m", value_parser = ["10s", "1m", "10m"])]
    pub window: String,
    /// Show only this process group (`(embedded)` or "" for processes
    /// without a group).
    #[arg(long)]
    pub group: Option<String>,
    /// Do not use colours.
    #[arg(long)]
    pub no_color: bool,
    /// Print one plain-text frame and exit: 0 when data arrived, 2 when the
    /// connection timed out, 1 when a --fail-if condition holds.
    #[arg(long)]
    pub once: bool,
    /// With --once: print JSON instead of text.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// How long --once waits for the first message, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub once_timeout: f64,
    /// With --once: exit 1 when CONDITION holds, e.g. 'capacity>0.9',
    /// 'p95>2.0', '5xx_rate>0.05' (repeatable; see --help).
    #[arg(long = "fail-if", value_name = "CONDITION", requires = "once",
          value_parser = health::parse)]
    pub fail_if: Vec<health::Condition>,
    /// Take only the recent history that fits the server's snapshot budget
    /// on connect, instead of asking for all of it (`?history=full`, the
    /// default: 10-minute figures need it; the server still holds it to
    /// its --snapshot-budget). The footer says `partial history` whenever
    /// older history was left out.
    #[arg(long)]
    pub recent_history: bool,
    /// Write debug logging to this file.
    #[arg(long)]
    pub log_file: Option<std::path::PathBuf>,
}

impl TopArgs {
    /// The WebSocket URL to connect to.
    pub fn ws_url(&self) -> String {
        if self.recent_history {
            return self.url.clone();
        }
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}history=full", self.url)
    }
}

fn long_help() -> String {
    let mut s = String::from("Keys:\n");
    for l in widgets::HELP {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    s.push_str(
        "\nExit status: 0 normally; with --once 0 when data arrived, 2 when none \
         arrived within --once-timeout, 1 when a --fail-if condition holds.\n\n",
    );
    s.push_str(&health::help_text());
    s
}

fn initial_ui(args: &TopArgs) -> UiState {
    let mut ui = UiState {
        view: View::from_name(&args.view).unwrap_or(View::Overview),
        ..UiState::default()
    };
    ui.refresh_idx = (0..REFRESH.len())
        .min_by(|a, b| {
            (REFRESH[*a] - args.refresh)
                .abs()
                .total_cmp(&(REFRESH[*b] - args.refresh).abs())
        })
        .unwrap_or(1);
    ui.window_idx = match args.window.as_str() {
        "10s" => 0,
        "10m" => 2,
        _ => 1,
    };
    ui.group = args.group.as_ref().map(|g| {
        if g == "(embedded)" {
            String::new()
        } else {
            g.clone()
        }
    });
    ui
}

fn init_logging(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    Ok(())
}

/// Runs `top`; returns the exit status.
pub fn run(args: TopArgs) -> anyhow::Result<i32> {
    if let Some(p) = &args.log_file {
        init_logging(p)?;
    }
    if args.once {
        run_once(&args)
    } else {
        run_tui(&args)
    }
}

fn run_once(args: &TopArgs) -> anyhow::Result<i32> {
    let ui = initial_ui(args);
    let client = client::spawn(args.ws_url(), false)?;
    let mut replica = Replica::new();
    let deadline = Instant::now() + Duration::from_secs_f64(args.once_timeout.max(0.0));
    let mut received = false;
    let mut grace_until: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    loop {
        let now = Instant::now();
        let until = grace_until.unwrap_or(deadline);
        if now >= until {
            break;
        }
        match client.events.recv_timeout(until - now) {
            Ok(client::Event::Message(m)) => {
                replica.apply(*m, crate::clock::wall_now());
                if !received {
                    received = true;
                    // Catch the live updates already in flight.
                    grace_until = Some(Instant::now() + Duration::from_millis(100));
                }
            }
            Ok(client::Event::Disconnected { error, .. }) => {
                tracing::debug!("once: {error}");
                last_error = Some(error);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(client);
    let local_now = crate::clock::wall_now();
    let h = view_model::header(&replica, &ui, local_now);
    let rows = view_model::process_rows(&replica, &ui, local_now);
    let failures = if received {
        health::evaluate(&args.fail_if, &h)
    } else {
        Vec::new()
    };
    let text = if args.json {
        let v = once::json(&args.url, received, &h, &rows, &failures);
        serde_json::to_string_pretty(&v)?
    } else {
        once::text(&h, &rows, &failures)
    };
    {
        use std::io::Write;
        // A closed pipe (`top --once | head`) is not an error worth a panic.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}").and_then(|_| out.flush());
    }
    if !received {
        eprintln!(
            "top: no data from {} within {}s{}",
            args.url,
            args.once_timeout,
            last_error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
        return Ok(2);
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

/// Restores the terminal when dropped (normal exit and `?` errors); ratatui's
/// panic hook covers panics.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn run_tui(args: &TopArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        anyhow::bail!("top needs a terminal (use --once for scripts)");
    }
    let client = client::spawn(args.ws_url(), true)?;
    let fetcher = history::spawn_fetcher(args.url.clone());
    let stats = stats::spawn_fetcher(args.url.clone());
    let mut app = App::new(initial_ui(args), args.url.clone(), !args.no_color);
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let _guard = TerminalGuard;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    'main: loop {
        while let Ok(ev) = client.events.try_recv() {
            match app.on_event(ev, crate::clock::wall_now()) {
                Action::Quit => break 'main,
                Action::Redraw => dirty = true,
                Action::None => {}
            }
        }
        fetcher.want(app.history_key());
        while let Ok((key, state)) = fetcher.answers.try_recv() {
            if app.on_history(key, state) == Action::Redraw {
                dirty = true;
            }
        }
        stats.want(app.stats_key());
        while let Ok((key, answer)) = stats.answers.try_recv() {
            if app.on_stats(key, answer, crate::clock::wall_now()) == Action::Redraw {
                dirty = true;
            }
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                    match app.on_key(k, crate::clock::wall_now()) {
                        Action::Quit => break 'main,
                        Action::Redraw => dirty = true,
                        Action::None => {}
                    }
                }
                TermEvent::Resize(..) => dirty = true,
                _ => {}
            }
        }
        let due = last_draw
            .map(|t| t.elapsed().as_secs_f64() >= app.ui.refresh())
            .unwrap_or(true);
        if dirty || due {
            let vm = app.frame(crate::clock::wall_now());
            terminal.draw(|f| widgets::draw(f, &vm))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
    }
    drop(client);
    drop(fetcher);
    drop(stats);
    Ok(0)
}

#[cfg(test)]
mod tests;
