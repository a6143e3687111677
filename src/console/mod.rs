//! The site managers' console: server-rendered pages in Chinese under
//! `/console/`, forms that work without JavaScript, a little script where it
//! helps. It is a second face of the same API, not a second set of rules:
//! every form is read into the JSON object the API takes (the fields carry
//! the API's names) and handed to the very function the API's handler calls
//! (`manage::edit_site`, `events::new_event`, `checkins::check_in_code`, …).

pub mod admin;
pub mod assets;
pub mod draws;
pub mod events;
pub mod session;
mod session_pages;
pub mod sites;
pub mod views;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::domain::user::Role;
use crate::error::ApiError;
use crate::http::AppState;
use session::Session;

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    /// Mark the session cookie `Secure` whatever the request says (the
    /// server is behind TLS that does not send `X-Forwarded-Proto`).
    pub secure_cookie: bool,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { session::see_other("/console/") }),
        )
        .route("/console/", get(home))
        .route(
            "/console/login",
            get(session_pages::login_page).post(session_pages::sign_in),
        )
        .route("/console/login/code", post(session_pages::request_code))
        .route("/console/logout", post(session_pages::logout))
        .route("/console/assets/{name}", get(assets::asset))
        .merge(sites::router())
        .merge(events::router())
        .merge(draws::router())
        .merge(admin::router())
        .route("/console/{*rest}", get(not_found))
}

async fn home(_: Session) -> Response {
    session::see_other("/console/sites")
}

async fn not_found() -> PageError {
    PageError::Api(ApiError::NotFound("没有这个页面。".into()))
}

/// What the top of every page needs.
pub struct Nav {
    pub signed_in: bool,
    pub admin: bool,
    pub csrf: String,
    /// `138****5678` and the role, in Chinese.
    pub who: String,
}

impl Nav {
    pub fn anonymous() -> Nav {
        Nav {
            signed_in: false,
            admin: false,
            csrf: String::new(),
            who: String::new(),
        }
    }

    pub fn of(s: &Session) -> Nav {
        let role = match s.user.role {
            Role::Admin => "管理员",
            Role::SiteManager => "站点管理员",
            Role::UnionAdmin => "工会管理员",
            Role::Worker => "职工",
        };
        Nav {
            signed_in: true,
            admin: s.user.role == Role::Admin,
            csrf: s.csrf.clone(),
            who: format!("{} · {role}", s.user.phone.masked()),
        }
    }
}

/// A page as the response, with `status`.
pub fn page(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // Only this server's own script and style; never inside another
            // site's frame (a form there could be clicked blindly).
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; \
                     frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
                ),
            );
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(e) => {
            PageError::Api(ApiError::Internal(anyhow::anyhow!("template: {e}"))).into_response()
        }
    }
}

/// Make `r` a download saved as `filename` (ASCII).
pub fn attachment(r: &mut Response, filename: &str) {
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")).expect("ascii"),
    );
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum PageError {
    /// No live session: to the sign-in page.
    SignIn,
    /// A form without this session's `csrf`, or sent from another site.
    Csrf,
    /// What the API would have answered.
    Api(ApiError),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError::Api(e)
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> PageError {
        PageError::Api(e.into())
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    nav: Nav,
    title: String,
    detail: String,
}

/// The Chinese title of an API error's status.
pub fn status_title(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "输入有误",
        401 => "请先登录",
        403 => "您没有权限",
        404 => "找不到",
        409 => "无法完成",
        412 => "其他人已先保存",
        429 => "操作太频繁",
        503 => "服务繁忙，请稍后再试",
        _ => "出错了",
    }
}

/// A sentence for an error page, by status.
fn status_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "提交的内容有误，请返回上一页检查后重试。",
        401 => "登录已过期，请重新登录。",
        403 => "您的账号不能查看或修改这里的内容。",
        404 => "没有找到要访问的内容，它可能已被删除。",
        409 => "与现有数据冲突，请刷新页面后重试。",
        412 => "这条内容已被其他人修改，请刷新页面后重试。",
        413 => "上传的文件太大。",
        429 => "操作太频繁，请稍后再试。",
        503 => "服务繁忙，请稍后再试。",
        _ => "服务出错了，请稍后再试。",
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => session::see_other("/console/login"),
            PageError::Csrf => page(
                StatusCode::FORBIDDEN,
                &ErrorPage {
                    nav: Nav::anonymous(),
                    title: "请求无效".into(),
                    detail: "表单已过期或来自其他网站。请返回上一页，刷新后重试。".into(),
                },
            ),
            PageError::Api(e) => {
                let status = e.status();
                if status.is_server_error() {
                    tracing::error!(error = %e, "console request failed");
                }
                let title = status_title(status).to_owned();
                // The API's detail is English: a console page shows its own
                // Chinese words, or a Chinese sentence for the status.
                let detail = match &e {
                    ApiError::NotFound(d) if !d.is_ascii() => d.clone(),
                    _ => {
                        tracing::debug!(detail = %e.problem().detail, "console error page");
                        status_detail(status).to_owned()
                    }
                };
                page(
                    status,
                    &ErrorPage {
                        nav: Nav::anonymous(),
                        title,
                        detail,
                    },
                )
            }
        }
    }
}
