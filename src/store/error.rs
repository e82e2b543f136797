//! The storage boundary's error: database away (retry later) versus bad data (fix it).

use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened at start-up. The URL is shown without its password.
    #[error("cannot open database {url}: {message}")]
    Connect {
        /// The database URL, password replaced by `***`.
        url: String,
        /// What went wrong, password replaced by `***`.
        message: String,
    },
    /// The database is away or busy: connection lost or refused, pool exhausted, locked.
    /// Retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
    /// Running the migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[source] DbErr),
    /// The database refused a statement (constraint violation, SQL error, type mismatch).
    #[error("database error: {0}")]
    Database(#[source] DbErr),
    /// A stored value cannot be read back as a domain value.
    #[error("bad data in {table}.{column} (row {row}): {value:?}: {reason}")]
    BadData {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// The row's key.
        row: String,
        /// The stored text.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A domain value cannot be stored, e.g. a count beyond the range of `INTEGER`.
    #[error("cannot store {field} = {value}: {reason}")]
    Unstorable {
        /// Which field.
        field: &'static str,
        /// The value, as text.
        value: String,
        /// Why it does not fit.
        reason: String,
    },
}

impl StoreError {
    /// True when the database is away or busy and the same operation may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// True when stored or given data is at fault, not the database.
    pub fn is_bad_data(&self) -> bool {
        matches!(
            self,
            StoreError::BadData { .. } | StoreError::Unstorable { .. }
        )
    }
}

impl StoreError {
    /// True when the data is at fault and sending it again will fail again: a value the
    /// store cannot convert, or one the database refuses (PostgreSQL's data exceptions and
    /// integrity violations, SQLSTATE classes 22 and 23; SQLite's CONSTRAINT, TOOBIG,
    /// MISMATCH and RANGE). A busy, locked or unreachable database is never a refusal.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::Unstorable { .. } => true,
            StoreError::Database(err) => refused_by_database(err),
            _ => false,
        }
    }
}

/// Does the database refuse the values themselves (rather than being away, busy or
/// broken)?
fn refused_by_database(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let sqlx::Error::Database(db) = e.as_ref() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        matches!(code & 0xff, 18 | 19 | 20 | 25)
    } else {
        let code = db.code().unwrap_or_default();
        code.starts_with("22") || code.starts_with("23")
    }
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        if is_unavailable(&err) {
            StoreError::Unavailable(err)
        } else {
            StoreError::Database(err)
        }
    }
}

/// Classifies a sea-orm error: is the database away or busy (rather than refusing)?
fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            sqlx_unavailable(e)
        }
        _ => false,
    }
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // Primary result code = extended code & 0xff.
                let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
                // BUSY, LOCKED, IOERR, FULL, CANTOPEN.
                matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)
            } else {
                let code = db.code().unwrap_or_default();
                // Connection exceptions, shutdown, cannot connect now, too many connections.
                code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
            }
        }
        _ => false,
    }
}

/// Replaces the password of a `scheme://user:password@host/...` URL with `***`.
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

/// Replaces every occurrence of the URL's password in `text` with `***`.
pub(crate) fn redact_text(text: &str, url: &str) -> String {
    match password_span(url) {
        Some((start, end)) if end > start => text.replace(&url[start..end], "***"),
        _ => text.to_owned(),
    }
}

/// Byte range of the password in `scheme://user:password@host`, if there is one.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let url = "postgres://app:s3cret@db.example:5432/rec?sslmode=require";
        assert_eq!(
            redact_url(url),
            "postgres://app:***@db.example:5432/rec?sslmode=require"
        );
        assert_eq!(
            redact_text("failed for app:s3cret@db", url),
            "failed for app:***@db"
        );
        assert_eq!(redact_url("postgres://app@db/rec"), "postgres://app@db/rec");
        assert_eq!(
            redact_url("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }
}
