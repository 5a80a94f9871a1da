//! The HTTP fixture worker of muster's tests and benchmarks: see
//! [`muster_cluster::worker::demo`] for what it answers.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    muster_cluster::worker::demo::run().await
}
