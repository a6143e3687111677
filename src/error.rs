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
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter, path segment or header is malformed or out of range.
    #[error("{param}: {detail}")]
    InvalidParam { param: String, detail: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
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
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (type_, detail, param) = match self {
            ApiError::InvalidParam { param, detail } => (
                "/problems/invalid-parameter",
                format!("{param}: {detail}"),
                Some(param.clone()),
            ),
            ApiError::NotFound(what) => ("/problems/not-found", what.clone(), None),
            ApiError::Unavailable(why) => ("/problems/unavailable", why.clone(), None),
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
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        self.problem().into_response()
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
    }
    .into_response()
}
