//! `scripts/verify-draw` (Python, standard library only) recomputes a draw's
//! record made by yizhan's own code, independently of it, and refuses the
//! record when one byte of the secret, one entrant's id, the public value or
//! one rank is changed (issue 26).

use serde_json::{Value, json};
use yizhan::domain::draw::{Entrant, draw, hex};

const GROUPS: [&str; 2] = ["一线职工", "工会会员"];

/// A record as `GET /v1/events/{id}/draw` publishes it, for 3,000 entrants
/// in two priority groups and none.
fn record() -> Value {
    let secret: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
    let entrants: Vec<Entrant> = (0..3000u64)
        .map(|i| Entrant {
            id: format!("a{:013x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 12),
            group: match i % 5 {
                0 => Some(0),
                1 | 2 => Some(1),
                _ => None,
            },
        })
        .collect();
    let public_value = "中国福利彩票双色球 2026140 期开奖号码 03 07 12 19 25 31 + 09";
    let d = draw(&secret, public_value, &entrants);
    json!({
        "seed_commitment": d.seed_commitment,
        "secret": hex(&secret),
        "public_value": public_value,
        "entrants_hash": d.entrants_hash,
        "seed": d.seed,
        "drawn_at": "2026-12-20T02:00:00Z",
        "priority_groups": GROUPS,
        "entrants": d.order.iter().map(|r| json!({
            "id": r.id,
            "group": r.group.map(|g| GROUPS[g]),
            "rank": r.rank,
        })).collect::<Vec<_>>(),
    })
}

/// Run the script on a record: its exit code and what it printed.
fn verify(record: &Value) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("draw.json");
    std::fs::write(&path, serde_json::to_vec(record).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-draw"))
        .arg(&path)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_script_reproduces_a_record_and_refuses_any_change() {
    let good = record();
    let (code, said) = verify(&good);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("all 3000 ranks follow the recipe"), "{said}");

    // One byte of the secret.
    let mut r = good.clone();
    let mut secret = r["secret"].as_str().unwrap().to_owned();
    secret.replace_range(0..2, if &secret[0..2] == "00" { "01" } else { "00" });
    r["secret"] = json!(secret);
    let (code, said) = verify(&r);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("FAIL seed_commitment"), "{said}");

    // One entrant's id.
    let mut r = good.clone();
    let id = r["entrants"][1234]["id"].as_str().unwrap().to_owned();
    r["entrants"][1234]["id"] = json!(format!("{id}0"));
    let (code, said) = verify(&r);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("FAIL entrants_hash"), "{said}");

    // The public value.
    let mut r = good.clone();
    r["public_value"] = json!("中国福利彩票双色球 2026140 期开奖号码 03 07 12 19 25 31 + 08");
    let (code, said) = verify(&r);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("FAIL seed"), "{said}");

    // Two ranks swapped.
    let mut r = good.clone();
    r["entrants"][0]["rank"] = json!(2);
    r["entrants"][1]["rank"] = json!(1);
    let (code, said) = verify(&r);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("FAIL order"), "{said}");

    // Not yet drawn: no secret.
    let mut r = good;
    r.as_object_mut().unwrap().remove("secret");
    assert_eq!(verify(&r).0, 1);
}
