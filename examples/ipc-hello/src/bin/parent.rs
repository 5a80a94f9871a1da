//! The parent: starts the child given on the command line with a channel, sends `{"a":1}`,
//! prints the answer, closes the channel and exits with the child's exit code.
//!
//! ```text
//! cargo run -p ipc-hello --bin parent -- node examples/ipc-hello/child.js
//! ```

use muster_ipc::{BlockingChannel, Message, Received, Spawn};
use serde_json::{Value, json};
use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

/// How long the child may take to answer before we give up on it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("parent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: parent <child command> [args...]");
        return Ok(ExitCode::from(2));
    };
    let spawned = Spawn::new(&program)
        .args(args)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", program.to_string_lossy()))?;
    let mut child = spawned.child;
    let mut channel = BlockingChannel::from_fd(spawned.channel.ok_or("no channel was created")?)?;

    let answer = match ask(&mut channel, &json!({"a": 1})) {
        Ok(v) => v,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    println!("parent got: {answer}");

    // Closing our end is the child's cue to finish (Node's 'disconnect').
    drop(channel);
    let status = child.wait()?;
    match status.code() {
        Some(code) => Ok(ExitCode::from(code as u8)),
        None => Err(format!("the child was killed ({status})").into()),
    }
}

/// Sends `question` and returns the child's first user message.
fn ask(channel: &mut BlockingChannel, question: &Value) -> Result<Value, Box<dyn Error>> {
    channel.send(question)?;
    loop {
        match channel.recv_timeout(ANSWER_TIMEOUT)? {
            Some(Received::Message {
                message: Message::User(value),
                ..
            }) => return Ok(value),
            // Node's own traffic (cluster and the like) is not the answer.
            Some(Received::Message { .. }) => {}
            Some(Received::Problem(problem)) => eprintln!("parent: {problem}"),
            None => return Err("the child closed the channel without answering".into()),
        }
    }
}
