//! The HTTP API: one router per resource, merged here.

pub mod account;
pub mod applications;
pub mod attendees;
pub mod body;
pub mod bookings;
pub mod caller;
pub mod checkins;
pub mod client_addr;
pub mod clusters;
pub mod connections;
pub mod contract;
pub mod events;
pub mod feed;
pub mod front;
pub mod guard;
pub mod holidays;
pub mod manage;
pub mod map;
pub mod memberships;
pub mod notifications;
pub mod ops;
pub mod paging;
pub mod params;
pub mod push;
pub mod search;
pub mod sites;
pub mod sms;
pub mod tiles;
pub mod unions;
pub mod wechat;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::Response;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::error::status_problem;
use crate::index::SiteIndex;
use crate::metrics::Metrics;
use crate::store::DynStore;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// The queue in front of the commands on events and bookings: a crowd's
    /// commands share a commit (`store::writer`).
    pub writer: crate::store::Writer,
    /// Token lookups, a crowd's read together (`store::reader`).
    pub tokens: crate::store::reader::TokenReader,
    pub index: Arc<SiteIndex>,
    pub metrics: Arc<Metrics>,
    /// Set once the index is built from the store.
    pub ready: Arc<AtomicBool>,
    /// Sign-in: the clock and the SMS sender.
    pub auth: crate::auth::Auth,
    /// The key that signs check-in codes, read from the store at start (a
    /// request never waits for it: the first of a crowd's confirmed bookings
    /// once waited a second for the database's write lock to create it).
    pub checkin_key: Arc<[u8]>,
    /// Web Push: the VAPID key and which endpoints are accepted.
    pub push: crate::push::PushConfig,
    /// The key that signs unions' join codes, read from the store at start.
    pub join_key: Arc<[u8]>,
    /// The managers' console (`/console/`): how its cookie is set.
    pub console: crate::console::ConsoleConfig,
    /// Overload and abuse limits, trusted proxies, CORS (see `guard`).
    pub guard: Arc<guard::Guard>,
    /// Texts (SMS): sign-in codes and the notices that must not be missed.
    pub sms: Arc<crate::sms::Texter>,
    /// The development `log` SMS provider is in use: a pending sign-in code is
    /// also stored in the clear, for `yizhan admin code`.
    pub dev_sign_in: bool,
    /// WeChat (the union's mini program): sign-in and subscribe messages;
    /// `None` without `--wechat-appid`.
    pub wechat: Option<std::sync::Arc<crate::wechat::Wechat>>,
}

/// The scheme and host a request came to (`X-Forwarded-Proto`/`-Host` when a
/// proxy sets them, else `Host`): `http://127.0.0.1:8080`.
pub fn public_base(headers: &axum::http::HeaderMap) -> String {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    request_base(
        text("x-forwarded-proto"),
        text("x-forwarded-host"),
        text("host"),
    )
}

/// [`public_base`] from the three headers' values.
pub fn request_base(
    forwarded_proto: Option<&str>,
    forwarded_host: Option<&str>,
    host: Option<&str>,
) -> String {
    fn first(v: Option<&str>) -> Option<&str> {
        v.and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
    let scheme = match first(forwarded_proto) {
        Some("https") => "https",
        _ => "http",
    };
    let host = first(forwarded_host)
        .or_else(|| first(host))
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The whole API as a router, ready to serve.
pub fn app(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let (limits, shed) = (state.guard.clone(), state.metrics.clone());
    let cors = state.guard.cors_layer();
    let public_url = state.guard.config.public_url.clone();
    Router::new()
        .merge(sites::router())
        .merge(feed::router())
        .merge(map::router())
        .merge(clusters::router())
        .merge(tiles::router())
        .merge(account::router())
        .merge(manage::router())
        .merge(events::router())
        .merge(bookings::router())
        .merge(applications::router())
        .merge(checkins::router())
        .merge(attendees::router())
        .merge(notifications::router())
        .merge(push::router())
        .merge(search::router())
        .merge(holidays::router())
        .merge(unions::router())
        .merge(memberships::router())
        .merge(sms::router())
        .merge(wechat::router())
        .merge(ops::router())
        .merge(front::router())
        // The managers' web pages: HTML, outside the JSON contract (openapi.yaml).
        .merge(crate::console::router())
        .fallback(|| async { status_problem(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            status_problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .with_state(state)
        // JSON bodies; the console's file uploads set their own, larger limit.
        .layer(DefaultBodyLimit::max(guard::JSON_BODY_LIMIT))
        .layer(axum::middleware::map_response(crate::error::plain_rejection_as_problem))
        // gzip or brotli when the client asks (Accept-Encoding); small bodies stay plain.
        .layer(CompressionLayer::new())
        // Shed beyond the concurrency limit, bound the time, limit writes per address.
        .layer(axum::middleware::from_fn(move |req: Request, next: axum::middleware::Next| {
            guard::limit(limits.clone(), shed.clone(), req, next)
        }))
        // Outside the limits: a shed answer still carries CORS and the security headers.
        .layer(tower::util::option_layer(cors))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .layer(axum::middleware::from_fn(move |req: Request, next: axum::middleware::Next| {
            let metrics = metrics.clone();
            async move { metrics.observe(req, next).await }
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_response(
                    |resp: &Response, latency: Duration, _span: &tracing::Span| {
                        tracing::info!(status = resp.status().as_u16(), latency_us = latency.as_micros() as u64, "response");
                    },
                ),
        )
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            status_problem(StatusCode::INTERNAL_SERVER_ERROR, "an internal error occurred; it has been logged")
        }))
        // Outermost: every problem (a panic's and a shed request's too) gets
        // its `type`'s base and the language the request asks for.
        .layer(axum::middleware::from_fn(move |req: Request, next: axum::middleware::Next| {
            let ctx = crate::error::ProblemContext::of(public_url.clone(), req.headers());
            crate::error::with_problem_context(ctx, next.run(req))
        }))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "yizhan",
        description = "Service sites of China's trade unions (outdoor-worker stations, mother rooms, union stations, craftsman studios) for workers' phone apps. Coordinates: every endpoint takes `crs=wgs84|gcj02|bd09` for its input and output. Errors are RFC 9457 problem+json.",
        license(name = "MIT")
    ),
    paths(sites::nearby, sites::site_detail, feed::changes, map::viewport, clusters::clusters, tiles::tile, search::search, account::request_code, account::sign_in, account::logout, account::me, account::put_profile, account::my_follows, account::user_by_id, manage::create_site, manage::patch_site, manage::retire_site, manage::history, manage::follow, manage::unfollow, events::create_event, events::event_detail, events::find_events, bookings::book, bookings::cancel, bookings::my_bookings, bookings::booking_or_ics, bookings::booking_ics, attendees::attendees_csv, checkins::check_in, attendees::attendees, bookings::accept, events::patch_event, notifications::inbox, notifications::read_one, notifications::read_all, push::vapid_public_key, push::subscribe, push::my_subscriptions, push::unsubscribe, push::get_settings, push::put_settings, holidays::holiday_year, holidays::put_holiday_year, ops::healthz, ops::readyz, ops::metrics, front::index, front::openapi, front::openapi_json, unions::create_union, unions::find_unions, unions::union_detail, unions::patch_union, unions::join_code, unions::rotate_join_code, unions::qr_svg, unions::applications, unions::stats, memberships::join, memberships::membership, memberships::approve, memberships::reject, memberships::transfer, memberships::withdraw, memberships::my_memberships, wechat::wechat_sign_in, wechat::unbind_wechat, wechat::wechat_subscriptions, applications::apply, applications::application, applications::withdraw, applications::my_applications, applications::draw_record),
    components(schemas(crate::error::Problem, sites::NearbyResponse, sites::NearbyItem, sites::SiteDoc, feed::ChangesResponse, feed::ChangeItem, feed::ChangeOp, clusters::ClustersResponse, clusters::ClusterItem, clusters::CountsByKind, account::CodeSent, account::TokenResponse, account::Me, account::WechatBinding, account::FollowsResponse, manage::HistoryResponse, manage::HistoryItem, crate::domain::user::Profile, crate::domain::user::Role, crate::domain::user::Gender, crate::domain::user::MaritalStatus, crate::domain::site::Closure, events::EventDoc, events::EventsResponse, bookings::MyBookings, bookings::MyBooking, bookings::EventSummary, checkins::CheckinResponse, attendees::Attendee, attendees::AttendeesResponse, notifications::NotificationDoc, notifications::InboxResponse, notifications::ReadAll, push::VapidPublicKey, push::SubscriptionDoc, push::SubscribeBody, push::SubscriptionKeys, push::SubscriptionsResponse, push::QuietHoursDoc, push::NotificationSettingsDoc, crate::domain::notify::NoticeType, crate::domain::event::Booking, crate::domain::event::BookingStatus, crate::domain::event::EventKind, crate::domain::event::EventStatus, crate::domain::event::Quota, crate::domain::event::QuotaAttribute, crate::domain::event::Eligibility, holidays::HolidayYearDoc, holidays::HolidayDay, holidays::HolidayYearBody, holidays::HolidayDayInput, unions::UnionDoc, unions::UnionsResponse, unions::JoinCodeDoc, unions::ApplicantDoc, unions::ApplicationDoc, unions::ApplicationsResponse, unions::MonthDoc, unions::FiguresDoc, unions::StatsResponse, memberships::MembershipDoc, memberships::MyMemberships, crate::domain::union::JoinPolicy, crate::domain::union::MembershipStatus, crate::domain::union::MonthCounts, wechat::ConsentsDoc, applications::MyApplications, applications::DrawRecord, applications::Entrant, crate::domain::application::Application, crate::domain::application::ApplicationStatus, crate::domain::event::Allocation, crate::domain::draw::PriorityGroup, map::SiteFeatureCollection, map::SiteFeature, map::Point, map::ViewportMetadata, map::FeatureType, map::PointType, map::FeatureCollectionType)),
    modifiers(&BearerAuth),
    tags(
        (name = "sites", description = "Finding service sites"),
        (name = "map", description = "The map at every zoom"),
        (name = "accounts", description = "Sign-in by phone, the signed-in person, follows"),
        (name = "management", description = "Admins and site managers keeping sites current"),
        (name = "events", description = "Courses, recuperation trips and matchmaking events, and booking them"),
        (name = "draws", description = "A fair draw (抽签) for scarce places: applying, and the public record anyone can recompute"),
        (name = "notifications", description = "The in-app inbox, and what else reaches a person and when"),
        (name = "push", description = "Web Push: the VAPID key and browsers' subscriptions"),
        (name = "unions", description = "Unions (基层工会 and their federations), joining them by a code (入会), review, transfer (转会), their numbers"),
        (name = "holidays", description = "China's holiday calendar that opening hours are evaluated with"),
        (name = "ops", description = "Health and metrics for operators"),
    )
)]
pub struct ApiDoc;

/// `bearer`: the token from `POST /v1/auth/token` (or `yizhan admin token`).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as YAML (checked in as `openapi.yaml`), with the
/// exact parameter and body schemas and cross-cutting answers of [`contract`].
pub fn openapi_yaml() -> String {
    let yaml =
        yaml_serde::to_string(&contract::exact(&ApiDoc::openapi())).expect("openapi serializes");
    quote_dates(&yaml)
}

/// A string that looks like a date (`2027-02-06`, `2026-12-24T14:00:00+08:00`)
/// is left bare by the serializer, and YAML 1.1 readers (PyYAML, so
/// schemathesis and most generators) read it back as a date, not the string
/// the JSON document has: such scalars are quoted.
fn quote_dates(yaml: &str) -> String {
    let looks_like_date = |v: &str| {
        let b = v.as_bytes();
        b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit)
            && (b.len() == 10 || b[10] == b'T')
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-:.+".contains(&c))
    };
    let mut out = String::with_capacity(yaml.len() + 64);
    for line in yaml.lines() {
        match line.split_once(": ") {
            Some((key, value)) if looks_like_date(value) => {
                out.push_str(&format!("{key}: '{value}'"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_like_scalars_are_quoted_and_nothing_else_changes() {
        let yaml = "a:\n  example: 2027-02-06\n  b: 2026-12-24T14:00:00+08:00\n  c: 2026\n  d: 2026-12-24 holiday\n  e: '2027-01-01'\n";
        assert_eq!(
            super::quote_dates(yaml),
            "a:\n  example: '2027-02-06'\n  b: '2026-12-24T14:00:00+08:00'\n  c: 2026\n  d: 2026-12-24 holiday\n  e: '2027-01-01'\n"
        );
        // The document has no bare date left.
        let doc = super::openapi_yaml();
        assert!(
            doc.contains("example: '2027-02-06'"),
            "the holiday example is quoted"
        );
        for line in doc.lines() {
            if let Some((_, v)) = line.split_once(": ") {
                assert!(
                    !(v.len() >= 10
                        && v.as_bytes()[4] == b'-'
                        && v[..4].bytes().all(|b| b.is_ascii_digit())),
                    "{line}"
                );
            }
        }
    }
}
