//! Close reasons: the close detail round-trips through the store, on SQLite and
//! PostgreSQL.

use chrono::{DateTime, Utc};
use mt5_reconciler::domain::{
    CloseDetail, DealReason, Divergence, DivergenceKind, Price, Unit, Value, Volume,
};
use mt5_reconciler::store::{self, DivergenceDiff, Wanted, entities};
use rust_decimal::dec;
use sea_orm::ActiveValue::Set;
use sea_orm::{EntityTrait, TransactionTrait};

use crate::common;

fn at(secs: u64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs as i64, 0).expect("a time")
}

fn detail(reason: DealReason, price: &str, profit: &str, volume: &str) -> CloseDetail {
    CloseDetail {
        reason,
        price: Price::new(price.parse().unwrap()),
        profit: profit.parse().unwrap(),
        volume: Volume::new(volume.parse().unwrap()),
        time: at(7),
    }
}

fn divergences() -> Vec<Divergence> {
    let n = |text: &str| Some(Value::Number(text.parse().unwrap()));
    vec![
        Divergence::new(
            DivergenceKind::ClosedAtBroker,
            "EURUSD".into(),
            Some(u64::MAX),
            Some("t1".into()),
            n("1.00"),
            None,
            None,
        )
        .with_close(detail(DealReason::StopLoss, "1.08500", "-123.40", "1.00")),
        Divergence::new(
            DivergenceKind::PartiallyClosed,
            "XAUUSD".into(),
            Some(42),
            Some("t2".into()),
            n("1"),
            n("0.25"),
            Some((dec!(0.75), Unit::Lots)),
        )
        .with_close(detail(DealReason::Web, "2420.071", "0.00", "0.75")),
        Divergence::new(
            DivergenceKind::MissingAtBroker,
            "EURUSD".into(),
            None,
            Some("t3".into()),
            n("0.1"),
            None,
            None,
        ),
    ]
}

#[tokio::test]
async fn close_details_round_trip_exactly_and_a_bad_one_is_named() {
    for (label, db) in common::databases().await {
        let opened = divergences();
        let diff = DivergenceDiff {
            account_id: "acc-1".into(),
            at: at(9),
            opened: opened.clone(),
            resolved: Vec::new(),
        };
        store::apply_diff(&db, &diff).await.unwrap();
        let txn = db.begin().await.unwrap();
        let wanted = [Wanted {
            account_id: "acc-2",
            at: at(9),
            desired: &opened,
            held: &[],
        }];
        store::converge_many(&txn, &wanted).await.unwrap();
        txn.commit().await.unwrap();
        for account in ["acc-1", "acc-2"] {
            let back: Vec<Divergence> = store::open_divergences(&db, account)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.divergence)
                .collect();
            assert_eq!(back.len(), opened.len(), "{label}: {account}");
            for d in &opened {
                let stored = back.iter().find(|b| b.fingerprint == d.fingerprint);
                assert_eq!(stored, Some(d), "{label}: {account}");
            }
            let closed = back
                .iter()
                .find(|d| d.kind == DivergenceKind::ClosedAtBroker);
            let close = closed
                .and_then(|d| d.close.as_ref())
                .expect("a close detail");
            let texts = [close.price.to_string(), close.profit.to_string()];
            assert_eq!(texts, ["1.08500", "-123.40"], "{label}: scales kept");
        }

        // Half a close detail, or an unknown reason, is bad data named by its column.
        let rows = store::open_divergences(&db, "acc-1").await.unwrap();
        let first = rows.iter().find(|r| r.divergence.close.is_some()).unwrap();
        for (reason, price, want) in [
            (Some("sl"), Some("1.085"), "divergences.close_reason"),
            (Some("stop_loss"), None, "set without close_price"),
        ] {
            entities::divergence::Entity::update(entities::divergence::ActiveModel {
                id: Set(first.id),
                close_reason: Set(reason.map(str::to_owned)),
                close_price: Set(price.map(str::to_owned)),
                ..Default::default()
            })
            .exec(&db)
            .await
            .unwrap();
            let err = store::open_divergences(&db, "acc-1").await.unwrap_err();
            assert!(err.to_string().contains(want), "{label}: {err}");
        }
    }
}
