//! The cluster of the failover proof: one fake MetaApi process with a generated fleet, the
//! fleet's accounts and matching trades imported through the CLI, and `run` processes
//! sharing them by leases, each in a directory of its own.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fake_metaapi::process::FakeProcess;
use fake_metaapi::{Fleet, Stats};

use crate::service_proc::{BIN, Service, command_bin};

/// Accounts every instance shares from the start.
pub const ACCOUNTS: usize = 3_000;
/// Accounts imported disabled and enabled for the breach (after the first [`ACCOUNTS`]).
pub const BREACHED: usize = 20;
/// Accounts whose bot holds one trade the broker has never seen (the first ones).
pub const DIVERGING: usize = 30;
/// Positions each account holds.
pub const POSITIONS: usize = 2;
/// Seconds between a breach alert and its close.
pub const ALERT_LEAD_SECS: u64 = 6;
/// The lease's lifetime, in seconds.
pub const TTL_SECS: u64 = 3;

const TOKEN: &str = "ha-proof-token";
const TOKEN_ENV: &str = "HA_PROOF_METAAPI_TOKEN";
const PREFIX: &str = "hp-";

/// The fake broker and the fleet it serves.
pub struct Broker {
    /// The generated accounts (the same the fake process generates).
    pub fleet: Fleet,
    fake: FakeProcess,
}

impl Broker {
    /// Starts the fake with every account of the proof.
    pub fn start() -> Broker {
        let n = ACCOUNTS + BREACHED;
        let fake = FakeProcess::spawn_fleet(PREFIX, n, POSITIONS, (5, 20), TOKEN)
            .expect("fake-metaapi starts");
        Broker {
            fleet: Fleet::new(PREFIX, n, POSITIONS),
            fake,
        }
    }

    /// The accounts shared from the start.
    pub fn shared(&self) -> Vec<String> {
        self.fleet.account_ids().take(ACCOUNTS).collect()
    }

    /// The accounts whose drawdown breaches once they are enabled.
    pub fn breached(&self) -> Vec<String> {
        self.fleet.account_ids().skip(ACCOUNTS).collect()
    }

    /// The accounts whose bot holds a trade the broker does not.
    pub fn diverging(&self) -> Vec<String> {
        self.fleet.account_ids().take(DIVERGING).collect()
    }

    /// The fake's counters.
    pub fn stats(&self) -> Stats {
        let (code, body) = raw_get(&self.fake.stats_url(), None);
        assert_eq!(code, 200, "{body}");
        Stats::from_json(&body).expect("fake stats")
    }

    /// The tickets `account` still holds at the broker.
    pub fn open_tickets(&self, account: &str) -> Vec<String> {
        let url = format!(
            "{}/users/current/accounts/{account}/positions",
            self.fake.base_url
        );
        let (code, body) = raw_get(&url, Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("positions");
        list.iter()
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Where the service processes keep their data: PostgreSQL, one schema.
#[derive(Clone)]
pub struct Database {
    /// `DATABASE_URL`.
    pub url: String,
    /// The schema of this run.
    pub schema: String,
}

impl Database {
    /// The URL a process named `app` connects with: this schema, and `app` as its
    /// `application_name` (what the stale-write probe compares with the lease's owner).
    fn url_for(&self, app: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options[search_path]={}&application_name={app}",
            self.url, self.schema
        )
    }
}

/// A copy of the binary under test in `dir` (`RECONCILER_TEST_BIN` names another build, e.g. a
/// release one): every process of one run is the same build, even when the binary is
/// rebuilt meanwhile.
pub fn copy_binary(dir: &Path) -> PathBuf {
    let bin =
        std::env::var_os("RECONCILER_TEST_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from);
    let copy = dir.join("mt5-reconciler");
    std::fs::copy(&bin, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", bin.display()));
    copy
}

/// Writes `accounts.jsonl` (the breached accounts disabled) and `trades.jsonl` in `dir`
/// and imports both; the schema is migrated by the first import.
pub fn import(bin: &Path, dir: &Path, db: &Database, broker: &Broker) {
    let breached: BTreeSet<String> = broker.breached().into_iter().collect();
    let diverging: BTreeSet<String> = broker.diverging().into_iter().collect();
    let mut accounts = String::new();
    let mut trades = String::new();
    for id in broker.fleet.account_ids() {
        let enabled = !breached.contains(&id);
        let _ = writeln!(
            accounts,
            r#"{{"id":"{id}","broker":"metaapi","enabled":{enabled}}}"#
        );
        let _ = writeln!(
            trades,
            r#"{{"account":"{id}","trades":{}}}"#,
            trades_of(&broker.fleet, diverging.contains(&id))
        );
    }
    std::fs::write(dir.join("accounts.jsonl"), accounts).expect("accounts file");
    std::fs::write(dir.join("trades.jsonl"), trades).expect("trades file");
    cli(bin, dir, db, &["accounts", "import", "accounts.jsonl"]);
    cli(bin, dir, db, &["trades", "import", "trades.jsonl"]);
}

/// Enables the breached accounts (an import of them, enabled).
pub fn enable_breached(bin: &Path, dir: &Path, db: &Database, broker: &Broker) {
    let mut lines = String::new();
    for id in broker.breached() {
        let _ = writeln!(lines, r#"{{"id":"{id}","broker":"metaapi"}}"#);
    }
    std::fs::write(dir.join("breached.jsonl"), lines).expect("breached file");
    cli(bin, dir, db, &["accounts", "import", "breached.jsonl"]);
}

fn cli(bin: &Path, dir: &Path, db: &Database, args: &[&str]) {
    let config = format!("[database]\nurl = \"{}\"\n", db.url_for("import"));
    std::fs::write(dir.join("cli.toml"), config).expect("cli config");
    let mut all = args.to_vec();
    all.extend(["--config", "cli.toml"]);
    let out = command_bin(bin, dir, &all, &[]);
    assert_eq!(out.code, 0, "{args:?}: {}\n{}", out.stdout, out.stderr);
}

/// The bot's trades of an account: one per fleet position, and with `extra` one more the
/// broker has never seen.
fn trades_of(fleet: &Fleet, extra: bool) -> String {
    let ghost = r#",{"id":"ghost","symbol":"EURUSD","side":"buy","volume":"0.3","entry_price":"1.08512","ticket":999000001}"#;
    format!(
        "[{}{}]",
        fleet.trades_json(),
        if extra { ghost } else { "" }
    )
}

/// The `run` config of instance `id`, its clock `offset_secs` off.
fn config(db: &Database, broker: &Broker, id: &str, offset_secs: i64) -> String {
    let breached = broker
        .breached()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[database]\nurl = \"{url}\"\n\
         [scheduler]\ninterval_ms = 4000\nspread_slots = 8\nmax_in_flight = 1000\n\
         sync_timeout_ms = 10000\naccounts_refresh_secs = 1\n\
         [broker]\nenabled = [\"metaapi\"]\n\
         [broker.metaapi]\nbase_url = \"{base}\"\ntoken_env = \"{TOKEN_ENV}\"\n\
         max_concurrent_requests = 256\n\
         [http]\nlisten = \"127.0.0.1:0\"\nmetrics_per_account = false\n\
         [guards]\nalert_lead_secs = {ALERT_LEAD_SECS}\nauto_close = [{breached}]\n\
         [[guards.drawdown]]\nname = \"proof-max-loss\"\nkind = \"max_loss\"\n\
         accounts = [{breached}]\ninitial_balance = 10000\nwarn = \"5%\"\nbreach = \"10%\"\n\
         [ha]\nenabled = true\ninstance_id = \"{id}\"\nttl_secs = {TTL_SECS}\n\
         renew_secs = 1\nclaim_secs = 1\n\
         [clock]\noffset_secs = {offset_secs}\n",
        url = db.url_for(id),
        base = broker.fake.base_url,
    )
}

/// Running instances by id, each in a directory of its own; every one is killed when
/// dropped.
pub struct Instances {
    bin: PathBuf,
    running: BTreeMap<String, (Service, tempfile::TempDir)>,
    /// The last reading of every status and when it was taken.
    read: RefCell<Option<(Instant, Statuses)>>,
}

/// Every instance's status by id, or which one did not answer and what it said.
pub type Statuses = Result<BTreeMap<String, serde_json::Value>, String>;

/// Statuses are read at most this often: a status of thousands of accounts costs its
/// instance, and the polls must not be the load.
const STATUS_EVERY: Duration = Duration::from_secs(2);

impl Instances {
    /// None yet; each will run `bin`.
    pub fn new(bin: PathBuf) -> Instances {
        Instances {
            bin,
            running: BTreeMap::new(),
            read: RefCell::new(None),
        }
    }

    /// Starts instance `id`, its clock `offset_secs` off.
    pub fn start(&mut self, db: &Database, broker: &Broker, id: &str, offset_secs: i64) {
        let dir = tempfile::tempdir().expect("instance dir");
        let config = config(db, broker, id, offset_secs);
        let service = Service::start_bin(&self.bin, dir.path(), &config, &[(TOKEN_ENV, TOKEN)]);
        self.running.insert(id.to_owned(), (service, dir));
        self.read.replace(None);
    }

    /// The running instance `id`.
    pub fn get(&self, id: &str) -> &Service {
        &self.running[id].0
    }

    /// The ids of the running instances.
    pub fn ids(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// `kill -9` of instance `id`.
    pub fn kill9(&mut self, id: &str) {
        let (service, _dir) = self.running.remove(id).expect("a running instance");
        service.kill9();
        self.read.replace(None);
    }

    /// Every instance's status (a reading at most [`STATUS_EVERY`] old).
    pub fn statuses(&self) -> Statuses {
        if let Some((at, read)) = &*self.read.borrow()
            && at.elapsed() < STATUS_EVERY
        {
            return read.clone();
        }
        let read = self.read_statuses();
        self.read.replace(Some((Instant::now(), read.clone())));
        read
    }

    fn read_statuses(&self) -> Statuses {
        let mut out = BTreeMap::new();
        for (id, (service, _)) in &self.running {
            let (code, body) = service.get("/api/status", None);
            let status = match code {
                200 => serde_json::from_str(&body).map_err(|e| format!("{id}: {e}"))?,
                _ => return Err(format!("{id} answered {code}: {body}")),
            };
            out.insert(id.clone(), status);
        }
        Ok(out)
    }
}

/// Accounts owned by each instance, as its status says.
pub fn owned(statuses: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, u64> {
    statuses
        .iter()
        .map(|(id, s)| (id.clone(), s["ha"]["owned_accounts"].as_u64().unwrap_or(0)))
        .collect()
}

/// Successful syncs per account, summed over the instances.
pub fn syncs(statuses: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in statuses.values() {
        for a in s["accounts"].as_array().into_iter().flatten() {
            if let (Some(id), Some(n)) = (a["id"].as_str(), a["syncs_ok"].as_u64()) {
                *out.entry(id.to_owned()).or_default() += n;
            }
        }
    }
    out
}

/// `GET url` (plain HTTP on loopback) with MetaApi's `auth-token` header when given.
fn raw_get(url: &str, token: Option<&str>) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("a plain http URL");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("auth-token: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\r\n"
    )
    .expect("request sent");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("response read");
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

/// The body of a chunked HTTP/1.1 answer.
fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
