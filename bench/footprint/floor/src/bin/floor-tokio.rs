//! The floor of a supervisor's runtime: what `muster-supervisor` sets up before it reads its
//! app (a current-thread tokio runtime with its I/O, time and signal drivers, built with the
//! supervisor's settings in `muster::supervisor::runtime`, and a SIGTERM stream), then nothing
//! but waiting.

fn main() -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_io_events_per_tick(64)
        .thread_stack_size(256 * 1024)
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
        Ok(())
    })
}
