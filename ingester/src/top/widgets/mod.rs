//! Rendering of a [`Frame`](Vm) (the view-model) with ratatui. Nothing here
//! reads the [`Replica`](super::model::Replica) or computes statistics: only
//! layout, text formatting and colour. One widget per file, each a ratatui
//! [`Widget`] over view-model values, so each can be drawn and tested alone;
//! [`draw`] places them on the screen.

mod custom;
mod footer;
mod header;
mod help;
mod latency;
mod overview;
mod palette;
mod processes;
mod slow;
mod workers;

pub use custom::CustomTable;
pub use footer::Footer;
pub use header::{HeaderPane, HEADER_ROWS};
pub use help::{HelpOverlay, HELP};
pub use latency::LatencyHistogram;
pub use overview::OverviewPane;
pub use palette::Palette;
pub use processes::ProcessTable;
pub use slow::SlowTable;
pub use workers::WorkerGrid;

use super::view_model::{Body, Frame as Vm};
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use ratatui::Frame;

/// Draws one whole frame: header, the current view's body, footer, and the
/// help box over them when asked for.
pub fn draw(f: &mut Frame<'_>, vm: &Vm) {
    let area = f.area();
    let buf = f.buffer_mut();
    let palette = Palette(vm.color);
    let hh = HEADER_ROWS.min(area.height);
    HeaderPane {
        header: &vm.header,
        mode: vm.mode,
        view: vm.view,
        palette,
    }
    .render(Rect { height: hh, ..area }, buf);
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
    match &vm.body {
        Body::Overview(overview) => OverviewPane { overview, palette }.render(body_area, buf),
        Body::Processes { sort, rows } => ProcessTable {
            sort,
            rows,
            scroll: vm.scroll,
            palette,
        }
        .render(body_area, buf),
        Body::Workers(rows) => WorkerGrid { rows, palette }.render(body_area, buf),
        Body::Latency(latency) => LatencyHistogram { latency, palette }.render(body_area, buf),
        Body::Slow(list) => SlowTable {
            list,
            scroll: vm.scroll,
            palette,
        }
        .render(body_area, buf),
        Body::Custom(custom) => CustomTable {
            custom,
            scroll: vm.scroll,
            palette,
        }
        .render(body_area, buf),
    }
    Footer {
        text: &vm.footer,
        mode: vm.mode,
        palette,
    }
    .render(footer_area, buf);
    if vm.help {
        HelpOverlay { palette }.render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use crate::top::fixture::{draw_frame, site_frame, SITE_LOCAL};
    use crate::top::model::Replica;
    use crate::top::view_model::{self, ConnView, UiState, View};

    #[test]
    fn whole_screen_without_data() {
        let conn = ConnView {
            url: "ws://x/ws".into(),
            ..ConnView::default()
        };
        let vm = view_model::frame(
            &Replica::new(),
            &UiState::default(),
            &conn,
            SITE_LOCAL,
            false,
        );
        draw_frame(100, 22, &vm).backend().assert_buffer_lines([
            "mod_wsgi-telemetry top  - · (any)                         tick=-  refresh=1s  win=1m  [disconnected]",
            "Throughput: 0.0 req/s now  -/s 1m  -/s 10m  in 0B/s  out 0B/s                                       ",
            "Capacity: ░░░░░░░░░░░░░░░░░░░░░░░░░░░░░░ 0/0 threads busy (0%)  util -  queue -                     ",
            "CPU: user 0.00  sys 0.00  total 0.00 cores   Memory: RSS 0B (largest process 0B)   procs 0 live     ",
            "Status (1m): 1xx 0  2xx -  3xx -  4xx -  5xx -                                                      ",
            "Latency (1m): p50 -  p95 -  p99 -   min -  max -                                                    ",
            "Slow: 0 active  /  0 1m  /  0 total                                                                 ",
            " 1 overview  2 processes  3 workers  4 latency  5 slow  6 custom    ?=help  q=quit                  ",
            "Overview: last 1m (use < > to change window)                                                        ",
            "                                                                                                    ",
            "throughput                                                                                          ",
            "           now 0.0 req/s                                                                            ",
            "capacity                                                                                            ",
            "           now -                                                                                    ",
            "cpu                                                                                                 ",
            "           now 0.00 cores                                                                           ",
            "rss                                                                                                 ",
            "           now 0B                                                                                   ",
            "                                                                                                    ",
            "Phase mean times (current tick):                                                                    ",
            "  server=-  queue=-  daemon=-  application=-  request=-                                             ",
            "disconnected (connecting...)  url=ws://x/ws                                                         ",
        ]);
    }

    #[test]
    fn narrow_screen_of_the_processes_view() {
        let ui = UiState {
            view: View::Processes,
            ..UiState::default()
        };
        draw_frame(40, 13, &site_frame(&ui))
            .backend()
            .assert_buffer_lines([
                "mod_wsgi-telemetry top  web1 · (embedded",
                "Throughput: 8.0 req/s now  6.3/s 1m  6.3",
                "Capacity: ███████░░░ 4/6 threads busy (6",
                "CPU: user 0.20  sys 0.05  total 0.75 cor",
                "Status (1m): 1xx 0  2xx 89.5%  3xx 0.0% ",
                "Latency (1m): p50 38.9ms  p95 1.48s  p99",
                "Slow: 1 active  /  2 1m  /  2 total     ",
                " 1 overview  2 processes  3 workers  4 l",
                "Processes - sort: rps (use < > to change",
                "     PID  GROUP            STATE      TH",
                "     101  app              live         ",
                "     102  (embedded)       live         ",
                "connected to ws://test/ws  pids=3  slow=",
            ]);
    }

    #[test]
    fn help_over_the_slow_view() {
        let ui = UiState {
            view: View::Slow,
            help: true,
            ..UiState::default()
        };
        draw_frame(90, 17, &site_frame(&ui)).backend().assert_buffer_lines([
            "mod_wsgi-telemetry top  web1 · (embedded),app       tick=1.00s  refresh=1s  win=1m  [live]",
            "Throughp┌ keys ──────────────────────────────────────────────────────────────────┐        ",
            "Capacity│q, Esc        quit                                                      │        ",
            "CPU: use│?, h          toggle this help                                          │100.0MB)",
            "Status (│space         pause / resume (the screen freezes; data keeps arriving)  │        ",
            "Latency │+ / -         faster / slower refresh (0.5, 1, 2, 5 s)                  │        ",
            "Slow: 1 │o 1  p 2  w 3  l 4  s 5  c 6   switch view (c: application metrics)     │        ",
            " 1 overv│< , / > .     window (overview, latency) or sort key (processes, slow)  │        ",
            "Slow req│[ / ]         latency phase                                             │er, / se",
            "STATE   │t             overview range: live, 1h, 6h, 24h, 7d (from the history)  │        ",
            "ACTIVE  │f             slow: state filter; elsewhere: process group filter       │        ",
            "done    │r             slow: clear search and filter                             │        ",
            "        │/             slow: search URLs (Enter apply, Esc cancel)               │        ",
            "top row:│↑ ↓ PgUp PgDn Home   scroll the processes, slow and custom lists        │        ",
            "        └────────────────────────────────────────────────────────────────────────┘        ",
            "                                                                                          ",
            "connected to ws://test/ws  pids=3  slow=2  rcvd=28  last_msg=0.0s ago                     ",
        ]);
    }
}
