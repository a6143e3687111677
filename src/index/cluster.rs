//! Clusters of sites for the map at every zoom, in the manner of supercluster:
//! a greedy radius clustering, precomputed as one hierarchy for all zooms, kept
//! exact under single-site updates.
//!
//! Positions are Web-Mercator coordinates normalised to `[0, 1]` (x east, y
//! south). At zoom `z` the world is `512 · 2^z` pixels wide and a cluster gathers
//! what lies within [`RADIUS_PX`] pixels of its seed.
//!
//! Build (as supercluster): from zoom 19 down to 0, every item of the level
//! above (a site or a cluster) that is not yet taken becomes a seed and takes
//! every untaken item within the radius; the result is a cluster at the seed
//! level's weighted centroid, or the seed alone. Neighbours come from a grid of
//! radius-sized cells swept in row order, so a level costs a sort and a linear
//! pass, not a spatial query per item. At zoom 20 every site stands alone.
//!
//! The result is a tree. A node formed at zoom `zoom` (sites: 20) and absorbed
//! into its parent at `parent_zoom` is what the map shows at the zooms in
//! `(parent_zoom, zoom]`; the nodes shown at one zoom partition the sites, which
//! is what makes counts exact. Each node keeps its members' count per kind, the
//! sums of their coordinates (so a centroid survives removals) and their
//! bounding box (for pruning; it may grow stale-large after removals, never too
//! small).
//!
//! Updates: a retired site is subtracted from its ancestors; a new site joins
//! the nearest node within the radius at the highest zoom that has one (forming
//! a cluster there if that node was a lone item), or becomes a root. A moved
//! site is both. The tree is then what a greedy pass could have produced, not
//! necessarily the one a rebuild would give; counts stay exact either way.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::{IndexedSite, LonLatBox, Snapshot};
use crate::domain::site::{AmenitySet, Kind, KindSet, SiteId};

/// The highest map zoom; at it every site is shown by itself.
pub const MAX_ZOOM: u8 = 20;
/// Clusters form at zooms `0..=MAX_ZOOM - 1`.
const CLUSTER_MAX_ZOOM: u8 = MAX_ZOOM - 1;
/// Cluster radius in pixels…
pub const RADIUS_PX: f64 = 40.0;
/// …of tiles this many pixels wide.
pub const TILE_PX: f64 = 512.0;
const NIL: u32 = u32::MAX;
/// Filtered hierarchies kept besides the unfiltered one.
const CACHED_FILTERS: usize = 32;

/// The cluster radius at `zoom`, in normalised Mercator units.
pub fn radius(zoom: u8) -> f64 {
    RADIUS_PX / (TILE_PX * f64::from(1u32 << zoom))
}

/// Web-Mercator x in `[0, 1]` of a longitude.
pub fn merc_x(lon: f64) -> f64 {
    (lon / 360.0 + 0.5).clamp(0.0, 1.0)
}

/// Web-Mercator y in `[0, 1]` (0 at the north edge, ±85.05°) of a latitude.
pub fn merc_y(lat: f64) -> f64 {
    let s = lat.to_radians().sin();
    let y = 0.5 - 0.25 * ((1.0 + s) / (1.0 - s)).ln() / std::f64::consts::PI;
    if y.is_nan() { 0.5 } else { y.clamp(0.0, 1.0) }
}

/// `(lat, lon)` of a normalised Mercator point.
pub fn merc_to_latlon(x: f64, y: f64) -> (f64, f64) {
    let lon = (x - 0.5) * 360.0;
    let lat = (std::f64::consts::PI * (1.0 - 2.0 * y))
        .sinh()
        .atan()
        .to_degrees();
    (lat, lon)
}

/// An axis-aligned box in normalised Mercator units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MercBox {
    pub min: [f64; 2],
    pub max: [f64; 2],
}

impl MercBox {
    /// The one or two boxes (two across the antimeridian) covering `b`.
    pub fn of(b: &LonLatBox) -> Vec<MercBox> {
        let (y0, y1) = (merc_y(b.max_lat), merc_y(b.min_lat));
        let span = |x0: f64, x1: f64| MercBox {
            min: [x0, y0],
            max: [x1, y1],
        };
        if b.crosses_antimeridian() {
            vec![span(merc_x(b.min_lon), 1.0), span(0.0, merc_x(b.max_lon))]
        } else {
            vec![span(merc_x(b.min_lon), merc_x(b.max_lon))]
        }
    }

    fn intersects(&self, min: [f32; 2], max: [f32; 2]) -> bool {
        f64::from(min[0]) <= self.max[0]
            && f64::from(max[0]) >= self.min[0]
            && f64::from(min[1]) <= self.max[1]
            && f64::from(max[1]) >= self.min[1]
    }
}

/// `x` rounded down / up to an `f32`, so a box stored in `f32` still contains it.
fn down(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) > x { f.next_down() } else { f }
}
fn up(x: f64) -> f32 {
    let f = x as f32;
    if f64::from(f) < x { f.next_up() } else { f }
}

/// What a node knows of its members.
#[derive(Debug, Clone, Copy)]
struct Agg {
    sx: f64,
    sy: f64,
    min: [f32; 2],
    max: [f32; 2],
    by_kind: [u32; 4],
}

impl Agg {
    fn point(x: f64, y: f64, kind: Kind) -> Agg {
        let mut by_kind = [0; 4];
        by_kind[kind.index()] = 1;
        Agg {
            sx: x,
            sy: y,
            min: [down(x), down(y)],
            max: [up(x), up(y)],
            by_kind,
        }
    }

    fn count(&self) -> u32 {
        self.by_kind.iter().sum()
    }

    fn centre(&self) -> (f64, f64) {
        let n = f64::from(self.count().max(1));
        (self.sx / n, self.sy / n)
    }

    fn add(&mut self, o: &Agg) {
        self.sx += o.sx;
        self.sy += o.sy;
        for i in 0..2 {
            self.min[i] = self.min[i].min(o.min[i]);
            self.max[i] = self.max[i].max(o.max[i]);
        }
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a += b;
        }
    }

    /// Take one member out; the box is left as it was (still a cover).
    fn sub(&mut self, o: &Agg) {
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind) {
            *a -= b;
        }
        if self.count() == 0 {
            (self.sx, self.sy) = (0.0, 0.0);
        } else {
            self.sx -= o.sx;
            self.sy -= o.sy;
        }
    }
}

#[derive(Debug, Clone)]
struct Node {
    agg: Agg,
    /// Formed at this zoom; sites: `MAX_ZOOM`.
    zoom: u8,
    /// Absorbed into `parent` at this zoom; -1 for a root.
    parent_zoom: i8,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    /// The site of a leaf.
    site: Option<SiteId>,
}

impl Node {
    fn new(agg: Agg, zoom: u8, site: Option<SiteId>) -> Node {
        Node {
            agg,
            zoom,
            parent_zoom: -1,
            parent: NIL,
            first_child: NIL,
            next_sibling: NIL,
            site,
        }
    }

    fn live(&self) -> bool {
        self.agg.by_kind.iter().any(|&c| c > 0)
    }
}

/// A site's place in the clustering.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub id: SiteId,
    pub x: f64,
    pub y: f64,
    pub kind: Kind,
}

impl Point {
    pub fn of(s: &IndexedSite) -> Point {
        Point {
            id: s.id(),
            x: merc_x(s.pos.lon()),
            y: merc_y(s.pos.lat()),
            kind: s.kind(),
        }
    }
}

/// One cluster or lone site shown at a zoom, as the hierarchy has it.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// The node, for [`Hierarchy::members`].
    pub node: u32,
    /// Weighted centroid, normalised Mercator.
    pub x: f64,
    pub y: f64,
    pub by_kind: [u32; 4],
    /// The zoom at which this cluster splits; `None` for a lone site.
    pub expansion_zoom: Option<u8>,
    /// The site, when the count is one.
    pub site: Option<SiteId>,
}

impl Found {
    pub fn count(&self) -> u32 {
        self.by_kind.iter().sum()
    }
}

/// The cluster tree of one set of sites.
#[derive(Debug, Default)]
pub struct Hierarchy {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    leaves: HashMap<SiteId, u32>,
}

impl Hierarchy {
    /// Cluster `points` at every zoom. The result depends only on the set of
    /// points, not on their order.
    pub fn build(mut points: Vec<Point>) -> Hierarchy {
        points.sort_unstable_by_key(|p| p.id);
        points.dedup_by_key(|p| p.id);
        let n = points.len();
        let mut h = Hierarchy {
            nodes: Vec::with_capacity(n + n / 2),
            roots: Vec::new(),
            leaves: HashMap::with_capacity(n),
        };
        for p in &points {
            let i = h.push(Node::new(
                Agg::point(p.x, p.y, p.kind),
                MAX_ZOOM,
                Some(p.id),
            ));
            h.leaves.insert(p.id, i);
        }
        // The items of the level being clustered, with their centres inline so
        // the sweep reads memory in order.
        let mut level: Vec<Item> = (0..n as u32)
            .map(|i| Item {
                key: 0,
                x: points[i as usize].x,
                y: points[i as usize].y,
                id: i,
            })
            .collect();
        let mut taken: Vec<bool> = Vec::with_capacity(n);
        let mut members: Vec<usize> = Vec::new();
        for z in (0..=CLUSTER_MAX_ZOOM).rev() {
            let r = radius(z);
            let inv = 1.0 / r;
            for it in &mut level {
                it.key = cell_key(it.x, it.y, inv);
            }
            level.sort_unstable_by_key(|it| (it.key, it.id));
            taken.clear();
            taken.resize(level.len(), false);
            let mut next = Vec::with_capacity(level.len());
            // For the rows above, at and below the item's cell: the index range of
            // the three cells around its column. Both ends only move forward.
            let mut lo = [0usize; 3];
            let mut hi = [0usize; 3];
            for i in 0..level.len() {
                let Item { key, x, y, id } = level[i];
                let (cy, cx) = (key >> 32, key & 0xffff_ffff);
                for (w, dy) in [-1i64, 0, 1].into_iter().enumerate() {
                    let row = cy as i64 + dy;
                    if row < 0 {
                        continue;
                    }
                    let from = ((row as u64) << 32) | cx.saturating_sub(1);
                    let to = ((row as u64) << 32) | (cx + 1).min(0xffff_ffff);
                    while lo[w] < level.len() && level[lo[w]].key < from {
                        lo[w] += 1;
                    }
                    hi[w] = hi[w].max(lo[w]);
                    while hi[w] < level.len() && level[hi[w]].key <= to {
                        hi[w] += 1;
                    }
                }
                if taken[i] {
                    continue;
                }
                taken[i] = true;
                members.clear();
                for w in 0..3 {
                    for (j, other) in level.iter().enumerate().take(hi[w]).skip(lo[w]) {
                        if !taken[j] && (other.x - x).powi(2) + (other.y - y).powi(2) <= r * r {
                            members.push(j);
                        }
                    }
                }
                if members.is_empty() {
                    next.push(level[i]);
                    continue;
                }
                let mut agg = h.nodes[id as usize].agg;
                for &j in &members {
                    taken[j] = true;
                    agg.add(&h.nodes[level[j].id as usize].agg);
                }
                let c = h.push(Node::new(agg, z, None));
                let mut prev = NIL;
                for child in std::iter::once(id).chain(members.iter().map(|&j| level[j].id)) {
                    let node = &mut h.nodes[child as usize];
                    node.parent = c;
                    node.parent_zoom = z as i8;
                    node.next_sibling = prev;
                    prev = child;
                }
                h.nodes[c as usize].first_child = prev;
                let (cx, cy) = agg.centre();
                next.push(Item {
                    key: 0,
                    x: cx,
                    y: cy,
                    id: c,
                });
            }
            level = next;
        }
        h.roots = level.iter().map(|it| it.id).collect();
        h.roots.sort_unstable();
        h
    }

    fn push(&mut self, node: Node) -> u32 {
        let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 cluster nodes");
        assert!(i != NIL, "cluster node arena is full");
        self.nodes.push(node);
        i
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    fn children(&self, n: u32) -> impl Iterator<Item = u32> + '_ {
        let mut c = self.nodes[n as usize].first_child;
        std::iter::from_fn(move || {
            (c != NIL).then(|| {
                let this = c;
                c = self.nodes[c as usize].next_sibling;
                this
            })
        })
    }

    fn live_children(&self, n: u32) -> impl Iterator<Item = u32> + '_ {
        self.children(n).filter(|&c| self.nodes[c as usize].live())
    }

    /// Visit every live node shown at `zoom` whose member box meets one of
    /// `boxes`; stop when `visit` says so. Returns whether it was stopped.
    fn visit(&self, zoom: u8, boxes: &[MercBox], mut visit: impl FnMut(u32) -> bool) -> bool {
        let meets = |n: u32| {
            let node = &self.nodes[n as usize];
            node.live()
                && boxes
                    .iter()
                    .any(|b| b.intersects(node.agg.min, node.agg.max))
        };
        let mut stack: Vec<u32> = self
            .roots
            .iter()
            .rev()
            .copied()
            .filter(|&n| meets(n))
            .collect();
        while let Some(n) = stack.pop() {
            // Every node reached was absorbed below `zoom` (roots: never).
            if self.nodes[n as usize].zoom >= zoom {
                if !visit(n) {
                    return true;
                }
            } else {
                let at = stack.len();
                stack.extend(self.children(n).filter(|&c| meets(c)));
                stack[at..].reverse();
            }
        }
        false
    }

    /// The clusters and lone sites shown at `zoom` that have a member inside one
    /// of `boxes` (or, by their box, may have one), at most `limit` of them;
    /// `true` with them if more were left out.
    pub fn query(&self, zoom: u8, boxes: &[MercBox], limit: usize) -> (Vec<Found>, bool) {
        let mut out = Vec::new();
        let mut truncated = false;
        self.visit(zoom.min(MAX_ZOOM), boxes, |n| {
            if out.len() == limit {
                truncated = true;
                return false;
            }
            out.push(self.found(n));
            true
        });
        (out, truncated)
    }

    fn found(&self, n: u32) -> Found {
        let agg = &self.nodes[n as usize].agg;
        let (x, y) = agg.centre();
        let lone = agg.count() == 1;
        Found {
            node: n,
            x,
            y,
            by_kind: agg.by_kind,
            expansion_zoom: (!lone).then(|| self.expansion_zoom(n)),
            site: if lone { self.lone_site(n) } else { None },
        }
    }

    /// The zoom at which the cluster's members are first shown apart: past
    /// every node on the way down that has a single live child.
    fn expansion_zoom(&self, mut n: u32) -> u8 {
        loop {
            let mut live = self.live_children(n);
            match (live.next(), live.next()) {
                (Some(only), None) => n = only,
                _ => return (self.nodes[n as usize].zoom + 1).min(MAX_ZOOM),
            }
        }
    }

    fn lone_site(&self, mut n: u32) -> Option<SiteId> {
        loop {
            let node = &self.nodes[n as usize];
            if let Some(id) = node.site {
                return Some(id);
            }
            n = self.live_children(n).next()?;
        }
    }

    /// The sites under a node.
    pub fn members(&self, n: u32) -> Vec<SiteId> {
        let mut out = Vec::new();
        let mut stack = vec![n];
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            if !node.live() {
                continue;
            }
            match node.site {
                Some(id) => out.push(id),
                None => stack.extend(self.children(n)),
            }
        }
        out
    }

    /// Add a site (replacing it if present).
    pub fn insert(&mut self, p: Point) {
        self.remove(p.id);
        let leaf = self.push(Node::new(
            Agg::point(p.x, p.y, p.kind),
            MAX_ZOOM,
            Some(p.id),
        ));
        self.leaves.insert(p.id, leaf);
        for z in (0..=CLUSTER_MAX_ZOOM).rev() {
            if let Some(n) = self.nearest_shown(z, p.x, p.y) {
                self.attach(leaf, n, z);
                return;
            }
        }
        self.roots.push(leaf);
    }

    /// The live node shown at `zoom` whose centre is nearest `(x, y)` and within
    /// the radius.
    fn nearest_shown(&self, zoom: u8, x: f64, y: f64) -> Option<u32> {
        let r = radius(zoom);
        let b = [MercBox {
            min: [x - r, y - r],
            max: [x + r, y + r],
        }];
        let mut best: Option<(f64, u32)> = None;
        self.visit(zoom, &b, |n| {
            let (cx, cy) = self.nodes[n as usize].agg.centre();
            let d = (cx - x).powi(2) + (cy - y).powi(2);
            if d <= r * r && best.is_none_or(|(bd, bn)| (d, n) < (bd, bn)) {
                best = Some((d, n));
            }
            true
        });
        best.map(|(_, n)| n)
    }

    /// Put the unattached `leaf` with `n`, shown at `zoom`.
    fn attach(&mut self, leaf: u32, n: u32, zoom: u8) {
        let agg = self.nodes[leaf as usize].agg;
        let host = if self.nodes[n as usize].zoom == zoom {
            // `n` formed at this zoom: the site joins it.
            n
        } else {
            // `n` is shown here by itself: a new cluster of the two takes its place.
            let (parent, parent_zoom, next) = {
                let node = &self.nodes[n as usize];
                (node.parent, node.parent_zoom, node.next_sibling)
            };
            let m = self.push(Node {
                agg: self.nodes[n as usize].agg,
                zoom,
                parent_zoom,
                parent,
                first_child: n,
                next_sibling: next,
                site: None,
            });
            self.replace_link(parent, n, m);
            let node = &mut self.nodes[n as usize];
            node.parent = m;
            node.parent_zoom = zoom as i8;
            node.next_sibling = NIL;
            m
        };
        {
            let first = self.nodes[host as usize].first_child;
            let node = &mut self.nodes[leaf as usize];
            node.parent = host;
            node.parent_zoom = zoom as i8;
            node.next_sibling = first;
        }
        self.nodes[host as usize].first_child = leaf;
        let mut a = host;
        while a != NIL {
            self.nodes[a as usize].agg.add(&agg);
            a = self.nodes[a as usize].parent;
        }
    }

    /// In `parent`'s child list (or the roots), put `new` where `old` was.
    fn replace_link(&mut self, parent: u32, old: u32, new: u32) {
        if parent == NIL {
            if let Some(r) = self.roots.iter_mut().find(|r| **r == old) {
                *r = new;
            }
            return;
        }
        if self.nodes[parent as usize].first_child == old {
            self.nodes[parent as usize].first_child = new;
            return;
        }
        let mut c = self.nodes[parent as usize].first_child;
        while c != NIL {
            if self.nodes[c as usize].next_sibling == old {
                self.nodes[c as usize].next_sibling = new;
                return;
            }
            c = self.nodes[c as usize].next_sibling;
        }
    }

    /// Take a site out (no-op if absent).
    pub fn remove(&mut self, id: SiteId) {
        let Some(leaf) = self.leaves.remove(&id) else {
            return;
        };
        let agg = self.nodes[leaf as usize].agg;
        let mut a = leaf;
        while a != NIL {
            self.nodes[a as usize].agg.sub(&agg);
            a = self.nodes[a as usize].parent;
        }
        // Unlink the dead leaf so child lists stay short.
        let (parent, next) = {
            let node = &self.nodes[leaf as usize];
            (node.parent, node.next_sibling)
        };
        if parent == NIL {
            self.roots.retain(|&r| r != leaf);
        } else {
            self.replace_link(parent, leaf, next);
        }
    }
}

#[derive(Clone, Copy)]
struct Item {
    key: u64,
    x: f64,
    y: f64,
    id: u32,
}

/// Row-major key of the grid cell (of size `1 / inv`) holding `(x, y)`.
fn cell_key(x: f64, y: f64, inv: f64) -> u64 {
    let cx = (x * inv).floor().clamp(0.0, f64::from(u32::MAX - 1)) as u64;
    let cy = (y * inv).floor().clamp(0.0, f64::from(u32::MAX - 1)) as u64;
    (cy << 32) | cx
}

/// Which sites a hierarchy clusters: the `kind` and `amenity` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterFilter {
    pub kinds: KindSet,
    pub amenities: AmenitySet,
}

impl ClusterFilter {
    pub const ALL: ClusterFilter = ClusterFilter {
        kinds: KindSet::ALL,
        amenities: AmenitySet::EMPTY,
    };

    pub fn matches(&self, s: &IndexedSite) -> bool {
        self.kinds.contains(s.kind()) && s.amenities().contains_all(self.amenities)
    }
}

/// The hierarchy of one filter, kept current by the index's writer.
pub struct ClusterSet {
    filter: ClusterFilter,
    tree: RwLock<Hierarchy>,
    /// Dropped from the cache: no longer updated, so not to be read.
    evicted: AtomicBool,
    last_used: AtomicU64,
}

impl ClusterSet {
    pub(super) fn build<'a>(
        filter: ClusterFilter,
        sites: impl Iterator<Item = &'a Arc<IndexedSite>>,
    ) -> ClusterSet {
        let points = sites
            .filter(|s| filter.matches(s))
            .map(|s| Point::of(s))
            .collect();
        ClusterSet::of(filter, Hierarchy::build(points))
    }

    /// A set of an already built hierarchy (of the sites `filter` matches).
    pub(super) fn of(filter: ClusterFilter, tree: Hierarchy) -> ClusterSet {
        ClusterSet {
            filter,
            tree: RwLock::new(tree),
            evicted: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
        }
    }

    /// Apply one change of a site (`None`: not indexed / retired).
    fn update(
        &self,
        tree: &mut Hierarchy,
        old: Option<&Arc<IndexedSite>>,
        new: Option<&Arc<IndexedSite>>,
    ) {
        let old = old.filter(|s| self.filter.matches(s));
        let new = new.filter(|s| self.filter.matches(s));
        if let (Some(o), Some(n)) = (old, new)
            && o.pos == n.pos
            && o.kind() == n.kind()
        {
            return;
        }
        if let Some(o) = old {
            tree.remove(o.id());
        }
        if let Some(n) = new {
            tree.insert(Point::of(n));
        }
    }
}

/// The index's cluster hierarchies: the unfiltered one, always, and the most
/// recently used filtered ones, each built on first use.
#[derive(Default)]
pub(super) struct ClusterCache {
    sets: Mutex<HashMap<ClusterFilter, Arc<ClusterSet>>>,
    tick: AtomicU64,
}

impl ClusterCache {
    pub(super) fn get(&self, filter: ClusterFilter) -> Option<Arc<ClusterSet>> {
        let sets = self.sets.lock().expect("cluster cache poisoned");
        let set = sets.get(&filter)?.clone();
        set.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        Some(set)
    }

    /// Add a set; call with the index's writer lock held.
    pub(super) fn insert(&self, set: Arc<ClusterSet>) {
        let mut sets = self.sets.lock().expect("cluster cache poisoned");
        set.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        sets.insert(set.filter, set);
        while sets.len() > CACHED_FILTERS + 1 {
            let Some(oldest) = sets
                .values()
                .filter(|s| s.filter != ClusterFilter::ALL)
                .min_by_key(|s| s.last_used.load(Ordering::Relaxed))
                .map(|s| s.filter)
            else {
                break;
            };
            if let Some(gone) = sets.remove(&oldest) {
                // Under the write lock, so a reader holding it sees a current tree.
                let _guard = gone.tree.write().expect("cluster set poisoned");
                gone.evicted.store(true, Ordering::Release);
            }
        }
    }

    pub(super) fn all(&self) -> Vec<Arc<ClusterSet>> {
        self.sets
            .lock()
            .expect("cluster cache poisoned")
            .values()
            .cloned()
            .collect()
    }
}

/// A site before and after a change (`None`: not indexed, i.e. new or retired).
pub type SiteChange = (Option<Arc<IndexedSite>>, Option<Arc<IndexedSite>>);

/// Apply site changes to every cached hierarchy, then publish `publish` (the
/// new snapshot) while their write locks are held: a reader that locks a
/// hierarchy and then loads the snapshot always sees the two agree.
pub(super) fn apply_changes(cache: &ClusterCache, changes: &[SiteChange], publish: impl FnOnce()) {
    let sets = cache.all();
    let mut guards: Vec<_> = sets
        .iter()
        .map(|s| (s, s.tree.write().expect("cluster set poisoned")))
        .collect();
    for (set, tree) in &mut guards {
        for (old, new) in changes {
            set.update(tree, old.as_ref(), new.as_ref());
        }
    }
    publish();
}

/// A hierarchy and the snapshot it agrees with, for one request.
pub struct ClusterView<'a> {
    pub tree: &'a Hierarchy,
    pub snapshot: &'a Snapshot,
}

/// One cluster or lone site, ready to show.
#[derive(Debug, Clone)]
pub struct Cluster<'a> {
    pub found: Found,
    /// WGS-84 centroid.
    pub lat: f64,
    pub lon: f64,
    /// The site of a cluster of one.
    pub site: Option<&'a Arc<IndexedSite>>,
}

impl<'a> ClusterView<'a> {
    /// Clusters shown at `zoom` with a member (possibly) inside `bbox` (WGS-84).
    pub fn clusters(&self, zoom: u8, bbox: &LonLatBox, limit: usize) -> (Vec<Cluster<'a>>, bool) {
        let (found, truncated) = self.tree.query(zoom, &MercBox::of(bbox), limit);
        let clusters = found
            .into_iter()
            .map(|f| {
                let (lat, lon) = merc_to_latlon(f.x, f.y);
                Cluster {
                    found: f,
                    lat,
                    lon,
                    site: f.site.and_then(|id| self.snapshot.get(id)),
                }
            })
            .collect();
        (clusters, truncated)
    }

    pub fn members(&self, node: u32) -> Vec<SiteId> {
        self.tree.members(node)
    }
}

/// Run `f` on `set` and the snapshot it agrees with; `Err(f)` back if the set
/// was evicted (the caller asks the cache again).
pub(super) fn with_view<R, F: FnOnce(&ClusterView<'_>) -> R>(
    set: &ClusterSet,
    snapshot: impl FnOnce() -> Arc<Snapshot>,
    f: F,
) -> Result<R, F> {
    let tree = set.tree.read().expect("cluster set poisoned");
    if set.evicted.load(Ordering::Acquire) {
        return Err(f);
    }
    let snapshot = snapshot();
    Ok(f(&ClusterView {
        tree: &tree,
        snapshot: &snapshot,
    }))
}
