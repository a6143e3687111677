//! The in-memory spatial index of every non-retired site: the read path of
//! nearby search. It is a cache derived from the store, never the source of truth.
//!
//! Shape: an immutable [`Snapshot`] behind an `ArcSwap`. Readers load the current
//! snapshot (one atomic load, no lock) and search it; a writer builds the next
//! snapshot and swaps it in, so readers are never blocked.
//!
//! A snapshot is a large *base* (one R-tree per kind, bulk-loaded) plus a small
//! *overlay* holding the sites changed since the base was built. A write rebuilds
//! only the overlay; when the overlay outgrows a fraction of the base, the next
//! write compacts both into a new base. Base entries superseded by the overlay
//! are skipped during search.
//!
//! Points are 3D unit vectors: chord (Euclidean) order equals great-circle order
//! everywhere on the sphere, so nearest search is exact across the antimeridian
//! and at the poles without special cases.

mod envelope;
mod nearest;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rstar::{RTree, RTreeObject, RTreeParams};

pub use envelope::{P3, SiteEnvelope};
pub use nearest::{Hit, NearbyQuery};

use crate::domain::coords::{LatLon, unit_vector};
use crate::domain::hours::Hours;
use crate::domain::site::{KindSet, Site, SiteId, Status};

/// Node sizes tuned for query speed over a read-mostly index.
pub struct Params;
impl RTreeParams for Params {
    const MIN_SIZE: usize = 8;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 4;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

/// A site as the index holds it: the stored record, its unit vector and its
/// parsed opening hours (interned: sites share a handful of distinct strings).
#[derive(Debug)]
pub struct IndexedSite {
    pub site: Site,
    /// WGS-84 position (validated) and its unit vector.
    pub pos: LatLon,
    pub p: P3,
    /// `None` when the stored string does not parse: such a site is never open.
    pub hours: Option<Hours>,
    /// Small integer naming `hours`' string, for per-query evaluation caches.
    pub hours_id: u32,
}

impl IndexedSite {
    pub fn id(&self) -> SiteId {
        self.site.id
    }
}

/// A leaf of the R-tree.
#[derive(Debug, Clone)]
pub struct Entry(pub Arc<IndexedSite>);

impl RTreeObject for Entry {
    type Envelope = SiteEnvelope;
    fn envelope(&self) -> SiteEnvelope {
        let d = &self.0.site.draft;
        SiteEnvelope::point(self.0.p, KindSet::of(d.kind), d.amenities)
    }
}

pub type Tree = RTree<Entry, Params>;

/// One R-tree per kind: a kind filter picks trees instead of pruning inside one.
#[derive(Default)]
pub struct Layer {
    pub trees: [Tree; 4],
}

impl Layer {
    fn build(sites: Vec<Arc<IndexedSite>>) -> Layer {
        let mut per_kind: [Vec<Entry>; 4] = Default::default();
        for s in sites {
            per_kind[s.site.draft.kind.index()].push(Entry(s));
        }
        Layer {
            trees: per_kind.map(Tree::bulk_load_with_params),
        }
    }

    fn len(&self) -> usize {
        self.trees.iter().map(|t| t.size()).sum()
    }
}

/// An immutable view of the index at one moment.
pub struct Snapshot {
    base: Arc<Layer>,
    base_by_id: Arc<HashMap<SiteId, Arc<IndexedSite>>>,
    overlay: Layer,
    /// Every site changed since `base`: its current version, or `None` if it is
    /// now retired. Base leaves with an id in here are stale.
    changed: HashMap<SiteId, Option<Arc<IndexedSite>>>,
}

impl Snapshot {
    fn empty() -> Snapshot {
        Snapshot {
            base: Arc::default(),
            base_by_id: Arc::default(),
            overlay: Layer::default(),
            changed: HashMap::new(),
        }
    }

    /// The site's current indexed form (retired sites are not indexed).
    pub fn get(&self, id: SiteId) -> Option<&Arc<IndexedSite>> {
        match self.changed.get(&id) {
            Some(current) => current.as_ref(),
            None => self.base_by_id.get(&id),
        }
    }

    /// Number of indexed (non-retired) sites.
    pub fn len(&self) -> usize {
        self.base_by_id.len()
            - self
                .changed
                .keys()
                .filter(|id| self.base_by_id.contains_key(id))
                .count()
            + self.overlay.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All indexed sites, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<IndexedSite>> {
        self.base_by_id
            .values()
            .filter(|s| !self.changed.contains_key(&s.id()))
            .chain(self.changed.values().flatten())
    }

    fn is_stale(&self, id: SiteId) -> bool {
        !self.changed.is_empty() && self.changed.contains_key(&id)
    }
}

/// Parses each distinct opening-hours string once.
#[derive(Default)]
struct HoursInterner {
    ids: HashMap<String, (u32, Option<Hours>)>,
}

impl HoursInterner {
    fn intern(&mut self, s: &str) -> (u32, Option<Hours>) {
        if let Some((id, h)) = self.ids.get(s) {
            return (*id, h.clone());
        }
        let id = self.ids.len() as u32;
        let h = Hours::parse(s).ok();
        if h.is_none() {
            tracing::warn!(
                opening_hours = s,
                "stored opening_hours does not parse; site treated as closed"
            );
        }
        self.ids.insert(s.to_owned(), (id, h.clone()));
        (id, h)
    }
}

/// The index shared by all request handlers of a node.
pub struct SiteIndex {
    current: ArcSwap<Snapshot>,
    /// Serialises writers (readers never take it) and owns the interner.
    writer: Mutex<HoursInterner>,
}

impl Default for SiteIndex {
    fn default() -> Self {
        SiteIndex {
            current: ArcSwap::from_pointee(Snapshot::empty()),
            writer: Mutex::default(),
        }
    }
}

impl SiteIndex {
    /// Build from every stored site (retired ones are skipped).
    pub fn build(sites: impl IntoIterator<Item = Site>) -> SiteIndex {
        let index = SiteIndex::default();
        {
            let mut interner = index.writer.lock().expect("index writer poisoned");
            let indexed: Vec<Arc<IndexedSite>> = sites
                .into_iter()
                .filter(|s| s.draft.status != Status::Retired)
                .map(|s| Arc::new(make_indexed(&mut interner, s)))
                .collect();
            index.current.store(Arc::new(compact(indexed)));
        }
        index
    }

    /// The current snapshot: hold it for the duration of one request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Apply stored changes (created, updated or retired sites). Call after the
    /// store's transaction commits. Older versions than the indexed one are ignored,
    /// so applying the same change twice, or out of order, is harmless.
    pub fn apply(&self, sites: impl IntoIterator<Item = Site>) {
        let mut interner = self.writer.lock().expect("index writer poisoned");
        let cur = self.current.load_full();
        let mut changed = cur.changed.clone();
        let mut any = false;
        for site in sites {
            let id = site.id;
            let known_version = match changed.get(&id) {
                Some(Some(s)) => Some(s.site.version),
                Some(None) => None, // retired: a newer version may revive it
                None => cur.base_by_id.get(&id).map(|s| s.site.version),
            };
            if known_version.is_some_and(|v| v >= site.version) {
                continue;
            }
            any = true;
            let next = (site.draft.status != Status::Retired)
                .then(|| Arc::new(make_indexed(&mut interner, site)));
            changed.insert(id, next);
        }
        if !any {
            return;
        }
        let base_len = cur.base_by_id.len();
        let next = if changed.len() > (base_len / 64).clamp(256, 8192) {
            let live: Vec<Arc<IndexedSite>> = cur
                .base_by_id
                .values()
                .filter(|s| !changed.contains_key(&s.id()))
                .cloned()
                .chain(changed.values().flatten().cloned())
                .collect();
            compact(live)
        } else {
            Snapshot {
                base: cur.base.clone(),
                base_by_id: cur.base_by_id.clone(),
                overlay: Layer::build(changed.values().flatten().cloned().collect()),
                changed,
            }
        };
        self.current.store(Arc::new(next));
    }
}

fn make_indexed(interner: &mut HoursInterner, site: Site) -> IndexedSite {
    let (hours_id, hours) = interner.intern(&site.draft.opening_hours);
    // Stored coordinates passed the database's range checks; clamp defensively.
    let lat = site.draft.lat.clamp(-90.0, 90.0);
    let lon = site.draft.lon.clamp(-180.0, 180.0);
    IndexedSite {
        pos: LatLon::new(lat, lon).unwrap_or_else(|_| LatLon::new(0.0, 0.0).expect("valid")),
        p: unit_vector(lat, lon),
        hours,
        hours_id,
        site,
    }
}

fn compact(live: Vec<Arc<IndexedSite>>) -> Snapshot {
    let base_by_id = live.iter().map(|s| (s.id(), s.clone())).collect();
    Snapshot {
        base: Arc::new(Layer::build(live)),
        base_by_id: Arc::new(base_by_id),
        overlay: Layer::default(),
        changed: HashMap::new(),
    }
}
