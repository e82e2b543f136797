//! The integration-test binary: one binary, one module per area.

mod cli;
mod common;
mod store;
mod tree;
