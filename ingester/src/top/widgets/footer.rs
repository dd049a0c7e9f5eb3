//! The footer line: connection, counts and age of the last message, or the
//! search being typed; red while disconnected.

use super::palette::Palette;
use crate::top::view_model::Mode;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// The last row of the screen.
pub struct Footer<'a> {
    pub text: &'a str,
    pub mode: Mode,
    pub palette: Palette,
}

impl Widget for Footer<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let style = if self.mode == Mode::Disconnected {
            self.palette.crit()
        } else {
            self.palette.dim()
        };
        Paragraph::new(Line::from(Span::styled(self.text.to_string(), style))).render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::fixture::draw_widget;
    use ratatui::style::{Color, Modifier, Style};

    #[test]
    fn footer_is_dim_while_live_and_red_when_disconnected() {
        let live = Footer {
            text: "connected to ws://x/ws  pids=2",
            mode: Mode::Live,
            palette: Palette(true),
        };
        let mut expected = Buffer::with_lines(["connected to ws://x/ws  pids=2    "]);
        expected.set_style(Rect::new(0, 0, 30, 1), Style::default().fg(Color::DarkGray));
        draw_widget(34, 1, live).backend().assert_buffer(&expected);

        let down = Footer {
            text: "disconnected (refused)  url=ws://x/ws",
            mode: Mode::Disconnected,
            palette: Palette(true),
        };
        let mut expected = Buffer::with_lines(["disconnected (refused)  url=ws://x"]);
        expected.set_style(
            Rect::new(0, 0, 34, 1),
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        );
        draw_widget(34, 1, down).backend().assert_buffer(&expected);
    }
}
