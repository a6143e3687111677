//! People: workers, site managers and admins, known by their mobile number.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::site::SiteId;
use super::union::UnionId;

/// A mainland China mobile number, normalised to its 11 digits (`1[3-9]` then 9
/// digits). Accepts `+86`, `0086` or `86` in front and spaces or dashes inside.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****5678`: for anything a person other than the owner may read.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

/// Never print a whole number by accident (logs, panics): only the masked form.
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a mainland mobile number: 11 digits starting 13–19, optionally with +86")]
pub struct BadPhone;

impl FromStr for Phone {
    type Err = BadPhone;
    fn from_str(s: &str) -> Result<Phone, BadPhone> {
        let compact: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
            .collect();
        let digits = compact
            .strip_prefix("+86")
            .or_else(|| compact.strip_prefix("0086"))
            .or_else(|| {
                (compact.len() == 13)
                    .then(|| compact.strip_prefix("86"))
                    .flatten()
            })
            .unwrap_or(&compact);
        let b = digits.as_bytes();
        let ok = b.len() == 11
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1]);
        if ok {
            Ok(Phone(digits.to_owned()))
        } else {
            Err(BadPhone)
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    Default,
    PartialOrd,
    Ord,
)]
/// What a person may do: `worker`, `site_manager` (of their sites), `union_admin` (of their unions), `admin`.
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Worker,
    SiteManager,
    /// Runs one or more unions (and the unions below them in the federation).
    UnionAdmin,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::SiteManager => "site_manager",
            Role::UnionAdmin => "union_admin",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "worker" => Ok(Role::Worker),
            "site_manager" => Ok(Role::SiteManager),
            "union_admin" => Ok(Role::UnionAdmin),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role '{s}' (expected worker, site_manager, union_admin or admin)"
            )),
        }
    }
}

/// As the person gave it in their profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

/// As the person gave it in their profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaritalStatus {
    Single,
    Married,
    Divorced,
    Widowed,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<$t, String> {
                match s {
                    $($s => Ok(<$t>::$v),)*
                    _ => Err(format!("'{s}' is not one of: {}", [$($s),*].join(", "))),
                }
            }
        }
    };
}
str_enum!(Gender { Male => "male", Female => "female" });
str_enum!(MaritalStatus { Single => "single", Married => "married", Divorced => "divorced", Widowed => "widowed" });

/// What a person tells about themselves; used for event eligibility and quotas.
/// Visible to the person and to admins only.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    pub display_name: Option<String>,
    pub gender: Option<Gender>,
    pub birth_year: Option<i32>,
    pub marital_status: Option<MaritalStatus>,
    /// Self-declared, for the person's own records: it grants nothing.
    /// `union_members_only` trusts only an active membership (`POST /v1/memberships`).
    pub union_member_no: Option<String>,
    pub employer: Option<String>,
    pub frontline: Option<bool>,
}

pub type UserId = i64;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub phone: Phone,
    pub role: Role,
    /// The sites a site manager manages (empty for others).
    pub sites: Vec<SiteId>,
    /// The unions a union admin runs (empty for others).
    pub unions: Vec<UnionId>,
    pub profile: Profile,
}

impl User {
    /// May this user manage `site` (admins: every site)?
    pub fn manages(&self, site: SiteId) -> bool {
        match self.role {
            Role::Admin => true,
            Role::SiteManager => self.sites.contains(&site),
            Role::Worker | Role::UnionAdmin => false,
        }
    }

    /// May this user run the union whose ancestry (the union, then the
    /// federations above it) is `ancestry`? Admins: every union; union
    /// admins: their unions and every union below them.
    pub fn runs_union(&self, ancestry: &[UnionId]) -> bool {
        match self.role {
            Role::Admin => true,
            Role::UnionAdmin => ancestry.iter().any(|u| self.unions.contains(u)),
            Role::Worker | Role::SiteManager => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_normalised_and_validated() {
        for ok in [
            "13812345678",
            "+8613812345678",
            "+86 138 1234 5678",
            "0086-138-1234-5678",
            "8613812345678",
            " 19912345678 ",
        ] {
            let p: Phone = ok.parse().unwrap_or_else(|_| panic!("{ok}"));
            assert!(
                p.as_str().len() == 11 && p.as_str().starts_with('1'),
                "{ok}"
            );
        }
        assert_eq!(
            "+86 138-1234-5678".parse::<Phone>().unwrap().as_str(),
            "13812345678"
        );
        for bad in [
            "",
            "1381234567",
            "138123456789",
            "12812345678",
            "23812345678",
            "+1 4155552671",
            "1381234567x",
            "+8612812345678",
            "86138123456",
        ] {
            assert!(bad.parse::<Phone>().is_err(), "{bad}");
        }
        let p: Phone = "13812345678".parse().unwrap();
        assert_eq!(p.masked(), "138****5678");
        assert!(!format!("{p:?}").contains("13812345678"));
    }
}
