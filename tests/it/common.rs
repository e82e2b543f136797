//! Shared helpers: databases to test against.
