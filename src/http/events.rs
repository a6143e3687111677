//! Events: managers publish them at their sites; workers find them near a
//! point. Bookings, check-ins and attendees have their own modules; the
//! rules all live in `domain/`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::Caller;
use super::params::{self, Params};
use super::sites::out_coords;
use crate::domain::booking::EventPatch;
use crate::domain::coords::{Crs, LatLon, haversine_m, to_wgs84};
use crate::domain::draw::{self, PriorityGroup};
use crate::domain::event::{
    Allocation, DrawPlan, Eligibility, Event, EventDraft, EventId, EventKind, EventStatus, Quota,
};

/// A draw's `offer_hours` when the manager gives none.
pub const DRAW_OFFER_HOURS: u32 = 48;
use crate::domain::site::SiteId;
use crate::domain::user::{Role, User};
use crate::error::{ApiError, Problem};
use crate::store::Commands;
use crate::store::keyed::Keyed;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(create_event).get(find_events))
        .route("/v1/events/{id}", get(event_detail).patch(patch_event))
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
    pub distance_m: Option<f64>,
    pub title: String,
    pub description: String,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub starts_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub ends_at: DateTime<Utc>,
    pub capacity: u32,
    pub seats_left: u32,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub booking_opens_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub booking_closes_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub cancel_deadline: DateTime<Utc>,
    pub waitlist: bool,
    pub status: EventStatus,
    pub quotas: Vec<Quota>,
    pub eligibility: Eligibility,
    pub offer_hours: Option<u32>,
    /// `first_come` (book) or `draw` (apply in the booking window; one draw
    /// at `draw_at`; `GET /v1/events/{id}/draw` is its public record).
    pub allocation: Allocation,
    /// A draw: when it runs.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub draw_at: Option<DateTime<Utc>>,
    /// A draw: in order; a person belongs to the first whose condition they meet.
    pub priority_groups: Option<Vec<PriorityGroup>>,
    /// A draw: the public value mixed into the seed (empty if none).
    pub public_value: Option<String>,
    /// A draw: `hex(SHA-256(S))`, published before anyone applies.
    pub seed_commitment: Option<String>,
    /// A draw: when it was made (`null` until then).
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub drawn_at: Option<DateTime<Utc>>,
}

pub fn event_doc(e: &Event, crs: Crs, distance_m: Option<f64>) -> EventDoc {
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
        allocation: d.allocation(),
        draw_at: d.draw.as_ref().map(|p| p.draw_at),
        priority_groups: d.draw.as_ref().map(|p| p.priority_groups.clone()),
        public_value: d.draw.as_ref().map(|p| p.public_value.clone()),
        seed_commitment: e.seal.as_ref().map(|s| s.seed_commitment.clone()),
        drawn_at: e.drawn_at(),
    }
}

/// A draw's priority groups from a body, each checked (the field named
/// `priority_groups[i].name`).
fn priority_groups(v: &Value) -> Result<Vec<PriorityGroup>, String> {
    json_of(v)
}

fn checked_groups(obj: &JsonObject) -> Result<Option<Vec<PriorityGroup>>, ApiError> {
    let groups = obj.optional("priority_groups", priority_groups)?;
    if let Some(g) = &groups {
        draw::check_groups(g).map_err(|(field, why)| ApiError::unprocessable(field, why))?;
    }
    Ok(groups)
}

/// A draw's public value: one line of at most 200 characters.
fn public_value(v: &Value) -> Result<String, String> {
    let s = v.as_str().ok_or("expected a string")?;
    if s.chars().count() > 200 || s.chars().any(char::is_control) {
        return Err("at most 200 characters on one line".into());
    }
    Ok(s.to_owned())
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
    params(("crs" = Option<String>, Query, description = "Coordinate system of a venue's lat/lon"), ("Idempotency-Key" = Option<String>, Header, description = "A unique key per attempt (1–100 characters): a retry with it gets the event the first attempt created")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = EventDoc, headers(("Location" = String, description = "/v1/events/{id}"), ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key (the event as it is now)"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a manager of the site, nor an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_event(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let crs = Params::parse(raw.as_deref())?.crs()?;
    let target = format!("/v1/events?{}", raw.as_deref().unwrap_or(""));
    let key = super::bookings::keyed(&caller, &headers, &target, &obj)?;
    let (event, replayed) = new_event(&state, &caller.user, &obj, crs, key.as_ref()).await?;
    let location = format!("/v1/events/{}", event.id);
    let resp = (
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, location)],
        Json(event_doc(&event, crs, None)),
    )
        .into_response();
    Ok(super::bookings::mark_replayed(resp, replayed))
}

/// Create an event as `user` from the fields of `obj` (a venue's coordinates
/// in `crs`): `POST /v1/events` and the managers' console both come here.
/// With `key`, a retry of the same request gets the event the first one
/// created, as it is now (`true`: replayed).
pub async fn new_event(
    state: &AppState,
    user: &User,
    obj: &JsonObject,
    crs: Crs,
    key: Option<&Keyed>,
) -> Result<(Event, bool), ApiError> {
    let site_id = obj.optional("site_id", body::parsed::<SiteId>)?;
    match site_id {
        Some(s) if !user.manages(s) => {
            return Err(ApiError::forbidden("you do not manage this site"));
        }
        None if user.role != Role::Admin => {
            return Err(ApiError::forbidden(
                "only an admin may create an event away from a site",
            ));
        }
        _ => {}
    }
    // Fields are judged once the caller may create an event here at all.
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
        "allocation",
        "draw_at",
        "priority_groups",
        "public_value",
    ])?;
    let allocation = obj
        .optional("allocation", body::parsed::<Allocation>)?
        .unwrap_or_default();
    let draw = match allocation {
        Allocation::FirstCome => {
            for field in ["draw_at", "priority_groups", "public_value"] {
                if obj.has(field) {
                    return Err(ApiError::unprocessable(
                        field,
                        "only a draw has this (allocation: draw)",
                    ));
                }
            }
            None
        }
        Allocation::Draw => Some(Box::new(DrawPlan {
            draw_at: obj.optional("draw_at", rfc3339)?.ok_or_else(|| {
                ApiError::unprocessable("draw_at", "a draw needs the time it runs")
            })?,
            priority_groups: checked_groups(obj)?.unwrap_or_default(),
            public_value: obj
                .optional("public_value", public_value)?
                .unwrap_or_default(),
        })),
    };
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
    let capacity = obj.required("capacity", body::int_in(1, 100_000))? as u32;
    let booking_opens_at = obj.required("booking_opens_at", rfc3339)?;
    let booking_closes_at = obj
        .optional("booking_closes_at", rfc3339)?
        .unwrap_or(starts_at);
    let cancel_deadline = obj
        .optional("cancel_deadline", rfc3339)?
        .unwrap_or(starts_at);
    let quotas: Vec<Quota> = obj.optional("quotas", json_of)?.unwrap_or_default();
    for (i, q) in quotas.iter().enumerate() {
        q.check_value()
            .map_err(|why| ApiError::unprocessable(format!("quotas[{i}].value"), why))?;
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
            .map(|h| h as u32)
            // A draw's winners are offered their places: two days unless said.
            .or(draw.as_ref().map(|_| DRAW_OFFER_HOURS)),
        draw,
    };
    draft
        .validate()
        .map_err(|(field, detail)| ApiError::unprocessable(field, detail))?;
    Ok(state
        .store
        .create_event_keyed(draft, Some(user.id), state.auth.clock.now(), key)
        .await?)
}

/// The event named by a path id.
pub(crate) fn event_id(id: &str) -> Result<EventId, ApiError> {
    id.parse()
        .map_err(|e: crate::domain::event::BadEventId| ApiError::unknown_id("id", e.to_string()))
}

/// The event, or 404.
pub(crate) async fn load_event(state: &AppState, id: EventId) -> Result<Event, ApiError> {
    state
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))
}

/// A published event, with its seats left (and, for a draw, its commitment).
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
    let e = Some(load_event(&state, id).await?)
        .filter(|e| e.draft.status != EventStatus::Draft)
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    Ok(Json(event_doc(&e, crs, None)))
}

/// Published events near a point, nearest first, a page of them.
#[derive(Serialize, ToSchema)]
pub struct EventsResponse {
    pub crs: String,
    pub items: Vec<EventDoc>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
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
        ("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"),
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
    let page = super::paging::Page::parse(&p, 2)?;
    let now = state.auth.clock.now();
    let from = p.optional("from", params::rfc3339)?.unwrap_or(now);
    let to = p
        .optional("to", params::rfc3339)?
        .unwrap_or(now + chrono::Duration::days(366));
    let (wlat, wlon) = to_wgs84(crs, lat, lon);
    let origin = LatLon::new(wlat, wlon).map_err(|e| ApiError::param("lat", e.to_string()))?;
    let found: Vec<(f64, Event)> = state
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
    // Nearest first (to the millimetre), then by id.
    let (found, next_cursor) = page.of(found, |(d, e)| {
        vec![(d * 1000.0).round() as i64, e.id.as_i64()]
    });
    Ok(Json(EventsResponse {
        crs: crs.as_str().to_owned(),
        items: found
            .iter()
            .map(|(d, e)| event_doc(e, crs, Some(*d)))
            .collect(),
        next_cursor,
    }))
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
    let event = edit_event(&state, &caller.user, id, &obj).await?;
    Ok(Json(event_doc(&event, Crs::Wgs84, None)))
}

/// Edit event `id` as `user` with the fields of `obj`, all or nothing:
/// `PATCH /v1/events/{id}` and the managers' console both come here.
pub async fn edit_event(
    state: &AppState,
    user: &User,
    id: EventId,
    obj: &JsonObject,
) -> Result<Event, ApiError> {
    let event = load_event(state, id).await?;
    if !event.managed_by(user) {
        return Err(ApiError::forbidden(
            "only the event's site managers edit it",
        ));
    }
    // Fields are judged once the caller may edit the event at all.
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
        "draw_at",
        "priority_groups",
        "public_value",
    ])?;
    // Every field is parsed before anything is written: a bad one changes nothing.
    let patch = EventPatch {
        title: obj.optional("title", body::text(100))?,
        description: obj.optional("description", body::multiline_text(5000))?,
        starts_at: obj.optional("starts_at", rfc3339)?,
        ends_at: obj.optional("ends_at", rfc3339)?,
        capacity: obj
            .optional("capacity", body::int_in(1, 100_000))?
            .map(|c| c as u32),
        booking_opens_at: obj.optional("booking_opens_at", rfc3339)?,
        booking_closes_at: obj.optional("booking_closes_at", rfc3339)?,
        cancel_deadline: obj.optional("cancel_deadline", rfc3339)?,
        waitlist: obj.optional("waitlist", body::boolean)?,
        status: obj.optional("status", body::parsed::<EventStatus>)?,
        draw_at: obj.optional("draw_at", rfc3339)?,
        priority_groups: checked_groups(obj)?,
        public_value: obj.optional("public_value", public_value)?,
    };
    Ok(state
        .writer
        .edit_event(id, &patch, state.auth.clock.now())
        .await?)
}
