//! `[ha]`: several instances on one PostgreSQL database sharing the accounts by leases.

use std::time::Duration;

use serde::Deserialize;

/// Longest lease, in seconds.
pub const MAX_TTL_SECS: u64 = 300;
/// Shortest lease, in seconds.
pub const MIN_TTL_SECS: u64 = 3;
/// Longest time between two claims, in seconds.
pub const MAX_CLAIM_SECS: u64 = 300;
/// Longest instance id, in bytes.
pub const MAX_INSTANCE_ID_LEN: usize = 128;

/// `[ha]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaConfig {
    /// Whether accounts are shared with other instances through leases (PostgreSQL only).
    pub enabled: bool,
    /// This instance's id, unique among the instances (default: host name, process id and
    /// a random suffix).
    pub instance_id: Option<String>,
    /// How long a lease lasts without renewal, in seconds (from [`MIN_TTL_SECS`] to
    /// [`MAX_TTL_SECS`]).
    pub ttl_secs: u64,
    /// Time between two renewals, in seconds; at most a third of `ttl_secs`.
    pub renew_secs: u64,
    /// Time between two claims of free or expired leases, in seconds (with jitter).
    pub claim_secs: u64,
}

impl Default for HaConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            instance_id: None,
            ttl_secs: 15,
            renew_secs: 5,
            claim_secs: 5,
        }
    }
}

impl HaConfig {
    /// Invalid values, each with its key and value.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&self.ttl_secs) {
            out.push(format!(
                "ha.ttl_secs = {}: must be from {MIN_TTL_SECS} to {MAX_TTL_SECS}",
                self.ttl_secs
            ));
        }
        if self.renew_secs == 0 || self.renew_secs.saturating_mul(3) > self.ttl_secs {
            out.push(format!(
                "ha.renew_secs = {}: must be at least 1 and at most a third of ha.ttl_secs = {} \
                 (renew_secs * 3 <= ttl_secs)",
                self.renew_secs, self.ttl_secs
            ));
        }
        if !(1..=MAX_CLAIM_SECS).contains(&self.claim_secs) {
            out.push(format!(
                "ha.claim_secs = {}: must be from 1 to {MAX_CLAIM_SECS}",
                self.claim_secs
            ));
        }
        if let Some(id) = &self.instance_id {
            let bad = id.is_empty()
                || id.len() > MAX_INSTANCE_ID_LEN
                || id.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad {
                out.push(format!(
                    "ha.instance_id = {id:?}: must be 1 to {MAX_INSTANCE_ID_LEN} bytes \
                     without spaces or control characters"
                ));
            }
        }
        out
    }

    /// The lease's lifetime.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    /// Time between renewals.
    pub fn renew(&self) -> Duration {
        Duration::from_secs(self.renew_secs)
    }

    /// Time between claims (before jitter).
    pub fn claim(&self) -> Duration {
        Duration::from_secs(self.claim_secs)
    }

    /// How long before the lease's expiry this instance stops trusting it: a fifth of the
    /// TTL, so a renewal that comes late, a slow statement or a slightly fast clock of this
    /// machine never leaves it acting on an expired lease.
    pub fn margin(&self) -> Duration {
        self.ttl() / 5
    }

    /// The configured instance id, or one made of the host name, the process id and a
    /// random suffix.
    pub fn resolved_instance_id(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!("{host}-{}-{:06x}", std::process::id(), nanos & 0xff_ffff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounds_name_key_and_value() {
        assert!(HaConfig::default().problems().is_empty());
        let cases = [
            (
                HaConfig {
                    ttl_secs: 2,
                    renew_secs: 0,
                    ..HaConfig::default()
                },
                "ha.ttl_secs = 2",
            ),
            (
                HaConfig {
                    renew_secs: 6,
                    ..HaConfig::default()
                },
                "ha.renew_secs = 6",
            ),
            (
                HaConfig {
                    renew_secs: 0,
                    ..HaConfig::default()
                },
                "ha.renew_secs = 0",
            ),
            (
                HaConfig {
                    claim_secs: 0,
                    ..HaConfig::default()
                },
                "ha.claim_secs = 0",
            ),
            (
                HaConfig {
                    instance_id: Some("a b".into()),
                    ..HaConfig::default()
                },
                "ha.instance_id = \"a b\"",
            ),
        ];
        for (config, want) in cases {
            let problems = config.problems();
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want}: {problems:?}"
            );
        }
    }

    #[test]
    fn the_default_instance_id_names_the_process() {
        let id = HaConfig::default().resolved_instance_id();
        assert!(id.contains(&std::process::id().to_string()), "{id}");
        assert!(HaConfig::default().problems().is_empty());
    }
}
