//! Bookings: a seat taken safely under retries and crowds, cancelled, an
//! offer accepted, the person's list, and a calendar entry. Every change is a
//! store command that asks the rules in `domain/booking.rs`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::body::JsonObject;
use super::caller::Caller;
use super::events::{event_id, load_event};
use super::paging::{Page, id_key, ms};
use super::params::Params;
use crate::domain::booking::Canceller;
use crate::domain::event::{BookOutcome, Booking, BookingId, EventKind, EventStatus};
use crate::domain::{checkin, ics};
use crate::error::{ApiError, Problem};
use crate::store::keyed::Keyed;
use crate::store::{BookRequest, BookingView, Commands, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{id}/bookings", post(book))
        .route("/v1/bookings/{id}", delete(cancel).get(booking_or_ics))
        .route("/v1/bookings/{id}/calendar.ics", get(booking_ics))
        .route("/v1/bookings/{id}/accept", post(accept))
        .route("/v1/me/bookings", get(my_bookings))
}

/// A booking by its path id.
pub(super) async fn load_booking(
    state: &AppState,
    id: &str,
) -> Result<(BookingId, BookingView), ApiError> {
    let id: BookingId = id
        .parse()
        .map_err(|e: crate::domain::event::BadBookingId| {
            ApiError::unknown_id("id", e.to_string())
        })?;
    let view = state
        .store
        .get_booking(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no booking with id {id}")))?;
    Ok((id, view))
}

/// Fill in the holder's check-in code where the booking has one.
pub(super) fn with_code(state: &AppState, mut b: Booking) -> Booking {
    if checkin::has_code(b.status)
        && let Ok(id) = b.id.parse::<BookingId>()
    {
        b.checkin_code = Some(checkin::code(&state.checkin_key, id));
    }
    b
}

/// The `Idempotency-Key` header, if sent (every create that honours it).
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 100)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::param("Idempotency-Key", "1–100 visible ASCII characters"))
        })
        .transpose()
}

/// Mark `resp` as the stored answer to an earlier request with the same
/// Idempotency-Key (`Idempotent-Replayed: true`) when it is one.
pub(super) fn mark_replayed(mut resp: Response, replayed: bool) -> Response {
    if replayed {
        resp.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    resp
}

/// The request's `Idempotency-Key`, if sent, with a hash of what it asks
/// (the target and the body's JSON, keys in order), for a create the store
/// keeps the key of ([`Keyed`]).
pub(super) fn keyed(
    caller: &Caller,
    headers: &HeaderMap,
    target: &str,
    obj: &JsonObject,
) -> Result<Option<Keyed>, ApiError> {
    let Some(key) = idempotency_key(headers)? else {
        return Ok(None);
    };
    let body = serde_json::to_string(&obj.0).expect("a JSON object serializes");
    Ok(Some(Keyed {
        user: caller.user.id,
        key,
        request_hash: crate::auth::sha256_hex(format!("{target}\n{body}").as_bytes()),
    }))
}

/// Book a seat. Send an `Idempotency-Key` header: a retry with the same key
/// (within 24 h) gets the original answer, replayed, not re-executed; the same
/// key with a different body is 422.
#[utoipa::path(
    post,
    path = "/v1/events/{id}/bookings",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"), ("Idempotency-Key" = Option<String>, Header, description = "A unique key per booking attempt (1–100 characters)")),
    responses(
        (status = 201, description = "Confirmed, or waitlisted with its position", body = Booking, headers(("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same Idempotency-Key"))),
        (status = 403, description = "Not eligible; `param` names the rule", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already booked, or full without a waitlist", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Outside the booking window, not open, or a reused key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn book(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    let key = idempotency_key(&headers)?;
    if let Err(wait) = state.writer.admit(&state.guard.config.write_queue) {
        state.metrics.shed("write_queue");
        return Err(ApiError::UnavailableFor {
            detail: format!(
                "{} bookings are ahead of this one, about {} s of work; retry then",
                state.writer.depth(),
                wait.as_secs()
            ),
            retry_after_s: crate::ratelimit::retry_after_secs(wait),
        });
    }
    let hash = crate::auth::sha256_hex(&[id.to_string().as_bytes(), b"\n", &body].concat());
    let booked = state
        .writer
        .book(BookRequest {
            user: &caller.user,
            event: id,
            key: key.as_deref(),
            request_hash: &hash,
            at: state.auth.clock.now(),
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("no event with id {id}")),
            e => e.into(),
        })?;
    let outcome = match booked.outcome {
        BookOutcome::Booked { booking } => BookOutcome::Booked {
            booking: with_code(&state, booking),
        },
        other => other,
    };
    Ok(mark_replayed(outcome_response(outcome), booked.replayed))
}

fn outcome_response(outcome: BookOutcome) -> Response {
    match outcome {
        BookOutcome::Booked { booking } => (StatusCode::CREATED, Json(booking)).into_response(),
        BookOutcome::AlreadyBooked { booking_id } => ApiError::Conflict(format!(
            "you already hold booking {booking_id} for this event"
        ))
        .into_response(),
        BookOutcome::NotEligible { rule, detail } => ApiError::Forbidden {
            detail: format!("{rule}: {detail}"),
            param: Some(rule),
        }
        .into_response(),
        BookOutcome::Full => {
            ApiError::Conflict("the event is full and has no waitlist".into()).into_response()
        }
        BookOutcome::OutsideWindow { detail } => {
            ApiError::unprocessable("booking_window", detail).into_response()
        }
        BookOutcome::NotOpen { detail } => {
            ApiError::unprocessable("status", detail).into_response()
        }
        BookOutcome::ByDraw { detail } => {
            ApiError::unprocessable("allocation", detail).into_response()
        }
    }
}

/// Cancel a booking (its holder, before the event's cancel deadline; the
/// event's site managers and admins at any time). A seat it held goes, in the
/// same transaction, to the first waitlisted person whose quota it fits.
#[utoipa::path(
    delete,
    path = "/v1/bookings/{id}",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "The cancelled booking", body = Booking),
        (status = 403, description = "Not your booking", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Checked in or marked a no-show: past cancelling", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Past the cancel deadline", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    let (id, view) = load_booking(&state, &id).await?;
    let event = load_event(&state, view.record.event).await?;
    let by = if event.managed_by(&caller.user) {
        Canceller::Manager
    } else if view.record.user == caller.user.id {
        Canceller::Holder
    } else {
        return Err(ApiError::forbidden("not your booking"));
    };
    let done = state
        .writer
        .cancel_booking(id, by, state.auth.clock.now())
        .await?;
    Ok(Json(done.booking.to_api(None)))
}

/// Accept a seat offered from the waitlist, before `offer_expires_at`.
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/accept",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "Confirmed", body = Booking),
        (status = 403, description = "Not your booking", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not offered (or the offer lapsed)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    let (id, view) = load_booking(&state, &id).await?;
    if view.record.user != caller.user.id {
        return Err(ApiError::forbidden("not your booking"));
    }
    let record = state
        .writer
        .accept_offer(id, state.auth.clock.now())
        .await?;
    Ok(Json(with_code(&state, record.to_api(None))))
}

/// The caller's bookings, a page of them: upcoming first (soonest first), then past (latest first).
#[derive(Serialize, ToSchema)]
pub struct MyBookings {
    /// Upcoming first (soonest first), then past (latest first).
    pub items: Vec<MyBooking>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// One of the caller's bookings, with its event.
#[derive(Serialize, ToSchema)]
pub struct MyBooking {
    #[serde(flatten)]
    pub booking: Booking,
    pub event: EventSummary,
    /// The event has not ended yet.
    pub upcoming: bool,
}

/// The event a booking is for, in brief.
#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    #[schema(value_type = String)]
    pub id: String,
    pub kind: EventKind,
    pub title: String,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub ends_at: DateTime<Utc>,
    pub status: EventStatus,
}

/// Your bookings with their events: upcoming first (soonest first), then past ones (latest first).
#[utoipa::path(
    get,
    path = "/v1/me/bookings",
    tag = "events",
    security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"),
    ),
    responses(
        (status = 200, description = "The caller's bookings: upcoming first (soonest first), then past ones (latest first)", body = MyBookings),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_bookings(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<MyBookings>, ApiError> {
    let page = Page::parse(&Params::parse(raw.as_deref())?, 3)?;
    let now = state.auth.clock.now();
    let rows = state.store.user_bookings(caller.user.id).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let d = &r.event.draft;
        let b = r.booking.record.to_api(r.booking.waitlist_position);
        items.push(MyBooking {
            booking: with_code(&state, b),
            upcoming: d.ends_at > now,
            event: EventSummary {
                id: r.event.id.to_string(),
                kind: d.kind,
                title: d.title.clone(),
                starts_at: d.starts_at,
                ends_at: d.ends_at,
                status: d.status,
            },
        });
    }
    // Upcoming ones soonest first, then past ones latest first.
    let (items, next_cursor) = page.of(items, |b| {
        let (part, start) = match b.upcoming {
            true => (0, ms(b.event.starts_at)),
            false => (1, -ms(b.event.starts_at)),
        };
        vec![part, start, id_key(&b.booking.id)]
    });
    Ok(Json(MyBookings { items, next_cursor }))
}

/// A booking. The holder, the event's site managers and admins. (`GET
/// /v1/bookings/{id}.ics` still answers the calendar entry, as
/// `…/calendar.ics` does, for apps that use it.)
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "The booking", body = Booking),
        (status = 403, description = "Not your booking", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn booking_or_ics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(id) = id.strip_suffix(".ics") {
        return calendar(&state, &caller, id).await;
    }
    let (_, view) = load_booking(&state, &id).await?;
    let event = load_event(&state, view.record.event).await?;
    let holder = view.record.user == caller.user.id;
    if !holder && !event.managed_by(&caller.user) {
        return Err(ApiError::forbidden("not your booking"));
    }
    let booking = view.record.to_api(view.waitlist_position);
    let b = if holder {
        with_code(&state, booking)
    } else {
        booking
    };
    Ok(Json(b).into_response())
}

/// A booking's calendar entry (RFC 5545, Asia/Shanghai time) for the phone's
/// calendar. The holder, the event's site managers and admins.
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}/calendar.ics",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id")),
    responses(
        (status = 200, description = "An iCalendar file with one VEVENT", body = String, content_type = "text/calendar"),
        (status = 403, description = "Not your booking", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn booking_ics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    calendar(&state, &caller, &id).await
}

async fn calendar(state: &AppState, caller: &Caller, id: &str) -> Result<Response, ApiError> {
    let (_, view) = load_booking(state, id).await?;
    let event = load_event(state, view.record.event).await?;
    if view.record.user != caller.user.id && !event.managed_by(&caller.user) {
        return Err(ApiError::forbidden("not your booking"));
    }
    let booking = view.record.to_api(view.waitlist_position);
    let location = match (&event.draft.venue_name, event.draft.site_id) {
        (Some(v), _) => v.clone(),
        (None, Some(s)) => match state.store.get_site(s).await? {
            Some(site) => format!("{} {}", site.draft.name, site.draft.address),
            None => String::new(),
        },
        (None, None) => String::new(),
    };
    let body = ics::booking_ics(&booking, &event, &location, state.auth.clock.now());
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}
