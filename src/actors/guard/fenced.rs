//! The guard's direct writes (alerts, its memory, equity samples) under the account's
//! fence: each in a transaction that first checks the lease still holds (see
//! `store::write_fenced`). A refused write is reported (the supervisor drops the account)
//! and not retried.

use sea_orm::DatabaseTransaction;

use super::actor::GuardArgs;
use crate::actors::fencing::FencedWrites;
use crate::store::{self, StoreError};

/// Runs `write` under the account's fence: `Ok(Some(answer))` when written (always
/// without high availability), `Ok(None)` when the lease moved on (nothing written,
/// reported).
pub(super) async fn write<T>(
    args: &GuardArgs,
    what: &str,
    write: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let fence = args.fence.as_ref();
    match store::write_fenced(&args.db, &args.account_id, fence, write).await? {
        Ok(answer) => Ok(Some(answer)),
        Err(out) => {
            tracing::debug!(account = %args.account_id, epoch = out.epoch, what, "guard write fenced");
            args.fenced.report(FencedWrites { out, items: 1 });
            Ok(None)
        }
    }
}
