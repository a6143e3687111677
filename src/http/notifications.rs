//! The in-app inbox: every notification lands here, whatever else reaches
//! the person.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::caller::Caller;
use super::params::Params;
use crate::domain::notify::{NoticeType, NotificationId};
use crate::error::{ApiError, Problem};
use crate::store::NotificationRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me/notifications", get(inbox))
        .route("/v1/me/notifications/read-all", post(read_all))
        .route("/v1/me/notifications/{id}/read", post(read_one))
}

/// A notification as the inbox shows it.
#[derive(Serialize, ToSchema)]
pub struct NotificationDoc {
    #[schema(value_type = String)]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: NoticeType,
    pub title: String,
    pub body: String,
    /// A deep link path in the app, such as `/events/e…`.
    pub url: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub read_at: Option<DateTime<Utc>>,
}

impl From<NotificationRecord> for NotificationDoc {
    fn from(n: NotificationRecord) -> NotificationDoc {
        NotificationDoc {
            id: n.id.to_string(),
            kind: n.kind,
            title: n.title,
            body: n.body,
            url: n.url,
            data: with_type(n.data, n.kind),
            created_at: n.created_at,
            read_at: n.read_at,
        }
    }
}

/// A notice's data names its type too, so that a client can tell its shape
/// by `data.type` alone (the contract's `NoticeData` union).
fn with_type(
    mut data: serde_json::Value,
    kind: crate::domain::notify::NoticeType,
) -> serde_json::Value {
    if let Some(d) = data.as_object_mut() {
        d.insert("type".into(), serde_json::json!(kind.as_str()));
    }
    data
}

/// The caller's notifications, newest first, a page of them.
#[derive(Serialize, ToSchema)]
pub struct InboxResponse {
    /// Newest first.
    pub items: Vec<NotificationDoc>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
    /// The same as `next_cursor` (what `before` took before `cursor`).
    #[schema(deprecated)]
    pub next: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/notifications",
    tag = "notifications",
    security(("bearer" = [])),
    params(
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`: the page after it (older notifications)"),
        ("before" = Option<String>, Query, deprecated, description = "The same as `cursor` (kept for apps that use it)"),
        ("limit" = Option<u32>, Query, description = "1–100, default 20"),
    ),
    responses(
        (status = 200, description = "The inbox", body = InboxResponse),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn inbox(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<InboxResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let id = |v: &str| v.parse::<NotificationId>().map_err(|e| e.to_string());
    // Both are checked; `cursor` wins when both are given.
    let cursor = p.optional("cursor", id)?;
    let before = cursor.or(p.optional("before", id)?);
    let limit = p
        .optional("limit", |v| match v.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err("expected an integer from 1 to 100".to_owned()),
        })?
        .unwrap_or(20);
    let mut items = state.store.inbox(caller.user.id, before, limit + 1).await?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|n| n.id.to_string())
    } else {
        None
    };
    Ok(Json(InboxResponse {
        items: items.into_iter().map(NotificationDoc::from).collect(),
        next_cursor: next.clone(),
        next,
    }))
}

/// Mark one notification read.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/{id}/read",
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Notification id")),
    responses(
        (status = 200, description = "The notification, read", body = NotificationDoc),
        (status = 400, description = "Not a notification id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NotificationDoc>, ApiError> {
    let id: NotificationId =
        id.parse()
            .map_err(|e: crate::domain::notify::BadNotificationId| {
                ApiError::unknown_id("id", e.to_string())
            })?;
    let n = state
        .store
        .mark_read(caller.user.id, id, state.auth.clock.now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => {
                ApiError::NotFound(format!("no notification {id} of yours"))
            }
            e => e.into(),
        })?;
    Ok(Json(n.into()))
}

/// How many notifications were marked read.
#[derive(Serialize, ToSchema)]
pub struct ReadAll {
    /// How many were unread.
    pub marked: u64,
}

/// Mark every notification read.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/read-all",
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many were marked", body = ReadAll),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReadAll>, ApiError> {
    let marked = state
        .store
        .mark_all_read(caller.user.id, state.auth.clock.now())
        .await?;
    Ok(Json(ReadAll { marked }))
}
