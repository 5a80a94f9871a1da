//! The primary: spawns workers with a channel each, shares listening sockets with them
//! (round-robin, shared, or `SO_REUSEPORT`), speaks Node's cluster protocol, and supervises them
//! (restart limits, suicide handover, rolling reload, graceful stop).

pub mod activated;
pub mod listen;
pub mod node;
pub mod policy;
pub mod primary;
pub mod procstat;
