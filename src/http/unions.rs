//! Unions (基层工会 and their federations): created by admins, found near a
//! point or by adcode, run by their union admins — the join code and its QR
//! for a station's wall, applications waiting for review, and the numbers the
//! union reports. Membership itself is `memberships.rs`; the rules are in
//! `domain/union.rs`.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::Caller;
use super::params::{self, Params};
use super::sites::out_coords;
use crate::domain::coords::{Crs, LatLon, haversine_m, to_wgs84};
use crate::domain::site::Adcode;
use crate::domain::union::{
    self, JoinPolicy, Month, MonthCounts, StatusCounts, Union, UnionDraft, UnionFigures, UnionId,
};
use crate::domain::user::Role;
use crate::error::{ApiError, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/unions", post(create_union).get(find_unions))
        .route("/v1/unions/{id}", get(union_detail).patch(patch_union))
        .route("/v1/unions/{id}/join-code", get(join_code))
        .route("/v1/unions/{id}/join-code/rotate", post(rotate_join_code))
        .route("/v1/unions/{id}/qr.svg", get(qr_svg))
        .route("/v1/unions/{id}/applications", get(applications))
        .route("/v1/unions/{id}/stats", get(stats))
}

/// A union as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct UnionDoc {
    #[schema(value_type = String)]
    pub id: String,
    pub name: String,
    pub adcode: String,
    /// The federation this union belongs to.
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<String>,
    pub join_policy: JoinPolicy,
    pub crs: String,
    /// Where its office is, in `crs` (absent when not given).
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub distance_m: Option<f64>,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub created_at: DateTime<Utc>,
}

pub(super) fn union_doc(u: &Union, crs: Crs, distance_m: Option<f64>) -> UnionDoc {
    let d = &u.draft;
    let at = d.location.map(|(lat, lon)| out_coords(crs, lat, lon));
    UnionDoc {
        id: u.id.to_string(),
        name: d.name.clone(),
        adcode: d.adcode.to_string(),
        parent_id: d.parent_id.map(|p| p.to_string()),
        join_policy: d.join_policy,
        crs: crs.as_str().to_owned(),
        lat: at.map(|a| a.0),
        lon: at.map(|a| a.1),
        distance_m: distance_m.map(|m| (m * 10.0).round() / 10.0),
        created_at: u.created_at,
    }
}

/// The union named by a path id.
pub(super) fn union_id(id: &str) -> Result<UnionId, ApiError> {
    id.parse()
        .map_err(|e: union::BadUnionId| ApiError::unknown_id("id", e.to_string()))
}

/// The union, or 404.
pub(super) async fn load_union(state: &AppState, id: UnionId) -> Result<Union, ApiError> {
    state
        .store
        .get_union(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no union with id {id}")))
}

/// The union, if the caller runs it (its union admins, those of a
/// federation above it, and admins): 404 without it, 403 outside the scope.
pub(super) async fn run_union(
    state: &AppState,
    caller: &Caller,
    id: UnionId,
) -> Result<Union, ApiError> {
    let union = load_union(state, id).await?;
    let ancestry = state.store.union_ancestry(id).await?;
    if !caller.user.runs_union(&ancestry) {
        return Err(ApiError::forbidden(
            "only the union's admins (or a federation's above it) do this",
        ));
    }
    Ok(union)
}

/// Create a union (admins): `name`, `adcode`, optional `parent_id` (the
/// federation it belongs to), optional `lat`/`lon` (in `crs`), `join_policy`.
#[utoipa::path(
    post,
    path = "/v1/unions",
    tag = "unions",
    security(("bearer" = [])),
    params(("crs" = Option<String>, Query, description = "Coordinate system of lat/lon")),
    request_body(content = Object, description = "`{\"name\": \"历下区快递行业工会\", \"adcode\": \"370102\", \"parent_id\": \"u…\", \"lat\": 36.66, \"lon\": 117.06, \"join_policy\": \"auto\"}`", content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = UnionDoc, headers(("Location" = String))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_union(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let crs = Params::parse(raw.as_deref())?.crs()?;
    if caller.user.role != Role::Admin {
        return Err(ApiError::forbidden("only admins create unions"));
    }
    obj.only(&["name", "adcode", "parent_id", "lat", "lon", "join_policy"])?;
    let name = obj.required("name", body::text(100))?;
    let adcode = obj.required("adcode", body::parsed::<Adcode>)?;
    let parent_id = obj.optional("parent_id", body::parsed::<UnionId>)?;
    let lat = obj.optional("lat", body::number_in(-90.0, 90.0))?;
    let lon = obj.optional("lon", body::number_in(-180.0, 180.0))?;
    let location = match (lat, lon) {
        (Some(lat), Some(lon)) => Some(to_wgs84(crs, lat, lon)),
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::unprocessable("lon", "required with lat")),
        (None, Some(_)) => return Err(ApiError::unprocessable("lat", "required with lon")),
    };
    let join_policy = obj.required("join_policy", body::parsed::<JoinPolicy>)?;
    let draft = UnionDraft {
        name,
        adcode,
        parent_id,
        location,
        join_policy,
    };
    let union = state
        .store
        .create_union(draft, state.auth.clock.now())
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/unions/{}", union.id))],
        Json(union_doc(&union, crs, None)),
    )
        .into_response())
}

/// A union: its name, area, join policy and parent federation.
#[utoipa::path(
    get,
    path = "/v1/unions/{id}",
    tag = "unions",
    params(("id" = String, Path, description = "Union id"), ("crs" = Option<String>, Query, description = "wgs84 (default), gcj02 or bd09")),
    responses(
        (status = 200, description = "The union", body = UnionDoc),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn union_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<UnionDoc>, ApiError> {
    let id = union_id(&id)?;
    let crs = Params::parse(raw.as_deref())?.crs()?;
    Ok(Json(union_doc(&load_union(&state, id).await?, crs, None)))
}

/// Edit a union: its admins (and those above it) may change `name`, `lat`/`lon`
/// (in `crs`; both null to clear) and `join_policy`; admins also `adcode`
/// (numbers issued from then on carry the new one) and `parent_id` (not to a
/// union below it). A pending application stays pending under a new policy.
#[utoipa::path(
    patch,
    path = "/v1/unions/{id}",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Union id"), ("crs" = Option<String>, Query, description = "Coordinate system of lat/lon")),
    request_body(content = Object, description = "`{\"join_policy\": \"auto\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "The union", body = UnionDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of its admins, or an admins-only field (named in `param`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_union(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    obj: JsonObject,
) -> Result<Json<UnionDoc>, ApiError> {
    let id = union_id(&id)?;
    let crs = Params::parse(raw.as_deref())?.crs()?;
    let union = run_union(&state, &caller, id).await?;
    obj.only(&["name", "adcode", "parent_id", "lat", "lon", "join_policy"])?;
    if caller.user.role != Role::Admin
        && let Some(field) = ["adcode", "parent_id"]
            .into_iter()
            .find(|f| obj.0.contains_key(*f))
    {
        return Err(ApiError::Forbidden {
            detail: format!("{field}: only an admin may change it"),
            param: Some(field.to_owned()),
        });
    }
    // Every field is read before anything is written: a bad one changes nothing.
    let mut draft = union.draft.clone();
    if let Some(n) = obj.optional("name", body::text(100))? {
        draft.name = n;
    }
    if let Some(a) = obj.optional("adcode", body::parsed::<Adcode>)? {
        draft.adcode = a;
    }
    if let Some(p) = obj.nullable("parent_id", body::parsed::<UnionId>)? {
        if let Some(parent) = p {
            let above = state.store.union_ancestry(parent).await?;
            if above.is_empty() {
                return Err(ApiError::unprocessable("parent_id", "no such union"));
            }
            if above.contains(&id) {
                return Err(ApiError::unprocessable(
                    "parent_id",
                    "that union is this one or below it",
                ));
            }
        }
        draft.parent_id = p;
    }
    let lat = obj.nullable("lat", body::number_in(-90.0, 90.0))?;
    let lon = obj.nullable("lon", body::number_in(-180.0, 180.0))?;
    match (lat, lon) {
        (Some(Some(lat)), Some(Some(lon))) => draft.location = Some(to_wgs84(crs, lat, lon)),
        (Some(None), Some(None)) => draft.location = None,
        (None, None) => {}
        // The one given, or the one null beside a number, is the odd one out.
        (Some(_), None) | (Some(Some(_)), Some(None)) => {
            return Err(ApiError::unprocessable("lon", "lat and lon go together"));
        }
        (None, Some(_)) | (Some(None), Some(Some(_))) => {
            return Err(ApiError::unprocessable("lat", "lat and lon go together"));
        }
    }
    if let Some(p) = obj.optional("join_policy", body::parsed::<JoinPolicy>)? {
        draft.join_policy = p;
    }
    let union = state.store.update_union(id, draft).await?;
    Ok(Json(union_doc(&union, crs, None)))
}

/// Unions found, nearest first or by name.
#[derive(Serialize, ToSchema)]
pub struct UnionsResponse {
    pub crs: String,
    pub items: Vec<UnionDoc>,
}

/// Unions near a point, nearest first (`lat`, `lon`: only unions with a
/// location), or by administrative division (`adcode`: 2, 4 or 6 digits,
/// a province's, a city's or a county's).
#[utoipa::path(
    get,
    path = "/v1/unions",
    tag = "unions",
    params(
        ("lat" = Option<f64>, Query, description = "Latitude in crs (with lon)"),
        ("lon" = Option<f64>, Query, description = "Longitude in crs (with lat)"),
        ("adcode" = Option<String>, Query, description = "2, 4 or 6 leading digits of an adcode"),
        ("radius_m" = Option<f64>, Query, description = "With lat/lon: up to this far (default 50 km, at most 2,000 km)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–100, default 10)"),
        ("crs" = Option<String>, Query, description = "wgs84 (default), gcj02 or bd09"),
    ),
    responses(
        (status = 200, description = "Unions, nearest first (or by id for adcode)", body = UnionsResponse),
        (status = 400, description = "A parameter is malformed or missing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn find_unions(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<UnionsResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let limit = p
        .optional("limit", |v| params::int_in_range(v, 1, 100))?
        .unwrap_or(10) as usize;
    let adcode = p.optional("adcode", |v| {
        let ok = matches!(v.len(), 2 | 4 | 6) && v.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(v.to_owned())
        } else {
            Err(format!("'{v}' is not 2, 4 or 6 digits of an adcode"))
        }
    })?;
    // Checked whether or not it applies: a malformed value is refused, not ignored.
    let radius = p
        .optional("radius_m", |v| params::in_range(v, 1.0, 2_000_000.0))?
        .unwrap_or(50_000.0);
    let items = if p.raw("lat").is_some() || p.raw("lon").is_some() || adcode.is_none() {
        let lat = p.required("lat", |v| params::in_range(v, -90.0, 90.0))?;
        let lon = p.required("lon", |v| params::in_range(v, -180.0, 180.0))?;
        let (wlat, wlon) = to_wgs84(crs, lat, lon);
        let origin = LatLon::new(wlat, wlon).map_err(|e| ApiError::param("lat", e.to_string()))?;
        let mut found: Vec<(f64, Union)> = state
            .store
            .located_unions()
            .await?
            .into_iter()
            .filter(|u| {
                adcode
                    .as_deref()
                    .is_none_or(|a| u.draft.adcode.as_str().starts_with(a))
            })
            .filter_map(|u| {
                let (lat, lon) = u.draft.location?;
                let d = haversine_m(origin, LatLon::new(lat, lon).ok()?);
                (d <= radius).then_some((d, u))
            })
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        found
            .iter()
            .take(limit)
            .map(|(d, u)| union_doc(u, crs, Some(*d)))
            .collect()
    } else {
        state
            .store
            .unions_by_adcode(adcode.as_deref().unwrap_or_default())
            .await?
            .iter()
            .take(limit)
            .map(|u| union_doc(u, crs, None))
            .collect()
    };
    Ok(Json(UnionsResponse {
        crs: crs.as_str().to_owned(),
        items,
    }))
}

/// A union's join code (入会码): the code, the URL it is printed as, and its version.
#[derive(Serialize, ToSchema)]
pub struct JoinCodeDoc {
    #[schema(value_type = String)]
    pub union_id: String,
    /// The signed code (30 characters): `POST /v1/memberships {"code": …}`.
    pub code: String,
    /// The code as a link for the phone's camera: `…/join?code=…`.
    pub join_url: String,
    /// Rotating the code moves this on; codes of earlier versions are refused.
    pub version: u32,
}

/// Where the service is reached from outside, as the request says
/// (`X-Forwarded-Proto`/`X-Forwarded-Host` from a proxy, else `Host`).
fn join_code_doc(key: &[u8], union: &Union, headers: &HeaderMap) -> JoinCodeDoc {
    let code = union::join_code(key, union.id, union.code_version);
    JoinCodeDoc {
        union_id: union.id.to_string(),
        join_url: format!("{}/join?code={code}", super::public_base(headers)),
        code,
        version: union.code_version,
    }
}

/// The union's current join code and join URL (the union's admins).
#[utoipa::path(
    get,
    path = "/v1/unions/{id}/join-code",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Union id")),
    responses(
        (status = 200, description = "The current code", body = JoinCodeDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn join_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let union = run_union(&state, &caller, union_id(&id)?).await?;
    let doc = join_code_doc(&state.join_key, &union, &headers);
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(doc)).into_response())
}

/// Replace the union's join code (the union's admins): the old code, and
/// every QR printed with it, is refused from now on.
#[utoipa::path(
    post,
    path = "/v1/unions/{id}/join-code/rotate",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Union id")),
    responses(
        (status = 200, description = "The new code", body = JoinCodeDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_join_code(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let union = run_union(&state, &caller, union_id(&id)?).await?;
    let union = state.store.rotate_join_code(union.id).await?;
    let doc = join_code_doc(&state.join_key, &union, &headers);
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(doc)).into_response())
}

/// The join URL as a QR code (SVG, for printing on a station's wall; the
/// union's admins).
#[utoipa::path(
    get,
    path = "/v1/unions/{id}/qr.svg",
    tag = "unions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Union id")),
    responses(
        (status = 200, description = "The join URL as a QR code", content_type = "image/svg+xml", body = String),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn qr_svg(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use qrcode::render::svg;
    let union = run_union(&state, &caller, union_id(&id)?).await?;
    let doc = join_code_doc(&state.join_key, &union, &headers);
    let code = qrcode::QrCode::with_error_correction_level(&doc.join_url, qrcode::EcLevel::M)
        .map_err(|e| anyhow::anyhow!("QR encoding: {e}"))?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(320, 320)
        .quiet_zone(true)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        image,
    )
        .into_response())
}

/// Who applied to join a union, as its admins see them (phone masked).
#[derive(Serialize, ToSchema)]
pub struct ApplicantDoc {
    pub user_id: i64,
    pub display_name: Option<String>,
    /// Masked: `138****5678`.
    pub phone: String,
    pub employer: Option<String>,
}

/// A pending membership application with its applicant.
#[derive(Serialize, ToSchema)]
pub struct ApplicationDoc {
    pub membership: super::memberships::MembershipDoc,
    pub applicant: ApplicantDoc,
}

/// A union's pending applications, a page of them.
#[derive(Serialize, ToSchema)]
pub struct ApplicationsResponse {
    pub items: Vec<ApplicationDoc>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Applications waiting for the union's decision, oldest first (the union's
/// admins): joins and transfers in.
#[utoipa::path(
    get,
    path = "/v1/unions/{id}/applications",
    tag = "unions",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"), ("id" = String, Path, description = "Union id")),
    responses(
        (status = 200, description = "Pending applications", body = ApplicationsResponse),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn applications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ApplicationsResponse>, ApiError> {
    let union = run_union(&state, &caller, union_id(&id)?).await?;
    let page = super::paging::Page::parse(&Params::parse(raw.as_deref())?, 2)?;
    let items = state
        .store
        .applications(union.id)
        .await?
        .into_iter()
        .map(|a| ApplicationDoc {
            applicant: ApplicantDoc {
                user_id: a.membership.user,
                display_name: a.display_name,
                phone: a.phone.masked(),
                employer: a.employer,
            },
            membership: super::memberships::membership_doc(&a.membership, &union.draft.name),
        })
        .collect();
    // Oldest application first.
    let (items, next_cursor) = page.of(items, |a: &ApplicationDoc| {
        vec![
            super::paging::ms(a.membership.applied_at),
            super::paging::id_key(&a.membership.id),
        ]
    });
    Ok(Json(ApplicationsResponse { items, next_cursor }))
}

/// One month of a union's figures.
#[derive(Serialize, ToSchema)]
pub struct MonthDoc {
    /// `YYYY-MM`, China time.
    pub month: String,
    #[serde(flatten)]
    pub counts: MonthCounts,
}

/// A union's membership figures for one month.
#[derive(Serialize, ToSchema)]
pub struct FiguresDoc {
    #[schema(value_type = String)]
    pub union_id: String,
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<String>,
    /// Active members now.
    pub members_now: u32,
    /// Applications waiting now.
    pub pending_now: u32,
    pub months: Vec<MonthDoc>,
}

/// A union's membership figures, month by month.
#[derive(Serialize, ToSchema)]
pub struct StatsResponse {
    /// The union and every union below it, added up.
    pub total: FiguresDoc,
    /// How many unions that is (the union itself included).
    pub unions: usize,
    /// Each union's own figures (not including those below it), the union first.
    pub by_union: Vec<FiguresDoc>,
}

fn figures_doc(u: &Union, f: &UnionFigures) -> FiguresDoc {
    FiguresDoc {
        union_id: u.id.to_string(),
        name: u.draft.name.clone(),
        parent_id: u.draft.parent_id.map(|p| p.to_string()),
        members_now: f.members_now,
        pending_now: f.pending_now,
        months: f
            .months
            .iter()
            .map(|(m, c)| MonthDoc {
                month: m.to_string(),
                counts: *c,
            })
            .collect(),
    }
}

/// The union's numbers (its admins, a federation's above it, admins):
/// members now, and per month those who joined, transferred in and
/// transferred out, for the union together with every member union below it
/// in the federation tree (`total`), and for each of them alone (`by_union`).
#[utoipa::path(
    get,
    path = "/v1/unions/{id}/stats",
    tag = "unions",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Union id"),
        ("from" = Option<String>, Query, description = "First month, YYYY-MM (default 11 months before `to`)"),
        ("to" = Option<String>, Query, description = "Last month, YYYY-MM (default this month, China time); at most 120 months in all"),
    ),
    responses(
        (status = 200, description = "The numbers", body = StatsResponse),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not one of the union's admins", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such union", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatsResponse>, ApiError> {
    let id = union_id(&id)?;
    // Who may ask first, then what they ask.
    let root = run_union(&state, &caller, id).await?;
    let p = Params::parse(raw.as_deref())?;
    let month = |v: &str| v.parse::<Month>();
    let to = p
        .optional("to", month)?
        .unwrap_or_else(|| Month::of(state.auth.clock.now()));
    let from = p.optional("from", month)?.unwrap_or(to.back(11));
    let months = from.through(to);
    if months.is_empty() {
        return Err(ApiError::param("from", "must not be after to"));
    }
    if months.len() > 120 {
        return Err(ApiError::param("from", "at most 120 months at once"));
    }
    let mut unions = state.store.union_subtree(root.id).await?;
    // The union first, then the others by id.
    unions.sort_by_key(|u| (u.id != root.id, u.id));
    let ids: Vec<UnionId> = unions.iter().map(|u| u.id).collect();
    // Counts now by status, grouped in the database; rows only for what moved
    // in the months asked.
    let mut counts: BTreeMap<UnionId, StatusCounts> = BTreeMap::new();
    for (u, status, n) in state.store.membership_counts(&ids).await? {
        counts.entry(u).or_default().insert(status, n);
    }
    let moved = state
        .store
        .membership_moves(&ids, from.start(), to.next().start())
        .await?;
    let none = StatusCounts::new();
    let mut total = union::figures(&none, std::iter::empty(), &months);
    let by_union: Vec<FiguresDoc> = unions
        .iter()
        .map(|u| {
            let f = union::figures(
                counts.get(&u.id).unwrap_or(&none),
                moved.iter().filter(|m| m.union == u.id),
                &months,
            );
            total.add(&f);
            figures_doc(u, &f)
        })
        .collect();
    Ok(Json(StatsResponse {
        total: figures_doc(&root, &total),
        unions: unions.len(),
        by_union,
    }))
}
