//! The colours of `top`, or none with `--no-color`: every widget takes its
//! styles from here, so the whole screen changes together.

use ratatui::style::{Color, Modifier, Style};

/// Styles, or plain text with `--no-color`.
#[derive(Clone, Copy, Debug)]
pub struct Palette(pub bool);

impl Palette {
    pub fn s(&self, st: Style) -> Style {
        if self.0 {
            st
        } else {
            Style::default()
        }
    }
    pub fn header(&self) -> Style {
        self.s(Style::default().fg(Color::Black).bg(Color::Cyan))
    }
    pub fn ok(&self) -> Style {
        self.s(Style::default().fg(Color::Green))
    }
    pub fn warn(&self) -> Style {
        self.s(Style::default().fg(Color::Yellow))
    }
    pub fn crit(&self) -> Style {
        self.s(Style::default().fg(Color::Red).add_modifier(Modifier::BOLD))
    }
    pub fn dim(&self) -> Style {
        self.s(Style::default().fg(Color::DarkGray))
    }
    pub fn bar(&self) -> Style {
        self.s(Style::default().fg(Color::Cyan))
    }
    pub fn tabs(&self) -> Style {
        self.s(Style::default().fg(Color::White).bg(Color::Blue))
    }
    pub fn tab_active(&self) -> Style {
        self.s(Style::default().fg(Color::Black).bg(Color::White))
    }
    pub fn bold(&self) -> Style {
        self.s(Style::default().add_modifier(Modifier::BOLD))
    }
}
