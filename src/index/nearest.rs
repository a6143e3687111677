//! Exact k-nearest search with filters: a best-first walk over the R-trees'
//! nodes (Hjaltason & Samet), pruning subtrees by distance and by the kind and
//! amenity masks in their envelopes. Each site is checked exactly (haversine
//! radius, kind, amenities, opening hours) only when it reaches the head of the queue.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rstar::{Envelope, ParentNode, RTreeNode};

use super::{Entry, IndexedSite, P3, Snapshot};
use crate::domain::coords::{LatLon, chord2_for_distance_m, haversine_m, unit_vector};
use crate::domain::hours::HoursState;
use crate::domain::site::{AmenitySet, KindSet, Status};

/// A validated nearby query, in WGS-84.
#[derive(Debug, Clone)]
pub struct NearbyQuery {
    pub origin: LatLon,
    pub k: usize,
    pub kinds: KindSet,
    pub amenities: AmenitySet,
    pub radius_m: Option<f64>,
    /// Evaluate opening hours at this instant.
    pub at: DateTime<Utc>,
    /// Only sites open at `at`.
    pub open_only: bool,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub site: Arc<IndexedSite>,
    pub distance_m: f64,
    pub state: HoursState,
}

/// Opening state of a site at one instant, cached per distinct hours string.
pub(crate) struct StateCache {
    at: DateTime<Utc>,
    by_hours: HashMap<u32, HoursState>,
}

impl StateCache {
    pub(crate) fn new(at: DateTime<Utc>) -> StateCache {
        StateCache {
            at,
            by_hours: HashMap::new(),
        }
    }

    pub(crate) fn state(&mut self, s: &IndexedSite) -> HoursState {
        const CLOSED: HoursState = HoursState {
            is_open: false,
            next_change: None,
        };
        if s.site.draft.status != Status::Open {
            return CLOSED;
        }
        let Some(hours) = &s.hours else {
            return CLOSED;
        };
        *self
            .by_hours
            .entry(s.hours_id)
            .or_insert_with(|| hours.evaluate(self.at))
    }
}

enum Cand<'a> {
    Node(&'a ParentNode<Entry>, bool),
    Leaf(&'a Entry, bool),
}

struct Queued<'a> {
    d2: f64,
    cand: Cand<'a>,
}

impl PartialEq for Queued<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.d2.total_cmp(&other.d2) == Ordering::Equal
    }
}
impl Eq for Queued<'_> {}
impl PartialOrd for Queued<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued<'_> {
    // BinaryHeap is a max-heap: reverse so the nearest pops first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.d2.total_cmp(&self.d2)
    }
}

impl Snapshot {
    /// The `k` nearest sites matching the query, nearest first.
    pub fn nearest(&self, q: &NearbyQuery) -> Vec<Hit> {
        let mut out = Vec::with_capacity(q.k.min(128));
        if q.k == 0 || q.kinds.is_empty() {
            return out;
        }
        let p = unit_vector(q.origin.lat(), q.origin.lon());
        // Prune by chord with a little slack; the exact test is haversine below.
        let max_d2 = q.radius_m.map_or(f64::INFINITY, |r| {
            chord2_for_distance_m(r) * (1.0 + 1e-9) + 1e-18
        });
        let mut states = StateCache::new(q.at);
        let mut heap = BinaryHeap::with_capacity(256);
        for kind in q.kinds.iter() {
            for (layer, from_base) in [(&*self.base, true), (&self.overlay, false)] {
                let root = layer.trees[kind.index()].root();
                if !root.children().is_empty() {
                    heap.push(Queued {
                        d2: 0.0,
                        cand: Cand::Node(root, from_base),
                    });
                }
            }
        }
        while let Some(Queued { d2, cand }) = heap.pop() {
            if d2 > max_d2 {
                break;
            }
            match cand {
                Cand::Leaf(entry, from_base) => {
                    let site = &entry.0;
                    if from_base && self.is_stale(site.id()) {
                        continue;
                    }
                    let distance_m = haversine_m(q.origin, site.pos);
                    if q.radius_m.is_some_and(|r| distance_m > r) {
                        continue;
                    }
                    let state = states.state(site);
                    if q.open_only && !state.is_open {
                        continue;
                    }
                    out.push(Hit {
                        site: site.clone(),
                        distance_m,
                        state,
                    });
                    if out.len() == q.k {
                        break;
                    }
                }
                Cand::Node(node, from_base) => {
                    for child in node.children() {
                        match child {
                            RTreeNode::Leaf(entry) => {
                                let d = &entry.0.site.draft;
                                if !q.kinds.contains(d.kind)
                                    || !d.amenities.contains_all(q.amenities)
                                {
                                    continue;
                                }
                                let d2 = dist2(&entry.0.p, &p);
                                if d2 <= max_d2 {
                                    heap.push(Queued {
                                        d2,
                                        cand: Cand::Leaf(entry, from_base),
                                    });
                                }
                            }
                            RTreeNode::Parent(parent) => {
                                let env = parent.envelope();
                                if !env.may_match(q.kinds, q.amenities) {
                                    continue;
                                }
                                let d2 = env.distance_2(&p);
                                if d2 <= max_d2 {
                                    heap.push(Queued {
                                        d2,
                                        cand: Cand::Node(parent, from_base),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        // Chord order is great-circle order; sort by the reported distance so ties
        // in floating point never show as an out-of-order list.
        out.sort_by(|a, b| {
            a.distance_m
                .total_cmp(&b.distance_m)
                .then(a.site.id().cmp(&b.site.id()))
        });
        out
    }
}

fn dist2(a: &P3, b: &P3) -> f64 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}
