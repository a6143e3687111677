//! The map's viewport: every matching site inside a box, as GeoJSON.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::params::{self, Params};
use super::sites::{NearbyItem, nearby_item, tagged};
use crate::domain::coords::{LatLon, haversine_m, to_wgs84};
use crate::error::{ApiError, Problem};
use crate::index::LonLatBox;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sites", get(viewport))
}

pub const DEFAULT_LIMIT: i64 = 500;
pub const MAX_LIMIT: i64 = 5_000;

/// Query parameters of `GET /v1/sites`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ViewportParams {
    /// `minLon,minLat,maxLon,maxLat` in `crs`; `minLon > maxLon` crosses the antimeridian.
    bbox: String,
    /// Coordinate system of `bbox` and of the returned coordinates (default wgs84).
    crs: Option<String>,
    /// Comma-separated kinds; any of them matches.
    kind: Option<String>,
    /// Comma-separated amenities; a site must have all of them.
    amenity: Option<String>,
    /// At most this many sites, 1–5000 (default 500); past it the response says `truncated`.
    limit: Option<u32>,
    /// Evaluate opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
}

/// GeoJSON's `type` of a FeatureCollection.
#[derive(Serialize, ToSchema)]
pub enum FeatureCollectionType {
    FeatureCollection,
}

/// GeoJSON's `type` of a Feature.
#[derive(Serialize, ToSchema)]
pub enum FeatureType {
    Feature,
}

/// GeoJSON's `type` of a Point.
#[derive(Serialize, ToSchema)]
pub enum PointType {
    Point,
}

/// An RFC 7946 Point.
#[derive(Serialize, ToSchema)]
pub struct Point {
    #[serde(rename = "type")]
    pub type_: PointType,
    /// `[lon, lat]` in the requested `crs` (RFC 7946 order).
    #[schema(min_items = 2, max_items = 2)]
    pub coordinates: [f64; 2],
}

/// One site as an RFC 7946 Feature: its id, its point, and the same
/// properties as a nearby item (`distance_m` is null).
#[derive(Serialize, ToSchema)]
pub struct SiteFeature {
    #[serde(rename = "type")]
    pub type_: FeatureType,
    /// The site's id (as `properties.id`).
    pub id: String,
    pub geometry: Point,
    pub properties: NearbyItem,
}

/// What a viewport answer holds besides its features.
#[derive(Serialize, ToSchema)]
pub struct ViewportMetadata {
    /// Coordinate system of the features' coordinates.
    pub crs: &'static str,
    /// Sites in the box that match the filters.
    pub total: usize,
    /// Features in this answer (at most `limit`).
    pub returned: usize,
    /// More sites matched than `limit`: the nearest the box's centre are returned.
    pub truncated: bool,
    /// The `at` the opening states were evaluated at, when it was given (null: now).
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub at: Option<DateTime<Utc>>,
}

/// The map's answer: an RFC 7946 FeatureCollection of sites, with `metadata`
/// (a foreign member).
#[derive(Serialize, ToSchema)]
pub struct SiteFeatureCollection {
    #[serde(rename = "type")]
    pub type_: FeatureCollectionType,
    pub metadata: ViewportMetadata,
    pub features: Vec<SiteFeature>,
}

pub fn parse_bbox(v: &str) -> Result<[f64; 4], String> {
    let parts: Vec<&str> = v.split(',').collect();
    if parts.len() != 4 {
        return Err("expected minLon,minLat,maxLon,maxLat".to_owned());
    }
    let mut b = [0.0; 4];
    for (i, (part, (lo, hi))) in parts
        .iter()
        .zip([
            (-180.0, 180.0),
            (-90.0, 90.0),
            (-180.0, 180.0),
            (-90.0, 90.0),
        ])
        .enumerate()
    {
        b[i] = params::in_range(part, lo, hi)?;
    }
    if b[1] > b[3] {
        return Err("minLat is greater than maxLat".to_owned());
    }
    Ok(b)
}

/// Sites inside a box, as an RFC 7946 FeatureCollection. Past `limit` the
/// sites nearest the box's centre are returned and `metadata.truncated` is true,
/// with `metadata.total` the number of matching sites.
#[utoipa::path(
    get,
    path = "/v1/sites",
    tag = "map",
    params(ViewportParams),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection of sites; properties as in nearby items; `metadata` says crs, at, total, truncated", body = SiteFeatureCollection, content_type = "application/geo+json", headers(("ETag" = String, description = "Entity tag of this body"))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn viewport(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let [min_lon, min_lat, max_lon, max_lat] = p.required("bbox", parse_bbox)?;
    let kinds = p.kinds()?;
    let amenities = p.amenities()?;
    let limit = p
        .optional("limit", |v| params::int_in_range(v, 1, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT) as usize;
    let at = p.at()?;
    let asked = LonLatBox {
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    };
    // Search a WGS-84 box that holds the caller's, then test each site exactly
    // in the caller's coordinate system.
    let search = asked.to_wgs84_bounds(crs);
    let snapshot = state.index.snapshot();
    let mut found = snapshot.within(&search, kinds, amenities, |e| {
        let (lat, lon) = crate::domain::coords::from_wgs84(crs, e.pos.lat(), e.pos.lon());
        asked.contains(lat, lon)
    });
    let total = found.len();
    let truncated = total > limit;
    // Nearest the centre first, so a truncated page shows the middle of the view.
    let (clat, clon) = box_centre(&asked);
    let (clat, clon) = to_wgs84(crs, clat, clon);
    let centre = LatLon::new(clat, clon).unwrap_or_else(|_| LatLon::new(0.0, 0.0).expect("valid"));
    let mut keyed: Vec<_> = found
        .drain(..)
        .map(|e| (haversine_m(centre, e.pos), e))
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    keyed.truncate(limit);
    let features: Vec<SiteFeature> = keyed
        .iter()
        .map(|(_, e)| {
            let item = nearby_item(e.site.view(), crs, None, e.state(at));
            SiteFeature {
                type_: FeatureType::Feature,
                id: item.id.to_string(),
                geometry: Point {
                    type_: PointType::Point,
                    coordinates: [item.lon, item.lat],
                },
                properties: item,
            }
        })
        .collect();
    let body = SiteFeatureCollection {
        type_: FeatureCollectionType::FeatureCollection,
        metadata: ViewportMetadata {
            crs: crs.as_str(),
            total,
            returned: features.len(),
            truncated,
            // `at` only when asked for: "now" in the body would change the
            // ETag on every request, while the opening states it decides
            // change rarely.
            at: p.raw("at").is_some().then_some(at),
        },
        features,
    };
    let bytes = serde_json::to_vec(&body).expect("the collection serializes");
    Ok(tagged(&headers, "application/geo+json", bytes))
}

fn box_centre(b: &LonLatBox) -> (f64, f64) {
    let lat = (b.min_lat + b.max_lat) / 2.0;
    let mut lon = if b.crosses_antimeridian() {
        (b.min_lon + b.max_lon + 360.0) / 2.0
    } else {
        (b.min_lon + b.max_lon) / 2.0
    };
    if lon > 180.0 {
        lon -= 360.0;
    }
    (lat, lon)
}
