//! Bulk set-up: many accounts' trades written in shared transactions, each account all
//! or nothing, on every backend; and the `accounts import` / `trades import` commands over
//! JSON Lines files and directories.

use std::path::Path;

use chrono::Utc;
use mt5_reconciler::domain::{BotTrade, Price, Side, Volume};
use mt5_reconciler::store::{self, ACCOUNTS_PER_TRANSACTION, Account, TradeWrite};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::common::databases;
use crate::service_proc::{Out, command};

fn trade(account: &str, id: &str) -> TradeWrite {
    TradeWrite {
        trade: BotTrade {
            id: id.to_owned(),
            account: account.to_owned(),
            symbol: "EURUSD".to_owned(),
            side: Side::Buy,
            volume: Volume::new(Decimal::new(10, 2)),
            entry_price: Price::new(Decimal::new(108_512, 5)),
            sl: None,
            tp: None,
            ticket: None,
            client_id: None,
            opened_at: None,
        },
        version: None,
    }
}

#[tokio::test]
async fn many_accounts_share_transactions_and_one_bad_account_spoils_only_itself() {
    let run = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    for (label, db) in databases().await {
        // More accounts than one transaction holds, so that two batches commit.
        let n = ACCOUNTS_PER_TRANSACTION + 3;
        let ids: Vec<String> = (0..n).map(|i| format!("bulk-{run}-{i}")).collect();
        let accounts: Vec<Account> = ids
            .iter()
            .map(|id| Account {
                id: id.clone(),
                name: id.clone(),
                broker: "sim".into(),
                enabled: true,
                disabled_reason: None,
            })
            .collect();
        store::upsert_accounts(&db, &accounts, Utc::now())
            .await
            .unwrap();
        // Again: an update in place, not a duplicate.
        store::upsert_accounts(&db, &accounts, Utc::now())
            .await
            .unwrap();

        let mut writes: Vec<(String, Vec<TradeWrite>)> = ids
            .iter()
            .map(|id| (id.clone(), vec![trade(id, "t1"), trade(id, "t2")]))
            .collect();
        // Not in the accounts table: refused, in the middle of the first batch.
        let stranger = format!("bulk-{run}-stranger");
        writes.insert(7, (stranger.clone(), vec![trade(&stranger, "t1")]));
        let results = store::write_many_accounts(&db, &writes, false, Utc::now()).await;
        assert_eq!(results.len(), n + 1, "{label}");
        assert!(results[7].is_err(), "{label}: {:?}", results[7]);
        for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 7) {
            let o = r.as_ref().unwrap_or_else(|e| panic!("{label}: {i}: {e}"));
            assert_eq!(o.written, 2, "{label}: {i}");
        }
        for id in [&ids[0], &ids[6], &ids[7], &ids[n - 1]] {
            let open = store::open_trades(&db, id).await.unwrap();
            assert_eq!(open.len(), 2, "{label}: {id}");
            assert!(store::trades_revision(&db, id).await.unwrap().is_some());
        }
        assert!(store::open_trades(&db, &stranger).await.unwrap().is_empty());

        // Replacing: the given set stays open, the rest is closed, a retry changes nothing.
        let first = vec![(ids[0].clone(), vec![trade(&ids[0], "t2")])];
        let r = store::write_many_accounts(&db, &first, true, Utc::now()).await;
        let o = r[0].as_ref().unwrap();
        assert_eq!((o.unchanged, o.closed), (1, 1), "{label}");
        let r = store::write_many_accounts(&db, &first, true, Utc::now()).await;
        let o = r[0].as_ref().unwrap();
        assert_eq!((o.unchanged, o.closed, o.written), (1, 0, 0), "{label}");
        let open = store::open_trades(&db, &ids[0]).await.unwrap();
        assert_eq!(open.len(), 1, "{label}");
        assert_eq!(open[0].id, "t2");
    }
}

/// A directory with a `config.toml` whose database is `bulk.db` in it.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bulk.db").display());
    std::fs::write(
        dir.path().join("config.toml"),
        format!("[database]\nurl = \"{url}\"\n"),
    )
    .unwrap();
    dir
}

fn run(dir: &Path, args: &[&str]) -> Out {
    command(dir, args, &[])
}

const T1: &str =
    r#"{"id":"t1","symbol":"EURUSD","side":"buy","volume":"0.10","entry_price":"1.08512"}"#;
const T2: &str =
    r#"{"id":"t2","symbol":"USDJPY","side":"sell","volume":1,"entry_price":150.125,"ticket":42}"#;

#[test]
fn accounts_and_trades_of_many_accounts_import_in_one_call_each() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("accounts.jsonl"),
        [
            r#"{"id":"a1","broker":"sim","name":"Desk 1"}"#,
            r#"{"id":"a2","broker":"sim"}"#,
            "",
            r#"{"id":"a3","broker":"sim","enabled":false}"#,
            r#"{"id":"a4","broker":"ctrader"}"#,
            r#"{"id":"a5"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = run(d, &["accounts", "import", "accounts.jsonl"]);
    assert_eq!(out.code, 2, "some lines are refused: {}", out.stderr);
    assert!(
        out.stdout.contains("imported 3 accounts (2 enabled)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("refused 2:"), "{}", out.stdout);
    assert!(out.stdout.contains("\"ctrader\""), "{}", out.stdout);
    assert!(
        out.stdout.contains("accounts.jsonl line 6"),
        "{}",
        out.stdout
    );
    let list = run(d, &["accounts", "list", "--format", "json"]);
    let list: Json = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");
    assert_eq!(list[0]["name"], "Desk 1");
    assert_eq!(list[2]["enabled"], false);

    let bad = T2.replace("\"sell\"", "\"short\"").replace("t2", "t3");
    std::fs::write(
        d.join("trades.jsonl"),
        format!(
            "{{\"account\":\"a1\",\"trades\":[{T1},{T2}]}}\n{{\"account\":\"a2\",\"trades\":[{T1},{bad}]}}\n{{\"account\":\"zz\",\"trades\":[{T1}]}}\n{{\"account\":\"a3\",\"trades\":[]}}\n"
        ),
    )
    .unwrap();
    let out = run(d, &["trades", "import", "trades.jsonl"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stdout.contains("imported the trades of 2 accounts")
            && out.stdout.contains("2 trades written"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("trades.jsonl line 2: element 1, field \"side\", value \"short\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("account \"zz\": not in the accounts table"),
        "{}",
        out.stdout
    );

    // A directory of files, replacing: a1 keeps only t2, a2 gets its trade.
    std::fs::create_dir(d.join("books")).unwrap();
    std::fs::write(d.join("books").join("a1.json"), format!("[{T2}]")).unwrap();
    std::fs::write(d.join("books").join("a2.json"), format!("[{T1}]")).unwrap();
    let out = run(d, &["trades", "import", "books", "--replace"]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("1 trades written, 1 unchanged, 1 closed"),
        "{}",
        out.stdout
    );
    // The same again changes nothing.
    let out = run(d, &["trades", "import", "books", "--replace"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("0 trades written, 2 unchanged, 0 closed"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn a_batch_the_database_cannot_take_reports_every_account_failed_and_keeps_nothing() {
    let run = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    for db in crate::common::lockable_databases().await {
        let label = db.label.clone();
        let ids: Vec<String> = (0..3).map(|i| format!("bulk-away-{run}-{i}")).collect();
        let accounts: Vec<Account> = ids
            .iter()
            .map(|id| Account {
                id: id.clone(),
                name: id.clone(),
                broker: "sim".into(),
                enabled: true,
                disabled_reason: None,
            })
            .collect();
        store::upsert_accounts(&db.db, &accounts, Utc::now())
            .await
            .unwrap();
        let writes: Vec<(String, Vec<TradeWrite>)> = ids
            .iter()
            .map(|id| (id.clone(), vec![trade(id, "t1")]))
            .collect();
        db.lock().await;
        let results = store::write_many_accounts(&db.db, &writes, false, Utc::now()).await;
        db.unlock().await;
        assert_eq!(results.len(), 3, "{label}");
        for r in &results {
            assert!(r.is_err(), "{label}: {r:?}");
        }
        for id in &ids {
            assert!(
                store::open_trades(&db.db, id).await.unwrap().is_empty(),
                "{label}"
            );
        }
        // Back: the same batch goes through.
        let results = store::write_many_accounts(&db.db, &writes, false, Utc::now()).await;
        assert!(results.iter().all(Result::is_ok), "{label}: {results:?}");
    }
}
