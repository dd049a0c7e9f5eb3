//! The key help, drawn over the middle of the screen by `?` (and printed
//! by `top --help`).

use super::palette::Palette;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget};

/// Key help, shown by `?`.
pub const HELP: &[&str] = &[
    "q, Esc        quit",
    "?, h          toggle this help",
    "space         pause / resume (the screen freezes; data keeps arriving)",
    "+ / -         faster / slower refresh (0.5, 1, 2, 5 s)",
    "o 1  p 2  w 3  l 4  s 5  c 6   switch view (c: application metrics)",
    "< , / > .     window (overview, latency) or sort key (processes, slow)",
    "[ / ]         latency phase",
    "t             overview range: live, 1h, 6h, 24h, 7d (from the history)",
    "f             slow: state filter; elsewhere: process group filter",
    "r             slow: clear search and filter",
    "/             slow: search URLs (Enter apply, Esc cancel)",
    "↑ ↓ PgUp PgDn Home   scroll the processes, slow and custom lists",
];

/// The help box, centred in the area it is given (the whole screen).
pub struct HelpOverlay {
    pub palette: Palette,
}

impl Widget for HelpOverlay {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let w =
            (HELP.iter().map(|l| l.chars().count()).max().unwrap_or(20) as u16 + 4).min(area.width);
        let h = (HELP.len() as u16 + 2).min(area.height);
        let r = Rect {
            x: area.x + (area.width - w) / 2,
            y: area.y + (area.height - h) / 2,
            width: w,
            height: h,
        };
        Clear.render(r, buf);
        let lines: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" keys ")
                    .border_style(self.palette.bar()),
            )
            .render(r, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::draw_widget;

    #[test]
    fn help_box_is_centred() {
        let t = draw_widget(
            84,
            16,
            HelpOverlay {
                palette: Palette(false),
            },
        );
        t.backend().assert_buffer_lines([
            "                                                                                    ",
            "     ┌ keys ──────────────────────────────────────────────────────────────────┐     ",
            "     │q, Esc        quit                                                      │     ",
            "     │?, h          toggle this help                                          │     ",
            "     │space         pause / resume (the screen freezes; data keeps arriving)  │     ",
            "     │+ / -         faster / slower refresh (0.5, 1, 2, 5 s)                  │     ",
            "     │o 1  p 2  w 3  l 4  s 5  c 6   switch view (c: application metrics)     │     ",
            "     │< , / > .     window (overview, latency) or sort key (processes, slow)  │     ",
            "     │[ / ]         latency phase                                             │     ",
            "     │t             overview range: live, 1h, 6h, 24h, 7d (from the history)  │     ",
            "     │f             slow: state filter; elsewhere: process group filter       │     ",
            "     │r             slow: clear search and filter                             │     ",
            "     │/             slow: search URLs (Enter apply, Esc cancel)               │     ",
            "     │↑ ↓ PgUp PgDn Home   scroll the processes, slow and custom lists        │     ",
            "     └────────────────────────────────────────────────────────────────────────┘     ",
            "                                                                                    ",
        ]);
    }
}
