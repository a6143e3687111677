//! Admins' pages: assigning managers to sites, and importing a GeoJSON file
//! after a preview of what it would change (a dry run made by
//! `geodata::plan`, then the store's one all-or-nothing import, applied only
//! while the registry still matches the preview). Searching every site is the
//! site list (`/console/sites?q=`).

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;

use super::session::{Form, Session, same_origin};
use super::sites::{SiteRow, site_row};
use super::views::{field_zh, value_text};
use super::{Nav, PageError, page};
use crate::domain::coords::Crs;
use crate::domain::site::SiteId;
use crate::domain::user::{Phone, Role};
use crate::error::ApiError;
use crate::geodata::geojson::parse_collection;
use crate::geodata::plan::{ImportPlan, plan, unknown_union};
use crate::http::AppState;

/// The largest GeoJSON file the console takes (the command line has no limit).
const MAX_IMPORT: usize = 32 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/admin/managers", get(managers).post(assign))
        .route(
            "/console/admin/import",
            get(import_page)
                .post(import_preview)
                .layer(DefaultBodyLimit::max(MAX_IMPORT + 64 * 1024)),
        )
        .route(
            "/console/admin/import/apply",
            axum::routing::post(import_apply).layer(DefaultBodyLimit::max(2 * MAX_IMPORT)),
        )
}

fn need_admin(s: &Session) -> Result<(), PageError> {
    if s.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only an admin may do this").into())
    }
}

#[derive(Template)]
#[template(path = "console/managers.html")]
struct ManagersPage {
    nav: Nav,
    phone: String,
    sites_field: String,
    /// The person looked up or changed: role and sites.
    person: Option<(String, &'static str, Vec<SiteRow>)>,
    notice: Option<String>,
    error: Option<String>,
}

fn role_zh(r: Role) -> &'static str {
    match r {
        Role::Admin => "管理员",
        Role::SiteManager => "站点管理员",
        Role::UnionAdmin => "工会管理员",
        Role::Worker => "职工",
    }
}

async fn person(
    state: &AppState,
    phone: &Phone,
) -> Result<Option<(String, &'static str, Vec<SiteRow>)>, PageError> {
    let Some(u) = state.store.user_by_phone(phone).await? else {
        return Ok(None);
    };
    let mut rows = Vec::new();
    for id in &u.sites {
        if let Some(site) = state.store.get_site(*id).await? {
            rows.push(site_row(state, &site));
        }
    }
    Ok(Some((phone.masked(), role_zh(u.role), rows)))
}

async fn managers(
    State(state): State<AppState>,
    s: Session,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    need_admin(&s)?;
    let q = Form::parse(raw.unwrap_or_default().as_bytes());
    let phone = q.text("phone").unwrap_or("").to_owned();
    let mut p = ManagersPage {
        nav: Nav::of(&s),
        phone: phone.clone(),
        sites_field: q.text("site").unwrap_or("").to_owned(),
        person: None,
        notice: None,
        error: None,
    };
    if !phone.is_empty() {
        match phone.parse::<Phone>() {
            Ok(ph) => {
                p.person = person(&state, &ph).await?;
                if p.person.is_none() {
                    p.notice =
                        Some("此手机号还没有账号；分配站点时将为其创建站点管理员账号。".into());
                }
            }
            Err(_) => p.error = Some("请输入正确的手机号（11位，以1开头）。".into()),
        }
    }
    Ok(page(StatusCode::OK, &p))
}

/// Add sites to a person's scope (making a worker a site manager), or take
/// them away. Admins and union admins keep their role: refused.
async fn assign(
    State(state): State<AppState>,
    s: Session,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    need_admin(&s)?;
    let phone_text = form.text("phone").unwrap_or("").to_owned();
    let sites_text = form.text("site").unwrap_or("").to_owned();
    let mut p = ManagersPage {
        nav: Nav::of(&s),
        phone: phone_text.clone(),
        sites_field: sites_text.clone(),
        person: None,
        notice: None,
        error: None,
    };
    let outcome = async {
        let phone: Phone = phone_text
            .parse()
            .map_err(|_| "请输入正确的手机号（11位，以1开头）。".to_owned())?;
        let mut ids = Vec::new();
        for t in sites_text.split(|c: char| c == ',' || c == '，' || c.is_whitespace()) {
            if t.is_empty() {
                continue;
            }
            let id: SiteId = t.parse().map_err(|_| format!("“{t}”不是站点编号。"))?;
            match state.store.get_site(id).await {
                Ok(Some(_)) => ids.push(id),
                Ok(None) => return Err(format!("没有编号为 {t} 的站点。")),
                Err(e) => return Err(format!("读取站点失败：{e}")),
            }
        }
        if ids.is_empty() {
            return Err("请填写至少一个站点编号（站点页面地址中的编号）。".to_owned());
        }
        let user = state
            .store
            .user_by_phone(&phone)
            .await
            .map_err(|e| format!("读取账号失败：{e}"))?;
        if let Some(u) = &user
            && matches!(u.role, Role::Admin | Role::UnionAdmin)
        {
            return Err(format!("此人是{}，不能改为站点管理员。", role_zh(u.role)));
        }
        let mut sites = user.map(|u| u.sites).unwrap_or_default();
        let removing = form.get("action") == Some("remove");
        if removing {
            sites.retain(|x| !ids.contains(x));
        } else {
            for id in ids {
                if !sites.contains(&id) {
                    sites.push(id);
                }
            }
        }
        state
            .store
            .put_user(&phone, Role::SiteManager, &sites, state.auth.clock.now())
            .await
            .map_err(|e| format!("保存失败：{e}"))?;
        Ok((phone, removing))
    }
    .await;
    let status = match outcome {
        Ok((phone, removing)) => {
            tracing::info!(phone = %phone.masked(), removing, "console: site manager's sites changed");
            p.notice = Some(if removing {
                "已取消这些站点的管理权限。".into()
            } else {
                "已分配。此人用手机号登录后即可管理这些站点。".into()
            });
            p.person = person(&state, &phone).await?;
            p.sites_field.clear();
            StatusCode::OK
        }
        Err(e) => {
            p.error = Some(e);
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    Ok(page(status, &p))
}

// ---------------------------------------------------------------------------
// GeoJSON import
// ---------------------------------------------------------------------------

pub struct PlanRow {
    pub ext_ref: String,
    pub name: String,
    pub changes: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "console/import.html")]
struct ImportPage {
    nav: Nav,
    crs: String,
    error: Option<String>,
    notice: Option<String>,
    /// The preview: counts, the rows, and what the apply form carries.
    created: Vec<PlanRow>,
    updated: Vec<PlanRow>,
    unchanged: usize,
    previewed: bool,
    summary: String,
    geojson: String,
    fingerprint: String,
}

impl ImportPage {
    fn new(s: &Session) -> ImportPage {
        ImportPage {
            nav: Nav::of(s),
            crs: "wgs84".into(),
            error: None,
            notice: None,
            created: vec![],
            updated: vec![],
            unchanged: 0,
            previewed: false,
            summary: String::new(),
            geojson: String::new(),
            fingerprint: String::new(),
        }
    }
}

impl ImportPage {
    fn show(&mut self, plan: &ImportPlan, geojson: &str) {
        self.previewed = true;
        self.created = rows(&plan.created, true);
        self.updated = rows(&plan.updated, false);
        self.unchanged = plan.unchanged;
        self.fingerprint = plan.fingerprint();
        self.geojson = geojson.to_owned();
        self.summary = format!(
            "新建 {} 个，修改 {} 个，不变 {} 个（列表最多显示 {SHOWN} 个）。",
            plan.created.len(),
            plan.updated.len(),
            plan.unchanged
        );
    }
}

/// Rows shown per list (the counts are always whole).
const SHOWN: usize = 200;

fn rows(planned: &[crate::geodata::plan::Planned], created: bool) -> Vec<PlanRow> {
    planned
        .iter()
        .take(SHOWN)
        .map(|p| PlanRow {
            ext_ref: p.ext_ref.clone(),
            name: p.name.clone(),
            changes: match (&p.changes, created) {
                (Value::Object(m), false) => m
                    .iter()
                    .map(|(k, v)| {
                        (
                            field_zh(k).to_owned(),
                            value_text(v.get("old").unwrap_or(&Value::Null)),
                            value_text(v.get("new").unwrap_or(&Value::Null)),
                        )
                    })
                    .collect(),
                _ => vec![],
            },
        })
        .collect()
}

async fn import_page(State(_): State<AppState>, s: Session) -> Result<Response, PageError> {
    need_admin(&s)?;
    Ok(page(StatusCode::OK, &ImportPage::new(&s)))
}

/// The file read and compared with the registry: the plan, or the reason
/// the whole file is refused (as the command line words it).
async fn plan_for(state: &AppState, text: &str, crs: Crs) -> Result<ImportPlan, String> {
    let drafts = parse_collection(text, crs).map_err(|e| format!("{e}；未导入任何内容。"))?;
    if let Some((i, u)) = unknown_union(&state.store, &drafts)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "feature {i}: properties.union_id: no such union '{u}'；未导入任何内容。"
        ));
    }
    let sites = state.store.all_sites().await.map_err(|e| e.to_string())?;
    plan(&sites, &drafts).map_err(|e| e.to_string())
}

fn crs_of(v: &str) -> Result<Crs, String> {
    v.parse::<Crs>()
        .map_err(|_| "坐标系只能是 wgs84、gcj02 或 bd09。".to_owned())
}

async fn import_preview(
    State(state): State<AppState>,
    s: Session,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, PageError> {
    // A file upload is not a `Form`: the same checks, by hand.
    same_origin(&headers)?;
    need_admin(&s)?;
    let mut fields = Vec::new();
    let mut file = String::new();
    let bad = |e: axum::extract::multipart::MultipartError| {
        PageError::Api(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge("the file is larger than 32 MB".into())
        } else {
            ApiError::param("file", e.body_text())
        })
    };
    while let Some(f) = multipart.next_field().await.map_err(bad)? {
        let name = f.name().unwrap_or("").to_owned();
        if name == "file" {
            let bytes = f.bytes().await.map_err(bad)?;
            if bytes.len() > MAX_IMPORT {
                return Err(ApiError::param("file", "larger than 32 MB").into());
            }
            file = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::param("file", "not UTF-8 text"))?;
        } else {
            fields.push((name, f.text().await.map_err(bad)?));
        }
    }
    let form = Form(fields);
    s.check(&form)?;
    let mut p = ImportPage::new(&s);
    p.crs = form.get("crs").unwrap_or("wgs84").to_owned();
    let result = match crs_of(&p.crs) {
        Ok(crs) if !file.trim().is_empty() => plan_for(&state, &file, crs).await,
        Ok(_) => Err("请选择一个 GeoJSON 文件。".to_owned()),
        Err(e) => Err(e),
    };
    match result {
        Ok(plan) => {
            p.show(&plan, &file);
            p.notice = Some("以下是预览，尚未导入。".into());
            Ok(page(StatusCode::OK, &p))
        }
        Err(e) => {
            p.error = Some(e);
            Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p))
        }
    }
}

async fn import_apply(
    State(state): State<AppState>,
    s: Session,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    need_admin(&s)?;
    let mut p = ImportPage::new(&s);
    p.crs = form.get("crs").unwrap_or("wgs84").to_owned();
    let text = form.get("geojson").unwrap_or("");
    let crs = match crs_of(&p.crs) {
        Ok(c) => c,
        Err(e) => {
            p.error = Some(e);
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    let plan = match plan_for(&state, text, crs).await {
        Ok(plan) => plan,
        Err(e) => {
            p.error = Some(e);
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, &p));
        }
    };
    if Some(plan.fingerprint().as_str()) != form.get("fingerprint") {
        p.error =
            Some("预览之后站点数据已有变化，导入结果会与预览不同。请重新预览后再导入。".into());
        p.show(&plan, text);
        return Ok(page(StatusCode::CONFLICT, &p));
    }
    let drafts = parse_collection(text, crs)
        .map_err(|e| ApiError::unprocessable("geojson", e.to_string()))?;
    let out = state
        .store
        .import_sites(drafts, state.auth.clock.now())
        .await?;
    let (index, changed) = (state.index.clone(), out.changed.clone());
    tokio::task::spawn_blocking(move || index.apply(changed))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("index update failed: {e}")))?;
    tracing::info!(
        created = out.created,
        updated = out.updated,
        unchanged = out.unchanged,
        "console: GeoJSON imported"
    );
    p.notice = Some(format!(
        "导入完成：新建 {} 个，修改 {} 个，不变 {} 个。",
        out.created, out.updated, out.unchanged
    ));
    Ok(page(StatusCode::OK, &p))
}
