//! The processes table: one row per process, dimmed when it no longer
//! counts, yellow / red when most of its threads are busy.

use super::palette::Palette;
use crate::top::format::{fmt_bytes, fmt_seconds, truncate};
use crate::top::view_model::ProcRow;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The body of the processes view.
pub struct ProcessTable<'a> {
    pub sort: &'a str,
    pub rows: &'a [ProcRow],
    /// First row shown (clamped to the last row).
    pub scroll: usize,
    pub palette: Palette,
}

impl Widget for ProcessTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = process_lines(self.sort, self.rows, self.scroll, &self.palette);
        Paragraph::new(lines).render(area, buf);
    }
}

fn process_lines(sort: &str, rows: &[ProcRow], scroll: usize, pal: &Palette) -> Vec<Line<'static>> {
    let scroll = scroll.min(rows.len().saturating_sub(1));
    let mut lines = vec![
        Line::from(Span::styled(
            format!(
                "Processes - sort: {sort} (use < > to change)   {} pids{}",
                rows.len(),
                if scroll > 0 {
                    format!("   (from row {}, ↑↓ to scroll)", scroll + 1)
                } else {
                    String::new()
                }
            ),
            pal.bold(),
        )),
        Line::from(Span::styled(
            format!(
                "{:>8}  {:<16} {:<8} {:>9} {:>8} {:>6} {:>9} {:>9} {:>5}",
                "PID", "GROUP", "STATE", "THREADS", "RPS", "CPU", "RSS", "P95", "SLOW"
            ),
            pal.bold(),
        )),
    ];
    for r in rows.iter().skip(scroll) {
        let text = format!(
            "{:>8}  {:<16} {:<8} {:>9} {:>8.1} {:>6.2} {:>9} {:>9} {:>5}",
            r.pid,
            truncate(&r.group, 16),
            r.liveness.label(),
            format!("{}/{}", r.threads_active, r.threads_max),
            r.rps,
            r.cpu,
            fmt_bytes(r.rss),
            fmt_seconds(r.p95),
            r.slow
        );
        let st = if !r.liveness.counts() {
            pal.dim()
        } else {
            match r.load_level() {
                2 => pal.crit(),
                1 => pal.warn(),
                _ => Style::default(),
            }
        };
        lines.push(Line::from(Span::styled(text, st)));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::view_model::{process_rows, UiState};
    use ratatui::style::{Color, Modifier};

    fn table(rows: &[ProcRow], scroll: usize, palette: Palette) -> ProcessTable<'_> {
        ProcessTable {
            sort: "rps",
            rows,
            scroll,
            palette,
        }
    }

    /// The table of the small site, sorted by requests per second.
    const SITE_TABLE: [&str; 5] = [
            "Processes - sort: rps (use < > to change)   3 pids                                        ",
            "     PID  GROUP            STATE      THREADS      RPS    CPU       RSS       P95  SLOW   ",
            "     101  app              live           2/4      6.0   0.25    50.0MB    77.6ms     1   ",
            "     102  (embedded)       live           2/2      2.0   0.50   100.0MB     1.52s     1   ",
            "     103  app              stopped        0/4      0.0   0.00    20.0MB    39.6ms     0   ",
    ];

    #[test]
    fn process_table_of_the_small_site() {
        let rows = process_rows(&small_site(), &UiState::default(), SITE_LOCAL);
        let t = draw_widget(90, 5, table(&rows, 0, Palette(false)));
        t.backend().assert_buffer_lines(SITE_TABLE);
    }

    #[test]
    fn rows_are_coloured_by_load_and_liveness() {
        let rows = process_rows(&small_site(), &UiState::default(), SITE_LOCAL);
        let t = draw_widget(90, 5, table(&rows, 0, Palette(true)));
        let mut expected = Buffer::with_lines(SITE_TABLE);
        let bold = Style::default().add_modifier(Modifier::BOLD);
        // Styles cover the text of each line, not the padding after it.
        expected.set_style(Rect::new(0, 0, 50, 1), bold);
        expected.set_style(Rect::new(0, 1, 87, 1), bold);
        // 101: 2 of 4 threads busy (plain); 102: both busy (critical); 103
        // stopped (dim).
        expected.set_style(
            Rect::new(0, 3, 87, 1),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        );
        expected.set_style(Rect::new(0, 4, 87, 1), Style::default().fg(Color::DarkGray));
        t.backend().assert_buffer(&expected);
    }

    #[test]
    fn scrolled_table_says_from_which_row() {
        let rows = process_rows(&small_site(), &UiState::default(), SITE_LOCAL);
        let t = draw_widget(90, 4, table(&rows, 7, Palette(false)));
        t.backend().assert_buffer_lines([
            "Processes - sort: rps (use < > to change)   3 pids   (from row 3, ↑↓ to scroll)           ",
            "     PID  GROUP            STATE      THREADS      RPS    CPU       RSS       P95  SLOW   ",
            "     103  app              stopped        0/4      0.0   0.00    20.0MB    39.6ms     0   ",
            "                                                                                          ",
        ]);
    }
}
