//! `mod_wsgi-telemetry top`: the terminal twin of the browser UI.
//!
//! Data flow: [`client`] (WebSocket, own thread) → [`model`] (the
//! [`Replica`]: what `serve` told us) → [`view_model`] (every statistic, once
//! per frame) → [`widgets`] (ratatui drawing only); [`format`] writes numbers
//! for both screens. [`once`] and [`health`] are the scriptable `--once` side.
//! The terminal is restored on every exit path: normal quit, Ctrl-C and
//! SIGINT/SIGTERM/SIGHUP (as quit events), and panics (ratatui's hook).

mod client;
mod format;
mod health;
mod model;
mod once;
mod view_model;
mod widgets;

#[cfg(test)]
mod fixture;

use anyhow::Context;
use model::{Replica, PHASES};
use ratatui::crossterm::event::KeyModifiers;
use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use view_model::{ConnView, UiState, View, PROC_SORTS, REFRESH, SLOW_FILTERS, SLOW_SORTS, WINDOWS};

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
          value_parser = ["overview", "processes", "workers", "latency", "slow"])]
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
    /// default: 10-minute figures need it). Faster on very large sites; the
    /// footer then says `partial history`.
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

/// Local wall clock in seconds.
pub fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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
                replica.apply(*m, wall_now());
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
    let local_now = wall_now();
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

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Redraw,
    Quit,
}

/// The interactive monitor's model: data, choices, connection, pause.
pub struct App {
    pub replica: Replica,
    pub ui: UiState,
    pub conn: ConnView,
    /// The frozen state and clock while paused.
    pub frozen: Option<(Replica, f64)>,
    pub color: bool,
}

impl App {
    pub fn new(ui: UiState, url: String, color: bool) -> App {
        App {
            replica: Replica::new(),
            ui,
            conn: ConnView {
                url,
                ..ConnView::default()
            },
            frozen: None,
            color,
        }
    }

    /// The frame to draw now.
    pub fn frame(&self, local_now: f64) -> view_model::Frame {
        let (st, t) = match &self.frozen {
            Some((s, t)) => (s, *t),
            None => (&self.replica, local_now),
        };
        view_model::frame(st, &self.ui, &self.conn, t, self.color)
    }

    pub fn on_event(&mut self, ev: client::Event, local_now: f64) -> Action {
        match ev {
            client::Event::Connected => {
                self.conn.connected = true;
                self.conn.error = None;
                self.conn.retry_in = None;
            }
            client::Event::Message(m) => {
                // A (re)connection's snapshot is shown at once; live
                // messages wait for the next refresh.
                let snapshot = matches!(*m, model::Message::Snapshot(_));
                self.replica.apply(*m, local_now);
                if !snapshot {
                    return Action::None;
                }
            }
            client::Event::BadMessage(e) => {
                tracing::warn!("bad message: {e}");
                return Action::None;
            }
            client::Event::Disconnected { error, retry_in } => {
                self.conn.connected = false;
                self.conn.error = Some(error);
                self.conn.retry_in = Some(retry_in);
            }
            client::Event::Quit => return Action::Quit,
        }
        Action::Redraw
    }

    /// Handles one key press.
    pub fn on_key(&mut self, k: KeyEvent, local_now: f64) -> Action {
        let ui = &mut self.ui;
        if let Some(buf) = ui.search_edit.as_mut() {
            match k.code {
                KeyCode::Enter => {
                    ui.search = ui.search_edit.take().unwrap_or_default();
                    ui.scroll = 0;
                }
                KeyCode::Esc => {
                    ui.search_edit = None;
                    ui.search.clear();
                    ui.scroll = 0;
                }
                KeyCode::Backspace => {
                    buf.pop();
                }
                KeyCode::Char(c) if (' '..='~').contains(&c) => buf.push(c),
                _ => {}
            }
            return Action::Redraw;
        }
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        let key_of = |ui: &UiState| {
            (
                ui.view,
                ui.proc_sort,
                ui.slow_sort,
                ui.slow_filter,
                ui.group.clone(),
                ui.search.clone(),
            )
        };
        let before = key_of(ui);
        let action = self.on_plain_key(k, local_now);
        if before != key_of(&self.ui) {
            // Another list: start at its top.
            self.ui.scroll = 0;
        } else if self.ui.scroll > 0 {
            // Do not scroll past the last row.
            let (st, t) = match &self.frozen {
                Some((s, t)) => (s, *t),
                None => (&self.replica, local_now),
            };
            let rows = match self.ui.view {
                View::Processes => view_model::process_rows(st, &self.ui, t).len(),
                View::Slow => view_model::slow_list(st, &self.ui, t).rows.len(),
                _ => 0,
            };
            self.ui.scroll = self.ui.scroll.min(rows.saturating_sub(1));
        }
        action
    }

    fn on_plain_key(&mut self, k: KeyEvent, local_now: f64) -> Action {
        let ui = &mut self.ui;
        let view = ui.view;
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => ui.scroll = ui.scroll.saturating_add(1),
            KeyCode::Up | KeyCode::Char('k') => ui.scroll = ui.scroll.saturating_sub(1),
            KeyCode::PageDown => ui.scroll = ui.scroll.saturating_add(10),
            KeyCode::PageUp => ui.scroll = ui.scroll.saturating_sub(10),
            KeyCode::Home => ui.scroll = 0,
            KeyCode::Char('q') | KeyCode::Esc => return Action::Quit,
            KeyCode::Char('?') | KeyCode::Char('h') => ui.help = !ui.help,
            KeyCode::Char(' ') => {
                ui.paused = !ui.paused;
                self.frozen = if ui.paused {
                    Some((self.replica.clone(), local_now))
                } else {
                    None
                };
            }
            KeyCode::Char('+') | KeyCode::Char('=') => {
                ui.refresh_idx = ui.refresh_idx.saturating_sub(1);
            }
            KeyCode::Char('-') => ui.refresh_idx = (ui.refresh_idx + 1).min(REFRESH.len() - 1),
            KeyCode::Char('o') | KeyCode::Char('1') => ui.view = View::Overview,
            KeyCode::Char('p') | KeyCode::Char('2') => ui.view = View::Processes,
            KeyCode::Char('w') | KeyCode::Char('3') => ui.view = View::Workers,
            KeyCode::Char('l') | KeyCode::Char('4') => ui.view = View::Latency,
            KeyCode::Char('s') | KeyCode::Char('5') => ui.view = View::Slow,
            KeyCode::Char(c @ ('<' | ',' | '>' | '.')) => {
                let fwd = c == '>' || c == '.';
                let step = |i: usize, n: usize| if fwd { (i + 1) % n } else { (i + n - 1) % n };
                match view {
                    View::Overview | View::Latency => {
                        ui.window_idx = step(ui.window_idx, WINDOWS.len())
                    }
                    View::Processes => ui.proc_sort = step(ui.proc_sort, PROC_SORTS.len()),
                    View::Slow => ui.slow_sort = step(ui.slow_sort, SLOW_SORTS.len()),
                    View::Workers => {}
                }
            }
            KeyCode::Char('[') if view == View::Latency => {
                ui.phase_idx = (ui.phase_idx + PHASES.len() - 1) % PHASES.len()
            }
            KeyCode::Char(']') if view == View::Latency => {
                ui.phase_idx = (ui.phase_idx + 1) % PHASES.len()
            }
            KeyCode::Char('f') if view == View::Slow => {
                ui.slow_filter = (ui.slow_filter + 1) % SLOW_FILTERS.len()
            }
            KeyCode::Char('f') => {
                let st = self.frozen.as_ref().map(|f| &f.0).unwrap_or(&self.replica);
                let groups = view_model::groups(st, local_now);
                ui.group = match &ui.group {
                    None => groups.first().cloned(),
                    Some(g) => groups
                        .iter()
                        .position(|x| x == g)
                        .and_then(|i| groups.get(i + 1).cloned()),
                };
            }
            KeyCode::Char('r') if view == View::Slow => {
                ui.search.clear();
                ui.slow_filter = 0;
            }
            KeyCode::Char('/') if view == View::Slow => {
                ui.search_edit = Some(String::new());
            }
            _ => return Action::None,
        }
        Action::Redraw
    }
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
    let mut app = App::new(initial_ui(args), args.url.clone(), !args.no_color);
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let _guard = TerminalGuard;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    'main: loop {
        while let Ok(ev) = client.events.try_recv() {
            match app.on_event(ev, wall_now()) {
                Action::Quit => break 'main,
                Action::Redraw => dirty = true,
                Action::None => {}
            }
        }
        if event::poll(Duration::from_millis(50))? {
            match event::read()? {
                TermEvent::Key(k) if k.kind != KeyEventKind::Release => {
                    match app.on_key(k, wall_now()) {
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
            let vm = app.frame(wall_now());
            terminal.draw(|f| widgets::draw(f, &vm))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
    }
    drop(client);
    Ok(0)
}

#[cfg(test)]
mod tests;
