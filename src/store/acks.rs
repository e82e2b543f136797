//! Acknowledgements: an operator marks a divergence as seen and accepted, with a note (a
//! known manual hedge, a broker's partial fill accepted). The divergence stays in the
//! record and keeps its lifecycle (it still resolves when it goes away); it is only left
//! out of the open counts that say what needs attention. Each acknowledgement is one
//! `divergence_acknowledged` audit event, written in the same transaction.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionSession, TransactionTrait};
use serde_json::json;

use super::convert::{OPEN, db_time};
use super::entities::divergence;
use super::error::StoreError;
use super::journal::{AuditEvent, append_audit};

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest name of who acknowledges, in characters.
pub const MAX_BY_CHARS: usize = 100;

/// An acknowledgement as stored on its divergence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// Why.
    pub note: String,
}

/// What [`acknowledge_divergence`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// Acknowledged now (and audited).
    Acknowledged,
    /// It was acknowledged before: nothing changed.
    Already(Acknowledgement),
    /// It is resolved: nothing needs acknowledging.
    Resolved,
    /// No divergence has this id.
    Unknown,
}

/// Checks an operator's note and name: the note is required (1 to [`MAX_NOTE_CHARS`]
/// characters once trimmed), the name 1 to [`MAX_BY_CHARS`]. The error names the field
/// and its value.
pub fn check_ack(by: &str, note: &str) -> Result<(String, String), String> {
    let (by, note) = (by.trim(), note.trim());
    if note.is_empty() {
        return Err(format!(
            "note = {note:?}: an acknowledgement needs a note saying why (e.g. \"known manual hedge\")"
        ));
    }
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!(
            "note = {:?}…: at most {MAX_NOTE_CHARS} characters",
            note.chars().take(40).collect::<String>()
        ));
    }
    if by.is_empty() || by.chars().count() > MAX_BY_CHARS {
        return Err(format!(
            "by = {by:?}: expected 1 to {MAX_BY_CHARS} characters"
        ));
    }
    Ok((by.to_owned(), note.to_owned()))
}

/// Acknowledges the open divergence `id` (`by` and `note` as [`check_ack`] returns them),
/// and appends the audit event, in one transaction.
pub async fn acknowledge_divergence<C: TransactionTrait>(
    db: &C,
    id: i64,
    by: &str,
    note: &str,
    at: DateTime<Utc>,
) -> Result<AckOutcome, StoreError> {
    let txn = db.begin().await?;
    let Some(row) = divergence::Entity::find_by_id(id).one(&txn).await? else {
        return Ok(AckOutcome::Unknown);
    };
    if let Some(ack) = acknowledgement(&row) {
        return Ok(AckOutcome::Already(ack));
    }
    if row.status != OPEN {
        return Ok(AckOutcome::Resolved);
    }
    let at = db_time(at);
    let updated = divergence::Entity::update_many()
        .col_expr(divergence::Column::AcknowledgedAt, Expr::value(at))
        .col_expr(divergence::Column::AcknowledgedBy, Expr::value(by))
        .col_expr(divergence::Column::AcknowledgedNote, Expr::value(note))
        .filter(divergence::Column::Id.eq(id))
        .filter(divergence::Column::AcknowledgedAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        // Another operator was quicker: theirs stands.
        let ack = divergence::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .as_ref()
            .and_then(acknowledgement);
        return Ok(ack.map_or(AckOutcome::Unknown, AckOutcome::Already));
    }
    let event = AuditEvent {
        at,
        account_id: Some(row.account_id.clone()),
        kind: "divergence_acknowledged".to_owned(),
        detail: json!({
            "divergence": id, "fingerprint": row.fingerprint, "kind": row.kind,
            "symbol": row.symbol, "by": by, "note": note,
        }),
    };
    append_audit(&txn, &event).await?;
    txn.commit().await?;
    Ok(AckOutcome::Acknowledged)
}

/// The acknowledgement stored on `row`, if any.
pub(super) fn acknowledgement(row: &divergence::Model) -> Option<Acknowledgement> {
    row.acknowledged_at.map(|at| Acknowledgement {
        at,
        by: row.acknowledged_by.clone().unwrap_or_default(),
        note: row.acknowledged_note.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("ops", "known manual hedge", true)]
    #[case("  ops ", "  partial fill accepted ", true)]
    #[case("ops", "", false)]
    #[case("ops", "   ", false)]
    #[case("", "hedge", false)]
    #[case("ops", &"x".repeat(MAX_NOTE_CHARS + 1), false)]
    fn a_note_is_required_and_bounded(#[case] by: &str, #[case] note: &str, #[case] ok: bool) {
        let checked = check_ack(by, note);
        assert_eq!(checked.is_ok(), ok, "{checked:?}");
        if let Err(e) = checked {
            assert!(e.starts_with("note = ") || e.starts_with("by = "), "{e}");
        }
    }
}
