//! The console's stylesheet and script, built into the binary (no CDN: the
//! console works on a network without the internet) and served with a strong
//! ETag from their bytes, revalidated on each use (`no-cache`: a new binary's
//! assets are picked up at once, an unchanged one costs a 304).

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::PageError;
use crate::error::ApiError;
use crate::http::sites::not_modified;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 2] = [
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/console/console.css"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/console/console.js"),
    },
];

static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let mut h = std::hash::DefaultHasher::new();
            a.bytes.hash(&mut h);
            format!("\"{:016x}\"", h.finish())
        })
        .collect()
});

pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, PageError> {
    let i = ASSETS
        .iter()
        .position(|a| a.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {name}")))?;
    let (a, tag) = (&ASSETS[i], &TAGS[i]);
    let mut r = if not_modified(&headers, tag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response()
    };
    let h = r.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(tag).expect("ascii"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}
