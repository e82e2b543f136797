//! Readers for position, trade and symbol files.
