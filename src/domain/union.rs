//! Unions (基层工会 and their federations) and membership in them: joining
//! (入会) by a union's signed join code, review by the union's admins,
//! transfer (转会) to another union, member numbers, and the numbers a
//! federation reports. Every command is a pure function of a snapshot read in
//! its transaction, the command and the time; it answers with an outcome and
//! the [`Effect`]s that make it true, as the booking rules do.
//!
//! Invariants the rules keep (the store's unique indexes keep them too):
//! - a person has at most one `active` membership and at most one `pending`
//!   application;
//! - a member number is issued once, when a membership becomes active, and is
//!   the union's adcode followed by the next number of that adcode's counter;
//! - a transfer leaves the old membership active until the new one is: a
//!   member never loses eligibility while a union reviews their transfer.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::booking::Refused;
use super::hours::SHANGHAI;
use super::notify::{self, Notice};
use super::site::Adcode;
use super::user::{User, UserId};

crate::domain::id::opaque_id!(
    /// A union's opaque id, such as `u3k9v0q2m7x1c`.
    UnionId,
    "u",
    BadUnionId,
    "union"
);

crate::domain::id::opaque_id!(
    /// A membership's opaque id, such as `m3k9v0q2m7x1c`.
    MembershipId,
    "m",
    BadMembershipId,
    "membership"
);

/// How a union takes new members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinPolicy {
    /// Active at once.
    Auto,
    /// Pending until one of the union's admins approves.
    Review,
}

impl JoinPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinPolicy::Auto => "auto",
            JoinPolicy::Review => "review",
        }
    }
}

impl std::str::FromStr for JoinPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(JoinPolicy::Auto),
            "review" => Ok(JoinPolicy::Review),
            _ => Err(format!("'{s}' is not one of: auto, review")),
        }
    }
}

/// What an admin says of a union. Coordinates are WGS-84.
#[derive(Debug, Clone, PartialEq)]
pub struct UnionDraft {
    pub name: String,
    pub adcode: Adcode,
    /// The federation this union belongs to.
    pub parent_id: Option<UnionId>,
    /// Where its office is (`lat`, `lon`), for "the nearest union".
    pub location: Option<(f64, f64)>,
    pub join_policy: JoinPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Union {
    pub id: UnionId,
    pub draft: UnionDraft,
    /// The join code's version: rotating the code bumps it, and codes of
    /// earlier versions stop working.
    pub code_version: u32,
    pub created_at: DateTime<Utc>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
/// Where a membership stands: `pending` review, `active`, `rejected`, `transferred` to another union, `withdrawn`.
#[serde(rename_all = "snake_case")]
pub enum MembershipStatus {
    /// Waiting for the union's admins.
    Pending,
    /// A member now.
    Active,
    /// The union's admins said no (with a reason).
    Rejected,
    /// Ended by a transfer to another union (the new membership is active).
    Transferred,
    /// The applicant took a pending application back.
    Withdrawn,
}

impl MembershipStatus {
    pub const ALL: [MembershipStatus; 5] = [
        MembershipStatus::Pending,
        MembershipStatus::Active,
        MembershipStatus::Rejected,
        MembershipStatus::Transferred,
        MembershipStatus::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MembershipStatus::Pending => "pending",
            MembershipStatus::Active => "active",
            MembershipStatus::Rejected => "rejected",
            MembershipStatus::Transferred => "transferred",
            MembershipStatus::Withdrawn => "withdrawn",
        }
    }
}

impl std::str::FromStr for MembershipStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MembershipStatus::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown membership status '{s}'"))
    }
}

/// One membership (or application) of one person in one union: a person's
/// history is the list of them.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipRecord {
    pub id: MembershipId,
    pub user: UserId,
    pub union: UnionId,
    pub status: MembershipStatus,
    /// Issued when it became active.
    pub member_no: Option<String>,
    pub applied_at: DateTime<Utc>,
    /// When it was approved or rejected (by an admin) or withdrawn (by the
    /// applicant), and by whom.
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<UserId>,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped being active (a transfer).
    pub ended_at: Option<DateTime<Utc>>,
    /// The membership this one was transferred from.
    pub transferred_from: Option<MembershipId>,
}

/// What a command asks the store to write, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Insert(MembershipRecord),
    /// Write the membership as given if it is still in `from` (a stale
    /// snapshot is never applied: the store fails with `WrongState`).
    Update {
        record: MembershipRecord,
        from: MembershipStatus,
    },
    /// The last member number given under `adcode` is now `last`.
    MemberSeq {
        adcode: Adcode,
        last: u64,
    },
    /// Tell the applicant (the inbox, in the same transaction).
    Notify(Notice),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision<T> {
    pub outcome: T,
    pub effects: Vec<Effect>,
}

/// What joining (or transferring to) a union needs to know, read in its
/// transaction under the person's lock.
#[derive(Debug, Clone)]
pub struct JoinSnapshot {
    pub union: Union,
    /// The person's pending and active memberships.
    pub open: Vec<MembershipRecord>,
    /// The last member number given under the union's adcode (0: none yet).
    pub last_member_seq: u64,
}

/// A member number: the union's adcode, then the adcode's `n`th number.
pub fn member_no(adcode: Adcode, n: u64) -> String {
    format!("{adcode}-{n:06}")
}

fn wrong(why: impl Into<String>) -> Refused {
    Refused::WrongState(why.into())
}

/// `record` becomes active now with the next member number of its union's adcode.
fn activate(
    mut record: MembershipRecord,
    union: &Union,
    last_seq: u64,
    now: DateTime<Utc>,
) -> (MembershipRecord, Effect) {
    let n = last_seq + 1;
    record.status = MembershipStatus::Active;
    record.member_no = Some(member_no(union.draft.adcode, n));
    record.activated_at = Some(now);
    (
        record,
        Effect::MemberSeq {
            adcode: union.draft.adcode,
            last: n,
        },
    )
}

fn find(open: &[MembershipRecord], status: MembershipStatus) -> Option<&MembershipRecord> {
    open.iter().find(|m| m.status == status)
}

/// The person needs a name on their profile for the union's records.
fn named(user: &User) -> Result<(), Refused> {
    if user
        .profile
        .display_name
        .as_deref()
        .is_none_or(|n| n.trim().is_empty())
    {
        return Err(Refused::Invalid {
            field: "display_name",
            detail: "set display_name in your profile (PUT /v1/me/profile) before joining a union"
                .into(),
        });
    }
    Ok(())
}

/// `user` joins `s.union` (入会): active at once in an `auto` union, pending
/// in a `review` one. Refused for a member (they transfer instead) and for
/// someone whose application is pending.
pub fn join(
    s: &JoinSnapshot,
    user: &User,
    id: MembershipId,
    now: DateTime<Utc>,
) -> Result<Decision<MembershipRecord>, Refused> {
    named(user)?;
    if let Some(a) = find(&s.open, MembershipStatus::Active) {
        return Err(wrong(format!(
            "you are already a member (membership {}); transfer it instead",
            a.id
        )));
    }
    if let Some(p) = find(&s.open, MembershipStatus::Pending) {
        return Err(wrong(format!(
            "your application {} is waiting for its union's decision",
            p.id
        )));
    }
    Ok(admit(s, user.id, id, None, now))
}

/// A new membership of `user` in `s.union`, active or pending by its policy.
fn admit(
    s: &JoinSnapshot,
    user: UserId,
    id: MembershipId,
    transferred_from: Option<MembershipId>,
    now: DateTime<Utc>,
) -> Decision<MembershipRecord> {
    let record = MembershipRecord {
        id,
        user,
        union: s.union.id,
        status: MembershipStatus::Pending,
        member_no: None,
        applied_at: now,
        decided_at: None,
        decided_by: None,
        reason: None,
        activated_at: None,
        ended_at: None,
        transferred_from,
    };
    match s.union.draft.join_policy {
        JoinPolicy::Review => Decision {
            effects: vec![Effect::Insert(record.clone())],
            outcome: record,
        },
        JoinPolicy::Auto => {
            let (record, seq) = activate(record, &s.union, s.last_member_seq, now);
            let mut effects = end_old(&s.open, transferred_from, now);
            effects.push(Effect::Insert(record.clone()));
            effects.push(seq);
            Decision {
                outcome: record,
                effects,
            }
        }
    }
}

/// The old membership of a transfer ends as the new one becomes active
/// (written first, so one person never holds two active memberships).
fn end_old(
    open: &[MembershipRecord],
    from: Option<MembershipId>,
    now: DateTime<Utc>,
) -> Vec<Effect> {
    open.iter()
        .filter(|m| Some(m.id) == from && m.status == MembershipStatus::Active)
        .map(|m| Effect::Update {
            record: MembershipRecord {
                status: MembershipStatus::Transferred,
                ended_at: Some(now),
                ..m.clone()
            },
            from: MembershipStatus::Active,
        })
        .collect()
}

/// Move the active membership `from` to `s.union` (转会): active there at
/// once in an `auto` union (the old one ends), pending in a `review` one (the
/// old one stays active until the new one is approved).
pub fn transfer(
    s: &JoinSnapshot,
    user: &User,
    from: MembershipId,
    id: MembershipId,
    now: DateTime<Utc>,
) -> Result<Decision<MembershipRecord>, Refused> {
    let old = s
        .open
        .iter()
        .find(|m| m.id == from)
        .filter(|m| m.user == user.id)
        .ok_or_else(|| wrong(format!("membership {from} is not active")))?;
    if old.status != MembershipStatus::Active {
        return Err(wrong(format!("membership {from} is not active")));
    }
    if old.union == s.union.id {
        return Err(Refused::Invalid {
            field: "code",
            detail: "that is the union you are a member of already".into(),
        });
    }
    if let Some(p) = find(&s.open, MembershipStatus::Pending) {
        return Err(wrong(format!(
            "your application {} is waiting for its union's decision",
            p.id
        )));
    }
    Ok(admit(s, user.id, id, Some(from), now))
}

/// What approving or rejecting an application needs, read in its transaction.
#[derive(Debug, Clone)]
pub struct ReviewSnapshot {
    pub union: Union,
    pub application: MembershipRecord,
    /// The applicant's pending and active memberships.
    pub open: Vec<MembershipRecord>,
    pub last_member_seq: u64,
}

/// An admin (`by`) approves a pending application: it becomes active with a
/// member number; for a transfer, the old membership ends in the same step.
pub fn approve(
    s: &ReviewSnapshot,
    by: UserId,
    now: DateTime<Utc>,
) -> Result<Decision<MembershipRecord>, Refused> {
    let app = &s.application;
    if app.status != MembershipStatus::Pending {
        return Err(wrong(format!(
            "membership {} is {}, not pending",
            app.id,
            app.status.as_str()
        )));
    }
    if let Some(a) = find(&s.open, MembershipStatus::Active)
        && Some(a.id) != app.transferred_from
    {
        return Err(wrong(format!(
            "the applicant is a member elsewhere already (membership {})",
            a.id
        )));
    }
    let mut record = app.clone();
    record.decided_at = Some(now);
    record.decided_by = Some(by);
    let (record, seq) = activate(record, &s.union, s.last_member_seq, now);
    let mut effects = end_old(&s.open, app.transferred_from, now);
    effects.push(Effect::Update {
        record: record.clone(),
        from: MembershipStatus::Pending,
    });
    effects.push(seq);
    effects.push(Effect::Notify(notify::membership_approved(
        record.user,
        &record.id.to_string(),
        &s.union.draft.name,
        record.member_no.as_deref().unwrap_or_default(),
        now,
    )));
    Ok(Decision {
        outcome: record,
        effects,
    })
}

/// An admin (`by`) rejects a pending application to `union`, saying why. A
/// rejected transfer leaves the old membership as it was.
pub fn reject(
    application: &MembershipRecord,
    union: &Union,
    reason: &str,
    by: UserId,
    now: DateTime<Utc>,
) -> Result<Decision<MembershipRecord>, Refused> {
    if application.status != MembershipStatus::Pending {
        return Err(wrong(format!(
            "membership {} is {}, not pending",
            application.id,
            application.status.as_str()
        )));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Refused::Invalid {
            field: "reason",
            detail: "say why, for the applicant".into(),
        });
    }
    let record = MembershipRecord {
        status: MembershipStatus::Rejected,
        decided_at: Some(now),
        decided_by: Some(by),
        reason: Some(reason.to_owned()),
        ..application.clone()
    };
    Ok(Decision {
        effects: vec![
            Effect::Update {
                record: record.clone(),
                from: MembershipStatus::Pending,
            },
            Effect::Notify(notify::membership_rejected(
                record.user,
                &record.id.to_string(),
                &union.draft.name,
                reason,
                now,
            )),
        ],
        outcome: record,
    })
}

/// The applicant (`user`) takes a pending application back: a wrong union
/// chosen, or a transfer no longer wanted (the old membership stays active).
pub fn withdraw(
    application: &MembershipRecord,
    user: UserId,
    now: DateTime<Utc>,
) -> Result<Decision<MembershipRecord>, Refused> {
    if application.user != user {
        return Err(wrong(format!(
            "membership {} is not yours to withdraw",
            application.id
        )));
    }
    if application.status != MembershipStatus::Pending {
        return Err(wrong(format!(
            "membership {} is {}, not pending",
            application.id,
            application.status.as_str()
        )));
    }
    let record = MembershipRecord {
        status: MembershipStatus::Withdrawn,
        decided_at: Some(now),
        decided_by: Some(user),
        ..application.clone()
    };
    Ok(Decision {
        effects: vec![Effect::Update {
            record: record.clone(),
            from: MembershipStatus::Pending,
        }],
        outcome: record,
    })
}

// --- join codes ---------------------------------------------------------------

/// A union's join code: its id and code version with an HMAC-SHA256 tag (80
/// bits) under the server's key, URL-safe base64 (30 characters). It is
/// checked without a lookup, cannot be made without the key, and stops
/// working when the union rotates its code (the version moves on).
pub fn join_code(key: &[u8], union: UnionId, version: u32) -> String {
    let mut raw = union.get().to_be_bytes().to_vec();
    raw.extend_from_slice(&version.to_be_bytes());
    let tag = tag(key, &raw);
    raw.extend_from_slice(&tag[..10]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn tag(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"yizhan-join:");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// The union and code version a genuine code names; `None` for anything
/// else. Whether the version is still current is the union's to say.
pub fn verify_join_code(key: &[u8], text: &str) -> Option<(UnionId, u32)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    if raw.len() != 22 {
        return None;
    }
    let expected = tag(key, &raw[..12]);
    if !super::secret::same(&expected[..10], &raw[12..]) {
        return None;
    }
    let union = UnionId::from_u64(u64::from_be_bytes(raw[..8].try_into().ok()?))?;
    let version = u32::from_be_bytes(raw[8..12].try_into().ok()?);
    Some((union, version))
}

/// The code in what a phone scanned: the code itself, or a join URL carrying
/// it as its `code` query parameter.
pub fn code_in(scanned: &str) -> &str {
    let s = scanned.trim();
    match s.split_once('?') {
        Some((_, query)) => query
            .split('&')
            .find_map(|kv| kv.strip_prefix("code="))
            .unwrap_or(s),
        None => s,
    }
}

// --- the numbers unions report ------------------------------------------------

/// A calendar month in China time, `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// The month's first instant (midnight of the 1st, China time).
    pub fn start(self) -> DateTime<Utc> {
        SHANGHAI
            .with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .expect("a fixed offset has no gaps")
            .with_timezone(&Utc)
    }

    pub fn of(t: DateTime<Utc>) -> Month {
        let t = t.with_timezone(&SHANGHAI);
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// `n` months earlier.
    pub fn back(self, n: u32) -> Month {
        let i = self.year * 12 + self.month as i32 - 1 - n as i32;
        Month {
            year: i.div_euclid(12),
            month: i.rem_euclid(12) as u32 + 1,
        }
    }

    /// Months from `self` to `to`, both included.
    pub fn through(self, to: Month) -> Vec<Month> {
        let mut out = Vec::new();
        let mut m = self;
        while m <= to {
            out.push(m);
            m = m.next();
        }
        out
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl std::str::FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Month, String> {
        let bad = || format!("'{s}' is not a month (YYYY-MM, from 1900-01)");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || year < 1900 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

/// One month's movements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
pub struct MonthCounts {
    /// New members (not by transfer).
    pub joined: u32,
    /// Members who came by transfer from another union.
    pub transferred_in: u32,
    /// Members who left by transfer to another union.
    pub transferred_out: u32,
}

/// A union's figures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnionFigures {
    pub members_now: u32,
    pub pending_now: u32,
    pub months: BTreeMap<Month, MonthCounts>,
}

impl UnionFigures {
    /// Add another union's figures (a federation counts its member unions).
    pub fn add(&mut self, other: &UnionFigures) {
        self.members_now += other.members_now;
        self.pending_now += other.pending_now;
        for (m, c) in &other.months {
            let mine = self.months.entry(*m).or_default();
            mine.joined += c.joined;
            mine.transferred_in += c.transferred_in;
            mine.transferred_out += c.transferred_out;
        }
    }
}

/// How many of a union's memberships are in each status now.
pub type StatusCounts = BTreeMap<MembershipStatus, u32>;

/// One union's own figures for the months `months`: its memberships counted
/// by status now (`counts`), and the memberships that moved in those months
/// (activated or ended in them; others are ignored). Every membership belongs
/// to one union, so a federation's figures are the sum of its own and its
/// member unions' (a transfer between two unions of one federation counts out
/// of one and into the other).
pub fn figures<'a>(
    counts: &StatusCounts,
    moved: impl IntoIterator<Item = &'a MembershipRecord>,
    months: &[Month],
) -> UnionFigures {
    let mut f = UnionFigures {
        members_now: counts.get(&MembershipStatus::Active).copied().unwrap_or(0),
        pending_now: counts.get(&MembershipStatus::Pending).copied().unwrap_or(0),
        months: months
            .iter()
            .map(|m| (*m, MonthCounts::default()))
            .collect(),
    };
    for m in moved {
        if let Some(at) = m.activated_at
            && let Some(c) = f.months.get_mut(&Month::of(at))
        {
            if m.transferred_from.is_some() {
                c.transferred_in += 1;
            } else {
                c.joined += 1;
            }
        }
        if m.status == MembershipStatus::Transferred
            && let Some(at) = m.ended_at
            && let Some(c) = f.months.get_mut(&Month::of(at))
        {
            c.transferred_out += 1;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::domain::user::{Phone, Profile, Role};

    fn union(n: u64, policy: JoinPolicy) -> Union {
        Union {
            id: UnionId::from_u64(n).unwrap(),
            draft: UnionDraft {
                name: format!("工会{n}"),
                adcode: "370102".parse().unwrap(),
                parent_id: None,
                location: None,
                join_policy: policy,
            },
            code_version: 1,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    fn person(name: Option<&str>) -> User {
        User {
            id: 7,
            phone: "13800000007".parse::<Phone>().unwrap(),
            role: Role::Worker,
            sites: vec![],
            unions: vec![],
            profile: Profile {
                display_name: name.map(str::to_owned),
                ..Profile::default()
            },
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 4, 0, 0).unwrap()
    }

    fn mid(n: u64) -> MembershipId {
        MembershipId::from_u64(n).unwrap()
    }

    fn snap(u: Union, open: Vec<MembershipRecord>, last: u64) -> JoinSnapshot {
        JoinSnapshot {
            union: u,
            open,
            last_member_seq: last,
        }
    }

    /// Apply effects to a list of records, as the store does (checking `from`).
    fn apply(records: &mut Vec<MembershipRecord>, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Insert(r) => records.push(r.clone()),
                Effect::Update { record, from } => {
                    let r = records.iter_mut().find(|r| r.id == record.id).unwrap();
                    assert_eq!(r.status, *from);
                    *r = record.clone();
                }
                Effect::MemberSeq { .. } | Effect::Notify(_) => {}
            }
            // One active membership per person at every step (the store's
            // unique index would refuse a second one mid-command).
            for r in records.iter() {
                let active = records
                    .iter()
                    .filter(|x| x.user == r.user && x.status == MembershipStatus::Active)
                    .count();
                assert!(active <= 1, "one active membership at every step");
            }
        }
    }

    fn open(records: &[MembershipRecord]) -> Vec<MembershipRecord> {
        records
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    MembershipStatus::Active | MembershipStatus::Pending
                )
            })
            .cloned()
            .collect()
    }

    #[test]
    fn an_auto_union_makes_a_member_at_once_with_a_numbered_card() {
        let d = join(
            &snap(union(1, JoinPolicy::Auto), vec![], 41),
            &person(Some("王师傅")),
            mid(1),
            now(),
        )
        .unwrap();
        assert_eq!(d.outcome.status, MembershipStatus::Active);
        assert_eq!(d.outcome.member_no.as_deref(), Some("370102-000042"));
        assert_eq!(d.outcome.activated_at, Some(now()));
        assert!(d.effects.contains(&Effect::MemberSeq {
            adcode: "370102".parse().unwrap(),
            last: 42
        }));
    }

    #[test]
    fn joining_needs_a_name_and_no_other_membership() {
        let u = union(1, JoinPolicy::Auto);
        let refused = join(&snap(u.clone(), vec![], 0), &person(None), mid(1), now());
        assert!(matches!(
            refused,
            Err(Refused::Invalid {
                field: "display_name",
                ..
            })
        ));
        let mut records = vec![];
        let d = join(
            &snap(u.clone(), vec![], 0),
            &person(Some("王")),
            mid(1),
            now(),
        )
        .unwrap();
        apply(&mut records, &d.effects);
        let again = join(
            &snap(union(2, JoinPolicy::Auto), open(&records), 1),
            &person(Some("王")),
            mid(2),
            now(),
        );
        assert!(matches!(again, Err(Refused::WrongState(_))));
    }

    #[test]
    fn review_then_approve_issues_a_number_and_reject_keeps_the_reason() {
        let u = union(1, JoinPolicy::Review);
        let d = join(
            &snap(u.clone(), vec![], 0),
            &person(Some("李")),
            mid(1),
            now(),
        )
        .unwrap();
        assert_eq!(d.outcome.status, MembershipStatus::Pending);
        assert_eq!(d.outcome.member_no, None);
        // A second application while one is pending is refused.
        assert!(
            join(
                &snap(u.clone(), vec![d.outcome.clone()], 0),
                &person(Some("李")),
                mid(2),
                now()
            )
            .is_err()
        );
        let later = now() + Duration::hours(3);
        let review = ReviewSnapshot {
            union: u.clone(),
            application: d.outcome.clone(),
            open: vec![d.outcome.clone()],
            last_member_seq: 9,
        };
        let ok = approve(&review, 99, later).unwrap();
        assert_eq!(ok.outcome.status, MembershipStatus::Active);
        assert_eq!(ok.outcome.member_no.as_deref(), Some("370102-000010"));
        assert_eq!(ok.outcome.decided_by, Some(99));
        assert_eq!(ok.outcome.activated_at, Some(later));
        // Decided once: approving or rejecting it again is refused.
        assert!(
            approve(
                &ReviewSnapshot {
                    application: ok.outcome.clone(),
                    ..review.clone()
                },
                99,
                later
            )
            .is_err()
        );
        assert!(ok.effects.iter().any(
            |e| matches!(e, Effect::Notify(n) if n.user == 7 && n.body.contains("370102-000010"))
        ));
        assert!(reject(&ok.outcome, &u, "no", 99, later).is_err());
        let no = reject(&d.outcome, &u, "  不在本单位  ", 99, later).unwrap();
        assert!(no.effects.iter().any(
            |e| matches!(e, Effect::Notify(n) if n.user == 7 && n.body.contains("不在本单位"))
        ));
        assert_eq!(no.outcome.status, MembershipStatus::Rejected);
        assert_eq!(no.outcome.reason.as_deref(), Some("不在本单位"));
        assert!(matches!(
            reject(&d.outcome, &u, " ", 99, later),
            Err(Refused::Invalid {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn a_transfer_keeps_the_old_membership_until_the_new_one_is_active() {
        let me = person(Some("张"));
        let (a, b) = (union(1, JoinPolicy::Auto), union(2, JoinPolicy::Review));
        let mut records = vec![];
        let d = join(&snap(a.clone(), vec![], 0), &me, mid(1), now()).unwrap();
        apply(&mut records, &d.effects);
        // To a reviewing union: pending, and the old one stays active.
        let t = transfer(
            &snap(b.clone(), open(&records), 0),
            &me,
            mid(1),
            mid(2),
            now(),
        )
        .unwrap();
        apply(&mut records, &t.effects);
        assert_eq!(records[0].status, MembershipStatus::Active);
        assert_eq!(records[1].status, MembershipStatus::Pending);
        assert_eq!(records[1].transferred_from, Some(mid(1)));
        // A second transfer while one is pending is refused.
        assert!(
            transfer(
                &snap(a.clone(), open(&records), 0),
                &me,
                mid(1),
                mid(3),
                now()
            )
            .is_err()
        );
        // Approved: the old one ends as the new one starts.
        let ok = approve(
            &ReviewSnapshot {
                union: b.clone(),
                application: records[1].clone(),
                open: open(&records),
                last_member_seq: 0,
            },
            99,
            now(),
        )
        .unwrap();
        apply(&mut records, &ok.effects);
        assert_eq!(records[0].status, MembershipStatus::Transferred);
        assert_eq!(records[0].ended_at, Some(now()));
        assert_eq!(records[1].status, MembershipStatus::Active);
        // To an auto union: at once. Not to the union one is in.
        let same = transfer(
            &snap(b.clone(), open(&records), 1),
            &me,
            mid(2),
            mid(3),
            now(),
        );
        assert!(matches!(same, Err(Refused::Invalid { field: "code", .. })));
        let back = transfer(&snap(a, open(&records), 1), &me, mid(2), mid(3), now()).unwrap();
        apply(&mut records, &back.effects);
        assert_eq!(records[1].status, MembershipStatus::Transferred);
        assert_eq!(records[2].status, MembershipStatus::Active);
        assert_eq!(records[2].member_no.as_deref(), Some("370102-000002"));
        // Someone else's membership cannot be transferred.
        let other = User {
            id: 8,
            ..me.clone()
        };
        assert!(transfer(&snap(b, open(&records), 2), &other, mid(3), mid(4), now()).is_err());
    }

    /// Random joins, transfers and decisions by a few people across unions of
    /// both policies and two adcodes, each applied as the store would.
    mod random {
        use std::collections::{BTreeSet, HashMap};

        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Cmd {
            Join(usize, usize),
            Transfer(usize, usize),
            Approve(usize),
            Reject(usize),
            Withdraw(usize, usize),
        }

        fn cmd() -> impl Strategy<Value = Cmd> {
            prop_oneof![
                (0..4usize, 0..4usize).prop_map(|(p, u)| Cmd::Join(p, u)),
                (0..4usize, 0..4usize).prop_map(|(p, u)| Cmd::Transfer(p, u)),
                (0..4usize).prop_map(Cmd::Approve),
                (0..4usize).prop_map(Cmd::Reject),
                (0..4usize, 0..4usize).prop_map(|(k, p)| Cmd::Withdraw(k, p)),
            ]
        }

        struct Model {
            unions: Vec<Union>,
            people: Vec<User>,
            records: Vec<MembershipRecord>,
            seqs: HashMap<Adcode, u64>,
            next_id: u64,
            now: DateTime<Utc>,
        }

        impl Model {
            fn new() -> Model {
                let adcodes = ["370102", "370103"];
                let unions = (0..4)
                    .map(|i| {
                        let mut u = union(
                            i as u64 + 1,
                            if i % 2 == 0 {
                                JoinPolicy::Auto
                            } else {
                                JoinPolicy::Review
                            },
                        );
                        u.draft.adcode = adcodes[i / 2].parse().unwrap();
                        u
                    })
                    .collect();
                let people = (0..4)
                    .map(|i| User {
                        id: i as i64 + 1,
                        ..person(Some("某人"))
                    })
                    .collect();
                Model {
                    unions,
                    people,
                    records: vec![],
                    seqs: HashMap::new(),
                    next_id: 0,
                    now: now(),
                }
            }

            fn open(&self, user: UserId) -> Vec<MembershipRecord> {
                open(
                    &self
                        .records
                        .iter()
                        .filter(|r| r.user == user)
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            }

            fn snapshot(&self, user: UserId, u: &Union) -> JoinSnapshot {
                JoinSnapshot {
                    union: u.clone(),
                    open: self.open(user),
                    last_member_seq: self.seqs.get(&u.draft.adcode).copied().unwrap_or(0),
                }
            }

            fn apply(&mut self, effects: &[Effect]) {
                apply(&mut self.records, effects);
                for e in effects {
                    if let Effect::MemberSeq { adcode, last } = e {
                        let was = self.seqs.insert(*adcode, *last).unwrap_or(0);
                        assert_eq!(*last, was + 1, "numbers are handed out in order");
                    }
                }
            }

            fn step(&mut self, c: &Cmd) {
                self.now += Duration::minutes(1);
                self.next_id += 1;
                let id = mid(self.next_id);
                let result = match c {
                    Cmd::Join(p, u) => {
                        let (who, u) = (self.people[*p].clone(), self.unions[*u].clone());
                        join(&self.snapshot(who.id, &u), &who, id, self.now)
                    }
                    Cmd::Transfer(p, u) => {
                        let (who, u) = (self.people[*p].clone(), self.unions[*u].clone());
                        let from = self
                            .open(who.id)
                            .iter()
                            .find(|r| r.status == MembershipStatus::Active)
                            .map_or(mid(999_999), |r| r.id);
                        transfer(&self.snapshot(who.id, &u), &who, from, id, self.now)
                    }
                    Cmd::Withdraw(k, p) => {
                        let Some(app) = self
                            .records
                            .iter()
                            .filter(|r| r.status == MembershipStatus::Pending)
                            .nth(*k)
                            .cloned()
                        else {
                            return;
                        };
                        let by = self.people[*p].id;
                        let d = withdraw(&app, by, self.now);
                        // Only the applicant may, and only while pending.
                        assert_eq!(d.is_ok(), app.user == by);
                        d
                    }
                    Cmd::Approve(k) | Cmd::Reject(k) => {
                        let pending: Vec<MembershipRecord> = self
                            .records
                            .iter()
                            .filter(|r| r.status == MembershipStatus::Pending)
                            .cloned()
                            .collect();
                        let Some(app) = pending.get(*k).cloned() else {
                            return;
                        };
                        let u = self
                            .unions
                            .iter()
                            .find(|u| u.id == app.union)
                            .unwrap()
                            .clone();
                        if matches!(c, Cmd::Approve(_)) {
                            let s = ReviewSnapshot {
                                open: self.open(app.user),
                                last_member_seq: self
                                    .seqs
                                    .get(&u.draft.adcode)
                                    .copied()
                                    .unwrap_or(0),
                                union: u,
                                application: app,
                            };
                            approve(&s, 99, self.now)
                        } else {
                            reject(&app, &u, "不符合条件", 99, self.now)
                        }
                    }
                };
                if let Ok(d) = result {
                    self.apply(&d.effects);
                }
            }

            fn check(&self) {
                for p in &self.people {
                    let mine: Vec<&MembershipRecord> =
                        self.records.iter().filter(|r| r.user == p.id).collect();
                    let count = |s| mine.iter().filter(|r| r.status == s).count();
                    assert!(count(MembershipStatus::Active) <= 1);
                    assert!(count(MembershipStatus::Pending) <= 1);
                }
                let mut numbers = BTreeSet::new();
                for r in &self.records {
                    let numbered = matches!(
                        r.status,
                        MembershipStatus::Active | MembershipStatus::Transferred
                    );
                    assert_eq!(r.member_no.is_some(), numbered, "{r:?}");
                    assert_eq!(r.activated_at.is_some(), numbered, "{r:?}");
                    if let Some(n) = &r.member_no {
                        let u = self.unions.iter().find(|u| u.id == r.union).unwrap();
                        assert!(n.starts_with(u.draft.adcode.as_str()), "{n}");
                        assert!(numbers.insert(n.clone()), "{n} issued twice");
                    }
                    if r.status == MembershipStatus::Transferred {
                        // Exactly one successor took over (earlier attempts
                        // may have been rejected), and is (or was) active.
                        let next: Vec<&MembershipRecord> = self
                            .records
                            .iter()
                            .filter(|n| {
                                n.transferred_from == Some(r.id)
                                    && matches!(
                                        n.status,
                                        MembershipStatus::Active | MembershipStatus::Transferred
                                    )
                            })
                            .collect();
                        assert_eq!(next.len(), 1, "{r:?}");
                        assert_eq!(r.ended_at, next[0].activated_at);
                    }
                }
                let issued: u64 = self.seqs.values().sum();
                assert_eq!(issued as usize, numbers.len(), "every number counted once");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn random_commands_keep_every_invariant(cmds in proptest::collection::vec(cmd(), 1..60)) {
                let mut m = Model::new();
                for c in &cmds {
                    m.step(c);
                    m.check();
                }
            }
        }
    }

    #[test]
    fn join_codes_verify_only_under_their_key_and_name_their_version() {
        let u = UnionId::from_u64(0x0abc_def0_1234_5678).unwrap();
        let c = join_code(b"k1", u, 3);
        assert_eq!(c.len(), 30);
        assert_eq!(verify_join_code(b"k1", &c), Some((u, 3)));
        assert_eq!(verify_join_code(b"k2", &c), None);
        assert_ne!(join_code(b"k1", u, 4), c);
        for i in 0..c.len() {
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                verify_join_code(b"k1", &String::from_utf8(bytes).unwrap()),
                None,
                "{i}"
            );
        }
        assert_eq!(verify_join_code(b"k1", "not a code"), None);
        assert_eq!(code_in(&format!("https://x.cn/join?code={c}")), c);
        assert_eq!(code_in(&format!(" {c} ")), c);
    }

    #[test]
    fn months_and_figures_add_up() {
        let m: Month = "2026-11".parse().unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.back(11).to_string(), "2025-12");
        assert_eq!(m.back(10).through(m).len(), 11);
        assert!("2026-13".parse::<Month>().is_err());
        // 23:30 UTC on the 30th is already December in China.
        let eve = Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap();
        assert_eq!(Month::of(eve).to_string(), "2026-12");
        assert_eq!(Month::of(eve).start(), eve - Duration::minutes(30));
        assert_eq!(
            Month::of(eve.with_timezone(&Utc) - Duration::minutes(31)),
            m
        );
        let rec = |n, status, from: Option<u64>, at: DateTime<Utc>| MembershipRecord {
            id: mid(n),
            user: n as i64,
            union: UnionId::from_u64(1).unwrap(),
            status,
            member_no: None,
            applied_at: at,
            decided_at: None,
            decided_by: None,
            reason: None,
            activated_at: (status != MembershipStatus::Pending).then_some(at),
            ended_at: (status == MembershipStatus::Transferred).then_some(at),
            transferred_from: from.map(mid),
        };
        let rows = [
            rec(1, MembershipStatus::Active, None, now()),
            rec(2, MembershipStatus::Active, Some(9), now()),
            rec(3, MembershipStatus::Transferred, None, now()),
            rec(4, MembershipStatus::Pending, None, now()),
            rec(5, MembershipStatus::Active, None, eve),
        ];
        let months = m.back(1).through(m.next());
        let counts: StatusCounts = [
            (MembershipStatus::Active, 3),
            (MembershipStatus::Pending, 1),
        ]
        .into_iter()
        .collect();
        let f = figures(&counts, &rows, &months);
        assert_eq!(f.members_now, 3);
        assert_eq!(f.pending_now, 1);
        let nov = f.months[&m];
        assert_eq!(
            (nov.joined, nov.transferred_in, nov.transferred_out),
            (2, 1, 1)
        );
        assert_eq!(f.months[&m.next()].joined, 1);
        assert_eq!(f.months[&m.back(1)], MonthCounts::default());
        let mut sum = UnionFigures::default();
        sum.add(&f);
        sum.add(&f);
        assert_eq!(sum.members_now, 6);
        assert_eq!(sum.months[&m].joined, 4);
    }
}
