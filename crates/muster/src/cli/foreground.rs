//! Running primaries in the foreground (`muster cluster`, `muster run`): print their events,
//! reload on SIGHUP, drain on SIGTERM/SIGINT, exit 0 only when every worker left cleanly.
//! Reaping is the primaries' (one reaper per process, a child subreaper: as PID 1 in a
//! container it also reaps and ends orphaned processes that are not its workers).

use muster_cluster::policy::PolicyEvent;
use muster_cluster::primary::{Event, Primary, signal_name};
use std::io::Write;
use tokio::sync::mpsc;

/// One primary to run, with the name its events are printed under (none for a single app).
#[derive(Debug)]
pub struct ForegroundApp {
    pub name: Option<String>,
    pub primary: Primary,
    /// The signal draining workers get; a worker that dies of it exited cleanly.
    pub stop_signal: Option<i32>,
}

pub async fn serve(apps: Vec<ForegroundApp>, json: bool) -> anyhow::Result<i32> {
    let handles: Vec<_> = apps.iter().map(|a| a.primary.handle()).collect();
    let stop_signals: Vec<Option<i32>> = apps.iter().map(|a| a.stop_signal).collect();
    let names: Vec<Option<String>> = apps.iter().map(|a| a.name.clone()).collect();
    // One stream of (app index, event); it ends when every primary has stopped.
    let (tx, mut events) = mpsc::unbounded_channel();
    for (i, mut app) in apps.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = app.primary.next_event().await {
                if tx.send((i, ev)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut hup = muster_ipc::signal::listen(muster_ipc::Signal::HUP)?;
    let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)?;
    let mut int = muster_ipc::signal::listen(muster_ipc::Signal::INT)?;
    let mut stopping = false;
    let mut clean = true;
    let mut gave_up = false;
    let stop_all = |stopping: &mut bool| {
        *stopping = true;
        for h in &handles {
            h.stop();
        }
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some((i, ev)) = ev else { break };
                print_event(names[i].as_deref(), &ev, json);
                match &ev {
                    Event::Exit { code, signal, .. } if stopping => {
                        clean &= *code == Some(0)
                            || (signal.is_some() && *signal == stop_signals[i]);
                    }
                    Event::Policy(PolicyEvent::GiveUp { .. }) => {
                        // In the foreground a broken app ends the run, so that whatever runs
                        // us (a container runtime, systemd) can see it and act.
                        gave_up = true;
                        stop_all(&mut stopping);
                    }
                    Event::Policy(PolicyEvent::KillTimeout { .. }) if stopping => clean = false,
                    _ => {}
                }
            }
            _ = hup.recv() => {
                for h in &handles {
                    h.reload();
                }
            }
            _ = term.recv() => stop_all(&mut stopping),
            _ = int.recv() => stop_all(&mut stopping),
        }
    }
    Ok(if gave_up || !clean { 1 } else { 0 })
}

fn print_event(app: Option<&str>, ev: &Event, json: bool) {
    let line = if json {
        let mut v = ev.to_json();
        if let (Some(app), Some(obj)) = (app, v.as_object_mut()) {
            obj.insert("app".into(), app.into());
        }
        v.to_string()
    } else {
        match app {
            Some(app) => format!("[muster] {app}: {}", describe(ev)),
            None => format!("[muster] {}", describe(ev)),
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One human line per event: `worker 1 (pid 123) listening 127.0.0.1:3000`.
pub fn describe(ev: &Event) -> String {
    let v = ev.to_json();
    let who = match (v.get("worker").and_then(|w| w.as_u64()), v.get("pid")) {
        (Some(w), Some(p)) if !p.is_null() => format!("worker {w} (pid {p}) "),
        (Some(w), _) => format!("worker {w} "),
        _ => String::new(),
    };
    let detail = match ev {
        Event::Fork { slot, .. } => format!("slot {slot}"),
        Event::Listening { address, .. } => format!(
            "{}:{}",
            address.address.as_deref().unwrap_or("*"),
            address.port.map_or("-".into(), |p| p.to_string())
        ),
        Event::Message { message, .. } => message.to_string(),
        Event::Exit {
            code,
            signal,
            exited_after_disconnect,
            ..
        } => format!(
            "code {} signal {}{}",
            code.map_or("-".into(), |c| c.to_string()),
            signal.map_or("-".into(), signal_name),
            if *exited_after_disconnect {
                " (after disconnect)"
            } else {
                ""
            }
        ),
        Event::Error { message, .. } => message.clone(),
        Event::Policy(PolicyEvent::RestartScheduled {
            slot,
            delay,
            attempt,
        }) => format!(
            "slot {slot} in {} ms (attempt {attempt})",
            delay.as_millis()
        ),
        Event::Policy(PolicyEvent::GiveUp {
            max_restarts,
            window,
        }) => format!(
            "more than {max_restarts} restarts within {} s: giving up",
            window.as_secs()
        ),
        Event::Policy(PolicyEvent::Promoted { slot, .. }) => format!("into slot {slot}"),
        _ => String::new(),
    };
    format!("{who}{} {detail}", ev.name()).trim_end().to_owned()
}
