//! The slow-requests table: state, elapsed time, pid, method, status, log id
//! and URL, with the I/O and CPU figures of the top row under it.

use super::palette::Palette;
use crate::top::format::{fmt_bytes, fmt_seconds, truncate};
use crate::top::view_model::{SlowList, SlowState};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The body of the slow view.
pub struct SlowTable<'a> {
    pub list: &'a SlowList,
    /// First row shown (clamped to the last row).
    pub scroll: usize,
    pub palette: Palette,
}

impl Widget for SlowTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = slow_lines(self.list, area.height, self.scroll, &self.palette);
        Paragraph::new(lines).render(area, buf);
    }
}

fn slow_lines(s: &SlowList, height: u16, scroll: usize, pal: &Palette) -> Vec<Line<'static>> {
    let scroll = scroll.min(s.rows.len().saturating_sub(1));
    let mut title = format!(
        "Slow requests - sort: {}  state: {}  ({} shown / {} total)   (< > sort, f filter, / search)",
        s.sort,
        s.filter,
        s.rows.len(),
        s.total
    );
    if !s.search.is_empty() {
        title.push_str(&format!("  search: '{}'", s.search));
    }
    if scroll > 0 {
        title.push_str(&format!("  (from row {})", scroll + 1));
    }
    let mut lines = vec![
        Line::from(Span::styled(title, pal.bold())),
        Line::from(Span::styled(
            format!(
                "{:<7}{:>9} {:>8} {:<7}{:>6}  {:<28} {}",
                "STATE", "ELAPSED", "PID", "METHOD", "STATUS", "LOG ID", "URL"
            ),
            pal.bold(),
        )),
    ];
    let room = (height as usize).saturating_sub(4);
    for r in s.rows.iter().skip(scroll).take(room) {
        let st = match r.state {
            SlowState::Active => pal.crit(),
            SlowState::Lost => pal.warn(),
            SlowState::Completed => pal.dim(),
        };
        let status = if r.status == 0 {
            "-".to_string()
        } else {
            r.status.to_string()
        };
        lines.push(Line::from(Span::styled(
            format!(
                "{:<7}{:>9} {:>8} {:<7}{:>6}  {:<28} {}",
                r.state.label(),
                fmt_seconds(Some(r.elapsed)),
                r.pid,
                truncate(&r.method, 7),
                status,
                truncate(&r.log_id, 28),
                r.url
            ),
            st,
        )));
    }
    if let Some(r) = s.rows.get(scroll) {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(
                "top row: cpu user {} sys {}  in={}/{}r out={}/{}w",
                fmt_seconds(Some(r.cpu_user)),
                fmt_seconds(Some(r.cpu_system)),
                fmt_bytes(r.input_bytes as f64),
                r.input_reads,
                fmt_bytes(r.output_bytes as f64),
                r.output_writes
            ),
            pal.dim(),
        )));
    } else {
        lines.push(Line::from(Span::styled(
            "(no slow requests match)",
            pal.dim(),
        )));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::view_model::{slow_list, UiState};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn draw(ui: &UiState, scroll: usize, width: u16, height: u16) -> Terminal<TestBackend> {
        let list = slow_list(&small_site(), ui, SITE_LOCAL);
        let table = SlowTable {
            list: &list,
            scroll,
            palette: Palette(false),
        };
        draw_widget(width, height, table)
    }

    #[test]
    fn slow_table_of_the_small_site() {
        let t = draw(&UiState::default(), 0, 100, 7);
        t.backend().assert_buffer_lines([
            "Slow requests - sort: elapsed  state: any  (2 shown / 2 total)   (< > sort, f filter, / search)     ",
            "STATE    ELAPSED      PID METHOD STATUS  LOG ID                       URL                           ",
            "ACTIVE     2.50s      102 GET         -  a1                           /report                       ",
            "done       3.20s      101 POST      200  b2                           /api/upload                   ",
            "                                                                                                    ",
            "top row: cpu user 0µs sys 0µs  in=0B/0r out=0B/0w                                                   ",
            "                                                                                                    ",
        ]);
    }

    #[test]
    fn searched_and_scrolled_slow_table() {
        let ui = UiState {
            search: "API".into(),
            ..UiState::default()
        };
        let t = draw(&ui, 0, 110, 6);
        t.backend().assert_buffer_lines([
            "Slow requests - sort: elapsed  state: any  (1 shown / 2 total)   (< > sort, f filter, / search)  search: 'API'",
            "STATE    ELAPSED      PID METHOD STATUS  LOG ID                       URL                                     ",
            "done       3.20s      101 POST      200  b2                           /api/upload                             ",
            "                                                                                                              ",
            "top row: cpu user 500.0ms sys 100.0ms  in=2.0KB/2r out=512B/1w                                                ",
            "                                                                                                              ",
        ]);
        let none = UiState {
            search: "zz".into(),
            ..UiState::default()
        };
        // Nothing matches: the scroll position is clamped to the top.
        let t = draw(&none, 3, 110, 4);
        t.backend().assert_buffer_lines([
            "Slow requests - sort: elapsed  state: any  (0 shown / 2 total)   (< > sort, f filter, / search)  search: 'zz' ",
            "STATE    ELAPSED      PID METHOD STATUS  LOG ID                       URL                                     ",
            "(no slow requests match)                                                                                      ",
            "                                                                                                              ",
        ]);
    }
}
