//! Events at a manager's sites: create, edit, publish, cancel; bookings,
//! waitlist and quotas; the attendees' CSV; check-in by code (typed, pasted,
//! or read by the phone's camera where the browser has `BarcodeDetector`).
//! Each form becomes the JSON the API takes and goes to the API's own
//! function (`events::new_event`, `events::edit_event`,
//! `checkins::check_in_code`, `attendees::attendee_list`).

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::draws::{self, GroupForm};
use super::session::{Form, Session, see_other};
use super::views::{self, field_label, rfc3339_of_local};
use super::{Nav, PageError, attachment, page};
use crate::domain::coords::Crs;
use crate::domain::event::{BookingStatus, Event, EventId, EventStatus};
use crate::domain::site::SiteId;
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::attendees::{Attendee, attendee_list, csv_response};
use crate::http::body::JsonObject;
use crate::http::checkins::check_in_code;
use crate::http::events::{edit_event, event_id, load_event, new_event};
use crate::http::manage::site_id;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/sites/{id}/events", get(site_events).post(create))
        .route("/console/events/{id}", get(event_page).post(edit))
        .route("/console/events/{id}/status", post(set_status))
        .route("/console/events/{id}/checkin", post(checkin))
        .route("/console/events/{id}/attendees.csv", get(export))
}

pub struct EventRow {
    pub id: String,
    pub title: String,
    pub when: String,
    pub status: String,
    pub seats: String,
}

fn status_zh(s: EventStatus) -> &'static str {
    match s {
        EventStatus::Draft => "草稿（未发布）",
        EventStatus::Published => "已发布",
        EventStatus::Cancelled => "已取消",
        EventStatus::Finished => "已结束",
    }
}

fn kind_zh(k: crate::domain::event::EventKind) -> &'static str {
    use crate::domain::event::EventKind;
    match k {
        EventKind::Training => "技能培训",
        EventKind::Recuperation => "疗休养",
        EventKind::Matchmaking => "交友联谊",
    }
}

fn event_row(e: &Event) -> EventRow {
    EventRow {
        id: e.id.to_string(),
        title: e.draft.title.clone(),
        when: views::local_span(e.draft.starts_at, e.draft.ends_at),
        status: match &e.draft.draw {
            Some(_) if e.drawn_at().is_none() => {
                format!("{} · 抽签活动，待抽签", status_zh(e.draft.status))
            }
            Some(_) => format!("{} · 抽签活动，已抽签", status_zh(e.draft.status)),
            None => status_zh(e.draft.status).to_owned(),
        },
        seats: format!("{} / {}", e.held, e.draft.capacity),
    }
}

/// The fields of the event form, as typed (shown again on an error).
#[derive(Default)]
pub struct EventForm {
    pub kind: String,
    pub title: String,
    pub description: String,
    pub starts_at: String,
    pub ends_at: String,
    pub capacity: String,
    pub booking_opens_at: String,
    pub booking_closes_at: String,
    pub cancel_deadline: String,
    pub waitlist: bool,
    pub publish: bool,
    /// (attribute, value, seats) rows.
    pub quotas: Vec<(String, String, String)>,
    /// Who may book: the checked rules, and the ages as typed.
    pub members_only: bool,
    pub frontline_only: bool,
    pub single_only: bool,
    pub min_age: String,
    pub max_age: String,
    /// A draw's time, priority group rows and public value, as typed.
    pub draw_at: String,
    pub groups: Vec<GroupForm>,
    pub public_value: String,
    /// The form field a refusal is about (marked `aria-invalid`), if one.
    pub invalid: Option<String>,
}

const QUOTA_ROWS: usize = 2;
/// A draw event's form also has `draw_at`.
const TIMES: [&str; 6] = [
    "starts_at",
    "ends_at",
    "booking_opens_at",
    "booking_closes_at",
    "cancel_deadline",
    "draw_at",
];

impl EventForm {
    pub(super) fn of_form(f: &Form) -> EventForm {
        let g = |n: &str| f.get(n).unwrap_or("").to_owned();
        EventForm {
            kind: g("kind"),
            title: g("title"),
            description: g("description"),
            starts_at: g("starts_at"),
            ends_at: g("ends_at"),
            capacity: g("capacity"),
            booking_opens_at: g("booking_opens_at"),
            booking_closes_at: g("booking_closes_at"),
            cancel_deadline: g("cancel_deadline"),
            waitlist: f.get("waitlist").is_some(),
            publish: f.get("publish").is_some(),
            quotas: (0..QUOTA_ROWS)
                .map(|i| {
                    (
                        g(&format!("quota{i}_attribute")),
                        g(&format!("quota{i}_value")),
                        g(&format!("quota{i}_seats")),
                    )
                })
                .collect(),
            members_only: f.get("union_members_only").is_some(),
            frontline_only: f.get("frontline_only").is_some(),
            single_only: f.get("single_only").is_some(),
            min_age: g("min_age"),
            max_age: g("max_age"),
            draw_at: g("draw_at"),
            groups: GroupForm::rows_of(f),
            public_value: g("public_value"),
            invalid: None,
        }
    }

    fn of_event(e: &Event) -> EventForm {
        let d = &e.draft;
        EventForm {
            kind: d.kind.as_str().to_owned(),
            title: d.title.clone(),
            description: d.description.clone(),
            starts_at: views::datetime_local(d.starts_at),
            ends_at: views::datetime_local(d.ends_at),
            capacity: d.capacity.to_string(),
            booking_opens_at: views::datetime_local(d.booking_opens_at),
            booking_closes_at: views::datetime_local(d.booking_closes_at),
            cancel_deadline: views::datetime_local(d.cancel_deadline),
            waitlist: d.waitlist,
            publish: d.status == EventStatus::Published,
            quotas: vec![],
            draw_at: d
                .draw
                .as_ref()
                .map(|p| views::datetime_local(p.draw_at))
                .unwrap_or_default(),
            public_value: d
                .draw
                .as_ref()
                .map(|p| p.public_value.clone())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    /// Is the refusal about this form field?
    pub fn bad(&self, field: &str) -> bool {
        self.invalid.as_deref() == Some(field)
    }

    /// Is the refusal about this field of priority group row `i`?
    pub fn bad_group(&self, i: impl std::fmt::Display, part: &str) -> bool {
        self.bad(&format!("group{i}_{part}"))
    }

    pub(super) fn blank() -> EventForm {
        EventForm {
            kind: "training".into(),
            waitlist: true,
            publish: true,
            quotas: vec![Default::default(); QUOTA_ROWS],
            groups: vec![Default::default(); draws::GROUP_ROWS],
            ..Default::default()
        }
    }
}

/// A refusal to show on a form: the sentence, and the form field it is about
/// (to mark it), if one.
pub(super) struct Bad {
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl Bad {
    /// `message` about form field `field`, named in Chinese before it.
    pub(super) fn at(field: &str, message: &str) -> Bad {
        Bad {
            message: format!("{}：{message}", field_label(field)),
            field: Some(field.to_owned()),
        }
    }

    /// A sentence about no one field.
    pub(super) fn says(message: impl Into<String>) -> Bad {
        Bad {
            field: None,
            message: message.into(),
        }
    }
}

/// A whole number typed in `v`, or `refused`.
pub(super) fn int_of(v: &str, refused: impl FnOnce() -> Bad) -> Result<i64, Bad> {
    v.parse().map_err(|_| refused())
}

/// The form as the API's JSON: times from China time to RFC 3339, numbers as
/// numbers; blank optional fields are left out (the API's defaults apply).
/// A refusal names the field in Chinese.
pub(super) fn event_json(f: &Form, creating: bool) -> Result<JsonObject, Bad> {
    let mut m = Map::new();
    let text = |m: &mut Map<String, Value>, k: &str| {
        if let Some(v) = f.get(k) {
            m.insert(k.to_owned(), json!(v.trim()));
        }
    };
    text(&mut m, "title");
    text(&mut m, "description");
    for k in TIMES {
        if let Some(v) = f.text(k) {
            let t = rfc3339_of_local(v)
                .filter(|t| t.len() > 10)
                .ok_or_else(|| Bad::at(k, "请按“年-月-日 时:分”填写"))?;
            m.insert(k.to_owned(), json!(t));
        }
    }
    if let Some(c) = f.text("capacity") {
        let n = int_of(c, || Bad::at("capacity", "请填写整数"))?;
        m.insert("capacity".into(), json!(n));
    }
    m.insert("waitlist".into(), json!(f.get("waitlist").is_some()));
    if creating {
        text(&mut m, "kind");
        m.insert(
            "status".into(),
            json!(if f.get("publish").is_some() {
                "published"
            } else {
                "draft"
            }),
        );
        let mut quotas = Vec::new();
        for i in 0..QUOTA_ROWS {
            let (Some(a), Some(v), Some(s)) = (
                f.text(&format!("quota{i}_attribute")),
                f.text(&format!("quota{i}_value")),
                f.text(&format!("quota{i}_seats")),
            ) else {
                continue;
            };
            let seats = int_of(s, || Bad::at("quotas", "名额请填写整数"))?;
            quotas.push(json!({"attribute": a, "value": v, "seats": seats}));
        }
        if !quotas.is_empty() {
            m.insert("quotas".into(), Value::Array(quotas));
        }
        let mut rules = Map::new();
        for k in ["union_members_only", "frontline_only", "single_only"] {
            if f.get(k).is_some() {
                rules.insert(k.into(), json!(true));
            }
        }
        for k in ["min_age", "max_age"] {
            if let Some(v) = f.text(k) {
                let n = int_of(v, || Bad::at(k, "请填写整数"))?;
                rules.insert(k.into(), json!(n));
            }
        }
        if !rules.is_empty() {
            m.insert("eligibility".into(), Value::Object(rules));
        }
    }
    Ok(JsonObject(m))
}

/// What a site's page with a new event's form shows: the site, the form as
/// typed and its refusal. The pages ([`EventsPage`], the draw's form) add
/// their own parts and read these through `Deref` ([`site_form_page`]).
pub(super) struct SiteForm {
    pub(super) nav: Nav,
    pub(super) site_id: String,
    pub(super) site_name: String,
    pub(super) form: EventForm,
    pub(super) error: Option<String>,
}

/// A page of a [`SiteForm`] (its field `head`) and its own parts.
macro_rules! site_form_page {
    ($page:ty) => {
        impl std::ops::Deref for $page {
            type Target = $crate::console::events::SiteForm;
            fn deref(&self) -> &Self::Target {
                &self.head
            }
        }
    };
}
pub(super) use site_form_page;

/// A site's page with a new event's form for site `id` (which `s` must
/// manage), with the refusal if there is one: `part` makes the page of its
/// head.
pub(super) async fn form_page<T: Template>(
    state: &AppState,
    s: &Session,
    id: SiteId,
    mut form: EventForm,
    bad: Option<Bad>,
    part: impl AsyncFnOnce(SiteForm) -> Result<T, PageError>,
) -> Result<Response, PageError> {
    if !s.user.manages(id) {
        return Err(ApiError::forbidden("you do not manage this site").into());
    }
    let site = state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site with id {id}")))?;
    let (status, error) = match bad {
        Some(b) => {
            form.invalid = b.field;
            (StatusCode::UNPROCESSABLE_ENTITY, Some(b.message))
        }
        None => (StatusCode::OK, None),
    };
    let head = SiteForm {
        nav: Nav::of(s),
        site_id: id.to_string(),
        site_name: site.draft.name,
        form,
        error,
    };
    Ok(page(status, &part(head).await?))
}

#[derive(Template)]
#[template(path = "console/events.html")]
struct EventsPage {
    head: SiteForm,
    events: Vec<EventRow>,
}

site_form_page!(EventsPage);

async fn events_page(
    state: &AppState,
    s: &Session,
    id: SiteId,
    form: EventForm,
    bad: Option<Bad>,
) -> Result<Response, PageError> {
    form_page(state, s, id, form, bad, async |head| {
        let events = state.store.site_events(id).await?;
        let events = events.iter().map(event_row).collect();
        Ok(EventsPage { head, events })
    })
    .await
}

async fn site_events(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    events_page(&state, &s, site_id(&id)?, EventForm::blank(), None).await
}

/// An API refusal a form can show, worded by `about` when it names a
/// parameter; the error page for what a form cannot fix.
pub(super) fn refusal_by(e: ApiError, about: impl FnOnce(&str) -> Bad) -> Result<Bad, PageError> {
    match &e {
        ApiError::Unprocessable { .. } | ApiError::Conflict(_) | ApiError::InvalidParam { .. } => {
            // The API's detail is English: name the field in Chinese instead.
            let p = e.problem();
            tracing::debug!(detail = %p.detail, "console form refused");
            Ok(match p.param.as_deref() {
                Some(param) if !param.is_empty() => about(param),
                _ => Bad::says("无法保存：与活动的当前状态冲突，请刷新页面后重试。"),
            })
        }
        _ => Err(e.into()),
    }
}

/// An API refusal in the person's words, or the error page for what a form
/// cannot fix.
pub(super) fn refusal(e: ApiError) -> Result<Bad, PageError> {
    refusal_by(e, |param| {
        Bad::says(format!("“{}”填写有误，请检查后重试。", field_label(param)))
    })
}

/// The API's answer to a form: the event, or the refusal to show.
pub(super) fn answered(
    r: Result<Event, ApiError>,
    refused: impl FnOnce(ApiError) -> Result<Bad, PageError>,
) -> Result<Result<Event, Bad>, PageError> {
    match r {
        Ok(e) => Ok(Ok(e)),
        Err(e) => refused(e).map(Err),
    }
}

/// A new event at `site` from its form's JSON: to the event's page, or the
/// refusal for the form to show.
pub(super) async fn created(
    state: &AppState,
    s: &Session,
    site: SiteId,
    obj: Result<JsonObject, Bad>,
    refused: impl FnOnce(ApiError) -> Result<Bad, PageError>,
) -> Result<Result<Response, Bad>, PageError> {
    let mut obj = match obj {
        Ok(obj) => obj,
        Err(bad) => return Ok(Err(bad)),
    };
    obj.0.insert("site_id".into(), json!(site.to_string()));
    let e = answered(
        new_event(state, &s.user, &obj, Crs::Wgs84, None)
            .await
            .map(|(e, _)| e),
        refused,
    )?;
    Ok(e.map(|e| see_other(&format!("/console/events/{}?saved=created", e.id))))
}

async fn create(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let site = site_id(&id)?;
    match created(&state, &s, site, event_json(&form, true), refusal).await? {
        Ok(to) => Ok(to),
        Err(bad) => events_page(&state, &s, site, EventForm::of_form(&form), Some(bad)).await,
    }
}

pub struct Counts {
    pub confirmed: usize,
    pub checked_in: usize,
    pub waitlisted: usize,
    pub offered: usize,
    pub cancelled: usize,
    pub no_show: usize,
}

pub struct QuotaRow {
    pub label: String,
    pub taken: usize,
    pub seats: u32,
}

pub struct AttendeeRow {
    pub name: String,
    pub phone: String,
    pub status: &'static str,
    pub quota: String,
    pub position: String,
    pub checked_in_at: String,
}

fn booking_zh(s: BookingStatus) -> &'static str {
    match s {
        BookingStatus::Confirmed => "已确认",
        BookingStatus::Waitlisted => "候补",
        BookingStatus::Offered => "待接受空位",
        BookingStatus::Cancelled => "已取消",
        BookingStatus::CheckedIn => "已签到",
        BookingStatus::NoShow => "未到场",
    }
}

#[derive(Template)]
#[template(path = "console/event.html")]
pub(super) struct EventPage {
    pub(super) nav: Nav,
    pub(super) id: String,
    pub(super) site_id: String,
    pub(super) title: String,
    pub(super) kind: &'static str,
    pub(super) status: &'static str,
    pub(super) is_draft: bool,
    pub(super) is_cancelled: bool,
    pub(super) when: String,
    pub(super) capacity: u32,
    pub(super) seats_left: u32,
    pub(super) form: EventForm,
    pub(super) counts: Counts,
    pub(super) quotas: Vec<QuotaRow>,
    pub(super) attendees: Vec<AttendeeRow>,
    pub(super) notice: Option<String>,
    pub(super) error: Option<String>,
    pub(super) checkin_code: String,
}

pub(super) struct Extra {
    pub(super) notice: Option<String>,
    pub(super) error: Option<String>,
    pub(super) form: Option<EventForm>,
    pub(super) code: String,
    pub(super) status: StatusCode,
    /// The form field the error is about (marked `aria-invalid`), if one.
    pub(super) invalid: Option<String>,
    /// The public value as typed, shown again with its refusal.
    pub(super) public_value: Option<String>,
}

impl Extra {
    pub(super) fn none() -> Extra {
        Extra {
            notice: None,
            error: None,
            form: None,
            code: String::new(),
            status: StatusCode::OK,
            invalid: None,
            public_value: None,
        }
    }

    /// These, with `bad` told and its field marked.
    pub(super) fn refused(self, bad: Bad) -> Extra {
        Extra {
            error: Some(bad.message),
            invalid: bad.field,
            status: StatusCode::UNPROCESSABLE_ENTITY,
            ..self
        }
    }
}

pub(super) async fn render_event(
    state: &AppState,
    s: &Session,
    e: &Event,
    extra: Extra,
) -> Result<Response, PageError> {
    let items: Vec<Attendee> = attendee_list(state, &s.user, e.id).await?;
    let n = |st: BookingStatus| items.iter().filter(|a| a.status == st).count();
    let counts = Counts {
        confirmed: n(BookingStatus::Confirmed),
        checked_in: n(BookingStatus::CheckedIn),
        waitlisted: n(BookingStatus::Waitlisted),
        offered: n(BookingStatus::Offered),
        cancelled: n(BookingStatus::Cancelled),
        no_show: n(BookingStatus::NoShow),
    };
    let holds = |a: &&Attendee| {
        matches!(
            a.status,
            BookingStatus::Confirmed | BookingStatus::CheckedIn | BookingStatus::Offered
        )
    };
    let quotas = e
        .draft
        .quotas
        .iter()
        .map(|q| QuotaRow {
            label: q.key(),
            taken: items
                .iter()
                .filter(holds)
                .filter(|a| a.quota.as_deref() == Some(q.key().as_str()))
                .count(),
            seats: q.seats,
        })
        .collect();
    let attendees = items
        .iter()
        .map(|a| AttendeeRow {
            name: a
                .display_name
                .clone()
                .unwrap_or_else(|| "（未填姓名）".into()),
            phone: a.phone.clone(),
            status: booking_zh(a.status),
            quota: a.quota.clone().unwrap_or_default(),
            position: a
                .waitlist_position
                .map(|p| p.to_string())
                .unwrap_or_default(),
            checked_in_at: a.checked_in_at.map(views::local).unwrap_or_default(),
        })
        .collect();
    let d = &e.draft;
    let mut form = extra.form.unwrap_or_else(|| EventForm::of_event(e));
    form.invalid = extra.invalid;
    let p = EventPage {
        nav: Nav::of(s),
        id: e.id.to_string(),
        site_id: d.site_id.map(|x| x.to_string()).unwrap_or_default(),
        title: d.title.clone(),
        kind: kind_zh(d.kind),
        status: status_zh(d.status),
        is_draft: d.status == EventStatus::Draft,
        is_cancelled: matches!(d.status, EventStatus::Cancelled | EventStatus::Finished),
        when: event_row(e).when,
        capacity: d.capacity,
        seats_left: d.capacity.saturating_sub(e.held),
        form,
        counts,
        quotas,
        attendees,
        notice: extra.notice,
        error: extra.error,
        checkin_code: extra.code,
    };
    if e.draft.draw.is_some() {
        let draw = draws::draw_view(state, e, &items).await?;
        let public_value = extra.public_value;
        return Ok(draws::draw_event_page(
            s,
            p,
            draw,
            public_value,
            extra.status,
        ));
    }
    Ok(page(extra.status, &p))
}

pub(super) async fn managed_event(
    state: &AppState,
    s: &Session,
    id: &str,
) -> Result<Event, PageError> {
    let e = load_event(state, event_id(id)?).await?;
    if !e.managed_by(&s.user) {
        return Err(ApiError::forbidden("only the event's site managers manage it").into());
    }
    Ok(e)
}

async fn event_page(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let e = managed_event(&state, &s, &id).await?;
    let q = Form::parse(raw.unwrap_or_default().as_bytes());
    let mut extra = Extra::none();
    extra.notice = q.get("saved").map(|w| {
        match w {
            "created" => "活动已创建。",
            "published" => "活动已发布，职工现在可以报名。",
            "cancelled" => "活动已取消，所有报名者都会收到通知。",
            "public_value" => "公开随机值已保存，抽签时将用它计算种子。",
            _ => "已保存。",
        }
        .to_owned()
    });
    render_event(&state, &s, &e, extra).await
}

async fn edit(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let e = managed_event(&state, &s, &id).await?;
    let result = match event_json(&form, false) {
        Ok(mut obj) => {
            unchanged_times_left_out(&mut obj, &form, &e);
            answered(edit_event(&state, &s.user, e.id, &obj).await, refusal)?
        }
        Err(bad) => Err(Bad::says(bad.message)),
    };
    let kept = Extra {
        form: Some(EventForm::of_form(&form)),
        ..Extra::none()
    };
    after_edit(&state, &s, &e, result, "edited", kept).await
}

/// A time the form shows to the minute and sends back as it was is left out
/// of the edit: the event keeps its exact time (seconds included), and a
/// draw's window, fixed once anyone has applied, is not "changed" by it.
fn unchanged_times_left_out(obj: &mut JsonObject, f: &Form, e: &Event) {
    let d = &e.draft;
    let current = [
        ("starts_at", Some(d.starts_at)),
        ("ends_at", Some(d.ends_at)),
        ("booking_opens_at", Some(d.booking_opens_at)),
        ("booking_closes_at", Some(d.booking_closes_at)),
        ("cancel_deadline", Some(d.cancel_deadline)),
        ("draw_at", d.draw.as_ref().map(|p| p.draw_at)),
    ];
    for (k, t) in current {
        if let (Some(t), Some(sent)) = (t, f.text(k))
            && sent == views::datetime_local(t)
        {
            obj.0.remove(k);
        }
    }
}

/// After an edit: to the event's page saying `saved` (and the anchor, if
/// any), or the page again with the refusal and what was typed (`kept`).
pub(super) async fn after_edit(
    state: &AppState,
    s: &Session,
    e: &Event,
    result: Result<Event, Bad>,
    saved: &str,
    kept: Extra,
) -> Result<Response, PageError> {
    match result {
        Ok(e) => Ok(see_other(&format!(
            "/console/events/{}?saved={saved}",
            e.id
        ))),
        Err(bad) => render_event(state, s, e, kept.refused(bad)).await,
    }
}

async fn set_status(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let e = managed_event(&state, &s, &id).await?;
    let status = form.get("status").unwrap_or("");
    if status == "cancelled" && form.get("confirm").is_none() {
        let bad = Bad::says("取消活动前请勾选“确认取消”。");
        return render_event(&state, &s, &e, Extra::none().refused(bad)).await;
    }
    let obj = JsonObject(Map::from_iter([("status".to_owned(), json!(status))]));
    let result = answered(edit_event(&state, &s.user, e.id, &obj).await, refusal)?;
    after_edit(&state, &s, &e, result, status, Extra::none()).await
}

async fn checkin(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    let e = managed_event(&state, &s, &id).await?;
    let code = form.get("code").unwrap_or("").trim().to_owned();
    let obj = JsonObject(Map::from_iter([
        ("event_id".to_owned(), json!(e.id.to_string())),
        ("code".to_owned(), json!(code)),
    ]));
    let mut extra = Extra::none();
    match check_in_code(&state, &s.user, &obj).await {
        Ok(r) if r.already_checked_in => {
            extra.notice = Some(format!(
                "此人已于 {} 签到过，无需重复签到。",
                views::local(r.checked_in_at)
            ));
        }
        Ok(r) => {
            extra.notice = Some(format!("签到成功（{}）。", views::local(r.checked_in_at)));
        }
        Err(e) => {
            let message = match &e {
                ApiError::Unprocessable { param, .. } if param == "code" => {
                    "签到码无效，或不是本活动的签到码。".to_owned()
                }
                ApiError::Conflict(_) => {
                    "此报名没有占用名额（候补或已取消），不能签到。".to_owned()
                }
                _ => refusal(e)?.message,
            };
            extra = Extra { code, ..extra }.refused(Bad::says(message));
        }
    }
    render_event(&state, &s, &e, extra).await
}

async fn export(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: EventId = event_id(&id)?;
    let items = attendee_list(&state, &s.user, id).await?;
    let mut r = csv_response(&items)?;
    attachment(&mut r, &format!("attendees-{id}.csv"));
    Ok(r)
}
