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
        .route("/openapi.json", get(openapi_json))
        .route("/api/", get(api_reference))
        .route("/api/redoc.standalone.js", get(redoc_js))
}

/// Where to go from here: `{service, console, api_reference, docs, ops}`.
#[utoipa::path(get, path = "/", tag = "ops", responses((status = 200, description = "Pointers: `{service, version, console, api_reference, openapi: {yaml, json}, ops: {healthz, readyz, metrics}}`")))]
pub async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "service": "yizhan",
        "version": env!("CARGO_PKG_VERSION"),
        "console": "/console/",
        "api_reference": "/api/",
        "openapi": {"yaml": "/openapi.yaml", "json": "/openapi.json"},
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

/// The OpenAPI document of this API (JSON): the same document as `/openapi.yaml`.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| {
        serde_json::to_string(&super::contract::exact(
            &<super::ApiDoc as utoipa::OpenApi>::openapi(),
        ))
        .expect("the document serializes")
    });
    let mut r = body.clone().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Redoc 2.5.4 (MIT, `assets/api/`), vendored: the reference works offline.
const REDOC: &[u8] = include_bytes!("../../assets/api/redoc.standalone.js");

/// The API reference as a readable page, rendered in the browser by the
/// vendored Redoc from `/openapi.json`: nothing is fetched from elsewhere.
pub async fn api_reference() -> Response {
    const PAGE: &str = r#"<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>yizhan API 参考</title>
<link rel="icon" href="data:,">
</head>
<body>
<redoc spec-url="/openapi.json" hide-download-button="false"></redoc>
<script src="/api/redoc.standalone.js"></script>
</body>
</html>
"#;
    let mut r = PAGE.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Redoc styles with <style> elements and searches in a worker made from a blob.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    r
}

/// The vendored Redoc bundle.
pub async fn redoc_js() -> Response {
    let mut r = REDOC.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}
