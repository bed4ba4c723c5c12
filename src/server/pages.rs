//! The web pages of `web/` (visitor widget, embeddable script, agent inbox, playbook graph
//! view and its analytics, stylesheet, vendored Mermaid), embedded into the binary at compile time and served
//! as they are.
//!
//! Must not: template user data into pages (every page fetches its data from the JSON API and
//! puts it on the page as text), or read files at run time.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const WIDGET_HTML: &str = include_str!("../../web/widget.html");
const WIDGET_JS: &str = include_str!("../../web/widget.js");
const INBOX_HTML: &str = include_str!("../../web/inbox.html");
const INBOX_JS: &str = include_str!("../../web/inbox.js");
const PLAYBOOK_HTML: &str = include_str!("../../web/playbook.html");
const STATS_HTML: &str = include_str!("../../web/stats.html");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const AVATAR_SVG: &str = include_str!("../../web/avatar.svg");
const MERMAID_JS: &str = include_str!("../../web/assets/mermaid.min.js");
const MERMAID_LICENSE: &str = include_str!("../../web/assets/mermaid.LICENSE");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// A static file with its content type; `nosniff` so a browser never guesses another type.
fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The files an embedding page loads from another origin (the router puts CORS on them).
pub fn widget_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/widget.js", get(|| async { file(JS, WIDGET_JS) }))
        .route("/style.css", get(|| async { file(CSS, STYLE_CSS) }))
        // A neutral avatar for `[widget] avatar = "/avatar.svg"`.
        .route("/avatar.svg", get(|| async { file(SVG, AVATAR_SVG) }))
}

/// The other page routes; `/` stays with the API handlers (it lists the playbooks).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/widget", get(|| async { file(HTML, WIDGET_HTML) }))
        .route("/inbox", get(|| async { file(HTML, INBOX_HTML) }))
        .route("/inbox.js", get(|| async { file(JS, INBOX_JS) }))
        .route(
            "/playbooks/{name}",
            get(|| async { file(HTML, PLAYBOOK_HTML) }),
        )
        .route(
            "/playbooks/{name}/stats",
            get(|| async { file(HTML, STATS_HTML) }),
        )
        .route(
            "/assets/mermaid.min.js",
            get(|| async { file(JS, MERMAID_JS) }),
        )
        .route(
            "/assets/mermaid.LICENSE",
            get(|| async { file(TEXT, MERMAID_LICENSE) }),
        )
}
