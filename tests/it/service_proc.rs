//! Helpers for tests that run the binary: a `run` process with its JSON log lines and its
//! HTTP address, a one-shot command runner, and a tiny HTTP/1.1 client (no extra crate).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_mt5-reconciler");

/// Generous bound for a process to start or stop; only a hung process reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

/// What a one-shot command printed and returned.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` in `dir`, with extra environment variables.
pub fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    command_bin(Path::new(BIN), dir, args, env)
}

/// [`command`] with another copy of the binary.
pub fn command_bin(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A config file for a fast `run` on the simulated broker (3 accounts) in `dir`, with a
/// database file there; `http` holds the `[http]` keys (a free loopback port when empty).
pub fn fast_config(dir: &Path, http: &str) -> String {
    let http = if http.is_empty() {
        "listen = \"127.0.0.1:0\"\n"
    } else {
        http
    };
    format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n\
         [scheduler]\ninterval_ms = 300\nspread_slots = 3\naccounts_refresh_secs = 1\n\
         [broker.sim]\naccounts = 3\nseed = 7\nlatency_ms_min = 1\nlatency_ms_max = 5\n\
         [http]\n{http}",
        dir.join("service.db").display()
    )
}

/// A running `mt5-reconciler run --log-format json`.
pub struct Service {
    child: Child,
    /// Every log line so far (standard error).
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
}

impl Service {
    /// Starts `run` in `dir` with `config` (written to `dir/config.toml`) and `env`, and
    /// waits until the HTTP server logs its address.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Service {
        Service::start_bin(Path::new(BIN), dir, config, env)
    }

    /// [`Service::start`] with another copy of the binary (a test that runs for minutes
    /// copies it first, so a rebuild meanwhile cannot mix versions in one run).
    pub fn start_bin(bin: &Path, dir: &Path, config: &str, env: &[(&str, &str)]) -> Service {
        std::fs::write(dir.join("config.toml"), config).expect("config written");
        let mut child = Command::new(bin)
            .args(["run", "--config", "config.toml", "--log-format", "json"])
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let deadline = Instant::now() + PATIENCE;
        let addr = loop {
            let found = logs.lock().expect("log lock").iter().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "http server listening")
                    .then(|| v["addr"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                break addr;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "run exited with {status}: {:#?}",
                    logs.lock().expect("log lock")
                );
            }
            assert!(
                Instant::now() < deadline,
                "run did not listen: {:#?}",
                logs.lock()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Service { child, logs, addr }
    }

    /// A loopback address reaching this server (also when it listens on 0.0.0.0).
    pub fn local(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.addr.port()))
    }

    /// `GET path` on this server.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        get(self.local(), path, token)
    }

    /// Polls `GET path` until `cond(status, body)` holds (bounded); returns the body.
    pub fn wait_for(
        &self,
        path: &str,
        token: Option<&str>,
        cond: impl Fn(u16, &str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (code, body) = self.get(path, token);
            if cond(code, &body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "gave up on {path}: {code} {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (a name `kill` knows: `STOP`, `CONT`, …) without waiting.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// `kill -9`: the process dies at once, freeing nothing; waits for the exit.
    pub fn kill9(mut self) {
        self.signal("KILL");
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "run did not die after SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the status and every log line.
    pub fn stop(mut self) -> (ExitStatus, Vec<String>) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "run did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the pipe; give it the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let logs = self.logs.lock().expect("log lock").clone();
        (status, logs)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`; returns the status and the body.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    request(addr, "GET", path, token)
}

/// `POST path` with an empty body, like [`get`].
pub fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    request(addr, "POST", path, token)
}

fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Length: 0\r\n{auth}\r\n"
    )
    .expect("request sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    (code, body.to_owned())
}
