//! Sites inside a longitude/latitude box, for the map's viewport. The box is
//! turned into a 3D box around its patch of the unit sphere, the R-trees are
//! searched with it, and each candidate is then tested exactly.

use rstar::{AABB, Envelope, RTreeNode};

use super::{Entry, P3, Snapshot};
use crate::domain::coords::{Crs, to_wgs84};
use crate::domain::site::{AmenitySet, KindSet};

/// A box in degrees. `min_lon > max_lon` means it crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LonLatBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl LonLatBox {
    pub fn crosses_antimeridian(&self) -> bool {
        self.min_lon > self.max_lon
    }

    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        let lon_ok = if self.crosses_antimeridian() {
            lon >= self.min_lon || lon <= self.max_lon
        } else {
            lon >= self.min_lon && lon <= self.max_lon
        };
        lon_ok && lat >= self.min_lat && lat <= self.max_lat
    }

    /// Widen by `deg` in every direction (clamped to the globe).
    pub fn widened(&self, deg: f64) -> LonLatBox {
        let full = !self.crosses_antimeridian() && self.max_lon - self.min_lon + 2.0 * deg >= 360.0;
        let (min_lon, max_lon) = if full {
            (-180.0, 180.0)
        } else {
            (wrap(self.min_lon - deg), wrap(self.max_lon + deg))
        };
        LonLatBox {
            min_lon,
            min_lat: (self.min_lat - deg).max(-90.0),
            max_lon,
            max_lat: (self.max_lat + deg).min(90.0),
        }
    }

    /// A WGS-84 box holding every point that is inside this box when read in
    /// `crs`. The GCJ-02 and BD-09 shifts (up to ~0.02°) vary smoothly inside
    /// China's rectangle and are zero outside it, so the box's edges are
    /// converted at 3–5 points each (at most 0.01° apart on small boxes), with a
    /// margin of 0.3% of their spacing (at least 0.0001°), above how far the
    /// shift bends between two of them; a test checks it on 3,000 random boxes.
    /// A box that straddles the rectangle's edge is widened by 0.05° instead.
    pub fn to_wgs84_bounds(&self, crs: Crs) -> LonLatBox {
        const CHINA: LonLatBox = LonLatBox {
            min_lon: 72.004,
            min_lat: 0.8293,
            max_lon: 137.8347,
            max_lat: 55.8271,
        };
        if crs == Crs::Wgs84 {
            return *self;
        }
        let lat_apart = self.max_lat < CHINA.min_lat || self.min_lat > CHINA.max_lat;
        let lon_apart = if self.crosses_antimeridian() {
            self.min_lon > CHINA.max_lon && self.max_lon < CHINA.min_lon
        } else {
            self.max_lon < CHINA.min_lon || self.min_lon > CHINA.max_lon
        };
        if lat_apart || lon_apart {
            return *self;
        }
        let inside = !self.crosses_antimeridian()
            && self.min_lon >= CHINA.min_lon
            && self.max_lon <= CHINA.max_lon
            && self.min_lat >= CHINA.min_lat
            && self.max_lat <= CHINA.max_lat;
        if !inside {
            return self.widened(0.05);
        }
        let (w, h) = (self.max_lon - self.min_lon, self.max_lat - self.min_lat);
        let steps = ((w.max(h) / 0.01).ceil() as usize).clamp(2, 4);
        let spacing = w.max(h) / steps as f64;
        let (mut lat0, mut lat1, mut lon0, mut lon1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        let mut take = |lat: f64, lon: f64| {
            let (lat, lon) = to_wgs84(crs, lat, lon);
            (lat0, lat1, lon0, lon1) = (lat0.min(lat), lat1.max(lat), lon0.min(lon), lon1.max(lon));
        };
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (lat, lon) = (self.min_lat + t * h, self.min_lon + t * w);
            take(self.min_lat, lon);
            take(self.max_lat, lon);
            take(lat, self.min_lon);
            take(lat, self.max_lon);
        }
        let margin = (1e-4f64).max(spacing * 3e-3);
        LonLatBox {
            min_lon: (lon0 - margin).max(-180.0),
            min_lat: (lat0 - margin).max(-90.0),
            max_lon: (lon1 + margin).min(180.0),
            max_lat: (lat1 + margin).min(90.0),
        }
    }

    /// A 3D box that contains every unit vector of a point inside this box.
    fn bounding_aabb(&self) -> AABB<P3> {
        let (z0, z1) = (
            self.min_lat.to_radians().sin(),
            self.max_lat.to_radians().sin(),
        );
        // cos(lat) over [min_lat, max_lat]: largest nearest the equator.
        let c_max = if self.min_lat <= 0.0 && self.max_lat >= 0.0 {
            1.0
        } else {
            self.min_lat
                .to_radians()
                .cos()
                .max(self.max_lat.to_radians().cos())
        };
        let c_min = self
            .min_lat
            .to_radians()
            .cos()
            .min(self.max_lat.to_radians().cos());
        // cos/sin of longitude over the (possibly wrapping) range: ends plus the
        // axis crossings inside it.
        let (mut ux, mut uy) = ((f64::MAX, f64::MIN), (f64::MAX, f64::MIN));
        let mut take = |lon: f64| {
            let (s, c) = lon.to_radians().sin_cos();
            ux = (ux.0.min(c), ux.1.max(c));
            uy = (uy.0.min(s), uy.1.max(s));
        };
        take(self.min_lon);
        take(self.max_lon);
        for axis in [-180.0, -90.0, 0.0, 90.0, 180.0] {
            if self.contains(0.0_f64.clamp(self.min_lat, self.max_lat), axis) {
                take(axis);
            }
        }
        let span = |u: (f64, f64)| {
            let lo = (c_min * u.0).min(c_max * u.0);
            let hi = (c_min * u.1).max(c_max * u.1);
            (lo, hi)
        };
        let (x, y) = (span(ux), span(uy));
        const PAD: f64 = 1e-9;
        AABB::from_corners(
            [x.0 - PAD, y.0 - PAD, z0 - PAD],
            [x.1 + PAD, y.1 + PAD, z1 + PAD],
        )
    }
}

fn wrap(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

impl Snapshot {
    /// Every indexed site matching the filters whose WGS-84 position is inside
    /// `bbox` and passes `accept`, in no particular order.
    pub fn within<'a>(
        &'a self,
        bbox: &LonLatBox,
        kinds: KindSet,
        amenities: AmenitySet,
        mut accept: impl FnMut(&Entry) -> bool,
    ) -> Vec<&'a Entry> {
        let aabb = bbox.bounding_aabb();
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for (layer, from_base) in [(&*self.base, true), (&self.overlay, false)] {
            stack.push(layer.tree.root());
            while let Some(node) = stack.pop() {
                for child in node.children() {
                    match child {
                        RTreeNode::Leaf(e) => {
                            if kinds.contains(e.kind)
                                && e.amenities.contains_all(amenities)
                                && aabb.contains_point(&e.p)
                                && bbox.contains(e.pos.lat(), e.pos.lon())
                                && !(from_base && self.is_stale(e.id))
                                && accept(e)
                            {
                                out.push(e);
                            }
                        }
                        RTreeNode::Parent(p) => {
                            let env = p.envelope();
                            if env.may_match(kinds, amenities) && env.aabb.intersects(&aabb) {
                                stack.push(p);
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::coords::unit_vector;

    #[test]
    fn bounding_box_contains_every_point_of_the_patch() {
        let boxes = [
            LonLatBox {
                min_lon: 116.0,
                min_lat: 36.0,
                max_lon: 118.0,
                max_lat: 37.0,
            },
            LonLatBox {
                min_lon: 170.0,
                min_lat: -10.0,
                max_lon: -170.0,
                max_lat: 10.0,
            },
            LonLatBox {
                min_lon: -180.0,
                min_lat: 80.0,
                max_lon: 180.0,
                max_lat: 90.0,
            },
            LonLatBox {
                min_lon: -100.0,
                min_lat: -90.0,
                max_lon: 100.0,
                max_lat: -60.0,
            },
            LonLatBox {
                min_lon: 89.0,
                min_lat: -1.0,
                max_lon: 91.0,
                max_lat: 1.0,
            },
        ];
        for b in boxes {
            let aabb = b.bounding_aabb();
            for i in 0..=40 {
                for j in 0..=40 {
                    let lat = b.min_lat + (b.max_lat - b.min_lat) * i as f64 / 40.0;
                    let span = if b.crosses_antimeridian() {
                        b.max_lon + 360.0 - b.min_lon
                    } else {
                        b.max_lon - b.min_lon
                    };
                    let lon = wrap(b.min_lon + span * j as f64 / 40.0);
                    assert!(b.contains(lat, lon));
                    assert!(
                        aabb.contains_point(&unit_vector(lat, lon)),
                        "{b:?} {lat} {lon}"
                    );
                }
            }
        }
    }

    #[test]
    fn wgs84_bounds_hold_every_shifted_point() {
        use crate::domain::coords::from_wgs84;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for crs in [Crs::Gcj02, Crs::Bd09] {
            for _ in 0..1000 {
                let size = 10f64.powf(rng.random_range(-4.0..1.3));
                let lat = rng.random_range(0.0..56.0);
                let lon = rng.random_range(70.0..140.0);
                let b = LonLatBox {
                    min_lon: lon,
                    min_lat: lat,
                    max_lon: (lon + size * rng.random_range(0.3..2.0)).min(180.0),
                    max_lat: (lat + size).min(90.0),
                };
                let w = b.to_wgs84_bounds(crs);
                for _ in 0..200 {
                    // A WGS-84 point whose `crs` reading lies inside `b`.
                    let p_lat = rng.random_range(b.min_lat..=b.max_lat);
                    let p_lon = rng.random_range(b.min_lon..=b.max_lon);
                    let (wl, wn) = to_wgs84(crs, p_lat, p_lon);
                    let (bl, bn) = from_wgs84(crs, wl, wn);
                    if b.contains(bl, bn) {
                        assert!(
                            w.contains(wl, wn),
                            "{crs:?} {b:?} -> {w:?} misses {wl},{wn}"
                        );
                    }
                }
                // Small boxes stay small: the point of not widening by 0.05°.
                if size < 0.01
                    && b.min_lon > 73.0
                    && b.max_lon < 135.0
                    && b.min_lat > 1.0
                    && b.max_lat < 55.0
                {
                    assert!(
                        w.max_lon - w.min_lon < (b.max_lon - b.min_lon) + 0.001,
                        "{b:?} -> {w:?}"
                    );
                }
            }
        }
        let far = LonLatBox {
            min_lon: -10.0,
            min_lat: 40.0,
            max_lon: 10.0,
            max_lat: 50.0,
        };
        assert_eq!(far.to_wgs84_bounds(Crs::Gcj02), far);
    }

    #[test]
    fn antimeridian_boxes_contain_both_sides() {
        let b = LonLatBox {
            min_lon: 170.0,
            min_lat: -10.0,
            max_lon: -170.0,
            max_lat: 10.0,
        };
        assert!(b.contains(0.0, 179.0) && b.contains(0.0, -179.0) && b.contains(0.0, 180.0));
        assert!(!b.contains(0.0, 0.0) && !b.contains(0.0, 169.9) && !b.contains(11.0, 175.0));
    }
}
