//! The routes of `docs/api.md`: extract and check, call [`super::Core`] under the lock,
//! release it, wait for durability ([`AppState::settle`]), answer.

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

use super::core::{Input, manual};
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
        .merge(super::pages::widget_routes())
        .layer(cors(&state.config().cors));
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .merge(visitor)
        .route("/api/agent/me", get(agent_me))
        .route("/api/agent/agents", get(agent_agents))
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
        .route("/api/agent/conversations/{id}/records", post(agent_record))
        .route("/api/agent/ws", get(agent_ws))
        .route("/api/records", get(records))
        .route("/api/playbooks", get(playbooks))
        .route("/api/playbooks/{name}/graph", get(graph))
        .route("/api/admin/reload", post(reload))
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
    let list: String = state
        .core()
        .playbooks()
        .iter()
        .map(|p| {
            let name = html_escape(p["name"].as_str().unwrap_or_default());
            let title = html_escape(p["title"].as_str().unwrap_or_default());
            format!(
                "<li><a href=\"/widget?playbook={name}\">{title}</a> (v{}) · <a href=\"/api/playbooks/{name}/graph\">graph</a></li>\n",
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
    let applied = state
        .core()
        .start(&req.playbook, req.channel, req.page_url)?;
    let v = state.settle(applied).await?;
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
    fn input(self) -> Result<(Input, Channel), ApiError> {
        match (self.text, self.choice) {
            (Some(t), None) => Ok((Input::Text(t), self.channel)),
            (None, Some(c)) => Ok((Input::Choice(c), self.channel)),
            _ => Err(ApiError::BadRequest(
                "send exactly one of `text` and `choice`".into(),
            )),
        }
    }
}

async fn visitor_send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    VisitorToken(token): VisitorToken,
    ApiJson(req): ApiJson<VisitorReq>,
) -> Result<Json<Value>, ApiError> {
    let (input, channel) = req.input()?;
    let applied = {
        let mut core = state.core();
        core.visitor_auth(&id, &token)?;
        core.visitor(&id, input, channel)?
    };
    Ok(Json(state.settle(applied).await?))
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
    let core = state.core();
    core.visitor_auth(&id, &token)?;
    let (status, messages) = core.history(&id, q.after);
    Ok(Json(
        json!({"status": status, "bot": core.bot_name(&id), "messages": messages}),
    ))
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
    state.core().visitor_auth(&id, &q.token)?;
    let rx = state.subscribe_visitor(&id);
    Ok(
        super::edge::lean_ws(ws, state.config().limits.max_body_bytes)
            .on_upgrade(move |socket| visitor_socket(state, id, socket, rx)),
    )
}

async fn visitor_socket(
    state: AppState,
    id: String,
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<String>,
) {
    let status = state.core().history(&id, u64::MAX).0;
    let hello = json!({"type": "status", "status": status}).to_string();
    if socket.send(Message::Text(hello.into())).await.is_err() {
        return;
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
                    Ok(req) => match req.input() {
                        Ok((input, channel)) => {
                            let applied = state.core().visitor(&id, input, channel);
                            match applied {
                                Ok(a) => state.settle(a).await.map(|_| ()),
                                Err(e) => Err(e),
                            }
                        }
                        Err(e) => Err(e),
                    },
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

async fn agent_me(State(state): State<AppState>, Agent(name): Agent) -> Json<Value> {
    let teams = state
        .config()
        .agents
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.teams.clone())
        .unwrap_or_default();
    let presence = state.core().presence(&name);
    Json(json!({"name": name, "presence": presence, "teams": teams}))
}

/// Every agent of the config with their presence now, in config order (the inbox's reassign
/// picker offers the online ones).
async fn agent_agents(State(state): State<AppState>, Agent(_): Agent) -> Json<Vec<Value>> {
    let core = state.core();
    Json(
        state
            .config()
            .agents
            .iter()
            .map(|a| json!({"name": a.name, "presence": core.presence(&a.name), "teams": a.teams}))
            .collect(),
    )
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
    let applied = state.core().set_presence(&name, req.presence)?;
    state.settle(applied).await?;
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

async fn agent_list(
    State(state): State<AppState>,
    Agent(name): Agent,
    ApiQuery(q): ApiQuery<FolderQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    Ok(Json(state.core().folder(&name, &q.folder)?))
}

async fn agent_detail(
    State(state): State<AppState>,
    Agent(_): Agent,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.core().detail(&id)?))
}

async fn agent_cmd(state: &AppState, id: &str, cmd: Command) -> Result<Value, ApiError> {
    let applied = state.core().agent(id, cmd)?;
    state.settle(applied).await
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
    #[serde(default)]
    value: Option<f64>,
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
    if req.value.is_some_and(|v| !v.is_finite()) {
        return Err(ApiError::BadRequest("value must be a finite number".into()));
    }
    let details = ManualDetails {
        title: req.title,
        value: req.value,
        currency: req.currency,
        person: req.person.unwrap_or_default(),
        organization: req.organization,
        note: req.note,
    };
    let v = agent_cmd(&state, &id, manual(req.kind, details, &name)).await?;
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
    }))
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
    let store = state.store().clone();
    let limit = q.limit.clamp(1, 1000);
    let mut rows = tokio::task::spawn_blocking(move || store.records(q.after, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    // Errors stored before redaction existed may still quote a secret URL.
    for r in &mut rows {
        if let Some(e) = &mut r.last_error {
            *e = super::redact::text(e);
        }
    }
    Ok(Json(json!(rows)))
}

async fn playbooks(State(state): State<AppState>) -> Json<Vec<Value>> {
    Json(state.core().playbooks())
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
        .core()
        .playbook(&name)
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

async fn reload(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let ok = match (&state.config().admin_token, bearer(&headers)) {
        (Some(want), Some(got)) => super::config::ct_eq(want, got),
        _ => false,
    };
    if !ok {
        return Err(ApiError::Unauthorized("an admin token is required".into()));
    }
    let report = state.reload().await?;
    let status = if report.refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(json!(report))).into_response())
}
