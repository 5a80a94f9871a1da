//! The floor of a supervisor's runtime: what `muster-supervisor` sets up before it reads its
//! app (a current-thread tokio runtime with its I/O, time and signal drivers, built with the
//! supervisor's settings in `muster::supervisor::runtime`, and a SIGTERM listener from
//! `muster_ipc::signal`, as the supervisor's), then nothing
//! but waiting.

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(64)
        .thread_stack_size(256 * 1024)
        .build()?;
    rt.block_on(async {
        let mut term = muster_ipc::signal::listen(muster_ipc::Signal::TERM)?;
        term.recv().await
    })
}
