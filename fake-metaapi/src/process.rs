//! The fake as a process of its own, for the load harness and for tests that run several
//! service processes against one broker.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::stats::STATS_PATH;

/// The first line the binary prints: this, then its base URL.
pub const LISTENING: &str = "fake-metaapi listening on ";

/// A running `fake-metaapi` process; killed when dropped.
#[derive(Debug)]
pub struct FakeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
}

impl FakeProcess {
    /// Builds the binary if needed (next to the running executable, in the same profile)
    /// and starts it with `args` (see `fake-metaapi --help`).
    pub fn spawn(args: &[String]) -> Result<Self, String> {
        let binary = binary()?;
        let mut child = Command::new(&binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("fake-metaapi: no stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let base_url = match (read, line.strip_prefix(LISTENING)) {
            (Ok(_), Some(url)) => url.trim().to_owned(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "fake-metaapi did not say where it listens (first line {line:?})"
                ));
            }
        };
        Ok(Self { child, base_url })
    }

    /// Starts it with a generated fleet: `accounts` accounts named `prefix` + six digits,
    /// `positions` positions each, answers after `latency_ms` (min, max), requests
    /// authenticated by `token`.
    pub fn spawn_fleet(
        prefix: &str,
        accounts: usize,
        positions: usize,
        latency_ms: (u64, u64),
        token: &str,
    ) -> Result<Self, String> {
        Self::spawn(&[
            "--prefix".into(),
            prefix.into(),
            "--accounts".into(),
            accounts.to_string(),
            "--positions".into(),
            positions.to_string(),
            "--latency-ms".into(),
            format!("{}-{}", latency_ms.0, latency_ms.1),
            "--token".into(),
            token.into(),
        ])
    }

    /// The process id (to signal or measure it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The URL of its counters (JSON, read with [`Stats::from_json`](crate::Stats::from_json)).
    pub fn stats_url(&self) -> String {
        format!("{}{STATS_PATH}", self.base_url)
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary beside the running executable (`target/<profile>/fake-metaapi`), built
/// first by cargo (a no-op when it is up to date). `FAKE_METAAPI_BIN` names another.
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FAKE_METAAPI_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let mut dir = exe.parent().ok_or("the executable has no folder")?;
    // Tests run from target/<profile>/deps, examples from target/<profile>/examples.
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir = dir
            .parent()
            .ok_or("the executable's folder has no parent")?;
    }
    build(dir)?;
    Ok(dir.join("fake-metaapi"))
}

/// `cargo build -p fake-metaapi` into the profile folder `dir` (target/<profile>).
fn build(dir: &Path) -> Result<(), String> {
    let profile = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the profile folder has no name")?;
    let target = dir.parent().ok_or("the profile folder has no parent")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "fake-metaapi",
        "--bin",
        "fake-metaapi",
    ])
    .arg("--profile")
    .arg(if profile == "debug" { "dev" } else { profile })
    .env("CARGO_TARGET_DIR", target)
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    let status = cmd
        .status()
        .map_err(|e| format!("running cargo to build fake-metaapi: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building fake-metaapi failed ({status})"))
    }
}
