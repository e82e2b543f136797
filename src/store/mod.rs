//! Storage: sea-orm entities and the queries the service needs.
//!
//! Domain ⇄ row conversion lives only in `convert`. Writes that a persistence batch may
//! group take any [`sea_orm::ConnectionTrait`] (or [`sea_orm::TransactionTrait`] when they
//! need atomicity of their own: they then open a savepoint inside a caller's transaction).

mod accounts;
mod acks;
mod alerts;
mod batch;
mod bulk;
mod chunks;
mod close_claims;
mod close_intents;
mod connect;
mod convert;
mod dashboard;
mod dead_letters;
mod divergence_query;
mod divergences;
pub mod entities;
mod equity;
mod error;
mod fence;
mod guard_state;
mod isolate;
mod journal;
mod leases;
mod retention;
mod rollups;
mod seen;
mod service_closes;
mod single_instance;
mod trade_writes;
mod trades;

pub use accounts::{
    Account, BREAKER_DISABLED, REMOVED_BY_OPERATOR, StoredAccount, find_account, list_accounts,
    record_breaker_state, upsert_account,
};
pub use acks::{
    AckOutcome, Acknowledgement, MAX_BY_CHARS, MAX_NOTE_CHARS, acknowledge_divergence, check_ack,
};
pub use alerts::{
    AlertRecord, AlertStatus, CancelOutcome, Claim, alert_status, cancel_account_enforcement,
    cancel_enforcement, claim_close, enforcing_alerts, insert_alert, list_alerts, transition_alert,
};
pub use batch::{Refusal, Wanted, converge_many, converge_many_isolating};
pub use bulk::{ACCOUNTS_PER_TRANSACTION, upsert_accounts, write_many_accounts};
pub use close_claims::{Claimant, FencedClaim, claim_close_fenced};
pub use close_intents::{
    CloseIntent, IntentKey, IntentKind, IntentState, Recorded, adopt_intent, find_intent,
    mark_intent, open_intents, record_intent,
};
pub use connect::{LockWait, connect, connect_waiting, connect_with};
pub use dashboard::{
    AccountOpen, HourCount, audit_since, divergences_per_hour, rollups_since, top_open_accounts,
};
pub use dead_letters::{
    DeadLetter, audit_refusal, divergence_refusal, list_dead_letters, record_dead_letters,
    sync_run_refusal,
};
pub use divergence_query::{
    DivergenceFilter, DivergencePage, MAX_PAGE, OpenCount, open_divergence_counts,
    query_divergences,
};
pub use divergences::{
    Converged, DiffOutcome, DivergenceDiff, DivergenceStatus, StoredDivergence, apply_diff,
    converge, list_divergences, open_divergences,
};
pub use equity::{EquitySample, list_equity_samples, record_equity_sample};
pub use error::{StoreError, redact_url};
pub use fence::{Fence, FenceCheck, FencedOut, check_fences, write_fenced};
pub use guard_state::{load_guard_state, save_guard_state};
pub use journal::{
    AuditEvent, SyncRunRecord, append_audit, append_audits, append_audits_isolating, list_audit,
    record_sightings, record_sightings_isolating, record_sync_run, record_sync_runs,
    record_sync_runs_isolating,
};
pub use leases::{
    InstanceRow, LEASE_CHANNEL, Lease, LeaseRow, claim as claim_leases, ensure_leases, heartbeat,
    list_instances, list_leases, notify as notify_leases, release as release_leases,
    release_all as release_all_leases, renew as renew_leases,
};
pub use retention::{Aged, prune_batch};
pub use rollups::{
    BUCKET_BOUNDS_MS, BUCKETS, FAILURE_CLASSES, SyncRollup, add_rollups, add_rollups_isolating,
    hour_of, list_rollups,
};
pub use seen::{LAST_SEEN_PRECISION, Sighting, mark_seen};
pub use service_closes::{record_service_close, service_closes};
pub use single_instance::{SingleInstance, SingleInstanceError};
pub use trade_writes::{
    TradeWrite, WriteOutcome, close_trade, replace_open_trades, trade_revisions_since,
    trades_revision, upsert_trades,
};
pub use trades::{import_trades, open_trades, open_trades_page, open_trades_versioned};
