//! The HTTP error type: every 4xx and 5xx leaves as RFC 9457 problem+json.
//! Internal details are logged here and never returned to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Every kind of problem yizhan answers. Its `type` is the absolute URI
/// `{base}/problems/{slug}`, where the base is `--public-url`, or else the
/// scheme and host the request came to; the URI answers a page for people
/// (`GET /problems/{slug}`) saying what it means and what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    InvalidParameter,
    InvalidField,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    TooLarge,
    UnsupportedMediaType,
    PreconditionRequired,
    RateLimited,
    Internal,
    Unavailable,
}

/// How a problem type reads, in English and in Chinese.
pub struct ProblemText {
    pub title_en: &'static str,
    pub title_zh: &'static str,
    /// What it means and what an app or a person should do.
    pub about_en: &'static str,
    pub about_zh: &'static str,
}

impl ProblemType {
    pub const ALL: [ProblemType; 15] = [
        ProblemType::InvalidParameter,
        ProblemType::InvalidField,
        ProblemType::BadRequest,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::Conflict,
        ProblemType::PreconditionFailed,
        ProblemType::TooLarge,
        ProblemType::UnsupportedMediaType,
        ProblemType::PreconditionRequired,
        ProblemType::RateLimited,
        ProblemType::Internal,
        ProblemType::Unavailable,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::InvalidParameter => "invalid-parameter",
            ProblemType::InvalidField => "invalid-field",
            ProblemType::BadRequest => "bad-request",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::NotFound => "not-found",
            ProblemType::MethodNotAllowed => "method-not-allowed",
            ProblemType::Conflict => "conflict",
            ProblemType::PreconditionFailed => "precondition-failed",
            ProblemType::TooLarge => "too-large",
            ProblemType::UnsupportedMediaType => "unsupported-media-type",
            ProblemType::PreconditionRequired => "precondition-required",
            ProblemType::RateLimited => "rate-limited",
            ProblemType::Internal => "internal",
            ProblemType::Unavailable => "unavailable",
        }
    }

    pub fn from_slug(slug: &str) -> Option<ProblemType> {
        ProblemType::ALL.into_iter().find(|t| t.slug() == slug)
    }

    /// The type of a bare status (an unknown route, a framework rejection).
    pub fn for_status(status: StatusCode) -> ProblemType {
        match status {
            StatusCode::BAD_REQUEST => ProblemType::BadRequest,
            StatusCode::UNAUTHORIZED => ProblemType::Unauthorized,
            StatusCode::FORBIDDEN => ProblemType::Forbidden,
            StatusCode::NOT_FOUND => ProblemType::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ProblemType::MethodNotAllowed,
            StatusCode::CONFLICT => ProblemType::Conflict,
            StatusCode::PRECONDITION_FAILED => ProblemType::PreconditionFailed,
            StatusCode::PAYLOAD_TOO_LARGE => ProblemType::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemType::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ProblemType::InvalidField,
            StatusCode::PRECONDITION_REQUIRED => ProblemType::PreconditionRequired,
            StatusCode::TOO_MANY_REQUESTS => ProblemType::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => ProblemType::Unavailable,
            s if s.is_server_error() => ProblemType::Internal,
            _ => ProblemType::BadRequest,
        }
    }

    pub fn text(self) -> ProblemText {
        let t = |title_en, title_zh, about_en, about_zh| ProblemText {
            title_en,
            title_zh,
            about_en,
            about_zh,
        };
        match self {
            ProblemType::InvalidParameter => t(
                "Invalid parameter",
                "参数有误",
                "A query parameter, path segment or header is malformed or out of range; `param` names it. Correct it and send again.",
                "查询参数、路径或请求头的格式不对或超出范围，`param` 指明是哪一个。改正后重发。",
            ),
            ProblemType::InvalidField => t(
                "Invalid field",
                "字段不可接受",
                "A body field is well-formed but not acceptable (a rule of the service refuses it); `param` names it, as `quotas[1].value`. Show the person the field.",
                "请求体中的某个字段格式正确但不被接受（不符合业务规则），`param` 指明字段，如 `quotas[1].value`。请提示用户修改该字段。",
            ),
            ProblemType::BadRequest => t(
                "Bad request",
                "请求无效",
                "The request could not be read (the body is not JSON, for example).",
                "无法读取请求（例如请求体不是 JSON）。",
            ),
            ProblemType::Unauthorized => t(
                "Unauthorized",
                "需要登录",
                "No valid bearer token: sign in again (`POST /v1/auth/token`).",
                "没有有效的令牌：请重新登录（`POST /v1/auth/token`）。",
            ),
            ProblemType::Forbidden => t(
                "Forbidden",
                "无权操作",
                "Signed in, but this is outside the person's role, scope or eligibility; `param` names the rule's field when one decided it.",
                "已登录，但超出其角色、管理范围或报名资格；若由某条规则决定，`param` 指明相应字段。",
            ),
            ProblemType::NotFound => t(
                "Not found",
                "未找到",
                "No such resource, or no such endpoint; a path id not of its resource's form names nothing either (`param` says which).",
                "没有这个资源或接口；路径中格式不对的编号也找不到（`param` 指明是哪一个）。",
            ),
            ProblemType::MethodNotAllowed => t(
                "Method not allowed",
                "不支持该方法",
                "The endpoint exists but not with this HTTP method.",
                "接口存在，但不支持这个 HTTP 方法。",
            ),
            ProblemType::Conflict => t(
                "Conflict",
                "与当前状态冲突",
                "The resource is not in a state that allows this (a booking already cancelled, a window closed). Read it again before deciding.",
                "资源当前的状态不允许此操作（例如预约已取消、报名已截止）。请重新读取后再决定。",
            ),
            ProblemType::PreconditionFailed => t(
                "Precondition failed",
                "版本已变化",
                "`If-Match` names a version that is no longer current: someone changed it meanwhile. Read it again, then retry with the new ETag.",
                "`If-Match` 中的版本已不是最新：有人刚刚修改过。请重新读取，再用新的 ETag 重试。",
            ),
            ProblemType::TooLarge => t(
                "Payload too large",
                "请求体过大",
                "The body is larger than the endpoint accepts (64 KiB for JSON).",
                "请求体超过接口允许的大小（JSON 为 64 KiB）。",
            ),
            ProblemType::UnsupportedMediaType => t(
                "Unsupported media type",
                "不支持的内容类型",
                "Send the body as `application/json`.",
                "请求体请使用 `application/json`。",
            ),
            ProblemType::PreconditionRequired => t(
                "Precondition required",
                "缺少 If-Match",
                "This change needs `If-Match` with the ETag last read, so that it cannot overwrite a change it did not see.",
                "此修改需要带上最近读取到的 ETag（`If-Match`），以免覆盖未看到的修改。",
            ),
            ProblemType::RateLimited => t(
                "Too many requests",
                "请求过于频繁",
                "Too many writes from this address or person: wait `Retry-After` seconds, then retry (with the same `Idempotency-Key`).",
                "该地址或用户的写操作过于频繁：请等待 `Retry-After` 秒后重试（使用同一个 `Idempotency-Key`）。",
            ),
            ProblemType::Internal => t(
                "Internal server error",
                "服务器内部错误",
                "Something failed inside yizhan; it has been logged. Retrying later may help.",
                "服务器内部出错，已记录。稍后重试也许可以。",
            ),
            ProblemType::Unavailable => t(
                "Service unavailable",
                "服务暂时不可用",
                "Overloaded, timed out, or the database is busy or failing over: nothing half-done was kept. Wait `Retry-After` seconds and retry (with the same `Idempotency-Key`).",
                "服务繁忙、超时，或数据库繁忙或正在切换：未保留任何做了一半的修改。请等待 `Retry-After` 秒后重试（使用同一个 `Idempotency-Key`）。",
            ),
        }
    }

    /// `detail` in Chinese: the type's own sentence, naming the field.
    fn detail_zh(self, param: Option<&str>) -> String {
        let field = match param {
            Some(p) => format!(" `{p}` "),
            None => String::new(),
        };
        match self {
            ProblemType::InvalidParameter => format!("参数{field}格式不对或超出范围。"),
            ProblemType::InvalidField => format!("字段{field}的值不可接受。"),
            ProblemType::NotFound if param.is_some() => format!("找不到{field}所指的资源。"),
            t => t.text().about_zh.to_owned(),
        }
    }
}

/// What a problem's rendering depends on besides the problem: the base of
/// its `type` and the language asked for. Set per request by
/// [`with_problem_context`] with the request's headers, kept as they came
/// (cheap clones): they are read only when a problem is rendered, so a
/// request answered without one pays nothing for them. Outside a request,
/// `DEFAULT_BASE` and English.
#[derive(Debug, Clone, Default)]
pub struct ProblemContext {
    /// `--public-url`, when set: the base whatever the request says.
    pub public_url: Option<std::sync::Arc<str>>,
    pub forwarded_proto: Option<HeaderValue>,
    pub forwarded_host: Option<HeaderValue>,
    pub host: Option<HeaderValue>,
    pub accept_language: Option<HeaderValue>,
}

impl ProblemContext {
    /// The request's headers that rendering reads.
    pub fn of(public_url: Option<std::sync::Arc<str>>, headers: &axum::http::HeaderMap) -> Self {
        let get = |name: &str| headers.get(name).cloned();
        ProblemContext {
            public_url,
            forwarded_proto: get("x-forwarded-proto"),
            forwarded_host: get("x-forwarded-host"),
            host: get("host"),
            accept_language: get("accept-language"),
        }
    }

    fn base(&self) -> String {
        fn text(v: &Option<HeaderValue>) -> Option<&str> {
            v.as_ref().and_then(|v| v.to_str().ok())
        }
        match &self.public_url {
            Some(url) => url.to_string(),
            None => crate::http::request_base(
                text(&self.forwarded_proto),
                text(&self.forwarded_host),
                text(&self.host),
            ),
        }
    }

    fn chinese(&self) -> bool {
        prefers_chinese(self.accept_language.as_ref().and_then(|v| v.to_str().ok()))
    }
}

/// The base problem types have where no request says otherwise (the README's
/// local server; the checked-in `openapi.yaml` is written with it).
pub const DEFAULT_BASE: &str = "http://127.0.0.1:8080";

tokio::task_local! {
    static CONTEXT: ProblemContext;
}

/// Runs `fut` (a request's handling) with problems rendered for it.
pub async fn with_problem_context<F: std::future::Future>(
    ctx: ProblemContext,
    fut: F,
) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// The base of problem types for the request under way.
pub fn problem_base() -> String {
    CONTEXT
        .try_with(ProblemContext::base)
        .unwrap_or_else(|_| DEFAULT_BASE.to_owned())
}

/// Whether the request under way asked for Chinese.
fn chinese() -> bool {
    CONTEXT.try_with(ProblemContext::chinese).unwrap_or(false)
}

/// Whether `Accept-Language` prefers Chinese: its first language of the
/// highest weight is `zh` or `zh-…`.
pub fn prefers_chinese(accept_language: Option<&str>) -> bool {
    let Some(v) = accept_language else {
        return false;
    };
    let mut best: Option<(f32, &str)> = None;
    for item in v.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        if tag.is_empty() {
            continue;
        }
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, tag));
        }
    }
    best.is_some_and(|(_, tag)| {
        let tag = tag.to_ascii_lowercase();
        tag == "zh" || tag.starts_with("zh-")
    })
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// The problem type, an absolute URI `{base}/problems/{slug}` (one of
    /// `ProblemType`); it answers a page saying what it means.
    #[serde(rename = "type")]
    pub type_: String,
    /// The type's title (in Chinese when `Accept-Language` asks for it).
    pub title: String,
    pub status: u16,
    /// What went wrong this time, for people: English, or Chinese when
    /// `Accept-Language` prefers `zh`.
    pub detail: String,
    /// The request parameter or body field at fault, when there is one.
    pub param: Option<String>,
    /// Where in the field's value the fault is (0-based character offset), when known.
    pub position: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter, path segment or header is malformed or out of range.
    #[error("{param}: {detail}")]
    InvalidParam { param: String, detail: String },
    #[error("not found: {0}")]
    NotFound(String),
    /// A path id that is not of its resource's form: it names nothing, so
    /// 404 (problem+json naming the path parameter), as an unknown id would.
    #[error("{param}: {detail}")]
    UnknownId { param: String, detail: String },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Unavailable for about `retry_after_s` (a queue that would take longer to drain).
    #[error("service unavailable: {detail}")]
    UnavailableFor { detail: String, retry_after_s: u64 },
    /// No valid bearer token.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Signed in, but outside the caller's role or scope.
    #[error("forbidden: {detail}")]
    Forbidden {
        detail: String,
        param: Option<String>,
    },
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conditional request without its condition (`If-Match`).
    #[error("precondition required: {0}")]
    PreconditionRequired(String),
    /// `If-Match` names a version that is no longer current.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// A body field is well-formed JSON but not an acceptable value.
    #[error("{param}: {detail}")]
    Unprocessable {
        param: String,
        detail: String,
        position: Option<usize>,
    },
    /// The request body is larger than the endpoint accepts.
    #[error("payload too large: {0}")]
    TooLarge(String),
    #[error("too many requests: {detail}")]
    TooManyRequests { detail: String, retry_after_s: u64 },
    /// A store failure that is not the caller's fault (logged, never shown).
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the store says, as the client should hear it.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::WrongState(why) => ApiError::Conflict(why),
            StoreError::Duplicate(_) => ApiError::Conflict("it exists already".into()),
            StoreError::Conflict { current } => ApiError::PreconditionFailed(format!(
                "the site changed meanwhile; its current version is {current}"
            )),
            StoreError::Invalid { field, detail } => ApiError::unprocessable(field, detail),
            StoreError::KeyReuse => ApiError::unprocessable(
                "Idempotency-Key",
                "this key was used with a different request",
            ),
            StoreError::Busy(e) => {
                tracing::warn!(error = %e, "database busy; asking the client to retry");
                ApiError::Unavailable("the database is busy; retry shortly".into())
            }
            // The connection to the database broke or could not be made (a
            // failover under way): nothing half-done was kept, so a retry is
            // safe — 503 with Retry-After, never 500.
            e if crate::store::postgres::connection_lost(&e) => {
                tracing::warn!(error = %e, "database unreachable; asking the client to retry");
                ApiError::Unavailable("the database is not answering; retry shortly".into())
            }
            e => ApiError::Store(e),
        }
    }
}

impl ApiError {
    pub fn param(param: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::InvalidParam {
            param: param.into(),
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::UnknownId { .. } => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::UnavailableFor { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A path id that does not parse: 404 naming the parameter.
    pub fn unknown_id(param: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::UnknownId {
            param: param.into(),
            detail: detail.into(),
        }
    }

    pub fn unprocessable(param: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            param: param.into(),
            detail: detail.into(),
            position: None,
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            detail: detail.into(),
            param: None,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let mut position = None;
        use ProblemType as T;
        let (type_, detail, param) = match self {
            ApiError::InvalidParam { param, detail } => (
                T::InvalidParameter,
                format!("{param}: {detail}"),
                Some(param.clone()),
            ),
            ApiError::Unauthorized(why) => (T::Unauthorized, why.clone(), None),
            ApiError::Forbidden { detail, param } => (T::Forbidden, detail.clone(), param.clone()),
            ApiError::Conflict(why) => (T::Conflict, why.clone(), None),
            ApiError::PreconditionRequired(why) => (
                T::PreconditionRequired,
                why.clone(),
                Some("If-Match".to_owned()),
            ),
            ApiError::PreconditionFailed(why) => (
                T::PreconditionFailed,
                why.clone(),
                Some("If-Match".to_owned()),
            ),
            ApiError::Unprocessable {
                param,
                detail,
                position: pos,
            } => {
                position = *pos;
                (
                    T::InvalidField,
                    format!("{param}: {detail}"),
                    Some(param.clone()),
                )
            }
            ApiError::TooManyRequests { detail, .. } => (T::RateLimited, detail.clone(), None),
            ApiError::TooLarge(why) => (T::TooLarge, why.clone(), Some("body".to_owned())),
            ApiError::NotFound(what) => (T::NotFound, what.clone(), None),
            ApiError::UnknownId { param, detail } => (
                T::NotFound,
                format!("{param}: {detail}"),
                Some(param.clone()),
            ),
            ApiError::Unavailable(why) => (T::Unavailable, why.clone(), None),
            ApiError::UnavailableFor { detail, .. } => (T::Unavailable, detail.clone(), None),
            ApiError::Store(_) | ApiError::Internal(_) => (
                T::Internal,
                "an internal error occurred; it has been logged".to_owned(),
                None,
            ),
        };
        Problem::new(type_, status, detail, param, position)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = self.problem().into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_s, .. }
            | ApiError::UnavailableFor { retry_after_s, .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            ApiError::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

impl Problem {
    /// A problem of `kind`, rendered for the request under way (its `type`'s
    /// base, its language): see [`ProblemContext`].
    pub fn new(
        kind: ProblemType,
        status: StatusCode,
        detail: String,
        param: Option<String>,
        position: Option<usize>,
    ) -> Problem {
        let text = kind.text();
        let (title, detail) = if chinese() {
            (text.title_zh.to_owned(), kind.detail_zh(param.as_deref()))
        } else {
            (text.title_en.to_owned(), detail)
        };
        Problem {
            type_: format!("{}/problems/{}", problem_base(), kind.slug()),
            title,
            status: status.as_u16(),
            detail,
            param,
            position,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).expect("problem serializes");
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

/// A problem for a bare status (unknown route, wrong method, panics).
pub fn status_problem(status: StatusCode, detail: impl Into<String>) -> Response {
    Problem::new(
        ProblemType::for_status(status),
        status,
        detail.into(),
        None,
        None,
    )
    .into_response()
}

/// axum's own rejections (a path segment that is not UTF-8, a body of the
/// wrong media type, a body past the limit, …) answer `text/plain`; an API
/// client gets every refusal as problem+json, so this turns them into one
/// with the same status and their text as the detail (a 413 as
/// [`ApiError::TooLarge`]). HTML (the console) and JSON pass untouched.
pub async fn plain_rejection_as_problem(resp: Response) -> Response {
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !status.is_client_error() || !plain {
        return resp;
    }
    let mut headers = resp.headers().clone();
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut problem = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(text).into_response()
    } else {
        status_problem(status, text)
    };
    headers.remove(header::CONTENT_TYPE);
    headers.remove(header::CONTENT_LENGTH);
    problem.headers_mut().extend(headers);
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_is_what_the_highest_weight_names_first() {
        for (header, chinese) in [
            (None, false),
            (Some(""), false),
            (Some("zh"), true),
            (Some("zh-CN,zh;q=0.9,en;q=0.8"), true),
            (Some("ZH-hans"), true),
            (Some("en-US,en;q=0.9,zh-CN;q=0.8"), false),
            (Some("en;q=0.5, zh-TW;q=0.6"), true),
            (Some("zh;q=0, en"), false),
            (Some("zhx, zh"), false),
            (Some("de, zh"), false),
            (Some("*"), false),
        ] {
            assert_eq!(prefers_chinese(header), chinese, "{header:?}");
        }
    }

    #[test]
    fn every_type_has_its_own_slug_and_every_status_a_type() {
        let slugs: std::collections::BTreeSet<_> =
            ProblemType::ALL.iter().map(|t| t.slug()).collect();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
        for t in ProblemType::ALL {
            assert_eq!(ProblemType::from_slug(t.slug()), Some(t));
            let text = t.text();
            assert!(!text.title_zh.is_empty() && !text.about_zh.is_empty());
        }
        assert_eq!(
            ProblemType::for_status(StatusCode::IM_A_TEAPOT),
            ProblemType::BadRequest
        );
        assert_eq!(
            ProblemType::for_status(StatusCode::BAD_GATEWAY),
            ProblemType::Internal
        );
        // Outside a request: the default base, English.
        let p = ApiError::unprocessable("capacity", "must be positive").problem();
        assert_eq!(p.type_, format!("{DEFAULT_BASE}/problems/invalid-field"));
        assert_eq!(p.detail, "capacity: must be positive");
    }
}
