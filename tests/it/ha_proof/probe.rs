//! What the failover proof reads in the database: the lease rows, the alerts and
//! divergences, and a probe of stale writes — a trigger on every table of per-account side
//! effects that records each row written by a connection whose `application_name` (the
//! instance id) is not the account's lease owner at that moment.

use std::collections::BTreeMap;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

/// Tables whose rows are an account's side effects (`account_id` set).
const WRITTEN: [&str; 8] = [
    "divergences",
    "sync_runs",
    "sync_rollups",
    "alerts",
    "guard_state",
    "audit_events",
    "service_closes",
    "equity_samples",
];

/// A connection to the proof's schema, with a runtime of its own for a synchronous test.
pub struct Probe {
    runtime: tokio::runtime::Runtime,
    db: DatabaseConnection,
    schema: String,
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
        Probe {
            runtime,
            db,
            schema: schema.to_owned(),
        }
    }

    /// Installs the stale-write trigger on every table of [`WRITTEN`].
    pub fn install(&self) {
        let s = &self.schema;
        let mut sql = format!(
            "CREATE TABLE \"{s}\".stale_writes (table_name text, kind text, account_id text, \
               writer text, owner text, at timestamptz DEFAULT clock_timestamp());\n\
             CREATE FUNCTION \"{s}\".probe_stale_write() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             DECLARE holder text;\n\
             BEGIN\n\
               IF NEW.account_id IS NULL THEN RETURN NEW; END IF;\n\
               SELECT owner INTO holder FROM \"{s}\".account_leases \
                 WHERE account_id = NEW.account_id;\n\
               IF holder IS DISTINCT FROM current_setting('application_name') THEN\n\
                 INSERT INTO \"{s}\".stale_writes (table_name, kind, account_id, writer, owner) \
                   VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> 'kind', NEW.account_id, \
                           current_setting('application_name'), holder);\n\
               END IF;\n\
               RETURN NEW;\n\
             END $$;\n"
        );
        for table in WRITTEN {
            sql.push_str(&format!(
                "CREATE TRIGGER probe_stale_write BEFORE INSERT OR UPDATE ON \"{s}\".{table} \
                 FOR EACH ROW EXECUTE FUNCTION \"{s}\".probe_stale_write();\n"
            ));
        }
        self.runtime
            .block_on(self.db.execute_unprepared(&sql))
            .expect("probe installed");
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
