//! Search by name or address: riders type "工会驿站 高新区" or part of a street.

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::IntoParams;

use super::AppState;
use super::params::{self, Params};
use super::sites::{NearbyResponse, nearby_item};
use std::sync::Arc;

use crate::domain::coords::{LatLon, haversine_m, to_wgs84};
use crate::domain::site::KindSet;
use crate::error::{ApiError, Problem};
use crate::index::IndexedSite;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sites/search", get(search))
}

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// Matches fetched from the store before ranking.
const CANDIDATES: i64 = 2_000;

/// Query parameters of `GET /v1/sites/search`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchParams {
    /// Words to find in the name or address (each at least 2 characters; every word must occur).
    q: String,
    /// Latitude of the rider, in `crs` (optional, with `lon`): ties in match quality go to the nearest.
    lat: Option<f64>,
    /// Longitude of the rider, in `crs`.
    lon: Option<f64>,
    /// Coordinate system of `lat`/`lon` and of the coordinates returned (default wgs84).
    crs: Option<String>,
    /// Comma-separated kinds; any of them matches.
    kind: Option<String>,
    /// How many sites, 1–100 (default 20).
    limit: Option<u32>,
    /// Evaluate opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
}

pub fn parse_terms(v: &str) -> Result<Vec<String>, String> {
    let terms: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
    if terms.is_empty() {
        return Err("is empty".to_owned());
    }
    if terms.len() > 8 || v.chars().count() > 100 {
        return Err("is too long (at most 8 words, 100 characters)".to_owned());
    }
    if let Some(t) = terms.iter().find(|t| t.chars().count() < 2) {
        return Err(format!(
            "'{t}' is too short: each word needs at least 2 characters"
        ));
    }
    Ok(terms)
}

/// How well a site matches: name matches count double, a name holding the
/// whole query (or starting with it) ranks first.
fn score(name: &str, address: &str, terms: &[String]) -> u32 {
    let mut s = 0;
    for t in terms {
        s += if name.contains(t.as_str()) {
            2
        } else if address.contains(t.as_str()) {
            1
        } else {
            0
        };
    }
    let whole = terms.concat();
    if name.contains(&whole) {
        s += 2;
    }
    if name.starts_with(terms[0].as_str()) {
        s += 1;
    }
    s
}

/// Sites whose name or address contains every word of `q`, best match first,
/// then nearest to `lat`/`lon` when given.
#[utoipa::path(
    get,
    path = "/v1/sites/search",
    tag = "sites",
    params(SearchParams),
    responses(
        (status = 200, description = "Matching sites, best first; `distance_m` present when lat/lon were given", body = NearbyResponse),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NearbyResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let terms = p.required("q", parse_terms)?;
    let crs = p.crs()?;
    let lat = p.optional("lat", |v| params::in_range(v, -90.0, 90.0))?;
    let lon = p.optional("lon", |v| params::in_range(v, -180.0, 180.0))?;
    let origin = match (lat, lon) {
        (Some(lat), Some(lon)) => {
            let (lat, lon) = to_wgs84(crs, lat, lon);
            Some(LatLon::new(lat, lon).map_err(|e| ApiError::param(e.field(), e.to_string()))?)
        }
        (None, None) => None,
        (Some(_), None) => return Err(ApiError::param("lon", "is required with lat")),
        (None, Some(_)) => return Err(ApiError::param("lat", "is required with lon")),
    };
    let kinds = p.kinds()?;
    let limit = p
        .optional("limit", |v| params::int_in_range(v, 1, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT) as usize;
    let at = p.at()?;
    let ranked = matches(&state, &terms, origin, kinds, limit).await?;
    let items = ranked
        .iter()
        .map(|(distance, s)| nearby_item(s.view(), crs, *distance, s.state(at)))
        .collect();
    Ok(Json(NearbyResponse {
        crs: crs.as_str().to_owned(),
        at,
        items,
    }))
}

/// The indexed sites matching every term, best first, then nearest to
/// `origin` when given: at most `limit` (the API's search and the console's).
pub async fn matches(
    state: &AppState,
    terms: &[String],
    origin: Option<LatLon>,
    kinds: KindSet,
    limit: usize,
) -> Result<Vec<(Option<f64>, Arc<IndexedSite>)>, ApiError> {
    let ids = state.store.search_sites(terms, CANDIDATES).await?;
    let snapshot = state.index.snapshot();
    let mut ranked: Vec<_> = ids
        .into_iter()
        .filter_map(|id| snapshot.get(id))
        .filter(|s| kinds.contains(s.kind()))
        .map(|s| {
            let distance = origin.map(|o| haversine_m(o, s.pos));
            (score(s.name(), s.address(), terms), distance, s)
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(a.1.unwrap_or(0.0).total_cmp(&b.1.unwrap_or(0.0)))
            .then(a.2.id().cmp(&b.2.id()))
    });
    ranked.truncate(limit);
    Ok(ranked.into_iter().map(|(_, d, s)| (d, s.clone())).collect())
}
