//! Membership (入会, 转会): a worker joins a union by scanning its code (or by
//! choosing the nearest union), a union's admins approve or reject
//! applications, and a member transfers to another union. Every change is a
//! store command that asks the rules in `domain/union.rs`.

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
use super::body::{self, JsonObject};
use super::bookings::{keyed, mark_replayed};
use super::caller::Caller;
use super::paging::{Page, id_key, ms};
use super::unions::{load_union, run_union};
use crate::domain::union::{
    self, BadMembershipId, MembershipId, MembershipRecord, MembershipStatus, UnionId,
};
use crate::error::{ApiError, Problem};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/memberships", post(join))
        .route("/v1/memberships/{id}", get(membership))
        .route("/v1/memberships/{id}/approve", post(approve))
        .route("/v1/memberships/{id}/reject", post(reject))
        .route("/v1/memberships/{id}/transfer", post(transfer))
        .route("/v1/memberships/{id}/withdraw", post(withdraw))
        .route("/v1/me/memberships", get(my_memberships))
}

/// A membership (or application) as the API shows it.
#[derive(Clone, Serialize, ToSchema)]
pub struct MembershipDoc {
    #[schema(value_type = String)]
    pub id: String,
    #[schema(value_type = String)]
    pub union_id: String,
    pub union_name: String,
    pub status: MembershipStatus,
    /// Issued when the membership became active: the union's adcode, then a number.
    pub member_no: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub applied_at: DateTime<Utc>,
    /// When the union's admins approved or rejected it, or its applicant withdrew it.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub decided_at: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub activated_at: Option<DateTime<Utc>>,
    /// When it ended (a transfer).
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The membership this one was transferred from.
    #[schema(value_type = Option<String>)]
    pub transferred_from: Option<String>,
}

pub(super) fn membership_doc(m: &MembershipRecord, union_name: &str) -> MembershipDoc {
    MembershipDoc {
        id: m.id.to_string(),
        union_id: m.union.to_string(),
        union_name: union_name.to_owned(),
        status: m.status,
        member_no: m.member_no.clone(),
        applied_at: m.applied_at,
        decided_at: m.decided_at,
        reason: m.reason.clone(),
        activated_at: m.activated_at,
        ended_at: m.ended_at,
        transferred_from: m.transferred_from.map(|f| f.to_string()),
    }
}

async fn doc(state: &AppState, m: &MembershipRecord) -> Result<MembershipDoc, ApiError> {
    let name = state
        .store
        .get_union(m.union)
        .await?
        .map(|u| u.draft.name)
        .unwrap_or_default();
    Ok(membership_doc(m, &name))
}

fn membership_id(id: &str) -> Result<MembershipId, ApiError> {
    id.parse()
        .map_err(|e: BadMembershipId| ApiError::unknown_id("id", e.to_string()))
}

async fn load_membership(state: &AppState, id: MembershipId) -> Result<MembershipRecord, ApiError> {
    state
        .store
        .get_membership(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no membership with id {id}")))
}

/// The union a join or transfer names: `code` (a scanned join code, or the
/// join URL that carries it) or `union_id` (the nearest union, chosen on a
/// map), one of them.
async fn target_union(state: &AppState, obj: &JsonObject) -> Result<UnionId, ApiError> {
    let code = obj.optional("code", body::text(500))?;
    let id = obj.optional("union_id", body::parsed::<UnionId>)?;
    match (code, id) {
        (Some(_), Some(_)) => Err(ApiError::unprocessable(
            "union_id",
            "give code or union_id, not both",
        )),
        (None, None) => Err(ApiError::unprocessable(
            "code",
            "required: the union's join code (or union_id)",
        )),
        (None, Some(id)) => {
            load_union(state, id)
                .await
                .map_err(|_| ApiError::unprocessable("union_id", "no such union"))?;
            Ok(id)
        }
        (Some(code), None) => {
            let not_genuine = || ApiError::unprocessable("code", "not a genuine join code");
            let (id, version) = union::verify_join_code(&state.join_key, union::code_in(&code))
                .ok_or_else(not_genuine)?;
            let union = state.store.get_union(id).await?.ok_or_else(not_genuine)?;
            if union.code_version != version {
                return Err(ApiError::unprocessable(
                    "code",
                    "this join code has been replaced by a newer one: scan the union's current code",
                ));
            }
            Ok(id)
        }
    }
}

/// What the store's refusals mean to the person joining.
fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::unprocessable("union_id", "no such union"),
        StoreError::Duplicate(_) => {
            ApiError::Conflict("you have an open membership or application already".into())
        }
        e => e.into(),
    }
}

fn created(doc: MembershipDoc, replayed: bool) -> Response {
    let resp = (
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/memberships/{}", doc.id))],
        Json(doc),
    )
        .into_response();
    mark_replayed(resp, replayed)
}

/// Join a union (入会), signed in with a name in the profile: `{"code": …}`
/// from its QR code (the join URL is accepted too), or `{"union_id": …}` for
/// the nearest union found by location. An `auto` union makes the
/// membership `active` at once, with a member number; a `review` union makes
/// it `pending` until one of its admins decides.
#[utoipa::path(
    post,
    path = "/v1/memberships",
    tag = "unions",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "A unique key per attempt (1–100 characters): a retry with it gets the membership the first attempt made")),
    request_body(content = Object, description = "`{\"code\": \"…\"}` or `{\"union_id\": \"u…\"}`", content_type = "application/json"),
    responses(
        (status = 201, description = "Active or pending", body = MembershipDoc, headers(("Location" = String), ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key (the membership as it is now)"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A member already (transfer instead), or an application is pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a genuine or no longer current code, no such union, or no display_name in the profile", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let key = keyed(&caller, &headers, "/v1/memberships", &obj)?;
    obj.only(&["code", "union_id"])?;
    let union = target_union(&state, &obj).await?;
    let (m, replayed) = state
        .store
        .join_union_keyed(&caller.user, union, state.auth.clock.now(), key.as_ref())
        .await
        .map_err(refused)?;
    Ok(created(doc(&state, &m).await?, replayed))
}

/// Move an active membership to another union (转会) in one step:
/// `{"code": …}` (or `{"union_id": …}`). Active there at once if it takes
/// members automatically (the old membership ends, `transferred`); pending if
/// it reviews (the old one stays active until the new one is approved).
#[utoipa::path(
    post,
    path = "/v1/memberships/{id}/transfer",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The active membership to move"), ("Idempotency-Key" = Option<String>, Header, description = "A unique key per attempt (1–100 characters): a retry with it gets the membership the first attempt made")),
    request_body(content = Object, description = "`{\"code\": \"…\"}` or `{\"union_id\": \"u…\"}`", content_type = "application/json"),
    responses(
        (status = 201, description = "The new membership, active or pending", body = MembershipDoc, headers(("Location" = String), ("Idempotent-Replayed" = String, description = "`true` when this answers an earlier request with the same Idempotency-Key (the membership as it is now)"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the caller's membership", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such membership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not active, or an application is pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a genuine or no longer current code, no such union, or the same union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let id = membership_id(&id)?;
    let key = keyed(
        &caller,
        &headers,
        &format!("/v1/memberships/{id}/transfer"),
        &obj,
    )?;
    let old = load_membership(&state, id).await?;
    if old.user != caller.user.id {
        return Err(ApiError::forbidden(
            "only its member transfers a membership",
        ));
    }
    obj.only(&["code", "union_id"])?;
    let union = target_union(&state, &obj).await?;
    let (m, replayed) = state
        .store
        .transfer_membership(
            &caller.user,
            id,
            union,
            state.auth.clock.now(),
            key.as_ref(),
        )
        .await
        .map_err(refused)?;
    Ok(created(doc(&state, &m).await?, replayed))
}

/// One membership: its member, and the admins of its union.
#[utoipa::path(
    get,
    path = "/v1/memberships/{id}",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Membership id")),
    responses(
        (status = 200, description = "The membership", body = MembershipDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither its member nor one of its union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such membership", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn membership(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MembershipDoc>, ApiError> {
    let m = load_membership(&state, membership_id(&id)?).await?;
    if m.user != caller.user.id {
        run_union(&state, &caller, m.union).await?;
    }
    Ok(Json(doc(&state, &m).await?))
}

/// A pending application, for its union's admins to decide on.
async fn application(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<MembershipId, ApiError> {
    let m = load_membership(state, membership_id(id)?).await?;
    run_union(state, caller, m.union).await?;
    Ok(m.id)
}

/// Approve an application (the union's admins): the membership becomes
/// active with a member number (for a transfer, the old membership ends).
#[utoipa::path(
    post,
    path = "/v1/memberships/{id}/approve",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Membership id")),
    responses(
        (status = 200, description = "Active, with its member number", body = MembershipDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such membership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MembershipDoc>, ApiError> {
    let id = application(&state, &caller, &id).await?;
    let m = state
        .store
        .approve_membership(id, caller.user.id, state.auth.clock.now())
        .await?;
    Ok(Json(doc(&state, &m).await?))
}

/// Reject an application with a reason the applicant sees (the union's
/// admins). A rejected transfer leaves the old membership active.
#[utoipa::path(
    post,
    path = "/v1/memberships/{id}/reject",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Membership id")),
    request_body(content = Object, description = "`{\"reason\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected", body = MembershipDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such membership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No reason", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    obj: JsonObject,
) -> Result<Json<MembershipDoc>, ApiError> {
    let id = application(&state, &caller, &id).await?;
    obj.only(&["reason"])?;
    let reason = obj.required("reason", body::text(500))?;
    let m = state
        .store
        .reject_membership(id, &reason, caller.user.id, state.auth.clock.now())
        .await?;
    Ok(Json(doc(&state, &m).await?))
}

/// Take back a pending application (its applicant): a wrong union chosen,
/// or a transfer no longer wanted (the old membership stays active).
#[utoipa::path(
    post,
    path = "/v1/memberships/{id}/withdraw",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Membership id")),
    responses(
        (status = 200, description = "Withdrawn", body = MembershipDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the caller's application", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such membership", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MembershipDoc>, ApiError> {
    let m = load_membership(&state, membership_id(&id)?).await?;
    if m.user != caller.user.id {
        return Err(ApiError::forbidden(
            "only its applicant withdraws an application",
        ));
    }
    let m = state
        .store
        .withdraw_membership(m.id, caller.user.id, state.auth.clock.now())
        .await?;
    Ok(Json(doc(&state, &m).await?))
}

/// The caller's union memberships (newest application first, a page of them) and the active one.
#[derive(Serialize, ToSchema)]
pub struct MyMemberships {
    /// The active membership, if any: what `union_members_only` events check.
    pub active: Option<MembershipDoc>,
    /// Every membership and application, newest first: the member's history.
    pub items: Vec<MembershipDoc>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The caller's memberships: the active one and the whole history (joins,
/// applications, rejections, transfers).
#[utoipa::path(
    get,
    path = "/v1/me/memberships",
    tag = "unions",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`")),
    responses(
        (status = 200, description = "The caller's memberships", body = MyMemberships),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_memberships(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<MyMemberships>, ApiError> {
    let page = Page::parse(&super::params::Params::parse(raw.as_deref())?, 2)?;
    let mut items = Vec::new();
    let mut active = None;
    for m in state.store.user_memberships(caller.user.id).await? {
        let d = doc(&state, &m).await?;
        if m.status == MembershipStatus::Active {
            active = Some(d.clone());
        }
        items.push(d);
    }
    // Newest application first.
    let (items, next_cursor) = page.of(items, |m| vec![-ms(m.applied_at), -id_key(&m.id)]);
    Ok(Json(MyMemberships {
        active,
        items,
        next_cursor,
    }))
}
