//! The header: host and groups, throughput, capacity bar, CPU and memory,
//! status shares, latency, slow counts and the view tabs (8 rows).

use super::palette::Palette;
use crate::top::format::{fmt_bytes, fmt_seconds, fmt_window};
use crate::top::view_model::{Header, Mode, View};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// Rows of the header (always visible).
pub const HEADER_ROWS: u16 = 8;

/// The header of every view.
pub struct HeaderPane<'a> {
    pub header: &'a Header,
    pub mode: Mode,
    pub view: View,
    pub palette: Palette,
}

impl Widget for HeaderPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines = header_lines(self.header, self.mode, self.view, area.width, &self.palette);
        Paragraph::new(lines).render(area, buf);
    }
}

fn pad_between(left: &str, right: &str, width: u16) -> String {
    let w = width as usize;
    let l = left.chars().count();
    let r = right.chars().count();
    if l + r + 1 > w {
        format!("{left} {right}")
    } else {
        format!("{left}{}{right}", " ".repeat(w - l - r))
    }
}

fn header_lines(
    h: &Header,
    mode: Mode,
    view: View,
    width: u16,
    pal: &Palette,
) -> Vec<Line<'static>> {
    let host = if h.hosts.is_empty() {
        "-".to_string()
    } else {
        h.hosts.join(",")
    };
    let mode_s = match mode {
        Mode::Live => "[live]",
        Mode::Paused => "[paused]",
        Mode::Disconnected => "[disconnected]",
    };
    let tick = h
        .tick
        .map(|t| format!("{t:.2}s"))
        .unwrap_or_else(|| "-".into());
    let row0 = pad_between(
        &format!("mod_wsgi-telemetry top  {host} · {}", h.groups_label),
        &format!(
            "tick={tick}  refresh={}s  win={}  {mode_s}",
            h.refresh,
            fmt_window(h.window)
        ),
        width,
    );
    let rate = |r: Option<f64>| r.map(|r| format!("{r:.1}")).unwrap_or_else(|| "-".into());
    let row1 = format!(
        "Throughput: {:.1} req/s now  {}/s 1m  {}/s 10m  in {}/s  out {}/s",
        h.rps_now,
        rate(h.rps_1m),
        rate(h.rps_10m),
        fmt_bytes(h.in_bps),
        fmt_bytes(h.out_bps)
    );
    let frac = h.busy_fraction().unwrap_or(0.0);
    let cells = ((width as usize).saturating_sub(60)).clamp(10, 30);
    let filled = ((frac * cells as f64).round() as usize).min(cells);
    let bar_style = if frac >= 0.9 {
        pal.crit()
    } else if frac >= 0.7 {
        pal.warn()
    } else {
        pal.ok()
    };
    let row2 = Line::from(vec![
        Span::raw("Capacity: "),
        Span::styled("█".repeat(filled), bar_style),
        Span::styled("░".repeat(cells - filled), pal.dim()),
        Span::raw(format!(
            " {}/{} threads busy ({:.0}%)  util {}  queue {}",
            h.threads_busy,
            h.threads_total,
            frac * 100.0,
            h.utilization
                .map(|u| format!("{:.0}%", u * 100.0))
                .unwrap_or_else(|| "-".into()),
            fmt_seconds(h.queue_mean)
        )),
    ]);
    let row3 = format!(
        "CPU: user {:.2}  sys {:.2}  total {:.2} cores   Memory: RSS {} (largest process {})   procs {} live{}",
        h.cpu_user,
        h.cpu_system,
        h.cpu_total,
        fmt_bytes(h.rss_total),
        fmt_bytes(h.rss_largest),
        h.live_processes,
        if h.other_processes > 0 {
            format!(", {} gone", h.other_processes)
        } else {
            String::new()
        }
    );
    let pct = |i: usize| {
        h.status_share(i)
            .map(|s| format!("{:.1}%", s * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let mut status = vec![Span::raw("Status (1m): ")];
    status.push(Span::styled(
        format!("1xx {:.0}", h.status[0]),
        if h.status[0] > 0.0 {
            pal.warn().add_modifier(Modifier::BOLD)
        } else {
            pal.dim()
        },
    ));
    status.push(Span::raw(format!("  2xx {}  3xx {}  ", pct(1), pct(2))));
    status.push(Span::styled(format!("4xx {}", pct(3)), pal.dim()));
    status.push(Span::raw("  "));
    status.push(Span::styled(
        format!("5xx {}", pct(4)),
        if h.status[4] > 0.0 {
            pal.crit()
        } else {
            Style::default()
        },
    ));
    let row5 = format!(
        "Latency ({}): p50 {}  p95 {}  p99 {}   min {}  max {}",
        fmt_window(h.window),
        fmt_seconds(h.p50),
        fmt_seconds(h.p95),
        fmt_seconds(h.p99),
        fmt_seconds(h.min),
        fmt_seconds(h.max)
    );
    let row6 = format!(
        "Slow: {} active  /  {} 1m  /  {} total",
        h.slow_active, h.slow_1m, h.slow_total
    );
    let mut tabs = Vec::new();
    for (i, v) in View::ALL.iter().enumerate() {
        let st = if *v == view {
            pal.tab_active()
        } else {
            pal.tabs()
        };
        tabs.push(Span::styled(format!(" {} {} ", i + 1, v.name()), st));
    }
    tabs.push(Span::raw("  "));
    tabs.push(Span::styled(" ?=help  q=quit ", pal.tabs()));
    vec![
        Line::from(Span::styled(row0, pal.header())),
        Line::from(row1),
        row2,
        Line::from(row3),
        Line::from(status),
        Line::from(row5),
        Line::from(Span::styled(
            row6,
            if h.slow_active > 0 {
                pal.warn()
            } else {
                Style::default()
            },
        )),
        Line::from(tabs),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::{draw_widget, small_site, SITE_LOCAL};
    use crate::top::view_model::{header, UiState};
    use ratatui::style::Color;

    fn pane(h: &Header, palette: Palette) -> HeaderPane<'_> {
        HeaderPane {
            header: h,
            mode: Mode::Live,
            view: View::Processes,
            palette,
        }
    }

    #[test]
    fn header_of_the_small_site() {
        let h = header(&small_site(), &UiState::default(), SITE_LOCAL);
        let t = draw_widget(120, 8, pane(&h, Palette(false)));
        t.backend().assert_buffer_lines([
            "mod_wsgi-telemetry top  web1 · (embedded),app                                     tick=1.00s  refresh=1s  win=1m  [live]",
            "Throughput: 8.0 req/s now  6.3/s 1m  6.3/s 10m  in 1.0KB/s  out 10.0KB/s                                                ",
            "Capacity: ████████████████████░░░░░░░░░░ 4/6 threads busy (67%)  util 50%  queue -                                      ",
            "CPU: user 0.20  sys 0.05  total 0.75 cores   Memory: RSS 150.0MB (largest process 100.0MB)   procs 2 live, 1 gone       ",
            "Status (1m): 1xx 0  2xx 89.5%  3xx 0.0%  4xx 0.0%  5xx 10.5%                                                            ",
            "Latency (1m): p50 38.9ms  p95 1.48s  p99 1.52s   min 30.0ms  max 1.30s                                                  ",
            "Slow: 1 active  /  2 1m  /  2 total                                                                                     ",
            " 1 overview  2 processes  3 workers  4 latency  5 slow  6 custom    ?=help  q=quit                                      ",
        ]);
    }

    #[test]
    fn header_colours_follow_the_figures() {
        let h = header(&small_site(), &UiState::default(), SITE_LOCAL);
        let t = draw_widget(120, 8, pane(&h, Palette(true)));
        // The text is the one `header_of_the_small_site` pins; this test pins
        // the styles over it.
        let lines = t.backend().buffer().clone();
        let text: Vec<String> = (0..8)
            .map(|y| (0..120).map(|x| lines[(x, y)].symbol()).collect())
            .collect();
        let mut expected = Buffer::with_lines(text);
        let fg = |c: Color| Style::default().fg(c);
        // Title row: black on cyan, the whole width.
        expected.set_style(Rect::new(0, 0, 120, 1), fg(Color::Black).bg(Color::Cyan));
        // 4 of 6 threads busy (< 70 %): a green bar, the rest dim.
        expected.set_style(Rect::new(10, 2, 20, 1), fg(Color::Green));
        expected.set_style(Rect::new(30, 2, 10, 1), fg(Color::DarkGray));
        // No 1xx: dim; 4xx always dim; some 5xx: red.
        expected.set_style(Rect::new(13, 4, 5, 1), fg(Color::DarkGray));
        expected.set_style(Rect::new(41, 4, 8, 1), fg(Color::DarkGray));
        expected.set_style(
            Rect::new(51, 4, 9, 1),
            fg(Color::Red).add_modifier(Modifier::BOLD),
        );
        // A slow request in flight: the slow line is yellow.
        expected.set_style(Rect::new(0, 6, 35, 1), fg(Color::Yellow));
        // Tabs white on blue, the current view (processes) black on white.
        let tab = fg(Color::White).bg(Color::Blue);
        expected.set_style(Rect::new(0, 7, 12, 1), tab);
        expected.set_style(Rect::new(12, 7, 13, 1), fg(Color::Black).bg(Color::White));
        expected.set_style(Rect::new(25, 7, 40, 1), tab);
        expected.set_style(Rect::new(67, 7, 16, 1), tab);
        t.backend().assert_buffer(&expected);
    }
}
