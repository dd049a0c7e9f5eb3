//! Rendering of a [`Frame`] (the view-model) with ratatui. Nothing here
//! reads the state model or computes statistics: only layout, text
//! formatting and colour.

use super::view_model::{
    fmt_bytes, fmt_seconds, fmt_window, Body, Cell, Frame as Vm, Header, Latency, Mode, Overview,
    ProcRow, Series, SlowList, SlowState, View, WorkerRow,
};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

/// Rows of the header (always visible).
pub const HEADER_ROWS: u16 = 8;

/// Styles, or plain text with `--no-color`.
struct Pal(bool);

impl Pal {
    fn s(&self, st: Style) -> Style {
        if self.0 {
            st
        } else {
            Style::default()
        }
    }
    fn header(&self) -> Style {
        self.s(Style::default().fg(Color::Black).bg(Color::Cyan))
    }
    fn ok(&self) -> Style {
        self.s(Style::default().fg(Color::Green))
    }
    fn warn(&self) -> Style {
        self.s(Style::default().fg(Color::Yellow))
    }
    fn crit(&self) -> Style {
        self.s(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD))
    }
    fn dim(&self) -> Style {
        self.s(Style::default().fg(Color::DarkGray))
    }
    fn bar(&self) -> Style {
        self.s(Style::default().fg(Color::Cyan))
    }
    fn tabs(&self) -> Style {
        self.s(Style::default().fg(Color::White).bg(Color::Blue))
    }
    fn tab_active(&self) -> Style {
        self.s(Style::default().fg(Color::Black).bg(Color::White))
    }
    fn bold(&self) -> Style {
        self.s(Style::default().add_modifier(Modifier::BOLD))
    }
}

/// Draws one whole frame.
pub fn draw(f: &mut Frame<'_>, vm: &Vm) {
    let area = f.area();
    let pal = Pal(vm.color);
    let hh = HEADER_ROWS.min(area.height);
    let header_area = Rect { height: hh, ..area };
    f.render_widget(
        Paragraph::new(header_lines(&vm.header, vm.mode, vm.view, area.width, &pal)),
        header_area,
    );
    if area.height <= hh + 1 {
        return;
    }
    let body_area = Rect {
        y: area.y + hh,
        height: area.height - hh - 1,
        ..area
    };
    let footer_area = Rect {
        y: area.y + area.height - 1,
        height: 1,
        ..area
    };
    let body = match &vm.body {
        Body::Overview(o) => overview_lines(o, body_area.width, &pal),
        Body::Processes { sort, rows } => process_lines(sort, rows, vm.scroll, &pal),
        Body::Workers(rows) => worker_lines(rows, &pal),
        Body::Latency(l) => latency_lines(l, body_area.width, body_area.height, &pal),
        Body::Slow(s) => slow_lines(s, body_area.height, vm.scroll, &pal),
    };
    f.render_widget(Paragraph::new(body), body_area);
    let footer_style = if vm.mode == Mode::Disconnected {
        pal.crit()
    } else {
        pal.dim()
    };
    f.render_widget(
        Paragraph::new(Line::from(Span::styled(vm.footer.clone(), footer_style))),
        footer_area,
    );
    if vm.help {
        help(f, area, &pal);
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

fn header_lines(h: &Header, mode: Mode, view: View, width: u16, pal: &Pal) -> Vec<Line<'static>> {
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

fn overview_lines(o: &Overview, width: u16, pal: &Pal) -> Vec<Line<'static>> {
    let w = (width as usize).saturating_sub(18).max(20);
    let mut lines = vec![
        Line::from(Span::styled(
            format!(
                "Overview: last {} (use < > to change window)",
                fmt_window(o.window)
            ),
            pal.bold(),
        )),
        Line::from(""),
    ];
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
            format!("{:<11}now {latest}", ""),
            pal.dim(),
        )));
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

fn process_lines(sort: &str, rows: &[ProcRow], scroll: usize, pal: &Pal) -> Vec<Line<'static>> {
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn worker_lines(rows: &[WorkerRow], pal: &Pal) -> Vec<Line<'static>> {
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

fn latency_lines(l: &Latency, width: u16, height: u16, pal: &Pal) -> Vec<Line<'static>> {
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

fn slow_lines(s: &SlowList, height: u16, scroll: usize, pal: &Pal) -> Vec<Line<'static>> {
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

/// Key help, shown by `?`.
pub const HELP: &[&str] = &[
    "q, Esc        quit",
    "?, h          toggle this help",
    "space         pause / resume (the screen freezes; data keeps arriving)",
    "+ / -         faster / slower refresh (0.5, 1, 2, 5 s)",
    "o 1  p 2  w 3  l 4  s 5   switch view",
    "< , / > .     window (overview, latency) or sort key (processes, slow)",
    "[ / ]         latency phase",
    "f             slow: state filter; elsewhere: process group filter",
    "r             slow: clear search and filter",
    "/             slow: search URLs (Enter apply, Esc cancel)",
    "↑ ↓ PgUp PgDn Home   scroll the processes and slow lists",
];

fn help(f: &mut Frame<'_>, area: Rect, pal: &Pal) {
    let w = (HELP.iter().map(|l| l.chars().count()).max().unwrap_or(20) as u16 + 4).min(area.width);
    let h = (HELP.len() as u16 + 2).min(area.height);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, r);
    let lines: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys ")
                .border_style(pal.bar()),
        ),
        r,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_fit_and_sparkline() {
        assert_eq!(fit_series(&[1.0, 2.0], 4), vec![0.0, 0.0, 1.0, 2.0]);
        assert_eq!(fit_series(&[1.0, 3.0, 5.0, 7.0], 2), vec![2.0, 6.0]);
        assert_eq!(sparkline(&[0.0, 4.0, 8.0], 0.0), " ▄█");
        assert_eq!(sparkline(&[100.0, 104.0, 108.0], 100.0), "▁▄█");
    }
}
