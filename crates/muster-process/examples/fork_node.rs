//! `cargo run -p muster-process --example fork_node`: Node's
//! `fork('child.js').send({hello: 'node'})` from Rust, with a timeout that kills the child
//! (and SIGKILL after a grace period) if it never answers.

use muster_ipc::Received;
use muster_process::{Options, fork};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let script = std::env::temp_dir().join("muster-process-example-child.js");
    std::fs::write(
        &script,
        "process.on('message', (m) => { process.send({ got: m }); process.disconnect(); });\n",
    )?;
    let opts = Options::new()
        .exec_path("node")
        .timeout(Duration::from_secs(10))
        .escalate_after(Duration::from_secs(2));
    let mut forked = fork(&script, &[] as &[&str], &opts)?;
    forked
        .channel
        .send(&serde_json::json!({ "hello": "node" }))?;
    match forked.channel.recv_timeout(Duration::from_secs(10))? {
        Some(Received::Message { message, .. }) => println!("child answered {}", message.value()),
        other => println!("no answer: {other:?}"),
    }
    let status = forked.child.wait()?;
    println!("child exited: {status}");
    Ok(())
}
