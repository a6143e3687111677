//! Keeping sites current: admins create, edit and retire sites; a site manager
//! edits the operational fields of the sites in their scope. Every edit is
//! conditional on `If-Match`, enters the change feed and the audit log, and is
//! in this node's index before the response leaves.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::Caller;
use super::params::Params;
use super::sites::{etag, site_doc, state_of};
use crate::domain::coords::{Crs, to_wgs84};
use crate::domain::hours::{HolidayCalendar, Hours, SHANGHAI};
use crate::domain::site::{
    Adcode, Amenity, AmenitySet, Closure, ClosureInfo, Kind, Site, SiteDraft, SiteId, Status,
};
use crate::domain::union::UnionId;
use crate::domain::user::{Role, User};
use crate::error::{ApiError, Problem};
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sites", post(create_site))
        .route(
            "/v1/sites/{id}",
            axum::routing::patch(patch_site).delete(retire_site),
        )
        .route("/v1/sites/{id}/history", get(history))
        .route("/v1/sites/{id}/follow", put(follow).delete(unfollow))
}

/// Fields a site manager may change.
pub const OPERATIONAL: [&str; 8] = [
    "opening_hours",
    "status",
    "status_reason",
    "reopens_at",
    "closures",
    "amenities",
    "phone",
    "photos",
];
/// Fields only an admin may change.
pub const ADMIN_ONLY: [&str; 8] = [
    "ref", "kind", "name", "address", "adcode", "lat", "lon", "union_id",
];

pub(crate) fn site_id(id: &str) -> Result<SiteId, ApiError> {
    id.parse()
        .map_err(|e: crate::domain::site::BadSiteId| ApiError::unknown_id("id", e.to_string()))
}

fn opening_hours(v: &Value) -> Result<String, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| ApiError::unprocessable("opening_hours", "expected a string"))?;
    match Hours::validate(s) {
        Ok(_) => Ok(s.to_owned()),
        Err(e) => Err(ApiError::Unprocessable {
            param: "opening_hours".into(),
            detail: e.to_string(),
            position: e.position,
        }),
    }
}

/// RFC 3339, or a date `YYYY-MM-DD` meaning its midnight in Asia/Shanghai.
fn instant(v: &Value) -> Result<DateTime<Utc>, String> {
    let s = v.as_str().ok_or("expected an RFC 3339 time or a date")?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time nor a YYYY-MM-DD date"))?;
    Ok(SHANGHAI
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
        .single()
        .expect("a fixed offset has no gaps")
        .with_timezone(&Utc))
}

/// `{from, to, reason}`; a date alone as `to` includes that whole day.
fn closure(v: &Value) -> Result<Closure, String> {
    let o = v.as_object().ok_or("expected {from, to, reason}")?;
    if let Some(k) = o
        .keys()
        .find(|k| !["from", "to", "reason"].contains(&k.as_str()))
    {
        return Err(format!("unknown field '{k}'"));
    }
    let from = instant(o.get("from").ok_or("from is required")?)?;
    let to_v = o.get("to").ok_or("to is required")?;
    let mut to = instant(to_v)?;
    if to_v.as_str().is_some_and(|s| s.len() == 10) {
        to += chrono::Duration::days(1);
    }
    if to <= from {
        return Err("to must be after from".to_owned());
    }
    let reason = match o.get("reason") {
        None | Some(Value::Null) => None,
        Some(r) => Some(body::text(200)(r)?),
    };
    Ok(Closure { from, to, reason })
}

fn photo(v: &Value) -> Result<String, String> {
    let s = body::text(500)(v)?;
    if s.starts_with("https://") || s.starts_with("http://") {
        Ok(s)
    } else {
        Err("expected an http(s) URL".to_owned())
    }
}

/// Apply the fields of `obj` to `draft`. `creating`: the required fields must
/// be present. Coordinates are read in `crs`.
fn apply_fields(
    draft: &mut SiteDraft,
    obj: &JsonObject,
    crs: Crs,
    creating: bool,
) -> Result<(), ApiError> {
    let mut known: Vec<&str> = OPERATIONAL.to_vec();
    known.extend(ADMIN_ONLY);
    obj.only(&known)?;
    let req = |name: &str| creating && !obj.0.contains_key(name);
    for name in [
        "kind",
        "name",
        "address",
        "adcode",
        "lat",
        "lon",
        "opening_hours",
    ] {
        if req(name) {
            return Err(ApiError::unprocessable(name, "required"));
        }
    }
    if let Some(r) = obj.nullable("ref", body::text(100))? {
        draft.ext_ref = r;
    }
    if let Some(k) = obj.optional("kind", body::parsed::<Kind>)? {
        draft.kind = k;
    }
    if let Some(n) = obj.optional("name", body::text(100))? {
        draft.name = n;
    }
    if let Some(a) = obj.optional("address", body::text(200))? {
        draft.address = a;
    }
    if let Some(a) = obj.optional("adcode", body::parsed::<Adcode>)? {
        draft.adcode = a;
    }
    let lat = obj.optional("lat", body::number_in(-90.0, 90.0))?;
    let lon = obj.optional("lon", body::number_in(-180.0, 180.0))?;
    match (lat, lon) {
        (Some(lat), Some(lon)) => {
            let (lat, lon) = to_wgs84(crs, lat, lon);
            (draft.lat, draft.lon) = (lat, lon);
        }
        (None, None) => {}
        (Some(_), None) => return Err(ApiError::unprocessable("lon", "lat and lon go together")),
        (None, Some(_)) => return Err(ApiError::unprocessable("lat", "lat and lon go together")),
    }
    if let Some(v) = obj.0.get("opening_hours") {
        draft.opening_hours = opening_hours(v)?;
    }
    if let Some(s) = obj.optional("status", body::parsed::<Status>)? {
        if s == Status::Retired {
            return Err(ApiError::unprocessable(
                "status",
                "retire a site with DELETE /v1/sites/{id}",
            ));
        }
        if s == Status::Open && draft.status != Status::Open {
            // Reopened: the closure note no longer applies unless restated.
            draft.closure.reason = None;
            draft.closure.reopens_at = None;
        }
        draft.status = s;
    }
    if let Some(r) = obj.nullable("status_reason", body::text(200))? {
        draft.closure.reason = r;
    }
    if let Some(t) = obj.nullable("reopens_at", instant)? {
        draft.closure.reopens_at = t;
    }
    if let Some(c) = obj.optional("closures", body::array(100, closure))? {
        let mut c = c;
        c.sort_by_key(|x| (x.from, x.to));
        draft.closure.exceptions = c;
    }
    if let Some(a) = obj.optional(
        "amenities",
        body::array(Amenity::ALL.len(), body::parsed::<Amenity>),
    )? {
        draft.amenities = a.into_iter().collect();
    }
    if let Some(p) = obj.nullable("phone", body::text(40))? {
        draft.phone = p;
    }
    if let Some(p) = obj.optional("photos", body::array(20, photo))? {
        draft.photos = p;
    }
    if let Some(u) = obj.nullable("union_id", body::parsed::<UnionId>)? {
        draft.union_id = u;
    }
    Ok(())
}

/// The union a site names must exist (checked before anything is written).
async fn check_union(state: &AppState, draft: &SiteDraft) -> Result<(), ApiError> {
    if let Some(u) = draft.union_id
        && state.store.get_union(u).await?.is_none()
    {
        return Err(ApiError::unprocessable("union_id", "no such union"));
    }
    Ok(())
}

/// The version an `If-Match` tag names: tags are `"<id>-<version>-<crs>-<state>"`
/// as `GET /v1/sites/{id}` gives them, in any crs or state; `*` names the
/// `current` version, whichever it is (RFC 9110 13.1.1).
fn if_match_version(
    headers: &HeaderMap,
    id: SiteId,
    current: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad =
        || ApiError::PreconditionFailed("If-Match does not name a version of this site".into());
    let v = v.to_str().map_err(|_| bad())?.trim();
    if v == "*" {
        return Ok(Some(current));
    }
    let tag = v.trim_start_matches("W/").trim_matches('"');
    let mut parts = tag.split('-');
    let (Some(tid), Some(version)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    if tid != id.to_string() {
        return Err(bad());
    }
    version.parse().map(Some).map_err(|_| bad())
}

fn doc_response(
    site: &Site,
    crs: Crs,
    at: DateTime<Utc>,
    calendar: &Arc<HolidayCalendar>,
    status: StatusCode,
) -> Response {
    let state = state_of(site, at, calendar);
    let tag = etag(site, crs, state);
    let mut resp = (status, Json(site_doc(site, crs, state))).into_response();
    resp.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("etag is ascii"),
    );
    resp
}

/// Apply a stored site to this node's index before answering.
pub(crate) async fn index_now(state: &AppState, site: &Site) -> Result<(), ApiError> {
    let index = state.index.clone();
    let site = site.clone();
    tokio::task::spawn_blocking(move || index.apply([site]))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("index update failed: {e}")))
}

fn need_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin may do this"))
    }
}

/// Create a site (admins). Body: the site's fields as in the site document
/// (`kind, name, address, adcode, lat, lon, opening_hours` required); `lat`/`lon`
/// in `crs`.
#[utoipa::path(
    post,
    path = "/v1/sites",
    tag = "management",
    security(("bearer" = [])),
    params(("crs" = Option<String>, Query, description = "Coordinate system of lat/lon in the body and the response")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::http::sites::SiteDoc, headers(("ETag" = String), ("Location" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another site has this `ref`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `param`; `position` for opening_hours)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_site(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    need_admin(&caller)?;
    let crs = Params::parse(raw.as_deref())?.crs()?;
    let mut draft = SiteDraft {
        ext_ref: None,
        kind: Kind::UnionStation,
        name: String::new(),
        address: String::new(),
        adcode: "110000".parse().expect("valid adcode"),
        lat: 0.0,
        lon: 0.0,
        amenities: AmenitySet::EMPTY,
        opening_hours: String::new(),
        phone: None,
        photos: vec![],
        status: Status::Open,
        closure: ClosureInfo::default(),
        union_id: None,
    };
    apply_fields(&mut draft, &obj, crs, true)?;
    check_union(&state, &draft).await?;
    let now = state.auth.clock.now();
    let site = state
        .store
        .create_site(draft, Some(caller.user.id), now)
        .await
        .map_err(ref_taken)?;
    index_now(&state, &site).await?;
    let mut resp = doc_response(
        &site,
        crs,
        now,
        &state.index.calendar(),
        StatusCode::CREATED,
    );
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/sites/{}", site.id)).expect("ascii"),
    );
    Ok(resp)
}

/// Edit a site. Needs `If-Match` with the ETag of `GET /v1/sites/{id}` (428
/// without, 412 when the site changed meanwhile). Admins may change any field;
/// a manager of the site only `opening_hours, status (open |
/// temporarily_closed), status_reason, reopens_at, closures, amenities, phone,
/// photos`. Absent fields are unchanged; null clears a nullable one.
#[utoipa::path(
    patch,
    path = "/v1/sites/{id}",
    tag = "management",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Site id"), ("crs" = Option<String>, Query, description = "Coordinate system of lat/lon in the body and the response"), ("If-Match" = String, Header, description = "ETag of the version being edited, or `*` for whichever is current (RFC 9110)")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The edited site", body = crate::http::sites::SiteDoc, headers(("ETag" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not this site's manager, or a field outside the role (named in `param`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another site has this `ref`", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The site changed since that ETag", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 428, description = "If-Match is missing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let id = site_id(&id)?;
    let crs = Params::parse(raw.as_deref())?.crs()?;
    let expected = |s: &Site| if_match_version(&headers, id, s.version);
    let (site, now) = edit_site(&state, &caller.user, id, expected, &obj, crs).await?;
    Ok(doc_response(
        &site,
        crs,
        now,
        &state.index.calendar(),
        StatusCode::OK,
    ))
}

/// A site's `ref` (the operator's own reference) names one site only.
fn ref_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Duplicate(_) => ApiError::Conflict("ref: another site has this ref".into()),
        e => e.into(),
    }
}

/// Edit site `id` as `user` with the fields of `obj` (coordinates in `crs`):
/// `PATCH /v1/sites/{id}` and the managers' console both come here.
/// `expected` names the version being edited (`None`: no `If-Match`, 428);
/// it is asked after the caller's scope and fields are checked. The edit is
/// in this node's index when this returns; the time is the edit's.
pub async fn edit_site(
    state: &AppState,
    user: &User,
    id: SiteId,
    expected: impl FnOnce(&Site) -> Result<Option<i64>, ApiError>,
    obj: &JsonObject,
    crs: Crs,
) -> Result<(Site, DateTime<Utc>), ApiError> {
    if !user.manages(id) {
        return Err(ApiError::forbidden("you do not manage this site"));
    }
    let current = state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site with id {id}")))?;
    if current.draft.status == Status::Retired {
        return Err(ApiError::NotFound(format!("site {id} is retired")));
    }
    if user.role != Role::Admin
        && let Some(field) = obj.0.keys().find(|k| ADMIN_ONLY.contains(&k.as_str()))
    {
        return Err(ApiError::Forbidden {
            detail: format!("{field}: only an admin may change it"),
            param: Some(field.clone()),
        });
    }
    let expected = expected(&current)?.ok_or_else(|| {
        ApiError::PreconditionRequired("send If-Match with the site's ETag".into())
    })?;
    if expected != current.version {
        return Err(ApiError::PreconditionFailed(format!(
            "the site is at version {}, not {expected}; fetch it again",
            current.version
        )));
    }
    let mut draft = current.draft.clone();
    apply_fields(&mut draft, obj, crs, false)?;
    if draft.union_id != current.draft.union_id {
        check_union(state, &draft).await?;
    }
    let now = state.auth.clock.now();
    let site = state
        .store
        .update_site(id, expected, draft, Some(user.id), now)
        .await
        .map_err(ref_taken)?;
    index_now(state, &site).await?;
    Ok((site, now))
}

/// Retire a site (admins). It leaves every search and map; its record and
/// history stay. `If-Match` is honoured when sent.
#[utoipa::path(
    delete,
    path = "/v1/sites/{id}",
    tag = "management",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Site id"), ("If-Match" = Option<String>, Header, description = "ETag of the version being retired (412 when the site changed since), or `*` for whichever is current")),
    responses(
        (status = 204, description = "Retired"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The site changed since that ETag", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn retire_site(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let id = site_id(&id)?;
    need_admin(&caller)?;
    let current = state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site with id {id}")))?;
    let expected = if_match_version(&headers, id, current.version)?.unwrap_or(current.version);
    if current.draft.status == Status::Retired {
        return Ok(StatusCode::NO_CONTENT);
    }
    let mut draft = current.draft.clone();
    draft.status = Status::Retired;
    let site = state
        .store
        .update_site(
            id,
            expected,
            draft,
            Some(caller.user.id),
            state.auth.clock.now(),
        )
        .await?;
    index_now(&state, &site).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A site's audit log, oldest first, a page of it.
#[derive(Serialize, ToSchema)]
pub struct HistoryResponse {
    pub items: Vec<HistoryItem>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// One change to a site in its audit log.
#[derive(Serialize, ToSchema)]
pub struct HistoryItem {
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub at: DateTime<Utc>,
    /// The version this change made.
    pub version: i64,
    /// `create`, `update` or `retire`.
    pub action: String,
    /// Who: a user id, or null for imports.
    pub user_id: Option<i64>,
    /// `{field: {"old": …, "new": …}}` (coordinates in WGS-84).
    #[schema(value_type = Object)]
    pub changes: Value,
}

/// Who changed what on a site, oldest first (the site's managers and admins).
#[utoipa::path(
    get,
    path = "/v1/sites/{id}/history",
    tag = "management",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"), ("id" = String, Path, description = "Site id")),
    responses(
        (status = 200, description = "The audit log", body = HistoryResponse),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not this site's manager", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<HistoryResponse>, ApiError> {
    let id = site_id(&id)?;
    let page = super::paging::Page::parse(&super::params::Params::parse(raw.as_deref())?, 1)?;
    let items = site_history(&state, &caller.user, id).await?;
    // Oldest first: by version.
    let (items, next_cursor) = page.of(items, |h| vec![h.version]);
    Ok(Json(HistoryResponse { items, next_cursor }))
}

/// A site's audit log, oldest first, for its managers and admins (the API
/// and the console).
pub async fn site_history(
    state: &AppState,
    user: &User,
    id: SiteId,
) -> Result<Vec<HistoryItem>, ApiError> {
    if !user.manages(id) {
        return Err(ApiError::forbidden("you do not manage this site"));
    }
    if state.store.get_site(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no site with id {id}")));
    }
    Ok(state
        .store
        .site_history(id)
        .await?
        .into_iter()
        .map(|e| HistoryItem {
            at: e.at,
            version: e.version,
            action: e.action,
            user_id: e.user_id,
            changes: e.changes,
        })
        .collect())
}

async fn set_follow(
    state: &AppState,
    caller: &Caller,
    id: &str,
    on: bool,
) -> Result<StatusCode, ApiError> {
    let id = site_id(id)?;
    if state.store.get_site(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no site with id {id}")));
    }
    state
        .store
        .set_follow(caller.user.id, id, on, state.auth.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Follow a site (notifications about it arrive with Web Push, a later issue).
#[utoipa::path(
    put,
    path = "/v1/sites/{id}/follow",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Site id")),
    responses(
        (status = 204, description = "Followed (idempotent)"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_follow(&state, &caller, &id, true).await
}

/// Stop following a site.
#[utoipa::path(
    delete,
    path = "/v1/sites/{id}/follow",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Site id")),
    responses(
        (status = 204, description = "Not followed (idempotent)"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unfollow(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_follow(&state, &caller, &id, false).await
}
