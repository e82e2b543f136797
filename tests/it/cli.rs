//! The command-line contract, run as a process.
