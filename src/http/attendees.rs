//! Everyone booked on an event, for its managers: JSON or CSV, read in a
//! constant number of queries whatever the event's size.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::caller::Caller;
use super::events::{event_id, load_event};
use super::params::Params;
use crate::domain::booking::waitlist_positions;
use crate::domain::event::{BookingStatus, EventId};
use crate::domain::user::User;
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{id}/attendees", get(attendees))
        .route("/v1/events/{id}/attendees.csv", get(attendees_csv))
}

/// One booking on an event, as its managers see it (phone masked).
#[derive(Serialize, ToSchema)]
pub struct Attendee {
    #[schema(value_type = String)]
    pub booking_id: String,
    pub user_id: i64,
    pub display_name: Option<String>,
    /// Masked (`138****5678`).
    pub phone: String,
    pub status: BookingStatus,
    pub quota: Option<String>,
    pub waitlist_position: Option<u32>,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub checked_in_at: Option<DateTime<Utc>>,
    /// When the booking was made.
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub booked_at: DateTime<Utc>,
}

/// An event's bookings, a page of them, in booking order.
#[derive(Serialize, ToSchema)]
pub struct AttendeesResponse {
    pub items: Vec<Attendee>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Everyone booked on an event (managers of its site, admins), as JSON or,
/// with `format=csv` or `Accept: text/csv`, as CSV. After the event ends, the
/// worker marks confirmed bookings that never checked in as no-shows.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/attendees",
    tag = "events",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"), ("id" = String, Path, description = "Event id"), ("format" = Option<String>, Query, description = "json (default) or csv (as `attendees.csv` answers)")),
    responses(
        (status = 200, description = "Attendees (`text/csv` with `format=csv` or `Accept: text/csv`)", content(
            (AttendeesResponse = "application/json"),
            (String = "text/csv"),
        )),
        (status = 403, description = "Not a manager of the event's site", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn attendees(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    let p = Params::parse(raw.as_deref())?;
    let csv = match p.optional("format", |v| match v {
        "json" => Ok(false),
        "csv" => Ok(true),
        _ => Err("expected json or csv".to_owned()),
    })? {
        Some(c) => c,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv")),
    };
    let page = super::paging::Page::parse(&p, 2)?;
    let items = attendee_list(&state, &caller.user, id).await?;
    if csv {
        // The CSV is the whole list: a download for a spreadsheet.
        return csv_response(&items);
    }
    // In booking order.
    let (items, next_cursor) = page.of(items, |a| {
        vec![
            super::paging::ms(a.booked_at),
            super::paging::id_key(&a.booking_id),
        ]
    });
    Ok(Json(AttendeesResponse { items, next_cursor }).into_response())
}

/// Everyone booked on an event as CSV (UTF-8, a header row; the columns are
/// `Attendee`'s fields): for a spreadsheet.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/attendees.csv",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "Attendees as CSV", body = String, content_type = "text/csv"),
        (status = 403, description = "Not a manager of the event's site", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn attendees_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    csv_response(&attendee_list(&state, &caller.user, id).await?)
}

/// Everyone booked on event `id`, for `user` if they manage it (the API and
/// the managers' console).
pub async fn attendee_list(
    state: &AppState,
    user: &User,
    id: EventId,
) -> Result<Vec<Attendee>, ApiError> {
    let event = load_event(state, id).await?;
    if !event.managed_by(user) {
        return Err(ApiError::forbidden(
            "only the event's site managers see its attendees",
        ));
    }
    let rows = state.store.attendees(id).await?;
    let positions = waitlist_positions(rows.iter().map(|r| &r.booking));
    Ok(rows
        .into_iter()
        .map(|r| Attendee {
            booking_id: r.booking.id.to_string(),
            user_id: r.booking.user,
            display_name: r.display_name,
            phone: r.phone.masked(),
            status: r.booking.status,
            quota: r.booking.quota,
            waitlist_position: positions.get(&r.booking.id).copied(),
            checked_in_at: r.booking.checked_in_at,
            booked_at: r.booking.created_at,
        })
        .collect())
}

/// The attendees as a CSV download (`format=csv`, and the console's export).
pub fn csv_response(items: &[Attendee]) -> Result<Response, ApiError> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "booking_id",
        "user_id",
        "display_name",
        "phone",
        "status",
        "quota",
        "waitlist_position",
        "checked_in_at",
    ])
    .map_err(|e| ApiError::Internal(e.into()))?;
    for a in items {
        w.write_record([
            a.booking_id.clone(),
            a.user_id.to_string(),
            a.display_name.clone().unwrap_or_default(),
            a.phone.clone(),
            a.status.as_str().to_owned(),
            a.quota.clone().unwrap_or_default(),
            a.waitlist_position
                .map(|p| p.to_string())
                .unwrap_or_default(),
            a.checked_in_at
                .as_ref()
                .map(crate::domain::timestamp::format)
                .unwrap_or_default(),
        ])
        .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
}
