//! The routes of `docs/api.md`: extract and check, turn the request into a [`Command`] for the
//! driver (which answers once the change is durable) or read through it, answer.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::view;
use super::{ApiError, AppState};
use crate::capture::{ManualDetails, ManualKind, Person};
use crate::desk::Presence;
use crate::engine::Channel;
use crate::runtime::Command;

/// The app.
pub fn router(state: AppState) -> Router {
    let limit = state.config().limits.max_body_bytes;
    let starts = super::ratelimit::Limiter::new(state.config().limits.conversations_per_minute);
    // The visitor API and the widget's files answer other origins (the widget is embedded on
    // customers' sites); the agent and admin routes below do not.
    let visitor = Router::new()
        .route(
            "/api/conversations",
            post(start).layer(axum::middleware::from_fn_with_state(
                starts,
                super::ratelimit::limit,
            )),
        )
        .route(
            "/api/conversations/{id}/messages",
            post(visitor_send).get(visitor_history),
        )
        .route("/api/conversations/{id}/ws", get(visitor_ws))
        .route(
            "/api/conversations/{id}/link",
            post(super::channels::link).delete(super::channels::unlink),
        )
        .route("/api/widget", get(widget_look))
        .merge(super::pages::widget_routes())
        .layer(cors(&state.config().cors));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .merge(visitor)
        .route("/api/agent/me", get(agent_me))
        .route("/api/agent/agents", get(agent_agents))
        .route("/api/agent/saved_replies", get(agent_saved_replies))
        .route("/api/agent/presence", put(agent_presence))
        .route("/api/agent/conversations", get(agent_list))
        .route("/api/agent/conversations/{id}", get(agent_detail))
        .route("/api/agent/conversations/{id}/assign", post(agent_assign))
        .route(
            "/api/agent/conversations/{id}/reassign",
            post(agent_reassign),
        )
        .route("/api/agent/conversations/{id}/messages", post(agent_send))
        .route("/api/agent/conversations/{id}/close", post(agent_close))
        .route("/api/agent/conversations/{id}/typing", post(agent_typing))
        .route("/api/agent/conversations/{id}/records", post(agent_record))
        .route("/api/agent/ws", get(agent_ws))
        .route("/api/records", get(records))
        .route("/api/playbooks", get(playbooks))
        .route("/api/playbooks/{name}/graph", get(graph))
        .route("/api/admin/reload", post(reload))
        .route("/api/admin/stats", get(super::analytics::admin_stats))
        // Meta's servers call these, not browsers: no CORS.
        .route(
            "/api/channels/{channel}/webhook",
            get(super::channels::verify).post(super::channels::deliver),
        )
        .merge(super::pages::routes())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(super::error::json_errors))
        .with_state(state)
}

/// The CORS layer of the visitor routes: the configured origins, the methods and headers the
/// widget uses, and no credentials (the visitor token travels in `Authorization`).
fn cors(config: &super::config::Cors) -> CorsLayer {
    use axum::http::{HeaderValue, Method, header};
    let origin = if config.any() {
        AllowOrigin::any()
    } else {
        // Checked when the config was parsed; an origin that still does not parse is skipped.
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(600))
}

/// `Json` whose rejection is an [`ApiError`] (400 with the reason, 413 when too large).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(ApiError::from)
    }
}

/// `Query` whose rejection is an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// `WebSocketUpgrade` whose rejection (a plain request to a WebSocket route) is an
/// [`ApiError`].
pub struct ApiWs(pub WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for ApiWs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(ApiWs)
            .map_err(ApiError::from)
    }
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The agent a request's bearer token names.
pub struct Agent(pub String);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("an agent token is required (Authorization: Bearer …)".into())
        })?;
        agent_by_token(state, token)
    }
}

fn agent_by_token(state: &AppState, token: &str) -> Result<Agent, ApiError> {
    state
        .config()
        .agent_by_token(token)
        .map(|a| Agent(a.name.clone()))
        .ok_or_else(|| ApiError::Unauthorized("wrong agent token".into()))
}

/// A visitor's bearer token.
pub struct VisitorToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for VisitorToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        bearer(&parts.headers)
            .map(|t| VisitorToken(t.to_owned()))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the visitor token is required (Authorization: Bearer …)".into(),
                )
            })
    }
}

const INDEX: &str = include_str!("../../web/index.html");

async fn index(State(state): State<AppState>) -> Html<String> {
    let list: String = playbook_list(&state)
        .iter()
        .map(|p| {
            let name = html_escape(p["name"].as_str().unwrap_or_default());
            let title = html_escape(p["title"].as_str().unwrap_or_default());
            format!(
                "<li><a href=\"/widget?playbook={name}\">{title}</a> (v{}) · <a href=\"/playbooks/{name}\">graph</a> · <a href=\"/playbooks/{name}/stats\">analytics</a></li>\n",
                p["version"]
            )
        })
        .collect();
    Html(INDEX.replace("<!--PLAYBOOKS-->", &list))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn default_channel() -> Channel {
    Channel::Web
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartReq {
    playbook: String,
    #[serde(default = "default_channel")]
    channel: Channel,
    #[serde(default)]
    page_url: Option<String>,
    /// Who the visitor is, signed by the site (see [`super::identity`]).
    #[serde(default)]
    identity: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<StartReq>,
) -> Result<Response, ApiError> {
    if req.page_url.as_ref().is_some_and(|u| u.len() > 2048) {
        return Err(ApiError::TooLarge(
            "page_url is longer than 2048 bytes".into(),
        ));
    }
    let id = format!("c_{}", &super::random_hex()?[..20]);
    let token = super::random_hex()?;
    // Only a genuine signature identifies: anything else starts an anonymous visitor.
    let secret = state
        .config()
        .identity
        .as_ref()
        .and_then(|i| i.secret.as_ref());
    let who = match (secret, &req.identity) {
        (Some(secret), Some(t)) => super::identity::verify(secret.0.as_bytes(), t)
            .inspect_err(|e| tracing::debug!(reason = %e, "a visitor identity was ignored"))
            .ok(),
        _ => None,
    };
    let identified = who.is_some();
    let who = who.unwrap_or_default();
    let playbook = req.playbook;
    let cmd = Command::Start {
        playbook: Some(playbook.clone()),
        channel: req.channel,
        page_url: req.page_url,
        contact_owner: who.owner,
        token: Some(token.clone()),
        visitor: who.visitor,
    };
    let out = state.driver().apply(&id, cmd).await?;
    let (status, messages) = messages_of(&out, &id);
    let language = state
        .catalog()
        .latest(&playbook)
        .and_then(|v| v.playbook.playbook.language.clone());
    let v = json!({"conversation": id, "token": token, "status": status, "messages": messages, "identified": identified, "language": language});
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitorReq {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    choice: Option<usize>,
    #[serde(default = "default_channel")]
    channel: Channel,
}

impl VisitorReq {
    /// The command, checked against the limits (buttons count from 1 in the API).
    fn command(self, max_chars: usize) -> Result<Command, ApiError> {
        match (self.text, self.choice) {
            (Some(text), None) => {
                check_len(&text, max_chars)?;
                Ok(Command::VisitorText {
                    text,
                    channel: self.channel,
                })
            }
            (None, Some(0)) => Err(ApiError::BadRequest("choices count from 1".into())),
            (None, Some(n)) => Ok(Command::VisitorChoice {
                index: n - 1,
                channel: self.channel,
            }),
            _ => Err(ApiError::BadRequest(
                "send exactly one of `text` and `choice`".into(),
            )),
        }
    }
}

fn check_len(text: &str, max: usize) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::TooLarge(format!(
            "the message is {n} characters long; the limit is {max}"
        )));
    }
    Ok(())
}

/// A conversation's new messages and its status after a change, from the change's outputs.
pub(super) fn messages_of(out: &crate::runtime::Outputs, id: &str) -> (&'static str, Vec<Value>) {
    let mut status = "waiting";
    let mut messages = Vec::new();
    for u in out.updates.iter().filter(|u| u.conversation == id) {
        status = view::status_name(u.phase);
        messages.extend(
            u.lines
                .iter()
                .enumerate()
                .map(|(i, l)| view::message_json(u.first_seq + i as u64, l)),
        );
    }
    (status, messages)
}

/// A visitor's command, with their token proven.
async fn visitor_cmd(
    state: &AppState,
    id: &str,
    token: &str,
    req: VisitorReq,
) -> Result<Value, ApiError> {
    let cmd = req.command(state.config().limits.max_message_chars)?;
    let out = state
        .driver()
        .apply_as(id, cmd, Some(token))
        .await
        .map_err(visitor_error)?;
    let (status, messages) = messages_of(&out, id);
    Ok(json!({"status": status, "messages": messages}))
}

/// A visitor is never told whether a conversation exists without its token.
fn visitor_error(e: crate::runtime::driver::DriverError) -> ApiError {
    match e {
        crate::runtime::driver::DriverError::Hub(
            crate::runtime::HubError::UnknownConversation(_),
        ) => unknown_visitor(),
        e => e.into(),
    }
}

fn unknown_visitor() -> ApiError {
    ApiError::Unauthorized("unknown conversation or wrong visitor token".into())
}

/// Reads a conversation for its visitor: `f` runs only when the token is right.
pub(super) async fn visitor_read<R: Send + 'static>(
    state: &AppState,
    id: &str,
    token: String,
    f: impl FnOnce(&crate::runtime::Hub, &str) -> R + Send + 'static,
) -> Result<R, ApiError> {
    let key = id.to_owned();
    state
        .driver()
        .read(Some(id), move |hub| {
            hub.token_matches(&key, &token).then(|| f(hub, &key))
        })
        .await?
        .ok_or_else(unknown_visitor)
}

async fn visitor_send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    VisitorToken(token): VisitorToken,
    ApiJson(req): ApiJson<VisitorReq>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(visitor_cmd(&state, &id, &token, req).await?))
}

#[derive(Deserialize)]
struct After {
    #[serde(default)]
    after: u64,
}

async fn visitor_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    VisitorToken(token): VisitorToken,
    ApiQuery(q): ApiQuery<After>,
) -> Result<Json<Value>, ApiError> {
    let after = q.after;
    let mut v = visitor_read(&state, &id, token, move |hub, id| {
        let (status, messages) = view::history(hub, id, after).unwrap_or(("ended", Vec::new()));
        json!({"status": status, "bot": view::bot_name(hub, id), "language": view::language(hub, id), "messages": messages})
    })
    .await?;
    if super::channels::any(&state) {
        v["linked"] = json!(super::channels::linked_channel(&state, &id).await?);
    }
    // Waiting for an agent: the place in line (1 is next).
    if v["status"] == "queued" {
        let line = state.queue().await?;
        v["queue_position"] = json!(line.iter().position(|x| *x == id).map(|i| i + 1));
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
struct TokenQuery {
    token: String,
}

async fn visitor_ws(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TokenQuery>,
    ApiWs(ws): ApiWs,
) -> Result<Response, ApiError> {
    let (status, lines) = visitor_read(&state, &id, q.token.clone(), |hub, id| {
        let status = view::history(hub, id, u64::MAX).map_or("ended", |h| h.0);
        (
            status,
            hub.transcript(id).map_or(0, |t| t.lines.len() as u64),
        )
    })
    .await?;
    let rx = state.subscribe_visitor(&id);
    state.visitor_seen(&id, lines);
    Ok(
        super::edge::lean_ws(ws, state.config().limits.max_body_bytes).on_upgrade(
            move |socket| async move {
                visitor_socket(&state, &id, &q.token, status, socket, rx).await;
                state.visitor_gone(&id);
            },
        ),
    )
}

async fn visitor_socket(
    state: &AppState,
    id: &str,
    token: &str,
    status: &str,
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<String>,
) {
    let hello = json!({"type": "status", "status": status}).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
    }
    // Its place in line, if it waits (pushed through the channel like every later change).
    if status == "queued" {
        state.push_positions().await;
    }
    loop {
        tokio::select! {
            pushed = rx.recv() => match pushed {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let note = json!({"type": "lagged", "message": "messages were skipped; fetch the history"}).to_string();
                    if socket.send(Message::Text(note.into())).await.is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let result = match serde_json::from_str::<VisitorReq>(&text) {
                    Ok(req) => visitor_cmd(state, id, token, req).await.map(drop),
                    Err(e) => Err(ApiError::BadRequest(format!("malformed JSON: {e}"))),
                };
                if let Err(e) = result {
                    let (_, code) = e.status_code();
                    let err = json!({"type": "error", "error": {"code": code, "message": e.to_string()}}).to_string();
                    if socket.send(Message::Text(err.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn agent_me(
    State(state): State<AppState>,
    Agent(name): Agent,
) -> Result<Json<Value>, ApiError> {
    let teams = state
        .config()
        .agents
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.teams.clone())
        .unwrap_or_default();
    let who = name.clone();
    let presence = state
        .driver()
        .read(None, move |hub| hub.desk().presence(&who))
        .await?;
    Ok(Json(
        json!({"name": name, "presence": presence, "teams": teams}),
    ))
}

/// Every agent of the config with their presence now, in config order (the inbox's reassign
/// picker offers the online ones).
async fn agent_agents(
    State(state): State<AppState>,
    Agent(_): Agent,
) -> Result<Json<Vec<Value>>, ApiError> {
    let agents: Vec<(String, Vec<String>)> = state
        .config()
        .agents
        .iter()
        .map(|a| (a.name.clone(), a.teams.clone()))
        .collect();
    let list = state
        .driver()
        .read(None, move |hub| {
            agents
                .into_iter()
                .map(|(name, teams)| {
                    json!({"name": name, "presence": hub.desk().presence(&name), "teams": teams})
                })
                .collect()
        })
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceReq {
    presence: Presence,
}

async fn agent_presence(
    State(state): State<AppState>,
    Agent(name): Agent,
    ApiJson(req): ApiJson<PresenceReq>,
) -> Result<Json<Value>, ApiError> {
    let cmd = Command::Presence {
        agent: name,
        presence: req.presence,
    };
    state.driver().apply("", cmd).await?;
    Ok(Json(json!({"presence": req.presence})))
}

#[derive(Deserialize)]
struct FolderQuery {
    #[serde(default = "unassigned")]
    folder: String,
}

fn unassigned() -> String {
    "unassigned".into()
}

/// `ok` when the server can reach its database; 503 otherwise (a load balancer takes the
/// replica out).
/// How the widget looks (`[widget]` in the config); `{}` for the defaults.
async fn widget_look(State(state): State<AppState>) -> Json<Value> {
    let mut v = serde_json::to_value(&state.config().widget).unwrap_or_else(|_| json!({}));
    // The social channels a visitor may continue on (the widget's channel menu), if any.
    let channels: Vec<Value> = super::channels::linkable(&state)
        .iter()
        .map(|ch| json!({"channel": ch.name(), "label": ch.channel().label()}))
        .collect();
    if !channels.is_empty() {
        v["channels"] = json!(channels);
    }
    Json(v)
}

async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.blocking(|s| s.ping()).await?;
    Ok("ok")
}

async fn agent_list(
    State(state): State<AppState>,
    Agent(name): Agent,
    ApiQuery(q): ApiQuery<FolderQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let rows = match q.folder.as_str() {
        // Read from the store, oldest first: it has every committed change, whichever replica
        // made it.
        "unassigned" | "mine" => {
            let agent = (q.folder == "mine").then_some(name);
            state
                .blocking(move |s| s.desk_queue(agent.as_deref(), 500))
                .await?
        }
        "closed" => {
            state
                .blocking(|s| s.desk_folder(crate::persist::DeskColumn::Closed, 200))
                .await?
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown folder `{other}`; use unassigned, mine or closed"
            )));
        }
    };
    // A row's variables are numbered; the engine of its playbook version names them.
    let versions: std::collections::BTreeSet<(String, i64)> = rows
        .iter()
        .map(|(row, _)| (row.playbook.clone(), row.version))
        .collect();
    let engines = state
        .driver()
        .read(None, move |hub| {
            versions
                .into_iter()
                .filter_map(|(n, v)| {
                    let engine = hub.engine(hub.playbook_id(&n, v)?)?;
                    Some(((n, v), std::sync::Arc::clone(engine)))
                })
                .collect::<std::collections::HashMap<_, _>>()
        })
        .await?;
    Ok(Json(
        rows.iter()
            .map(|(row, lines)| {
                let engine = engines.get(&(row.playbook.clone(), row.version));
                view::stored_summary(row, lines, engine.map(|e| &**e))
            })
            .collect(),
    ))
}

/// The config's saved replies, in config order, for the inbox's `/` shortcuts.
async fn agent_saved_replies(
    State(state): State<AppState>,
    Agent(_): Agent,
) -> Json<Vec<super::config::SavedReply>> {
    Json(state.config().saved_replies.clone())
}

async fn agent_detail(
    State(state): State<AppState>,
    Agent(_): Agent,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = id.clone();
    let records = state.blocking(move |s| s.records_of(&key)).await?;
    let key = id.clone();
    let mut v = state
        .driver()
        .read(Some(&id), move |hub| view::detail(hub, &key, &records))
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    // Lines a social channel did not get (the 24-hour rule held them, or Meta refused).
    if super::channels::any(&state) {
        let missing = super::channels::undelivered(&state, &id).await?;
        if let Some(messages) = v["messages"].as_array_mut() {
            for m in messages {
                let seq = m["seq"].as_i64().unwrap_or(0);
                if let Some((status, error)) = missing.get(&seq) {
                    m["delivery"] = json!({"status": status, "error": error});
                }
            }
        }
    }
    Ok(Json(v))
}

/// An agent's command on a conversation: the conversation's summary after it, or the record
/// an agent made.
async fn agent_cmd(state: &AppState, id: &str, cmd: Command) -> Result<Value, ApiError> {
    if let Command::AgentMessage { text, .. } = &cmd {
        check_len(text, state.config().limits.max_message_chars)?;
    }
    let is_record = matches!(cmd, Command::CreateRecord { .. });
    let out = state.driver().apply(id, cmd).await?;
    if is_record {
        return Ok(out
            .records
            .first()
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or(Value::Null));
    }
    let key = id.to_owned();
    Ok(state
        .driver()
        .read(Some(id), move |hub| view::summary(hub, &key))
        .await?)
}

async fn agent_assign(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        agent_cmd(&state, &id, Command::Pickup { agent: name }).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReassignReq {
    to: String,
}

async fn agent_reassign(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReassignReq>,
) -> Result<Json<Value>, ApiError> {
    let cmd = Command::Reassign {
        by: name,
        to: req.to,
    };
    Ok(Json(agent_cmd(&state, &id, cmd).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextReq {
    text: String,
}

async fn agent_send(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TextReq>,
) -> Result<Json<Value>, ApiError> {
    let cmd = Command::AgentMessage {
        agent: name,
        text: req.text,
    };
    Ok(Json(agent_cmd(&state, &id, cmd).await?))
}

/// The handling agent is typing: the visitor's chat shows it for a few seconds. Nothing is
/// stored (it is not a line), so it reaches only sockets on this server.
async fn agent_typing(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = id.clone();
    let handles = state
        .driver()
        .read(Some(&id), move |hub| {
            hub.session(&key)
                .map(|s| s.handler() == Some(name.as_str()))
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("no such conversation".into()))?;
    if !handles {
        return Err(ApiError::Forbidden(
            "only the agent handling the conversation can type in it".into(),
        ));
    }
    state.visitor_typing(&id);
    Ok(StatusCode::NO_CONTENT)
}

async fn agent_close(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        agent_cmd(&state, &id, Command::Close { agent: name }).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordReq {
    #[serde(rename = "type")]
    kind: ManualKind,
    title: String,
    /// An exact decimal: `"12000.50"` or `12000.5`.
    #[serde(default)]
    value: Option<crate::capture::Money>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    person: Option<Person>,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

async fn agent_record(
    State(state): State<AppState>,
    Agent(name): Agent,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RecordReq>,
) -> Result<Response, ApiError> {
    if req.title.trim().is_empty() {
        return Err(ApiError::BadRequest("a record needs a title".into()));
    }
    if let Some(c) = &req.currency
        && !crate::crm::is_currency(c)
    {
        return Err(ApiError::BadRequest(
            "currency must be an ISO 4217 code such as EUR".into(),
        ));
    }
    let details = ManualDetails {
        title: req.title,
        value: req.value,
        currency: req.currency,
        person: req.person.unwrap_or_default(),
        organization: req.organization,
        note: req.note,
    };
    let cmd = Command::CreateRecord {
        agent: name,
        kind: req.kind,
        details,
    };
    let v = agent_cmd(&state, &id, cmd).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn agent_ws(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<TokenQuery>,
    ApiWs(ws): ApiWs,
) -> Result<Response, ApiError> {
    let Agent(name) = agent_by_token(&state, &q.token)?;
    let mut rx = state.subscribe_agent(&name);
    let ws = super::edge::lean_ws(ws, state.config().limits.max_body_bytes);
    Ok(ws.on_upgrade(move |mut socket| async move {
        agent_socket(&mut socket, &mut rx).await;
        drop(rx);
        state.agent_gone(&name);
    }))
}

async fn agent_socket(socket: &mut WebSocket, rx: &mut tokio::sync::broadcast::Receiver<String>) {
    loop {
        tokio::select! {
            pushed = rx.recv() => match pushed {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[derive(Deserialize)]
struct RecordsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "hundred")]
    limit: i64,
}

fn hundred() -> i64 {
    100
}

async fn records(
    State(state): State<AppState>,
    Agent(_): Agent,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.clamp(1, 1000);
    let after = q.after;
    let mut rows = state.blocking(move |s| s.records(after, limit)).await?;
    // Errors stored before redaction existed may still quote a secret URL.
    for r in &mut rows {
        if let Some(e) = &mut r.last_error {
            *e = super::redact::text(e);
        }
    }
    Ok(Json(json!(rows)))
}

/// The newest version of each playbook.
fn playbook_list(state: &AppState) -> Vec<Value> {
    state
        .catalog()
        .latest_all()
        .map(|(name, v)| json!({"name": name, "title": v.playbook.playbook.name, "version": v.version}))
        .collect()
}

async fn playbooks(State(state): State<AppState>) -> Json<Vec<Value>> {
    Json(playbook_list(&state))
}

#[derive(Deserialize)]
struct GraphQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn graph(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<GraphQuery>,
) -> Result<String, ApiError> {
    let playbook = state
        .catalog()
        .latest(&name)
        .map(|v| v.playbook.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no playbook named `{name}`")))?;
    let g = crate::graph::FlowGraph::new(&playbook);
    match q.format.as_deref() {
        None | Some("mermaid") => Ok(g.to_mermaid(&playbook)),
        Some("dot") => Ok(g.to_dot(&playbook)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown format `{other}`; use mermaid or dot"
        ))),
    }
}

/// Refuses a call without the config's admin token (401).
pub(super) fn require_admin(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    let ok = match (&state.config().admin_token, bearer(headers)) {
        (Some(want), Some(got)) => super::config::ct_eq(want, got),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("an admin token is required".into()))
    }
}

async fn reload(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let report = state.reload().await?;
    let status = if report.refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(json!(report))).into_response())
}
