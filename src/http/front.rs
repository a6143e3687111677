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
        .route("/problems/", get(problem_index))
        .route("/problems/{slug}", get(problem_page))
}

/// The served documents name problem types under the base of the request
/// (or `--public-url`), not the checked-in document's.
fn with_base(doc: &str) -> String {
    let checked_in = format!("{}/problems/", crate::error::DEFAULT_BASE);
    doc.replace(
        &checked_in,
        &format!("{}/problems/", crate::error::problem_base()),
    )
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
    let mut r = with_base(DOC.get_or_init(super::openapi_yaml)).into_response();
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
    let mut r = with_base(body).into_response();
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

/// Text for HTML: `&`, `<`, `>` escaped, and `code` spans in backticks.
fn html_text(s: &str) -> String {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let mut out = String::new();
    for (i, part) in escaped.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(part);
            out.push_str("</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

fn html_page(title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<link rel=\"icon\" href=\"data:,\">\n\
         <style>body{{font-family:sans-serif;max-width:40em;margin:1em auto;padding:0 1em;line-height:1.5}}\
         code{{background:#eee;padding:0 .2em}}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    );
    axum::response::Html(page).into_response()
}

/// Every problem type, for people: what each means and what to do.
pub async fn problem_index() -> Response {
    let mut body = String::from(
        "<h1>问题类型 Problem types</h1>\n<p>yizhan 的每个错误回答都是 RFC 9457 problem+json，\
         其 <code>type</code> 是下列之一。Every error answer is RFC 9457 problem+json whose \
         <code>type</code> is one of these.</p>\n<ul>\n",
    );
    for t in crate::error::ProblemType::ALL {
        let text = t.text();
        body.push_str(&format!(
            "<li><a href=\"{slug}\">{slug}</a>: {zh} / {en}</li>\n",
            slug = t.slug(),
            zh = text.title_zh,
            en = text.title_en
        ));
    }
    body.push_str("</ul>\n");
    html_page("yizhan 问题类型", &body)
}

/// One problem type's page: what its `type` URI answers.
pub async fn problem_page(axum::extract::Path(slug): axum::extract::Path<String>) -> Response {
    let Some(t) = crate::error::ProblemType::from_slug(&slug) else {
        return crate::error::status_problem(
            axum::http::StatusCode::NOT_FOUND,
            "no such problem type",
        );
    };
    let text = t.text();
    let uri = format!("{}/problems/{}", crate::error::problem_base(), t.slug());
    let body = format!(
        "<h1>{zh_title}<br>{en_title}</h1>\n<p><code>{uri}</code></p>\n\
         <p lang=\"zh-CN\">{zh}</p>\n<p lang=\"en\">{en}</p>\n\
         <p><a href=\"./\">所有问题类型 All problem types</a></p>\n",
        zh_title = text.title_zh,
        en_title = text.title_en,
        uri = html_text(&uri),
        zh = html_text(text.about_zh),
        en = html_text(text.about_en),
    );
    html_page(&format!("{} · {}", text.title_zh, text.title_en), &body)
}
