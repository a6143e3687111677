//! Site reads: nearby search and site detail. Reads come from the in-memory
//! index; the store is asked only for sites the index does not hold (retired).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{self, Params};
use crate::domain::coords::{Crs, LatLon, from_wgs84, to_wgs84};
use crate::domain::hours::{HolidayCalendar, Hours, HoursState};
use crate::domain::site::{Amenity, Closure, Kind, Site, SiteId, SiteView, Status};
use crate::domain::union::UnionId;
use crate::error::{ApiError, Problem};
use crate::index::NearbyQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sites/nearby", get(nearby))
        .route("/v1/sites/{id}", get(site_detail))
}

pub const MAX_K: i64 = 100;
pub const DEFAULT_K: i64 = 10;
pub const MAX_RADIUS_M: f64 = 200_000.0;

/// Query parameters of `GET /v1/sites/nearby` (documentation; parsing is in [`NearbyRequest::parse`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NearbyParams {
    /// Latitude of the origin, in `crs`.
    lat: f64,
    /// Longitude of the origin, in `crs`.
    lon: f64,
    /// Coordinate system of `lat`/`lon` and of the coordinates returned: `wgs84` (default), `gcj02` (AMap, Tencent), `bd09` (Baidu).
    crs: Option<String>,
    /// How many sites, 1–100 (default 10).
    k: Option<u32>,
    /// Only sites within this great-circle distance, in metres (0 < radius_m ≤ 200000).
    radius_m: Option<f64>,
    /// Comma-separated kinds; any of them matches: outdoor_station, mother_room, union_station, craftsman_studio.
    kind: Option<String>,
    /// Comma-separated amenities; a site must have all of them.
    amenity: Option<String>,
    /// Evaluate opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
    /// `true`: only sites open at `at`.
    open: Option<bool>,
}

pub struct NearbyRequest {
    pub query: NearbyQuery,
    pub crs: Crs,
}

impl NearbyRequest {
    pub fn parse(p: &Params) -> Result<NearbyRequest, ApiError> {
        let crs = p.crs()?;
        let lat = p.required("lat", |v| params::in_range(v, -90.0, 90.0))?;
        let lon = p.required("lon", |v| params::in_range(v, -180.0, 180.0))?;
        let (lat, lon) = to_wgs84(crs, lat, lon);
        let origin =
            LatLon::new(lat, lon).map_err(|e| ApiError::param(e.field(), e.to_string()))?;
        let k = p
            .optional("k", |v| params::int_in_range(v, 1, MAX_K))?
            .unwrap_or(DEFAULT_K);
        let radius_m = p.optional("radius_m", |v| {
            let r = params::in_range(v, 0.0, MAX_RADIUS_M)?;
            if r > 0.0 {
                Ok(r)
            } else {
                Err("must be greater than 0".to_owned())
            }
        })?;
        let kinds = p.kinds()?;
        let amenities = p.amenities()?;
        let at = p.at()?;
        let open_only = p.optional("open", params::boolean)?.unwrap_or(false);
        Ok(NearbyRequest {
            query: NearbyQuery {
                origin,
                k: k as usize,
                kinds,
                amenities,
                radius_m,
                at,
                open_only,
            },
            crs,
        })
    }
}

/// One site in a nearby or search result.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyItem {
    /// Opaque, stable site id.
    #[schema(value_type = String, example = "s0k3j4h5g6f7a")]
    pub id: SiteId,
    /// The importing system's reference (GeoJSON `properties.ref`).
    #[serde(rename = "ref")]
    pub ext_ref: Option<String>,
    pub kind: Kind,
    pub name: String,
    pub address: String,
    pub adcode: String,
    /// Latitude in the requested `crs`.
    pub lat: f64,
    /// Longitude in the requested `crs`.
    pub lon: f64,
    /// Great-circle (haversine) distance from the query point in metres (absent where there is no query point).
    pub distance_m: Option<f64>,
    /// Open at the request's `at` time (a temporarily closed site is never open).
    pub is_open: bool,
    /// When `is_open` next flips, if within a year.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub next_change: Option<DateTime<Utc>>,
    /// OpenStreetMap opening_hours syntax, evaluated in Asia/Shanghai with China's official holiday calendar.
    pub opening_hours: String,
    pub amenities: Vec<Amenity>,
    pub status: Status,
    pub phone: Option<String>,
}

/// The nearest sites to a point, nearest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyResponse {
    pub crs: String,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub at: DateTime<Utc>,
    pub items: Vec<NearbyItem>,
}

fn round7(x: f64) -> f64 {
    (x * 1e7).round() / 1e7
}

pub fn out_coords(crs: Crs, lat: f64, lon: f64) -> (f64, f64) {
    let (lat, lon) = from_wgs84(crs, lat, lon);
    (round7(lat), round7(lon))
}

pub fn nearby_item(
    d: SiteView<'_>,
    crs: Crs,
    distance_m: Option<f64>,
    state: HoursState,
) -> NearbyItem {
    let (lat, lon) = out_coords(crs, d.lat, d.lon);
    NearbyItem {
        id: d.id,
        ext_ref: d.ext_ref.map(str::to_owned),
        kind: d.kind,
        name: d.name.to_owned(),
        address: d.address.to_owned(),
        adcode: d.adcode.to_string(),
        lat,
        lon,
        distance_m: distance_m.map(|d| (d * 10.0).round() / 10.0),
        is_open: state.is_open,
        next_change: state.next_change,
        opening_hours: d.opening_hours.to_owned(),
        amenities: d.amenities.to_vec(),
        status: d.status,
        phone: d.phone.map(str::to_owned),
    }
}

/// The nearest sites to a point, optionally filtered by kind, amenities, radius and opening state.
#[utoipa::path(
    get,
    path = "/v1/sites/nearby",
    tag = "sites",
    params(NearbyParams),
    responses(
        (status = 200, description = "Sites ordered by distance_m", body = NearbyResponse),
        (status = 400, description = "A parameter is malformed or out of range", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn nearby(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let req = NearbyRequest::parse(&p)?;
    let snapshot = state.index.snapshot();
    let hits = snapshot.nearest(&req.query);
    let items = hits
        .iter()
        .map(|h| nearby_item(h.site.view(), req.crs, Some(h.distance_m), h.state))
        .collect();
    let body = NearbyResponse {
        crs: req.crs.as_str().to_owned(),
        at: req.query.at,
        items,
    };
    // Into one buffer sized for the answer (about 500 bytes an item): axum's
    // `Json` starts at 128 bytes and grows through many small writes, which
    // was a tenth of a request's time.
    let mut buf = Vec::with_capacity(256 + 640 * body.items.len());
    serde_json::to_writer(&mut buf, &body).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        buf,
    )
        .into_response())
}

/// Query parameters of `GET /v1/sites/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SiteParams {
    /// Coordinate system of the returned coordinates (default wgs84).
    crs: Option<String>,
    /// Evaluate opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
}

/// A whole site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteDoc {
    #[schema(value_type = String, example = "s0k3j4h5g6f7a")]
    pub id: SiteId,
    #[serde(rename = "ref")]
    pub ext_ref: Option<String>,
    pub kind: Kind,
    pub name: String,
    pub address: String,
    pub adcode: String,
    pub crs: String,
    pub lat: f64,
    pub lon: f64,
    pub amenities: Vec<Amenity>,
    pub opening_hours: String,
    pub phone: Option<String>,
    pub photos: Vec<String>,
    pub status: Status,
    /// With `temporarily_closed`: why.
    pub status_reason: Option<String>,
    /// With `temporarily_closed`: when it expects to reopen.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub reopens_at: Option<DateTime<Utc>>,
    /// Intervals when the site is closed whatever its hours say.
    pub closures: Vec<Closure>,
    /// The union that runs the site (`GET /v1/unions/{id}`), if known.
    #[schema(value_type = Option<String>)]
    pub union_id: Option<UnionId>,
    pub is_open: bool,
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub next_change: Option<DateTime<Utc>>,
    /// Incremented on every change.
    pub version: i64,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub updated_at: DateTime<Utc>,
}

pub fn site_doc(site: &Site, crs: Crs, state: HoursState) -> SiteDoc {
    let d = &site.draft;
    let (lat, lon) = out_coords(crs, d.lat, d.lon);
    SiteDoc {
        id: site.id,
        ext_ref: d.ext_ref.clone(),
        kind: d.kind,
        name: d.name.clone(),
        address: d.address.clone(),
        adcode: d.adcode.to_string(),
        crs: crs.as_str().to_owned(),
        lat,
        lon,
        amenities: d.amenities.to_vec(),
        opening_hours: d.opening_hours.clone(),
        phone: d.phone.clone(),
        photos: d.photos.clone(),
        status: d.status,
        status_reason: d.closure.reason.clone(),
        reopens_at: d.closure.reopens_at,
        union_id: d.union_id,
        closures: d.closure.exceptions.clone(),
        is_open: state.is_open,
        next_change: state.next_change,
        version: site.version,
        updated_at: site.updated_at,
    }
}

/// The site's opening state at `at` under `calendar` (the index's), from
/// scratch (detail pages are not hot).
pub(crate) fn state_of(
    site: &Site,
    at: DateTime<Utc>,
    calendar: &Arc<HolidayCalendar>,
) -> HoursState {
    if site.draft.status != Status::Open {
        return HoursState::CLOSED;
    }
    Hours::parse(&site.draft.opening_hours, calendar)
        .map(|h| site.draft.closure.state(at, |t| h.evaluate(t)))
        .unwrap_or(HoursState::CLOSED)
}

/// A stored site's state at `at`: the index's when it holds this version (its
/// remembered state), from scratch otherwise (retired, or not applied yet).
pub(crate) fn state_now(state: &AppState, site: &Site, at: DateTime<Utc>) -> HoursState {
    match state.index.snapshot().get(site.id) {
        Some(s) if s.version() == site.version => s.state(at),
        _ => state_of(site, at, &state.index.calendar()),
    }
}

/// The ETag names the representation: the site's version, the coordinate system
/// and the opening state (which changes with time, not with the version).
pub(crate) fn etag(site: &Site, crs: Crs, state: HoursState) -> String {
    let mut h = std::hash::DefaultHasher::new();
    (state.is_open, state.next_change.map(|t| t.timestamp())).hash(&mut h);
    format!(
        "\"{}-{}-{}-{:08x}\"",
        site.id,
        site.version,
        crs.as_str(),
        h.finish() as u32
    )
}

/// A response carrying `body` with a strong ETag derived from its bytes, or an
/// empty 304 when `If-None-Match` already names it.
pub fn tagged(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut h = std::hash::DefaultHasher::new();
    body.hash(&mut h);
    let tag = format!("\"{:016x}-{:x}\"", h.finish(), body.len());
    let mut resp = if not_modified(headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    resp.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("etag is ascii"),
    );
    resp
}

/// Does an `If-None-Match` header match this ETag? (RFC 9110 weak comparison.)
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// One site by id, retired ones included, with an ETag.
#[utoipa::path(
    get,
    path = "/v1/sites/{id}",
    tag = "sites",
    params(("id" = String, Path, description = "Site id"), SiteParams),
    responses(
        (status = 200, description = "The site", body = SiteDoc, headers(("ETag" = String, description = "Entity tag of this representation"))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "Malformed id or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such site", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn site_detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id: SiteId = id
        .parse()
        .map_err(|e: crate::domain::site::BadSiteId| ApiError::unknown_id("id", e.to_string()))?;
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let at = p.at()?;
    // The whole record is the store's (the index keeps only what lists show);
    // its state is the index's when the index has this version.
    let site = state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site with id {id}")))?;
    let hours_state = state_now(&state, &site, at);
    let tag = etag(&site, crs, hours_state);
    let mut resp = if not_modified(&headers, &tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(site_doc(&site, crs, hours_state)).into_response()
    };
    resp.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("etag is ascii"),
    );
    Ok(resp)
}
