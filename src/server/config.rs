//! The server's config file (TOML): agents with their tokens and teams, distribution pools,
//! the admin token, the CRM webhook and the limits. See `playbook.toml.example`.
//!
//! Must not: read anything but the file it is given, or hold runtime state.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::desk::{Desk, Presence};

/// The whole config. Every section is optional; an empty file is a valid config (no agents,
/// no webhook, default limits).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The token for `/api/admin/*`. Without one, admin calls are refused (SIGHUP still
    /// reloads).
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Where captured records are delivered.
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// Request and conversation limits.
    #[serde(default)]
    pub limits: Limits,
    /// The agents of the live-chat desk.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Distribution pools (round-robin record owners).
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Which web origins may call the visitor API and load `widget.js` from a script.
    #[serde(default)]
    pub cors: Cors,
}

/// Cross-origin access to the visitor API (`/api/conversations…`) and the widget files.
/// The agent and admin routes never answer cross-origin requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins such as `https://www.acme.example`, or `"*"` for any. The default is any:
    /// a visitor is authenticated by the bearer token the widget holds, not by cookies, so
    /// another origin gains nothing it could not get by calling the API directly.
    #[serde(default = "any_origin")]
    pub allowed_origins: Vec<String>,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            allowed_origins: any_origin(),
        }
    }
}

fn any_origin() -> Vec<String> {
    vec!["*".into()]
}

impl Cors {
    /// Whether every origin is allowed.
    pub fn any(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// The CRM webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The URL each record is POSTed to (plain `http://`; put a TLS proxy in front for
    /// `https://` CRMs).
    pub url: String,
    /// First retry delay in milliseconds; doubles per failed attempt.
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    /// The longest retry delay in milliseconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// How long one delivery attempt may take, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_retry_min() -> u64 {
    1_000
}
fn default_retry_max() -> u64 {
    300_000
}
fn default_timeout() -> u64 {
    10_000
}

/// Limits that keep one client from hurting the others.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The longest visitor or agent message, in characters (at most the engine's 4096).
    pub max_message_chars: usize,
    /// Visitor messages per conversation per minute.
    pub turns_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024,
            max_message_chars: 2_000,
            turns_per_minute: 60,
        }
    }
}

/// One agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name (as routes and records name them).
    pub name: String,
    /// The bearer token the agent's calls carry.
    pub token: String,
    /// Teams the agent belongs to.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Presence on a fresh start (later changes are stored and survive restarts).
    #[serde(default = "default_presence")]
    pub presence: Presence,
}

fn default_presence() -> Presence {
    Presence::Offline
}

/// One distribution pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name, as `owner pool "…"` names it.
    pub name: String,
    /// Its members (CRM users), in turn order.
    pub members: Vec<String>,
}

/// Why a config file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names = std::collections::BTreeSet::new();
        let mut tokens = std::collections::BTreeSet::new();
        for a in &c.agents {
            if a.name.trim().is_empty() {
                return Err("an agent has an empty name".into());
            }
            if !names.insert(a.name.as_str()) {
                return Err(format!("agent `{}` is listed twice", a.name));
            }
            if a.token.len() < 16 {
                return Err(format!(
                    "agent `{}` has a token shorter than 16 characters",
                    a.name
                ));
            }
            if !tokens.insert(a.token.as_str()) {
                return Err(format!(
                    "agent `{}` shares a token with another agent",
                    a.name
                ));
            }
        }
        if let Some(t) = &c.admin_token
            && t.len() < 16
        {
            return Err("admin_token is shorter than 16 characters".into());
        }
        for o in &c.cors.allowed_origins {
            let well_formed = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && !o.ends_with('/')
                    && o.bytes().all(|b| b.is_ascii_graphic()));
            if !well_formed {
                return Err(format!(
                    "cors.allowed_origins: `{o}` is not an origin such as `https://www.acme.example` (no path, no trailing slash) or `*`"
                ));
            }
        }
        if c.limits.max_message_chars > crate::engine::MAX_TEXT_CHARS {
            return Err(format!(
                "limits.max_message_chars may be at most {}",
                crate::engine::MAX_TEXT_CHARS
            ));
        }
        Ok(c)
    }

    /// The desk these agents, teams and pools make.
    pub fn desk(&self) -> Desk {
        let mut desk = Desk::new();
        let mut teams: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for a in &self.agents {
            desk.add_agent(&a.name, a.presence);
            for t in &a.teams {
                teams.entry(t).or_default().push(&a.name);
            }
        }
        for (team, members) in teams {
            // Members are agents just added: this cannot fail.
            let _ = desk.add_team(team, &members);
        }
        for p in &self.pools {
            let members: Vec<&str> = p.members.iter().map(String::as_str).collect();
            desk.add_pool(&p.name, &members);
        }
        desk
    }

    /// The agent whose token this is.
    pub fn agent_by_token(&self, token: &str) -> Option<&AgentConfig> {
        // Compare every token in full so timing says nothing about which prefix matched.
        self.agents.iter().fold(None, |found, a| {
            if ct_eq(&a.token, token) {
                Some(a)
            } else {
                found
            }
        })
    }
}

pub use crate::runtime::ct_eq;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../playbook.toml.example");
        let c = Config::parse(text).unwrap();
        assert!(!c.agents.is_empty());
        assert!(c.agent_by_token(&c.agents[0].token).is_some());
        assert!(c.agent_by_token("nope").is_none());
        let desk = c.desk();
        assert!(desk.presence(&c.agents[0].name).is_some());
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        assert!(Config::parse("").is_ok());
        let e = Config::parse("[[agents]]\nname = \"a\"\ntoken = \"short\"").unwrap_err();
        assert!(e.contains("shorter than 16"), "{e}");
        let e = Config::parse("colour = 1").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let two = "[[agents]]\nname = \"a\"\ntoken = \"0123456789abcdef\"\n[[agents]]\nname = \"a\"\ntoken = \"0123456789abcdeg\"";
        assert!(Config::parse(two).unwrap_err().contains("twice"));
        assert!(Config::parse("").unwrap().cors.any());
        let c = Config::parse("[cors]\nallowed_origins = [\"https://a.example\"]").unwrap();
        assert!(!c.cors.any());
        let e = Config::parse("[cors]\nallowed_origins = [\"https://a.example/\"]").unwrap_err();
        assert!(e.contains("not an origin"), "{e}");
    }
}
