//! The muster binary's library: CLI commands, daemon, supervisor and config loading.

pub mod app;
pub mod beside_daemon;
pub mod cli;
pub mod client;
pub mod config;
pub mod control_socket;
pub mod daemon;
pub mod diag;
pub mod exe;
pub mod home;
pub mod logs;
pub mod nofile;
pub mod procstat;
pub mod program;
pub mod supervisor;
pub mod systemd;
pub mod triggers;
pub mod wire;
