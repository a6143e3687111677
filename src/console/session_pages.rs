//! Signing in and out: the API's one-time codes (`account::send_code`,
//! `account::exchange_code`), the token kept in the session cookie.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::session::{self, Form, Session};
use super::{Nav, PageError, page};
use crate::http::AppState;
use crate::http::account::{exchange_code, send_code};
use crate::http::body::JsonObject;
use crate::http::caller::ClientIp;

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub nav: Nav,
    pub phone: String,
    /// A code was sent: show the code field.
    pub code_sent: bool,
    pub error: Option<String>,
}

pub async fn login_page() -> Response {
    page(
        StatusCode::OK,
        &LoginPage {
            nav: Nav::anonymous(),
            phone: String::new(),
            code_sent: false,
            error: None,
        },
    )
}

fn object(pairs: &[(&str, &str)]) -> JsonObject {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_owned(), Value::String((*v).to_owned()));
    }
    JsonObject(m)
}

/// What a person is told when sign-in goes wrong, in Chinese only (the API's
/// words are English: they pick the sentence, and are not shown).
fn sign_in_error(e: &crate::error::ApiError) -> String {
    let detail = e.problem().detail;
    let zh = match e.status().as_u16() {
        422 if detail.starts_with("phone") => "请输入正确的手机号（11位，以1开头）",
        422 => "请输入短信中的6位验证码",
        429 => "获取验证码太频繁，请稍后再试",
        401 if detail.contains("expired") => "验证码已过期，请重新获取",
        401 if detail.contains("tries left") => "验证码不正确，请重新输入",
        401 => "验证码无效，请重新获取",
        _ => super::status_title(e.status()),
    };
    zh.to_owned()
}

pub async fn request_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    form: Form,
) -> Response {
    let phone = form.get("phone").unwrap_or("").trim().to_owned();
    let result = send_code(&state, &ip, &object(&[("phone", &phone)])).await;
    let error = result.as_ref().err().map(sign_in_error);
    let status = result
        .as_ref()
        .map_or_else(|e| e.status(), |_| StatusCode::OK);
    page(
        status,
        &LoginPage {
            nav: Nav::anonymous(),
            code_sent: result.is_ok(),
            phone,
            error,
        },
    )
}

pub async fn sign_in(State(state): State<AppState>, headers: HeaderMap, form: Form) -> Response {
    let phone = form.get("phone").unwrap_or("").trim().to_owned();
    let code = form.get("code").unwrap_or("").trim().to_owned();
    match exchange_code(&state, &object(&[("phone", &phone), ("code", &code)])).await {
        Ok(t) => {
            let max_age = (t.expires_at - state.auth.clock.now()).num_seconds().max(0);
            let mut r = session::see_other("/console/sites");
            r.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(&t.token, max_age, session::is_secure(&state, &headers)),
            );
            r
        }
        Err(e) => page(
            e.status(),
            &LoginPage {
                nav: Nav::anonymous(),
                code_sent: true,
                phone,
                error: Some(sign_in_error(&e)),
            },
        ),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    s: Session,
    form: Form,
) -> Result<Response, PageError> {
    s.check(&form)?;
    state.store.revoke_token(&s.token_hash).await?;
    let mut r = session::see_other("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie("", 0, session::is_secure(&state, &headers)),
    );
    Ok(r)
}
