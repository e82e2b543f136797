//! Divergences judged over time through the real tree: a fill that shows a sync after the
//! bot recorded its trade, and a position the bot records a sync after it opened, are
//! never raised (not even opened and resolved); a trade that never fills is raised once
//! two syncs confirm it. Paused tokio time, and the tree's clock follows it.

use mt5_reconciler::domain::BrokerPosition;

use crate::common;
use crate::tree::{acc, all_rows, flush, mirror, open_keys, sim, start, tree_config, wait_for};

#[tokio::test]
async fn races_between_the_bot_and_the_broker_are_held_and_real_misses_are_raised() {
    for (label, db) in common::databases().await {
        let sim = sim(1, 4, false, 3);
        let id = sim.account_ids()[0].clone();
        sim.set_positions(&id, mirror(&sim, &id));
        tokio::time::pause();
        let tree = start(&db, &sim, tree_config()).await;
        wait_for(&tree, "two syncs", |s| acc(s, &id).syncs_ok >= 2).await;
        flush(&tree).await;
        assert!(
            open_keys(&db, &id).await.is_empty(),
            "{label}: a clean start"
        );

        // The bot records x (its fill will show a sync later) and y (never filled); a
        // position z opens at the broker that the bot will record a sync later.
        let mut trades = sim.trades(&id);
        let template = trades[0].clone();
        let trade = |name: &str, ticket: u64| {
            let mut t = template.clone();
            (t.id, t.ticket, t.client_id) = (name.into(), Some(ticket), None);
            t
        };
        let (x, y, z) = (trade("x", 90_001), trade("y", 90_002), trade("z", 90_003));
        let position = |ticket: u64| {
            let p = mirror(&sim, &id)[0].clone();
            BrokerPosition {
                ticket,
                identifier: ticket,
                client_id: None,
                ..p
            }
        };
        trades.extend([x, y]);
        sim.set_trades(&id, trades.clone());
        let mut positions = sim.positions(&id);
        positions.push(position(90_003));
        sim.set_positions(&id, positions.clone());
        let done = acc(&tree.status().await.unwrap(), &id).syncs_ok;
        let s = wait_for(&tree, "a sync", |s| acc(s, &id).syncs_ok > done).await;
        assert_eq!(
            acc(&s, &id).held_divergences,
            3,
            "{label}: x and y missing, z unexpected, all in flight"
        );
        // Within the next interval, x fills and the bot records z.
        positions.push(position(90_001));
        sim.set_positions(&id, positions);
        trades.push(z);
        sim.set_trades(&id, trades);
        wait_for(&tree, "three more syncs", |s| {
            acc(s, &id).syncs_ok >= done + 4
        })
        .await;
        flush(&tree).await;
        let open: Vec<_> = open_keys(&db, &id).await.into_iter().collect();
        assert_eq!(
            open,
            [(
                "missing_at_broker".to_owned(),
                Some("y".to_owned()),
                Some(90_002)
            )],
            "{label}"
        );
        let ever: Vec<_> = all_rows(&db, &id)
            .await
            .into_iter()
            .map(|r| {
                (
                    r.divergence.kind.to_string(),
                    r.divergence.trade_id,
                    r.divergence.ticket,
                )
            })
            .collect();
        assert_eq!(ever, open, "{label}: nothing else was ever opened");
        tree.abort().await;
        tokio::time::resume();
    }
}
