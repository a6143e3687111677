//! The R-tree's envelope: a 3D box around unit vectors, plus the union of the
//! kinds and amenities below it. The masks are what make rare filters fast:
//! a subtree whose union lacks a required amenity is never opened.

use rstar::{AABB, Envelope, Point, RTreeObject};

use crate::domain::site::{AmenitySet, KindSet};

pub type P3 = [f64; 3];

#[derive(Debug, Clone, PartialEq)]
pub struct SiteEnvelope {
    pub aabb: AABB<P3>,
    pub kinds: KindSet,
    pub amenities: AmenitySet,
}

impl SiteEnvelope {
    pub fn point(p: P3, kinds: KindSet, amenities: AmenitySet) -> SiteEnvelope {
        SiteEnvelope {
            aabb: AABB::from_point(p),
            kinds,
            amenities,
        }
    }

    /// Could anything below this envelope match a filter?
    #[inline]
    pub fn may_match(&self, kinds: KindSet, amenities: AmenitySet) -> bool {
        self.kinds.intersects(kinds) && self.amenities.contains_all(amenities)
    }
}

impl Envelope for SiteEnvelope {
    type Point = P3;

    fn new_empty() -> Self {
        SiteEnvelope {
            aabb: AABB::new_empty(),
            kinds: KindSet::EMPTY,
            amenities: AmenitySet::EMPTY,
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
        self.amenities = self.amenities.union(other.amenities);
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
