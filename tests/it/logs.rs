//! Log output of `run`: JSON lines, `RUST_LOG` honoured, a span per sync with its account
//! and run id, and never a secret, even at the most verbose level.

use serde_json::Value as Json;

use crate::service_proc::{Service, fast_config};

#[test]
fn a_verbose_run_logs_sync_spans_with_run_ids_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "stand-in-secret-7Qe2pX9v";
    let config = fast_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\ntoken_env = \"IT_LOG_TOKEN\"\n",
    );
    let env = [("IT_LOG_TOKEN", secret), ("RUST_LOG", "trace")];
    let service = Service::start(dir.path(), &config, &env);

    // Use the secret the way clients do, right and wrong, then let a few syncs run.
    service.wait_for("/readyz", Some(secret), |code, _| code == 200);
    assert_eq!(
        service.get("/api/status", Some(&format!("{secret}x"))).0,
        401
    );
    assert_eq!(service.get("/metrics", Some(secret)).0, 200);
    service.wait_for("/api/status", Some(secret), |_, body| {
        body.contains("\"syncs_ok\":3")
    });
    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0));

    assert!(logs.len() > 20, "trace level is on: {} lines", logs.len());
    let leaks: Vec<&String> = logs.iter().filter(|l| l.contains(secret)).collect();
    assert!(leaks.is_empty(), "the token is in the logs: {leaks:#?}");

    let lines: Vec<Json> = logs
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let sync_lines: Vec<&Json> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "sync")
        .collect();
    assert!(!sync_lines.is_empty(), "no line inside a sync span");
    let mut run_ids = std::collections::BTreeSet::new();
    for l in &sync_lines {
        let span = &l["span"];
        assert!(
            span["account"]
                .as_str()
                .is_some_and(|a| a.starts_with("sim-")),
            "{l}"
        );
        let run_id = span["run_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no run_id: {l}"));
        run_ids.insert(run_id.to_owned());
    }
    assert!(
        run_ids.len() > 1,
        "each sync has its own run id: {run_ids:?}"
    );
}

#[test]
fn rust_log_filters_the_lines_by_level_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("RUST_LOG", "warn,mt5_reconciler::http=info")];
    let service = Service::start(dir.path(), &fast_config(dir.path(), ""), &env);
    service.wait_for("/readyz", None, |code, _| code == 200);
    let (status, logs) = service.stop();
    assert_eq!(status.code(), Some(0));
    let lines: Vec<Json> = logs
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "http server listening")
    );
    for l in &lines {
        let target = l["target"].as_str().unwrap_or("");
        let level = l["level"].as_str().unwrap_or("");
        let allowed =
            matches!(level, "WARN" | "ERROR") || target.starts_with("mt5_reconciler::http");
        assert!(allowed, "RUST_LOG should have filtered {l}");
    }
    assert!(
        !logs.iter().any(|l| l.contains("reconciler started")),
        "an info line of the tree"
    );
}
