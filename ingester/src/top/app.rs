//! The interactive monitor's controller: what `top` holds between frames
//! (the [`Replica`], the user's choices, the connection, the frozen copy
//! while paused) and how client events and keys change it. It draws
//! nothing; [`App::frame`] hands the view-model to the widgets.

use super::client;
use super::history::RANGES;
use super::history::{HistoryKey, HistoryState};
use super::model::{self, Replica, StatsAnswer, StatsKey, PHASES};
use super::view_model::{
    self, ConnView, UiState, View, PROC_SORTS, REFRESH, SLOW_FILTERS, SLOW_SORTS, WINDOWS,
};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

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

    /// The history the overview needs now (`None`: the live window).
    pub fn history_key(&self) -> Option<HistoryKey> {
        let range = self.ui.range().filter(|_| self.ui.view == View::Overview)?;
        Some((range, self.ui.group.clone()))
    }

    /// An answer of the history fetcher; one for another range or group
    /// than the one shown now is dropped.
    pub fn on_history(&mut self, key: HistoryKey, state: HistoryState) -> Action {
        if self.history_key().as_ref() != Some(&key) || self.conn.history == state {
            return Action::None;
        }
        self.conn.history = state;
        Action::Redraw
    }

    /// The application metrics the custom view needs now (`None`: another
    /// view, nothing to poll): those of the group filter.
    pub fn stats_key(&self) -> Option<StatsKey> {
        (self.ui.view == View::Custom).then(|| self.ui.group.clone())
    }

    /// A poll of `/api/stats/detail`, received at `local_now`. One for a
    /// filter no longer shown is dropped.
    pub fn on_stats(
        &mut self,
        key: StatsKey,
        answer: Result<StatsAnswer, String>,
        local_now: f64,
    ) -> Action {
        if self.stats_key().as_ref() != Some(&key) {
            return Action::None;
        }
        self.conn.stats.take(key, answer, local_now);
        Action::Redraw
    }

    /// The groups `f` cycles through in the current view: those with
    /// application metrics in the custom view, elsewhere those of the
    /// processes counted.
    fn filter_groups(&self, local_now: f64) -> Vec<String> {
        if self.ui.view == View::Custom {
            let mut g: Vec<String> = self
                .conn
                .stats
                .answer
                .iter()
                .flat_map(|a| a.groups.iter().map(|(_, g)| g.clone()))
                .collect();
            g.sort();
            g.dedup();
            return g;
        }
        let st = self.frozen.as_ref().map(|f| &f.0).unwrap_or(&self.replica);
        view_model::groups(st, local_now)
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
                View::Custom => view_model::custom(&self.conn.stats, &self.ui).rows.len(),
                _ => 0,
            };
            self.ui.scroll = self.ui.scroll.min(rows.saturating_sub(1));
        }
        action
    }

    fn on_plain_key(&mut self, k: KeyEvent, local_now: f64) -> Action {
        let groups = match k.code {
            KeyCode::Char('f') => self.filter_groups(local_now),
            _ => Vec::new(),
        };
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
            KeyCode::Char('c') | KeyCode::Char('6') => ui.view = View::Custom,
            KeyCode::Char(c @ ('<' | ',' | '>' | '.')) => {
                let fwd = c == '>' || c == '.';
                let step = |i: usize, n: usize| if fwd { (i + 1) % n } else { (i + n - 1) % n };
                match view {
                    View::Overview | View::Latency => {
                        ui.window_idx = step(ui.window_idx, WINDOWS.len())
                    }
                    View::Processes => ui.proc_sort = step(ui.proc_sort, PROC_SORTS.len()),
                    View::Slow => ui.slow_sort = step(ui.slow_sort, SLOW_SORTS.len()),
                    View::Workers | View::Custom => {}
                }
            }
            KeyCode::Char('t') => {
                ui.range_idx = (ui.range_idx + 1) % RANGES.len();
                ui.view = View::Overview;
                self.conn.history = if ui.range().is_some() {
                    HistoryState::Loading
                } else {
                    HistoryState::Idle
                };
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
                ui.group = match &ui.group {
                    None => groups.first().cloned(),
                    Some(g) => groups
                        .iter()
                        .position(|x| x == g)
                        .and_then(|i| groups.get(i + 1).cloned()),
                };
                if ui.range().is_some() {
                    self.conn.history = HistoryState::Loading;
                }
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
