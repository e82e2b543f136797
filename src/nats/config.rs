//! `[nats]`: where the NATS servers are, how to authenticate, the JetStream stream events
//! go out on, and (`[nats.trades]`) the durable consumer the bot's trade events come in
//! through. Secrets are never part of the configuration: only the names of the
//! environment variables (or the path of the creds file) that hold them.

use serde::Deserialize;

/// Attempts at most per event published.
pub const MAX_ATTEMPTS: u32 = 20;
/// Largest channel between the tree's events and the publisher.
pub const MAX_CHANNEL_CAPACITY: usize = 1_000_000;
/// Longest wait for one JetStream acknowledgement, in milliseconds.
pub const MAX_ACK_TIMEOUT_MS: u64 = 60_000;

/// `[nats]`. Off while `servers` is empty; every field has a default; unknown keys are
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server addresses: `host:port`, `nats://…` or `tls://…` (`tls://` requires TLS).
    /// Empty = NATS off.
    pub servers: Vec<String>,
    /// Name of the environment variable holding a token (token auth); empty = none.
    pub token_env: String,
    /// User name (user/password auth, with `password_env`); empty = none.
    pub user: String,
    /// Name of the environment variable holding the password of `user`.
    pub password_env: String,
    /// Path of a `.creds` file (JWT and NKey seed); empty = none.
    pub creds_file: String,
    /// Require TLS even for `nats://` addresses.
    pub tls_required: bool,
    /// PEM file of the CA that signed the servers' certificates (beside the system roots).
    pub ca_file: String,
    /// First tokens of every subject published: `<subject_prefix>.divergence.opened.<account>` ….
    pub subject_prefix: String,
    /// The JetStream stream that holds the events published.
    pub stream: String,
    /// Create `stream` (subjects `<subject_prefix>.>`, file storage) when it is missing;
    /// otherwise a missing stream is a start-up error.
    pub create_stream: bool,
    /// Events waiting for the publisher at most; more are dropped and counted.
    pub channel_capacity: usize,
    /// Attempts per event (publish and wait for the stream's acknowledgement).
    pub max_attempts: u32,
    /// How long one attempt waits for the acknowledgement, in milliseconds.
    pub ack_timeout_ms: u64,
    /// `[nats.trades]`: the bot's trade events.
    pub trades: TradesConsumerConfig,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            token_env: String::new(),
            user: String::new(),
            password_env: String::new(),
            creds_file: String::new(),
            tls_required: false,
            ca_file: String::new(),
            subject_prefix: "mt5r".into(),
            stream: "MT5R_EVENTS".into(),
            create_stream: false,
            channel_capacity: 10_000,
            max_attempts: 5,
            ack_timeout_ms: 5_000,
            trades: TradesConsumerConfig::default(),
        }
    }
}

/// `[nats.trades]`: a durable pull consumer of the bot's trade events. Off while `stream`
/// is empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradesConsumerConfig {
    /// The stream the bot publishes its trade events to (it must exist); empty = off.
    pub stream: String,
    /// Durable consumer name (created if missing, resumed if present).
    pub durable: String,
    /// Subject filter of the consumer, e.g. `bot.trades.>`.
    pub filter_subject: String,
    /// Deliveries of one message at most before the server gives it up (a write that
    /// keeps failing); poison messages are terminated at once instead.
    pub max_deliver: i64,
    /// Seconds the server waits for an acknowledgement before it redelivers.
    pub ack_wait_secs: u64,
}

impl Default for TradesConsumerConfig {
    fn default() -> Self {
        Self {
            stream: String::new(),
            durable: "mt5-reconciler".into(),
            filter_subject: "bot.trades.>".into(),
            max_deliver: 20,
            ack_wait_secs: 30,
        }
    }
}

impl NatsConfig {
    /// Whether NATS is configured at all.
    pub fn enabled(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Every value that cannot work, each named by its key (`nats.<key>`). Secrets are
    /// not read here: [`super::connect`] reads them at start-up.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            match s.parse::<async_nats::ServerAddr>() {
                Err(e) => out.push(format!("nats.servers[{i}] = {s:?}: {e}")),
                // Websockets are not built in.
                Ok(a) if !matches!(a.scheme(), "nats" | "tls") => out.push(format!(
                    "nats.servers[{i}] = {s:?}: must be host:port, nats://… or tls://…"
                )),
                Ok(a) if a.has_user_pass() => out.push(format!(
                    "nats.servers[{i}]: must not carry a user or password (use user and \
                     password_env)"
                )),
                Ok(_) => {}
            }
        }
        for (key, value) in [
            ("token_env", &self.token_env),
            ("password_env", &self.password_env),
        ] {
            if !value.is_empty() && !env_name(value) {
                out.push(format!(
                    "nats.{key} = {value:?}: expected the NAME of an environment variable \
                     (letters, digits, underscores), never the secret itself"
                ));
            }
        }
        if self.user.is_empty() != self.password_env.is_empty() {
            out.push("nats.user and nats.password_env: set both or neither".into());
        }
        let methods = [
            !self.token_env.is_empty(),
            !self.user.is_empty(),
            !self.creds_file.is_empty(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            out.push("nats: choose one of token_env, user/password_env and creds_file".into());
        }
        if !subject_tokens_ok(&self.subject_prefix) {
            out.push(format!(
                "nats.subject_prefix = {:?}: must be dot-separated non-empty tokens without \
                 white space, `*` or `>`",
                self.subject_prefix
            ));
        }
        if !stream_name_ok(&self.stream) {
            out.push(format!(
                "nats.stream = {:?}: a stream name is non-empty, without white space, `.`, \
                 `*`, `>`, `/` or `\\`",
                self.stream
            ));
        }
        if self.channel_capacity == 0 || self.channel_capacity > MAX_CHANNEL_CAPACITY {
            out.push(format!(
                "nats.channel_capacity = {}: must be between 1 and {MAX_CHANNEL_CAPACITY}",
                self.channel_capacity
            ));
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS {
            out.push(format!(
                "nats.max_attempts = {}: must be between 1 and {MAX_ATTEMPTS}",
                self.max_attempts
            ));
        }
        if self.ack_timeout_ms == 0 || self.ack_timeout_ms > MAX_ACK_TIMEOUT_MS {
            out.push(format!(
                "nats.ack_timeout_ms = {}: must be between 1 and {MAX_ACK_TIMEOUT_MS}",
                self.ack_timeout_ms
            ));
        }
        out.extend(self.trades.problems(self.enabled()));
        out
    }
}

impl TradesConsumerConfig {
    /// Whether the consumer is configured.
    pub fn enabled(&self) -> bool {
        !self.stream.is_empty()
    }

    fn problems(&self, nats_on: bool) -> Vec<String> {
        let mut out = Vec::new();
        if !self.enabled() {
            return out;
        }
        if !nats_on {
            out.push("nats.trades.stream: set, but nats.servers is empty".into());
        }
        if !stream_name_ok(&self.stream) {
            out.push(format!(
                "nats.trades.stream = {:?}: a stream name is non-empty, without white space, \
                 `.`, `*`, `>`, `/` or `\\`",
                self.stream
            ));
        }
        if !stream_name_ok(&self.durable) {
            out.push(format!(
                "nats.trades.durable = {:?}: a consumer name is non-empty, without white \
                 space, `.`, `*`, `>`, `/` or `\\`",
                self.durable
            ));
        }
        let filter_ok = !self.filter_subject.is_empty()
            && self.filter_subject.split('.').all(|t| {
                !t.is_empty()
                    && !t
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            });
        if !filter_ok {
            out.push(format!(
                "nats.trades.filter_subject = {:?}: must be dot-separated non-empty tokens \
                 without white space",
                self.filter_subject
            ));
        }
        if !(1..=1_000).contains(&self.max_deliver) {
            out.push(format!(
                "nats.trades.max_deliver = {}: must be between 1 and 1000",
                self.max_deliver
            ));
        }
        if !(1..=3_600).contains(&self.ack_wait_secs) {
            out.push(format!(
                "nats.trades.ack_wait_secs = {}: must be between 1 and 3600",
                self.ack_wait_secs
            ));
        }
        out
    }
}

fn env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Dot-separated tokens a literal subject can start with.
pub(crate) fn subject_tokens_ok(s: &str) -> bool {
    s.split('.').all(|t| {
        !t.is_empty()
            && !t
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"*>".contains(&b))
    })
}

fn stream_name_ok(s: &str) -> bool {
    !s.is_empty()
        && !s
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b".*>/\\".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_off_and_valid() {
        let c = NatsConfig::default();
        assert!(!c.enabled());
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[rstest::rstest]
    #[case(
        "servers = [\"127.0.0.1:42 22\"]",
        "nats.servers[0] = \"127.0.0.1:42 22\": "
    )]
    #[case("servers = [\"nats://[::1\"]", "nats.servers[0] = \"nats://[::1\": ")]
    #[case(
        "servers = [\"http://127.0.0.1:4222\"]",
        "nats.servers[0] = \"http://127.0.0.1:4222\": "
    )]
    #[case(
        "servers = [\"ws://127.0.0.1:4222\"]",
        "nats.servers[0] = \"ws://127.0.0.1:4222\": "
    )]
    #[case(
        "servers = [\"nats://u:pw@h:4222\"]",
        "nats.servers[0]: must not carry"
    )]
    #[case(
        "token_env = \"s3cr3t-value!\"",
        "nats.token_env = \"s3cr3t-value!\": "
    )]
    #[case("user = \"bob\"", "nats.user and nats.password_env")]
    #[case("token_env = \"T\"\ncreds_file = \"/x.creds\"", "choose one of")]
    #[case("subject_prefix = \"\"", "nats.subject_prefix = \"\": ")]
    #[case("subject_prefix = \"mt5r..x\"", "nats.subject_prefix = \"mt5r..x\": ")]
    #[case("subject_prefix = \"mt5r.>\"", "nats.subject_prefix = \"mt5r.>\": ")]
    #[case("stream = \"a.b\"", "nats.stream = \"a.b\": ")]
    #[case("channel_capacity = 0", "nats.channel_capacity = 0: ")]
    #[case("max_attempts = 21", "nats.max_attempts = 21: ")]
    #[case("ack_timeout_ms = 0", "nats.ack_timeout_ms = 0: ")]
    #[case(
        "[trades]\nstream = \"BOT\"",
        "nats.trades.stream: set, but nats.servers"
    )]
    fn settings_that_cannot_work_are_refused_with_their_path(
        #[case] setting: &str,
        #[case] expected: &str,
    ) {
        let c: NatsConfig = toml::from_str(setting).expect("parses");
        let p = c.problems().join("\n");
        assert!(p.contains(expected), "{expected:?} not in:\n{p}");
    }

    #[rstest::rstest]
    #[case("servers = [\"127.0.0.1:4222\", \"nats://n2.internal:4222\"]")]
    #[case("servers = [\"tls://nats.internal:4222\"]\nca_file = \"/etc/ca.pem\"")]
    #[case("servers = [\"[::1]:4222\"]\ntoken_env = \"NATS_TOKEN\"")]
    #[case("servers = [\"h:4222\"]\nuser = \"bob\"\npassword_env = \"NATS_PASSWORD\"")]
    #[case("servers = [\"h:4222\"]\ncreds_file = \"/etc/nats/mt5r.creds\"")]
    #[case("servers = [\"h:4222\"]\nsubject_prefix = \"ops.mt5r-eu_1\"")]
    #[case("servers = [\"h:4222\"]\n[trades]\nstream = \"BOT_TRADES\"")]
    fn usable_settings_are_accepted(#[case] setting: &str) {
        let c: NatsConfig = toml::from_str(setting).expect("parses");
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }
}
