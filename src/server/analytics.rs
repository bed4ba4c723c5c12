//! Flow analytics over HTTP: `GET /api/admin/stats` (admin token) reads one playbook's
//! counters from the store ([`crate::stats`]) and answers the report as JSON, CSV, a text
//! table, or the playbook's Mermaid graph with the numbers drawn on it; the page
//! `/playbooks/{name}/stats` (in `web/stats.html`) shows them.
//!
//! Must not: scan conversations — the counters are kept as the steps happen, so a report
//! reads O(counters × days) rows.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::handlers::{ApiQuery, require_admin};
use crate::stats;

/// The query of `GET /api/admin/stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// The playbook's name (its file stem).
    playbook: String,
    /// One version (default: all versions, drawn on the newest one's cards).
    #[serde(default)]
    version: Option<i64>,
    /// First day, `YYYY-MM-DD` (UTC); default 29 days before `to`.
    #[serde(default)]
    from: Option<String>,
    /// Last day; default today.
    #[serde(default)]
    to: Option<String>,
    /// `json` (default), `csv`, `text` or `mermaid`.
    #[serde(default)]
    format: Option<String>,
}

/// `GET /api/admin/stats`.
pub async fn admin_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let playbook = {
        let catalog = state.catalog();
        let v = match q.version {
            Some(v) => catalog.get(&q.playbook, v),
            None => catalog.latest(&q.playbook),
        };
        v.map(|v| v.playbook.clone()).ok_or_else(|| {
            ApiError::NotFound(match q.version {
                Some(v) => format!("no version {v} of a playbook named `{}`", q.playbook),
                None => format!("no playbook named `{}`", q.playbook),
            })
        })?
    };
    let today = stats::day(state.driver().now());
    let (from, to) =
        stats::range(q.from.as_deref(), q.to.as_deref(), today).map_err(ApiError::BadRequest)?;
    let (name, version) = (q.playbook.clone(), q.version);
    let rows = state
        .blocking(move |s| s.stats(&name, version, from, to))
        .await?;
    let report = stats::report(&playbook, &q.playbook, q.version, (from, to), &rows);
    let text =
        |ct: &'static str, body: String| ([(header::CONTENT_TYPE, ct)], body).into_response();
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(report).into_response()),
        Some("csv") => Ok(text("text/csv; charset=utf-8", stats::csv(&report))),
        Some("text") => Ok(text("text/plain; charset=utf-8", stats::table(&report))),
        Some("mermaid") => {
            let g = crate::graph::FlowGraph::new(&playbook);
            let overlay = stats::overlay(&playbook, &report);
            Ok(text(
                "text/plain; charset=utf-8",
                g.to_mermaid_with(&playbook, &overlay),
            ))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown format `{other}`; use json, csv, text or mermaid"
        ))),
    }
}
