//! The in-memory spatial index of every non-retired site: the read path of
//! nearby search. It is a cache derived from the store, never the source of truth.
//!
//! Shape: an immutable [`Snapshot`] behind an `ArcSwap`. Readers load the current
//! snapshot (one atomic load, no lock) and search it; a writer builds the next
//! snapshot and swaps it in, so readers are never blocked.
//!
//! A snapshot is a large *base* (one bulk-loaded R-tree) plus a small
//! *overlay* holding the sites changed since the base was built. A write rebuilds
//! only the overlay; when the overlay outgrows a fraction of the base, the next
//! write compacts both into a new base. Base entries superseded by the overlay
//! are skipped during search.
//!
//! Points are 3D unit vectors: chord (Euclidean) order equals great-circle order
//! everywhere on the sphere, so nearest search is exact across the antimeridian
//! and at the poles without special cases.

pub mod cluster;
mod envelope;
mod nearest;
mod viewport;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use rstar::{RTree, RTreeObject, RTreeParams};

pub use cluster::{Cluster, ClusterFilter, ClusterView};
pub use envelope::{P3, SiteEnvelope};
pub use nearest::{Hit, NearbyQuery};
pub use viewport::LonLatBox;

use crate::domain::coords::{LatLon, unit_vector};
use crate::domain::hours::{HolidayCalendar, Hours, HoursState};
use crate::domain::site::{
    Adcode, AmenitySet, ClosureInfo, Kind, Site, SiteId, SiteRecord, SiteView, Status,
};

/// Node sizes tuned for query speed over a read-mostly index.
pub struct Params;
impl RTreeParams for Params {
    const MIN_SIZE: usize = 12;
    const MAX_SIZE: usize = 24;
    const REINSERTION_COUNT: usize = 6;
    type DefaultInsertionStrategy = rstar::RStarInsertionStrategy;
}

/// A site as the index holds it: what searches test and lists show, compactly
/// (a million of these are the bulk of a node's memory). Its text fields share
/// one allocation, its opening-hours string is shared with every site that has
/// the same, and what only a site's own page shows (photos, the closure's
/// reason) stays in the store.
#[derive(Debug)]
pub struct IndexedSite {
    id: SiteId,
    version: i64,
    kind: Kind,
    status: Status,
    amenities: AmenitySet,
    adcode: Adcode,
    /// WGS-84 position (validated).
    pub pos: LatLon,
    /// `None` when the stored string does not parse: such a site is never open.
    pub hours: Option<Arc<HoursSlot>>,
    opening_hours: Arc<str>,
    /// `ext_ref`, `name`, `address` and `phone`, one after another.
    text: Box<str>,
    /// Where `ext_ref`, `name` and `address` end in `text`.
    ends: [u32; 3],
    /// Bit 0: `ext_ref` is set; bit 1: `phone` is set.
    present: u8,
    /// Closure exceptions, when there are any (their reasons are not kept).
    closure: Option<Box<ClosureInfo>>,
}

impl IndexedSite {
    pub fn id(&self) -> SiteId {
        self.id
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn amenities(&self) -> AmenitySet {
        self.amenities
    }

    pub fn name(&self) -> &str {
        &self.text[self.ends[0] as usize..self.ends[1] as usize]
    }

    pub fn address(&self) -> &str {
        &self.text[self.ends[1] as usize..self.ends[2] as usize]
    }

    pub fn ext_ref(&self) -> Option<&str> {
        (self.present & 1 != 0).then(|| &self.text[..self.ends[0] as usize])
    }

    pub fn phone(&self) -> Option<&str> {
        (self.present & 2 != 0).then(|| &self.text[self.ends[2] as usize..])
    }

    /// The fields a list shows.
    pub fn view(&self) -> SiteView<'_> {
        SiteView {
            id: self.id,
            ext_ref: self.ext_ref(),
            kind: self.kind,
            name: self.name(),
            address: self.address(),
            adcode: self.adcode,
            lat: self.pos.lat(),
            lon: self.pos.lon(),
            opening_hours: &self.opening_hours,
            amenities: self.amenities,
            status: self.status,
            phone: self.phone(),
        }
    }

    /// Open or closed at `at`, and when that next changes. A site that is not
    /// `open` (temporarily closed) is never open.
    pub fn state(&self, at: DateTime<Utc>) -> HoursState {
        match &self.hours {
            Some(h) if self.status == Status::Open => match &self.closure {
                Some(c) => c.state(at, |t| h.state(t)),
                None => h.state(at),
            },
            _ => HoursState::CLOSED,
        }
    }
}

/// The node's current holiday calendar, shared by the index and every hours
/// slot. Its id is kept beside it so that the hot path (is the slot's binding
/// current?) is one atomic load, not a load of the calendar itself.
struct CalendarCell {
    current: ArcSwap<HolidayCalendar>,
    /// `current`'s [`HolidayCalendar::id`], stored after it.
    id: AtomicU64,
}

impl CalendarCell {
    fn new(calendar: HolidayCalendar) -> CalendarCell {
        CalendarCell {
            id: AtomicU64::new(calendar.id()),
            current: ArcSwap::from_pointee(calendar),
        }
    }

    fn id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    fn load(&self) -> Arc<HolidayCalendar> {
        self.current.load_full()
    }

    fn store(&self, calendar: HolidayCalendar) {
        let id = calendar.id();
        self.current.store(Arc::new(calendar));
        self.id.store(id, Ordering::Release);
    }
}

/// One distinct opening-hours string, parsed once, with the last evaluation
/// remembered: a state computed at `t` with next change `n` is the answer for
/// every instant in `[t, n)`, so "open now?" is evaluated once per string per
/// change, not once per site per request.
///
/// Evaluation uses the node's current holiday calendar: when it has changed
/// since the last evaluation, the expression is bound to the new calendar (no
/// parsing) and the state remembered under the old one is dropped, so no state
/// or `next_change` computed with an old calendar is served once a new one is
/// installed.
pub struct HoursSlot {
    current: ArcSwap<SlotState>,
    calendar: Arc<CalendarCell>,
}

/// The hours bound to one calendar, and the last state evaluated with it.
struct SlotState {
    hours: Hours,
    /// `hours.calendar().id()`, inline.
    calendar_id: u64,
    last: Option<CachedState>,
}

#[derive(Debug)]
struct CachedState {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    is_open: bool,
}

impl SlotState {
    fn new(hours: Hours, at: DateTime<Utc>, state: HoursState) -> SlotState {
        SlotState {
            calendar_id: hours.calendar().id(),
            hours,
            // Only bounded answers are reusable: "no change within the horizon"
            // seen from `at` says nothing exact about a later instant's horizon.
            last: state.next_change.map(|until| CachedState {
                from: at,
                until,
                is_open: state.is_open,
            }),
        }
    }
}

impl std::fmt::Debug for HoursSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HoursSlot")
            .field(&self.current.load().hours)
            .finish()
    }
}

impl HoursSlot {
    pub fn state(&self, at: DateTime<Utc>) -> HoursState {
        let current = self.current.load();
        if current.calendar_id == self.calendar.id() {
            if let Some(c) = &current.last
                && c.from <= at
                && at < c.until
            {
                return HoursState {
                    is_open: c.is_open,
                    next_change: Some(c.until),
                };
            }
            let state = current.hours.evaluate(at);
            if state.next_change.is_some() {
                let hours = current.hours.clone();
                self.current
                    .store(Arc::new(SlotState::new(hours, at, state)));
            }
            return state;
        }
        // A new calendar: rebind, and forget what the old one said.
        let hours = current.hours.with_calendar(&self.calendar.load());
        let state = hours.evaluate(at);
        self.current
            .store(Arc::new(SlotState::new(hours, at, state)));
        state
    }
}

/// A leaf of the R-tree. Everything the search tests is inline, so that bulk
/// loading and searching never chase the pointer to the site until it is a
/// result: a pointer chase per candidate was half the time of a query.
#[derive(Debug, Clone)]
pub struct Entry {
    pub p: P3,
    pub pos: LatLon,
    pub kind: Kind,
    pub amenities: AmenitySet,
    pub id: SiteId,
    /// The site's hours if it can ever be open (status `open`, hours parse).
    pub hours: Option<Arc<HoursSlot>>,
    /// Closure exceptions exist: the state needs the site's record.
    pub closures: bool,
    pub site: Arc<IndexedSite>,
}

impl Entry {
    fn new(site: Arc<IndexedSite>) -> Entry {
        Entry {
            p: unit_vector(site.pos.lat(), site.pos.lon()),
            pos: site.pos,
            kind: site.kind,
            amenities: site.amenities,
            id: site.id,
            hours: site.hours.clone().filter(|_| site.status == Status::Open),
            closures: site.closure.is_some(),
            site,
        }
    }

    /// Same as `IndexedSite::state`, from the inline copy.
    pub fn state(&self, at: DateTime<Utc>) -> HoursState {
        match &self.hours {
            Some(_) if self.closures => self.site.state(at),
            Some(h) => h.state(at),
            None => HoursState::CLOSED,
        }
    }
}

impl RTreeObject for Entry {
    type Envelope = SiteEnvelope;
    fn envelope(&self) -> SiteEnvelope {
        SiteEnvelope::point(self.p, self.kind, self.amenities)
    }
}

pub type Tree = RTree<Entry, Params>;

/// One R-tree over all kinds: the per-kind amenity masks in its envelopes
/// prune by kind and amenities together, and an unfiltered query walks one tree.
#[derive(Default)]
pub struct Layer {
    pub tree: Tree,
}

impl Layer {
    fn build(sites: Vec<Arc<IndexedSite>>) -> Layer {
        Layer {
            tree: Tree::bulk_load_with_params(sites.into_iter().map(Entry::new).collect()),
        }
    }

    fn len(&self) -> usize {
        self.tree.size()
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

    /// Every indexed site, in no particular order.
    pub fn sites(&self) -> impl Iterator<Item = &Arc<IndexedSite>> {
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
struct HoursInterner {
    slots: HashMap<Arc<str>, Option<Arc<HoursSlot>>>,
    calendar: Arc<CalendarCell>,
}

impl HoursInterner {
    /// The parsed hours (if they parse) and the shared copy of the string.
    fn intern(&mut self, s: &str) -> (Option<Arc<HoursSlot>>, Arc<str>) {
        if let Some((raw, slot)) = self.slots.get_key_value(s) {
            return (slot.clone(), raw.clone());
        }
        let slot = match Hours::parse(s, &self.calendar.load()) {
            Ok(hours) => Some(Arc::new(HoursSlot {
                current: ArcSwap::from_pointee(SlotState {
                    calendar_id: hours.calendar().id(),
                    hours,
                    last: None,
                }),
                calendar: self.calendar.clone(),
            })),
            Err(e) => {
                tracing::warn!(
                    opening_hours = s,
                    error = %e,
                    "stored opening_hours does not parse; site treated as closed"
                );
                None
            }
        };
        let raw: Arc<str> = Arc::from(s);
        self.slots.insert(raw.clone(), slot.clone());
        (slot, raw)
    }
}

/// Builds a [`SiteIndex`] from sites given one at a time (as a store reads
/// them), keeping only their compact form.
pub struct IndexBuilder {
    index: SiteIndex,
    sites: Vec<Arc<IndexedSite>>,
}

impl IndexBuilder {
    /// Opening hours evaluated under `calendar`.
    pub fn new(calendar: HolidayCalendar) -> IndexBuilder {
        let index = SiteIndex::default();
        index.calendar.store(calendar);
        IndexBuilder {
            index,
            sites: Vec::new(),
        }
    }

    /// Add a stored site (a retired one is skipped).
    pub fn push(&mut self, mut site: Site) {
        self.push_record(site.record());
    }

    /// [`IndexBuilder::push`] from a borrowed record: nothing of it is copied
    /// but the compact form.
    pub fn push_record(&mut self, record: SiteRecord<'_>) {
        if record.view.status != Status::Retired {
            let mut interner = self.index.writer.lock().expect("index writer poisoned");
            self.sites
                .push(Arc::new(make_indexed(&mut interner, record)));
        }
    }

    /// The index of every site pushed (the R-tree is bulk-loaded now).
    pub fn finish(self) -> SiteIndex {
        let IndexBuilder { index, sites } = self;
        index.current.store(Arc::new(compact(sites)));
        index
    }
}

/// The index shared by all request handlers of a node.
pub struct SiteIndex {
    current: ArcSwap<Snapshot>,
    /// Serialises writers (readers never take it) and owns the interner.
    writer: Mutex<HoursInterner>,
    /// Cluster hierarchies, updated by the writer with each snapshot.
    clusters: cluster::ClusterCache,
    /// The holiday calendar opening hours are evaluated with (read at evaluation time).
    calendar: Arc<CalendarCell>,
}

impl Default for SiteIndex {
    /// Empty, with no holidays known.
    fn default() -> Self {
        let calendar = Arc::new(CalendarCell::new(HolidayCalendar::default()));
        SiteIndex {
            current: ArcSwap::from_pointee(Snapshot::empty()),
            writer: Mutex::new(HoursInterner {
                slots: HashMap::new(),
                calendar: calendar.clone(),
            }),
            clusters: cluster::ClusterCache::default(),
            calendar,
        }
    }
}

impl SiteIndex {
    /// Build from every stored site (retired ones are skipped), with no holidays
    /// known. Cluster hierarchies are built on first use; see
    /// [`SiteIndex::with_clusters`].
    pub fn build(sites: impl IntoIterator<Item = Site>) -> SiteIndex {
        SiteIndex::build_with_calendar(sites, HolidayCalendar::default())
    }

    /// [`SiteIndex::build`] with opening hours evaluated under `calendar`.
    pub fn build_with_calendar(
        sites: impl IntoIterator<Item = Site>,
        calendar: HolidayCalendar,
    ) -> SiteIndex {
        let mut builder = IndexBuilder::new(calendar);
        sites.into_iter().for_each(|s| builder.push(s));
        builder.finish()
    }

    /// Run `f` on the cluster hierarchy of `filter` (built now if it is not
    /// cached: that takes the writer lock and time linear in the matching sites)
    /// together with the snapshot it agrees with.
    pub fn with_clusters<R>(
        &self,
        filter: ClusterFilter,
        f: impl FnOnce(&ClusterView<'_>) -> R,
    ) -> R {
        let mut f = f;
        loop {
            let set = match self.clusters.get(filter) {
                Some(set) => set,
                None => {
                    let _writer = self.writer.lock().expect("index writer poisoned");
                    match self.clusters.get(filter) {
                        Some(set) => set,
                        None => {
                            let snapshot = self.snapshot();
                            let set =
                                Arc::new(cluster::ClusterSet::build(filter, snapshot.sites()));
                            self.clusters.insert(set.clone());
                            set
                        }
                    }
                }
            };
            match cluster::with_view(&set, || self.snapshot(), f) {
                Ok(r) => return r,
                Err(back) => f = back,
            }
        }
    }

    /// Whether the hierarchy of `filter` is built (a request will not wait for it).
    pub fn clusters_cached(&self, filter: ClusterFilter) -> bool {
        self.clusters.get(filter).is_some()
    }

    /// The holiday calendar opening hours are evaluated with now.
    pub fn calendar(&self) -> Arc<HolidayCalendar> {
        self.calendar.load()
    }

    /// Evaluate opening hours under `calendar` from now on, unless the current
    /// calendar was read at a later store revision (two installs racing cannot
    /// go back in time). Every cached opening state is recomputed on its next
    /// use. Readers are never blocked. Returns whether it was installed.
    pub fn set_calendar(&self, calendar: HolidayCalendar) -> bool {
        let _writer = self.writer.lock().expect("index writer poisoned");
        if calendar.revision() < self.calendar.load().revision() {
            return false;
        }
        self.calendar.store(calendar);
        true
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
        let mut moves = Vec::new();
        for site in sites {
            let id = site.id;
            let old = match changed.get(&id) {
                Some(current) => current.clone(),
                None => cur.base_by_id.get(&id).cloned(),
            };
            let known_version = match changed.get(&id) {
                Some(Some(s)) => Some(s.version),
                Some(None) => None, // retired: a newer version may revive it
                None => cur.base_by_id.get(&id).map(|s| s.version),
            };
            if known_version.is_some_and(|v| v >= site.version) {
                continue;
            }
            let mut site = site;
            let next = (site.draft.status != Status::Retired)
                .then(|| Arc::new(make_indexed(&mut interner, site.record())));
            changed.insert(id, next.clone());
            moves.push((old, next));
        }
        if moves.is_empty() {
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
        cluster::apply_changes(&self.clusters, &moves, || {
            self.current.store(Arc::new(next))
        });
    }
}

/// Give the memory freed after a large build (rows read, sort buffers, the
/// clustering's work lists) back to the operating system: glibc's allocator
/// otherwise keeps a start-up's peak as the process's resident size for good.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no preconditions and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn make_indexed(interner: &mut HoursInterner, record: SiteRecord<'_>) -> IndexedSite {
    let d = record.view;
    let (hours, opening_hours) = interner.intern(d.opening_hours);
    // Stored coordinates passed the database's range checks; clamp defensively.
    let lat = d.lat.clamp(-90.0, 90.0);
    let lon = d.lon.clamp(-180.0, 180.0);
    let ext_ref = d.ext_ref.unwrap_or("");
    let phone = d.phone.unwrap_or("");
    let mut text =
        String::with_capacity(ext_ref.len() + d.name.len() + d.address.len() + phone.len());
    let mut ends = [0u32; 3];
    for (end, part) in ends.iter_mut().zip([ext_ref, d.name, d.address]) {
        text.push_str(part);
        *end = u32::try_from(text.len()).expect("a site's text is far below 4 GB");
    }
    text.push_str(phone);
    IndexedSite {
        id: d.id,
        version: record.version,
        kind: d.kind,
        status: d.status,
        amenities: d.amenities,
        adcode: d.adcode,
        pos: LatLon::new(lat, lon).unwrap_or_else(|_| LatLon::new(0.0, 0.0).expect("valid")),
        hours,
        opening_hours,
        text: text.into_boxed_str(),
        ends,
        present: u8::from(d.ext_ref.is_some()) | (u8::from(d.phone.is_some()) << 1),
        closure: (!record.exceptions.is_empty()).then(|| {
            Box::new(ClosureInfo {
                reason: None,
                reopens_at: None,
                exceptions: record.exceptions,
            })
        }),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::calendar::{HolidayYear, RawDay};
    use crate::domain::hours::SHANGHAI;
    use crate::domain::site::{ClosureInfo, SiteDraft};

    fn site(id: i64, hours: &str) -> Site {
        Site {
            id: SiteId::from_i64(id).unwrap(),
            draft: SiteDraft {
                ext_ref: None,
                kind: Kind::OutdoorStation,
                name: "站".into(),
                address: "路".into(),
                adcode: "370102".parse().unwrap(),
                lat: 36.65,
                lon: 117.12,
                amenities: AmenitySet::EMPTY,
                opening_hours: hours.into(),
                phone: None,
                photos: vec![],
                status: Status::Open,
                closure: ClosureInfo::default(),
                union_id: None,
            },
            version: 1,
            updated_at: Utc::now(),
        }
    }

    /// 2027 with `holiday` as its only holiday (besides New Year's Day).
    fn calendar(holiday: &str, revision: i64) -> HolidayCalendar {
        let year = HolidayYear::new(
            2027,
            "",
            &[
                RawDay::new("2027-01-01", "元旦"),
                RawDay::new(holiday, "春节"),
            ],
            &[],
        )
        .unwrap();
        HolidayCalendar::new([year], revision)
    }

    #[test]
    fn a_new_calendar_replaces_cached_states_and_an_older_one_is_refused() {
        let index = SiteIndex::build([site(1, "Mo-Fr 09:00-17:00; PH off")]);
        let monday = SHANGHAI
            .with_ymd_and_hms(2027, 2, 8, 10, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        let state = |index: &SiteIndex| {
            let snapshot = index.snapshot();
            let s = snapshot.get(SiteId::from_i64(1).unwrap()).unwrap();
            (s.state(monday).is_open, s.state(monday).next_change)
        };
        let at = |d: u32, h: u32| {
            Some(
                SHANGHAI
                    .with_ymd_and_hms(2027, 2, d, h, 0, 0)
                    .unwrap()
                    .with_timezone(&Utc),
            )
        };
        // Evaluated twice: the second answer is the remembered one.
        assert_eq!(state(&index), (true, at(8, 17)));
        assert_eq!(state(&index), (true, at(8, 17)));
        assert!(index.set_calendar(calendar("2027-02-08", 2)));
        assert_eq!(state(&index), (false, at(9, 9)));
        assert!(index.set_calendar(calendar("2027-02-09", 3)));
        assert_eq!(state(&index), (true, at(8, 17)));
        assert!(!index.set_calendar(calendar("2027-02-08", 2)), "older");
        assert_eq!(state(&index), (true, at(8, 17)));
        assert_eq!(index.calendar().revision(), 3);
    }
}
