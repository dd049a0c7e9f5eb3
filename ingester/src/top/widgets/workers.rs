//! The workers grid: one glyph per request thread, with the longest-running
//! slot and request under each process.

use super::palette::Palette;
use crate::top::format::{fmt_seconds, truncate};
use crate::top::view_model::{Cell, WorkerRow};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The body of the workers view.
pub struct WorkerGrid<'a> {
    pub rows: &'a [WorkerRow],
    pub palette: Palette,
}

impl Widget for WorkerGrid<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Paragraph::new(worker_lines(self.rows, &self.palette)).render(area, buf);
    }
}

fn worker_lines(rows: &[WorkerRow], pal: &Palette) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(vec![
            Span::styled("Workers  ", pal.bold()),
            Span::styled(". idle", pal.dim()),
            Span::raw("  "),
            Span::styled("* <1s", pal.ok()),
            Span::raw("  "),
            Span::styled("# >=1s", pal.warn()),
            Span::raw("  "),
            Span::styled("! >=slow-threshold", pal.crit()),
        ]),
        Line::from(""),
    ];
    if rows.is_empty() {
        lines.push(Line::from(Span::styled("(no live processes)", pal.dim())));
    }
    for r in rows {
        let mut spans = vec![Span::raw(format!(
            "{:>8} {:<12} ",
            r.pid,
            truncate(&r.group, 12)
        ))];
        for c in &r.cells {
            let st = match c {
                Cell::Idle => pal.dim(),
                Cell::Short => pal.ok(),
                Cell::Long => pal.warn(),
                Cell::Slow => pal.crit(),
            };
            spans.push(Span::styled(c.glyph().to_string(), st));
        }
        lines.push(Line::from(spans));
        if let Some((slot, t)) = r.longest {
            let mut note = format!(
                "{:>22}longest slot: #{slot} running {}",
                "",
                fmt_seconds(Some(t))
            );
            if let Some((m, u)) = &r.longest_request {
                note.push_str(&format!("  {m} {}", truncate(u, 60)));
            }
            lines.push(Line::from(Span::styled(note, pal.dim())));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::model::Replica;
    use crate::top::view_model::{worker_rows, UiState};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn draw(replica: &Replica, width: u16, height: u16) -> Terminal<TestBackend> {
        let rows = worker_rows(replica, &UiState::default(), SITE_LOCAL);
        let grid = WorkerGrid {
            rows: &rows,
            palette: Palette(false),
        };
        draw_widget(width, height, grid)
    }

    #[test]
    fn worker_grid_of_the_small_site() {
        let t = draw(&small_site(), 72, 7);
        t.backend().assert_buffer_lines([
            "Workers  . idle  * <1s  # >=1s  ! >=slow-threshold                      ",
            "                                                                        ",
            "     101 app          .*#.                                              ",
            "                      longest slot: #3 running 1.50s                    ",
            "     102 (embedded)   !*                                                ",
            "                      longest slot: #1 running 2.50s  GET /report       ",
            "                                                                        ",
        ]);
    }

    #[test]
    fn worker_grid_without_processes() {
        let t = draw(&Replica::new(), 60, 3);
        t.backend().assert_buffer_lines([
            "Workers  . idle  * <1s  # >=1s  ! >=slow-threshold          ",
            "                                                            ",
            "(no live processes)                                         ",
        ]);
    }
}
