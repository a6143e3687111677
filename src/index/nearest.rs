//! Exact k-nearest search with filters: a best-first walk over the R-trees'
//! nodes, pruning subtrees by distance and by the kind and amenity masks in
//! their envelopes.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rstar::{Envelope, ParentNode, RTreeNode};

use super::{Entry, IndexedSite, P3, Snapshot};
use crate::domain::coords::{LatLon, chord2_for_distance_m, haversine_m, unit_vector};
use crate::domain::hours::HoursState;
use crate::domain::site::{AmenitySet, KindSet};

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

/// A result, borrowed from the snapshot searched.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    pub site: &'a Arc<IndexedSite>,
    pub distance_m: f64,
    pub state: HoursState,
}

/// A subtree waiting in the queue, keyed by its envelope's distance.
struct Queued<'a> {
    d2: f64,
    node: &'a ParentNode<Entry>,
    from_base: bool,
}

/// A site among the best k found so far, keyed by its chord distance.
struct Best<'a> {
    d2: f64,
    entry: &'a Entry,
}

macro_rules! order_by_d2 {
    ($t:ident, $cmp:expr) => {
        impl PartialEq for $t<'_> {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == Ordering::Equal
            }
        }
        impl Eq for $t<'_> {}
        impl PartialOrd for $t<'_> {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        impl Ord for $t<'_> {
            fn cmp(&self, other: &Self) -> Ordering {
                $cmp(self, other)
            }
        }
    };
}
// BinaryHeap is a max-heap: the queue pops the nearest subtree first, the
// best-k set keeps its farthest member on top, ready to be replaced.
order_by_d2!(Queued, |a: &Queued, b: &Queued| b.d2.total_cmp(&a.d2));
order_by_d2!(Best, |a: &Best, b: &Best| a
    .d2
    .total_cmp(&b.d2)
    .then(a.entry.id.cmp(&b.entry.id)));

impl Snapshot {
    /// The `k` nearest sites matching the query, nearest first.
    ///
    /// Branch and bound: subtrees wait in a queue ordered by distance; sites go
    /// into a bounded set of the best k, whose farthest member bounds which
    /// subtrees are still worth opening. A site enters the set only after its
    /// exact checks (haversine radius, opening state), so the bound is exact.
    pub fn nearest(&self, q: &NearbyQuery) -> Vec<Hit<'_>> {
        if q.k == 0 || q.kinds.is_empty() {
            return Vec::new();
        }
        let p = unit_vector(q.origin.lat(), q.origin.lon());
        // Chord bounds around the radius, with slack for rounding in the unit
        // vectors (~1e-16 absolute): beyond `max_d2` a site is surely outside,
        // within `sure_d2` surely inside; in between, haversine decides.
        let (max_d2, sure_d2) = q.radius_m.map_or((f64::INFINITY, f64::INFINITY), |r| {
            let c = chord2_for_distance_m(r).sqrt();
            let hi = c + 1e-15;
            let lo = (c - 1e-15).max(0.0);
            (hi * hi * (1.0 + 1e-6), lo * lo * (1.0 - 1e-6))
        });
        let mut queue: BinaryHeap<Queued> = BinaryHeap::with_capacity(64);
        let mut best: BinaryHeap<Best> = BinaryHeap::with_capacity(q.k + 1);
        for (layer, from_base) in [(&*self.base, true), (&self.overlay, false)] {
            let root = layer.tree.root();
            if !root.children().is_empty() {
                queue.push(Queued {
                    d2: 0.0,
                    node: root,
                    from_base,
                });
            }
        }
        let bound = |best: &BinaryHeap<Best>| {
            if best.len() == q.k {
                best.peek().map_or(max_d2, |b| b.d2)
            } else {
                max_d2
            }
        };
        while let Some(Queued {
            d2,
            node,
            from_base,
        }) = queue.pop()
        {
            if d2 > bound(&best) {
                break;
            }
            for child in node.children() {
                match child {
                    RTreeNode::Leaf(entry) => {
                        if !q.kinds.contains(entry.kind)
                            || !entry.amenities.contains_all(q.amenities)
                        {
                            continue;
                        }
                        let d2 = dist2(&entry.p, &p);
                        if d2 > bound(&best) {
                            continue;
                        }
                        if from_base && self.is_stale(entry.id) {
                            continue;
                        }
                        // Inside the radius for sure by chord; near the edge, decide
                        // by haversine exactly as reported.
                        if d2 > sure_d2
                            && q.radius_m
                                .is_some_and(|r| haversine_m(q.origin, entry.pos) > r)
                        {
                            continue;
                        }
                        if q.open_only && !entry.state(q.at).is_open {
                            continue;
                        }
                        best.push(Best { d2, entry });
                        if best.len() > q.k {
                            best.pop();
                        }
                    }
                    RTreeNode::Parent(parent) => {
                        let env = parent.envelope();
                        if !env.may_match(q.kinds, q.amenities) {
                            continue;
                        }
                        let d2 = env.distance_2(&p);
                        if d2 <= bound(&best) {
                            queue.push(Queued {
                                d2,
                                node: parent,
                                from_base,
                            });
                        }
                    }
                }
            }
        }
        let mut out: Vec<Hit<'_>> = best
            .into_iter()
            .map(|b| Hit {
                site: &b.entry.site,
                distance_m: haversine_m(q.origin, b.entry.pos),
                state: b.entry.state(q.at),
            })
            .collect();
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
