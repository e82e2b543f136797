//! The actor tree: supervisor, scheduler, per-account sync actors, persistence.

pub mod breaker;
