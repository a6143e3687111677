//! Draws (抽签, issue 26): applying, withdrawing, a person's applications, and
//! the draw's public record that anyone can recompute with
//! `scripts/verify-draw`. The rules live in `domain/application.rs` and the
//! recipe in `domain/draw.rs`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::bookings::{idempotency_key, mark_replayed};
use super::caller::Caller;
use super::events::{event_id, load_event};
use super::paging::{Page, id_key, ms};
use crate::domain::application::{
    Application, ApplicationId, ApplicationRecord, ApplyOutcome, BadApplicationId,
};
use crate::domain::event::{Event, EventStatus};
use crate::error::{ApiError, Problem};
use crate::store::{ApplyCommand, Commands, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{id}/applications", post(apply))
        .route("/v1/applications/{id}", get(application).delete(withdraw))
        .route("/v1/me/applications", get(my_applications))
        .route("/v1/events/{id}/draw", get(draw_record))
}

/// The application as its holder sees it now: with its booking after the draw.
pub async fn application_doc(
    state: &AppState,
    a: &ApplicationRecord,
) -> Result<Application, ApiError> {
    let booking = match a.booking {
        Some(b) => state.store.get_booking(b).await?,
        None => None,
    };
    Ok(a.to_api(booking.as_ref().map(|v| (&v.record, v.waitlist_position))))
}

/// Apply for a place in a draw (`allocation: draw`), any time in the
/// booking window: when you apply never matters. One application per person;
/// eligibility is checked now and again at the draw. Send an
/// `Idempotency-Key`: a retry with the same key gets the first answer back.
#[utoipa::path(
    post,
    path = "/v1/events/{id}/applications",
    operation_id = "apply_for_draw",
    tag = "draws",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Event id"), ("Idempotency-Key" = Option<String>, Header, description = "A unique key per application attempt (1–100 characters)")),
    responses(
        (status = 201, description = "Applied", body = Application, headers(("Location" = String, description = "/v1/applications/{id}"), ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request with the same Idempotency-Key"))),
        (status = 403, description = "Not eligible; `param` names the rule", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already applied", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a draw (`allocation`), outside the window, not open, or a reused key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    let key = idempotency_key(&headers)?;
    let hash = crate::auth::sha256_hex(
        &[b"applications\n", id.to_string().as_bytes(), b"\n", &body].concat(),
    );
    let applied = state
        .writer
        .apply(ApplyCommand {
            user: caller.user.clone(),
            event: id,
            key,
            request_hash: hash,
            at: state.auth.clock.now(),
        })
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("no event with id {id}")),
            e => e.into(),
        })?;
    let resp = match applied.outcome {
        ApplyOutcome::Applied { application } => {
            let location = format!("/v1/applications/{}", application.id);
            let mut r = (StatusCode::CREATED, Json(application)).into_response();
            if let Ok(v) = header::HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        ApplyOutcome::AlreadyApplied { application_id } => {
            ApiError::Conflict(format!("you applied already: application {application_id}"))
                .into_response()
        }
        ApplyOutcome::NotEligible { rule, detail } => ApiError::Forbidden {
            detail: format!("{rule}: {detail}"),
            param: Some(rule),
        }
        .into_response(),
        ApplyOutcome::OutsideWindow { detail } => {
            ApiError::unprocessable("booking_window", detail).into_response()
        }
        ApplyOutcome::NotOpen { detail } => {
            ApiError::unprocessable("status", detail).into_response()
        }
        ApplyOutcome::NotADraw => ApiError::unprocessable(
            "allocation",
            "this event is first come, first served: book it (POST /v1/events/{id}/bookings)",
        )
        .into_response(),
    };
    Ok(mark_replayed(resp, applied.replayed))
}

fn application_id(id: &str) -> Result<ApplicationId, ApiError> {
    id.parse()
        .map_err(|e: BadApplicationId| ApiError::unknown_id("id", e.to_string()))
}

/// An application: its holder, the event's site managers and admins.
async fn load_application(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<ApplicationRecord, ApiError> {
    let id = application_id(id)?;
    let not_found = || ApiError::NotFound(format!("no application with id {id}"));
    let a = state.store.application(id).await?.ok_or_else(not_found)?;
    if a.user != caller.user.id {
        let event = load_event(state, a.event).await?;
        if !event.managed_by(&caller.user) {
            return Err(not_found());
        }
    }
    Ok(a)
}

/// An application and where it stands: `applied` before the draw; after it
/// `offered`, `confirmed`, `waiting` (with its position) or `cancelled`;
/// `withdrawn`; `not_eligible`.
#[utoipa::path(
    get,
    path = "/v1/applications/{id}",
    operation_id = "get_application",
    tag = "draws",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Application id")),
    responses(
        (status = 200, description = "The application", body = Application),
        (status = 404, description = "No such application of yours", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Application>, ApiError> {
    let a = load_application(&state, &caller, &id).await?;
    Ok(Json(application_doc(&state, &a).await?))
}

/// Withdraw your application before the window closes (after that, the
/// draw includes you; decline an offered place through its booking).
#[utoipa::path(
    delete,
    path = "/v1/applications/{id}",
    operation_id = "withdraw_application",
    tag = "draws",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Application id")),
    responses(
        (status = 200, description = "Withdrawn", body = Application),
        (status = 404, description = "No such application of yours", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The draw was made", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The window has closed (`booking_closes_at`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Application>, ApiError> {
    let id = application_id(&id)?;
    let a = state
        .writer
        .withdraw(id, caller.user.id, state.auth.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(format!("no application with id {id}")),
            e => e.into(),
        })?;
    Ok(Json(application_doc(&state, &a).await?))
}

/// The caller's applications for draws, newest first, a page of them.
#[derive(Serialize, ToSchema)]
pub struct MyApplications {
    /// Newest first.
    pub items: Vec<Application>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Your applications, newest first.
#[utoipa::path(
    get,
    path = "/v1/me/applications",
    tag = "draws",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`")),
    responses(
        (status = 200, description = "Your applications", body = MyApplications),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_applications(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<MyApplications>, ApiError> {
    let page = Page::parse(&super::params::Params::parse(raw.as_deref())?, 2)?;
    let mut items = Vec::new();
    for a in state.store.user_applications(caller.user.id).await? {
        items.push(application_doc(&state, &a).await?);
    }
    // Newest first.
    let (items, next_cursor) = page.of(items, |a| vec![-ms(a.created_at), -id_key(&a.id)]);
    Ok(Json(MyApplications { items, next_cursor }))
}

/// One entrant of a draw: ids only, no names or phones.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entrant {
    /// The application's id.
    pub id: String,
    /// The priority group's name (`null`: no group).
    pub group: Option<String>,
    /// 1-based place in the drawn order.
    pub rank: u32,
}

/// A draw's public record: everything needed to recompute it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DrawRecord {
    pub event_id: String,
    /// `hex(SHA-256(S))`, published when the event was made.
    pub seed_commitment: String,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub draw_at: DateTime<Utc>,
    /// The groups' names, in order.
    pub priority_groups: Vec<String>,
    /// The value mixed into the seed (empty if none); may change until the draw.
    pub public_value: String,
    /// `null` until the draw is made; so are the fields below.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub drawn_at: Option<DateTime<Utc>>,
    /// `hex(S)`: revealed with the draw.
    pub secret: Option<String>,
    /// `hex(SHA-256(entrant ids sorted as strings, joined by "\n"))`.
    pub entrants_hash: Option<String>,
    /// `hex(SHA-256(hex(S) + "\n" + entrants_hash + "\n" + public_value))`.
    pub seed: Option<String>,
    /// Every entrant, by rank (empty before the draw).
    pub entrants: Vec<Entrant>,
    /// The recipe, in words, and how to check it.
    pub recipe: String,
}

pub const RECIPE: &str = "seed_commitment = hex(SHA-256(S)); entrants_hash = hex(SHA-256(the \
     entrants' ids sorted as strings, joined by \"\\n\")); seed = hex(SHA-256(hex(S) + \"\\n\" + \
     entrants_hash + \"\\n\" + public_value)); key(id) = hex(SHA-256(seed + \"\\n\" + id)); order by \
     priority group (in order; no group last), then key ascending; rank = 1-based place. Hex is \
     lower case, strings UTF-8. Check it with scripts/verify-draw.";

/// The draw's record for `event` (a draw event).
pub(crate) async fn record_of(state: &AppState, e: &Event) -> Result<DrawRecord, ApiError> {
    let (Some(plan), Some(seal)) = (&e.draft.draw, &e.seal) else {
        return Err(ApiError::unprocessable(
            "allocation",
            "this event is first come, first served: it has no draw",
        ));
    };
    let drawn = seal.drawn_at.is_some();
    let (secret, entrants) = if drawn {
        let entrants = state
            .store
            .entrants(e.id)
            .await?
            .into_iter()
            .map(|a| Entrant {
                id: a.id.to_string(),
                group: a.group,
                rank: a.rank.unwrap_or(0),
            })
            .collect();
        (state.store.revealed_secret(e.id).await?, entrants)
    } else {
        (None, vec![])
    };
    Ok(DrawRecord {
        event_id: e.id.to_string(),
        seed_commitment: seal.seed_commitment.clone(),
        draw_at: plan.draw_at,
        priority_groups: plan
            .priority_groups
            .iter()
            .map(|g| g.name.clone())
            .collect(),
        public_value: plan.public_value.clone(),
        drawn_at: seal.drawn_at,
        secret,
        entrants_hash: seal.entrants_hash.clone(),
        seed: seal.seed.clone(),
        entrants,
        recipe: RECIPE.to_owned(),
    })
}

/// A draw's public record: the commitment from the start; after the draw
/// the secret, the public value, the entrants' hash, the seed and every
/// entrant's group and rank (application ids only). Anyone can recompute
/// it: `scripts/verify-draw https://…/v1/events/{id}/draw`.
#[utoipa::path(
    get,
    path = "/v1/events/{id}/draw",
    tag = "draws",
    params(("id" = String, Path, description = "Event id")),
    responses(
        (status = 200, description = "The record", body = DrawRecord),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The event has no draw (`allocation`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn draw_record(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DrawRecord>, ApiError> {
    let id = event_id(&id)?;
    let e = Some(load_event(&state, id).await?)
        .filter(|e| e.draft.status != EventStatus::Draft)
        .ok_or_else(|| ApiError::NotFound(format!("no event with id {id}")))?;
    Ok(Json(record_of(&state, &e).await?))
}
