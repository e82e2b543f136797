//! A broker's symbol specifications in a sync: merged into the pip rules below the
//! configuration, and deciding whether an unknown pip size is worth another sync.
//!
//! A broker may learn its symbols' specifications in the background (MetaApi fetches them
//! after the first snapshot that holds the symbol). Until one arrives, a symbol that only
//! the broker can describe has no pip size: that sync fails as `Retryable` (the next sync
//! has the specification), not `Permanent` (which would disable the account for a
//! configuration problem that does not exist). Once the broker has settled that it cannot
//! describe the symbol, only configuration helps, and the failure is `Permanent`.

use std::borrow::Cow;

use super::{Broker, ErrorClass};
use crate::domain::{BrokerPosition, ReconcileError, ReconcileRules};

/// The rules to reconcile `account` with: `rules` with the broker's specifications merged
/// in ([`ReconcileRules::with_broker_symbols`]: configuration wins), or `rules` as they
/// are when the broker offers none.
pub fn rules_for<'a>(
    broker: &dyn Broker,
    account: &str,
    rules: &'a ReconcileRules,
) -> Cow<'a, ReconcileRules> {
    match broker.symbols(account) {
        Some(table) if !table.is_empty() => Cow::Owned(rules.with_broker_symbols(&table)),
        _ => Cow::Borrowed(rules),
    }
}

/// The class and message of a failed reconciliation of `positions`: `Malformed` when a
/// pair's numbers are out of range (the data is bad, as a bad payload is); for unknown
/// pip sizes `Retryable` when every symbol without one is held in a spelling the broker
/// may still describe ([`Broker::symbol_pending`]); `Permanent` otherwise
/// (configuration must change).
pub fn reconcile_failure(
    broker: &dyn Broker,
    account: &str,
    rules: &ReconcileRules,
    positions: &[BrokerPosition],
    e: &ReconcileError,
) -> (ErrorClass, String) {
    let unknown = match e {
        ReconcileError::UnknownPipSize(unknown) => unknown,
        ReconcileError::OutOfRange { .. } => return (ErrorClass::Malformed, e.to_string()),
        _ => return (ErrorClass::Permanent, e.to_string()),
    };
    let pending = |canonical: &String| {
        positions
            .iter()
            .filter(|p| rules.canonical(&p.symbol) == *canonical)
            .any(|p| broker.symbol_pending(account, &p.symbol))
    };
    if !unknown.is_empty() && unknown.iter().all(pending) {
        let message = format!("{e} (the broker's symbol specifications are still loading)");
        (ErrorClass::Retryable, message)
    } else {
        (ErrorClass::Permanent, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use rstest::rstest;
    use rust_decimal::dec;

    use super::*;
    use crate::broker::{BoxFuture, BrokerError};
    use crate::domain::{
        AccountSnapshot, BotTrade, Price, Side, SymbolSpec, SymbolTable, Tolerances, Volume,
        reconcile,
    };

    /// A broker that knows `table` and is still fetching `pending` (its spellings).
    struct Stub {
        table: Option<SymbolTable>,
        pending: HashSet<&'static str>,
    }

    impl Broker for Stub {
        fn snapshot<'a>(
            &'a self,
            _account: &'a str,
        ) -> BoxFuture<'a, Result<AccountSnapshot, BrokerError>> {
            Box::pin(async { Err(BrokerError::Permanent("not in these tests".into())) })
        }

        fn symbols(&self, _account: &str) -> Option<SymbolTable> {
            self.table.clone()
        }

        fn symbol_pending(&self, _account: &str, symbol: &str) -> bool {
            self.pending.contains(symbol)
        }
    }

    fn stub(table: &[(&str, u32)], pending: &[&'static str]) -> Stub {
        let specs = table.iter().map(|(s, digits)| {
            let spec = SymbolSpec {
                digits: Some(*digits),
                ..SymbolSpec::default()
            };
            ((*s).to_owned(), spec)
        });
        Stub {
            table: (!table.is_empty()).then(|| specs.collect()),
            pending: pending.iter().copied().collect(),
        }
    }

    /// Gold spelled `XAUUSD.m` at the broker, aliased to `XAUUSD`.
    fn rules() -> ReconcileRules {
        ReconcileRules::with_maps(
            Tolerances::default(),
            BTreeMap::new(),
            SymbolTable::new(),
            BTreeMap::from([("XAUUSD.m".to_owned(), "XAUUSD".to_owned())]),
        )
    }

    fn trade(symbol: &str, ticket: u64) -> BotTrade {
        BotTrade {
            id: format!("t{ticket}"),
            account: "acc".into(),
            symbol: symbol.into(),
            side: Side::Buy,
            volume: Volume::new(dec!(1)),
            entry_price: Price::new(dec!(100)),
            sl: None,
            tp: None,
            ticket: Some(ticket),
            client_id: None,
            opened_at: None,
        }
    }

    fn position(symbol: &str, ticket: u64) -> BrokerPosition {
        BrokerPosition::for_test(ticket, symbol, Side::Buy, dec!(1), dec!(100))
    }

    /// Gold (broker spelling `XAUUSD.m`) and an index, held on both sides.
    fn held() -> (Vec<BotTrade>, Vec<BrokerPosition>) {
        (
            vec![trade("XAUUSD", 1), trade("US30", 2)],
            vec![position("XAUUSD.m", 1), position("US30", 2)],
        )
    }

    #[rstest]
    #[case::both_loading(stub(&[], &["XAUUSD.m", "US30"]), Some(ErrorClass::Retryable))]
    #[case::one_settled_unknown(stub(&[], &["XAUUSD.m"]), Some(ErrorClass::Permanent))]
    #[case::nothing_loading(stub(&[], &[]), Some(ErrorClass::Permanent))]
    #[case::canonical_spelling_is_not_the_brokers(stub(&[], &["XAUUSD", "US30"]), Some(ErrorClass::Permanent))]
    #[case::one_known_one_loading(stub(&[("XAUUSD.m", 2)], &["US30"]), Some(ErrorClass::Retryable))]
    #[case::both_known(stub(&[("XAUUSD.m", 2), ("US30", 1)], &[]), None)]
    fn an_unknown_pip_size_is_retryable_only_while_the_broker_loads_it(
        #[case] broker: Stub,
        #[case] class: Option<ErrorClass>,
    ) {
        let (trades, positions) = held();
        let base = rules();
        let rules = rules_for(&broker, "acc", &base);
        let got = reconcile(&trades, &positions, &rules)
            .map_err(|e| reconcile_failure(&broker, "acc", &rules, &positions, &e));
        assert_eq!(got.as_ref().err().map(|e| e.0), class, "{got:?}");
        if let Err((class, message)) = got {
            assert!(message.starts_with("unknown pip size for "), "{message}");
            let loading = message.contains("still loading");
            assert_eq!(loading, class == ErrorClass::Retryable, "{message}");
        }
    }

    #[test]
    fn other_failures_stay_permanent() {
        let broker = stub(&[], &["XAUUSD.m"]);
        let e = ReconcileError::DuplicateTicket(7);
        let got = reconcile_failure(&broker, "acc", &rules(), &[position("XAUUSD.m", 7)], &e);
        assert_eq!(got, (ErrorClass::Permanent, e.to_string()));
    }

    #[test]
    fn no_broker_symbols_borrow_the_rules_as_they_are() {
        let base = rules();
        assert!(matches!(
            rules_for(&stub(&[], &[]), "acc", &base),
            Cow::Borrowed(_)
        ));
        let empty = Stub {
            table: Some(SymbolTable::new()),
            pending: HashSet::new(),
        };
        assert!(matches!(rules_for(&empty, "acc", &base), Cow::Borrowed(_)));
        let merged = rules_for(&stub(&[("XAUUSD.m", 2)], &[]), "acc", &base);
        assert_eq!(merged.pip_size("XAUUSD"), Ok(dec!(0.01)));
    }
}
