//! Positions this service closed itself: the bot's trades they belonged to are not
//! `missing_at_broker` but `closed_by_service`, naming the alert, until the bot marks them
//! closed. Pure: the caller says which tickets were closed under which alert.

use super::divergence::{Divergence, DivergenceKind, Value};

/// Turns every `missing_at_broker` divergence whose ticket `closed_by` knows into
/// `closed_by_service` with the alert as its actual value (and a fingerprint of its own).
pub fn relabel_service_closes(
    divergences: &mut [Divergence],
    closed_by: impl Fn(u64) -> Option<u64>,
) {
    for d in divergences.iter_mut() {
        if d.kind != DivergenceKind::MissingAtBroker {
            continue;
        }
        let Some(alert) = d.ticket.and_then(&closed_by) else {
            continue;
        };
        *d = Divergence::new(
            DivergenceKind::ClosedByService,
            std::mem::take(&mut d.symbol),
            d.ticket,
            d.trade_id.take(),
            d.expected,
            Some(Value::Alert(alert)),
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(ticket: u64) -> Divergence {
        Divergence::new(
            DivergenceKind::MissingAtBroker,
            "EURUSD".into(),
            Some(ticket),
            Some(format!("t{ticket}")),
            None,
            None,
            None,
        )
    }

    #[test]
    fn only_the_tickets_the_service_closed_change_kind() {
        let mut d = vec![missing(1), missing(2)];
        relabel_service_closes(&mut d, |t| (t == 2).then_some(0xabc));
        assert_eq!(d[0].kind, DivergenceKind::MissingAtBroker);
        assert_eq!(d[1].kind, DivergenceKind::ClosedByService);
        assert_eq!(
            d[1].actual.map(|v| v.to_string()).as_deref(),
            Some("al-0000000000000abc")
        );
        assert_ne!(d[1].fingerprint, missing(2).fingerprint);
        assert_eq!(
            "al-0000000000000abc".parse::<Value>(),
            Ok(Value::Alert(0xabc))
        );
    }
}
