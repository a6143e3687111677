//! The console's session: a cookie holding the same kind of bearer token the
//! API issues (made by the same sign-in), and the forms' CSRF defence.
//!
//! - The cookie `yizhan_console` is `HttpOnly` (scripts never read the token),
//!   `SameSite=Lax` (other sites' forms do not carry it), `Path=/console`, and
//!   `Secure` when the request came over TLS as a proxy says
//!   (`X-Forwarded-Proto: https`) or the server is told so
//!   (`--console-secure-cookie`).
//! - Every POST carries a `csrf` field: an HMAC of a fixed label under the
//!   session's token, which another site can neither read nor compute; and a
//!   request another site started (`Sec-Fetch-Site: cross-site`, or an
//!   `Origin` that is not this host) is refused before that.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::PageError;
use crate::auth::token_hash;
use crate::domain::user::User;
use crate::http::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "yizhan_console";

/// A signed-in console user.
pub struct Session {
    pub user: User,
    pub token_hash: String,
    /// The value every form of this session must send back as `csrf`.
    pub csrf: String,
}

fn mac(token: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    m.update(b"yizhan console csrf v1");
    m
}

/// The CSRF value of the session whose token is `token`.
pub fn csrf_for(token: &str) -> String {
    let tag = mac(token).finalize().into_bytes();
    tag.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|t| !t.is_empty() && t.len() <= 200)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let token = cookie_token(&parts.headers).ok_or(PageError::SignIn)?;
        let hash = token_hash(token);
        let user = state
            .tokens
            .user(&hash, state.auth.clock.now())
            .await
            .map_err(|e| PageError::Api(e.into()))?
            .ok_or(PageError::SignIn)?;
        state
            .guard
            .check_user_write(&parts.method, user.id, &state.metrics)?;
        Ok(Session {
            user,
            token_hash: hash,
            csrf: csrf_for(token),
        })
    }
}

impl Session {
    /// The form's `csrf` field must be this session's (compared in constant time).
    pub fn check(&self, form: &Form) -> Result<(), PageError> {
        let sent = form.get("csrf").unwrap_or("").as_bytes();
        if crate::domain::secret::same(sent, self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::Csrf)
        }
    }
}

/// Refuse a request that another site started: `Sec-Fetch-Site: cross-site`,
/// or an `Origin` whose host is not the one the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return Err(PageError::Csrf);
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(PageError::Csrf),
    }
}

/// Whether the request reached us over TLS, as the server is told.
pub fn is_secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.console.secure_cookie
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` for a new session (`max_age_s` 0 clears it).
pub fn set_cookie(token: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .expect("a token is ASCII")
}

/// A submitted form (`application/x-www-form-urlencoded`), every value kept:
/// repeated names (`amenities`, the weekday chips) are lists.
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed value, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn parse(bytes: &[u8]) -> Form {
        Form(form_urlencoded::parse(bytes).into_owned().collect())
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, PageError> {
        same_origin(req.headers())?;
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| PageError::Api(crate::http::body::body_rejection(e)))?;
        Ok(Form::parse(&bytes))
    }
}

/// A 303 to `to` (after a POST: the browser GETs the page).
pub fn see_other(to: &str) -> Response {
    (
        axum::http::StatusCode::SEE_OTHER,
        [(header::LOCATION, to.to_owned())],
    )
        .into_response()
}
