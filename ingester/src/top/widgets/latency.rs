//! The latency view: quantiles of one phase and its histogram as vertical
//! bars, with octave labels under them.

use super::palette::Palette;
use crate::top::format::{fmt_seconds, fmt_window};
use crate::top::view_model::Latency;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The body of the latency view.
pub struct LatencyHistogram<'a> {
    pub latency: &'a Latency,
    pub palette: Palette,
}

impl Widget for LatencyHistogram<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = latency_lines(self.latency, area.width, area.height, &self.palette);
        Paragraph::new(lines).render(area, buf);
    }
}

fn latency_lines(l: &Latency, width: u16, height: u16, pal: &Palette) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::from(Span::styled(
            format!(
                "Latency - phase: {}  window: {}  samples: {}    ([ ] phase, < > window)",
                l.phase,
                fmt_window(l.window),
                l.samples
            ),
            pal.bold(),
        )),
        Line::from(format!(
            "requests {}   p50 {}  p90 {}  p95 {}  p99 {}   min {}  max {}",
            l.requests,
            fmt_seconds(l.p50),
            fmt_seconds(l.p90),
            fmt_seconds(l.p95),
            fmt_seconds(l.p99),
            fmt_seconds(l.min),
            fmt_seconds(l.max)
        )),
    ];
    if l.requests == 0 {
        lines.push(Line::from(Span::styled(
            "(no samples in window)",
            pal.dim(),
        )));
        return lines;
    }
    let w = width as usize;
    let bar_rows = (height as usize).saturating_sub(4).clamp(2, 20);
    // Columns: several per bucket when wide, buckets binned when narrow.
    let per_col = l.buckets.len().div_ceil(w.max(1)).max(1);
    let ncols = l.buckets.len().div_ceil(per_col);
    let repeat = (w / ncols).clamp(1, 4);
    let cols: Vec<i64> = l.buckets.chunks(per_col).map(|c| c.iter().sum()).collect();
    let max = cols.iter().copied().max().unwrap_or(0).max(1) as f64;
    const EIGHTHS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    for row in (0..bar_rows).rev() {
        let mut s = String::new();
        for c in &cols {
            let eighths = (*c as f64 / max * (bar_rows * 8) as f64).round() as usize;
            let ch = if eighths >= (row + 1) * 8 {
                '█'
            } else if eighths > row * 8 {
                EIGHTHS[eighths - row * 8]
            } else {
                ' '
            };
            for _ in 0..repeat {
                s.push(ch);
            }
        }
        lines.push(Line::from(Span::styled(s, pal.bar())));
    }
    // Octave labels every two octaves: bucket 4k starts at 2^k ms.
    let total = ncols * repeat;
    let mut label = vec![' '; total + 8];
    for k in (2..=16).step_by(2) {
        let b = 4 * k;
        let col = b / per_col * repeat;
        let text = match k {
            _ if k < 10 => format!("{}ms", 1u64 << k),
            10 => "1s".to_string(),
            _ => format!("{}s", (1u64 << k) / 1000),
        };
        if col + text.len() <= label.len() && label[col..col + text.len()].iter().all(|c| *c == ' ')
        {
            for (i, ch) in text.chars().enumerate() {
                label[col + i] = ch;
            }
        }
    }
    lines.push(Line::from(Span::styled(
        label.into_iter().collect::<String>().trim_end().to_string(),
        pal.dim(),
    )));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::model::Replica;
    use crate::top::view_model::{latency, UiState};

    fn draw(
        l: &Latency,
        width: u16,
        height: u16,
    ) -> ratatui::Terminal<ratatui::backend::TestBackend> {
        let histogram = LatencyHistogram {
            latency: l,
            palette: Palette(false),
        };
        draw_widget(width, height, histogram)
    }

    #[test]
    fn histogram_of_the_small_site() {
        let l = latency(&small_site(), &UiState::default(), SITE_LOCAL);
        draw(&l, 96, 9).backend().assert_buffer_lines([
            "Latency - phase: request  window: 1m  samples: 25    ([ ] phase, < > window)                    ",
            "requests 95   p50 38.9ms  p90 1.41s  p95 1.48s  p99 1.52s   min 30.0ms  max 1.30s               ",
            "                    █                                                                           ",
            "                    █                                                                           ",
            "                    █                                                                           ",
            "                    █   ▇                ▇                                                      ",
            "                    █   █                █                                                      ",
            "        4ms     16ms    64ms    256ms   1s      4s      16s     65s                             ",
            "                                                                                                ",
        ]);
    }

    #[test]
    fn narrow_histogram_bins_buckets() {
        let l = latency(&small_site(), &UiState::default(), SITE_LOCAL);
        draw(&l, 30, 8).backend().assert_buffer_lines([
            "Latency - phase: request  wind",
            "requests 95   p50 38.9ms  p90 ",
            "      █                       ",
            "      █                       ",
            "      █ ▄    ▄                ",
            "      █ █    █                ",
            "  4ms16ms 256ms 4s16s65s      ",
            "                              ",
        ]);
    }

    #[test]
    fn histogram_without_samples() {
        let l = latency(&Replica::new(), &UiState::default(), SITE_LOCAL);
        draw(&l, 90, 4).backend().assert_buffer_lines([
            "Latency - phase: request  window: 1m  samples: 0    ([ ] phase, < > window)               ",
            "requests 0   p50 -  p90 -  p95 -  p99 -   min -  max -                                    ",
            "(no samples in window)                                                                    ",
            "                                                                                          ",
        ]);
    }
}
