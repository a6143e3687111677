//! Sites: the union's service points, their kinds, amenities and status.
//!
//! Everything here is pure: no HTTP, no SQL. Values are built through `parse`
//! (or `FromStr`) so an invalid kind or amenity never reaches the index.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::union::UnionId;

/// What a site is. Names are the API's and the database's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// 户外劳动者服务站点 — rest point for riders, couriers, sanitation workers.
    OutdoorStation,
    /// 爱心妈妈小屋 — a private room for nursing mothers.
    MotherRoom,
    /// 工会驿站 — a union service point.
    UnionStation,
    /// 劳模工匠创新工作室 — a model worker's / craftsman's innovation studio.
    CraftsmanStudio,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::OutdoorStation,
        Kind::MotherRoom,
        Kind::UnionStation,
        Kind::CraftsmanStudio,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OutdoorStation => "outdoor_station",
            Kind::MotherRoom => "mother_room",
            Kind::UnionStation => "union_station",
            Kind::CraftsmanStudio => "craftsman_studio",
        }
    }

    /// Position in `ALL`, used for per-kind index structures and bitmasks.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The Chinese name used on signs and in generated data.
    pub fn chinese(self) -> &'static str {
        match self {
            Kind::OutdoorStation => "户外劳动者服务站点",
            Kind::MotherRoom => "爱心妈妈小屋",
            Kind::UnionStation => "工会驿站",
            Kind::CraftsmanStudio => "劳模工匠创新工作室",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value outside a closed vocabulary (kind, amenity, status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}'; expected one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

fn parse_closed<T: Copy>(
    what: &'static str,
    s: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, UnknownValue> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s)
        .ok_or_else(|| UnknownValue {
            what,
            value: s.to_owned(),
            expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

impl FromStr for Kind {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_closed("kind", s, &Kind::ALL, Kind::as_str)
    }
}

/// The closed amenity vocabulary. Each amenity is one bit of an [`AmenitySet`];
/// new amenities are appended (never reordered) so stored bitmasks stay valid.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Amenity {
    /// 饮用水
    DrinkingWater,
    /// 热水
    HotWater,
    /// 微波炉 — heating food
    Microwave,
    /// 冰箱
    Refrigerator,
    /// 手机充电
    PhoneCharging,
    /// 电动车充电
    EbikeCharging,
    /// 卫生间
    Toilet,
    /// 休息座椅
    RestSeats,
    /// 空调
    AirConditioning,
    /// 暖气
    Heating,
    /// 急救箱 / 医药箱
    FirstAidKit,
    /// 无线网络
    Wifi,
    /// 阅读角 / 职工书屋
    ReadingCorner,
    /// 哺乳椅
    NursingChair,
    /// 婴儿护理台
    BabyChanging,
    /// 爱心雨伞
    Umbrella,
}

impl Amenity {
    pub const ALL: [Amenity; 16] = [
        Amenity::DrinkingWater,
        Amenity::HotWater,
        Amenity::Microwave,
        Amenity::Refrigerator,
        Amenity::PhoneCharging,
        Amenity::EbikeCharging,
        Amenity::Toilet,
        Amenity::RestSeats,
        Amenity::AirConditioning,
        Amenity::Heating,
        Amenity::FirstAidKit,
        Amenity::Wifi,
        Amenity::ReadingCorner,
        Amenity::NursingChair,
        Amenity::BabyChanging,
        Amenity::Umbrella,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Amenity::DrinkingWater => "drinking_water",
            Amenity::HotWater => "hot_water",
            Amenity::Microwave => "microwave",
            Amenity::Refrigerator => "refrigerator",
            Amenity::PhoneCharging => "phone_charging",
            Amenity::EbikeCharging => "ebike_charging",
            Amenity::Toilet => "toilet",
            Amenity::RestSeats => "rest_seats",
            Amenity::AirConditioning => "air_conditioning",
            Amenity::Heating => "heating",
            Amenity::FirstAidKit => "first_aid_kit",
            Amenity::Wifi => "wifi",
            Amenity::ReadingCorner => "reading_corner",
            Amenity::NursingChair => "nursing_chair",
            Amenity::BabyChanging => "baby_changing",
            Amenity::Umbrella => "umbrella",
        }
    }

    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Amenity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Amenity {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_closed("amenity", s, &Amenity::ALL, Amenity::as_str)
    }
}

/// A set of amenities as a bitmask: `contains_all` is one AND, which is what
/// lets the spatial index prune whole subtrees that lack a required amenity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AmenitySet(u32);

impl AmenitySet {
    pub const EMPTY: AmenitySet = AmenitySet(0);

    pub fn from_bits(bits: u32) -> AmenitySet {
        AmenitySet(bits & ((1 << Amenity::ALL.len()) - 1))
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn insert(&mut self, a: Amenity) {
        self.0 |= a.bit();
    }
    pub fn contains(self, a: Amenity) -> bool {
        self.0 & a.bit() != 0
    }
    pub fn contains_all(self, required: AmenitySet) -> bool {
        self.0 & required.0 == required.0
    }
    pub fn union(self, other: AmenitySet) -> AmenitySet {
        AmenitySet(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// Amenities in vocabulary order.
    pub fn iter(self) -> impl Iterator<Item = Amenity> {
        Amenity::ALL.into_iter().filter(move |a| self.contains(*a))
    }
    pub fn to_vec(self) -> Vec<Amenity> {
        self.iter().collect()
    }
}

impl FromIterator<Amenity> for AmenitySet {
    fn from_iter<I: IntoIterator<Item = Amenity>>(iter: I) -> Self {
        let mut s = AmenitySet::EMPTY;
        for a in iter {
            s.insert(a);
        }
        s
    }
}

/// A set of kinds as a bitmask (for filters and index envelopes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KindSet(u8);

impl KindSet {
    pub const ALL: KindSet = KindSet(0b1111);
    pub const EMPTY: KindSet = KindSet(0);
    pub fn of(k: Kind) -> KindSet {
        KindSet(1 << k.index())
    }
    pub fn insert(&mut self, k: Kind) {
        self.0 |= 1 << k.index();
    }
    pub fn contains(self, k: Kind) -> bool {
        self.0 & (1 << k.index()) != 0
    }
    pub fn intersects(self, other: KindSet) -> bool {
        self.0 & other.0 != 0
    }
    pub fn intersection(self, other: KindSet) -> KindSet {
        KindSet(self.0 & other.0)
    }
    pub fn union(self, other: KindSet) -> KindSet {
        KindSet(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |k| self.contains(*k))
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> Self {
        let mut s = KindSet::EMPTY;
        for k in iter {
            s.insert(k);
        }
        s
    }
}

/// Operational status. A temporarily closed site is shown but never open;
/// a retired site is gone from every search (kept in the database for history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Open,
    TemporarilyClosed,
    Retired,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Open, Status::TemporarilyClosed, Status::Retired];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::TemporarilyClosed => "temporarily_closed",
            Status::Retired => "retired",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_closed("status", s, &Status::ALL, Status::as_str)
    }
}

crate::domain::id::opaque_id!(
    /// A site's stable, opaque identifier, such as `s3k9v0q2m7x1c`.
    SiteId,
    "s",
    BadSiteId,
    "site"
);

/// The editable content of a site, as imported or created. Coordinates are WGS-84.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteDraft {
    /// External reference from the importing system (GeoJSON `properties.ref`).
    pub ext_ref: Option<String>,
    pub kind: Kind,
    pub name: String,
    pub address: String,
    pub adcode: Adcode,
    pub lat: f64,
    pub lon: f64,
    pub amenities: AmenitySet,
    pub opening_hours: String,
    pub phone: Option<String>,
    pub photos: Vec<String>,
    pub status: Status,
    /// Closures beyond the opening hours, kept by the site's managers.
    pub closure: ClosureInfo,
    /// The union that runs the site (its 基层工会), if known.
    pub union_id: Option<UnionId>,
}

/// Why and when a site is closed beyond what its opening hours say.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClosureInfo {
    /// With status `temporarily_closed`: why, shown to riders.
    pub reason: Option<String>,
    /// With status `temporarily_closed`: when it expects to reopen.
    pub reopens_at: Option<DateTime<Utc>>,
    /// Intervals when the site is closed whatever its hours say, in time order.
    pub exceptions: Vec<Closure>,
}

/// Closed from `from` (inclusive) to `to` (exclusive), e.g. for cleaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Closure {
    #[schema(value_type = String, format = DateTime, example = "2026-12-24T14:00:00+08:00")]
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime, example = "2026-12-24T18:00:00+08:00")]
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub to: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ClosureInfo {
    /// The exception covering `at`, if any.
    pub fn closed_at(&self, at: DateTime<Utc>) -> Option<&Closure> {
        self.exceptions.iter().find(|c| c.from <= at && at < c.to)
    }

    /// The open state at `at` given the opening hours' state function, with the
    /// exceptions closing it: open only if the hours say open and no exception
    /// covers the instant; the next change is the first later instant (an hours
    /// change or an exception's edge) where that differs.
    pub fn state(
        &self,
        at: DateTime<Utc>,
        hours: impl Fn(DateTime<Utc>) -> crate::domain::hours::HoursState,
    ) -> crate::domain::hours::HoursState {
        use crate::domain::hours::HoursState;
        if self.exceptions.is_empty() {
            return hours(at);
        }
        let open_at = |t: DateTime<Utc>| self.closed_at(t).is_none() && hours(t).is_open;
        let now_open = open_at(at);
        let mut t = at;
        for _ in 0..(2 * self.exceptions.len() + 8) {
            let next = hours(t)
                .next_change
                .into_iter()
                .chain(self.exceptions.iter().flat_map(|c| [c.from, c.to]))
                .filter(|x| *x > t)
                .min();
            let Some(next) = next else { break };
            if open_at(next) != now_open {
                return HoursState {
                    is_open: now_open,
                    next_change: Some(next),
                };
            }
            t = next;
        }
        HoursState {
            is_open: now_open,
            next_change: None,
        }
    }
}

impl SiteDraft {
    /// The draft as named fields, as the API and the audit log name them.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let c = &self.closure;
        let pairs = [
            ("ref", json!(self.ext_ref)),
            ("kind", json!(self.kind)),
            ("name", json!(self.name)),
            ("address", json!(self.address)),
            ("adcode", json!(self.adcode.as_str())),
            ("lat", json!(self.lat)),
            ("lon", json!(self.lon)),
            ("amenities", json!(self.amenities.to_vec())),
            ("opening_hours", json!(self.opening_hours)),
            ("phone", json!(self.phone)),
            ("photos", json!(self.photos)),
            ("status", json!(self.status)),
            ("status_reason", json!(c.reason)),
            ("reopens_at", json!(c.reopens_at)),
            ("closures", json!(c.exceptions)),
            ("union_id", json!(self.union_id)),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// `{field: {"old": …, "new": …}}` for every field that differs (`old`
    /// absent: every field of `new`, as created).
    pub fn diff(old: Option<&SiteDraft>, new: &SiteDraft) -> serde_json::Value {
        let after = new.fields();
        let before = old.map(SiteDraft::fields);
        let mut out = serde_json::Map::new();
        for (k, v) in after {
            let was = before.as_ref().and_then(|b| b.get(&k)).cloned();
            if was.as_ref() != Some(&v) {
                out.insert(k, serde_json::json!({"old": was, "new": v}));
            }
        }
        serde_json::Value::Object(out)
    }
}

/// A stored site: its content plus identity and versioning.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: SiteId,
    pub draft: SiteDraft,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What a list of sites shows of one (a nearby item, a search hit, a map's
/// lone site), borrowed from a stored [`Site`] or from the index's compact copy.
#[derive(Debug, Clone, Copy)]
pub struct SiteView<'a> {
    pub id: SiteId,
    pub ext_ref: Option<&'a str>,
    pub kind: Kind,
    pub name: &'a str,
    pub address: &'a str,
    pub adcode: Adcode,
    pub lat: f64,
    pub lon: f64,
    pub opening_hours: &'a str,
    pub amenities: AmenitySet,
    pub status: Status,
    pub phone: Option<&'a str>,
}

/// A stored site as the index takes it: what lists show, its version and its
/// closure exceptions (borrowed from wherever it was read).
#[derive(Debug, Clone)]
pub struct SiteRecord<'a> {
    pub view: SiteView<'a>,
    pub version: i64,
    pub exceptions: Vec<Closure>,
}

impl Site {
    /// The site as the index takes it (its closure exceptions moved out).
    pub fn record(&mut self) -> SiteRecord<'_> {
        let exceptions = std::mem::take(&mut self.draft.closure.exceptions);
        SiteRecord {
            version: self.version,
            exceptions,
            view: self.view(),
        }
    }

    pub fn view(&self) -> SiteView<'_> {
        let d = &self.draft;
        SiteView {
            id: self.id,
            ext_ref: d.ext_ref.as_deref(),
            kind: d.kind,
            name: &d.name,
            address: &d.address,
            adcode: d.adcode,
            lat: d.lat,
            lon: d.lon,
            opening_hours: &d.opening_hours,
            amenities: d.amenities,
            status: d.status,
            phone: d.phone.as_deref(),
        }
    }
}

/// A 6-digit county-level administrative division code (行政区划代码), e.g. `370102`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Adcode([u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adcode must be 6 digits, got '{0}'")]
pub struct BadAdcode(pub String);

impl Adcode {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ascii digits")
    }
}

impl FromStr for Adcode {
    type Err = BadAdcode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
            return Err(BadAdcode(s.chars().take(32).collect()));
        }
        let mut a = [0u8; 6];
        a.copy_from_slice(b);
        Ok(Adcode(a))
    }
}

impl fmt::Display for Adcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_id_round_trips_and_rejects_garbage() {
        for v in [1u64, 42, (1 << 60) - 1, 0x1234_5678_9abc_def0 >> 4] {
            let id = SiteId::from_u64(v).unwrap();
            let s = id.to_string();
            assert_eq!(s.len(), 13, "{s}");
            assert_eq!(s.parse::<SiteId>().unwrap(), id);
        }
        for bad in [
            "",
            "s",
            "s000000000000",
            "x123456789abc",
            "s12345678901u",
            "s1234567890123",
            "sZZZZZZZZZZZZ",
        ] {
            assert!(bad.parse::<SiteId>().is_err(), "{bad}");
        }
        assert!(SiteId::from_u64(0).is_none());
        assert!(SiteId::from_u64(1 << 60).is_none());
        for _ in 0..1000 {
            let id = SiteId::random();
            assert_eq!(id.to_string().parse::<SiteId>().unwrap(), id);
        }
    }

    #[test]
    fn closed_vocabularies_parse_exactly() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for a in Amenity::ALL {
            assert_eq!(a.as_str().parse::<Amenity>().unwrap(), a);
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("Mother_Room".parse::<Kind>().is_err());
        assert!("wifi ".parse::<Amenity>().is_err());
        let e = "sauna".parse::<Amenity>().unwrap_err();
        assert!(e.to_string().contains("sauna") && e.to_string().contains("ebike_charging"));
    }

    #[test]
    fn amenity_sets() {
        let s: AmenitySet = [Amenity::Microwave, Amenity::EbikeCharging]
            .into_iter()
            .collect();
        assert!(s.contains_all(AmenitySet::from_bits(Amenity::Microwave.bit())));
        assert!(!s.contains_all(AmenitySet::from_bits(Amenity::Wifi.bit())));
        assert!(s.contains_all(AmenitySet::EMPTY));
        assert_eq!(s.to_vec(), vec![Amenity::Microwave, Amenity::EbikeCharging]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn adcodes() {
        assert_eq!("370102".parse::<Adcode>().unwrap().as_str(), "370102");
        for bad in ["37010", "3701020", "37O102", "", "070102"] {
            assert!(bad.parse::<Adcode>().is_err(), "{bad}");
        }
    }
}
