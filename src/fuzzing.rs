//! Fuzz targets: what must hold for *every* input to the parsers that face
//! the outside — query strings and path ids, push-subscription and settings
//! bodies, GeoJSON imports, opening hours, check-in and join codes.
//!
//! Each target takes arbitrary bytes and panics when a property fails. They
//! are driven two ways:
//! - coverage-guided, by `cargo fuzz` (`fuzz/fuzz_targets/*.rs`, run for a
//!   fixed time each by `scripts/fuzz`), which grows `fuzz/corpus/`;
//! - in every test run, by `tests/fuzz.rs`, which replays the corpus and
//!   every input a fuzzer ever crashed on (`fuzz/regressions/`).
//!
//! The HTTP targets go through the real router (`http::app`) over a real
//! SQLite file, so they check the parsers as deployed: never a 5xx, never a
//! panic, and every refusal a problem+json whose status matches the answer's.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::{TimeZone, Utc};
use tower::ServiceExt;

use crate::domain::calendar::{HolidayCalendar, shipped_years};
use crate::domain::coords::Crs;
use crate::domain::event::BookingId;
use crate::domain::hours::Hours;
use crate::domain::site::{AmenitySet, Kind, SiteDraft, Status};
use crate::domain::union::UnionId;
use crate::domain::user::{Phone, Role};

/// Opening hours: `validate` and `parse` agree; whatever parses evaluates at
/// any instant without panicking, `is_open` agrees with `evaluate`, and the
/// next change (if any) lies after the instant asked about.
pub fn opening_hours(data: &[u8]) {
    let (head, rest) = split_head::<8>(data);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let calendar = calendar();
    let parsed = Hours::parse(text, calendar);
    assert_eq!(
        Hours::validate(text).is_ok(),
        parsed.is_ok(),
        "validate and parse disagree on {text:?}"
    );
    let Ok(hours) = parsed else { return };
    // An instant between 2024 and 2027 (the shipped calendar's years and beyond).
    let secs = 1_704_067_200 + (u64::from_le_bytes(head) % (4 * 366 * 86_400)) as i64;
    let at = Utc.timestamp_opt(secs, 0).single().expect("in range");
    let state = hours.evaluate(at);
    assert_eq!(hours.is_open(at), state.is_open, "{text:?} at {at}");
    if let Some(next) = state.next_change {
        assert!(
            next > at,
            "{text:?} at {at}: next change {next} is not later"
        );
    }
}

/// GeoJSON import: never a panic; what imports writes back out as GeoJSON
/// that imports to the same drafts (WGS-84 here: a datum shift is not exact).
pub fn geojson_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(drafts) = crate::geodata::geojson::parse_collection(text, Crs::Wgs84) else {
        return;
    };
    let mut out = Vec::new();
    crate::geodata::geojson::write_collection(
        &mut out,
        serde_json::Value::Null,
        drafts
            .iter()
            .map(|d| crate::geodata::geojson::draft_to_feature(d, Crs::Wgs84)),
    )
    .expect("writes to memory");
    let again = crate::geodata::geojson::parse_collection(
        std::str::from_utf8(&out).expect("GeoJSON out is UTF-8"),
        Crs::Wgs84,
    )
    .unwrap_or_else(|e| panic!("what import accepted does not re-import: {e}"));
    assert_eq!(drafts, again, "an import's drafts change through export");
}

const CODE_KEY: &[u8] = b"fuzzing key for check-in and join codes";

/// Check-in and join codes: only a genuine code verifies (its text is exactly
/// the code the key makes for what it names), a genuine code always
/// verifies, and changing any one character of it makes it fail.
pub fn codes(data: &[u8]) {
    let (head, rest) = split_head::<8>(data);
    let text = String::from_utf8_lossy(rest);
    use crate::domain::{checkin, union};
    if let Some(id) = checkin::verify(CODE_KEY, &text) {
        assert_eq!(
            checkin::code(CODE_KEY, id),
            text.trim(),
            "a forged check-in code verified"
        );
    }
    if let Some((u, v)) = union::verify_join_code(CODE_KEY, &text) {
        assert_eq!(
            union::join_code(CODE_KEY, u, v),
            text.trim(),
            "a forged join code verified"
        );
    }
    let scanned = union::code_in(&text);
    assert!(text.contains(scanned), "code_in invented text");

    let n = u64::from_le_bytes(head);
    if let Some(id) = BookingId::from_u64(n) {
        let genuine = checkin::code(CODE_KEY, id);
        assert_eq!(checkin::verify(CODE_KEY, &genuine), Some(id));
        let tampered = flip(&genuine, n);
        assert_eq!(
            checkin::verify(CODE_KEY, &tampered),
            None,
            "{tampered:?} verified"
        );
    }
    if let Some(u) = UnionId::from_u64(n >> 1) {
        let version = (n & 0xffff) as u32;
        let genuine = union::join_code(CODE_KEY, u, version);
        assert_eq!(
            union::verify_join_code(CODE_KEY, &genuine),
            Some((u, version))
        );
        let tampered = flip(&genuine, n);
        assert_eq!(
            union::verify_join_code(CODE_KEY, &tampered),
            None,
            "{tampered:?} verified"
        );
    }
}

/// `code` with the character at a position chosen by `n` replaced by another
/// character of the URL-safe base64 alphabet.
fn flip(code: &str, n: u64) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let i = (n % bytes.len() as u64) as usize;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ASCII")
}

/// The GET endpoints whose query strings `query` fuzzes; `{}` takes a path
/// segment from the input.
const GET_PATHS: &[&str] = &[
    "/v1/sites/nearby",
    "/v1/sites/search",
    "/v1/sites/changes",
    "/v1/sites/clusters",
    "/v1/sites",
    "/v1/events",
    "/v1/holidays",
    "/v1/unions",
    "/v1/me/notifications",
    "/v1/me/bookings",
    "/v1/sites/{}",
    "/v1/sites/{}/history",
    "/v1/events/{}",
    "/v1/events/{}/attendees",
    "/v1/bookings/{}",
    "/v1/users/{}",
    "/v1/unions/{}",
    "/v1/tiles/{}",
];

/// Query strings and path ids, through the real router: never a 5xx, and
/// every refusal is problem+json naming its own status. The first byte picks
/// the endpoint; a path segment (up to the first `?`) and the query follow.
pub fn query(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let template = GET_PATHS[pick as usize % GET_PATHS.len()];
    let (segment, query) = match rest.iter().position(|&b| b == b'?') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let path = if template.contains("{}") {
        template.replace("{}", &escape(segment, b"/"))
    } else {
        template.to_owned()
    };
    let uri = format!("{path}?{}", escape(query, b"=&"));
    api().call(Method::GET, &uri, None);
}

/// Push-subscription and notification-settings bodies: the first byte picks
/// which; never a 5xx, refusals are problem+json, and an accepted
/// subscription comes back with its id.
pub fn push_body(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, uri) = if pick % 2 == 0 {
        (Method::POST, "/v1/push/subscriptions")
    } else {
        (Method::PUT, "/v1/me/notification-settings")
    };
    let (status, json) = api().call(method, uri, Some(body.to_vec()));
    if status == StatusCode::CREATED {
        assert!(
            json["id"].is_string() || json["id"].is_number(),
            "no id in {json}"
        );
    }
}

/// Bytes as URI text: kept where they are plain, percent-encoded otherwise
/// (and `keep` stays literal, so a query keeps its `=` and `&`).
fn escape(bytes: &[u8], keep: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~%+,:".contains(&b) || keep.contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn split_head<const N: usize>(data: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = data.len().min(N);
    head[..n].copy_from_slice(&data[..n]);
    (head, &data[n..])
}

fn calendar() -> &'static Arc<HolidayCalendar> {
    static CALENDAR: OnceLock<Arc<HolidayCalendar>> = OnceLock::new();
    CALENDAR.get_or_init(|| Arc::new(HolidayCalendar::new(shipped_years(), 1)))
}

/// The service over a real SQLite file in the temp directory, with a few
/// sites and a signed-in worker, driven in-process on one thread.
struct Api {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    token: String,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(Api::start)
}

impl Api {
    fn start() -> Api {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("yizhan-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite:{}", dir.join("yizhan.db").display());
        let (app, token) = rt.block_on(async {
            let store = crate::store::connect(&url).await.expect("store opens");
            let now = Utc::now();
            let drafts = (0..20).map(|n| site(n, 36.6 + n as f64 * 0.01, 117.0 + n as f64 * 0.01));
            store
                .import_sites(drafts.collect(), now)
                .await
                .expect("import");
            let phone: Phone = "13800000001".parse().expect("phone");
            let user = store
                .put_user(&phone, Role::Worker, &[], now)
                .await
                .expect("user");
            let token = crate::auth::new_token();
            store
                .create_token(
                    user.id,
                    &crate::auth::token_hash(&token),
                    now + chrono::Duration::days(365),
                )
                .await
                .expect("token");
            let auth = crate::auth::Auth {
                clock: Arc::new(crate::auth::SystemClock),
                sms: Arc::new(crate::auth::MemorySender::default()),
                sms_receipt_token: None,
            };
            let service = crate::service::Service::with_parts(
                store,
                crate::service::Timers::every(std::time::Duration::from_secs(3600)),
                auth,
                crate::push::PushConfig::ephemeral(true),
            )
            .await
            .expect("service starts");
            (crate::http::app(service.state.clone()), token)
        });
        Api { rt, app, token }
    }

    /// One request as the signed-in worker; checks the properties every
    /// answer must have and returns its status and JSON body (Null if none).
    fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, serde_json::Value) {
        let Ok(mut req) = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.unwrap_or_default()))
        else {
            return (StatusCode::BAD_REQUEST, serde_json::Value::Null);
        };
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                9,
            ))));
        self.rt.block_on(async {
            let resp = self.app.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let content_type = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body reads");
            assert!(
                !status.is_server_error(),
                "{uri}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if status.is_client_error() {
                assert!(
                    content_type.starts_with("application/problem+json"),
                    "{uri}: {status} as {content_type:?}"
                );
                assert_eq!(json["status"], status.as_u16(), "{uri}: {json}");
            }
            (status, json)
        })
    }
}

fn site(n: usize, lat: f64, lon: f64) -> SiteDraft {
    SiteDraft {
        ext_ref: Some(format!("fuzz-{n}")),
        kind: [Kind::OutdoorStation, Kind::MotherRoom][n % 2],
        name: format!("测试站点{n}"),
        address: format!("山东省济南市历下区测试路{n}号"),
        adcode: "370102".parse().expect("adcode"),
        lat,
        lon,
        amenities: AmenitySet::EMPTY,
        opening_hours: "Mo-Fr 08:00-18:00; PH off".into(),
        phone: None,
        photos: vec![],
        status: Status::Open,
        closure: Default::default(),
        union_id: None,
    }
}
