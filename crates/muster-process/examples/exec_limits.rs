//! `cargo run -p muster-process --example exec_limits`: Node's `exec` with `timeout`,
//! `killSignal` and `maxBuffer`, and what muster-process adds (escalation, group kill).

use muster_process::{Options, ProcessError, Signal, exec};
use std::time::Duration;

fn main() {
    // exec('ls | wc -l')
    let out = exec("ls / | wc -l", &Options::new()).expect("ls runs");
    println!("entries in /: {}", out.stdout_str().trim());

    // exec('sleep 5', { timeout: 200, killSignal: 'SIGINT' })
    let opts = Options::new()
        .timeout(Duration::from_millis(200))
        .kill_signal(Signal::INT);
    if let Err(e) = exec("sleep 5", &opts) {
        println!("{e}");
    }

    // A child that ignores SIGTERM: Node would wait forever; escalate to SIGKILL after 300 ms.
    let opts = Options::new()
        .timeout(Duration::from_millis(200))
        .escalate_after(Duration::from_millis(300))
        .kill_group(true);
    if let Err(e) = exec("trap '' TERM; exec sleep 30", &opts) {
        println!("{e}");
    }

    // exec('yes', { maxBuffer: 1024 })
    match exec("yes", &Options::new().max_buffer(1024)) {
        Err(ProcessError::MaxBuffer { output, .. }) => {
            println!("kept {} bytes of stdout", output.stdout.len())
        }
        other => println!("{other:?}"),
    }
}
