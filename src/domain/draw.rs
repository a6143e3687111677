//! A fair draw (抽签) that anyone can check (issue 26): the recipe, exactly.
//!
//! - When a draw event is made, a secret `S` of 32 random bytes is drawn and
//!   `seed_commitment = hex(SHA-256(S))` is published at once.
//! - At the draw, with the eligible applications' ids sorted as strings:
//!   `entrants_hash = hex(SHA-256(ids joined by "\n"))`.
//! - `seed = hex(SHA-256(hex(S) + "\n" + entrants_hash + "\n" + public_value))`,
//!   `public_value` being what the manager entered before the draw (a named
//!   lottery result announced in advance), empty if nothing.
//! - Each application's key is `hex(SHA-256(seed + "\n" + application_id))`;
//!   the order is by priority group first (people in no group last), then by
//!   key ascending; `rank` is the 1-based place in that order.
//! - Hex is lower case; strings are UTF-8; `+` is concatenation.
//!
//! Nothing here knows when anyone applied: the order depends on the secret
//! (fixed, and committed to, before anyone applied), the set of entrants and
//! the public value, and on nothing else. `scripts/verify-draw` recomputes it
//! from the published record without this code.

use sha2::{Digest, Sha256};

use super::user::{Gender, MaritalStatus};

/// `hex(SHA-256(bytes))`, lower case.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Lower-case hex of raw bytes (the secret as published).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `S` from its lower-case hex (as [`hex`] wrote it).
pub fn unhex(s: &str) -> Option<[u8; 32]> {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// What is published when the event is made.
pub fn commitment(secret: &[u8; 32]) -> String {
    sha256_hex(secret)
}

/// `hex(SHA-256(ids sorted as strings, joined by "\n"))`.
pub fn entrants_hash(ids: &[String]) -> String {
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sha256_hex(sorted.join("\n").as_bytes())
}

/// `hex(SHA-256(hex(S) + "\n" + entrants_hash + "\n" + public_value))`.
pub fn seed(secret: &[u8; 32], entrants_hash: &str, public_value: &str) -> String {
    sha256_hex(format!("{}\n{entrants_hash}\n{public_value}", hex(secret)).as_bytes())
}

/// `hex(SHA-256(seed + "\n" + application_id))`.
pub fn key(seed: &str, application_id: &str) -> String {
    sha256_hex(format!("{seed}\n{application_id}").as_bytes())
}

/// One entrant: an application id and the index of the first priority group
/// whose condition the person met (`None`: no group, so last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrant {
    pub id: String,
    pub group: Option<usize>,
}

/// An entrant's place in the drawn order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub id: String,
    pub group: Option<usize>,
    /// 1-based.
    pub rank: u32,
    pub key: String,
}

/// The draw's published values and its order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drawn {
    pub seed_commitment: String,
    pub entrants_hash: String,
    pub seed: String,
    /// Best first.
    pub order: Vec<Ranked>,
}

/// Run the recipe.
pub fn draw(secret: &[u8; 32], public_value: &str, entrants: &[Entrant]) -> Drawn {
    let ids: Vec<String> = entrants.iter().map(|e| e.id.clone()).collect();
    let entrants_hash = entrants_hash(&ids);
    let seed = seed(secret, &entrants_hash, public_value);
    let mut keyed: Vec<(Option<usize>, String, String)> = entrants
        .iter()
        .map(|e| (e.group, key(&seed, &e.id), e.id.clone()))
        .collect();
    // Groups in their order, no group last; then keys ascending (a key
    // collision, at 2^-128, falls back to the id).
    keyed.sort_by(|a, b| {
        let g = |x: Option<usize>| x.unwrap_or(usize::MAX);
        (g(a.0), &a.1, &a.2).cmp(&(g(b.0), &b.1, &b.2))
    });
    Drawn {
        seed_commitment: commitment(secret),
        entrants_hash,
        seed,
        order: keyed
            .into_iter()
            .enumerate()
            .map(|(i, (group, key, id))| Ranked {
                id,
                group,
                rank: i as u32 + 1,
                key,
            })
            .collect(),
    }
}

/// A priority group: a name, and a condition over what yizhan knows of a
/// person. Every stated part must hold; a fact the person has not given
/// (gender, birth year, front-line) never meets it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityGroup {
    /// As the record and the console show it (1–50 characters).
    pub name: String,
    /// Front-line workers (the person's own declaration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontline: Option<bool>,
    /// An active membership of a union (`POST /v1/memberships`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub union_member: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<Gender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marital_status: Option<MaritalStatus>,
    /// Age in the draw's year (China time), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u8>,
}

/// What the groups' conditions look at, for one person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub frontline: Option<bool>,
    pub union_member: bool,
    pub gender: Option<Gender>,
    pub marital_status: Option<MaritalStatus>,
    pub birth_year: Option<i32>,
}

impl PriorityGroup {
    /// Does a person with these facts belong, in the draw's `year`?
    pub fn holds(&self, f: &Facts, year: i32) -> bool {
        let age = f.birth_year.map(|b| year - b);
        self.frontline.is_none_or(|want| f.frontline == Some(want))
            && self.union_member.is_none_or(|want| f.union_member == want)
            && self.gender.is_none_or(|want| f.gender == Some(want))
            && self
                .marital_status
                .is_none_or(|want| f.marital_status == Some(want))
            && self
                .min_age
                .is_none_or(|m| age.is_some_and(|a| a >= i32::from(m)))
            && self
                .max_age
                .is_none_or(|m| age.is_some_and(|a| a <= i32::from(m)))
    }

    fn is_empty(&self) -> bool {
        self.frontline.is_none()
            && self.union_member.is_none()
            && self.gender.is_none()
            && self.marital_status.is_none()
            && self.min_age.is_none()
            && self.max_age.is_none()
    }
}

/// The first group whose condition the person meets (`None`: no group).
pub fn group_of(groups: &[PriorityGroup], f: &Facts, year: i32) -> Option<usize> {
    groups.iter().position(|g| g.holds(f, year))
}

/// At most this many priority groups.
pub const MAX_GROUPS: usize = 10;

/// Check an event's priority groups: `Err((field, why))`, the field as
/// `priority_groups[i].name`.
pub fn check_groups(groups: &[PriorityGroup]) -> Result<(), (String, String)> {
    if groups.len() > MAX_GROUPS {
        return Err((
            "priority_groups".into(),
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    for (i, g) in groups.iter().enumerate() {
        let at = |f: &str| format!("priority_groups[{i}].{f}");
        let n = g.name.trim().chars().count();
        if n == 0 || n > 50 || g.name.chars().any(char::is_control) {
            return Err((at("name"), "1–50 characters on one line".into()));
        }
        if groups[..i].iter().any(|o| o.name == g.name) {
            return Err((
                at("name"),
                format!("'{}' names an earlier group too", g.name),
            ));
        }
        if g.is_empty() {
            return Err((at("name"), "a group needs a condition (frontline, union_member, gender, marital_status, min_age, max_age)".into()));
        }
        if let (Some(lo), Some(hi)) = (g.min_age, g.max_age)
            && lo > hi
        {
            return Err((at("max_age"), format!("must be at least min_age ({lo})")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_reads_back_from_its_hex() {
        let s: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(91));
        assert_eq!(unhex(&hex(&s)), Some(s));
        assert_eq!(unhex(&hex(&s[..31])), None);
        assert_eq!(unhex(&hex(&s).replace('a', "g")), None);
    }

    #[test]
    fn a_person_belongs_to_the_first_group_they_meet() {
        let frontline = PriorityGroup {
            name: "一线职工".into(),
            frontline: Some(true),
            ..group("x")
        };
        let young_women = PriorityGroup {
            name: "青年女职工".into(),
            gender: Some(Gender::Female),
            max_age: Some(35),
            ..group("y")
        };
        let groups = [frontline, young_women];
        let rider = Facts {
            frontline: Some(true),
            gender: Some(Gender::Female),
            birth_year: Some(2000),
            ..Facts::default()
        };
        assert_eq!(group_of(&groups, &rider, 2026), Some(0));
        let clerk = Facts {
            frontline: Some(false),
            ..rider.clone()
        };
        assert_eq!(group_of(&groups, &clerk, 2026), Some(1));
        // 36 in the draw's year: too old for the second group.
        assert_eq!(group_of(&groups, &clerk, 2036), None);
        // An unknown fact never meets a condition.
        let unknown = Facts::default();
        assert_eq!(group_of(&groups, &unknown, 2026), None);
        let member = PriorityGroup {
            union_member: Some(true),
            ..group("会员")
        };
        assert!(member.holds(
            &Facts {
                union_member: true,
                ..Facts::default()
            },
            2026
        ));
        assert!(!member.holds(&Facts::default(), 2026));
    }

    fn group(name: &str) -> PriorityGroup {
        PriorityGroup {
            name: name.into(),
            frontline: None,
            union_member: None,
            gender: None,
            marital_status: None,
            min_age: None,
            max_age: None,
        }
    }

    #[test]
    fn groups_are_checked_field_by_field() {
        let ok = PriorityGroup {
            frontline: Some(true),
            ..group("一线职工")
        };
        assert_eq!(check_groups(std::slice::from_ref(&ok)), Ok(()));
        let field = |gs: &[PriorityGroup]| check_groups(gs).unwrap_err().0;
        assert_eq!(field(&[group("空")]), "priority_groups[0].name");
        assert_eq!(field(&[ok.clone(), ok.clone()]), "priority_groups[1].name");
        let ages = PriorityGroup {
            min_age: Some(40),
            max_age: Some(30),
            ..group("ages")
        };
        assert_eq!(field(&[ages]), "priority_groups[0].max_age");
        let nameless = PriorityGroup {
            frontline: Some(true),
            ..group(" ")
        };
        assert_eq!(field(&[nameless]), "priority_groups[0].name");
        let many: Vec<PriorityGroup> = (0..11)
            .map(|i| PriorityGroup {
                frontline: Some(true),
                ..group(&format!("g{i}"))
            })
            .collect();
        assert_eq!(field(&many), "priority_groups");
        let parsed: Result<PriorityGroup, _> =
            serde_json::from_str(r#"{"name": "x", "frontline": true, "colour": 1}"#);
        assert!(parsed.is_err(), "unknown keys are refused");
    }

    fn entrants(n: usize) -> Vec<Entrant> {
        (0..n)
            .map(|i| Entrant {
                id: format!(
                    "a{:012x}",
                    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
                ),
                group: None,
            })
            .collect()
    }

    #[test]
    fn the_recipe_matches_a_hand_computation() {
        // SHA-256("abc") is FIPS 180-2's first example.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let secret = [7u8; 32];
        let ids = vec!["a2".to_owned(), "a10".to_owned(), "a1".to_owned()];
        // Sorted as strings: a1, a10, a2.
        assert_eq!(entrants_hash(&ids), sha256_hex(b"a1\na10\na2"));
        let h = entrants_hash(&ids);
        let s = seed(&secret, &h, "双色球 2026140 期 03 07 12 19 25 31 + 09");
        assert_eq!(
            s,
            sha256_hex(
                format!(
                    "{}\n{h}\n双色球 2026140 期 03 07 12 19 25 31 + 09",
                    "07".repeat(32)
                )
                .as_bytes()
            )
        );
        assert_eq!(key(&s, "a1"), sha256_hex(format!("{s}\na1").as_bytes()));
        assert_eq!(commitment(&secret), sha256_hex(&[7u8; 32]));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }

    #[test]
    fn groups_come_first_then_keys_ascending() {
        let mut e = entrants(50);
        for (i, x) in e.iter_mut().enumerate() {
            x.group = match i % 3 {
                0 => Some(1),
                1 => Some(0),
                _ => None,
            };
        }
        let d = draw(&[1; 32], "", &e);
        assert_eq!(d.order.len(), 50);
        let ranks: Vec<u32> = d.order.iter().map(|r| r.rank).collect();
        assert_eq!(ranks, (1..=50).collect::<Vec<_>>());
        let g = |r: &Ranked| r.group.unwrap_or(usize::MAX);
        for w in d.order.windows(2) {
            assert!((g(&w[0]), &w[0].key) < (g(&w[1]), &w[1].key));
        }
        assert_eq!(d.order[0].group, Some(0));
        assert_eq!(d.order[49].group, None);
    }

    #[test]
    fn the_order_does_not_depend_on_the_order_of_applying() {
        let e = entrants(200);
        let mut reversed = e.clone();
        reversed.reverse();
        assert_eq!(draw(&[3; 32], "x", &e), draw(&[3; 32], "x", &reversed));
        // Another secret, another public value, another entrant: another order.
        let base = draw(&[3; 32], "x", &e).order;
        assert_ne!(draw(&[4; 32], "x", &e).order, base);
        assert_ne!(draw(&[3; 32], "y", &e).order, base);
        assert_ne!(
            draw(&[3; 32], "x", &e[1..]).seed,
            draw(&[3; 32], "x", &e).seed
        );
    }

    /// Over many simulated draws, the winners' application-time deciles are
    /// uniform (chi-square, 9 degrees of freedom, significance 0.001: the
    /// critical value is 27.877), and so are their id deciles; a draw biased
    /// towards early applicants fails the same test.
    #[test]
    fn winning_does_not_depend_on_when_or_with_which_id_one_applied() {
        const DRAWS: usize = 300;
        const APPLICANTS: usize = 1000;
        const PLACES: usize = 40;
        const CRITICAL: f64 = 27.877;
        fn chi_square(counts: &[u64; 10]) -> f64 {
            let total: u64 = counts.iter().sum();
            let expected = total as f64 / 10.0;
            counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum()
        }
        let mut by_time = [0u64; 10];
        let mut by_id = [0u64; 10];
        let mut biased = [0u64; 10];
        for d in 0..DRAWS {
            // Applicants in the order they applied; ids as the service makes
            // them (random, opaque), from a fixed stream here.
            let e: Vec<Entrant> = (0..APPLICANTS)
                .map(|i| Entrant {
                    id: format!("a{}", &sha256_hex(format!("{d}-{i}").as_bytes())[..13]),
                    group: None,
                })
                .collect();
            let mut sorted_ids: Vec<&str> = e.iter().map(|x| x.id.as_str()).collect();
            sorted_ids.sort_unstable();
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&(d as u64).to_le_bytes());
            let drawn = draw(&secret, "", &e);
            let applied_at = |id: &str| e.iter().position(|x| x.id == id).unwrap();
            for w in &drawn.order[..PLACES] {
                by_time[applied_at(&w.id) * 10 / APPLICANTS] += 1;
                let id_decile = sorted_ids.binary_search(&w.id.as_str()).unwrap() * 10 / APPLICANTS;
                by_id[id_decile] += 1;
            }
            // A biased draw: the key also rewards applying early.
            let mut unfair: Vec<(f64, usize)> = e
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    let k = u64::from_str_radix(&key(&drawn.seed, &x.id)[..12], 16).unwrap();
                    (
                        k as f64 / (1u64 << 48) as f64 + i as f64 / APPLICANTS as f64 * 0.3,
                        i,
                    )
                })
                .collect();
            unfair.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, i) in &unfair[..PLACES] {
                biased[i * 10 / APPLICANTS] += 1;
            }
        }
        let (t, i, b) = (
            chi_square(&by_time),
            chi_square(&by_id),
            chi_square(&biased),
        );
        eprintln!("chi-square by time {t:.1}, by id {i:.1}, biased {b:.1}");
        assert!(t < CRITICAL, "by time: chi-square {t:.1} {by_time:?}");
        assert!(i < CRITICAL, "by id: chi-square {i:.1} {by_id:?}");
        assert!(
            b > CRITICAL,
            "the biased draw passed: chi-square {b:.1} {biased:?}"
        );
    }
}
