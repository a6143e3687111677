//! Staying up under overload, and the headers every answer carries.
//!
//! - **Concurrency**: at most `max_concurrent_requests` requests are handled
//!   at once; one more is answered 503 with `Retry-After` at once (shed, not
//!   queued). `/healthz`, `/readyz` and `/metrics` are outside the limit: an
//!   orchestrator must see the node alive while it sheds.
//! - **Time**: a request still unanswered after `request_timeout` is dropped
//!   (its transaction, if any, rolls back) and answered 503 with
//!   `Retry-After`: the server, not the client, was too slow.
//! - **Writes** (POST, PUT, PATCH, DELETE) are limited per client address
//!   here and per signed-in user where the user is known (`Caller`, the
//!   console's `Session`): 429 with `Retry-After`.
//! - **Bodies** above the route's limit are 413 (`error::plain_rejection_as_problem`
//!   makes axum's own 413 problem+json).
//! - **Headers**: `nosniff`, no framing, no referrer, a CSP that allows
//!   nothing (the console's pages set their own), `no-store` on private or
//!   failed answers, and CORS for the configured origins only.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::client_addr::{Cidr, client_ip, limit_key};
use crate::domain::user::UserId;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::{KeyedBuckets, retry_after_secs};

/// The body limit of JSON endpoints (routes that take files set their own).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// How many clients (addresses, users) each write limit tracks at most.
const MAX_TRACKED: usize = 100_000;

/// The settings; `Default` limits nothing (the library's default: tests and
/// benches start without limits, `yizhan serve` with its flags' defaults).
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Requests handled at once beyond which more are shed (`None`: no limit).
    pub max_concurrent_requests: Option<usize>,
    /// How long a request may take (`None`: no bound).
    pub request_timeout: Option<Duration>,
    /// Writes a minute per client address, in bursts of as many (0: no limit).
    pub address_writes_per_minute: u32,
    /// Writes a minute per signed-in user, in bursts of as many (0: no limit).
    pub user_writes_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Origins allowed to call the API from a browser (CORS); empty: none.
    pub cors_origins: Vec<HeaderValue>,
    /// Where apps reach this yizhan (no trailing `/`): the base of problem
    /// types; `None`: each request's own scheme and host.
    pub public_url: Option<std::sync::Arc<str>>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// The header-read timeout and the connection cap of each listener.
    pub connections: super::connections::ConnLimits,
    /// How long and how many bookings may queue for the writer; they are
    /// outside `max_concurrent_requests` (queued, not shed).
    pub write_queue: crate::store::QueueBounds,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            max_concurrent_requests: None,
            request_timeout: None,
            address_writes_per_minute: 0,
            user_writes_per_minute: 0,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            public_url: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            connections: Default::default(),
            write_queue: Default::default(),
        }
    }
}

pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The settings and the state they need: permits, buckets.
pub struct Guard {
    pub config: GuardConfig,
    permits: Option<Arc<Semaphore>>,
    by_address: Option<KeyedBuckets<IpAddr>>,
    by_user: Option<KeyedBuckets<UserId>>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard::new(GuardConfig::default())
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

impl Guard {
    pub fn new(config: GuardConfig) -> Guard {
        Guard {
            permits: config
                .max_concurrent_requests
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            by_address: (config.address_writes_per_minute > 0)
                .then(|| KeyedBuckets::new(config.address_writes_per_minute, MAX_TRACKED)),
            by_user: (config.user_writes_per_minute > 0)
                .then(|| KeyedBuckets::new(config.user_writes_per_minute, MAX_TRACKED)),
            config,
        }
    }

    /// The client's address (see `client_addr`).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, &self.config.trusted_proxies)
    }

    /// A signed-in user's write: within their limit, or 429.
    pub fn check_user_write(
        &self,
        method: &Method,
        user: UserId,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        let Some(buckets) = self.by_user.as_ref().filter(|_| is_write(method)) else {
            return Ok(());
        };
        buckets.check(user, Instant::now()).map_err(|wait| {
            metrics.shed("user_rate");
            ApiError::TooManyRequests {
                detail: format!(
                    "more than {} changes a minute from this account; retry later",
                    self.config.user_writes_per_minute
                ),
                retry_after_s: retry_after_secs(wait),
            }
        })
    }

    /// CORS for the configured origins, or nothing.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        if self.config.cors_origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.config.cors_origins.clone()))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_MATCH,
                    header::IF_NONE_MATCH,
                    HeaderName::from_static("idempotency-key"),
                ])
                .expose_headers([
                    header::ETAG,
                    header::RETRY_AFTER,
                    header::LOCATION,
                    HeaderName::from_static("idempotent-replayed"),
                ])
                .max_age(Duration::from_secs(600)),
        )
    }
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Bookings: they wait in the writer's queue, bounded by the time it would
/// take to drain (`write_queue`), instead of holding a permit.
fn is_queued(method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix("/v1/events/")
            .and_then(|rest| rest.strip_suffix("/bookings"))
            .is_some_and(|id| !id.contains('/'))
}

/// The operators' endpoints, answered outside the concurrency limit.
fn is_ops(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Origins as `--cors-origins` takes them: `https://app.example.cn,http://localhost:5173`.
/// `--public-url`: an `http` or `https` URL with a host and no query; a
/// trailing `/` is dropped.
pub fn parse_public_url(v: &str) -> Result<std::sync::Arc<str>, String> {
    let v = v.trim().trim_end_matches('/');
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| format!("'{v}' is not an http or https URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && rest
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"?#\"<>".contains(&b));
    if !ok {
        return Err(format!("'{v}' is not a URL of a host (and path)"));
    }
    Ok(v.into())
}

pub fn parse_origins(s: &str) -> Result<Vec<HeaderValue>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let u = url::Url::parse(o).map_err(|e| format!("'{o}': {e}"))?;
            let origin = u.origin().ascii_serialization();
            if !matches!(u.scheme(), "http" | "https") || origin != o.trim_end_matches('/') {
                return Err(format!(
                    "'{o}': an origin is scheme://host[:port], nothing after"
                ));
            }
            HeaderValue::from_str(&origin).map_err(|e| format!("'{o}': {e}"))
        })
        .collect()
}

/// The concurrency limit, the per-address write limit and the time bound.
pub async fn limit(guard: Arc<Guard>, metrics: Arc<Metrics>, req: Request, next: Next) -> Response {
    let _permit = match &guard.permits {
        Some(permits)
            if !is_ops(req.uri().path()) && !is_queued(req.method(), req.uri().path()) =>
        {
            match permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    metrics.shed("concurrency");
                    return ApiError::Unavailable(format!(
                        "the server is handling its limit of {} requests at once; retry shortly",
                        guard.config.max_concurrent_requests.unwrap_or_default()
                    ))
                    .into_response();
                }
            }
        }
        _ => None,
    };
    if let Some(buckets) = guard.by_address.as_ref().filter(|_| is_write(req.method())) {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(peer) = peer {
            let ip = guard.client_ip(peer, req.headers());
            if let Err(wait) = buckets.check(limit_key(ip), Instant::now()) {
                metrics.shed("address_rate");
                return ApiError::TooManyRequests {
                    detail: format!(
                        "more than {} changes a minute from this address; retry later",
                        guard.config.address_writes_per_minute
                    ),
                    retry_after_s: retry_after_secs(wait),
                }
                .into_response();
            }
        }
    }
    // An extractor's own 413 (a raw body, a multipart upload) is made
    // problem+json with the other axum rejections (`plain_rejection_as_problem`).
    match guard.config.request_timeout {
        Some(bound) => match tokio::time::timeout(bound, next.run(req)).await {
            Ok(resp) => resp,
            Err(_) => {
                metrics.shed("timeout");
                ApiError::Unavailable(format!(
                    "the request took longer than {} s; retry shortly",
                    bound.as_secs_f64()
                ))
                .into_response()
            }
        },
        None => next.run(req).await,
    }
}

/// The security headers, each unless the handler set its own.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let private = req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key(header::COOKIE);
    let mut resp = next.run(req).await;
    let failed = resp.status().is_client_error() || resp.status().is_server_error();
    let tagged = resp.headers().contains_key(header::ETAG);
    let h = resp.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    // A person's own data, or an error, is never kept by a shared cache; what
    // carries an ETag (sites, tiles, assets) keeps its revalidation.
    if (private || failed) && !tagged {
        set(header::CACHE_CONTROL, "no-store");
    }
    resp
}
