//! The simulated broker.
