//! Mapbox Vector Tiles (2.1) of the clusters and lone sites, so that MapLibre
//! and Mapbox SDKs draw the layer directly. Encoding is the `mvt` crate's.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use mvt::{GeomEncoder, GeomType, Tile};
use utoipa::IntoParams;

use super::AppState;
use super::clusters::{wgs84_box, with_clusters};
use super::params::{self, Params};
use super::sites::{out_coords, tagged};
use crate::domain::coords::Crs;
use crate::domain::site::Kind;
use crate::error::{ApiError, Problem};
use crate::index::cluster::{MAX_ZOOM, merc_to_latlon, merc_x, merc_y};
use crate::index::{Cluster, ClusterFilter, ClusterView, LonLatBox};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tiles/{z}/{x}/{y}", get(tile))
}

/// Tile coordinate space (the MVT default).
pub const EXTENT: u32 = 4096;
/// Features this far outside the tile (in extent units; 64 px of 512) are
/// included, so markers at tile edges are not cut.
pub const BUFFER: f64 = 512.0;
/// The layer's name in every tile.
pub const LAYER: &str = "sites";
pub const CONTENT_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// More features than any real tile holds; a bound on work per request.
const MAX_FEATURES: usize = 20_000;

/// Path parameters of `GET /v1/tiles/{z}/{x}/{y}.mvt`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TilePath {
    /// Zoom, 0–20; tiles are 512 px wide, clustered as `/v1/sites/clusters` at this zoom.
    z: u8,
    /// Column, 0 ≤ x < 2^z.
    x: u32,
    /// Row from the north, 0 ≤ y < 2^z (the path segment is the row followed by `.mvt`).
    y: u32,
}

/// Query parameters of `GET /v1/tiles/{z}/{x}/{y}.mvt`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TileQuery {
    /// The tile grid's coordinate system: `gcj02` for AMap/Tencent base maps, `bd09` for Baidu's; default wgs84.
    crs: Option<String>,
    /// Comma-separated kinds; any of them matches.
    kind: Option<String>,
    /// Comma-separated amenities; a site must have all of them.
    amenity: Option<String>,
    /// Evaluate lone sites' opening hours at this RFC 3339 instant (default: now).
    at: Option<String>,
}

/// A Mapbox Vector Tile 2.1 (extent 4096, 512 px) with one layer, `sites`, of
/// point features: clusters (`cluster`=true, `point_count`,
/// `point_count_abbreviated`, `expansion_zoom`, `count_<kind>`) and lone sites
/// (`cluster`=false, feature id = the site's numeric id, `id`, `name`, `kind`,
/// `status`, `is_open`, `amenities` comma-separated, `point_count`=1).
#[utoipa::path(
    get,
    path = "/v1/tiles/{z}/{x}/{y}.mvt",
    tag = "map",
    params(TilePath, TileQuery),
    responses(
        (status = 200, description = "The tile (may hold no features)", content_type = "application/vnd.mapbox-vector-tile", headers(("ETag" = String, description = "Entity tag of this body"))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "A parameter is malformed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn tile(
    State(state): State<AppState>,
    Path((z, x, y)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let z = params::int_in_range(&z, 0, i64::from(MAX_ZOOM)).map_err(|e| ApiError::param("z", e))?
        as u8;
    let n = 1i64 << z;
    let x = params::int_in_range(&x, 0, n - 1).map_err(|e| ApiError::param("x", e))? as u32;
    let y = y
        .strip_suffix(".mvt")
        .ok_or_else(|| ApiError::param("y", "expected a row followed by .mvt, e.g. 6.mvt"))
        .and_then(|v| params::int_in_range(v, 0, n - 1).map_err(|e| ApiError::param("y", e)))?
        as u32;
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let filter = ClusterFilter {
        kinds: p.kinds()?,
        amenities: p.amenities()?,
    };
    let at = p.at()?;
    let body = with_clusters(&state.index, filter, move |view| {
        render(view, z, x, y, crs, at)
    })
    .await?;
    Ok(tagged(&headers, CONTENT_TYPE, body))
}

/// Tile `(z, x, y)` of the grid in `crs`, encoded.
pub fn render(
    view: &ClusterView<'_>,
    z: u8,
    x: u32,
    y: u32,
    crs: Crs,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let (found, _) = view.clusters(z, &wgs84_box(tile_box(z, x, y), crs), MAX_FEATURES);
    encode(z, x, y, crs, at, &found)
}

/// The tile plus its buffer, in degrees of the tile grid's system.
pub fn tile_box(z: u8, x: u32, y: u32) -> LonLatBox {
    let n = f64::from(1u32 << z);
    let b = BUFFER / f64::from(EXTENT);
    let (x0, x1) = (
        ((f64::from(x) - b) / n).max(0.0),
        ((f64::from(x) + 1.0 + b) / n).min(1.0),
    );
    let (y0, y1) = ((f64::from(y) - b) / n, (f64::from(y) + 1.0 + b) / n);
    // Mercator ends at ±85.05°; sites beyond it are drawn on the edge rows.
    let max_lat = if y0 <= 0.0 {
        90.0
    } else {
        merc_to_latlon(0.0, y0).0
    };
    let min_lat = if y1 >= 1.0 {
        -90.0
    } else {
        merc_to_latlon(0.0, y1).0
    };
    LonLatBox {
        min_lon: merc_to_latlon(x0, 0.5).1,
        min_lat,
        max_lon: merc_to_latlon(x1, 0.5).1,
        max_lat,
    }
}

/// Where `(lat, lon)` falls in tile `(z, x, y)`, in extent units.
pub fn tile_point(z: u8, x: u32, y: u32, lat: f64, lon: f64) -> (f64, f64) {
    let n = f64::from(1u32 << z);
    let e = f64::from(EXTENT);
    (
        (merc_x(lon) * n - f64::from(x)) * e,
        (merc_y(lat) * n - f64::from(y)) * e,
    )
}

/// "1234" → "1.2k", as supercluster abbreviates.
fn abbreviated(count: u32) -> String {
    let rounded = |d: u32| (count + d / 2) / d;
    if count >= 10_000 {
        format!("{}k", rounded(1000))
    } else if count >= 1_000 {
        let tenths = rounded(100);
        match tenths % 10 {
            0 => format!("{}k", tenths / 10),
            t => format!("{}.{t}k", tenths / 10),
        }
    } else {
        count.to_string()
    }
}

fn encode(z: u8, x: u32, y: u32, crs: Crs, at: DateTime<Utc>, found: &[Cluster<'_>]) -> Vec<u8> {
    let mut tile = Tile::new(EXTENT);
    let mut layer = tile.create_layer(LAYER);
    let lo = -BUFFER;
    let hi = f64::from(EXTENT) + BUFFER;
    let kind_keys = Kind::ALL.map(|k| format!("count_{}", k.as_str()));
    for c in found {
        // Positions as the clusters endpoint gives them, so the two agree exactly.
        let (lat, lon) = match c.site {
            Some(s) => out_coords(crs, s.pos.lat(), s.pos.lon()),
            None => out_coords(crs, c.lat, c.lon),
        };
        let (px, py) = tile_point(z, x, y, lat, lon);
        if !(lo..=hi).contains(&px) || !(lo..=hi).contains(&py) {
            continue;
        }
        let geom = GeomEncoder::new(GeomType::Point)
            .point(px.round(), py.round())
            .and_then(|g| g.encode())
            .expect("a point inside the buffer encodes");
        let count = c.found.count();
        let mut f = layer.into_feature(geom);
        f.add_tag_uint("point_count", u64::from(count));
        match c.site {
            Some(site) => {
                f.set_id(site.id().get());
                f.add_tag_bool("cluster", false);
                f.add_tag_string("id", &site.id().to_string());
                f.add_tag_string("name", site.name());
                f.add_tag_string("kind", site.kind().as_str());
                f.add_tag_string("status", site.status().as_str());
                f.add_tag_bool("is_open", site.state(at).is_open);
                let amenities: Vec<&str> = site.amenities().iter().map(|a| a.as_str()).collect();
                f.add_tag_string("amenities", &amenities.join(","));
            }
            None => {
                f.add_tag_bool("cluster", true);
                f.add_tag_string("point_count_abbreviated", &abbreviated(count));
                if let Some(e) = c.found.expansion_zoom {
                    f.add_tag_uint("expansion_zoom", u64::from(e));
                }
                for (k, key) in Kind::ALL.iter().zip(&kind_keys) {
                    f.add_tag_uint(key, u64::from(c.found.by_kind[k.index()]));
                }
            }
        }
        layer = f.into_layer();
    }
    tile.add_layer(layer).expect("layer names are unique");
    tile.to_bytes().expect("tile encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations() {
        assert_eq!(abbreviated(1), "1");
        assert_eq!(abbreviated(999), "999");
        assert_eq!(abbreviated(1234), "1.2k");
        assert_eq!(abbreviated(1000), "1k");
        assert_eq!(abbreviated(9_960), "10k");
        assert_eq!(abbreviated(56_789), "57k");
    }

    #[test]
    fn tile_box_contains_its_points() {
        // Jinan at zoom 12.
        let (lat, lon) = (36.65, 117.12);
        let n = 4096.0;
        let (x, y) = ((merc_x(lon) * n) as u32, (merc_y(lat) * n) as u32);
        let b = tile_box(12, x, y);
        assert!(b.contains(lat, lon));
        let (px, py) = tile_point(12, x, y, lat, lon);
        assert!((0.0..4096.0).contains(&px) && (0.0..4096.0).contains(&py));
        // The whole world at zoom 0 reaches the poles.
        let w = tile_box(0, 0, 0);
        assert_eq!(
            (w.min_lat, w.max_lat, w.min_lon, w.max_lon),
            (-90.0, 90.0, -180.0, 180.0)
        );
    }
}
