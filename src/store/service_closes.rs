//! Positions this service closed itself, with the alert they were closed under.

use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::convert::{db_time, ticket_to_db};
use super::entities::service_close;
use super::error::StoreError;

/// Records that `ticket` of `account` was closed under `alert` (a second record of the
/// same ticket keeps the first).
pub async fn record_service_close<C: ConnectionTrait>(
    db: &C,
    account: &str,
    ticket: u64,
    alert: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = service_close::ActiveModel {
        account_id: Set(account.to_owned()),
        ticket: Set(ticket_to_db(ticket).0),
        alert_id: Set(alert.to_owned()),
        closed_at: Set(db_time(at)),
    };
    service_close::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                service_close::Column::AccountId,
                service_close::Column::Ticket,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Every position of `account` this service closed: (ticket, alert id).
pub async fn service_closes<C: ConnectionTrait>(
    db: &C,
    account: &str,
) -> Result<Vec<(u64, String)>, StoreError> {
    let rows = service_close::Entity::find()
        .filter(service_close::Column::AccountId.eq(account))
        .all(db)
        .await?;
    rows.into_iter()
        .map(|r| {
            let ticket = r.ticket.parse::<u64>().map_err(|e| StoreError::BadData {
                table: "service_closes",
                column: "ticket",
                row: format!("{}/{}", r.account_id, r.ticket),
                value: r.ticket.clone(),
                reason: e.to_string(),
            })?;
            Ok((ticket, r.alert_id))
        })
        .collect()
}
