//! Sign-in with WeChat and the person's WeChat consents (issue 25).
//!
//! The mini program calls `wx.login` for a login code and, for a person
//! WeChat has not yet bound, the phone-number button for a phone code; it
//! sends both to `POST /v1/auth/wechat` and gets the same bearer token the
//! SMS sign-in gives. After `wx.requestSubscribeMessage` it reports what the
//! person accepted to `POST /v1/me/wechat/subscriptions`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::account::{TokenResponse, issue_token, token_answer};
use super::body::JsonObject;
use super::caller::Caller;
use crate::domain::wechat::Class;
use crate::error::{ApiError, Problem};
use crate::wechat::{Wechat, WxError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/wechat", post(wechat_sign_in))
        .route("/v1/me/wechat", delete(unbind_wechat))
        .route("/v1/me/wechat/subscriptions", post(wechat_subscriptions))
}

fn configured(state: &AppState) -> Result<&Arc<Wechat>, ApiError> {
    state.wechat.as_ref().ok_or_else(|| {
        ApiError::NotFound("WeChat is not configured on this server (--wechat-appid)".into())
    })
}

/// A code from the mini program: what `wx.login` and the phone-number
/// button give, at most 128 visible characters.
fn code(v: &serde_json::Value) -> Result<String, String> {
    let s = v.as_str().ok_or("expected the code as a string")?;
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("expected 1–128 visible ASCII characters".into());
    }
    Ok(s.to_owned())
}

/// What a WeChat refusal of a sign-in means to the app, naming the field
/// whose code it was.
fn refusal(state: &AppState, api: &str, field: &str, e: WxError) -> ApiError {
    let class = e.class();
    state.metrics.wechat_call(api, class.as_str());
    match (class, &e) {
        (Class::BadCode, _) => ApiError::unprocessable(
            field,
            format!(
                "WeChat does not accept this code ({e}): it is wrong, used or expired; get a new one"
            ),
        ),
        (Class::Risky, _) => ApiError::Forbidden {
            detail: format!("WeChat refused this account as risky ({e})"),
            param: Some(field.to_owned()),
        },
        (Class::Later | Class::Token, _) => ApiError::UnavailableFor {
            detail: format!("WeChat is busy or limiting calls ({e}); retry shortly"),
            retry_after_s: 5,
        },
        _ => {
            tracing::error!(target: "yizhan::wechat", api, error = %e, "WeChat refused a sign-in call: check --wechat-appid and the app secret");
            state.metrics.wechat_config_error("credentials");
            ApiError::Unavailable(
                "WeChat sign-in is not working on this server; use SMS sign-in".into(),
            )
        }
    }
}

/// Sign in with WeChat. `login_code` (from `wx.login`) names the WeChat
/// user; a user already bound to a person signs that person in. Otherwise
/// `phone_code` (from the phone-number button) gives their verified phone:
/// WeChat is bound to that phone's account (a new worker account if none),
/// with no SMS. Without it, the answer is 422 naming `phone_code`: show the
/// button and call again with a new login code.
#[utoipa::path(
    post,
    path = "/v1/auth/wechat",
    tag = "accounts",
    request_body(content = Object, description = "`{\"login_code\": \"…\", \"phone_code\": \"…\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 403, description = "WeChat refused this account as risky", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "WeChat is not configured on this server", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A wrong, used or expired code (`param` names it), or `phone_code` needed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "WeChat is busy; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn wechat_sign_in(
    State(state): State<AppState>,
    obj: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    obj.only(&["login_code", "phone_code"])?;
    let login_code = obj.required("login_code", code)?;
    let phone_code = obj.optional("phone_code", code)?;
    let wx = configured(&state)?;
    let session = wx
        .session(&login_code)
        .await
        .map_err(|e| refusal(&state, "jscode2session", "login_code", e))?;
    state.metrics.wechat_call("jscode2session", "ok");
    let now = state.auth.clock.now();
    let user =
        match state.store.wechat_user(&session.openid).await? {
            Some(id) => state.store.user(id).await?.ok_or_else(|| {
                ApiError::Unauthorized("this WeChat account's person is gone".into())
            })?,
            None => {
                let Some(phone_code) = phone_code else {
                    return Err(ApiError::unprocessable(
                        "phone_code",
                        "this WeChat account is not yet bound to a phone: ask for the phone number \
                     (the phone-number button) and send its code with a new login code",
                    ));
                };
                let phone = match wx.phone(&phone_code).await {
                    Ok(Ok(phone)) => phone,
                    Ok(Err(why)) => return Err(ApiError::unprocessable("phone_code", why)),
                    Err(e) => return Err(refusal(&state, "getuserphonenumber", "phone_code", e)),
                };
                state.metrics.wechat_call("getuserphonenumber", "ok");
                let user = state.store.sign_in_user(&phone, now).await?;
                state
                    .store
                    .bind_wechat(&session.openid, session.unionid.as_deref(), user.id, now)
                    .await?;
                tracing::info!(user = user.id, "WeChat bound to a phone's account");
                user
            }
        };
    Ok(token_answer(issue_token(&state, &user, now).await?))
}

/// Unbind the caller's WeChat: sign-in by WeChat and WeChat messages stop
/// until they sign in with WeChat again (their consents are forgotten).
#[utoipa::path(
    delete,
    path = "/v1/me/wechat",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Unbound"),
        (status = 404, description = "WeChat was not bound", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unbind_wechat(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    if state.store.unbind_wechat(caller.user.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(
            "WeChat is not bound to this account".into(),
        ))
    }
}

/// The caller's subscribe-message consents, after this report.
#[derive(Serialize, ToSchema)]
pub struct ConsentsDoc {
    /// One-time consents left, by template id (the configured templates).
    pub remaining: std::collections::BTreeMap<String, u32>,
}

/// Report what the person answered `wx.requestSubscribeMessage`: each
/// accepted template allows one message more (a one-time subscription);
/// a rejected one allows none. Only configured templates count.
#[utoipa::path(
    post,
    path = "/v1/me/wechat/subscriptions",
    tag = "accounts",
    security(("bearer" = [])),
    request_body(content = Object, description = "`{\"accepted\": [template ids], \"rejected\": [template ids]}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded; the consents now left", body = ConsentsDoc),
        (status = 404, description = "WeChat is not configured on this server", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "WeChat is not bound to this account: sign in with WeChat first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A template id that is not configured (`param` names the list)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn wechat_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    obj: JsonObject,
) -> Result<Json<ConsentsDoc>, ApiError> {
    obj.only(&["accepted", "rejected"])?;
    let wx = configured(&state)?;
    let known: Vec<&str> = wx.settings.templates.ids().map(|(_, id)| id).collect();
    let list = |name: &str| -> Result<Vec<String>, ApiError> {
        obj.optional(name, |v| {
            let items = v.as_array().ok_or("expected an array of template ids")?;
            if items.len() > 20 {
                return Err("at most 20 template ids".to_owned());
            }
            items
                .iter()
                .map(|i| {
                    let id = i.as_str().ok_or("expected template ids as strings")?;
                    if known.contains(&id) {
                        Ok(id.to_owned())
                    } else {
                        Err(format!("'{id}' is not one of this server's templates"))
                    }
                })
                .collect()
        })
        .map(Option::unwrap_or_default)
    };
    let (accepted, rejected) = (list("accepted")?, list("rejected")?);
    if state.store.wechat_openid(caller.user.id).await?.is_none() {
        return Err(ApiError::Conflict(
            "WeChat is not bound to this account: sign in with WeChat first".into(),
        ));
    }
    let now = state.auth.clock.now();
    state
        .store
        .record_consents(caller.user.id, &accepted, &rejected, now)
        .await?;
    let mut remaining = std::collections::BTreeMap::new();
    for id in known {
        remaining.insert(
            id.to_owned(),
            state.store.consents_left(caller.user.id, id).await?,
        );
    }
    Ok(Json(ConsentsDoc { remaining }))
}
