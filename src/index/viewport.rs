//! Sites inside a longitude/latitude box, for the map's viewport. The box is
//! turned into a 3D box around its patch of the unit sphere, the R-trees are
//! searched with it, and each candidate is then tested exactly.

use rstar::{AABB, Envelope, RTreeNode};

use super::{Entry, P3, Snapshot};
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
