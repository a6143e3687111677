//! The GeoJSON contract for sites (RFC 7946).
//!
//! A site is a `Feature` with a `Point` geometry `[lon, lat]` and the properties
//! `ref`, `kind`, `name`, `address`, `adcode`, `amenities` (array of strings),
//! `opening_hours`, `phone` (string or null), `photos` (array of URLs) and
//! `status`. Exported sites also carry the feature `id` (the [`SiteId`]) and
//! the properties `version` and `updated_at`.
//!
//! Import is all or nothing: [`parse_collection`] either returns every draft
//! or the first problem, naming the feature's index (0-based, as in
//! `/features/17`) and the property.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{BufWriter, Write};

use geojson::{Feature, Geometry, GeometryValue, JsonObject, JsonValue, feature::Id};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::domain::coords::{Crs, from_wgs84, to_wgs84};
use crate::domain::hours::Hours;
use crate::domain::site::{
    Adcode, Amenity, AmenitySet, ClosureInfo, Kind, Site, SiteDraft, Status,
};

/// Longest accepted `name` and `address`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_ADDRESS_CHARS: usize = 500;

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// A draft as a Feature, its coordinates converted from WGS-84 into `crs` and
/// rounded to 7 decimals (about 1 cm).
pub fn draft_to_feature(d: &SiteDraft, crs: Crs) -> Feature {
    let (lat, lon) = from_wgs84(crs, d.lat, d.lon);
    // Keys in alphabetical order, so the output is the same whether or not
    // serde_json's `preserve_order` is enabled somewhere in the build.
    let mut p = JsonObject::new();
    p.insert("address".into(), d.address.clone().into());
    p.insert("adcode".into(), d.adcode.as_str().into());
    let amenities = d
        .amenities
        .iter()
        .map(|a| JsonValue::from(a.as_str()))
        .collect();
    p.insert("amenities".into(), JsonValue::Array(amenities));
    // Closure details only when set, so plain registries export as before.
    if !d.closure.exceptions.is_empty() {
        p.insert(
            "closures".into(),
            serde_json::to_value(&d.closure.exceptions).expect("closures serialize"),
        );
    }
    p.insert("kind".into(), d.kind.as_str().into());
    p.insert("name".into(), d.name.clone().into());
    p.insert("opening_hours".into(), d.opening_hours.clone().into());
    p.insert("phone".into(), d.phone.clone().into());
    p.insert("photos".into(), d.photos.clone().into());
    p.insert("ref".into(), d.ext_ref.clone().into());
    if let Some(t) = d.closure.reopens_at {
        p.insert(
            "reopens_at".into(),
            serde_json::to_value(t).expect("time serializes"),
        );
    }
    p.insert("status".into(), d.status.as_str().into());
    if let Some(r) = &d.closure.reason {
        p.insert("status_reason".into(), r.clone().into());
    }
    if let Some(u) = d.union_id {
        p.insert("union_id".into(), u.to_string().into());
    }
    Feature {
        bbox: None,
        geometry: Some(Geometry::new_point([round7(lon), round7(lat)])),
        id: None,
        properties: Some(p),
        foreign_members: None,
    }
}

/// A stored site as a Feature: the draft's properties plus `id`, `version`
/// and `updated_at` (RFC 3339, UTC).
pub fn site_to_feature(s: &Site, crs: Crs) -> Feature {
    let mut f = draft_to_feature(&s.draft, crs);
    f.id = Some(Id::String(s.id.to_string()));
    let updated = s
        .updated_at
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    f.set_property("updated_at", updated);
    f.set_property("version", s.version);
    f
}

/// Streams a FeatureCollection, one feature per line, with `metadata` as a
/// foreign member (omitted when null) ahead of the features:
///
/// ```text
/// {"type":"FeatureCollection","metadata":{...},"features":[
/// {"type":"Feature",...},
/// {"type":"Feature",...}
/// ]}
/// ```
pub fn write_collection<W: Write>(
    w: W,
    metadata: serde_json::Value,
    features: impl Iterator<Item = Feature>,
) -> std::io::Result<()> {
    let mut w = BufWriter::new(w);
    w.write_all(br#"{"type":"FeatureCollection","#)?;
    if !metadata.is_null() {
        w.write_all(br#""metadata":"#)?;
        serde_json::to_writer(&mut w, &metadata)?;
        w.write_all(b",")?;
    }
    w.write_all(br#""features":["#)?;
    for (i, f) in features.enumerate() {
        w.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut w, &f)?;
    }
    w.write_all(b"\n]}\n")?;
    w.flush()
}

/// Why an import was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// The offending feature's index in `features` (0-based); `None` for a
    /// problem with the file as a whole.
    pub index: Option<usize>,
    pub reason: String,
}

impl ImportError {
    fn file(reason: impl Into<String>) -> ImportError {
        ImportError {
            index: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "feature {i}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for ImportError {}

/// Parses and validates a whole FeatureCollection whose coordinates are in
/// `crs`, returning WGS-84 drafts in file order, or the first problem.
///
/// Features are checked one at a time as the text is read (no document tree
/// of the whole file is built). Every feature needs a unique, non-empty
/// `ref` (import upserts by it), `kind`, `name`, `adcode` and
/// `opening_hours`; `address` (default ""), `amenities` (default none),
/// `phone` (default null), `photos` (default none) and `status` (default
/// "open") may be omitted. Unknown properties and members are ignored.
pub fn parse_collection(text: &str, crs: Crs) -> Result<Vec<SiteDraft>, ImportError> {
    parse_collection_with_progress(text, crs, &|_| ())
}

/// [`parse_collection`], calling `progress` with the number of features read
/// so far every [`PROGRESS_EVERY`] features (a progress bar).
pub fn parse_collection_with_progress(
    text: &str,
    crs: Crs,
    progress: &dyn Fn(usize),
) -> Result<Vec<SiteDraft>, ImportError> {
    let mut state = State {
        hours_checked: HashSet::new(),
        progress,
        crs,
        drafts: Vec::new(),
        refs: HashMap::new(),
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = CollectionSeed(&mut state)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(failure) = state.failure {
        return Err(failure);
    }
    result.map_err(|e| ImportError::file(format!("not a GeoJSON FeatureCollection: {e}")))?;
    Ok(state.drafts)
}

/// How often [`parse_collection_with_progress`] reports.
pub const PROGRESS_EVERY: usize = 10_000;

struct State<'p> {
    hours_checked: HashSet<String>,
    progress: &'p dyn Fn(usize),
    crs: Crs,
    drafts: Vec<SiteDraft>,
    /// ref → index of the feature that used it first.
    refs: HashMap<String, usize>,
    /// The first problem found; set before aborting the deserializer.
    failure: Option<ImportError>,
}

impl State<'_> {
    fn fail<E: de::Error>(&mut self, err: ImportError) -> E {
        let e = E::custom(&err);
        self.failure = Some(err);
        e
    }
}

/// The top-level object: `type` must be "FeatureCollection", `features` is
/// consumed element by element, anything else is skipped.
struct CollectionSeed<'a, 'p>(&'a mut State<'p>);

impl<'de> DeserializeSeed<'de> for CollectionSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectionSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GeoJSON FeatureCollection object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        let (mut seen_type, mut seen_features) = (false, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" => {
                    let t: String = map.next_value()?;
                    if t != "FeatureCollection" {
                        let msg = format!("expected a GeoJSON FeatureCollection, got type '{t}'");
                        return Err(state.fail(ImportError::file(msg)));
                    }
                    seen_type = true;
                }
                "features" if seen_features => {
                    return Err(state.fail(ImportError::file("duplicate 'features' member")));
                }
                "features" => {
                    map.next_value_seed(FeaturesSeed(&mut *state))?;
                    seen_features = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (seen_type, seen_features) {
            (false, _) => {
                Err(state.fail(ImportError::file("missing \"type\": \"FeatureCollection\"")))
            }
            (_, false) => Err(state.fail(ImportError::file("missing 'features' array"))),
            _ => Ok(()),
        }
    }
}

/// The `features` array: each element is read, converted and validated in turn.
struct FeaturesSeed<'a, 'p>(&'a mut State<'p>);

impl<'de> DeserializeSeed<'de> for FeaturesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FeaturesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of GeoJSON Features")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            let index = state.drafts.len();
            if index.is_multiple_of(PROGRESS_EVERY) && index > 0 {
                (state.progress)(index);
            }
            let at = |reason: String| ImportError {
                index: Some(index),
                reason,
            };
            let value = match seq.next_element::<JsonValue>() {
                Ok(Some(v)) => v,
                Ok(None) => return Ok(()),
                Err(e) => return Err(state.fail(at(format!("invalid JSON: {e}")))),
            };
            match value.get("type") {
                _ if !value.is_object() => {
                    let msg = format!("expected a Feature object, got {}", type_name(&value));
                    return Err(state.fail(at(msg)));
                }
                Some(JsonValue::String(t)) if t == "Feature" => {}
                t => {
                    let got = t.map_or("nothing".to_owned(), |t| t.to_string());
                    return Err(state.fail(at(format!("type: expected \"Feature\", got {got}"))));
                }
            }
            let feature: Feature = match serde_json::from_value(value) {
                Ok(f) => f,
                Err(e) => return Err(state.fail(at(format!("not a GeoJSON Feature: {e}")))),
            };
            let draft = match feature_to_draft(&feature, state.crs, &mut state.hours_checked) {
                Ok(d) => d,
                Err(reason) => return Err(state.fail(at(reason))),
            };
            let ext_ref = draft.ext_ref.clone().expect("validated");
            if let Some(first) = state.refs.insert(ext_ref.clone(), index) {
                let msg =
                    format!("properties.ref: duplicate ref '{ext_ref}' (also feature {first})");
                return Err(state.fail(at(msg)));
            }
            state.drafts.push(draft);
        }
    }
}

/// Validates one feature into a WGS-84 draft; the error names the property.
/// `hours_checked`: opening-hours strings already found valid (a registry
/// has few distinct ones, and parsing one costs more than the rest of a feature).
fn feature_to_draft(
    f: &Feature,
    crs: Crs,
    hours_checked: &mut HashSet<String>,
) -> Result<SiteDraft, String> {
    let (lat, lon) = point(f.geometry.as_ref(), crs)?;
    let p = f
        .properties
        .as_ref()
        .ok_or("properties: missing (a JSON object is required)")?;
    let ext_ref = required_str(p, "ref")?;
    if ext_ref.trim().is_empty() {
        return Err("properties.ref: must not be empty".into());
    }
    let kind: Kind = required_str(p, "kind")?
        .parse()
        .map_err(|e| format!("properties.kind: {e}"))?;
    let name = required_str(p, "name")?;
    if name.trim().is_empty() {
        return Err("properties.name: must not be empty".into());
    }
    check_len("name", name, MAX_NAME_CHARS)?;
    let address = optional_str(p, "address")?.unwrap_or_default();
    check_len("address", address, MAX_ADDRESS_CHARS)?;
    let adcode: Adcode = required_str(p, "adcode")?
        .parse()
        .map_err(|e| format!("properties.adcode: {e}"))?;
    let mut amenities = AmenitySet::EMPTY;
    for (i, a) in optional_strings(p, "amenities")?.into_iter().enumerate() {
        let a: Amenity = a
            .parse()
            .map_err(|e| format!("properties.amenities[{i}]: {e}"))?;
        amenities.insert(a);
    }
    let opening_hours = required_str(p, "opening_hours")?;
    if !hours_checked.contains(opening_hours) {
        Hours::validate(opening_hours).map_err(|e| format!("properties.opening_hours: {e}"))?;
        hours_checked.insert(opening_hours.to_owned());
    }
    let phone = optional_str(p, "phone")?.map(str::to_owned);
    let photos = optional_strings(p, "photos")?;
    if let Some((i, bad)) = photos
        .iter()
        .enumerate()
        .find(|(_, u)| !u.starts_with("http://") && !u.starts_with("https://"))
    {
        return Err(format!(
            "properties.photos[{i}]: '{bad}' is not an http(s) URL"
        ));
    }
    let status = match optional_str(p, "status")? {
        Some(s) => s.parse().map_err(|e| format!("properties.status: {e}"))?,
        None => Status::Open,
    };
    let union_id = match optional_str(p, "union_id")? {
        Some(u) => Some(
            u.parse::<crate::domain::union::UnionId>()
                .map_err(|e| format!("properties.union_id: {e}"))?,
        ),
        None => None,
    };
    Ok(SiteDraft {
        ext_ref: Some(ext_ref.to_owned()),
        kind,
        name: name.to_owned(),
        address: address.to_owned(),
        adcode,
        lat,
        lon,
        amenities,
        opening_hours: opening_hours.to_owned(),
        phone,
        photos: photos.into_iter().map(str::to_owned).collect(),
        status,
        closure: ClosureInfo {
            reason: optional_str(p, "status_reason")?.map(str::to_owned),
            reopens_at: match optional_str(p, "reopens_at")? {
                Some(t) => Some(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map_err(|e| format!("properties.reopens_at: {e}"))?
                        .with_timezone(&chrono::Utc),
                ),
                None => None,
            },
            exceptions: match p.get("closures") {
                None | Some(JsonValue::Null) => Vec::new(),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| format!("properties.closures: {e}"))?,
            },
        },
        union_id,
    })
}

/// The Point's `(lat, lon)` converted from `crs` to WGS-84 and kept to 7
/// decimals (about 1 cm), as exports write them: what an export wrote
/// re-imports unchanged (the fuzz target `geojson_import` checks it).
fn point(g: Option<&Geometry>, crs: Crs) -> Result<(f64, f64), String> {
    let g = g.ok_or("geometry: missing (a Point is required)")?;
    let GeometryValue::Point { coordinates } = &g.value else {
        return Err(format!(
            "geometry: expected a Point, got a {}",
            g.value.type_name()
        ));
    };
    let (lon, lat) = (coordinates[0], coordinates[1]);
    if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
        return Err(format!(
            "geometry.coordinates: longitude {lon} out of range [-180, 180]"
        ));
    }
    if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
        return Err(format!(
            "geometry.coordinates: latitude {lat} out of range [-90, 90]"
        ));
    }
    let (lat, lon) = to_wgs84(crs, lat, lon);
    if !(lat.is_finite() && lon.is_finite()) {
        return Err(format!(
            "geometry.coordinates: not convertible from {}",
            crs.as_str()
        ));
    }
    Ok((round7(lat), round7(lon)))
}

fn type_name(v: &JsonValue) -> &'static str {
    match v {
        JsonValue::Null => "null",
        JsonValue::Bool(_) => "a boolean",
        JsonValue::Number(_) => "a number",
        JsonValue::String(_) => "a string",
        JsonValue::Array(_) => "an array",
        JsonValue::Object(_) => "an object",
    }
}

/// A string property; absent and null are `None`.
fn optional_str<'a>(p: &'a JsonObject, key: &str) -> Result<Option<&'a str>, String> {
    match p.get(key) {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!(
            "properties.{key}: expected a string, got {}",
            type_name(v)
        )),
    }
}

fn required_str<'a>(p: &'a JsonObject, key: &str) -> Result<&'a str, String> {
    optional_str(p, key)?.ok_or_else(|| format!("properties.{key}: missing (a string is required)"))
}

/// An array of strings; absent and null are empty.
fn optional_strings<'a>(p: &'a JsonObject, key: &str) -> Result<Vec<&'a str>, String> {
    match p.get(key) {
        None | Some(JsonValue::Null) => Ok(Vec::new()),
        Some(JsonValue::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().ok_or_else(|| {
                    format!(
                        "properties.{key}[{i}]: expected a string, got {}",
                        type_name(v)
                    )
                })
            })
            .collect(),
        Some(v) => Err(format!(
            "properties.{key}: expected an array of strings, got {}",
            type_name(v)
        )),
    }
}

fn check_len(key: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        return Err(format!(
            "properties.{key}: {n} characters, at most {max} allowed"
        ));
    }
    Ok(())
}
