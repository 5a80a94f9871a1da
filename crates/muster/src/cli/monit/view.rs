//! Drawing the dashboard: the app table on top, the selected app's workers and sparklines in
//! the middle, its log at the bottom, the keys on the last line. Sizes follow the terminal;
//! with `NO_COLOR` nothing is coloured (selection is shown reversed).

use super::model::Model;
use crate::cli::table::{duration, memory};
use muster_proto::AppStatus;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table};

pub fn draw(frame: &mut Frame, model: &Model, color: bool) {
    let paint = |c: Color| {
        if color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    };
    let workers = model.selected().map_or(0, |a| a.workers.len()) as u16;
    let [apps_area, detail_area, events_area, log_area, keys_area] = Layout::vertical([
        Constraint::Length((model.apps.len() as u16).max(1) + 3),
        Constraint::Length(workers.max(1) + 6),
        Constraint::Length(super::model::EVENTS as u16 + 2),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let header = Row::new([
        "name", "mode", "status", "workers", "↺", "cpu", "memory", "uptime",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let rows = model.apps.iter().enumerate().map(|(i, a)| {
        let status_color = match a.status {
            AppStatus::Online => Color::Green,
            AppStatus::Errored | AppStatus::Unresponsive => Color::Red,
            AppStatus::Stopped => Color::DarkGray,
            _ => Color::Yellow,
        };
        let row = Row::new([
            Cell::from(a.name.clone()),
            Cell::from(a.mode.to_string()),
            Cell::from(a.status.to_string()).style(paint(status_color)),
            Cell::from(a.workers.len().to_string()),
            Cell::from(a.restarts.to_string()),
            Cell::from(format!("{:.0}%", a.cpu_percent)),
            Cell::from(memory(a.memory_bytes)),
            Cell::from(duration(a.uptime_ms)),
        ]);
        if i == model.selected {
            row.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            row
        }
    });
    let widths = [
        Constraint::Min(12),
        Constraint::Length(8),
        Constraint::Length(13),
        Constraint::Length(8),
        Constraint::Length(4),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let title = if model.apps.is_empty() {
        " muster monit — no apps; start one with `muster start app.js` ".to_owned()
    } else {
        " muster monit ".to_owned()
    };
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::default().borders(Borders::ALL).title(title)),
        apps_area,
    );

    draw_detail(frame, model, detail_area, color);

    let name = model.selected().map_or("", |a| a.name.as_str());
    let events: Vec<Line> = model.events.iter().map(|e| Line::raw(e.clone())).collect();
    frame.render_widget(
        Paragraph::new(events).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {name} events ")),
        ),
        events_area,
    );
    let height = log_area.height.saturating_sub(2) as usize;
    let start = model.log.len().saturating_sub(height);
    let lines: Vec<Line> = model.log[start..]
        .iter()
        .map(|(l, stream)| {
            let tag = Span::styled(
                format!("{stream}| "),
                paint(if *stream == "err" {
                    Color::Red
                } else {
                    Color::Blue
                }),
            );
            Line::from(vec![tag, Span::raw(l.clone())])
        })
        .collect();
    let follow = if model.follow {
        "following"
    } else {
        "paused (f)"
    };
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {name} log — {follow} ")),
        ),
        log_area,
    );

    let keys = "↑/↓ select  r reload  R restart  s stop  +/- scale  f follow  q quit";
    let line = if model.message.is_empty() {
        keys.to_owned()
    } else {
        format!("{keys}   │ {}", model.message)
    };
    frame.render_widget(Paragraph::new(line), keys_area);
}

fn draw_detail(frame: &mut Frame, model: &Model, area: Rect, color: bool) {
    let Some(app) = model.selected() else {
        frame.render_widget(Block::default().borders(Borders::ALL), area);
        return;
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} workers ", app.name));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [workers_area, sparks_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(inner);
    let rows = app.workers.iter().map(|w| {
        Row::new([
            format!("#{}", w.id),
            format!("slot {}", w.slot),
            w.pid.map_or("-".into(), |p| format!("pid {p}")),
            w.state.to_string(),
            format!("↺ {}", w.restarts),
            format!("{:.0}%", w.cpu_percent),
            memory(w.memory_bytes),
        ])
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(9),
    ];
    frame.render_widget(Table::new(rows, widths), workers_area);
    let [cpu_area, mem_area] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(sparks_area);
    let style = |c: Color| {
        if color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    };
    let width = sparks_area.width.saturating_sub(2) as usize;
    let tail = |q: Option<&std::collections::VecDeque<u64>>| -> Vec<u64> {
        q.map(|q| {
            q.iter()
                .skip(q.len().saturating_sub(width))
                .copied()
                .collect()
        })
        .unwrap_or_default()
    };
    let cpu = tail(model.cpu.get(&app.name));
    let mem = tail(model.memory.get(&app.name));
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().title(format!("cpu {:.0}%", app.cpu_percent)))
            .data(&cpu)
            .style(style(Color::Cyan)),
        cpu_area,
    );
    frame.render_widget(
        Sparkline::default()
            .block(Block::default().title(format!("memory {}", memory(app.memory_bytes))))
            .data(&mem)
            .style(style(Color::Magenta)),
        mem_area,
    );
}
