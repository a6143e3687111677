//! Events and bookings: managers publish events at their sites; workers find
//! them near a point and book, safely under retries and crowds.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::Caller;
use super::params::{self, Params};
use super::sites::out_coords;
use crate::domain::coords::{Crs, LatLon, haversine_m, to_wgs84};
use crate::domain::event::{
    BookOutcome, Booking, BookingId, Eligibility, Event, EventDraft, EventId, EventKind,
    EventStatus, Quota,
};
use crate::domain::site::SiteId;
use crate::domain::user::Role;
use crate::error::{ApiError, Problem};
use crate::store::{BookRequest, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(create_event).get(find_events))
        .route("/v1/events/{id}", get(event_detail).patch(patch_event))
        .route("/v1/bookings/{id}/accept", post(accept))
        .route("/v1/events/{id}/bookings", post(book))
        .route("/v1/bookings/{id}", delete(cancel).get(booking_or_ics))
        .route("/v1/me/bookings", get(my_bookings))
        .route("/v1/checkins", post(check_in))
        .route("/v1/events/{id}/attendees", get(attendees))
}

/// An event as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct EventDoc {
    #[schema(value_type = String)]
    pub id: String,
    pub kind: EventKind,
    #[schema(value_type = Option<String>)]
    pub site_id: Option<String>,
    pub venue_name: Option<String>,
    pub crs: String,
    pub lat: f64,
    pub lon: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    pub title: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub capacity: u32,
    pub seats_left: u32,
    pub booking_opens_at: DateTime<Utc>,
    pub booking_closes_at: DateTime<Utc>,
    pub cancel_deadline: DateTime<Utc>,
    pub waitlist: bool,
    pub status: EventStatus,
    pub quotas: Vec<Quota>,
    pub eligibility: Eligibility,
    pub offer_hours: Option<u32>,
}

fn event_doc(e: &Event, crs: Crs, distance_m: Option<f64>) -> EventDoc {
    let d = &e.draft;
    let (lat, lon) = out_coords(crs, d.lat, d.lon);
    EventDoc {
        id: e.id.to_string(),
        kind: d.kind,
        site_id: d.site_id.map(|s| s.to_string()),
        venue_name: d.venue_name.clone(),
        crs: crs.as_str().to_owned(),
        lat,
        lon,
        distance_m: distance_m.map(|m| (m * 10.0).round() / 10.0),
        title: d.title.clone(),
        description: d.description.clone(),
        starts_at: d.starts_at,
        ends_at: d.ends_at,
        capacity: d.capacity,
        seats_left: d.capacity.saturating_sub(e.held),
        booking_opens_at: d.booking_opens_at,
        booking_closes_at: d.booking_closes_at,
        cancel_deadline: d.cancel_deadline,
        waitlist: d.waitlist,
        status: d.status,
        quotas: d.quotas.clone(),
        eligibility: d.eligibility.clone(),
        offer_hours: d.offer_hours,
    }
}

fn rfc3339(v: &Value) -> Result<DateTime<Utc>, String> {
    params::rfc3339(v.as_str().ok_or("expected an RFC 3339 time")?)
}

fn json_of<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

/// Create an event: a site manager at a site in scope, an admin anywhere.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    params(("crs" = Option<String>, Query, description = "Coordinate system of a venue's lat/lon")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = EventDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager of the site, nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let crs = Params::parse(raw.as_deref())?.crs()?;
    obj.only(&[
        "kind",
        "site_id",
        "venue_name",
        "lat",
        "lon",
        "title",
        "description",
        "starts_at",
        "ends_at",
        "capacity",
        "booking_opens_at",
        "booking_closes_at",
        "cancel_deadline",
        "waitlist",
        "status",
        "quotas",
        "eligibility",
        "offer_hours",
    ])?;
    let site_id = obj.optional("site_id", body::parsed::<SiteId>)?;
    match site_id {
        Some(s) if !caller.user.manages(s) => {
            return Err(ApiError::forbidden("you do not manage this site"));
        }
        None if caller.user.role != Role::Admin => {
            return Err(ApiError::forbidden(
                "only an admin may create an event away from a site",
            ));
        }
        _ => {}
    }
    let (lat, lon, venue_name) = match site_id {
        Some(s) => {
            let site = state
                .store
                .get_site(s)
                .await?
                .ok_or_else(|| ApiError::unprocessable("site_id", "no such site"))?;
            (
                site.draft.lat,
                site.draft.lon,
                obj.optional("venue_name", body::text(100))?,
            )
        }
        None => {
            let lat = obj.required("lat", body::number_in(-90.0, 90.0))?;
            let lon = obj.required("lon", body::number_in(-180.0, 180.0))?;
            let (lat, lon) = to_wgs84(crs, lat, lon);
            (lat, lon, Some(obj.required("venue_name", body::text(100))?))
        }
    };
    let starts_at = obj.required("starts_at", rfc3339)?;
    let ends_at = obj.required("ends_at", rfc3339)?;
    if ends_at <= starts_at {
        return Err(ApiError::unprocessable(
            "ends_at",
            "must be after starts_at",
        ));
    }
    let capacity = obj.required("capacity", body::int_in(1, 100_000))? as u32;
    let booking_opens_at = obj.required("booking_opens_at", rfc3339)?;
    let booking_closes_at = obj
        .optional("booking_closes_at", rfc3339)?
        .unwrap_or(starts_at);
    if booking_closes_at <= booking_opens_at {
        return Err(ApiError::unprocessable(
            "booking_closes_at",
            "must be after booking_opens_at",
        ));
    }
    let cancel_deadline = obj
        .optional("cancel_deadline", rfc3339)?
        .unwrap_or(starts_at);
    let quotas: Vec<Quota> = obj.optional("quotas", json_of)?.unwrap_or_default();
    if quotas.iter().map(|q| u64::from(q.seats)).sum::<u64>() > u64::from(capacity) {
        return Err(ApiError::unprocessable(
            "quotas",
            "quota seats exceed the capacity",
        ));
    }
    let draft = EventDraft {
        kind: obj.required("kind", body::parsed::<EventKind>)?,
        site_id,
        venue_name,
        lat,
        lon,
        title: obj.required("title", body::text(100))?,
        description: obj
            .optional("description", body::multiline_text(5000))?
            .unwrap_or_default(),
        starts_at,
        ends_at,
        capacity,
        booking_opens_at,
        booking_closes_at,
        cancel_deadline,
        waitlist: obj.optional("waitlist", body::boolean)?.unwrap_or(true),
        status: obj
            .optional("status", body::parsed::<EventStatus>)?
            .unwrap_or(EventStatus::Published),
        quotas,
        eligibility: obj.optional("eligibility", json_of)?.unwrap_or_default(),
        offer_hours: obj
            .optional("offer_hours", body::int_in(1, 24 * 14))?
            .map(|h| h as u32),
    };
    let event = state
        .store
        .create_event(draft, Some(caller.user.id), state.auth.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(event_doc(&event, crs, None))).into_response())
}

/// A booking by its path id.
async fn load_booking(
    state: &AppState,
    id: &str,
) -> Result<(BookingId, crate::store::BookingRow), ApiError> {
    let id: BookingId = id
        .parse()
        .map_err(|e: crate::domain::event::BadBookingId| ApiError::param("id", e.to_string()))?;
    let row = state
        .store
        .get_booking(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no booking with id {id}")))?;
    Ok((id, row))
}

/// Is the caller a manager of the event's site, or an admin?
fn manages_event(caller: &Caller, event: &Event) -> bool {
    event.draft.site_id.is_some_and(|s| caller.user.manages(s)) || caller.user.role == Role::Admin
}

fn event_id(id: &str) -> Result<EventId, ApiError> {
    id.parse()
        .map_err(|e: crate::domain::event::BadEventId| ApiError::param("id", e.to_string()))
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "Event id"), ("crs" = Option<String>, Query, description = "wgs84 (default), gcj02 or bd09")),
    responses(
        (status = 200, description = "The event, with seats left", body = EventDoc),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn event_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventDoc>, ApiError> {
    let id = event_id(&id)?;
    let crs = Params::parse(raw.as_deref())?.crs()?;
    let e = state
        .store
        .get_event(id)
        .await?
        .filter(|e| e.draft.status != EventStatus::Draft)
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    Ok(Json(event_doc(&e, crs, None)))
}

#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    pub crs: String,
    pub items: Vec<EventDoc>,
}

/// Published events near a point, nearest first, with seats left.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(
        ("lat" = f64, Query, description = "Latitude in crs"),
        ("lon" = f64, Query, description = "Longitude in crs"),
        ("radius_m" = Option<f64>, Query, description = "Up to this far (default 50 km, at most 2,000 km)"),
        ("kind" = Option<String>, Query, description = "training, recuperation or matchmaking"),
        ("from" = Option<String>, Query, description = "Events ending after this RFC 3339 time (default now)"),
        ("to" = Option<String>, Query, description = "Events starting before this RFC 3339 time (default a year on)"),
        ("crs" = Option<String>, Query, description = "wgs84 (default), gcj02 or bd09"),
    ),
    responses(
        (status = 200, description = "Events, nearest first", body = EventsResponse),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn find_events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<EventsResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let lat = p.required("lat", |v| params::in_range(v, -90.0, 90.0))?;
    let lon = p.required("lon", |v| params::in_range(v, -180.0, 180.0))?;
    let radius = p
        .optional("radius_m", |v| params::in_range(v, 1.0, 2_000_000.0))?
        .unwrap_or(50_000.0);
    let kind = p.optional("kind", |v| v.parse::<EventKind>())?;
    let now = state.auth.clock.now();
    let from = p.optional("from", params::rfc3339)?.unwrap_or(now);
    let to = p
        .optional("to", params::rfc3339)?
        .unwrap_or(now + chrono::Duration::days(366));
    let (wlat, wlon) = to_wgs84(crs, lat, lon);
    let origin = LatLon::new(wlat, wlon).map_err(|e| ApiError::param("lat", e.to_string()))?;
    let mut found: Vec<(f64, Event)> = state
        .store
        .published_events(from, to)
        .await?
        .into_iter()
        .filter(|e| kind.is_none_or(|k| e.draft.kind == k))
        .filter_map(|e| {
            let at = LatLon::new(e.draft.lat, e.draft.lon).ok()?;
            let d = haversine_m(origin, at);
            (d <= radius).then_some((d, e))
        })
        .collect();
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Json(EventsResponse {
        crs: crs.as_str().to_owned(),
        items: found
            .iter()
            .take(200)
            .map(|(d, e)| event_doc(e, crs, Some(*d)))
            .collect(),
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
        (status = 201, description = "Confirmed, or waitlisted with its position", body = Booking),
        (status = 403, description = "Not eligible; `rule` names the rule", body = Problem, content_type = "application/problem+json"),
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
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 100)
                .ok_or_else(|| {
                    ApiError::param("Idempotency-Key", "1–100 visible ASCII characters")
                })?;
            Some(k.to_owned())
        }
        None => None,
    };
    let hash = crate::auth::sha256_hex(&[id.to_string().as_bytes(), b"\n", &body].concat());
    let (outcome, replayed) = state
        .store
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
            StoreError::KeyReuse => ApiError::Unprocessable {
                param: "Idempotency-Key".into(),
                detail: "this key was used with a different request".into(),
                position: None,
            },
            e => e.into(),
        })?;
    let outcome = match outcome {
        BookOutcome::Booked { booking } => BookOutcome::Booked {
            booking: with_code(&state, booking).await?,
        },
        other => other,
    };
    let mut resp = outcome_response(outcome);
    if replayed {
        resp.headers_mut().insert(
            "idempotent-replayed",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(resp)
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
        (status = 422, description = "Past the cancel deadline", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Booking>, ApiError> {
    let (id, row) = load_booking(&state, &id).await?;
    let event = state
        .store
        .get_event(row.event)
        .await?
        .ok_or(StoreError::NotFound)?;
    let manager = manages_event(&caller, &event);
    if row.user != caller.user.id && !manager {
        return Err(ApiError::forbidden("not your booking"));
    }
    let now = state.auth.clock.now();
    if !manager && now >= event.draft.cancel_deadline {
        return Err(ApiError::unprocessable(
            "cancel_deadline",
            format!(
                "cancellations closed at {}",
                event.draft.cancel_deadline.to_rfc3339()
            ),
        ));
    }
    let (row, _promoted) = state.store.cancel_booking(id, now).await?;
    Ok(Json(row.booking))
}

#[derive(Serialize, ToSchema)]
pub struct MyBookings {
    /// Upcoming first (soonest first), then past (latest first).
    pub items: Vec<MyBooking>,
}

#[derive(Serialize, ToSchema)]
pub struct MyBooking {
    #[serde(flatten)]
    pub booking: Booking,
    pub event: EventSummary,
    /// The event has not ended yet.
    pub upcoming: bool,
}

#[derive(Serialize, ToSchema)]
pub struct EventSummary {
    #[schema(value_type = String)]
    pub id: String,
    pub kind: EventKind,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: EventStatus,
}

#[utoipa::path(
    get,
    path = "/v1/me/bookings",
    tag = "events",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's bookings, oldest first", body = MyBookings),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_bookings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MyBookings>, ApiError> {
    let now = state.auth.clock.now();
    let mut rows = state.store.user_bookings(caller.user.id).await?;
    let offered: std::collections::BTreeSet<EventId> = rows
        .iter()
        .filter(|r| r.booking.status == crate::domain::event::BookingStatus::Offered)
        .map(|r| r.event)
        .collect();
    // Lapse pending offers first; read again only if there were any.
    let mut lapsed = 0;
    for e in offered {
        lapsed += state.store.expire_offers(e, now).await?;
    }
    if lapsed > 0 {
        rows = state.store.user_bookings(caller.user.id).await?;
    }
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(e) = state.store.get_event(r.event).await? else {
            continue;
        };
        let d = &e.draft;
        items.push(MyBooking {
            booking: with_code(&state, r.booking).await?,
            upcoming: d.ends_at > now,
            event: EventSummary {
                id: e.id.to_string(),
                kind: d.kind,
                title: d.title.clone(),
                starts_at: d.starts_at,
                ends_at: d.ends_at,
                status: d.status,
            },
        });
    }
    items.sort_by(|a, b| match (a.upcoming, b.upcoming) {
        (true, true) => a.event.starts_at.cmp(&b.event.starts_at),
        (false, false) => b.event.starts_at.cmp(&a.event.starts_at),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
    });
    Ok(Json(MyBookings { items }))
}

/// The VTIMEZONE the entries refer to: China has kept UTC+8 without daylight
/// saving since 1991.
const SHANGHAI_VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\nTZID:Asia/Shanghai\r\nBEGIN:STANDARD\r\n\
DTSTART:19910915T000000\r\nTZOFFSETFROM:+0800\r\nTZOFFSETTO:+0800\r\nTZNAME:CST\r\n\
END:STANDARD\r\nEND:VTIMEZONE\r\n";

/// An RFC 5545 calendar with one entry for a booking, in Asia/Shanghai time.
pub fn booking_ics(booking: &Booking, event: &Event, location: &str, now: DateTime<Utc>) -> String {
    use crate::domain::event::BookingStatus;
    use icalendar::{Calendar, CalendarDateTime, Component, EventLike};
    let local = |t: DateTime<Utc>| CalendarDateTime::WithTimezone {
        date_time: t
            .with_timezone(&crate::domain::hours::SHANGHAI)
            .naive_local(),
        tzid: "Asia/Shanghai".to_owned(),
    };
    let d = &event.draft;
    let status = match booking.status {
        BookingStatus::Confirmed | BookingStatus::CheckedIn => icalendar::EventStatus::Confirmed,
        BookingStatus::Waitlisted | BookingStatus::Offered => icalendar::EventStatus::Tentative,
        BookingStatus::Cancelled | BookingStatus::NoShow => icalendar::EventStatus::Cancelled,
    };
    let entry = icalendar::Event::new()
        .uid(&format!("{}@yizhan", booking.id))
        .timestamp(now)
        .summary(&d.title)
        .description(&d.description)
        .location(location)
        .starts(local(d.starts_at))
        .ends(local(d.ends_at))
        .status(status)
        .add_property("GEO", format!("{:.6};{:.6}", d.lat, d.lon))
        .done();
    let text = Calendar::new()
        .name(&d.title)
        .push(entry)
        .done()
        .to_string();
    // The crate writes VEVENTs only; the zone they name goes before them.
    match text.find("BEGIN:VEVENT") {
        Some(i) => format!("{}{SHANGHAI_VTIMEZONE}{}", &text[..i], &text[i..]),
        None => text,
    }
}

/// A booking as JSON, or `{id}.ics`: its calendar entry (RFC 5545, Asia/Shanghai
/// time) for the phone's calendar. The holder, the event's site managers and admins.
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Booking id, or the id followed by `.ics` for a calendar entry")),
    responses(
        (status = 200, description = "The booking (JSON), or `text/calendar`", body = Booking),
        (status = 403, description = "Not your booking", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn booking_or_ics(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (id, ics) = match id.strip_suffix(".ics") {
        Some(id) => (id.to_owned(), true),
        None => (id, false),
    };
    let (_, row) = load_booking(&state, &id).await?;
    let event = state
        .store
        .get_event(row.event)
        .await?
        .ok_or(StoreError::NotFound)?;
    let manager = manages_event(&caller, &event);
    if row.user != caller.user.id && !manager {
        return Err(ApiError::forbidden("not your booking"));
    }
    if !ics {
        let b = if row.user == caller.user.id {
            with_code(&state, row.booking.clone()).await?
        } else {
            row.booking.clone()
        };
        return Ok(Json(b).into_response());
    }
    let location = match (&event.draft.venue_name, event.draft.site_id) {
        (Some(v), _) => v.clone(),
        (None, Some(s)) => match state.store.get_site(s).await? {
            Some(site) => format!("{} {}", site.draft.name, site.draft.address),
            None => String::new(),
        },
        (None, None) => String::new(),
    };
    let body = booking_ics(&row.booking, &event, &location, state.auth.clock.now());
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}

/// The check-in code of a booking: its id and an HMAC-SHA256 tag (80 bits)
/// under the server's key, URL-safe base64, 24 characters. It can be checked
/// without a lookup and cannot be made without the key.
pub fn checkin_code(key: &[u8], id: BookingId) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let idb = id.get().to_be_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(b"yizhan-checkin:");
    mac.update(&idb);
    let tag = mac.finalize().into_bytes();
    let mut raw = idb.to_vec();
    raw.extend_from_slice(&tag[..10]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The booking a genuine code names.
pub fn verify_checkin_code(key: &[u8], code: &str) -> Option<BookingId> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(code.trim())
        .ok()?;
    if raw.len() != 18 {
        return None;
    }
    let id = BookingId::from_u64(u64::from_be_bytes(raw[..8].try_into().ok()?))?;
    let expected = checkin_code(key, id);
    // Constant-time comparison of the tags.
    let a = expected.as_bytes();
    let b = code.trim().as_bytes();
    (a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
        .then_some(id)
}

async fn checkin_key(state: &AppState) -> Result<&[u8], ApiError> {
    let key = state
        .checkin_key
        .get_or_try_init(|| state.store.secret("checkin-hmac"))
        .await?;
    Ok(key)
}

/// Fill in the holder's check-in code where the booking holds a seat.
async fn with_code(state: &AppState, mut b: Booking) -> Result<Booking, ApiError> {
    use crate::domain::event::BookingStatus;
    if matches!(
        b.status,
        BookingStatus::Confirmed | BookingStatus::CheckedIn
    ) && let Ok(id) = b.id.parse::<BookingId>()
    {
        b.checkin_code = Some(checkin_code(checkin_key(state).await?, id));
    }
    Ok(b)
}

#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    pub booking: Booking,
    /// When the booking was first checked in.
    pub checked_in_at: DateTime<Utc>,
    /// This scan was not the first: the person had already checked in.
    pub already_checked_in: bool,
}

/// Scan a check-in code at the door (managers of the event's site, admins).
/// A second scan answers `already_checked_in` with the first time; a code for
/// another event is refused.
#[utoipa::path(
    post,
    path = "/v1/checkins",
    tag = "events",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"event_id\": \"e…\", \"code\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Checked in (or already)", body = CheckinResponse),
        (status = 403, description = "Not a manager of the event's site", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The booking does not hold a seat", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a genuine code, or one for another event", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn check_in(
    State(state): State<AppState>,
    caller: Caller,
    obj: JsonObject,
) -> Result<Json<CheckinResponse>, ApiError> {
    obj.only(&["event_id", "code"])?;
    let event_id = obj.required("event_id", body::parsed::<EventId>)?;
    let code = obj.required("code", body::text(64))?;
    let event = state
        .store
        .get_event(event_id)
        .await?
        .ok_or_else(|| ApiError::unprocessable("event_id", "no such event"))?;
    let manager = manages_event(&caller, &event);
    if !manager {
        return Err(ApiError::forbidden(
            "only the event's site managers check people in",
        ));
    }
    let id = verify_checkin_code(checkin_key(&state).await?, &code)
        .ok_or_else(|| ApiError::unprocessable("code", "not a genuine check-in code"))?;
    let row = state
        .store
        .get_booking(id)
        .await?
        .ok_or_else(|| ApiError::unprocessable("code", "not a genuine check-in code"))?;
    if row.event != event_id {
        return Err(ApiError::unprocessable(
            "code",
            "this code is for another event",
        ));
    }
    let (at, again) = state.store.check_in(id, state.auth.clock.now()).await?;
    let row = state
        .store
        .get_booking(id)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(Json(CheckinResponse {
        booking: row.booking,
        checked_in_at: at,
        already_checked_in: again,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Attendee {
    #[schema(value_type = String)]
    pub booking_id: String,
    pub user_id: i64,
    pub display_name: Option<String>,
    /// Masked (`138****5678`).
    pub phone: String,
    pub status: crate::domain::event::BookingStatus,
    pub quota: Option<String>,
    pub waitlist_position: Option<u32>,
    pub checked_in_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct AttendeesResponse {
    pub items: Vec<Attendee>,
}

/// Everyone booked on an event (managers of its site, admins), as JSON or,
/// with `format=csv` or `Accept: text/csv`, as CSV. After the event ends,
/// confirmed bookings that never checked in are marked no-shows.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/attendees",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"), ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses(
        (status = 200, description = "Attendees", body = AttendeesResponse),
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
    let event = state
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    let manager = manages_event(&caller, &event);
    if !manager {
        return Err(ApiError::forbidden(
            "only the event's site managers see its attendees",
        ));
    }
    state
        .store
        .mark_no_shows(id, state.auth.clock.now())
        .await?;
    let mut items = Vec::new();
    for (row, user, checked) in state.store.event_bookings(id).await? {
        let mut b = row.booking;
        if b.status == crate::domain::event::BookingStatus::Waitlisted
            && let Ok(bid) = b.id.parse::<BookingId>()
            && let Some(r) = state.store.get_booking(bid).await?
        {
            b.waitlist_position = r.booking.waitlist_position;
        }
        items.push(Attendee {
            booking_id: b.id,
            user_id: user.id,
            display_name: user.profile.display_name,
            phone: user.phone.masked(),
            status: b.status,
            quota: b.quota,
            waitlist_position: b.waitlist_position,
            checked_in_at: checked,
        });
    }
    if !csv {
        return Ok(Json(AttendeesResponse { items }).into_response());
    }
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
    for a in &items {
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
            a.checked_in_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ])
        .map_err(|e| ApiError::Internal(e.into()))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
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
    let (id, row) = load_booking(&state, &id).await?;
    if row.user != caller.user.id {
        return Err(ApiError::forbidden("not your booking"));
    }
    let row = state.store.accept_offer(id, state.auth.clock.now()).await?;
    Ok(Json(with_code(&state, row.booking).await?))
}

/// Edit an event (its site's managers, admins): `title, description,
/// starts_at, ends_at, capacity, booking_opens_at, booking_closes_at,
/// cancel_deadline, waitlist` and `status`. A larger capacity moves the waitlist
/// up at once; one below the seats held is refused. `status: cancelled`
/// cancels every booking in the same transaction.
#[utoipa::path(
    patch,
    path = "/v1/events/{id}",
    tag = "events",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id")),
    request_body(content = Object, description = "`{\"status\": \"cancelled\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The event", body = EventDoc),
        (status = 403, description = "Not a manager of the event's site", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    obj: JsonObject,
) -> Result<Json<EventDoc>, ApiError> {
    let id = event_id(&id)?;
    obj.only(&[
        "title",
        "description",
        "starts_at",
        "ends_at",
        "capacity",
        "booking_opens_at",
        "booking_closes_at",
        "cancel_deadline",
        "waitlist",
        "status",
    ])?;
    let event = state
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    let manager = manages_event(&caller, &event);
    if !manager {
        return Err(ApiError::forbidden(
            "only the event's site managers edit it",
        ));
    }
    let mut event = event;
    let mut d = event.draft.clone();
    if let Some(t) = obj.optional("title", body::text(100))? {
        d.title = t;
    }
    if let Some(t) = obj.optional("description", body::multiline_text(5000))? {
        d.description = t;
    }
    for (name, field) in [
        ("starts_at", &mut d.starts_at),
        ("ends_at", &mut d.ends_at),
        ("booking_opens_at", &mut d.booking_opens_at),
        ("booking_closes_at", &mut d.booking_closes_at),
        ("cancel_deadline", &mut d.cancel_deadline),
    ] {
        if let Some(t) = obj.optional(name, rfc3339)? {
            *field = t;
        }
    }
    if d.ends_at <= d.starts_at {
        return Err(ApiError::unprocessable(
            "ends_at",
            "must be after starts_at",
        ));
    }
    if d.booking_closes_at <= d.booking_opens_at {
        return Err(ApiError::unprocessable(
            "booking_closes_at",
            "must be after booking_opens_at",
        ));
    }
    if let Some(c) = obj.optional("capacity", body::int_in(1, 100_000))? {
        d.capacity = c as u32;
        if d.quotas.iter().map(|q| u64::from(q.seats)).sum::<u64>() > u64::from(d.capacity) {
            return Err(ApiError::unprocessable(
                "capacity",
                "below the seats the quotas reserve",
            ));
        }
    }
    if let Some(w) = obj.optional("waitlist", body::boolean)? {
        d.waitlist = w;
    }
    if d != event.draft {
        event = state
            .store
            .update_event(id, d, state.auth.clock.now())
            .await
            .map_err(|e| match e {
                StoreError::WrongState(why) => ApiError::unprocessable("capacity", why),
                e => e.into(),
            })?;
    }
    if let Some(status) = obj.optional("status", body::parsed::<EventStatus>)? {
        if event.draft.status == EventStatus::Cancelled && status != EventStatus::Cancelled {
            return Err(ApiError::unprocessable(
                "status",
                "a cancelled event stays cancelled",
            ));
        }
        event = state
            .store
            .set_event_status(id, status, state.auth.clock.now())
            .await?;
    }
    Ok(Json(event_doc(&event, Crs::Wgs84, None)))
}
