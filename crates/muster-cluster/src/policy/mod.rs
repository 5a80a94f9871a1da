//! Supervision policy: a pure state machine (events in, actions out).
