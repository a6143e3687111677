//! China's county-level administrative divisions (区/县/县级市/旗) with their
//! centre points, from `geodata/cn-districts.csv` (compiled into the binary).
//!
//! The CSV's coordinates are GCJ-02 (as published by Chinese map services);
//! [`District`] carries them converted to WGS-84, the crate's storage datum.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::domain::coords::gcj02_to_wgs84;
use crate::domain::site::Adcode;

const CSV: &str = include_str!("../../geodata/cn-districts.csv");

/// Province-level units whose county-level divisions sit under a "市辖区"
/// placeholder city row: the province itself is the city.
const MUNICIPALITIES: [&str; 4] = ["11", "12", "31", "50"];

/// What kind of county-level division a district is, from its name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistrictLevel {
    /// 市辖区 — an urban district (name ends in 区).
    UrbanDistrict,
    /// 县级市 — a county-level city (name ends in 市).
    CountyCity,
    /// 县, 旗, 林区, 特区 and the like.
    County,
}

impl DistrictLevel {
    fn of_name(name: &str) -> DistrictLevel {
        if name.ends_with('区') && !name.ends_with("林区") && !name.ends_with("特区") {
            DistrictLevel::UrbanDistrict
        } else if name.ends_with('市') {
            DistrictLevel::CountyCity
        } else {
            DistrictLevel::County
        }
    }
}

/// A county-level division and its centre point.
#[derive(Debug, Clone, PartialEq)]
pub struct District {
    /// The 6-digit county code, e.g. `370102` (历下区).
    pub adcode: Adcode,
    pub name: String,
    /// The prefecture-level city's name (济南市); the province's name for the
    /// municipalities (北京市); empty for counties administered directly by a
    /// province (e.g. 济源市).
    pub city: String,
    pub province: String,
    /// Centre, WGS-84 (converted from the CSV's GCJ-02).
    pub lat: f64,
    /// Centre, WGS-84 (converted from the CSV's GCJ-02).
    pub lon: f64,
    pub level: DistrictLevel,
}

impl District {
    /// "山东省济南市历下区": the address prefix down to the district.
    pub fn address_prefix(&self) -> String {
        let mut s = self.province.clone();
        if self.city != self.province {
            s.push_str(&self.city);
        }
        s.push_str(&self.name);
        s
    }
}

/// A county-level division with its centre as published (GCJ-02).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub district: District,
    pub gcj_lat: f64,
    pub gcj_lon: f64,
}

/// One parsed CSV row: the 12-digit code, name, GCJ-02 longitude and latitude.
struct Row<'a> {
    code: &'a str,
    name: &'a str,
    lon: f64,
    lat: f64,
}

fn rows() -> impl Iterator<Item = Row<'static>> {
    CSV.lines().skip(1).filter_map(|line| {
        let mut cols = line.trim_end_matches('\r').split(',');
        let code = cols.next()?;
        let name = cols.next()?;
        let lon = cols.next()?.parse().ok()?;
        let lat = cols.next()?.parse().ok()?;
        (code.len() == 12 && code.bytes().all(|b| b.is_ascii_digit()) && name != "市辖区")
            .then_some(Row {
                code,
                name,
                lon,
                lat,
            })
    })
}

fn is_county(code: &str) -> bool {
    &code[4..6] != "00" && code[6..].bytes().all(|b| b == b'0')
}

/// Every county-level division in the CSV, in the CSV's (adcode) order.
pub(crate) fn records() -> &'static [Record] {
    static ALL: OnceLock<Vec<Record>> = OnceLock::new();
    ALL.get_or_init(|| {
        // Province (2-digit) and city (4-digit) names by code prefix.
        let mut names: BTreeMap<&str, &str> = BTreeMap::new();
        for r in rows() {
            if &r.code[2..] == "0000000000" {
                names.insert(&r.code[..2], r.name);
            } else if &r.code[2..4] != "00" && r.code[4..].bytes().all(|b| b == b'0') {
                names.insert(&r.code[..4], r.name);
            }
        }
        rows()
            .filter(|r| is_county(r.code))
            .filter_map(|r| {
                let adcode = r.code[..6].parse::<Adcode>().ok()?;
                let province = names.get(&r.code[..2]).copied().unwrap_or_default();
                let city = match names.get(&r.code[..4]) {
                    Some(c) => *c,
                    None if MUNICIPALITIES.contains(&&r.code[..2]) => province,
                    None => "",
                };
                let (lat, lon) = gcj02_to_wgs84(r.lat, r.lon);
                Some(Record {
                    district: District {
                        adcode,
                        name: r.name.to_owned(),
                        city: city.to_owned(),
                        province: province.to_owned(),
                        lat,
                        lon,
                        level: DistrictLevel::of_name(r.name),
                    },
                    gcj_lat: r.lat,
                    gcj_lon: r.lon,
                })
            })
            .collect()
    })
}

/// County-level divisions whose adcode starts with `prefix`, in adcode order:
/// `""` = all of China, `"37"` = Shandong, `"3701"` = Jinan, `"370102"` = 历下区.
pub fn county_districts(prefix: &str) -> Vec<District> {
    records()
        .iter()
        .filter(|r| r.district.adcode.as_str().starts_with(prefix))
        .map(|r| r.district.clone())
        .collect()
}

/// The county-level division with this code, if the CSV has it.
pub fn lookup(adcode: Adcode) -> Option<District> {
    records()
        .iter()
        .find(|r| r.district.adcode == adcode)
        .map(|r| r.district.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shandong_counties_have_names_and_centres() {
        let sd = county_districts("37");
        assert!(sd.len() > 130 && sd.len() < 150, "{}", sd.len());
        for d in &sd {
            assert_eq!(d.province, "山东省");
            assert!(d.city.ends_with('市'), "{d:?}");
            assert!(
                (34.0..38.5).contains(&d.lat) && (114.5..123.0).contains(&d.lon),
                "{d:?}"
            );
        }
        let lixia = lookup("370102".parse().unwrap()).unwrap();
        assert_eq!(lixia.name, "历下区");
        assert_eq!(lixia.city, "济南市");
        assert_eq!(lixia.level, DistrictLevel::UrbanDistrict);
        assert_eq!(lixia.address_prefix(), "山东省济南市历下区");
        // GCJ-02 is offset from WGS-84 by a few hundred metres in Shandong.
        assert!((lixia.lon - 117.076441).abs() > 0.001 && (lixia.lon - 117.076441).abs() < 0.01);
        let jinan = county_districts("3701");
        assert!(jinan.iter().all(|d| d.city == "济南市"));
        assert!(jinan.iter().any(|d| d.level == DistrictLevel::County));
        assert!(jinan.iter().any(|d| d.level == DistrictLevel::CountyCity));
    }

    #[test]
    fn nationwide_skips_placeholders_and_handles_municipalities() {
        let all = county_districts("");
        assert!(all.len() > 2800, "{}", all.len());
        assert!(
            all.iter()
                .all(|d| d.name != "市辖区" && !d.province.is_empty())
        );
        let dongcheng = lookup("110101".parse().unwrap()).unwrap();
        assert_eq!(dongcheng.address_prefix(), "北京市东城区");
        let jiyuan = lookup("419001".parse().unwrap()).unwrap();
        assert_eq!(jiyuan.city, "");
        assert_eq!(jiyuan.address_prefix(), "河南省济源市");
        assert!(county_districts("99").is_empty());
    }
}
