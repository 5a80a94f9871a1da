//! The Rust child: does what `child.js` does. Prints each message it gets, answers `"bbb"`,
//! and exits when the parent closes the channel.

use muster_ipc::{BlockingChannel, Message, Received};
use serde_json::json;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    // First thing, before any thread exists: this also removes NODE_CHANNEL_FD from the
    // environment.
    let mut channel = BlockingChannel::from_env()?
        .ok_or("no IPC channel (NODE_CHANNEL_FD is not set): start me from a parent")?;
    while let Some(event) = channel.recv()? {
        match event {
            Received::Message {
                message: Message::User(value),
                ..
            } => {
                println!("child got: {value}");
                channel.send(&json!("bbb"))?;
            }
            // Node's own traffic: not for this program.
            Received::Message { .. } => {}
            Received::Problem(problem) => eprintln!("child: {problem}"),
        }
    }
    Ok(())
}
