//! Sign-in by phone and one-time code, and the signed-in person's own data.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::body::{self, JsonObject};
use super::caller::{Caller, ClientIp};
use super::params::Params;
use super::sites::{NearbyItem, nearby_item};
use crate::auth::{self, code_hash, new_code, new_token, token_hash};
use crate::domain::otp::OtpCheck;
use crate::domain::sms::{self as sms_rules, Class};
use crate::domain::user::{Gender, MaritalStatus, Phone, Profile, Role, User};
use crate::error::{ApiError, Problem};
use crate::sms::Text;
use crate::store::OtpRequest;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/otp", post(request_code))
        .route("/v1/auth/token", post(sign_in))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .route("/v1/me/profile", put(put_profile))
        .route("/v1/me/follows", get(my_follows))
        .route("/v1/users/{id}", get(user_by_id))
}

fn phone_field(obj: &JsonObject) -> Result<Phone, ApiError> {
    obj.required("phone", body::parsed::<Phone>)
}

/// A sign-in code was texted: how long it lives and when another may be asked for.
#[derive(Serialize, ToSchema)]
pub struct CodeSent {
    /// The code expires after this many seconds.
    pub expires_in_s: u64,
    /// Another code may be requested for this phone after this many seconds.
    pub resend_after_s: u64,
}

/// Send a 6-digit sign-in code to a mainland mobile number (`+86` accepted).
/// Rate-limited per phone (1 a minute, 5 an hour, 10 a day: inside Aliyun's
/// and Tencent Cloud's default limits per number) and per client address
/// (10 a minute, 30 an hour): past a limit, or inside the SMS provider's
/// own window for the number, 429 with `Retry-After`.
#[utoipa::path(
    post,
    path = "/v1/auth/otp",
    tag = "accounts",
    request_body(content = Object, description = "`{\"phone\": \"13812345678\"}`", content_type = "application/json"),
    responses(
        (status = 202, description = "Code sent", body = CodeSent),
        (status = 422, description = "Not a mainland mobile number, or one the SMS provider cannot text (`param`: `phone`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The code could not be texted now (the provider is busy, did not answer, or is misconfigured); see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn request_code(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    obj: JsonObject,
) -> Result<Response, ApiError> {
    let sent = send_code(&state, &ip, &obj).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)).into_response())
}

/// Send a sign-in code to the `phone` of `obj`, within the limits per phone
/// and per client address `ip` (the API and the managers' console).
pub async fn send_code(state: &AppState, ip: &str, obj: &JsonObject) -> Result<CodeSent, ApiError> {
    obj.only(&["phone"])?;
    let phone = phone_field(obj)?;
    let code = new_code();
    let now = state.auth.clock.now();
    // The provider's frequency window for this number, ending `until`.
    let window = |until: DateTime<Utc>| {
        let wait = (until - now).num_seconds().max(1) as u64;
        ApiError::TooManyRequests {
            detail: format!("the SMS provider limits texts to this number; try again in {wait} s"),
            retry_after_s: wait,
        }
    };
    // Inside it: say when, without asking the provider again.
    if let Some(until) = state.sms.held_until(&phone, now) {
        return Err(window(until));
    }
    let outcome = state
        .store
        .request_otp(OtpRequest {
            phone: &phone,
            ip,
            code_hash: &code_hash(&phone, &code),
            dev_code: state.dev_sign_in.then_some(code.as_str()),
            at: now,
            ttl: auth::OTP_TTL,
            phone_limits: &auth::OTP_LIMITS_PER_PHONE,
            ip_limits: &auth::OTP_LIMITS_PER_IP,
        })
        .await?;
    if let Err(wait) = outcome {
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "too many codes requested; try again in {} s",
                wait.as_secs()
            ),
            retry_after_s: wait.as_secs().max(1),
        });
    }
    let values = sms_rules::Values {
        code: Some(code),
        ..Default::default()
    };
    // Our id for this text (its OutId / SessionContext): a receipt names it.
    let id = format!("c{:016x}", rand::random::<u64>());
    let text = Text {
        phone: &phone,
        message: sms_rules::Message::SignInCode,
        values: &values,
        id: &id,
    };
    let out = state.sms.send(&text, now).await;
    match out.class {
        Class::Accepted => {}
        Class::NumberLimited(w) => return Err(window(w.ends(now))),
        Class::Unreachable(reason) => {
            state
                .store
                .set_sms_unreachable(&phone, &out.block(state.sms.name(), reason, now))
                .await?;
            return Err(ApiError::Unprocessable {
                param: "phone".into(),
                detail: format!(
                    "this number cannot receive texts ({}); use another number",
                    reason.as_str()
                ),
                position: None,
            });
        }
        Class::Misconfigured(_) | Class::Rejected => {
            return Err(ApiError::Unavailable(
                "sign-in codes cannot be texted right now; the operators have been told".into(),
            ));
        }
        Class::RetryLater | Class::Unknown => {
            return Err(ApiError::Unavailable(
                "the SMS provider is busy or did not answer; try again shortly".into(),
            ));
        }
    }
    tracing::info!(phone = %phone.masked(), provider = state.sms.name(), "sign-in code sent");
    Ok(CodeSent {
        expires_in_s: auth::OTP_TTL.as_secs(),
        resend_after_s: auth::OTP_LIMITS_PER_PHONE[0].1.as_secs(),
    })
}

/// A bearer token and the person it signs in.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    #[serde(serialize_with = "crate::domain::timestamp::ms")]
    pub expires_at: DateTime<Utc>,
    pub user: Me,
}

/// Exchange a phone and its code for a bearer token. The first sign-in creates
/// a worker account. A code works once, for 5 minutes; 5 wrong tries kill it.
#[utoipa::path(
    post,
    path = "/v1/auth/token",
    tag = "accounts",
    request_body(content = Object, description = "`{\"phone\": \"13812345678\", \"code\": \"123456\"}`", content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong, expired, used or locked code", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed phone or code", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sign_in(
    State(state): State<AppState>,
    obj: JsonObject,
) -> Result<impl IntoResponse, ApiError> {
    Ok(token_answer(exchange_code(&state, &obj).await?))
}

/// Exchange the `phone` and `code` of `obj` for a new token (the API and the
/// managers' console, whose session holds such a token).
pub async fn exchange_code(state: &AppState, obj: &JsonObject) -> Result<TokenResponse, ApiError> {
    obj.only(&["phone", "code"])?;
    let phone = phone_field(obj)?;
    let code = obj.required("code", |v| {
        let s = v.as_str().ok_or("expected a string of 6 digits")?;
        if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(s.to_owned())
        } else {
            Err("expected 6 digits".to_owned())
        }
    })?;
    let now = state.auth.clock.now();
    match state
        .store
        .check_otp(
            &phone,
            &code_hash(&phone, &code),
            now,
            auth::OTP_MAX_ATTEMPTS,
        )
        .await?
    {
        OtpCheck::Ok => {}
        OtpCheck::Wrong { attempts_left } if attempts_left > 0 => {
            return Err(ApiError::Unauthorized(format!(
                "wrong code; {attempts_left} tries left"
            )));
        }
        OtpCheck::Wrong { .. } | OtpCheck::Locked => {
            return Err(ApiError::Unauthorized(
                "too many wrong tries; request a new code".into(),
            ));
        }
        OtpCheck::Expired => {
            return Err(ApiError::Unauthorized(
                "the code has expired; request a new one".into(),
            ));
        }
        OtpCheck::Missing => {
            return Err(ApiError::Unauthorized(
                "no code is pending for this phone; request one".into(),
            ));
        }
    }
    let user = state.store.sign_in_user(&phone, now).await?;
    // A code that arrived proves the number can be texted again.
    if state.store.clear_sms_unreachable(&phone).await? {
        tracing::info!(
            user = user.id,
            "texts to this number resumed: a code reached it"
        );
    }
    issue_token(state, &user, now).await
}

/// A token answer: never cached (RFC 6749 §5.1).
pub(super) fn token_answer(token: TokenResponse) -> impl IntoResponse {
    (
        [
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::PRAGMA, "no-cache"),
        ],
        Json(token),
    )
}

/// A new bearer token for `user` (every way of signing in ends here).
pub(super) async fn issue_token(
    state: &AppState,
    user: &User,
    now: DateTime<Utc>,
) -> Result<TokenResponse, ApiError> {
    let token = new_token();
    let expires_at = now + chrono::Duration::from_std(auth::TOKEN_TTL).expect("sane ttl");
    state
        .store
        .create_token(user.id, &token_hash(&token), expires_at)
        .await?;
    tracing::info!(user = user.id, "signed in");
    Ok(TokenResponse {
        token,
        token_type: "Bearer",
        expires_at,
        user: Me::of(user),
    })
}

/// Revoke the token this request carries.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The token is revoked"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.store.revoke_token(&caller.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in person: visible to themselves (and admins) only.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub id: i64,
    pub phone: String,
    pub role: Role,
    /// The sites a site manager manages.
    #[schema(value_type = Vec<String>)]
    pub sites: Vec<crate::domain::site::SiteId>,
    /// The unions a union admin runs (and, with them, every union below them).
    #[schema(value_type = Vec<String>)]
    pub unions: Vec<crate::domain::union::UnionId>,
    pub profile: Profile,
    /// Unread notifications in the inbox (on `GET /v1/me`).
    pub unread_notifications: Option<u64>,
    /// Whether texts reach this number (on `GET /v1/me`): when not, ask
    /// the person for a new number.
    pub sms: Option<SmsReach>,
    /// Whether the person signed in with WeChat (on `GET /v1/me`): when not,
    /// the mini program may offer to bind it (`POST /v1/auth/wechat`).
    pub wechat: Option<WechatBinding>,
}

/// A person's WeChat, as `GET /v1/me` shows it.
#[derive(Serialize, ToSchema)]
pub struct WechatBinding {
    /// Bound to the union's mini program (its messages can reach them).
    pub bound: bool,
}

/// Whether yizhan can text a person's number.
#[derive(Serialize, ToSchema)]
pub struct SmsReach {
    /// `false`: the SMS provider said this number cannot be texted, and
    /// yizhan stopped texting it (until a sign-in code reaches it again).
    pub reachable: bool,
    /// Why not: `invalid_number`, `unsubscribed` or `blacklisted`.
    #[schema(value_type = Option<String>)]
    pub reason: Option<&'static str>,
    /// Since when.
    #[serde(serialize_with = "crate::domain::timestamp::ms_opt")]
    pub since: Option<DateTime<Utc>>,
}

impl Me {
    pub fn of(u: &User) -> Me {
        Me {
            id: u.id,
            phone: u.phone.as_str().to_owned(),
            role: u.role,
            sites: u.sites.clone(),
            unions: u.unions.clone(),
            profile: u.profile.clone(),
            unread_notifications: None,
            sms: None,
            wechat: None,
        }
    }
}

/// The signed-in person: phone, role, profile, unread notices, SMS and WeChat state.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in person", body = Me),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let mut me = Me::of(&caller.user);
    me.unread_notifications = Some(state.store.unread_count(caller.user.id).await?);
    let block = state.store.sms_unreachable(&caller.user.phone).await?;
    me.sms = Some(SmsReach {
        reachable: block.is_none(),
        reason: block.as_ref().map(|b| b.reason.as_str()),
        since: block.map(|b| b.since),
    });
    me.wechat = Some(WechatBinding {
        bound: state.store.wechat_openid(caller.user.id).await?.is_some(),
    });
    Ok(Json(me))
}

pub const PROFILE_FIELDS: [&str; 7] = [
    "display_name",
    "gender",
    "birth_year",
    "marital_status",
    "union_member_no",
    "employer",
    "frontline",
];

/// Replace the profile (absent or null fields are cleared). Used for event
/// eligibility and quotas; visible to the person and to admins only.
#[utoipa::path(
    put,
    path = "/v1/me/profile",
    tag = "accounts",
    security(("bearer" = [])),
    request_body(content = Profile, content_type = "application/json"),
    responses(
        (status = 200, description = "The stored profile", body = Profile),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `param`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_profile(
    State(state): State<AppState>,
    caller: Caller,
    obj: JsonObject,
) -> Result<Json<Profile>, ApiError> {
    obj.only(&PROFILE_FIELDS)?;
    let year = i64::from(state.auth.clock.now().year());
    let profile = Profile {
        display_name: obj.nullable("display_name", body::text(50))?.flatten(),
        gender: obj.nullable("gender", body::parsed::<Gender>)?.flatten(),
        birth_year: obj
            .nullable("birth_year", body::int_in(1900, year))?
            .flatten()
            .map(|y| y as i32),
        marital_status: obj
            .nullable("marital_status", body::parsed::<MaritalStatus>)?
            .flatten(),
        union_member_no: obj.nullable("union_member_no", body::text(32))?.flatten(),
        employer: obj.nullable("employer", body::text(100))?.flatten(),
        frontline: obj.nullable("frontline", body::boolean)?.flatten(),
    };
    state.store.set_profile(caller.user.id, &profile).await?;
    Ok(Json(profile))
}

/// A person's account and profile (admins only).
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The person", body = Me),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn user_by_id(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<Json<Me>, ApiError> {
    if caller.user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin may read other people's accounts",
        ));
    }
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::unknown_id("id", "expected a user id (an integer)"))?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user with id {id}")))?;
    Ok(Json(Me::of(&user)))
}

/// The sites the caller follows, by site id, a page of them.
#[derive(Serialize, ToSchema)]
pub struct FollowsResponse {
    pub crs: String,
    /// Followed sites that are not retired, as nearby items without distance.
    pub items: Vec<NearbyItem>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// The sites the caller follows.
#[utoipa::path(
    get,
    path = "/v1/me/follows",
    tag = "accounts",
    security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "Items a page, 1–200 (default 50)"), ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`"), ("crs" = Option<String>, Query, description = "wgs84 (default), gcj02 or bd09")),
    responses(
        (status = 200, description = "Followed sites", body = FollowsResponse),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn my_follows(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<FollowsResponse>, ApiError> {
    let p = Params::parse(raw.as_deref())?;
    let crs = p.crs()?;
    let page = super::paging::Page::parse(&p, 1)?;
    let at = state.auth.clock.now();
    let ids = state.store.follows(caller.user.id).await?;
    let snapshot = state.index.snapshot();
    let items: Vec<NearbyItem> = ids
        .iter()
        .filter_map(|id| snapshot.get(*id))
        .map(|s| nearby_item(s.view(), crs, None, s.state(at)))
        .collect();
    // By site id.
    let (items, next_cursor) = page.of(items, |s| vec![s.id.as_i64()]);
    Ok(Json(FollowsResponse {
        crs: crs.as_str().to_owned(),
        items,
        next_cursor,
    }))
}
