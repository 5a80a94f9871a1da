//! One handler per command (the `impl Daemon` blocks here are split by command).

mod apply;
mod delete;
mod events;
mod forward;
mod info;
mod kill;
mod reload;
mod restart;
mod save;
mod scale;
mod start;
mod stop;
