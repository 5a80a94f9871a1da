//! `muster monit`: a terminal dashboard. The apps and their workers with status, restarts, CPU
//! and memory (with a short history as sparklines), the selected app's log tail; keys to
//! restart, reload, stop, scale and follow. Reads the daemon as any client does, once a
//! second; the terminal is restored however it ends (quit, error or panic).

mod model;
mod view;

use crate::client::Client;
use crate::home::Home;
use model::Model;
use muster_proto::{Request, Response, Target};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the apps are read again.
const REFRESH: Duration = Duration::from_secs(1);
/// Key presses waiting for the loop; a person cannot type faster than it drains them.
const KEY_QUEUE: usize = 64;

/// Arguments of `muster monit`.
#[derive(Debug, clap::Args)]
pub struct MonitArgs {
    /// Log lines kept for the selected app.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub lines: u16,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Quit,
    Up,
    Down,
    Restart,
    Reload,
    Stop,
    ScaleUp,
    ScaleDown,
    Follow,
    Redraw,
}

fn key(ev: Event) -> Option<Key> {
    let Event::Key(k) = ev else {
        return matches!(ev, Event::Resize(..)).then_some(Key::Redraw);
    };
    if k.kind != KeyEventKind::Press {
        return None;
    }
    Some(match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
        KeyCode::Up | KeyCode::Char('k') => Key::Up,
        KeyCode::Down | KeyCode::Char('j') => Key::Down,
        KeyCode::Char('r') => Key::Reload,
        KeyCode::Char('R') => Key::Restart,
        KeyCode::Char('s') => Key::Stop,
        KeyCode::Char('+') | KeyCode::Char('=') => Key::ScaleUp,
        KeyCode::Char('-') => Key::ScaleDown,
        KeyCode::Char('f') => Key::Follow,
        _ => return None,
    })
}

/// Puts the terminal back (raw mode off, main screen) when dropped.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(args: MonitArgs) -> anyhow::Result<i32> {
    let home = Home::from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Connect (starting the daemon if needed) before the screen is taken over, so an error
    // is printed on a normal terminal.
    rt.block_on(Client::connect(&home, true))?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut terminal = ratatui::init();
    let _guard = TerminalGuard;
    rt.block_on(event_loop(&home, &mut terminal, args, color))
}

async fn event_loop(
    home: &Home,
    terminal: &mut ratatui::DefaultTerminal,
    args: MonitArgs,
    color: bool,
) -> anyhow::Result<i32> {
    let (tx, mut keys) = mpsc::channel(KEY_QUEUE);
    // crossterm's reads block: a thread of their own, ending with the process.
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if let Some(k) = key(ev)
                && tx.blocking_send(k).is_err()
            {
                break;
            }
        }
    });
    let mut model = Model::new(usize::from(args.lines));
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => model.refresh(home).await,
            k = keys.recv() => {
                let Some(k) = k else { return Ok(0) };
                match k {
                    Key::Quit => return Ok(0),
                    Key::Up => model.select(-1),
                    Key::Down => model.select(1),
                    Key::Follow => model.follow = !model.follow,
                    Key::Redraw => {}
                    Key::Restart | Key::Reload | Key::Stop | Key::ScaleUp | Key::ScaleDown => {
                        act(home, &mut model, k).await;
                        model.refresh(home).await;
                    }
                }
            }
        }
        terminal.draw(|frame| view::draw(frame, &model, color))?;
    }
}

/// Sends the request a key asks for about the selected app; the answer goes to the status line.
async fn act(home: &Home, model: &mut Model, k: Key) {
    let Some(app) = model.selected() else {
        return;
    };
    let name = app.name.clone();
    let target = Target::Name(name.clone());
    let workers = app.workers.len() as u32;
    let (req, doing) = match k {
        Key::Restart => (Request::Restart { target }, "restarting"),
        Key::Reload => (Request::Reload { target }, "reloading"),
        Key::Stop => (Request::Stop { target }, "stopping"),
        Key::ScaleUp => (
            Request::Scale {
                name: name.clone(),
                instances: workers + 1,
            },
            "scaling up",
        ),
        Key::ScaleDown => (
            Request::Scale {
                name: name.clone(),
                instances: workers.saturating_sub(1).max(1),
            },
            "scaling down",
        ),
        _ => return,
    };
    model.message = format!("{doing} {name}…");
    let answer = async {
        let mut client = Client::connect(home, false).await?;
        client.request(&req).await
    };
    model.message = match answer.await {
        Ok(Response::Error { message }) => format!("{name}: {message}"),
        Ok(Response::Done { message, .. }) => message,
        Ok(_) => format!("{doing} {name}: done"),
        Err(e) => format!("{name}: {e:#}"),
    };
}
