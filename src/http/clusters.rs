//! The map zoomed out: clusters of sites at a web-map zoom, from the index's
//! precomputed hierarchies (see `index::cluster`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::map::parse_bbox;
use super::params::{self, Params};
use super::sites::{NearbyItem, nearby_item, out_coords, tagged};
use crate::domain::coords::Crs;
use crate::domain::site::Kind;
use crate::error::{ApiError, Problem};
use crate::index::cluster::MAX_ZOOM;
use crate::index::{Cluster, ClusterFilter, ClusterView, LonLatBox, SiteIndex};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sites/clusters", get(clusters))
}

pub const DEFAULT_LIMIT: i64 = 5_000;
pub const MAX_LIMIT: i64 = 50_000;

/// Query parameters of `GET /v1/sites/clusters`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ClustersParams {
    /// `minLon,minLat,maxLon,maxLat` in `crs`; `minLon > maxLon` crosses the antimeridian.
    bbox: String,
    /// Web-map zoom, 0–20 (512-pixel tiles). At 20 every site is shown by itself.
    zoom: u8,
    /// Coordinate system of `bbox` and of the returned coordinates (default wgs84).
    crs: Option<String>,
    /// Comma-separated kinds; any of them matches.
    kind: Option<String>,
    /// Comma-separated amenities; a site must have all of them.
    amenity: Option<String>,
    /// At most this many clusters, 1–50000 (default 5000); past it the response says `truncated`.
    limit: Option<u32>,
    /// Evaluate lone sites' opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
}

/// Clusters and lone sites at one zoom.
#[derive(Serialize, ToSchema)]
pub struct ClustersResponse {
    pub crs: String,
    pub zoom: u8,
    /// Sum of the returned clusters' counts.
    pub total: u64,
    /// More clusters matched than `limit`; only `limit` were returned.
    pub truncated: bool,
    /// The instant opening hours were evaluated at, when `at` was given.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub at: Option<DateTime<Utc>>,
    pub clusters: Vec<ClusterItem>,
}

/// A cluster of sites, or a lone site (`count` 1, with `site`).
#[derive(Serialize, ToSchema)]
pub struct ClusterItem {
    /// Centroid of the members (a lone site: its position), in `crs`.
    pub lat: f64,
    pub lon: f64,
    pub count: u32,
    /// Members per kind; every kind is listed.
    pub counts_by_kind: CountsByKind,
    /// Zoom in to this level to see the members apart; null for a lone site.
    pub expansion_zoom: Option<u8>,
    /// The site of a cluster of one (shaped as a nearby item, without distance).
    pub site: Option<NearbyItem>,
}

/// A cluster's members per kind.
#[derive(Serialize, ToSchema, Debug, Clone, Copy)]
pub struct CountsByKind {
    pub outdoor_station: u32,
    pub mother_room: u32,
    pub union_station: u32,
    pub craftsman_studio: u32,
}

impl CountsByKind {
    pub fn of(by_kind: [u32; 4]) -> CountsByKind {
        let n = |k: Kind| by_kind[k.index()];
        CountsByKind {
            outdoor_station: n(Kind::OutdoorStation),
            mother_room: n(Kind::MotherRoom),
            union_station: n(Kind::UnionStation),
            craftsman_studio: n(Kind::CraftsmanStudio),
        }
    }
}

/// The hierarchy-building part runs off the async workers when the filter's
/// hierarchy is not built yet (time linear in the matching sites).
pub async fn with_clusters<R: Send + 'static>(
    index: &Arc<SiteIndex>,
    filter: ClusterFilter,
    f: impl FnOnce(&ClusterView<'_>) -> R + Send + 'static,
) -> Result<R, ApiError> {
    if index.clusters_cached(filter) {
        return Ok(index.with_clusters(filter, f));
    }
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.with_clusters(filter, f))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cluster build failed: {e}")))
}

/// The box to ask the WGS-84 hierarchy for, so that every site inside the
/// caller's box (in `crs`) is covered.
pub fn wgs84_box(asked: LonLatBox, crs: Crs) -> LonLatBox {
    asked.to_wgs84_bounds(crs)
}

pub fn cluster_item(c: &Cluster<'_>, crs: Crs, at: DateTime<Utc>) -> ClusterItem {
    let site = c
        .site
        .map(|s| nearby_item(s.view(), crs, None, s.state(at)));
    let (lat, lon) = match &site {
        Some(item) => (item.lat, item.lon),
        None => out_coords(crs, c.lat, c.lon),
    };
    ClusterItem {
        lat,
        lon,
        count: c.found.count(),
        counts_by_kind: CountsByKind::of(c.found.by_kind),
        expansion_zoom: c.found.expansion_zoom,
        site,
    }
}

/// Clusters of the matching sites at a web-map zoom (supercluster-style:
/// radius 40 px at 512-px tiles, precomputed for every zoom). A lone site is a
/// cluster of count 1 carrying its `site`. Every matching site inside `bbox` is
/// counted in exactly one returned cluster; a cluster at the edge may also count
/// members just outside. Over the whole world the counts add up to the number
/// of matching sites. Zooming to a cluster's `expansion_zoom` shows its members
/// in two or more clusters.
#[utoipa::path(
    get,
    path = "/v1/sites/clusters",
    tag = "map",
    params(ClustersParams),
    responses(
        (status = 200, description = "Clusters and lone sites", body = ClustersResponse, headers(("ETag" = String, description = "Entity tag of this body"))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clusters(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let [min_lon, min_lat, max_lon, max_lat] = p.required("bbox", parse_bbox)?;
    let zoom = p.required("zoom", |v| params::int_in_range(v, 0, i64::from(MAX_ZOOM)))? as u8;
    let filter = ClusterFilter {
        kinds: p.kinds()?,
        amenities: p.amenities()?,
    };
    let limit = p
        .optional("limit", |v| params::int_in_range(v, 1, MAX_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT) as usize;
    let at = p.at()?;
    let echo_at = p.raw("at").is_some().then_some(at);
    let asked = LonLatBox {
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    };
    let search = wgs84_box(asked, crs);
    let body = with_clusters(&state.index, filter, move |view| {
        render(view, zoom, &search, crs, limit, at, echo_at)
    })
    .await?;
    Ok(tagged(&headers, "application/json", body))
}

/// The response body for clusters at `zoom` in `search` (a WGS-84 box).
pub fn render(
    view: &ClusterView<'_>,
    zoom: u8,
    search: &LonLatBox,
    crs: Crs,
    limit: usize,
    at: DateTime<Utc>,
    echo_at: Option<DateTime<Utc>>,
) -> Vec<u8> {
    let (found, truncated) = view.clusters(zoom, search, limit);
    let clusters: Vec<ClusterItem> = found.iter().map(|c| cluster_item(c, crs, at)).collect();
    let resp = ClustersResponse {
        crs: crs.as_str().to_owned(),
        zoom,
        total: clusters.iter().map(|c| u64::from(c.count)).sum(),
        truncated,
        at: echo_at,
        clusters,
    };
    serde_json::to_vec(&resp).expect("clusters serialize")
}
