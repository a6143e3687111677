//! Tests of the generator and the GeoJSON contract (kept apart so the
//! modules themselves stay short).

mod generate {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::domain::hours::Hours;
    use crate::domain::site::{Kind, Status};
    use crate::geodata::districts::county_districts;
    use crate::geodata::generate::{GenSpec, generate};

    fn km_between(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let (dp, dl) = (p2 - p1, (lon2 - lon1).to_radians());
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().asin()
    }

    #[test]
    fn deterministic_per_seed() {
        let a: Vec<_> = generate(&GenSpec::shandong()).take(1000).collect();
        let b: Vec<_> = generate(&GenSpec::shandong()).take(1000).collect();
        assert_eq!(a, b);
        let other = GenSpec {
            seed: 2025,
            ..GenSpec::shandong()
        };
        let c: Vec<_> = generate(&other).take(1000).collect();
        assert_ne!(a, c);
        assert!(a.iter().zip(&c).filter(|(x, y)| x.name == y.name).count() < 100);
    }

    #[test]
    fn shandong_preset_is_complete_and_plausible() {
        let spec = GenSpec::shandong();
        let centres: BTreeMap<String, (f64, f64)> = county_districts("37")
            .into_iter()
            .map(|d| (d.adcode.to_string(), (d.lat, d.lon)))
            .collect();
        let mut counts = [0usize; 4];
        let mut refs = BTreeSet::new();
        let mut hours = BTreeSet::new();
        let mut amenity_counts = [[0usize; 16]; 4];
        let mut closed = 0;
        for d in generate(&spec) {
            counts[d.kind.index()] += 1;
            let (lat, lon) = centres[d.adcode.as_str()];
            let km = km_between(lat, lon, d.lat, d.lon);
            assert!(
                km < 60.0,
                "{} is {km:.1} km from its district centre",
                d.name
            );
            assert!(
                refs.insert(d.ext_ref.clone().unwrap()),
                "duplicate {:?}",
                d.ext_ref
            );
            hours.insert(d.opening_hours.clone());
            assert!(
                d.address.starts_with("山东省") && d.address.contains('市'),
                "{}",
                d.address
            );
            assert!(d.name.contains(&d.kind.chinese()[..9]) || d.kind == Kind::CraftsmanStudio);
            for a in d.amenities.iter() {
                amenity_counts[d.kind.index()][a as usize] += 1;
            }
            closed += usize::from(d.status == Status::TemporarilyClosed);
            assert_ne!(d.status, Status::Retired);
        }
        assert_eq!(counts, [5_500, 5_159, 1_200, 900]);
        assert_eq!(spec.ref_prefix(), "sd");
        assert!(refs.contains("sd-os-000001") && refs.contains("sd-mr-005159"));
        for h in &hours {
            Hours::validate(h).unwrap_or_else(|e| panic!("{h}: {e}"));
        }
        let total = spec.total_count();
        assert!(closed * 100 > total && closed * 100 < total * 6, "{closed}");
        // Every amenity occurs for every kind; each kind has rare ones (< 5 %)
        // so selective filters exist.
        for (k, row) in amenity_counts.iter().enumerate() {
            assert!(row.iter().all(|&c| c > 0), "{k}: {row:?}");
            assert!(row.iter().any(|&c| c * 20 < counts[k]), "{k}: {row:?}");
        }
    }

    #[test]
    fn names_are_varied_and_searchable() {
        let drafts: Vec<_> = generate(&GenSpec::shandong()).collect();
        let names: BTreeSet<&str> = drafts.iter().map(|d| d.name.as_str()).collect();
        assert!(
            names.len() * 10 > drafts.len() * 8,
            "{} distinct",
            names.len()
        );
        for needle in [
            "高新区",
            "工会驿站",
            "人民路",
            "加油站",
            "人民医院",
            "劳模创新工作室",
            "中国工商银行",
        ] {
            assert!(names.iter().any(|n| n.contains(needle)), "{needle}");
        }
        assert!(
            drafts
                .iter()
                .any(|d| d.phone.as_deref().is_some_and(|p| p.starts_with("0531-")))
        );
        assert!(drafts.iter().any(|d| d.phone.is_none()));
        assert!(drafts.iter().any(|d| d.photos.len() == 2));
    }

    #[test]
    fn total_splits_exactly_and_other_prefixes_work() {
        for n in [0, 1, 7, 1000, 2_000_000] {
            let spec = GenSpec::total(n, 1, "");
            assert_eq!(spec.total_count(), n);
            assert_eq!(spec.ref_prefix(), "gen");
        }
        assert_eq!(
            GenSpec::total(12_759, 1, "37").counts,
            [5_500, 5_159, 1_200, 900]
        );
        let jinan: Vec<_> = generate(&GenSpec::total(200, 3, "3701")).collect();
        assert_eq!(jinan.len(), 200);
        assert!(jinan.iter().all(|d| d.adcode.as_str().starts_with("3701")));
        assert!(
            jinan
                .iter()
                .all(|d| d.ext_ref.as_deref().unwrap().starts_with("gen-"))
        );
        let china: Vec<_> = generate(&GenSpec::total(3000, 3, "")).collect();
        let provinces: BTreeSet<&str> = china.iter().map(|d| &d.adcode.as_str()[..2]).collect();
        assert!(provinces.len() > 25, "{}", provinces.len());
    }
}

mod geojson {
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    use crate::domain::coords::{Crs, from_wgs84, to_wgs84};
    use crate::domain::site::SiteId;
    use crate::domain::site::{AmenitySet, Site, SiteDraft, Status};
    use crate::geodata::generate::{GenSpec, generate, metadata};
    use crate::geodata::geojson::*;

    fn round7(v: f64) -> f64 {
        (v * 1e7).round() / 1e7
    }

    fn drafts(n: usize) -> Vec<SiteDraft> {
        // Shandong proportions: 50 drafts cover all four kinds.
        generate(&GenSpec::total(n, 7, "37")).collect()
    }

    fn to_text(ds: &[SiteDraft], crs: Crs) -> String {
        let mut out = Vec::new();
        let meta = json!({"synthetic": true, "seed": 7});
        write_collection(&mut out, meta, ds.iter().map(|d| draft_to_feature(d, crs))).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn round_trips_in_wgs84_and_gcj02() {
        let original = drafts(50);
        let text = to_text(&original, Crs::Wgs84);
        assert_eq!(text.lines().count(), 50 + 2, "one feature per line");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["metadata"]["seed"], 7);
        assert_eq!(v["features"][0]["geometry"]["type"], "Point");
        // Generated drafts are already rounded to 7 decimals: exact round trip
        // (up to serde_json's last-ulp float parsing).
        let back = parse_collection(&text, Crs::Wgs84).unwrap();
        assert_eq!(back.len(), original.len());
        for (a, b) in original.iter().zip(&back) {
            assert!((a.lat - b.lat).abs() < 1e-9 && (a.lon - b.lon).abs() < 1e-9);
            assert_eq!(
                &SiteDraft {
                    lat: a.lat,
                    lon: a.lon,
                    ..b.clone()
                },
                a
            );
        }

        let text = to_text(&original, Crs::Gcj02);
        let back = parse_collection(&text, Crs::Gcj02).unwrap();
        for (a, b) in original.iter().zip(&back) {
            // Exactly what converting the written, rounded GCJ-02 point gives,
            // kept to 7 decimals...
            let (glat, glon) = from_wgs84(Crs::Gcj02, a.lat, a.lon);
            let (lat, lon) = to_wgs84(Crs::Gcj02, round7(glat), round7(glon));
            assert!((round7(lat) - b.lat).abs() < 1e-9 && (round7(lon) - b.lon).abs() < 1e-9);
            // ...and within half a metre of the original.
            assert!(
                (a.lat - b.lat).abs() < 5e-6 && (a.lon - b.lon).abs() < 5e-6,
                "{a:?} {b:?}"
            );
            assert!((glon - a.lon).abs() > 1e-3, "GCJ-02 really was written");
            assert_eq!(
                &SiteDraft {
                    lat: a.lat,
                    lon: a.lon,
                    ..b.clone()
                },
                a
            );
        }
    }

    #[test]
    fn exported_sites_carry_id_version_and_updated_at() {
        let draft = drafts(1).remove(0);
        let site = Site {
            id: SiteId::from_u64(12345).unwrap(),
            draft: draft.clone(),
            version: 3,
            updated_at: Utc.with_ymd_and_hms(2025, 5, 1, 8, 30, 0).unwrap(),
        };
        let v = serde_json::to_value(site_to_feature(&site, Crs::Wgs84)).unwrap();
        assert_eq!(v["id"], site.id.to_string());
        assert_eq!(v["properties"]["version"], 3);
        assert_eq!(v["properties"]["updated_at"], "2025-05-01T08:30:00Z");
        assert_eq!(v["properties"]["ref"], draft.ext_ref.clone().unwrap());
        assert_eq!(v["geometry"]["coordinates"], json!([draft.lon, draft.lat]));
        // Re-importing an export ignores id, version and updated_at.
        let text = json!({"type": "FeatureCollection", "features": [v]}).to_string();
        assert_eq!(parse_collection(&text, Crs::Wgs84).unwrap(), vec![draft]);
    }

    /// Three valid features, feature `index` with the JSON pointer `at`
    /// (relative to the feature) set to `value`; returns the error.
    fn reject(index: usize, at: &str, value: Value) -> ImportError {
        let text = to_text(&drafts(3), Crs::Wgs84);
        let mut v: Value = serde_json::from_str(&text).unwrap();
        *v.pointer_mut(&format!("/features/{index}{at}")).unwrap() = value;
        let err = parse_collection(&v.to_string(), Crs::Wgs84).unwrap_err();
        assert_eq!(err.index, Some(index), "{err}");
        err
    }

    #[test]
    fn bad_features_name_index_and_property() {
        let line = json!({"type": "LineString", "coordinates": [[1, 2], [3, 4]]});
        let cases = [
            (
                "/geometry",
                line,
                "geometry: expected a Point, got a LineString",
            ),
            ("/geometry", Value::Null, "geometry: missing"),
            (
                "/geometry/coordinates",
                json!([200.0, 36.0]),
                "longitude 200",
            ),
            (
                "/geometry/coordinates",
                json!([117.0, -91.0]),
                "latitude -91",
            ),
            (
                "/geometry/coordinates",
                json!([117.0]),
                "not a GeoJSON Feature",
            ),
            (
                "/type",
                json!("Point"),
                "type: expected \"Feature\", got \"Point\"",
            ),
            ("/properties", Value::Null, "properties: missing"),
            (
                "/properties/kind",
                json!("cafe"),
                "properties.kind: unknown kind 'cafe'; expected one of outdoor_station",
            ),
            ("/properties/kind", Value::Null, "properties.kind: missing"),
            (
                "/properties/amenities",
                json!(["wifi", "sauna"]),
                "properties.amenities[1]: unknown amenity 'sauna'",
            ),
            (
                "/properties/amenities",
                json!("wifi"),
                "properties.amenities: expected an array",
            ),
            (
                "/properties/status",
                json!("closed"),
                "properties.status: unknown status 'closed'",
            ),
            (
                "/properties/adcode",
                json!("3701"),
                "properties.adcode: adcode must be 6 digits",
            ),
            (
                "/properties/adcode",
                json!(370102),
                "properties.adcode: expected a string, got a number",
            ),
            (
                "/properties/name",
                json!("  "),
                "properties.name: must not be empty",
            ),
            (
                "/properties/name",
                json!("站".repeat(201)),
                "properties.name: 201 characters",
            ),
            (
                "/properties/address",
                json!("路".repeat(501)),
                "properties.address: 501 characters",
            ),
            (
                "/properties/opening_hours",
                json!("Mo-Fr 25:00 bogus"),
                "properties.opening_hours: ",
            ),
            (
                "/properties/opening_hours",
                Value::Null,
                "properties.opening_hours: missing",
            ),
            (
                "/properties/phone",
                json!(12345),
                "properties.phone: expected a string",
            ),
            (
                "/properties/photos",
                json!(["ftp://x/1.jpg"]),
                "properties.photos[0]: 'ftp://x/1.jpg' is not an http(s) URL",
            ),
            (
                "/properties/photos",
                json!([1]),
                "properties.photos[0]: expected a string",
            ),
            (
                "/properties/ref",
                json!(""),
                "properties.ref: must not be empty",
            ),
            ("/properties/ref", Value::Null, "properties.ref: missing"),
        ];
        for (i, (at, value, expected)) in cases.into_iter().enumerate() {
            let err = reject(i % 3, at, value);
            assert!(err.reason.contains(expected), "case {i}: {err}");
            assert!(
                err.to_string().starts_with(&format!("feature {}: ", i % 3)),
                "{err}"
            );
        }
    }

    #[test]
    fn optional_properties_default_and_extras_are_ignored() {
        let text = to_text(&drafts(1), Crs::Wgs84);
        let mut v: Value = serde_json::from_str(&text).unwrap();
        let p = v["features"][0]["properties"].as_object_mut().unwrap();
        for k in ["address", "amenities", "phone", "photos", "status"] {
            p.remove(k);
        }
        p.insert("operator".into(), json!({"anything": [1, 2]}));
        let d = parse_collection(&v.to_string(), Crs::Wgs84)
            .unwrap()
            .remove(0);
        assert_eq!(
            (d.address.as_str(), d.amenities, d.phone, d.status),
            ("", AmenitySet::EMPTY, None, Status::Open)
        );
        assert!(d.photos.is_empty());
    }

    #[test]
    fn duplicate_refs_are_rejected() {
        let err = reject(2, "/properties/ref", json!("gen-os-000001"));
        assert_eq!(
            err.to_string(),
            "feature 2: properties.ref: duplicate ref 'gen-os-000001' (also feature 0)"
        );
    }

    #[test]
    fn file_level_errors_have_no_index() {
        let cases = [
            ("", "not a GeoJSON FeatureCollection"),
            ("[]", "not a GeoJSON FeatureCollection"),
            (
                r#"{"type": "Feature", "features": []}"#,
                "got type 'Feature'",
            ),
            (r#"{"features": []}"#, "missing \"type\""),
            (r#"{"type": "FeatureCollection"}"#, "missing 'features'"),
            (
                r#"{"type": "FeatureCollection", "features": {}}"#,
                "not a GeoJSON FeatureCollection",
            ),
            (
                r#"{"type": "FeatureCollection", "features": []} x"#,
                "trailing characters",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_collection(text, Crs::Wgs84).unwrap_err();
            assert_eq!(err.index, None, "{text}: {err}");
            assert!(err.reason.contains(expected), "{text}: {err}");
        }
        let ok = r#"{"metadata": {"a": 1}, "features": [], "type": "FeatureCollection"}"#;
        assert_eq!(parse_collection(ok, Crs::Wgs84).unwrap(), vec![]);
        // Broken JSON inside the array is blamed on the feature being read.
        let text = to_text(&drafts(3), Crs::Wgs84);
        let cut = text.rfind("\"status\"").unwrap();
        let err = parse_collection(&text[..cut], Crs::Wgs84).unwrap_err();
        assert_eq!(err.index, Some(2), "{err}");
        assert!(err.reason.starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn committed_dataset_matches_the_generator() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/geodata/shandong-sites.geojson"
        );
        let committed = std::fs::read_to_string(path).unwrap();
        let spec = GenSpec::shandong();
        let mut fresh = Vec::new();
        let features = generate(&spec).map(|d| draft_to_feature(&d, Crs::Wgs84));
        write_collection(&mut fresh, metadata(&spec, Crs::Wgs84), features).unwrap();
        assert!(
            committed.as_bytes() == fresh,
            "{path} is stale: regenerate it with `yizhan geodata generate --preset shandong`"
        );
        let parsed = parse_collection(&committed, Crs::Wgs84).unwrap();
        assert_eq!(parsed.len(), 12_759);
        assert!(parsed.into_iter().eq(generate(&spec)));
    }
}
