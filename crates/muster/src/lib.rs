//! The muster binary's library: CLI commands, daemon, supervisor and config loading.

pub mod config;
