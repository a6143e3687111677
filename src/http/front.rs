//! The front door: `GET /` says where things are (the managers' console, the
//! API reference, the operators' endpoints), and `GET /openapi.yaml` is the
//! API reference itself (the same document as the checked-in `openapi.yaml`).

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/openapi.yaml", get(openapi))
}

/// Where to go from here: `{service, console, api_reference, docs, ops}`.
#[utoipa::path(get, path = "/", tag = "ops", responses((status = 200, description = "Pointers: `{service, console, api_reference, ops: {healthz, readyz, metrics}}`")))]
pub async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "service": "yizhan",
        "version": env!("CARGO_PKG_VERSION"),
        "console": "/console/",
        "api_reference": "/openapi.yaml",
        "ops": {"healthz": "/healthz", "readyz": "/readyz", "metrics": "/metrics"},
    }))
}

/// The OpenAPI document of this API (YAML).
#[utoipa::path(get, path = "/openapi.yaml", tag = "ops", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/yaml", body = Object)))]
pub async fn openapi() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let mut r = DOC.get_or_init(super::openapi_yaml).clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    r
}
