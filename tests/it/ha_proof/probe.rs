//! What the failover proof reads in the database: the lease rows, the alerts and
//! divergences, and the stale-write probe of `common` (a trigger on every table of
//! per-account side effects that records each row written by a connection whose
//! `application_name`, the instance id, does not hold the account's lease at that moment).

use std::collections::BTreeMap;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// A connection to the proof's schema, with a runtime of its own for a synchronous test.
pub struct Probe {
    runtime: tokio::runtime::Runtime,
    db: DatabaseConnection,
}

impl Probe {
    /// Connects to `schema` (already migrated).
    pub fn connect(url: &str, schema: &str) -> Probe {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(2)
            .set_schema_search_path(schema.to_owned())
            .sqlx_logging(false);
        let db = runtime
            .block_on(Database::connect(options))
            .expect("probe connection");
        Probe { runtime, db }
    }

    /// Installs the stale-write probe of `common` in the proof's schema.
    pub fn install(&self) {
        self.runtime
            .block_on(crate::common::install_stale_write_probe(&self.db));
    }

    /// Rows of `sql`, every column read as text.
    pub fn rows(&self, sql: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let stmt = Statement::from_string(self.db.get_database_backend(), sql.to_owned());
        let rows = self
            .runtime
            .block_on(self.db.query_all_raw(stmt))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|c| {
                        r.try_get::<Option<String>>("", c)
                            .unwrap_or_else(|e| panic!("{sql}: column {c}: {e}"))
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect()
    }

    /// Lease owner per account (accounts without an owner left out).
    pub fn owners(&self) -> BTreeMap<String, String> {
        self.rows(
            "SELECT account_id, owner FROM account_leases WHERE owner IS NOT NULL",
            &["account_id", "owner"],
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
    }

    /// Stale writes recorded so far, counted by table and kind (audit events, alerts and
    /// divergences have one): `table/kind: n`, most first.
    pub fn stale_writes(&self) -> Vec<String> {
        self.rows(
            "SELECT table_name, coalesce(kind, '') AS kind, count(*)::text AS n \
             FROM stale_writes GROUP BY 1, 2 ORDER BY count(*) DESC",
            &["table_name", "kind", "n"],
        )
        .into_iter()
        .map(|r| format!("{}/{}: {}", r[0], r[1], r[2]))
        .collect()
    }

    /// Status of every alert that schedules a close, per account.
    pub fn close_alerts(&self) -> Vec<(String, String)> {
        self.rows(
            "SELECT account_id, status FROM alerts WHERE close_at IS NOT NULL ORDER BY created_at",
            &["account_id", "status"],
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect()
    }

    /// Open divergences: account, kind, fingerprint.
    pub fn open_divergences(&self) -> Vec<(String, String, String)> {
        self.rows(
            "SELECT account_id, kind, fingerprint FROM divergences WHERE status = 'open' \
             ORDER BY account_id, kind",
            &["account_id", "kind", "fingerprint"],
        )
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect()
    }
}
