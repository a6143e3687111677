//! The offline change feed: every change to a site, in commit order, so a phone
//! can keep an exact local copy of the registry and ride on without signal.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{self, Params};
use super::sites::{SiteDoc, site_doc, state_of};
use crate::domain::site::Status;
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sites/changes", get(changes))
}

pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 5_000;

/// Query parameters of `GET /v1/sites/changes`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ChangesParams {
    /// Cursor: the `next` of the previous page; `0` (default) starts from the beginning.
    since: Option<i64>,
    /// Page size, 1–5000 (default 500).
    limit: Option<u32>,
    /// Coordinate system of the sites' coordinates (default wgs84).
    crs: Option<String>,
}

/// What a change did: `upsert` (created or edited) or `retire`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    /// The site exists (created or changed): replace the local copy.
    Upsert,
    /// The site is retired: delete the local copy.
    Retire,
}

/// One change to the registry: a site written (`upsert`, with the site) or retired.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeItem {
    /// Position in the feed; strictly increasing.
    pub seq: i64,
    pub op: ChangeOp,
    /// The site as it is now (for `retire`, its last state, with status `retired`).
    pub site: SiteDoc,
}

/// Changes after `since`, oldest first; `next` is the `since` of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesResponse {
    pub items: Vec<ChangeItem>,
    /// Pass as `since` for the next page; equal to `since` when there is nothing new.
    pub next: i64,
}

/// Changes to sites after a cursor, oldest first. A client that applies every
/// page in order (upsert = replace by id, retire = delete by id) holds exactly
/// the server's set of non-retired sites.
#[utoipa::path(
    get,
    path = "/v1/sites/changes",
    tag = "sites",
    params(ChangesParams),
    responses(
        (status = 200, description = "A page of the feed", body = ChangesResponse),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ChangesResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let since = p
        .optional("since", |v| params::int_in_range(v, 0, i64::MAX))?
        .unwrap_or(0);
    let limit = p
        .optional("limit", |v| params::int_in_range(v, 1, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let crs = p.crs()?;
    let changes = state.store.changes_since(since, limit).await?;
    let now = Utc::now();
    let next = changes.last().map_or(since, |c| c.seq);
    let snapshot = state.index.snapshot();
    let calendar = state.index.calendar();
    let items = changes
        .into_iter()
        .map(|c| {
            // The row is the site's current state, whatever this change did:
            // replaying an old upsert of a since-retired site yields its tombstone.
            let op = if c.site.draft.status == Status::Retired {
                ChangeOp::Retire
            } else {
                ChangeOp::Upsert
            };
            let hours = match snapshot.get(c.site.id) {
                Some(s) if s.version() == c.site.version => s.state(now),
                _ => state_of(&c.site, now, &calendar),
            };
            ChangeItem {
                seq: c.seq,
                op,
                site: site_doc(&c.site, crs, hours),
            }
        })
        .collect();
    Ok(Json(ChangesResponse { items, next }))
}
