//! The server's config file (TOML): agents with their tokens and teams, distribution pools,
//! the admin token, the CRM webhook and `[[crm]]` connectors ([`crate::crm::CrmConfig`]) and
//! the limits. See `playbook.toml.example`.
//!
//! Must not: read anything but the file it is given (and, in [`Config::load`], the
//! environment variables the webhook, the `[[crm]]` sections, `[identity]` and `[channels.*]` name for their
//! secrets), hold runtime state, or put a secret (a header value, a token, a URL's userinfo
//! and query) in an error or `Debug`.

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
    /// The generic JSON webhook records are delivered to (the same as a `[[crm]]` of kind
    /// `webhook` named `webhook`).
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// CRM connectors (Pipedrive, HubSpot, Zendesk Sell, webhooks) records are delivered to.
    #[serde(default)]
    pub crm: Vec<crate::crm::CrmConfig>,
    /// Request and conversation limits.
    #[serde(default)]
    pub limits: Limits,
    /// The live-chat desk's defaults: how chats are assigned and how many an agent takes.
    #[serde(default)]
    pub desk: DeskConfig,
    /// The agents of the live-chat desk.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Distribution pools (round-robin record owners).
    #[serde(default)]
    pub pools: Vec<PoolConfig>,
    /// Teams' availability hours (a team is made by its agents' `teams`; one listed here
    /// without hours is always open).
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
    /// Which web origins may call the visitor API and load `widget.js` from a script.
    #[serde(default)]
    pub cors: Cors,
    /// Identified visitors: the secret the embedding site signs who the visitor is with.
    #[serde(default)]
    pub identity: Option<Identity>,
    /// How the visitor widget looks (`GET /api/widget`).
    #[serde(default)]
    pub widget: WidgetLook,
    /// Canned answers agents insert in the inbox by typing `/` (`GET /api/agent/saved_replies`).
    #[serde(default)]
    pub saved_replies: Vec<SavedReply>,
    /// Flow analytics (`[analytics]`).
    #[serde(default)]
    pub analytics: Analytics,
    /// Social channels (`[channels.whatsapp]`, `[channels.messenger]`,
    /// `[channels.instagram]`); see [`super::channels`].
    #[serde(default)]
    pub channels: Channels,
}

/// The configured social channels.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// WhatsApp Cloud API.
    #[serde(default)]
    pub whatsapp: Option<WhatsApp>,
    /// Facebook Messenger (a page).
    #[serde(default)]
    pub messenger: Option<MetaPage>,
    /// Instagram messaging (the page linked to the Instagram account).
    #[serde(default)]
    pub instagram: Option<MetaPage>,
}

/// The Graph API version the default `base_url`s name.
pub const GRAPH_BASE_URL: &str = "https://graph.facebook.com/v21.0";

fn default_graph() -> String {
    GRAPH_BASE_URL.to_owned()
}

/// `[channels.whatsapp]`: a WhatsApp Business phone number on the Cloud API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsApp {
    /// The phone number's id at Meta (the path of `POST /{phone_number_id}/messages`).
    pub phone_number_id: String,
    /// The number visitors write to, digits only with country code (for `wa.me` links).
    #[serde(default)]
    pub number: Option<String>,
    /// The environment variable holding the access token (a system user's token).
    pub token_env: String,
    /// The environment variable holding the app secret that signs webhooks.
    pub app_secret_env: String,
    /// The token Meta echoes when the webhook is verified (chosen by you, not a secret
    /// that grants anything).
    pub verify_token: String,
    /// The playbook a contact who writes without a conversation starts.
    pub playbook: String,
    /// The Graph API root (a test points it at a fake).
    #[serde(default = "default_graph")]
    pub base_url: String,
    /// An approved message template sent when a message is due outside the 24-hour window
    /// (else such a message is held).
    #[serde(default)]
    pub template: Option<String>,
    /// The template's language code.
    #[serde(default = "default_template_language")]
    pub template_language: String,
    /// The token, read from `token_env` by [`Config::load`].
    #[serde(skip)]
    pub token: Option<Secret>,
    /// The app secret, read from `app_secret_env` by [`Config::load`].
    #[serde(skip)]
    pub app_secret: Option<Secret>,
}

fn default_template_language() -> String {
    "en_US".to_owned()
}

/// `[channels.messenger]` or `[channels.instagram]`: a Facebook page (for Instagram, the
/// page the professional account is linked to).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaPage {
    /// The page's id (for `m.me` links and `POST /{page_id}/messages`).
    pub page_id: String,
    /// The page's or Instagram account's username, for the widget's links (`m.me/<username>`,
    /// `ig.me/m/<username>`). Messenger falls back to the page id; Instagram is offered in
    /// the widget only with it.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the page access token.
    pub token_env: String,
    /// The environment variable holding the app secret that signs webhooks.
    pub app_secret_env: String,
    /// The token Meta echoes when the webhook is verified.
    pub verify_token: String,
    /// The playbook a contact who writes without a conversation starts.
    pub playbook: String,
    /// The Graph API root (a test points it at a fake).
    #[serde(default = "default_graph")]
    pub base_url: String,
    /// The token, read from `token_env` by [`Config::load`].
    #[serde(skip)]
    pub token: Option<Secret>,
    /// The app secret, read from `app_secret_env` by [`Config::load`].
    #[serde(skip)]
    pub app_secret: Option<Secret>,
}

/// Flow analytics settings (`[analytics]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analytics {
    /// Whether the server keeps analytics counters (on by default; off keeps none, and the
    /// stats show nothing from then on).
    pub enabled: bool,
}

impl Default for Analytics {
    fn default() -> Self {
        Analytics { enabled: true }
    }
}

/// The widget's look (`[widget]`): all optional, the widget's defaults otherwise.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetLook {
    /// Accent colour of the header, the launcher and the visitor's bubbles: `#rrggbb` (keep
    /// white text readable on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent: Option<String>,
    /// Which bottom corner the launcher and panel sit in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<WidgetPosition>,
    /// The header's title while the bot speaks (the bot's name without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// An image for the header: an `https://` URL or a path on this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// A bottom corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WidgetPosition {
    /// Bottom left.
    Left,
    /// Bottom right (the default).
    Right,
}

/// Identified visitors (`[identity]`): the site passes a token signed with a shared secret
/// (HMAC-SHA256), like Intercom's and HubSpot's identity verification; see
/// [`super::identity`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The environment variable holding the shared secret (the config file never holds it).
    pub secret_env: String,
    /// The secret, read from `secret_env` by [`Config::load`].
    #[serde(skip)]
    pub secret: Option<Secret>,
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
    /// The URL each record is POSTed to (`http://` or `https://`).
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
    /// A header sent with every delivery, for the CRM's secret (e.g. `Authorization`), so the
    /// secret need not be in the URL. Its value comes from [`Webhook::header_value_env`].
    #[serde(default)]
    pub header: Option<String>,
    /// The environment variable holding [`Webhook::header`]'s value (e.g. `CRM_TOKEN`): the
    /// config file, often committed, never holds the secret itself.
    #[serde(default)]
    pub header_value_env: Option<String>,
    /// The value read from `header_value_env` by [`Config::load`].
    #[serde(skip)]
    pub header_value: Option<Secret>,
}

pub use crate::secret::Secret;

impl Webhook {
    /// The URL as agents and logs may see it (no userinfo, query or fragment).
    pub fn shown_url(&self) -> String {
        super::redact::url(&self.url)
    }

    /// The same webhook as a `[[crm]]` connector named `webhook`.
    pub fn as_crm(&self) -> crate::crm::CrmConfig {
        crate::crm::CrmConfig {
            kind: crate::crm::Kind::Webhook,
            name: None,
            base_url: None,
            token_env: self.header_value_env.clone(),
            token: self
                .header_value
                .as_ref()
                .map(|s| crate::crm::Token(s.0.clone())),
            url: Some(self.url.clone()),
            header: self.header.clone(),
            owners: BTreeMap::new(),
            labels: BTreeMap::new(),
            sources: BTreeMap::new(),
            statuses: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            stages: BTreeMap::new(),
            fields: BTreeMap::new(),
            retry_min_ms: self.retry_min_ms,
            retry_max_ms: self.retry_max_ms,
            timeout_ms: self.timeout_ms,
            auth_recheck_ms: 600_000,
        }
    }
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
    /// New conversations (`POST /api/conversations`) per client address per minute: a token
    /// bucket of this size, refilled evenly; `0` turns the limit off.
    pub conversations_per_minute: u32,
    /// Milliseconds a client has to send a request's headers; also how long an idle
    /// keep-alive connection is kept.
    pub header_read_timeout_ms: u64,
    /// Milliseconds an HTTP connection may move no byte before it is closed (WebSockets are
    /// exempt: an open chat is idle by design).
    pub idle_timeout_ms: u64,
    /// Connections served at once (each costs a file descriptor; lowered to fit `ulimit -n`);
    /// more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 16 * 1024,
            max_message_chars: 2_000,
            turns_per_minute: 60,
            conversations_per_minute: 30,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
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
    /// The most open chats automatic assignment gives this agent (`[desk] capacity` when
    /// unset; no limit when neither is set).
    #[serde(default)]
    pub capacity: Option<u32>,
}

/// The desk's defaults (`[desk]`).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    /// How chats of routes without a team of their own setting are assigned: `manual`
    /// (agents pick up; the default), `round_robin` or `least_busy`.
    #[serde(default)]
    pub assignment: crate::desk::Assignment,
    /// The most open chats automatic assignment gives an agent (an agent's own `capacity`
    /// wins); no limit when unset.
    #[serde(default)]
    pub capacity: Option<u32>,
}

fn default_presence() -> Presence {
    Presence::Offline
}

/// A team's settings: availability `hours = ["mon-fri 09:00-17:00"]` in `timezone`, not on
/// `closed` dates (see [`crate::desk::hours`]), and how its chats are assigned.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The team, as agents' `teams` and `route team "…"` name it.
    pub name: String,
    /// An IANA time zone (`Europe/Berlin`); the hours are wall-clock times there. Required
    /// with `hours`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Weekly opening times: `DAYS HH:MM-HH:MM`. Without any, the team is always open.
    #[serde(default)]
    pub hours: Vec<String>,
    /// How the team's chats are assigned (`[desk] assignment` when unset).
    #[serde(default)]
    pub assignment: Option<crate::desk::Assignment>,
    /// Dates (`YYYY-MM-DD`) the team is closed all day.
    #[serde(default)]
    pub closed: Vec<String>,
    /// The three above, read by [`Config::parse`].
    #[serde(skip)]
    pub parsed: Option<crate::desk::Hours>,
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
        let invalid = |message: String| ConfigError::Invalid {
            path: path.display().to_string(),
            // Parse errors quote the offending line, which may hold the webhook URL.
            message: super::redact::text(&message),
        };
        let mut c = Config::parse(&text).map_err(invalid)?;
        if let Some(w) = &mut c.webhook
            && let Some(var) = &w.header_value_env
        {
            let value = Secret::from_env(var, true)
                .map_err(|e| invalid(format!("webhook.header_value_env names {e}")))?;
            if axum::http::HeaderValue::from_str(&value.0).is_err() {
                return Err(invalid(format!(
                    "the value of `{var}` cannot be sent in an HTTP header"
                )));
            }
            w.header_value = Some(value);
        }
        for crm in &mut c.crm {
            crm.read_token().map_err(invalid)?;
        }
        if let Some(id) = &mut c.identity {
            let var = &id.secret_env;
            let value = Secret::from_env(var, true)
                .map_err(|e| invalid(format!("identity.secret_env names {e}")))?;
            if value.0.len() < 16 {
                return Err(invalid(format!(
                    "the identity secret in `{var}` is shorter than 16 bytes"
                )));
            }
            id.secret = Some(value);
        }
        let read = |section: &str, key: &str, var: &str| -> Result<Secret, ConfigError> {
            Secret::from_env(var, false)
                .map_err(|e| invalid(format!("channels.{section}.{key} names {e}")))
        };
        if let Some(w) = &mut c.channels.whatsapp {
            w.token = Some(read("whatsapp", "token_env", &w.token_env)?);
            w.app_secret = Some(read("whatsapp", "app_secret_env", &w.app_secret_env)?);
        }
        for (name, page) in [
            ("messenger", &mut c.channels.messenger),
            ("instagram", &mut c.channels.instagram),
        ] {
            if let Some(p) = page {
                p.token = Some(read(name, "token_env", &p.token_env)?);
                p.app_secret = Some(read(name, "app_secret_env", &p.app_secret_env)?);
            }
        }
        Ok(c)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        let ch = &c.channels;
        let urls = [
            ("whatsapp", ch.whatsapp.as_ref().map(|w| &w.base_url)),
            ("messenger", ch.messenger.as_ref().map(|p| &p.base_url)),
            ("instagram", ch.instagram.as_ref().map(|p| &p.base_url)),
        ];
        for (name, url) in urls {
            if let Some(url) = url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(format!("channels.{name}.base_url is not an http(s) URL"));
            }
        }
        let mut teams = std::collections::BTreeSet::new();
        for t in &mut c.teams {
            if !teams.insert(t.name.clone()) {
                return Err(format!("team `{}` is listed twice", t.name));
            }
            match (&t.timezone, t.hours.is_empty()) {
                (_, true) if !t.closed.is_empty() => {
                    return Err(format!(
                        "team `{}` has closed dates but no hours (add `hours` and `timezone`)",
                        t.name
                    ));
                }
                (_, true) => {}
                (None, false) => {
                    return Err(format!(
                        "team `{}` has hours but no timezone (add e.g. `timezone = \"Europe/Berlin\"`)",
                        t.name
                    ));
                }
                (Some(tz), false) => {
                    let hours = crate::desk::Hours::parse(tz, &t.hours, &t.closed)
                        .map_err(|e| format!("team `{}`: {e}", t.name))?;
                    t.parsed = Some(hours);
                }
            }
        }
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
        if let Some(w) = &c.webhook {
            match (&w.header, &w.header_value_env) {
                (None, None) => {}
                (Some(h), Some(_)) => {
                    if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                        return Err(format!("webhook.header: `{h}` is not a header name"));
                    }
                }
                _ => {
                    return Err(
                        "webhook.header and webhook.header_value_env go together: the header's name and the environment variable with its value".into(),
                    );
                }
            }
            if reqwest::Url::parse(&w.url).is_err() {
                return Err(format!(
                    "webhook.url `{}` is not a URL",
                    super::redact::url(&w.url)
                ));
            }
        }
        let mut crm_names = std::collections::BTreeSet::new();
        if c.webhook.is_some() {
            crm_names.insert("webhook".to_owned());
        }
        for crm in &c.crm {
            crm.check()?;
            if !crm_names.insert(crm.name().to_owned()) {
                return Err(format!(
                    "crm `{}` is listed twice (give one a `name`; `[webhook]` is named `webhook`)",
                    crm.name()
                ));
            }
        }
        if let Some(a) = &c.widget.accent {
            let hex =
                a.len() == 7 && a.starts_with('#') && a[1..].chars().all(|c| c.is_ascii_hexdigit());
            if !hex {
                return Err(format!(
                    "widget.accent: `{a}` is not a colour such as `#0f766e`"
                ));
            }
        }
        if let Some(u) = &c.widget.avatar {
            let ok = (u.starts_with("https://") || u.starts_with('/'))
                && !u.contains(['"', '\'', '<', '>', ' ']);
            if !ok {
                return Err(format!(
                    "widget.avatar: `{u}` is not an https:// URL or a path on this server"
                ));
            }
        }
        if c.widget
            .title
            .as_ref()
            .is_some_and(|t| t.chars().count() > 80)
        {
            return Err("widget.title is longer than 80 characters".into());
        }
        let l = &c.limits;
        if l.header_read_timeout_ms == 0 || l.idle_timeout_ms == 0 || l.max_connections == 0 {
            return Err(
                "limits.header_read_timeout_ms, idle_timeout_ms and max_connections must be above 0".into(),
            );
        }
        if c.limits.max_message_chars > crate::engine::MAX_TEXT_CHARS {
            return Err(format!(
                "limits.max_message_chars may be at most {}",
                crate::engine::MAX_TEXT_CHARS
            ));
        }
        check_saved_replies(&c.saved_replies, c.limits.max_message_chars)?;
        Ok(c)
    }

    /// The desk these agents, teams and pools make.
    pub fn desk(&self) -> Desk {
        let mut desk = Desk::new();
        let mut teams: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        desk.set_assignment(None, self.desk.assignment);
        for a in &self.agents {
            desk.add_agent(&a.name, a.presence);
            // The agent was just added: this cannot fail.
            let _ = desk.set_capacity(&a.name, a.capacity.or(self.desk.capacity));
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
        for t in &self.teams {
            if let Some(h) = &t.parsed {
                desk.set_hours(&t.name, h.clone());
            }
            if let Some(a) = t.assignment {
                desk.set_assignment(Some(&t.name), a);
            }
        }
        desk
    }

    /// Whether the config has a desk name a playbook refers to: a team some agent is in,
    /// an agent, a pool.
    pub fn has(&self, r: &crate::model::DeskRef<'_>) -> bool {
        use crate::model::DeskRef;
        match *r {
            DeskRef::Team(t) => self.agents.iter().any(|a| a.teams.iter().any(|x| x == t)),
            DeskRef::Agent(n) => self.agents.iter().any(|a| a.name == n),
            DeskRef::Pool(p) => self.pools.iter().any(|x| x.name == p),
        }
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

/// A saved reply (`[[saved_replies]]`): an agent types `/` and its `name` in the inbox's reply
/// box to insert its `text`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SavedReply {
    /// The shortcut, typed after `/`: letters, digits, `-` and `_` (e.g. `pricing`).
    pub name: String,
    /// What is inserted into the reply box (the agent may edit it before sending).
    pub text: String,
}

/// The longest saved reply shortcut, in characters.
const SAVED_REPLY_NAME_CHARS: usize = 40;

/// Saved replies need a shortcut an agent can type after `/` that names one reply only
/// (matched without case, as the inbox filters), and a text the reply box can send.
fn check_saved_replies(replies: &[SavedReply], max_chars: usize) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in replies.iter().enumerate() {
        let n = i + 1;
        if r.name.trim().is_empty() {
            return Err(format!(
                "saved_replies #{n} has an empty name (its shortcut)"
            ));
        }
        let typable = r.name.chars().count() <= SAVED_REPLY_NAME_CHARS
            && r.name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if !typable {
            return Err(format!(
                "saved reply `{}`: a name is up to {SAVED_REPLY_NAME_CHARS} letters, digits, `-` or `_` (typed after `/`, no spaces)",
                r.name
            ));
        }
        if !seen.insert(r.name.to_lowercase()) {
            return Err(format!(
                "saved reply `{}` is listed twice (names are matched without case)",
                r.name
            ));
        }
        if r.text.trim().is_empty() {
            return Err(format!("saved reply `{}` has an empty text", r.name));
        }
        if r.text.chars().count() > max_chars {
            return Err(format!(
                "saved reply `{}` is longer than limits.max_message_chars ({max_chars})",
                r.name
            ));
        }
    }
    Ok(())
}

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
        let e =
            Config::parse("[webhook]\nurl = \"http://crm.example/\"\nheader = \"Authorization\"")
                .unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let e = Config::parse("[webhook]\nurl = \"crm?api_token=s3cret\"").unwrap_err();
        assert!(e.contains("not a URL") && !e.contains("s3cret"), "{e}");
        let e = Config::parse("[limits]\nmax_connections = 0").unwrap_err();
        assert!(e.contains("above 0"), "{e}");
        let team = |tz: &str, hours: &str| {
            Config::parse(&format!(
                "[[teams]]\nname = \"Sales\"\ntimezone = \"{tz}\"\nhours = [\"{hours}\"]"
            ))
        };
        assert!(
            team("Europe/Lisbon", "mon-fri 08:30-18:00").unwrap().teams[0]
                .parsed
                .is_some()
        );
        let e = team("Europe/Atlantis", "mon 09:00-17:00").unwrap_err();
        assert!(e.contains("team `Sales`: unknown time zone"), "{e}");
        let e = team("UTC", "weekdays 9-5").unwrap_err();
        assert!(e.contains("DAYS HH:MM-HH:MM"), "{e}");
        let look = Config::parse(
            "[widget]\naccent = \"#0f766e\"\nposition = \"left\"\ntitle = \"Acme\"\navatar = \"/avatar.svg\"",
        )
        .unwrap();
        assert_eq!(look.widget.position, Some(WidgetPosition::Left));
        for (bad, why) in [
            ("accent = \"teal\"", "not a colour"),
            ("avatar = \"javascript:alert(1)\"", "not an https://"),
            (
                "avatar = \"https://a.example/x.png\\\" onerror=\"",
                "not an https://",
            ),
            ("position = \"top\"", "unknown variant"),
        ] {
            let e = Config::parse(&format!("[widget]\n{bad}")).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_webhook_secret_comes_from_the_environment_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        // `cargo test` sets CARGO_PKG_NAME, so no test changes the environment.
        let text = |var: &str| {
            format!(
                "[webhook]\nurl = \"http://crm.example/\"\nheader = \"X-Token\"\nheader_value_env = \"{var}\"\n"
            )
        };
        std::fs::write(&path, text("CARGO_PKG_NAME")).unwrap();
        let c = Config::load(&path).unwrap();
        let secret = c.webhook.as_ref().unwrap().header_value.as_ref().unwrap();
        assert_eq!(secret.0, env!("CARGO_PKG_NAME"));
        assert!(!format!("{c:?}").contains(&format!("\"{}\"", env!("CARGO_PKG_NAME"))));
        std::fs::write(&path, text("PLAYBOOK_TEST_NOT_SET_ANYWHERE")).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("is not set"), "{e}");
    }

    #[test]
    fn crm_sections_are_checked_and_read_their_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[webhook]\nurl = \"https://crm.example/hook\"\n\
             [[crm]]\nkind = \"pipedrive\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
             [crm.owners]\nsam = 12\ntia = \"13\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let p = &c.crm[0];
        assert_eq!(p.name(), "pipedrive");
        assert_eq!(p.base(), "https://api.pipedrive.com");
        assert_eq!(p.owners["sam"].0, "12");
        assert_eq!(p.token.as_ref().unwrap().0, env!("CARGO_PKG_NAME"));
        assert!(!format!("{c:?}").contains(&format!("\"{}\"", env!("CARGO_PKG_NAME"))));
        let connectors = super::super::outbox::connectors(&c);
        assert_eq!(connectors.len(), 2);
        assert_eq!(connectors[0].name(), "webhook");
        for (bad, why) in [
            ("[[crm]]\nkind = \"hubspot\"", "needs `token_env`"),
            ("[[crm]]\nkind = \"webhook\"", "needs `url`"),
            ("[[crm]]\nkind = \"salesforce\"", "unknown variant"),
            (
                "[[crm]]\nkind = \"hubspot\"\ntoken_env = \"X\"\nbase_url = \"ftp://x\"",
                "not an http(s) URL",
            ),
            (
                "[webhook]\nurl = \"http://a.example/\"\n[[crm]]\nkind = \"webhook\"\nurl = \"http://b.example/\"",
                "listed twice",
            ),
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        std::fs::write(
            &path,
            "[[crm]]\nkind = \"zendesk_sell\"\ntoken_env = \"PLAYBOOK_TEST_NOT_SET_ANYWHERE\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("is not set"), "{e}");
    }

    #[test]
    fn channel_sections_read_their_secrets_and_default_the_graph_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[channels.whatsapp]\nphone_number_id = \"1065\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
             app_secret_env = \"CARGO_PKG_NAME\"\nverify_token = \"v\"\nplaybook = \"demo\"\n\
             [channels.messenger]\npage_id = \"42\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
             app_secret_env = \"CARGO_PKG_NAME\"\nverify_token = \"v\"\nplaybook = \"demo\"\n\
             base_url = \"http://127.0.0.1:9/v21.0\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let w = c.channels.whatsapp.as_ref().unwrap();
        assert_eq!(w.base_url, GRAPH_BASE_URL);
        assert_eq!(w.token.as_ref().unwrap().0, env!("CARGO_PKG_NAME"));
        assert_eq!(w.app_secret.as_ref().unwrap().0, env!("CARGO_PKG_NAME"));
        let m = c.channels.messenger.as_ref().unwrap();
        assert_eq!(m.base_url, "http://127.0.0.1:9/v21.0");
        assert!(c.channels.instagram.is_none());
        assert!(!format!("{c:?}").contains(&format!("\"{}\"", env!("CARGO_PKG_NAME"))));
        for (bad, why) in [
            (
                "[channels.whatsapp]\nphone_number_id = \"1\"",
                "missing field",
            ),
            ("[channels.telegram]\npage_id = \"1\"", "unknown field"),
            (
                "[channels.instagram]\npage_id = \"1\"\ntoken_env = \"A\"\napp_secret_env = \"B\"\n\
                 verify_token = \"v\"\nplaybook = \"demo\"\nbase_url = \"ftp://x\"",
                "not an http(s) URL",
            ),
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        std::fs::write(
            &path,
            "[channels.messenger]\npage_id = \"42\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
             app_secret_env = \"PLAYBOOK_TEST_NOT_SET_ANYWHERE\"\nverify_token = \"v\"\n\
             playbook = \"demo\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("channels.messenger.app_secret_env"), "{e}");
    }

    #[test]
    fn assignment_and_capacity() {
        let c = Config::parse(
            "[desk]\nassignment = \"round_robin\"\ncapacity = 3\n\
             [[agents]]\nname = \"ana\"\ntoken = \"0123456789abcdef\"\nteams = [\"Sales\"]\npresence = \"online\"\ncapacity = 1\n\
             [[agents]]\nname = \"bob\"\ntoken = \"0123456789abcdeg\"\nteams = [\"Sales\"]\npresence = \"online\"\n\
             [[teams]]\nname = \"Sales\"\nassignment = \"least_busy\"",
        )
        .unwrap();
        let desk = c.desk();
        let sales = crate::model::Route {
            to: crate::model::RouteTarget::Team("Sales".into()),
            availability: crate::model::Availability::Available,
            assign: None,
        };
        assert_eq!(
            desk.assignment_of(&sales),
            crate::desk::Assignment::LeastBusy
        );
        assert_eq!(
            desk.assignment_of(&crate::model::Route::default()),
            crate::desk::Assignment::RoundRobin
        );
        assert!(desk.may_assign());
        let e = Config::parse("[[teams]]\nname = \"Sales\"\nhours = [\"mon 09:00-10:00\"]")
            .unwrap_err();
        assert!(e.contains("no timezone"), "{e}");
        let e =
            Config::parse("[[teams]]\nname = \"Sales\"\nclosed = [\"2026-12-24\"]").unwrap_err();
        assert!(e.contains("no hours"), "{e}");
        let e = Config::parse("[desk]\nassignment = \"random\"").unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
    }
}
