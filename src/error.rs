//! The HTTP error type: every 4xx and 5xx leaves as RFC 9457 problem+json.
//! Internal details are logged here and never returned to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request parameter or body field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// Where in the field's value the fault is (0-based character offset), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
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
        let (type_, detail, param) = match self {
            ApiError::InvalidParam { param, detail } => (
                "/problems/invalid-parameter",
                format!("{param}: {detail}"),
                Some(param.clone()),
            ),
            ApiError::Unauthorized(why) => ("/problems/unauthorized", why.clone(), None),
            ApiError::Forbidden { detail, param } => {
                ("/problems/forbidden", detail.clone(), param.clone())
            }
            ApiError::Conflict(why) => ("/problems/conflict", why.clone(), None),
            ApiError::PreconditionRequired(why) => (
                "/problems/precondition-required",
                why.clone(),
                Some("If-Match".to_owned()),
            ),
            ApiError::PreconditionFailed(why) => (
                "/problems/precondition-failed",
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
                    "/problems/invalid-field",
                    format!("{param}: {detail}"),
                    Some(param.clone()),
                )
            }
            ApiError::TooManyRequests { detail, .. } => {
                ("/problems/rate-limited", detail.clone(), None)
            }
            ApiError::TooLarge(why) => {
                ("/problems/too-large", why.clone(), Some("body".to_owned()))
            }
            ApiError::NotFound(what) => ("/problems/not-found", what.clone(), None),
            ApiError::UnknownId { param, detail } => (
                "/problems/not-found",
                format!("{param}: {detail}"),
                Some(param.clone()),
            ),
            ApiError::Unavailable(why) => ("/problems/unavailable", why.clone(), None),
            ApiError::UnavailableFor { detail, .. } => {
                ("/problems/unavailable", detail.clone(), None)
            }
            ApiError::Store(_) | ApiError::Internal(_) => (
                "/problems/internal",
                "an internal error occurred; it has been logged".to_owned(),
                None,
            ),
        };
        Problem {
            type_: type_.to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            param,
            position,
        }
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
    let type_ = match status {
        StatusCode::NOT_FOUND => "/problems/not-found",
        StatusCode::METHOD_NOT_ALLOWED => "/problems/method-not-allowed",
        _ if status.is_server_error() => "/problems/internal",
        _ => "about:blank",
    };
    Problem {
        type_: type_.to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: detail.into(),
        param: None,
        position: None,
    }
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
