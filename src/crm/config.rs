//! `[[crm]]` sections: which CRM, where, the environment variable with its token, and the
//! maps from the names a playbook uses (agents, pool members, labels, sources, statuses,
//! pipelines, stages, custom fields) to the vendor's ids.
//!
//! Must not: read anything but the one environment variable a section names (in
//! [`CrmConfig::read_token`]), or show a token in `Debug` or an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// Which CRM a section speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Pipedrive (API v2; leads and notes on v1, which Pipedrive still supports for them).
    Pipedrive,
    /// HubSpot (CRM API v3).
    Hubspot,
    /// Zendesk Sell (Core API v2).
    ZendeskSell,
    /// The generic JSON webhook of earlier releases.
    Webhook,
}

impl Kind {
    /// The name in the config (and the default connector name).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pipedrive => "pipedrive",
            Kind::Hubspot => "hubspot",
            Kind::ZendeskSell => "zendesk_sell",
            Kind::Webhook => "webhook",
        }
    }

    /// The vendor's API root, without a trailing slash.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            // https://developers.pipedrive.com/docs/api/v2 — `api.pipedrive.com` routes any
            // company's token; a company domain (`acme.pipedrive.com`) works as base_url too.
            // Paths carry their version (`/api/v2/…`, `/api/v1/…`).
            Kind::Pipedrive => Some("https://api.pipedrive.com"),
            // https://developers.hubspot.com/docs/api/crm/understanding-the-crm
            Kind::Hubspot => Some("https://api.hubapi.com"),
            // https://developer.zendesk.com/api-reference/sales-crm/introduction/
            Kind::ZendeskSell => Some("https://api.getbase.com"),
            Kind::Webhook => None,
        }
    }
}

/// A CRM token: the crate's one secret type.
pub use crate::secret::Secret as Token;

/// One `[[crm]]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmConfig {
    /// Which CRM.
    pub kind: Kind,
    /// The connector's name in logs, errors and the step table (default: the kind). Two
    /// sections of one kind need different names.
    #[serde(default)]
    pub name: Option<String>,
    /// The API root (default: the vendor's; for tests, proxies, regional data centres).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the API token (required for the vendors).
    #[serde(default)]
    pub token_env: Option<String>,
    /// The token, read from `token_env` by [`CrmConfig::read_token`].
    #[serde(skip)]
    pub token: Option<Token>,
    /// Webhook only: the URL each record is POSTed to (`http://` or `https://`).
    #[serde(default)]
    pub url: Option<String>,
    /// Webhook only: a header for the receiver's secret (its value from `token_env`).
    #[serde(default)]
    pub header: Option<String>,
    /// Playbook user names (agents, pool members, `owner user`) → vendor user ids.
    #[serde(default)]
    pub owners: BTreeMap<String, VendorId>,
    /// Label names → vendor label ids (Pipedrive lead label UUIDs, deal label ids).
    #[serde(default)]
    pub labels: BTreeMap<String, VendorId>,
    /// Source names (`Chatbot`, `Live chat`, a playbook's `source`) → vendor source ids.
    #[serde(default)]
    pub sources: BTreeMap<String, VendorId>,
    /// Status names (`New`, `Open`, …) → the vendor's value.
    #[serde(default)]
    pub statuses: BTreeMap<String, VendorId>,
    /// Pipeline names → vendor pipeline ids.
    #[serde(default)]
    pub pipelines: BTreeMap<String, VendorId>,
    /// Stage names (or `Pipeline/Stage`) → vendor stage ids.
    #[serde(default)]
    pub stages: BTreeMap<String, VendorId>,
    /// Custom field names (a capture card's `field "…"`) → the vendor's field key. Fields
    /// without an entry are written into the record's note instead.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// First retry delay in milliseconds; doubles per failed attempt.
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    /// The longest retry delay in milliseconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// How long one request may take, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// How long a connector stays paused after the CRM refused its token (401/403) before
    /// it checks again, in milliseconds (a restart or reload checks at once).
    #[serde(default = "default_auth_recheck")]
    pub auth_recheck_ms: u64,
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
fn default_auth_recheck() -> u64 {
    600_000
}

/// A vendor id as written in the config: a number (`12`) or a string (`"qualifiedtobuy"`,
/// a UUID); kept as text and sent as the vendor expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorId(pub String);

impl<'de> Deserialize<'de> for VendorId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        Ok(VendorId(match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Text(s) => s,
        }))
    }
}

impl CrmConfig {
    /// The connector's name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.name())
    }

    /// The API root or webhook URL in use.
    pub fn base(&self) -> String {
        let base = match self.kind {
            Kind::Webhook => self.url.clone().unwrap_or_default(),
            k => self
                .base_url
                .clone()
                .or_else(|| k.default_base_url().map(str::to_owned))
                .unwrap_or_default(),
        };
        base.trim_end_matches('/').to_owned()
    }

    /// Checks a section on its own; says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let name = self.name();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "crm name `{name}`: use letters, digits, `_` or `-`"
            ));
        }
        match self.kind {
            Kind::Webhook => {
                if self.url.is_none() {
                    return Err(format!("crm `{name}` (webhook) needs `url`"));
                }
                if self.header.is_some() != self.token_env.is_some() {
                    return Err(format!(
                        "crm `{name}`: `header` and `token_env` go together (the header's name and the environment variable with its value)"
                    ));
                }
                if let Some(h) = &self.header
                    && reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err()
                {
                    return Err(format!("crm `{name}`: `{h}` is not a header name"));
                }
            }
            _ => {
                if self.url.is_some() || self.header.is_some() {
                    return Err(format!(
                        "crm `{name}`: `url` and `header` are for webhooks; a vendor takes `base_url`"
                    ));
                }
                if self.token_env.is_none() {
                    return Err(format!(
                        "crm `{name}` needs `token_env`, the environment variable with its API token"
                    ));
                }
            }
        }
        let base = self.base();
        match reqwest::Url::parse(&base) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
            _ => Err(format!(
                "crm `{name}`: `{}` is not an http(s) URL",
                crate::server::redact::url(&base)
            )),
        }
    }

    /// Reads the token from `token_env`; an error names the variable, never a value.
    pub fn read_token(&mut self) -> Result<(), String> {
        let Some(var) = &self.token_env else {
            return Ok(());
        };
        let value = Token::from_env(var, true)
            .map_err(|e| format!("crm `{}`: token_env names {e}", self.name()))?;
        if reqwest::header::HeaderValue::from_str(&value.0).is_err() {
            return Err(format!(
                "the value of `{var}` cannot be sent in an HTTP header"
            ));
        }
        self.token = Some(value);
        Ok(())
    }
}
