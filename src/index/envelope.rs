//! The R-tree's envelope: a 3D box around unit vectors, plus, for each kind,
//! the union of the amenities of the sites of that kind below it. The masks are
//! what make rare filters fast: a subtree with no mother room, or none with a
//! required amenity, is never opened for a query that wants one.

use rstar::{AABB, Envelope, Point, RTreeObject};

use crate::domain::site::{Amenity, AmenitySet, Kind, KindSet};

pub type P3 = [f64; 3];

#[derive(Debug, Clone, PartialEq)]
pub struct SiteEnvelope {
    pub aabb: AABB<P3>,
    /// Kinds present below.
    pub kinds: KindSet,
    /// Per kind (in `Kind::ALL` order), the union of amenity bits below. 16 bits
    /// hold today's vocabulary and keep the envelope (so every tree node) small.
    pub amenities: [u16; 4],
}

const _: () = assert!(Amenity::ALL.len() <= 16, "widen SiteEnvelope::amenities");

impl SiteEnvelope {
    pub fn point(p: P3, kind: Kind, amenities: AmenitySet) -> SiteEnvelope {
        let mut by_kind = [0u16; 4];
        by_kind[kind.index()] = amenities.bits() as u16;
        SiteEnvelope {
            aabb: AABB::from_point(p),
            kinds: KindSet::of(kind),
            amenities: by_kind,
        }
    }

    /// Could a site of one of `kinds` with all of `amenities` be below?
    #[inline]
    pub fn may_match(&self, kinds: KindSet, amenities: AmenitySet) -> bool {
        let want = amenities.bits() as u16;
        let present = self.kinds.intersection(kinds);
        present
            .iter()
            .any(|k| self.amenities[k.index()] & want == want)
    }
}

impl Envelope for SiteEnvelope {
    type Point = P3;

    fn new_empty() -> Self {
        SiteEnvelope {
            aabb: AABB::new_empty(),
            kinds: KindSet::EMPTY,
            amenities: [0; 4],
        }
    }

    fn contains_point(&self, point: &P3) -> bool {
        self.aabb.contains_point(point)
    }

    fn contains_envelope(&self, other: &Self) -> bool {
        self.aabb.contains_envelope(&other.aabb)
    }

    fn merge(&mut self, other: &Self) {
        self.aabb.merge(&other.aabb);
        self.kinds = self.kinds.union(other.kinds);
        for (a, b) in self.amenities.iter_mut().zip(other.amenities) {
            *a |= b;
        }
    }

    fn merged(&self, other: &Self) -> Self {
        let mut m = self.clone();
        m.merge(other);
        m
    }

    fn intersects(&self, other: &Self) -> bool {
        self.aabb.intersects(&other.aabb)
    }

    fn intersection_area(&self, other: &Self) -> f64 {
        self.aabb.intersection_area(&other.aabb)
    }

    fn area(&self) -> f64 {
        self.aabb.area()
    }

    fn distance_2(&self, point: &P3) -> f64 {
        self.aabb.distance_2(point)
    }

    fn min_max_dist_2(&self, point: &P3) -> f64 {
        self.aabb.min_max_dist_2(point)
    }

    fn center(&self) -> P3 {
        self.aabb.center()
    }

    fn perimeter_value(&self) -> f64 {
        self.aabb.perimeter_value()
    }

    fn sort_envelopes<T: RTreeObject<Envelope = Self>>(axis: usize, envelopes: &mut [T]) {
        envelopes.sort_unstable_by(|l, r| {
            let (l, r) = (l.envelope(), r.envelope());
            l.aabb
                .lower()
                .nth(axis)
                .total_cmp(&r.aabb.lower().nth(axis))
        });
    }

    fn partition_envelopes<T: RTreeObject<Envelope = Self>>(
        axis: usize,
        envelopes: &mut [T],
        selection_size: usize,
    ) {
        if selection_size == 0 || selection_size >= envelopes.len() {
            return;
        }
        envelopes.select_nth_unstable_by(selection_size, |l, r| {
            let (l, r) = (l.envelope(), r.envelope());
            l.aabb
                .lower()
                .nth(axis)
                .total_cmp(&r.aabb.lower().nth(axis))
        });
    }
}
