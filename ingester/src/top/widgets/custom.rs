//! The custom view's table: one row per application metric, with its
//! value, rate, percentiles and a sparkline of the last minute.

use super::overview::{fit_series, sparkline};
use super::palette::Palette;
use crate::top::format::{fmt_number, fmt_seconds, truncate};
use crate::top::view_model::{Custom, CustomRow};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// Characters before the sparkline column.
const FIXED: usize = 88;

/// The body of the custom view.
pub struct CustomTable<'a> {
    pub custom: &'a Custom,
    /// First row shown (clamped to the last row).
    pub scroll: usize,
    pub palette: Palette,
}

impl Widget for CustomTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = custom_lines(self.custom, area, self.scroll, &self.palette);
        Paragraph::new(lines).render(area, buf);
    }
}

fn columns(name: &str, kind: &str, value: &str, rate: &str, p: [&str; 3]) -> String {
    format!(
        "{:<24} {:<13}{:>10} {:>10} {:>8} {:>8} {:>8}  ",
        truncate(name, 24),
        kind,
        value,
        rate,
        p[0],
        p[1],
        p[2]
    )
}

fn row_line(r: &CustomRow, spark_width: usize, pal: &Palette) -> Line<'static> {
    let kind = match r.processes {
        Some(n) => format!("{} ×{n}", r.kind),
        None => r.kind.to_string(),
    };
    let rate = r.rate.map(|v| format!("{v:.1}/s")).unwrap_or_default();
    let p = r
        .percentiles
        .map(|p| p.map(|s| fmt_seconds(Some(s))))
        .unwrap_or_default();
    let text = columns(
        &r.name,
        &kind,
        &fmt_number(r.value),
        &rate,
        [&p[0], &p[1], &p[2]],
    );
    Line::from(vec![
        Span::raw(text),
        Span::styled(
            sparkline(&fit_series(&r.spark, spark_width), r.floor),
            pal.bar(),
        ),
    ])
}

fn custom_lines(c: &Custom, area: Rect, scroll: usize, pal: &Palette) -> Vec<Line<'static>> {
    let scroll = scroll.min(c.rows.len().saturating_sub(1));
    let mut title = c.title.clone();
    if scroll > 0 {
        title.push_str(&format!("  (from row {})", scroll + 1));
    }
    let mut lines = vec![
        Line::from(Span::styled(title, pal.bold())),
        Line::from(Span::styled(
            columns("NAME", "TYPE", "VALUE", "RATE", ["P50", "P95", "P99"]) + "LAST MINUTE",
            pal.bold(),
        )),
    ];
    if let Some(note) = &c.note {
        lines.push(Line::from(Span::styled(note.clone(), pal.dim())));
    }
    let footer = if c.dropped.is_some() { 2 } else { 0 };
    let room = (area.height as usize).saturating_sub(lines.len() + footer);
    let spark_width = (area.width as usize).saturating_sub(FIXED).max(1);
    for r in c.rows.iter().skip(scroll).take(room) {
        lines.push(row_line(r, spark_width, pal));
    }
    if let Some(d) = &c.dropped {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(
                "dropped: {} calls (names past a process's limit), {} series, {} processes, {} type conflicts",
                d.calls, d.series, d.processes, d.type_conflicts
            ),
            pal.warn(),
        )));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{app_stats, draw_widget};
    use crate::top::model::AppStats;
    use crate::top::view_model::{custom, UiState};

    #[test]
    fn custom_table_of_three_polls() {
        let c = custom(&app_stats(), &UiState::default());
        let table = CustomTable {
            custom: &c,
            scroll: 0,
            palette: Palette(false),
        };
        draw_widget(100, 8, table).backend().assert_buffer_lines([
            "Application metrics - group: all  (3 names, 3 processes)   (f group)                                ",
            "NAME                     TYPE              VALUE       RATE      P50      P95      P99  LAST MINUTE ",
            "orders.placed            counter            1240     15.0/s                                       ▃█",
            "payment.{0}              distribution        310              31.0ms  120.0ms  610.0ms           ▃▅█",
            "queue.depth              gauge ×2             17                                                 ▃▆█",
            "                                                                                                    ",
            "dropped: 44 calls (names past a process's limit), 0 series, 0 processes, 0 type conflicts           ",
            "                                                                                                    ",
        ]);
    }

    #[test]
    fn scrolled_and_unavailable() {
        let c = custom(&app_stats(), &UiState::default());
        let table = CustomTable {
            custom: &c,
            scroll: 9,
            palette: Palette(false),
        };
        // Scrolled past the end: the last row stays; too short for the
        // dropped line's room to leave more than one row.
        draw_widget(96, 5, table).backend().assert_buffer_lines([
            "Application metrics - group: all  (3 names, 3 processes)   (f group)  (from row 3)              ",
            "NAME                     TYPE              VALUE       RATE      P50      P95      P99  LAST MIN",
            "queue.depth              gauge ×2             17                                             ▃▆█",
            "                                                                                                ",
            "dropped: 44 calls (names past a process's limit), 0 series, 0 processes, 0 type conflicts       ",
        ]);
        let mut s = AppStats::default();
        s.take(None, Err("the server has no /api/stats/detail".into()), 0.0);
        let c = custom(&s, &UiState::default());
        let table = CustomTable {
            custom: &c,
            scroll: 0,
            palette: Palette(false),
        };
        draw_widget(96, 4, table).backend().assert_buffer_lines([
            "Application metrics - group: all   (f group)                                                    ",
            "NAME                     TYPE              VALUE       RATE      P50      P95      P99  LAST MIN",
            "application metrics not available: the server has no /api/stats/detail                          ",
            "                                                                                                ",
        ]);
    }
}
