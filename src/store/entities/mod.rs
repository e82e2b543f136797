//! sea-orm entities, one per table. Rows only: conversion to domain types is in `convert`.

pub mod account;
pub mod account_lease;
pub mod alert;
pub mod audit_event;
pub mod bot_trade;
pub mod close_intent;
pub mod dead_letter;
pub mod divergence;
pub mod equity_sample;
pub mod guard_state;
pub mod instance;
pub mod service_close;
pub mod sync_rollup;
pub mod sync_run;
pub mod trade_revision;
