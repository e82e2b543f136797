//! What an account's guards remember, stored whole as JSON text by the account's guard.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait};

use super::convert::db_time;
use super::entities::guard_state;
use super::error::StoreError;

/// The stored memory of `account`'s guards (JSON), if any.
pub async fn load_guard_state<C: ConnectionTrait>(
    db: &C,
    account: &str,
) -> Result<Option<String>, StoreError> {
    Ok(guard_state::Entity::find_by_id(account.to_owned())
        .one(db)
        .await?
        .map(|r| r.state))
}

/// Stores the memory of `account`'s guards (JSON), replacing what was there.
pub async fn save_guard_state<C: ConnectionTrait>(
    db: &C,
    account: &str,
    state: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = guard_state::ActiveModel {
        account_id: Set(account.to_owned()),
        state: Set(state.to_owned()),
        updated_at: Set(db_time(at)),
    };
    guard_state::Entity::insert(row)
        .on_conflict(
            OnConflict::column(guard_state::Column::AccountId)
                .update_columns([guard_state::Column::State, guard_state::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
