//! Node's cluster protocol (NODE_CLUSTER messages), as the primary speaks it.
