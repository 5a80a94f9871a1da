//! What the muster CLI, daemon and supervisors say to each other, and the app spec they share.

pub mod app;
pub mod error;
pub mod instances;
pub mod limits;
pub mod listen;
pub mod liveness;
pub mod log_health;
pub mod protocol;
pub mod signal;
pub mod status;
pub mod units;

pub use app::{AppSpec, ExecMode, Interpreter, SCHEMA_VERSION, Schedule, validate_name};
pub use error::ValueError;
pub use instances::Instances;
pub use limits::{LimitError, check_limits};
pub use listen::{ListenAddr, NamedListen};
pub use liveness::{HealthCheck, HealthProbe, HealthReport, OnUnresponsive};
pub use log_health::LogHealth;
pub use protocol::{
    AppInfo, ApplyAction, AppsAnswer, HEARTBEAT_MS, MAX_REQUEST_BYTES, PROTOCOL_VERSION,
    RawAppsAnswer, Request, Response, SupervisorRequest, SupervisorResponse, Target,
    UNRESPONSIVE_AFTER_MS, WorkerInfo, WorkerSample,
};
pub use signal::{parse_signal, signal_name, signal_number};
pub use status::{AppStatus, LOG_ERROR_MARKER, WorkerStatus};
pub use units::{parse_duration_ms, parse_memory_size};
