//! Search by any 2+ character substring of a site's Chinese name or address.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yizhan::domain::site::{Kind, Status};

use crate::helpers::{draft, refs, spawn_app};

const NAMES: [&str; 6] = [
    "历下区泉城路中国石化加油站户外劳动者服务站点",
    "高新区工会驿站(舜华路)",
    "槐荫区人民医院爱心妈妈小屋",
    "王建国劳模创新工作室",
    "市中区人民路顺丰营业部户外劳动者服务站点",
    "天桥区环卫所职工之家",
];
const STREETS: [&str; 5] = ["经十路", "舜华路", "人民路", "解放东路", "花园路"];

fn substring(rng: &mut ChaCha8Rng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let len = rng.random_range(2..=chars.len().min(8));
    let start = rng.random_range(0..=chars.len() - len);
    chars[start..start + len].iter().collect()
}

#[tokio::test]
async fn finds_sites_by_any_substring_of_name_or_address() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let drafts: Vec<_> = (0..40)
        .map(|i| {
            let mut d = draft(i, Kind::ALL[i % 4], 36.6 + i as f64 * 0.001, 117.1);
            d.name = format!("{}{}号", NAMES[i % NAMES.len()], i);
            d.address = format!("山东省济南市{}{}号", STREETS[i % STREETS.len()], 100 + i);
            d
        })
        .collect();
    let app = spawn_app(drafts.clone()).await;
    for _ in 0..300 {
        let d = &drafts[rng.random_range(0..drafts.len())];
        let text = if rng.random() { &d.name } else { &d.address };
        let q = substring(&mut rng, text);
        let enc: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let body = app
            .get_json(&format!("/v1/sites/search?q={enc}&limit=100"))
            .await;
        let found = refs(&body);
        assert!(
            found.contains(d.ext_ref.as_ref().unwrap()),
            "q={q} should find {}",
            d.name
        );
        // And nothing that does not contain it.
        for item in body["items"].as_array().unwrap() {
            let (n, a) = (
                item["name"].as_str().unwrap(),
                item["address"].as_str().unwrap(),
            );
            assert!(n.contains(&q) || a.contains(&q), "q={q} matched {n} / {a}");
        }
    }
}

#[tokio::test]
async fn several_words_all_match_and_ranking_prefers_name_then_distance() {
    let mut near = draft(1, Kind::UnionStation, 36.651, 117.12);
    near.name = "高新区工会驿站(舜华路)".into();
    let mut far = draft(2, Kind::UnionStation, 36.9, 117.5);
    far.name = "高新区工会驿站(经十路)".into();
    let mut address_only = draft(3, Kind::OutdoorStation, 36.650, 117.12);
    address_only.name = "户外劳动者服务站点".into();
    address_only.address = "山东省济南市高新区工会驿站旁".into();
    let mut retired = draft(4, Kind::UnionStation, 36.650, 117.12);
    retired.name = "高新区工会驿站(旧)".into();
    retired.status = Status::Retired;
    let app = spawn_app(vec![near, far, address_only, retired]).await;
    let q: String = form_urlencoded::byte_serialize("工会驿站 高新区".as_bytes()).collect();
    let body = app
        .get_json(&format!("/v1/sites/search?q={q}&lat=36.65&lon=117.12"))
        .await;
    assert_eq!(refs(&body), ["test-1", "test-2", "test-3"]);
    assert!(body["items"][0]["distance_m"].as_f64().unwrap() < 200.0);
    // Both words must occur.
    let q: String = form_urlencoded::byte_serialize("工会驿站 青岛".as_bytes()).collect();
    assert!(refs(&app.get_json(&format!("/v1/sites/search?q={q}")).await).is_empty());
    // Kind filter; LIKE wildcards are literal.
    let q: String = form_urlencoded::byte_serialize("工会".as_bytes()).collect();
    let body = app
        .get_json(&format!("/v1/sites/search?q={q}&kind=outdoor_station"))
        .await;
    assert_eq!(refs(&body), ["test-3"]);
    assert!(refs(&app.get_json("/v1/sites/search?q=%25%25").await).is_empty());
}
