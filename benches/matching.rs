//! Criterion bench: `reconcile` for one account at 100, 1,000 and 10,000 positions.
//!
//! Two books per size: `mixed` (a third matched by ticket, a third by client id, a third
//! by the heuristic) and `heuristic` (no ticket, no client id: every pair found by the
//! price/volume search). Positions carry small slippage, so some divergences are found.
//!
//! Run: `cargo bench --bench matching`

use std::hint::black_box;

use chrono::DateTime;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mt5_reconciler::domain::{
    BotTrade, BrokerPosition, Price, ReconcileRules, Side, Volume, reconcile,
};
use rust_decimal::Decimal;

const SYMBOLS: [&str; 8] = [
    "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "EURJPY", "NZDUSD", "USDCAD",
];

/// A deterministic xorshift generator: the same book on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

fn book(n: usize, heuristic_only: bool) -> (Vec<BotTrade>, Vec<BrokerPosition>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut trades = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    for i in 0..n {
        let symbol = SYMBOLS[i % SYMBOLS.len()];
        let jpy = symbol.ends_with("JPY");
        let scale = if jpy { 3 } else { 5 };
        let base = if jpy { 150_000 } else { 100_000 };
        // Entries spread over 2,000 pips; fills within ±8 pips.
        let entry = Decimal::new(base + rng.below(20_000) * 10, scale);
        let fill = entry + Decimal::new(rng.below(161) - 80, scale);
        let side = if rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let ticket = 1_000_000 + i as u64;
        let how = if heuristic_only { 2 } else { i % 3 };
        trades.push(BotTrade {
            id: format!("t{i:06}"),
            account: "bench".into(),
            symbol: symbol.into(),
            side,
            volume: Volume::new(Decimal::new(10 + rng.below(90), 2)),
            entry_price: Price::new(entry),
            sl: None,
            tp: None,
            ticket: (how == 0).then_some(ticket),
            client_id: (how == 1).then(|| format!("c{i}")),
            opened_at: None,
        });
        let volume = trades[i].volume;
        positions.push(BrokerPosition {
            ticket,
            identifier: ticket,
            symbol: symbol.into(),
            side,
            volume,
            open_price: Price::new(fill),
            sl: None,
            tp: None,
            current_price: None,
            profit: Decimal::ZERO,
            swap: Decimal::ZERO,
            magic: 0,
            comment: String::new(),
            client_id: (how == 1).then(|| format!("c{i}")),
            open_time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        });
    }
    (trades, positions)
}

fn bench(c: &mut Criterion) {
    let rules = ReconcileRules::default();
    let mut group = c.benchmark_group("reconcile");
    for &n in &[100usize, 1_000, 10_000] {
        group.throughput(Throughput::Elements(n as u64));
        for (label, heuristic_only) in [("mixed", false), ("heuristic", true)] {
            let (trades, positions) = book(n, heuristic_only);
            group.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| reconcile(black_box(&trades), black_box(&positions), &rules))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
