//! Draw events (抽签, issue 26) in the console: a form that makes one, and a
//! draw event's page. Before the draw the page shows the seed commitment,
//! `draw_at`, how many have applied in each priority group, and a form for
//! the public value; after it, the draw's values, the first ranks with where
//! each stands, and the public record to download. Every form is the API's
//! JSON handed to the API's own function (`events::new_event`,
//! `events::edit_event`); the record is `applications::record_of`, the one
//! `GET /v1/events/{id}/draw` serves and `scripts/verify-draw` checks.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Datelike;
use serde_json::{Map, Value, json};

use super::events::{
    Bad, EventForm, EventPage, Extra, SiteForm, after_edit, answered, created, event_json,
    form_page, int_of, managed_event, refusal_by, site_form_page,
};
use super::session::{Form, Session};
use super::views::{self, field_label};
use super::{Nav, PageError, attachment, page};
use crate::domain::draw::{Facts, PriorityGroup, group_of};
use crate::domain::event::{BookingStatus, Event, EventStatus};
use crate::domain::hours::SHANGHAI;
use crate::domain::site::SiteId;
use crate::domain::union::MembershipStatus;
use crate::domain::user::{Gender, MaritalStatus};
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::applications::record_of;
use crate::http::attendees::Attendee;
use crate::http::body::JsonObject;
use crate::http::events::edit_event;
use crate::http::manage::site_id;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console/sites/{id}/events/draw",
            get(new_draw_page).post(create),
        )
        .route("/console/events/{id}/public_value", post(set_public_value))
        .route("/console/events/{id}/draw.json", get(download))
}

/// Rows for priority groups on the form (the API takes up to ten).
pub const GROUP_ROWS: usize = 3;
/// The ranks the event page lists after the draw (the record has them all).
const TOP_RANKS: usize = 20;

/// One priority group's row, as typed.
#[derive(Debug, Clone, Default)]
pub struct GroupForm {
    pub name: String,
    /// `""` (any), `"true"` or `"false"`.
    pub frontline: String,
    pub union_member: String,
    /// `""`, `"male"` or `"female"`.
    pub gender: String,
    /// `""` or a marital status.
    pub marital_status: String,
    pub min_age: String,
    pub max_age: String,
}

impl GroupForm {
    /// The group rows of a submitted form (always [`GROUP_ROWS`] of them).
    pub fn rows_of(f: &Form) -> Vec<GroupForm> {
        (0..GROUP_ROWS)
            .map(|i| {
                let g = |n: &str| f.get(&format!("group{i}_{n}")).unwrap_or("").to_owned();
                GroupForm {
                    name: g("name"),
                    frontline: g("frontline"),
                    union_member: g("union_member"),
                    gender: g("gender"),
                    marital_status: g("marital_status"),
                    min_age: g("min_age"),
                    max_age: g("max_age"),
                }
            })
            .collect()
    }

    /// The rows of a submitted form that are filled in: the groups sent, in
    /// order (the API numbers only those).
    fn sent(f: &Form) -> Vec<usize> {
        let rows = GroupForm::rows_of(f);
        (0..rows.len()).filter(|&i| !rows[i].is_blank()).collect()
    }

    fn is_blank(&self) -> bool {
        [
            &self.name,
            &self.frontline,
            &self.union_member,
            &self.gender,
            &self.marital_status,
            &self.min_age,
            &self.max_age,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }
}

/// The draw form as the API's JSON (`allocation: draw`); the priority
/// groups sent are the rows [`GroupForm::sent`].
fn draw_json(f: &Form) -> Result<JsonObject, Bad> {
    let mut obj = event_json(f, true)?;
    let m = &mut obj.0;
    m.insert("allocation".into(), json!("draw"));
    if let Some(v) = f.text("public_value") {
        m.insert("public_value".into(), json!(v));
    }
    let mut groups = Vec::new();
    let rows = GroupForm::rows_of(f);
    for i in GroupForm::sent(f) {
        let g = &rows[i];
        let mut o = Map::new();
        o.insert("name".into(), json!(g.name.trim()));
        for (k, v) in [
            ("frontline", &g.frontline),
            ("union_member", &g.union_member),
        ] {
            match v.as_str() {
                "true" => o.insert(k.into(), json!(true)),
                "false" => o.insert(k.into(), json!(false)),
                _ => None,
            };
        }
        for (k, v) in [("gender", &g.gender), ("marital_status", &g.marital_status)] {
            if !v.is_empty() {
                o.insert(k.into(), json!(v));
            }
        }
        for (k, v) in [("min_age", &g.min_age), ("max_age", &g.max_age)] {
            if let Some(v) = Some(v.trim()).filter(|v| !v.is_empty()) {
                let n = int_of(v, || Bad {
                    field: Some(format!("group{i}_{k}")),
                    message: format!("第{}个优先组的{}：请填写整数", i + 1, views::field_zh(k)),
                })?;
                o.insert(k.into(), json!(n));
            }
        }
        groups.push(Value::Object(o));
    }
    if !groups.is_empty() {
        m.insert("priority_groups".into(), Value::Array(groups));
    }
    Ok(obj)
}

/// `priority_groups[k].part` as `(k, part)`.
fn group_param(param: &str) -> Option<(usize, &str)> {
    let (k, part) = param.strip_prefix("priority_groups[")?.split_once("].")?;
    Some((k.parse().ok()?, part))
}

/// The form field an API parameter is about, and its name in Chinese:
/// `priority_groups[k].max_age` is the max age of the k-th group sent,
/// which is form row `rows[k]`.
fn form_field(param: &str, rows: &[usize]) -> (String, String) {
    match group_param(param) {
        Some((k, part)) => {
            let row = rows.get(k).copied().unwrap_or(k);
            (
                format!("group{row}_{part}"),
                field_label(&format!("priority_groups[{row}].{part}")),
            )
        }
        None => (param.to_owned(), field_label(param)),
    }
}

/// What to check when the API refuses a draw's field: the rule in words.
fn draw_hint(param: &str) -> &'static str {
    match param {
        "draw_at" => "须不早于截止报名时间、早于活动开始时间；有人报名后不能再改。",
        "booking_closes_at" => "抽签活动请填写截止报名时间，并在开始报名之后；有人报名后不能再改。",
        "public_value" => "最多200个字，只能一行；抽签后不能再改。",
        "waitlist" => "抽签活动须允许候补：未抽中的人按抽签顺序候补。",
        "priority_groups" => "最多10组，年龄须是0–120之间的整数。",
        p if p.starts_with("priority_groups[") => {
            "每组需要名称（1–50个字，各组不同）和至少一个条件；最小年龄不能大于最大年龄。"
        }
        _ => "请检查后重试。",
    }
}

/// An API refusal on the draw's forms, naming the field in Chinese; the
/// error page for what a form cannot fix.
fn refusal(e: ApiError, rows: &[usize]) -> Result<Bad, PageError> {
    refusal_by(e, |param| {
        let (field, label) = form_field(param, rows);
        Bad {
            message: format!("“{label}”填写有误：{}", draw_hint(param)),
            field: Some(field),
        }
    })
}

#[derive(Template)]
#[template(path = "console/draw_new.html")]
struct NewDrawPage {
    head: SiteForm,
}

site_form_page!(NewDrawPage);

async fn new_draw_form(
    state: &AppState,
    s: &Session,
    id: SiteId,
    form: EventForm,
    bad: Option<Bad>,
) -> Result<Response, PageError> {
    form_page(state, s, id, form, bad, async |head| {
        Ok(NewDrawPage { head })
    })
    .await
}

async fn new_draw_page(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = site_id(&id)?;
    let form = EventForm {
        kind: "recuperation".into(),
        ..EventForm::blank()
    };
    new_draw_form(&state, &s, id, form, None).await
}

async fn create(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let site = site_id(&id)?;
    let rows = GroupForm::sent(&form);
    let refused = |e| refusal(e, &rows);
    match created(&state, &s, site, draw_json(&form), refused).await? {
        Ok(to) => Ok(to),
        Err(bad) => new_draw_form(&state, &s, site, EventForm::of_form(&form), Some(bad)).await,
    }
}

/// A priority group as the page shows it.
pub struct GroupRow {
    pub name: String,
    /// Its condition in words (`一线职工、女、18–35岁`).
    pub condition: String,
    pub count: usize,
}

/// One of the first ranks after the draw.
pub struct RankRow {
    pub rank: u32,
    pub group: String,
    pub name: String,
    pub phone: String,
    pub status: String,
}

/// What a draw event's page shows of its draw.
pub struct DrawView {
    /// The hex strings in groups of eight (they wrap on a phone).
    pub commitment: Vec<String>,
    pub draw_at: String,
    pub public_value: String,
    pub drawn: bool,
    /// Published (not a draft): the public record's URL answers.
    pub public: bool,
    pub open: bool,
    /// How many are in: applied (before the draw) or drawn (after).
    pub total: usize,
    /// Each group with its count, then those in no group.
    pub groups: Vec<GroupRow>,
    /// A group asks for union membership (counted by active membership).
    pub by_membership: bool,
    pub drawn_at: String,
    pub seed: Vec<String>,
    pub entrants_hash: Vec<String>,
    pub secret: Vec<String>,
    pub offered: usize,
    pub top: Vec<RankRow>,
}

fn chunks(hex: &str) -> Vec<String> {
    hex.as_bytes()
        .chunks(8)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

fn gender_zh(g: Gender) -> &'static str {
    match g {
        Gender::Male => "男",
        Gender::Female => "女",
    }
}

fn marital_zh(m: MaritalStatus) -> &'static str {
    match m {
        MaritalStatus::Single => "未婚",
        MaritalStatus::Married => "已婚",
        MaritalStatus::Divorced => "离异",
        MaritalStatus::Widowed => "丧偶",
    }
}

/// A group's condition in words.
fn condition(g: &PriorityGroup) -> String {
    let yes_no = |v: bool, yes: &str, no: &str| if v { yes.to_owned() } else { no.to_owned() };
    let mut parts = Vec::new();
    if let Some(v) = g.frontline {
        parts.push(yes_no(v, "一线职工", "非一线职工"));
    }
    if let Some(v) = g.union_member {
        parts.push(yes_no(v, "工会会员", "非工会会员"));
    }
    if let Some(v) = g.gender {
        parts.push(gender_zh(v).to_owned());
    }
    if let Some(v) = g.marital_status {
        parts.push(marital_zh(v).to_owned());
    }
    match (g.min_age, g.max_age) {
        (Some(a), Some(b)) => parts.push(format!("{a}–{b}岁")),
        (Some(a), None) => parts.push(format!("{a}岁及以上")),
        (None, Some(b)) => parts.push(format!("{b}岁及以下")),
        (None, None) => {}
    }
    parts.join("、")
}

/// The draw part of a draw event's page. Before the draw, each applicant's
/// group is worked out as the draw will (`draw::group_of` over the profile,
/// union membership by an active membership, ages in the draw's year);
/// eligibility is checked again at the draw, so the counts may still fall.
pub(super) async fn draw_view(
    state: &AppState,
    e: &Event,
    attendees: &[Attendee],
) -> Result<DrawView, PageError> {
    let plan = e.draft.draw.as_ref().expect("a draw event");
    let seal = e.seal.as_deref().cloned().unwrap_or_default();
    let drawn = seal.drawn_at.is_some();
    let groups = &plan.priority_groups;
    let by_membership = groups.iter().any(|g| g.union_member.is_some());
    let mut counts = vec![0usize; groups.len() + 1];
    let mut top = Vec::new();
    let mut total = 0;
    let mut secret = None;
    if drawn {
        let by_booking: HashMap<&str, &Attendee> = attendees
            .iter()
            .map(|a| (a.booking_id.as_str(), a))
            .collect();
        let entrants = state.store.entrants(e.id).await?;
        total = entrants.len();
        for a in &entrants {
            let i = a
                .group
                .as_ref()
                .and_then(|n| groups.iter().position(|g| &g.name == n))
                .unwrap_or(groups.len());
            counts[i] += 1;
        }
        for a in entrants.iter().take(TOP_RANKS) {
            let booking = a
                .booking
                .and_then(|b| by_booking.get(b.to_string().as_str()).copied());
            top.push(RankRow {
                rank: a.rank.unwrap_or(0),
                group: a.group.clone().unwrap_or_else(|| "（无）".into()),
                name: booking
                    .and_then(|b| b.display_name.clone())
                    .unwrap_or_else(|| "（未填姓名）".into()),
                phone: booking.map(|b| b.phone.clone()).unwrap_or_default(),
                status: booking.map(rank_status).unwrap_or_default(),
            });
        }
        secret = state.store.revealed_secret(e.id).await?;
    } else {
        let year = plan.draw_at.with_timezone(&SHANGHAI).year();
        for (_, user) in state.store.applicants(e.id).await? {
            let union_member = by_membership
                && state
                    .store
                    .user_memberships(user.id)
                    .await?
                    .iter()
                    .any(|m| m.status == MembershipStatus::Active);
            let p = &user.profile;
            let facts = Facts {
                frontline: p.frontline,
                union_member,
                gender: p.gender,
                marital_status: p.marital_status,
                birth_year: p.birth_year,
            };
            counts[group_of(groups, &facts, year).unwrap_or(groups.len())] += 1;
            total += 1;
        }
    }
    let mut rows: Vec<GroupRow> = groups
        .iter()
        .zip(&counts)
        .map(|(g, &count)| GroupRow {
            name: g.name.clone(),
            condition: condition(g),
            count,
        })
        .collect();
    rows.push(GroupRow {
        name: "未进入优先组".into(),
        condition: if groups.is_empty() {
            "本活动没有优先组，所有人一起抽签".into()
        } else {
            "排在各优先组之后".into()
        },
        count: counts[groups.len()],
    });
    Ok(DrawView {
        commitment: chunks(&seal.seed_commitment),
        draw_at: views::local_full(plan.draw_at),
        public_value: plan.public_value.clone(),
        drawn,
        public: e.draft.status != EventStatus::Draft,
        open: matches!(e.draft.status, EventStatus::Draft | EventStatus::Published),
        total,
        groups: rows,
        by_membership,
        drawn_at: seal.drawn_at.map(views::local_full).unwrap_or_default(),
        seed: chunks(seal.seed.as_deref().unwrap_or_default()),
        entrants_hash: chunks(seal.entrants_hash.as_deref().unwrap_or_default()),
        secret: chunks(secret.as_deref().unwrap_or_default()),
        offered: attendees
            .iter()
            .filter(|a| {
                matches!(
                    a.status,
                    BookingStatus::Offered | BookingStatus::Confirmed | BookingStatus::CheckedIn
                )
            })
            .count(),
        top,
    })
}

/// Where a drawn entrant stands now.
fn rank_status(a: &Attendee) -> String {
    match (a.status, a.waitlist_position) {
        (BookingStatus::Offered, _) => "中签，待确认".into(),
        (BookingStatus::Waitlisted, Some(p)) => format!("候补第{p}位"),
        (BookingStatus::Waitlisted, None) => "候补".into(),
        (BookingStatus::Confirmed, _) => "已确认".into(),
        (BookingStatus::CheckedIn, _) => "已签到".into(),
        (BookingStatus::Cancelled, _) => "已放弃或取消".into(),
        (BookingStatus::NoShow, _) => "未到场".into(),
    }
}

#[derive(Template)]
#[template(path = "console/draw_event.html")]
pub(super) struct DrawEventPage {
    nav: Nav,
    ev: EventPage,
    /// The edit form (taken out of `ev` for the shared fields' template).
    form: EventForm,
    draw: DrawView,
    /// The public value in its field: as typed after a refusal, else as saved.
    public_value: String,
}

/// A draw event's page: the event page's parts, with the draw's.
pub(super) fn draw_event_page(
    s: &Session,
    mut ev: EventPage,
    draw: DrawView,
    public_value: Option<String>,
    status: StatusCode,
) -> Response {
    let public_value = public_value.unwrap_or_else(|| draw.public_value.clone());
    page(
        status,
        &DrawEventPage {
            nav: Nav::of(s),
            form: std::mem::take(&mut ev.form),
            ev,
            draw,
            public_value,
        },
    )
}

async fn set_public_value(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let e = managed_event(&state, &s, &id).await?;
    let typed = form.get("public_value").unwrap_or("").trim().to_owned();
    let obj = JsonObject(Map::from_iter([("public_value".to_owned(), json!(typed))]));
    let edited = edit_event(&state, &s.user, e.id, &obj).await;
    let result = answered(edited, |err| refusal(err, &[]))?;
    let kept = Extra {
        public_value: Some(typed),
        ..Extra::none()
    };
    after_edit(&state, &s, &e, result, "public_value#draw", kept).await
}

/// The draw's public record as a file, for the manager to keep or publish;
/// the same JSON as `GET /v1/events/{id}/draw` (which answers only for a
/// published event).
async fn download(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let e = managed_event(&state, &s, &id).await?;
    let record = record_of(&state, &e).await?;
    let body = serde_json::to_vec_pretty(&record)
        .map_err(|err| ApiError::Internal(anyhow::anyhow!("draw record: {err}")))?;
    let mut r = (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response();
    attachment(&mut r, &format!("draw-{}.json", e.id));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_field_names_the_form_row_the_manager_filled() {
        // Rows 0 and 2 filled: the API's second group is form row 2.
        assert_eq!(
            form_field("priority_groups[1].max_age", &[0, 2]),
            ("group2_max_age".into(), "第3个优先组的最大年龄".into())
        );
        assert_eq!(
            form_field("draw_at", &[0, 2]),
            ("draw_at".into(), "抽签时间".into())
        );
    }

    #[test]
    fn a_groups_condition_reads_as_a_sentence() {
        let g = PriorityGroup {
            name: "青年女职工".into(),
            frontline: Some(true),
            union_member: None,
            gender: Some(Gender::Female),
            marital_status: None,
            min_age: Some(18),
            max_age: Some(35),
        };
        assert_eq!(condition(&g), "一线职工、女、18–35岁");
    }
}
