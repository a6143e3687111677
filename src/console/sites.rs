//! The sites in a manager's scope, and one site's page: its state now, the
//! weekly hours editor with the server's 14-day preview, status, closure
//! exceptions, amenities, and its history. Every save goes through
//! `manage::edit_site` with the version the page was drawn from, so someone
//! else's save in between is a 412 explained on the page, not lost.

use askama::Template;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::NaiveTime;
use serde_json::{Map, Value, json};

use super::session::{Form, Session, see_other};
use super::views::{self, amenity_zh, field_zh, holiday_zh, rfc3339_of_local, state_line};
use super::{Nav, PageError, page};
use crate::domain::coords::Crs;
use crate::domain::hours::{Hours, SHANGHAI};
use crate::domain::site::{Amenity, KindSet, Site, SiteId};
use crate::domain::user::Role;
use crate::domain::weekly::{self, DAYS, DAYS_ZH, WeekRow, Weekly};
use crate::error::ApiError;
use crate::http::AppState;
use crate::http::body::JsonObject;
use crate::http::manage::{edit_site, site_history, site_id};
use crate::http::search::{matches, parse_terms};
use crate::http::sites::state_now;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/sites", get(list))
        .route("/console/sites/{id}", get(site_page))
        .route("/console/sites/{id}/preview", get(preview_fragment))
        .route("/console/sites/{id}/hours", post(save_hours))
        .route("/console/sites/{id}/status", post(save_status))
        .route("/console/sites/{id}/closures", post(save_closures))
        .route("/console/sites/{id}/amenities", post(save_amenities))
        .route("/console/sites/{id}/history", get(history))
}

/// Rows the editor shows at least, and at most.
const MIN_ROWS: usize = 3;
const MAX_ROWS: usize = 7;
/// Time pairs per row.
const PAIRS: usize = 2;
/// Days the preview shows.
const PREVIEW_DAYS: u32 = 14;

pub struct SiteRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    pub address: String,
    pub state_class: &'static str,
    pub state: String,
}

#[derive(Template)]
#[template(path = "console/sites.html")]
struct SitesPage {
    nav: Nav,
    q: String,
    sites: Vec<SiteRow>,
    admin: bool,
    error: Option<String>,
}

/// The site as it is now (the store's record, as the API's site page), or 404.
async fn load(state: &AppState, id: SiteId) -> Result<Site, PageError> {
    state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no site with id {id}")).into())
}

pub fn site_row(state: &AppState, site: &Site) -> SiteRow {
    let now = state.auth.clock.now();
    let (state_class, line) = state_line(site, state_now(state, site, now));
    SiteRow {
        id: site.id.to_string(),
        name: site.draft.name.clone(),
        kind: site.draft.kind.chinese(),
        address: site.draft.address.clone(),
        state_class,
        state: line,
    }
}

async fn list(
    State(state): State<AppState>,
    s: Session,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let q = query.text("q").unwrap_or("").to_owned();
    let admin = s.user.role == Role::Admin;
    let mut error = None;
    let mut sites = Vec::new();
    if admin {
        if !q.is_empty() {
            match parse_terms(&q) {
                Ok(terms) => {
                    // The index finds them; each row is the store's record.
                    for (_, x) in matches(&state, &terms, None, KindSet::ALL, 100).await? {
                        if let Ok(site) = load(&state, x.id()).await {
                            sites.push(site_row(&state, &site));
                        }
                    }
                }
                Err(e) => error = Some(format!("搜索词有误：{e}（每个词至少2个字）")),
            }
        }
    } else {
        for id in &s.user.sites {
            if let Ok(site) = load(&state, *id).await {
                sites.push(site_row(&state, &site));
            }
        }
    }
    Ok(page(
        StatusCode::OK,
        &SitesPage {
            nav: Nav::of(&s),
            q,
            sites,
            admin,
            error,
        },
    ))
}

/// The site, if the session's user manages it (403 otherwise, as the API).
async fn managed(state: &AppState, s: &Session, id: &str) -> Result<Site, PageError> {
    let id = site_id(id)?;
    if !s.user.manages(id) {
        return Err(ApiError::forbidden("you do not manage this site").into());
    }
    load(state, id).await
}

// ---------------------------------------------------------------------------
// The hours editor
// ---------------------------------------------------------------------------

pub struct Chip {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

pub struct TimePair {
    pub j: usize,
    pub open: String,
    pub close: String,
}

pub struct RowView {
    pub i: usize,
    pub n: usize,
    pub days: Vec<Chip>,
    pub times: Vec<TimePair>,
}

pub struct Editor {
    pub rows: Vec<RowView>,
    pub row_count: usize,
    pub ph_off: bool,
    /// The raw `opening_hours` field.
    pub raw: String,
    /// What the page was drawn with: the raw string and the rows' string,
    /// to tell which of the two a person edited.
    pub raw_initial: String,
    pub rows_initial: String,
    /// The string is one the rows can show.
    pub simple: bool,
}

fn row_view(i: usize, r: &WeekRow) -> RowView {
    RowView {
        i,
        n: i + 1,
        days: (0..7)
            .map(|d| Chip {
                value: DAYS[d],
                label: DAYS_ZH[d],
                checked: r.days[d],
            })
            .collect(),
        times: (0..PAIRS)
            .map(|j| {
                let (open, close) = r.times.get(j).cloned().unwrap_or_default();
                TimePair {
                    j: j + 1,
                    open,
                    close,
                }
            })
            .collect(),
    }
}

fn editor_of(w: &Weekly, raw: String, raw_initial: String, rows_initial: String) -> Editor {
    let n = (w.rows.len() + 1).clamp(MIN_ROWS, MAX_ROWS);
    let empty = WeekRow::default();
    Editor {
        rows: (0..n)
            .map(|i| row_view(i, w.rows.get(i).unwrap_or(&empty)))
            .collect(),
        row_count: n,
        ph_off: w.ph_off,
        simple: Weekly::parse(&raw).is_some(),
        raw,
        raw_initial,
        rows_initial,
    }
}

/// The editor for a stored string.
fn editor_for(hours: &str) -> Editor {
    let w = Weekly::parse(hours).unwrap_or_default();
    let rows = w.to_opening_hours().unwrap_or_default();
    editor_of(&w, hours.to_owned(), hours.to_owned(), rows)
}

/// The rows of a submitted editor.
fn weekly_of(form: &Form) -> Weekly {
    let n = form
        .get("rows")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(MIN_ROWS)
        .min(MAX_ROWS);
    let rows = (0..n)
        .map(|i| {
            let mut r = WeekRow::default();
            for d in form.all(&format!("row{i}_day")) {
                if let Some(k) = DAYS.iter().position(|x| *x == d) {
                    r.days[k] = true;
                }
            }
            for j in 1..=PAIRS {
                let open = form.text(&format!("row{i}_open{j}"));
                let close = form.text(&format!("row{i}_close{j}"));
                if open.is_some() || close.is_some() {
                    r.times.push((
                        open.unwrap_or("").to_owned(),
                        close.unwrap_or("").to_owned(),
                    ));
                }
            }
            r
        })
        .collect();
    Weekly {
        rows,
        ph_off: form.get("ph_off").is_some(),
    }
}

/// The editor as submitted (shown again on an error, a conflict, a preview).
fn editor_from(form: &Form) -> Editor {
    let w = weekly_of(form);
    editor_of(
        &w,
        form.get("opening_hours").unwrap_or("").to_owned(),
        form.get("raw_initial").unwrap_or("").to_owned(),
        form.get("rows_initial").unwrap_or("").to_owned(),
    )
}

/// The `opening_hours` a submitted editor means: the rows when they were
/// changed, the raw field otherwise. Both changed differently is a question
/// only the person can answer. The message is for the page.
fn decide_hours(form: &Form) -> Result<String, String> {
    let raw = form.get("opening_hours").unwrap_or("").trim().to_owned();
    let rows = weekly_of(form).to_opening_hours();
    let rows_changed = rows
        .as_ref()
        .map_or(true, |r| Some(r.as_str()) != form.get("rows_initial"));
    let raw_changed = Some(raw.as_str()) != form.get("raw_initial").map(str::trim);
    match (rows_changed, rows) {
        (false, _) => Ok(raw),
        (true, Err(e)) => Err(format!("每周表格{e}")),
        (true, Ok(r)) if !raw_changed || r == raw => Ok(r),
        (true, Ok(_)) => Err("每周表格和专家模式都改动了，且不一致：请只修改其中一处".to_owned()),
    }
}

pub struct DayView {
    pub date: String,
    pub weekday: &'static str,
    pub hours: String,
    pub open: bool,
    pub tags: Vec<(&'static str, String)>,
}

pub struct PreviewView {
    pub days: Vec<DayView>,
    /// The expression does not parse: why.
    pub error: Option<String>,
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

/// The next 14 days of `hours` with the site's closure exceptions.
fn preview_of(state: &AppState, site: &Site, hours: &str) -> PreviewView {
    let calendar = state.index.calendar();
    let parsed = Hours::parse(hours, &calendar);
    let today = state.auth.clock.now().with_timezone(&SHANGHAI).date_naive();
    let days = weekly::preview(
        parsed.as_ref().ok(),
        &site.draft.closure,
        &calendar,
        today,
        PREVIEW_DAYS,
    );
    PreviewView {
        error: parsed.err().map(|e| e.message().to_owned()),
        days: days
            .into_iter()
            .map(|d| {
                let mut tags = Vec::new();
                if let Some(h) = &d.holiday {
                    tags.push(("holiday", format!("法定节假日·{}", holiday_zh(h))));
                }
                if d.makeup_workday {
                    tags.push(("makeup", "调休上班日".to_owned()));
                }
                if d.closure {
                    tags.push(("closure", "临时闭馆".to_owned()));
                }
                let hours = if d.open.is_empty() {
                    "休息".to_owned()
                } else {
                    d.open
                        .iter()
                        .map(|(a, b)| {
                            format!("{}–{}", hhmm(*a), b.map_or("24:00".to_owned(), hhmm))
                        })
                        .collect::<Vec<_>>()
                        .join("，")
                };
                DayView {
                    date: d.date.format("%-m月%-d日").to_string(),
                    weekday: weekly::date_weekday_zh(d.date),
                    open: !d.open.is_empty(),
                    hours,
                    tags,
                }
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// The site page
// ---------------------------------------------------------------------------

pub struct ClosureRow {
    pub index: usize,
    pub from: String,
    pub to: String,
    pub reason: String,
}

pub struct ChangeRow {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// Someone saved first: who, when and what, for the page that lost.
pub struct Conflict {
    pub section: &'static str,
    pub who: String,
    pub at: String,
    pub changes: Vec<ChangeRow>,
}

/// A refused field, next to its section.
pub struct FieldError {
    pub section: &'static str,
    pub field: String,
    pub message: String,
}

/// What a section's form shows: the site's values, or what was submitted.
pub struct StatusForm {
    pub status: String,
    pub reason: String,
    pub reopens_at: String,
}

pub struct ClosureForm {
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "console/site.html")]
pub struct SitePage {
    nav: Nav,
    id: String,
    name: String,
    kind: &'static str,
    address: String,
    status_label: &'static str,
    state_class: &'static str,
    state: String,
    version: i64,
    editor: Editor,
    preview: PreviewView,
    /// The preview shows unsaved hours.
    previewing: bool,
    status_form: StatusForm,
    closures: Vec<ClosureRow>,
    closure_form: ClosureForm,
    amenities: Vec<(&'static str, &'static str, bool)>,
    phone: String,
    notice: Option<String>,
    error: Option<FieldError>,
    conflict: Option<Conflict>,
}

impl SitePage {
    fn error_in(&self, section: &str) -> Option<&FieldError> {
        self.error.as_ref().filter(|e| e.section == section)
    }

    fn conflict_in(&self, section: &str) -> Option<&Conflict> {
        self.conflict.as_ref().filter(|c| c.section == section)
    }
}

fn site_page_of(state: &AppState, s: &Session, site: &Site) -> SitePage {
    let d = &site.draft;
    let row = site_row(state, site);
    let editor = editor_for(&d.opening_hours);
    SitePage {
        nav: Nav::of(s),
        id: row.id,
        name: row.name,
        kind: row.kind,
        address: row.address,
        status_label: views::status_zh(d.status),
        state_class: row.state_class,
        state: row.state,
        version: site.version,
        preview: preview_of(state, site, &d.opening_hours),
        previewing: false,
        editor,
        status_form: StatusForm {
            status: d.status.to_string(),
            reason: d.closure.reason.clone().unwrap_or_default(),
            reopens_at: d
                .closure
                .reopens_at
                .map(views::datetime_local)
                .unwrap_or_default(),
        },
        closures: d
            .closure
            .exceptions
            .iter()
            .enumerate()
            .map(|(index, c)| ClosureRow {
                index,
                from: views::local_full(c.from),
                to: views::local_full(c.to),
                reason: c.reason.clone().unwrap_or_default(),
            })
            .collect(),
        closure_form: ClosureForm {
            from: String::new(),
            to: String::new(),
            reason: String::new(),
        },
        amenities: Amenity::ALL
            .iter()
            .map(|a| (a.as_str(), amenity_zh(*a), d.amenities.contains(*a)))
            .collect(),
        phone: d.phone.clone().unwrap_or_default(),
        notice: None,
        error: None,
        conflict: None,
    }
}

async fn site_page(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let site = managed(&state, &s, &id).await?;
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let mut p = site_page_of(&state, &s, &site);
    p.notice = query.get("saved").map(|what| {
        match what {
            "hours" => "营业时间已保存。",
            "status" => "状态已保存。",
            "closures" => "临时闭馆已保存。",
            "amenities" => "设施和电话已保存。",
            _ => "已保存。",
        }
        .to_owned()
    });
    // The editor's "preview" button without JavaScript: the same page with
    // the submitted hours previewed, nothing saved.
    if query.get("preview").is_some() {
        p.editor = editor_from(&query);
        p.previewing = true;
        match decide_hours(&query) {
            Ok(h) => p.preview = preview_of(&state, &site, &h),
            Err(message) => {
                p.error = Some(FieldError {
                    section: "hours",
                    field: "opening_hours".into(),
                    message,
                })
            }
        }
    }
    Ok(page(StatusCode::OK, &p))
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewFragment {
    preview: PreviewView,
    /// The string the preview is of, and the rows' string (for the script).
    opening_hours: String,
    rows: String,
}

/// The preview alone, for the editor's script (no writes; a GET).
async fn preview_fragment(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let site = managed(&state, &s, &id).await?;
    let query = Form::parse(raw.unwrap_or_default().as_bytes());
    let rows = weekly_of(&query).to_opening_hours().unwrap_or_default();
    let (preview, opening_hours) = match decide_hours(&query) {
        Ok(h) => (preview_of(&state, &site, &h), h),
        Err(e) => (
            PreviewView {
                days: vec![],
                error: Some(e),
            },
            String::new(),
        ),
    };
    Ok(page(
        StatusCode::OK,
        &PreviewFragment {
            preview,
            opening_hours,
            rows,
        },
    ))
}

/// The section a field's form is in.
fn section_of(field: &str) -> &'static str {
    match field {
        "opening_hours" => "hours",
        "status" | "status_reason" | "reopens_at" => "status",
        "closures" => "closures",
        _ => "amenities",
    }
}

/// Save `obj` to the site as the version the form was drawn from; on a
/// refusal or a conflict, the page again with the person's input kept
/// (`keep` puts it back into the page).
async fn save(
    state: &AppState,
    s: &Session,
    id: &str,
    form: &Form,
    section: &'static str,
    obj: Result<JsonObject, FieldError>,
    keep: impl FnOnce(&mut SitePage, &Untouched),
) -> Result<Response, PageError> {
    s.check(form)?;
    let site = managed(state, s, id).await?;
    let version = form
        .get("version")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .ok_or_else(|| ApiError::param("version", "the form has no version; reload the page"))?;
    let sent = obj.as_ref().map(|o| o.0.clone()).unwrap_or_default();
    let outcome = match obj {
        Ok(obj) => edit_site(
            state,
            &s.user,
            site.id,
            |_| Ok(Some(version)),
            &obj,
            Crs::Wgs84,
        )
        .await
        .map(|_| ())
        .map_err(Err),
        Err(e) => Err(Ok(e)),
    };
    let refusal = match outcome {
        Ok(()) => {
            return Ok(see_other(&format!(
                "/console/sites/{}?saved={section}",
                site.id
            )));
        }
        Err(Ok(field_error)) => field_error,
        Err(Err(ApiError::PreconditionFailed(_))) => {
            // Someone saved first: show their change and the page as it is
            // now, with this person's input kept to reapply.
            let current = load(state, site.id).await?;
            let mut p = site_page_of(state, s, &current);
            let (c, untouched) = conflict(state, s, site.id, version, section, &sent).await?;
            p.conflict = Some(c);
            keep(&mut p, &untouched);
            return Ok(page(StatusCode::CONFLICT, &p));
        }
        Err(Err(e @ ApiError::Unprocessable { .. })) => {
            // The API's detail is English: name the field in Chinese instead.
            let p = e.problem();
            tracing::debug!(detail = %p.detail, "site form refused");
            let field = p.param.unwrap_or_default();
            FieldError {
                section: section_of(&field),
                message: format!("“{}”填写有误，请检查后重试。", field_zh(&field)),
                field,
            }
        }
        Err(Err(e)) => return Err(e.into()),
    };
    let mut p = site_page_of(state, s, &site);
    p.error = Some(refusal);
    keep(&mut p, &Untouched::default());
    Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p))
}

/// Fields someone else changed that this person sent back as they were
/// (they did not touch them): the page shows the other person's value for
/// those, not the stale one, so saving again does not undo that change.
#[derive(Default)]
pub struct Untouched(Vec<String>);

impl Untouched {
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|f| f == field)
    }
}

/// Two API values meaning the same: instants compared as instants, lists
/// as sets (amenities), null and blank alike.
fn same_value(a: &Value, b: &Value) -> bool {
    let instant = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            let mut x: Vec<String> = x.iter().map(Value::to_string).collect();
            let mut y: Vec<String> = y.iter().map(Value::to_string).collect();
            x.sort();
            y.sort();
            x == y
        }
        (Value::Null, Value::String(t)) | (Value::String(t), Value::Null) => t.is_empty(),
        _ => match (instant(a), instant(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The changes made after `version`, who made them and when; and which of
/// the fields `sent` this person left as they were.
async fn conflict(
    state: &AppState,
    s: &Session,
    id: SiteId,
    version: i64,
    section: &'static str,
    sent: &Map<String, Value>,
) -> Result<(Conflict, Untouched), PageError> {
    let items = site_history(state, &s.user, id).await?;
    let later: Vec<_> = items.iter().filter(|h| h.version > version).collect();
    let mut changes = Vec::new();
    let mut untouched = Untouched::default();
    for h in &later {
        if let Value::Object(m) = &h.changes {
            for (k, v) in m {
                let old = v.get("old").unwrap_or(&Value::Null);
                if sent.get(k).is_some_and(|mine| same_value(mine, old)) {
                    untouched.0.push(k.clone());
                }
                changes.push(ChangeRow {
                    field: field_zh(k).to_owned(),
                    old: views::value_text(v.get("old").unwrap_or(&Value::Null)),
                    new: views::value_text(v.get("new").unwrap_or(&Value::Null)),
                });
            }
        }
    }
    let last = later.last();
    let who = match last.and_then(|h| h.user_id) {
        Some(u) => who_is(state, u).await,
        None => "导入".to_owned(),
    };
    let c = Conflict {
        section,
        who,
        at: last.map(|h| views::local_full(h.at)).unwrap_or_default(),
        changes,
    };
    Ok((c, untouched))
}

/// A person as the console names them: the masked phone.
pub async fn who_is(state: &AppState, user: i64) -> String {
    match state.store.user(user).await {
        Ok(Some(u)) => u.phone.masked(),
        _ => format!("用户 {user}"),
    }
}

fn object(m: Map<String, Value>) -> JsonObject {
    JsonObject(m)
}

async fn save_hours(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    let obj = decide_hours(&form)
        .map(|h| object(Map::from_iter([("opening_hours".to_owned(), json!(h))])))
        .map_err(|message| FieldError {
            section: "hours",
            field: "opening_hours".into(),
            message,
        });
    save(&state, &s, &id, &form, "hours", obj, |p, untouched| {
        if untouched.has("opening_hours") {
            return;
        }
        p.editor = editor_from(&form);
        p.editor.raw_initial = p.editor.raw.clone();
        if let Ok(h) = decide_hours(&form) {
            p.editor.raw = h;
        }
    })
    .await
}

/// A local time field as the API's value: blank is null.
fn time_field(form: &Form, name: &'static str) -> Result<Value, FieldError> {
    match form.text(name) {
        None => Ok(Value::Null),
        Some(v) => rfc3339_of_local(v).map(Value::String).ok_or(FieldError {
            section: section_of(name),
            field: name.into(),
            message: format!("{}：请按“年-月-日 时:分”填写", field_zh(name)),
        }),
    }
}

async fn save_status(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    let obj = time_field(&form, "reopens_at").map(|reopens_at| {
        let mut m = Map::new();
        m.insert(
            "status".into(),
            json!(form.get("status").unwrap_or("").trim()),
        );
        m.insert(
            "status_reason".into(),
            form.text("status_reason").map_or(Value::Null, |r| json!(r)),
        );
        m.insert("reopens_at".into(), reopens_at);
        object(m)
    });
    save(&state, &s, &id, &form, "status", obj, |p, untouched| {
        let mine = |f: &str| form.get(f).unwrap_or("").to_owned();
        if !untouched.has("status") {
            p.status_form.status = mine("status");
        }
        if !untouched.has("status_reason") {
            p.status_form.reason = mine("status_reason");
        }
        if !untouched.has("reopens_at") {
            p.status_form.reopens_at = mine("reopens_at");
        }
    })
    .await
}

async fn save_closures(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    let site = managed(&state, &s, &id).await?;
    let mut list: Vec<Value> = site
        .draft
        .closure
        .exceptions
        .iter()
        .map(|c| json!({"from": c.from, "to": c.to, "reason": c.reason}))
        .collect();
    let obj = if let Some(i) = form.get("remove").and_then(|v| v.parse::<usize>().ok()) {
        if i < list.len() {
            list.remove(i);
        }
        Ok(list)
    } else {
        let from = time_field(&form, "closure_from");
        let to = time_field(&form, "closure_to");
        match (from, to) {
            (Ok(from), Ok(to)) => {
                list.push(json!({"from": from, "to": to, "reason": form.text("closure_reason")}));
                Ok(list)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }
    .map(|list| {
        object(Map::from_iter([(
            "closures".to_owned(),
            Value::Array(list),
        )]))
    });
    save(&state, &s, &id, &form, "closures", obj, |p, _| {
        p.closure_form = ClosureForm {
            from: form.get("closure_from").unwrap_or("").to_owned(),
            to: form.get("closure_to").unwrap_or("").to_owned(),
            reason: form.get("closure_reason").unwrap_or("").to_owned(),
        };
    })
    .await
}

async fn save_amenities(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, PageError> {
    let mut m = Map::new();
    m.insert("amenities".into(), json!(form.all("amenities")));
    m.insert(
        "phone".into(),
        form.text("phone").map_or(Value::Null, |p| json!(p)),
    );
    save(
        &state,
        &s,
        &id,
        &form,
        "amenities",
        Ok(object(m)),
        |p, untouched| {
            if !untouched.has("amenities") {
                let chosen = form.all("amenities");
                for a in &mut p.amenities {
                    a.2 = chosen.contains(&a.0);
                }
            }
            if !untouched.has("phone") {
                p.phone = form.get("phone").unwrap_or("").to_owned();
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------

pub struct HistoryRow {
    pub at: String,
    pub who: String,
    pub action: &'static str,
    pub changes: Vec<ChangeRow>,
}

#[derive(Template)]
#[template(path = "console/history.html")]
struct HistoryPage {
    nav: Nav,
    id: String,
    name: String,
    items: Vec<HistoryRow>,
}

async fn history(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let site = managed(&state, &s, &id).await?;
    let mut items = Vec::new();
    for h in site_history(&state, &s.user, site.id)
        .await?
        .into_iter()
        .rev()
    {
        let who = match h.user_id {
            Some(u) => who_is(&state, u).await,
            None => "导入".to_owned(),
        };
        let changes = match &h.changes {
            Value::Object(m) if h.action != "create" => m
                .iter()
                .map(|(k, v)| ChangeRow {
                    field: field_zh(k).to_owned(),
                    old: views::value_text(v.get("old").unwrap_or(&Value::Null)),
                    new: views::value_text(v.get("new").unwrap_or(&Value::Null)),
                })
                .collect(),
            _ => vec![],
        };
        items.push(HistoryRow {
            at: views::local_full(h.at),
            who,
            action: match h.action.as_str() {
                "create" => "创建",
                "retire" => "撤销",
                _ => "修改",
            },
            changes,
        });
    }
    Ok(page(
        StatusCode::OK,
        &HistoryPage {
            nav: Nav::of(&s),
            id: site.id.to_string(),
            name: site.draft.name,
            items,
        },
    ))
}
