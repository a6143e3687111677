//! Check-in at the door: the event's site managers scan the code a booking's
//! holder shows (see `domain/checkin.rs`).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::Caller;
use crate::domain::checkin;
use crate::domain::event::{Booking, EventId};
use crate::domain::user::User;
use crate::error::{ApiError, Problem};
use crate::store::{Commands, StoreError};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/checkins", post(check_in))
}

/// A scanned check-in code: who, and whether they were checked in already.
#[derive(Serialize, ToSchema)]
pub struct CheckinResponse {
    pub booking: Booking,
    /// When the booking was first checked in.
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
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
    check_in_code(&state, &caller.user, &obj).await.map(Json)
}

/// Check a code in as `user` (`{event_id, code}` in `obj`): `POST
/// /v1/checkins` and the managers' console both come here.
pub async fn check_in_code(
    state: &AppState,
    user: &User,
    obj: &JsonObject,
) -> Result<CheckinResponse, ApiError> {
    let event_id = obj.required("event_id", body::parsed::<EventId>)?;
    let event = state
        .store
        .get_event(event_id)
        .await?
        .ok_or_else(|| ApiError::unprocessable("event_id", "no such event"))?;
    if !event.managed_by(user) {
        return Err(ApiError::forbidden(
            "only the event's site managers check people in",
        ));
    }
    // The rest of the body is judged once the caller may check people in here.
    obj.only(&["event_id", "code"])?;
    let code = obj.required("code", body::text(64))?;
    let not_genuine = || ApiError::unprocessable("code", "not a genuine check-in code");
    let id = checkin::verify(&state.checkin_key, &code).ok_or_else(not_genuine)?;
    let done = state
        .writer
        .check_in(event_id, id, state.auth.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_genuine(),
            e => e.into(),
        })?;
    Ok(CheckinResponse {
        booking: done.booking.to_api(None),
        checked_in_at: done.checked_in_at,
        already_checked_in: done.already,
    })
}
