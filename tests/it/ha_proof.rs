//! The failover proof: real `run` processes sharing 3,000 accounts of one fake MetaApi by
//! leases on PostgreSQL, through a crash (`kill -9`), a pause longer than the lease
//! (`SIGSTOP`), a guard's close falling due while its owner dies, and one instance whose
//! wall clock runs 60 s ahead the whole time.
//!
//! What must hold: every account owned by exactly one instance and syncing; no write for
//! an account committed by an instance that was not its lease owner at that moment (a
//! trigger records any); every position of a breached account closed once at the broker;
//! and the open divergences at the end equal the truth planted at the start.
//!
//! Phases run one after the other; waits poll with a generous bound that only guards
//! against a hang, never a timing assertion.

mod cluster;
mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::time::{Duration, Instant};

use cluster::{
    ACCOUNTS, Broker, Database, Instances, POSITIONS, TTL_SECS, copy_binary, enable_breached,
    import, owned, syncs,
};
use probe::Probe;

use crate::common;

/// Only a hung run reaches it.
const PATIENCE: Duration = Duration::from_secs(300);
/// The instance whose wall clock is ahead, and by how much.
const SKEWED: (&str, i64) = ("proof-c", 60);

/// Polls `check` until it holds; a hang gives up with what it said last.
fn wait(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    loop {
        match check() {
            Ok(()) => break,
            Err(last) => assert!(
                started.elapsed() < PATIENCE,
                "gave up: {what}; last seen: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    progress(&format!("{what}: {:.1} s", started.elapsed().as_secs_f64()));
}

/// A progress line on standard error (what a slow run is doing; never asserted).
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "ha_proof: {line}");
}

/// `Ok` when `cond`, else what was seen.
fn holds(cond: bool, seen: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(seen()) }
}

/// Every shared account has a lease owned by a running instance, and the instances' own
/// counts add up to the same number (none believes it owns what another does).
fn owned_once(instances: &Instances, probe: &Probe) -> Result<(), String> {
    let running: BTreeSet<String> = instances.ids().into_iter().collect();
    let owners = probe.owners();
    holds(
        owners.len() == ACCOUNTS && owners.values().all(|o| running.contains(o)),
        || {
            let mut by_owner: BTreeMap<&str, usize> = BTreeMap::new();
            for o in owners.values() {
                *by_owner.entry(o).or_default() += 1;
            }
            format!("lease rows name {by_owner:?}")
        },
    )?;
    let counts = owned(&instances.statuses()?);
    holds(counts.values().sum::<u64>() == ACCOUNTS as u64, || {
        format!("instances say they own {counts:?}")
    })
}

/// [`owned_once`], with the accounts spread evenly over the running instances.
fn settled(instances: &Instances, probe: &Probe) -> Result<(), String> {
    owned_once(instances, probe)?;
    let share = ACCOUNTS.div_ceil(instances.ids().len()) as u64;
    let counts = owned(&instances.statuses()?);
    holds(counts.values().all(|n| *n == share), || {
        format!("owned {counts:?}, a share is {share}")
    })
}

/// Per instance: accounts by breaker state, failed syncs, and the most frequent last error.
fn health(statuses: &BTreeMap<String, serde_json::Value>) -> String {
    let mut out = Vec::new();
    for (id, s) in statuses {
        let mut states: BTreeMap<String, usize> = BTreeMap::new();
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        let mut failed = 0;
        for a in s["accounts"].as_array().into_iter().flatten() {
            *states.entry(a["state"].to_string()).or_default() += 1;
            failed += a["syncs_failed"].as_u64().unwrap_or(0);
            if let Some(e) = a["last_error"].as_str() {
                *errors.entry(e.chars().take(120).collect()).or_default() += 1;
            }
        }
        let top = errors.into_iter().max_by_key(|(_, n)| *n);
        out.push(format!(
            "{id}: {states:?}, {failed} failed, top error {top:?}"
        ));
    }
    out.join("; ")
}

/// Accounts of `accounts` without a successful sync yet (summed over the instances).
fn unsynced(statuses: &BTreeMap<String, serde_json::Value>, accounts: &[String]) -> usize {
    let n = syncs(statuses);
    accounts
        .iter()
        .filter(|a| n.get(*a).is_none_or(|k| *k == 0))
        .count()
}

/// The accounts `instance` owns by the lease rows.
fn owned_by(probe: &Probe, instance: &str) -> Vec<String> {
    probe
        .owners()
        .into_iter()
        .filter(|(_, o)| o == instance)
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn three_processes_survive_a_crash_a_pause_and_a_close_during_failover_without_stale_writes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some((url, schema)) = runtime.block_on(common::postgres_schema()) else {
        return;
    };
    drop(runtime);
    let db = Database {
        url: url.clone(),
        schema: schema.clone(),
    };
    let mut failures: Vec<String> = Vec::new();

    // Phase 0: the fake, the imports (the truth planted), the probe, three instances.
    let broker = Broker::start();
    let work = tempfile::tempdir().expect("work dir");
    let bin = copy_binary(work.path());
    let started = Instant::now();
    import(&bin, work.path(), &db, &broker);
    progress(&format!(
        "imported in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    let probe = Probe::connect(&url, &schema);
    probe.install();
    let mut instances = Instances::new(bin.clone());
    for (id, offset) in [("proof-a", 0), ("proof-b", 0), SKEWED] {
        instances.start(&db, &broker, id, offset);
    }
    let shared = broker.shared();
    wait("every account owned once and synced", || {
        owned_once(&instances, &probe)?;
        let statuses = instances.statuses()?;
        let left = unsynced(&statuses, &shared);
        holds(left == 0, || {
            format!("{left} accounts not synced yet; {}", health(&statuses))
        })
    });

    // Phase 1: a crash. Its accounts move to the survivors and sync there.
    let crashed = owned_by(&probe, "proof-a");
    assert!(!crashed.is_empty(), "proof-a owned nothing");
    instances.kill9("proof-a");
    let mut base: Option<BTreeMap<String, u64>> = None;
    wait(
        "the survivors own and sync every account of proof-a",
        || {
            owned_once(&instances, &probe)?;
            let now = syncs(&instances.statuses()?);
            let base = base.get_or_insert_with(|| now.clone());
            let idle = crashed
                .iter()
                .filter(|a| now.get(*a).copied().unwrap_or(0) <= base.get(*a).copied().unwrap_or(0))
                .count();
            holds(idle == 0, || {
                format!("{idle} accounts of proof-a not synced again")
            })
        },
    );
    instances.start(&db, &broker, "proof-d", 0);
    wait("the share settles with the replacement", || {
        settled(&instances, &probe)
    });

    // Phase 2: a pause longer than the lease; the others take over; it wakes harmless.
    let paused = owned_by(&probe, "proof-b");
    assert!(!paused.is_empty(), "proof-b owned nothing");
    let stopped = Instant::now();
    instances.get("proof-b").signal("STOP");
    wait(
        "the others own every account of the paused instance",
        || {
            let left = owned_by(&probe, "proof-b").len();
            holds(left == 0, || format!("proof-b still owns {left}"))
        },
    );
    let pause = Duration::from_secs(3 * TTL_SECS);
    while stopped.elapsed() < pause {
        std::thread::sleep(Duration::from_millis(200));
    }
    instances.get("proof-b").signal("CONT");
    wait("the share settles with the woken instance", || {
        settled(&instances, &probe)
    });
    let stale = probe.stale_writes();
    if !stale.is_empty() {
        failures.push(format!(
            "after the pause, writes by an instance not owning the account's lease: {stale:?}"
        ));
    }

    // Phase 3: a breach whose close falls due while its owner dies.
    enable_breached(&bin, work.path(), &db, &broker);
    let breached = broker.breached();
    wait("a close alert for every breached account", || {
        let alerted: BTreeSet<String> = probe.close_alerts().into_iter().map(|(a, _)| a).collect();
        let left = breached.iter().filter(|a| !alerted.contains(*a)).count();
        holds(left == 0, || {
            format!("{left} breached accounts without one")
        })
    });
    let owners = probe.owners();
    let held = |i: &str| {
        breached
            .iter()
            .filter(|a| owners.get(*a).map(String::as_str) == Some(i))
            .count()
    };
    let victim = instances
        .ids()
        .into_iter()
        .filter(|i| i != SKEWED.0 && held(i) > 0)
        .max_by_key(|i| held(i))
        .unwrap_or_else(|| SKEWED.0.to_owned());
    progress(&format!(
        "kill -9 {victim}, owner of {} breached accounts",
        held(&victim)
    ));
    instances.kill9(&victim);
    let closes = (breached.len() * POSITIONS) as u64;
    wait("every position of the breached accounts closed", || {
        let done = broker.stats().closes;
        let open = breached
            .iter()
            .filter(|a| !broker.open_tickets(a).is_empty())
            .count();
        holds(done >= closes && open == 0, || {
            format!("{done} closes, {open} accounts with positions")
        })
    });
    wait(
        "one close alert per breached account, closed (none left mid-close)",
        || {
            let alerts = probe.close_alerts();
            let open: Vec<_> = alerts.iter().filter(|(_, s)| s != "closed").collect();
            holds(open.is_empty() && alerts.len() == breached.len(), || {
                format!("{} close alerts, not closed: {open:?}", alerts.len())
            })
        },
    );
    let stats = broker.stats();
    if (stats.closes, stats.repeated_closes) != (closes, 0) {
        failures.push(format!(
            "closes {} (want {closes}), repeated closes {} (want 0) after {victim} died",
            stats.closes, stats.repeated_closes
        ));
    }

    // Phase 5: the open divergences are the truth, each once.
    let mut truth: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in broker.diverging() {
        truth.insert(a, vec!["missing_at_broker".into()]);
    }
    for a in &breached {
        truth.insert(a.clone(), vec!["closed_by_service".into(); POSITIONS]);
    }
    let seen = || {
        let mut by_account: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (account, kind, _) in probe.open_divergences() {
            by_account.entry(account).or_default().push(kind);
        }
        by_account
    };
    let deadline = Instant::now() + PATIENCE;
    while seen() != truth && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let seen = seen();
    if seen != truth {
        let wrong: Vec<_> = seen
            .iter()
            .filter(|(a, k)| truth.get(*a) != Some(k))
            .take(10)
            .collect();
        let missing: Vec<_> = truth
            .keys()
            .filter(|a| !seen.contains_key(*a))
            .take(10)
            .collect();
        failures.push(format!(
            "open divergences differ from the truth: {} accounts with some, {} expected; \
             unexpected {wrong:?}; missing {missing:?}",
            seen.len(),
            truth.len()
        ));
    }
    let mut fingerprints = BTreeMap::new();
    for (account, _, fingerprint) in probe.open_divergences() {
        *fingerprints.entry((account, fingerprint)).or_insert(0) += 1;
    }
    let twice: Vec<_> = fingerprints.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        failures.push(format!("divergences open twice: {twice:?}"));
    }
    // Phase 4: the instance whose clock runs ahead took part in every phase above.
    let skewed = instances
        .get(SKEWED.0)
        .logs
        .lock()
        .expect("log lock")
        .clone();
    assert!(
        skewed
            .iter()
            .any(|l| l.contains("the wall clock is skewed by configuration")
                && l.contains(&format!("\"offset_secs\":{}", SKEWED.1))),
        "{} did not run with its clock {} s ahead",
        SKEWED.0,
        SKEWED.1
    );
    let stale = probe.stale_writes();
    if !stale.is_empty() {
        failures.push(format!(
            "at the end, writes by an instance not owning the account's lease: {stale:?}"
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
