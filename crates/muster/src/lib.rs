//! The muster binary's library: CLI commands, daemon, supervisor and config loading.

pub mod cli;
pub mod config;
