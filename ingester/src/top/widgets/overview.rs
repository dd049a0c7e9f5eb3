//! The overview view: a sparkline per series, its latest value, and the
//! phase mean times.

use super::palette::Palette;
use crate::top::format::fmt_seconds;
use crate::top::view_model::{Overview, Series};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The body of the overview view.
pub struct OverviewPane<'a> {
    pub overview: &'a Overview,
    pub palette: Palette,
}

impl Widget for OverviewPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Paragraph::new(overview_lines(self.overview, area.width, &self.palette)).render(area, buf);
    }
}

/// Averages a series down to `width` points, or left-pads it with zeros.
pub fn fit_series(points: &[f64], width: usize) -> Vec<f64> {
    if width == 0 {
        return Vec::new();
    }
    if points.len() <= width {
        let mut v = vec![0.0; width - points.len()];
        v.extend_from_slice(points);
        return v;
    }
    (0..width)
        .map(|i| {
            let a = i * points.len() / width;
            let b = ((i + 1) * points.len() / width).max(a + 1);
            points[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect()
}

/// Block-character sparkline of `points`, scaled from `floor` to their
/// maximum; values ≤ 0 (no data) are blank.
pub fn sparkline(points: &[f64], floor: f64) -> String {
    const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = points.iter().cloned().fold(0.0, f64::max);
    let range = max - floor;
    points
        .iter()
        .map(|v| {
            if max <= 0.0 || *v <= 0.0 {
                BLOCKS[0]
            } else if range <= 0.0 {
                BLOCKS[8]
            } else {
                BLOCKS[(((v - floor) / range * 8.0).round().max(0.0) as usize).clamp(1, 8)]
            }
        })
        .collect()
}

fn overview_lines(o: &Overview, width: u16, pal: &Palette) -> Vec<Line<'static>> {
    let w = (width as usize).saturating_sub(18).max(20);
    let mut lines = vec![
        Line::from(Span::styled(format!("Overview: {}", o.title), pal.bold())),
        Line::from(""),
    ];
    if let Some(note) = &o.note {
        lines.push(Line::from(Span::styled(note.clone(), pal.dim())));
    }
    for Series {
        label,
        points,
        floor,
        latest,
    } in &o.series
    {
        lines.push(Line::from(vec![
            Span::raw(format!("{label:<11}")),
            Span::styled(sparkline(&fit_series(points, w), *floor), pal.bar()),
        ]));
        lines.push(Line::from(Span::styled(
            format!("{:<11}{latest}", ""),
            pal.dim(),
        )));
    }
    if o.phase_means.is_empty() {
        return lines;
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Phase mean times (current tick):"));
    let parts: Vec<String> = o
        .phase_means
        .iter()
        .map(|(p, m)| format!("{p}={}", fmt_seconds(*m)))
        .collect();
    lines.push(Line::from(format!("  {}", parts.join("  "))));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::view_model::{header, overview, UiState};

    #[test]
    fn overview_of_the_small_site_over_10s() {
        let ui = UiState {
            window_idx: 0,
            ..UiState::default()
        };
        let site = small_site();
        let o = overview(&site, &ui, SITE_LOCAL, &header(&site, &ui, SITE_LOCAL));
        let pane = OverviewPane {
            overview: &o,
            palette: Palette(false),
        };
        draw_widget(76, 14, pane).backend().assert_buffer_lines([
            "Overview: last 10s (use < > to change window)                               ",
            "                                                                            ",
            "throughput                                                 ██████████       ",
            "           now 8.0 req/s                                                    ",
            "capacity                                                   ▆▆▆▆▆▆▆▆▆█       ",
            "           now 67%                                                          ",
            "cpu                                                        ██████████       ",
            "           now 0.75 cores                                                   ",
            "rss                                                        ██████████       ",
            "           now 150.0MB                                                      ",
            "                                                                            ",
            "Phase mean times (current tick):                                            ",
            "  server=1.2ms  queue=-  daemon=-  application=308.8ms  request=337.5ms     ",
            "                                                                            ",
        ]);
    }

    #[test]
    fn ranged_overview_from_a_history_answer() {
        use crate::top::history::{HistoryAnswer, HistoryPoint, HistoryState};
        use crate::top::view_model::ranged_overview;
        // Six 10-minute steps of an hour; the third has no point (blank).
        let point = |i: u32, rate: f64| HistoryPoint {
            t: 1000.0 + 600.0 * f64::from(i),
            rate,
            capacity: Some(rate / 100.0),
            cpu: rate / 50.0,
            rss_mean: 100.0 * 1048576.0 + rate * 1048576.0,
            p95: (rate > 10.0).then_some(rate / 1000.0),
        };
        let answer = HistoryAnswer {
            from: 1000.0,
            to: 4600.0,
            step: 600.0,
            points: vec![
                point(0, 10.0),
                point(1, 20.0),
                point(3, 40.0),
                point(4, 80.0),
                point(5, 40.0),
            ],
        };
        let o = ranged_overview("1h", &HistoryState::Ready(answer));
        let pane = OverviewPane {
            overview: &o,
            palette: Palette(false),
        };
        draw_widget(76, 13, pane).backend().assert_buffer_lines([
            "Overview: last 1h from the history (t: live/1h/6h/24h/7d), one point per 10m",
            "                                                                            ",
            "throughput                                                     ▁▂ ▄█▄       ",
            "           newest 40.0 req/s  max 80.0 req/s                                ",
            "p95 time                                                        ▂ ▄█▄       ",
            "           newest 40.0ms  max 80.0ms                                        ",
            "capacity                                                       ▁▂ ▄█▄       ",
            "           newest 40%  max 80%                                              ",
            "cpu                                                            ▁▂ ▄█▄       ",
            "           newest 0.80 cores  max 1.60 cores                                ",
            "rss mean                                                       ▅▅ ▆█▆       ",
            "           newest 140.0MB  max 180.0MB                                      ",
            "                                                                            ",
        ]);
        let o = ranged_overview(
            "24h",
            &HistoryState::Unavailable("the server has no /api/history".into()),
        );
        let pane = OverviewPane {
            overview: &o,
            palette: Palette(false),
        };
        draw_widget(76, 4, pane).backend().assert_buffer_lines([
            "Overview: last 24h from the history (t: live/1h/6h/24h/7d)                  ",
            "                                                                            ",
            "history not available: the server has no /api/history                       ",
            "                                                                            ",
        ]);
    }

    #[test]
    fn series_fit_and_sparkline() {
        assert_eq!(fit_series(&[1.0, 2.0], 4), vec![0.0, 0.0, 1.0, 2.0]);
        assert_eq!(fit_series(&[1.0, 3.0, 5.0, 7.0], 2), vec![2.0, 6.0]);
        assert_eq!(sparkline(&[0.0, 4.0, 8.0], 0.0), " ▄█");
        assert_eq!(sparkline(&[100.0, 104.0, 108.0], 100.0), "▁▄█");
    }
}
