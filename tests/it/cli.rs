//! The command-line contract, run as a process: output shape, exit codes, error messages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mt5-reconciler");

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], dir: &Path) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn reconcile_files(positions: &str, trades: &str, extra: &[&str]) -> (tempfile::TempDir, Out) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("positions.json"), positions).unwrap();
    std::fs::write(dir.path().join("trades.json"), trades).unwrap();
    let mut args = vec![
        "reconcile",
        "--positions",
        "positions.json",
        "--trades",
        "trades.json",
    ];
    args.extend_from_slice(extra);
    let out = run(&args, dir.path());
    (dir, out)
}

#[test]
fn metaapi_documented_example_reports_slippage_missing_tp_and_a_missing_trade() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "reconcile",
            "--positions",
            fixture("examples/data/metaapi-positions.json")
                .to_str()
                .unwrap(),
            "--trades",
            fixture("examples/data/metaapi-trades.json")
                .to_str()
                .unwrap(),
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc,
        json!({
            "matched": [{"trade_id": "AS_AUDNZD_46648037", "ticket": 46648037, "method": "ticket"}],
            "divergences": [
                {"kind": "entry_slippage", "symbol": "AUDNZD", "ticket": 46648037,
                 "trade_id": "AS_AUDNZD_46648037", "expected": "1.05712", "actual": "1.05782",
                 "delta": "7", "unit": "pips", "close": null},
                {"kind": "tp_mismatch", "symbol": "AUDNZD", "ticket": 46648037,
                 "trade_id": "AS_AUDNZD_46648037", "expected": "1.06500", "actual": null,
                 "delta": null, "unit": null, "close": null},
                {"kind": "missing_at_broker", "symbol": "EURUSD", "ticket": null,
                 "trade_id": "bot-eurusd-7", "expected": "0.2", "actual": null,
                 "delta": null, "unit": null, "close": null}
            ]
        })
    );
}

#[test]
fn mt5_records_match_by_ticket_client_id_and_heuristic_with_config_pips() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "reconcile",
            "--positions",
            fixture("examples/data/mt5-positions.json")
                .to_str()
                .unwrap(),
            "--trades",
            fixture("examples/data/mt5-trades.json").to_str().unwrap(),
            "--config",
            fixture("config.toml").to_str().unwrap(),
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let methods: Vec<_> = doc["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["trade_id"].as_str().unwrap(),
                m["method"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("t-gbpjpy", "heuristic"),
            ("t-gold", "client_id"),
            ("t-usdchf", "ticket")
        ]
    );
    // Sell GBPJPY expected at 142.450, filled at 142.506: 5.6 pips better for the trader.
    assert_eq!(doc["divergences"][0]["kind"], "entry_slippage");
    assert_eq!(doc["divergences"][0]["delta"], "-5.6");
    assert_eq!(doc["divergences"][1]["kind"], "sl_mismatch");
    assert_eq!(doc["divergences"].as_array().unwrap().len(), 2);
}

const ONE_POSITION: &str = r#"[{"ticket": 7, "identifier": 7, "type": 0, "symbol": "EURUSD",
  "volume": 0.1, "price_open": 1.08512, "sl": 0.0, "tp": 0.0, "magic": 0, "comment": "",
  "time": 1700000000}]"#;

#[test]
fn mirrored_books_exit_zero_and_the_table_says_so() {
    let trades = r#"[{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": "0.1",
        "entry_price": 1.08512, "ticket": "7"}]"#;
    let (_d, out) = reconcile_files(ONE_POSITION, trades, &["--format", "table"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("no divergences"), "{}", out.stdout);
    assert!(
        out.stdout.contains("matched 1 of 1 trades"),
        "{}",
        out.stdout
    );
}

#[test]
fn decimals_are_read_exactly_from_numbers_and_strings() {
    // 1.0851199999999999 would be the f64 reading of a long literal; we keep every digit.
    let positions = r#"[{"ticket": 7, "type": 0, "symbol": "EURUSD", "volume": 0.1,
        "price_open": 1.085120000000000001, "time": 1700000000}]"#;
    let trades = r#"[{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": "0.1",
        "entry_price": "1.08440", "ticket": 7}]"#;
    let (_d, out) = reconcile_files(positions, trades, &["--format", "json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["divergences"][0]["actual"], "1.085120000000000001");
    assert_eq!(doc["divergences"][0]["expected"], "1.08440");
    assert_eq!(doc["divergences"][0]["delta"], "7.2");
}

#[test]
fn a_symbols_file_supplies_pip_sizes() {
    let positions = r#"[{"id": "9", "type": "POSITION_TYPE_BUY", "symbol": "US30",
        "openPrice": 39012, "volume": 1, "time": "2024-01-02T03:04:05Z"}]"#;
    let trades = r#"[{"id": "a", "symbol": "US30", "side": "buy", "volume": 1,
        "entry_price": 39000, "ticket": 9}]"#;
    let (dir, out) = reconcile_files(positions, trades, &["--format", "json"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown pip size for US30"),
        "{}",
        out.stderr
    );
    std::fs::write(
        dir.path().join("symbols.json"),
        r#"{"US30": {"pip_size": "1"}}"#,
    )
    .unwrap();
    let out = run(
        &[
            "reconcile",
            "--positions",
            "positions.json",
            "--trades",
            "trades.json",
            "--symbols",
            "symbols.json",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["divergences"][0]["delta"], "12");
}

/// With a scope, a manual position is external: listed, not a divergence (exit 0); an
/// account's own scope raises it when it says so (exit 1).
#[test]
fn positions_outside_the_scope_are_listed_and_raised_only_where_configured() {
    let positions = r#"[
      {"ticket": 7, "identifier": 7, "type": 0, "symbol": "EURUSD", "volume": 0.1,
       "price_open": 1.08512, "sl": 0.0, "tp": 0.0, "magic": 4242, "comment": "", "time": 1700000000},
      {"ticket": 8, "identifier": 8, "type": 1, "symbol": "EURUSD", "volume": 0.1,
       "price_open": 1.08512, "sl": 0.0, "tp": 0.0, "magic": 0, "comment": "by hand", "time": 1700000000}
    ]"#;
    let trades = r#"[{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": "0.1",
      "entry_price": "1.08512"}]"#;
    let config = "[reconcile.scope]\nmagics = [4242]\n\
                  [reconcile.scope.accounts.strict]\nmagics = [4242]\nexternal = \"divergence\"\n";
    let (dir, out) = reconcile_files(positions, trades, &[]);
    assert_eq!(out.code, 1, "no scope: the manual position is unexpected");
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let args = |account: Option<&str>, format: &str| {
        let mut a = vec![
            "reconcile",
            "--positions",
            "positions.json",
            "--trades",
            "trades.json",
        ];
        a.extend(["--format", format]);
        a.extend(account.iter().flat_map(|id| ["--account", id]));
        run(&a, dir.path())
    };
    let out = args(None, "json");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["divergences"], json!([]));
    assert_eq!(
        doc["external"],
        json!([{"holding": "position", "ticket": 8, "symbol": "EURUSD", "side": "sell",
                "volume": "0.1", "magic": 0, "comment": "by hand"}])
    );
    let out = args(None, "table");
    assert!(out.stdout.contains("1 external"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("position 8 EURUSD sell 0.1 magic 0 comment \"by hand\""),
        "{}",
        out.stdout
    );
    let out = args(Some("strict"), "json");
    assert_eq!(out.code, 1, "{}", out.stderr);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["divergences"][0]["kind"], "unexpected_at_broker");
    assert_eq!(doc["divergences"][0]["ticket"], 8);
}

const TRADE_OK: &str =
    r#"{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": 0.1, "entry_price": 1.1}"#;

/// Each bad input: (positions, trades, words stderr must contain).
#[test]
fn bad_input_exits_2_naming_file_index_field_and_value() {
    let bad_trade = |t: &str| format!("[{TRADE_OK}, {t}]");
    let cases: Vec<(String, String, Vec<&str>)> = vec![
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": -0.1, "entry_price": 1.1}"#),
         vec!["trades.json", "element 1", "\"volume\"", "-0.1", "greater than zero"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": 0, "entry_price": 1.1}"#),
         vec!["trades.json", "element 1", "\"volume\"", "value 0"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": "NaN", "entry_price": 1.1}"#),
         vec!["element 1", "\"volume\"", "NaN", "not a finite number"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": 1, "entry_price": "Infinity"}"#),
         vec!["element 1", "\"entry_price\"", "Infinity"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "long", "volume": 1, "entry_price": 1.1}"#),
         vec!["element 1", "\"side\"", "long", "\"buy\" or \"sell\""]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": 1, "entry_price": 1.1}"#),
         vec!["trades.json", "element 1", "\"id\"", "duplicate trade id"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": 1}"#),
         vec!["element 1", "\"entry_price\"", "missing required field"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EURUSD", "side": "buy", "volume": 1, "entry_price": 1.1, "stop_loss": 1.0}"#),
         vec!["element 1", "\"stop_loss\"", "unknown field"]),
        (ONE_POSITION.into(), r#"{"id": "a"}"#.into(), vec!["trades.json", "JSON array"]),
        (ONE_POSITION.into(), format!("[{TRADE_OK}, {{\"id\": \"b\", \"sym"), vec!["trades.json", "invalid JSON", "EOF"]),
        (ONE_POSITION.into(), "".into(), vec!["trades.json", "empty input"]),
        (r#"[{"ticket": 1, "type": 7, "symbol": "EURUSD", "volume": 1, "price_open": 1.1, "time": 1}]"#.into(),
         format!("[{TRADE_OK}]"), vec!["positions.json", "element 0", "\"type\"", "7"]),
        (r#"[{"id": "1", "type": "POSITION_TYPE_BUY", "symbol": "EURUSD", "openPrice": NaN, "volume": 1}]"#.into(),
         format!("[{TRADE_OK}]"), vec!["positions.json", "invalid JSON"]),
        (r#"[{"id": "1", "type": "POSITION_TYPE_BUY", "symbol": "EURUSD", "openPrice": 1.1, "volume": 1, "time": "2024-01-01T00:00:00Z"},
             {"id": "1", "type": "POSITION_TYPE_SELL", "symbol": "EURUSD", "openPrice": 1.1, "volume": 1, "time": "2024-01-01T00:00:00Z"}]"#.into(),
         format!("[{TRADE_OK}]"), vec!["positions.json", "element 1", "\"id\"", "duplicate position ticket"]),
        (r#"[{"id": "1", "type": "POSITION_TYPE_BUY", "symbol": "XAUUSD", "openPrice": 2400, "volume": 1, "time": "2024-01-01T00:00:00Z"}]"#.into(),
         r#"[{"id": "g", "symbol": "XAUUSD", "side": "buy", "volume": 1, "entry_price": 2400}]"#.into(),
         vec!["unknown pip size for XAUUSD"]),
        (r#"[1, 2]"#.into(), format!("[{TRADE_OK}]"), vec!["positions.json", "element 0", "expected a JSON object"]),
        (ONE_POSITION.into(), bad_trade(r#"{"id": "b", "symbol": "EUR\u0000USD", "side": "buy", "volume": 1, "entry_price": 1.1}"#),
         vec!["trades.json", "element 1", "\"symbol\"", "EUR\\u0000USD", "control character U+0000"]),
    ];
    for (positions, trades, words) in cases {
        let (_d, out) = reconcile_files(&positions, &trades, &["--format", "json"]);
        assert_eq!(
            out.code, 2,
            "trades {trades}\npositions {positions}\nstderr {}",
            out.stderr
        );
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout on bad input: {}",
            out.stdout
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        for w in words {
            assert!(
                out.stderr.contains(w),
                "missing {w:?} in stderr: {}",
                out.stderr
            );
        }
    }
}

/// A trade of a vanishing volume matched to a 1-lot position, by ticket and by the
/// heuristic: refused on input (exit 2, naming file, element, field and value), never a
/// panic of the percentage arithmetic.
#[test]
fn a_vanishing_volume_is_bad_input_not_a_panic() {
    let position = r#"[{"ticket": 7, "type": 0, "symbol": "EURUSD", "volume": 1,
        "price_open": 1.08512, "time": 1700000000}]"#;
    for ticket in [", \"ticket\": 7", ""] {
        let trades = format!(
            r#"[{{"id": "a", "symbol": "EURUSD", "side": "buy", "volume": "1e-28",
            "entry_price": 1.08512{ticket}}}]"#
        );
        let (_d, out) = reconcile_files(position, &trades, &["--format", "json"]);
        assert_eq!(out.code, 2, "{trades}\nstderr {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        for w in [
            "trades.json",
            "element 0",
            "\"volume\"",
            "1e-28",
            "at least",
        ] {
            assert!(out.stderr.contains(w), "missing {w:?} in {}", out.stderr);
        }
    }
}

/// `--orders`, `--deals` and `--margin-mode` are read (in either format) and, as long as
/// the reconciliation does not use them, change nothing of its output; a bad file or mode
/// is bad input naming file, element, field and value.
#[test]
fn orders_deals_and_the_margin_mode_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let example = |name: &str| {
        fixture(&format!("examples/data/{name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let config = fixture("config.toml").to_str().unwrap().to_owned();
    for prefix in ["metaapi", "mt5"] {
        let (positions, trades) = (
            example(&format!("{prefix}-positions.json")),
            example(&format!("{prefix}-trades.json")),
        );
        let base = [
            "reconcile",
            "--positions",
            &positions,
            "--trades",
            &trades,
            "--config",
            &config,
            "--format",
            "json",
        ];
        let plain = run(&base, dir.path());
        let (orders, deals) = (
            example(&format!("{prefix}-orders.json")),
            example(&format!("{prefix}-deals.json")),
        );
        let with = |flags: &[&str]| {
            let mut args = base.to_vec();
            args.extend(flags);
            let out = run(&args, dir.path());
            assert!(out.code == 0 || out.code == 1, "{prefix}: {}", out.stderr);
            serde_json::from_str::<serde_json::Value>(&out.stdout).expect("json")
        };
        let kinds = |v: &serde_json::Value| -> Vec<String> {
            v["divergences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect()
        };
        let plain: serde_json::Value = serde_json::from_str(&plain.stdout).expect("json");
        let waiting = with(&["--orders", &orders]);
        if prefix == "metaapi" {
            // The example's unfilled trade waits on the example's pending order.
            assert!(kinds(&plain).contains(&"missing_at_broker".to_owned()));
            assert!(
                !kinds(&waiting).contains(&"missing_at_broker".to_owned()),
                "{waiting}"
            );
        } else {
            // Every trade is filled: orders nobody waits on change nothing.
            assert_eq!(waiting, plain);
        }
        // Deals of other positions change nothing; the margin mode is read.
        assert_eq!(with(&["--deals", &deals]), plain, "{prefix}");
        assert_eq!(with(&["--margin-mode", "hedging"]), plain, "{prefix}");
    }
    std::fs::write(
        dir.path().join("orders.json"),
        r#"[{"ticket": 1, "type": 12, "symbol": "EURUSD", "volume_current": 0.1, "time_setup": 1}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("deals.json"),
        r#"[{"id": "1", "type": "DEAL_TYPE_SELL", "entryType": "DEAL_ENTRY_OUT", "positionId": "7",
            "symbol": "EURUSD", "volume": 0.1, "price": "NaN", "time": "2020-04-17T06:12:44Z"}]"#,
    )
    .unwrap();
    for (flag, file, words) in [
        ("--orders", "orders.json", ["element 0", "\"type\"", "12"]),
        ("--deals", "deals.json", ["element 0", "\"price\"", "NaN"]),
    ] {
        let (_d, out) = reconcile_files(
            ONE_POSITION,
            &format!("[{TRADE_OK}]"),
            &[flag, dir.path().join(file).to_str().unwrap()],
        );
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains(file), "{}", out.stderr);
        for w in words {
            assert!(out.stderr.contains(w), "missing {w:?} in {}", out.stderr);
        }
    }
    let (_d, out) = reconcile_files(
        ONE_POSITION,
        &format!("[{TRADE_OK}]"),
        &["--margin-mode", "both"],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("hedging") && out.stderr.contains("netting"),
        "{}",
        out.stderr
    );
}

#[test]
fn usage_errors_and_missing_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["reconcile", "--positions", "nope.json"], dir.path());
    assert_eq!(out.code, 2);
    let out = run(
        &[
            "reconcile",
            "--positions",
            "nope.json",
            "--trades",
            "nope2.json",
        ],
        dir.path(),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("nope.json") && out.stderr.contains("cannot read"),
        "{}",
        out.stderr
    );
    std::fs::write(dir.path().join("bad.toml"), "[reconcile]\nsl_pipz = 3\n").unwrap();
    std::fs::write(dir.path().join("p.json"), "[]").unwrap();
    let out = run(
        &[
            "reconcile",
            "--positions",
            "p.json",
            "--trades",
            "p.json",
            "--config",
            "bad.toml",
        ],
        dir.path(),
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("bad.toml") && out.stderr.contains("sl_pipz"),
        "{}",
        out.stderr
    );
}

/// `run` on the simulated broker, stopped with SIGTERM: it finishes, flushes and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_gracefully_on_sigterm_with_everything_flushed() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("run.db");
    let config = format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n\
         [scheduler]\ninterval_ms = 200\nspread_slots = 2\n\
         [persistence]\nflush_interval_ms = 60000\nbatch_size = 100000\n\
         [broker.sim]\naccounts = 3\nseed = 5\nlatency_ms_min = 1\nlatency_ms_max = 5\n\
         [http]\nlisten = \"127.0.0.1:0\"\n",
        db_path.display()
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", "config.toml"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run starts");
    // Wait (bounded) until two sync rounds are logged as started, then ask it to stop.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("reconciler started"))
    {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => log.push(line),
            Err(_) => panic!("run did not start: {log:#?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(600));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    log.extend(rx.try_iter());
    assert_eq!(status.code(), Some(0), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("shutting down")), "{log:#?}");

    // Nothing was flushed on its own (a 60 s flush interval): everything came from the stop.
    let db = mt5_reconciler::store::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .unwrap();
    let sim =
        mt5_reconciler::broker::sim::SimBroker::new(&mt5_reconciler::broker::sim::SimConfig {
            accounts: 3,
            seed: 5,
            ..Default::default()
        });
    for id in sim.account_ids() {
        let stored: std::collections::BTreeSet<_> =
            mt5_reconciler::store::open_divergences(&db, &id)
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    (
                        r.divergence.kind,
                        r.divergence.trade_id,
                        r.divergence.ticket,
                    )
                })
                .collect();
        let injected: std::collections::BTreeSet<_> = sim
            .injected(&id)
            .into_iter()
            .map(|i| (i.kind, i.trade_id, i.ticket))
            .collect();
        assert_eq!(stored, injected, "{id}");
    }
}

#[test]
fn a_trade_whose_position_closed_is_explained_by_the_deals_file() {
    let deals = fixture("examples/data/metaapi-deals.json");
    // The bot still holds the trade of position 46648041, which its stop loss closed.
    let trade = r#"[{"id": "bot-7", "symbol": "AUDNZD", "side": "sell", "volume": "0.07",
        "entry_price": "1.05764", "ticket": 46648041}]"#;
    let (_d, out) = reconcile_files(
        "[]",
        trade,
        &["--deals", deals.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let d = &v["divergences"][0];
    assert_eq!(d["kind"], "closed_at_broker", "{v}");
    assert_eq!(d["ticket"], 46648041, "{v}");
    assert_eq!(d["close"]["reason"], "stop_loss", "{v}");
    assert_eq!(d["close"]["price"], "1.05964", "{v}");
    assert_eq!(d["close"]["profit"], "-8.37", "{v}");

    // Without the deals it is missing, as before.
    let (_d, out) = reconcile_files("[]", trade, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["divergences"][0]["kind"], "missing_at_broker", "{v}");
}
