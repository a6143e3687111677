//! Every operation of the OpenAPI document in one authorization matrix
//! (issue 16): role × resource × scope.
//!
//! The world: sites A and C managed by `M_A`, site B by `M_B`; events at A
//! (two) and at B; a worker `W` with bookings on A's events, a notification, a
//! push subscription and a pending application to union U; another worker
//! `W2`; union U run by `UA` and, from the federation above it, `UF`;
//! union V (no federation) run by `UV`; an admin; and nobody
//! (anonymous). Each row of [`table`] names one operation, the resource its
//! path ids point at, a body that gets past parsing to the authorization
//! check, and for each caller the expected class. The test fails when an
//! operation of the document has no row, when a row names an operation the
//! document lacks, or when any cell disagrees; it then prints the whole
//! matrix, expected/got.
//!
//! Within a row the refused callers go first and the allowed ones after, so
//! a write by an allowed caller (a cancelled booking, a deleted
//! subscription) cannot make a later refusal look like a "not found".
//!
//! A refused caller is also sent the row's body with a field no handler knows
//! (`authz_probe`): it must still be refused, not told about the field — a
//! handler that judges the body before the caller fails here. Only the
//! fields that name the scope (`site_id` of a new event, `event_id` of a
//! check-in) are necessarily read first, and then only those.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use reqwest::Method;
use serde_json::{Value, json};
use utoipa::OpenApi;
use yizhan::domain::site::{Kind, SiteId};
use yizhan::domain::union::UnionId;
use yizhan::domain::user::{Phone, Role};

use crate::events::{book, make_event};
use crate::helpers::{TestApp, draft, spawn_app};

/// What the authorization layer did with a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    /// 401: no valid token.
    Unauth,
    /// 403: signed in, but not allowed.
    Forbid,
    /// 404 where the server hides another person's resource.
    Hidden,
    /// Let through: any status but 401/403 (and, in a row that hides, 404),
    /// below 500, and no 429/503 (there is no load here to shed).
    Allow,
}

use Class::{Allow as A, Forbid as F, Hidden as H, Unauth as U};

impl Class {
    fn letter(self) -> char {
        match self {
            U => 'U',
            F => 'F',
            H => 'H',
            A => 'A',
        }
    }
}

/// The callers, in the order of every row's expectations.
const CALLERS: [&str; 9] = ["anon", "W", "W2", "M_A", "M_B", "UA", "UF", "UV", "admin"];

/// Anyone, signed in or not.
const PUBLIC: [Class; 9] = [A; 9];
/// Anyone signed in, about themselves.
const SIGNED_IN: [Class; 9] = [U, A, A, A, A, A, A, A, A];
const ADMIN_ONLY: [Class; 9] = [U, F, F, F, F, F, F, F, A];
/// Site A's managers and admins.
const SITE_A: [Class; 9] = [U, F, F, A, F, F, F, F, A];
const SITE_B: [Class; 9] = [U, F, F, F, A, F, F, F, A];
/// Union U's admins, those of the federation above it, and admins.
const UNION_U: [Class; 9] = [U, F, F, F, F, A, A, F, A];
const UNION_V: [Class; 9] = [U, F, F, F, F, F, F, A, A];
/// W's booking on A's event: its holder, the event's site managers, admins.
const BOOKING_W: [Class; 9] = [U, A, F, A, F, F, F, F, A];
/// W's own decision alone (accepting an offer, moving or withdrawing a membership).
const ONLY_W: [Class; 9] = [U, A, F, F, F, F, F, F, F];
/// W's membership: its member, its union's admins, admins.
const MEMBERSHIP_W: [Class; 9] = [U, A, F, F, F, A, A, F, A];
/// W's application to a draw at A: its holder, the event's site managers and
/// admins; anyone else is told it does not exist.
const APPLICATION_W: [Class; 9] = [U, A, H, A, H, H, H, H, A];
/// W's private things, addressed by id: anyone else is told it does not exist.
const HIDDEN_BUT_W: [Class; 9] = [U, A, H, H, H, H, H, H, H];

/// What a row's path ids point at.
#[derive(Clone, Copy, Debug)]
enum Res {
    None,
    SiteA,
    SiteB,
    /// Managed by M_A too; retired by its row.
    SiteC,
    EventA,
    EventB,
    /// W's booking on event A.
    BookingW,
    /// W's booking on a second event at A (cancelled by its row).
    BookingW2,
    /// A draw event at A.
    DrawA,
    /// W's application to it.
    ApplicationW,
    MembershipW,
    UnionU,
    UnionV,
    NotificationW,
    SubscriptionW,
    UserW,
    Year,
    Tile,
}

struct World {
    site_a: String,
    site_b: String,
    site_c: String,
    event_a: String,
    event_b: String,
    booking_w: String,
    booking_w2: String,
    draw_a: String,
    application_w: String,
    checkin_code_w: String,
    membership_w: String,
    union_u: String,
    union_v: String,
    notification_w: String,
    subscription_w: String,
    user_w: i64,
    /// Per caller (as [`CALLERS`]): the token, and the user id.
    tokens: Vec<Option<String>>,
    users: Vec<Option<i64>>,
}

impl World {
    fn id(&self, r: Res) -> String {
        match r {
            Res::None => String::new(),
            Res::SiteA => self.site_a.clone(),
            Res::SiteB => self.site_b.clone(),
            Res::SiteC => self.site_c.clone(),
            Res::EventA => self.event_a.clone(),
            Res::EventB => self.event_b.clone(),
            Res::BookingW => self.booking_w.clone(),
            Res::BookingW2 => self.booking_w2.clone(),
            Res::DrawA => self.draw_a.clone(),
            Res::ApplicationW => self.application_w.clone(),
            Res::MembershipW => self.membership_w.clone(),
            Res::UnionU => self.union_u.clone(),
            Res::UnionV => self.union_v.clone(),
            Res::NotificationW => self.notification_w.clone(),
            Res::SubscriptionW => self.subscription_w.clone(),
            Res::UserW => self.user_w.to_string(),
            Res::Year => "2027".into(),
            Res::Tile => String::new(),
        }
    }

    /// The template with its ids filled in for `r`.
    fn path(&self, template: &str, r: Res) -> String {
        match r {
            Res::Tile => template
                .replace("{z}", "12")
                .replace("{x}", "3381")
                .replace("{y}", "1577"),
            Res::Year => template.replace("{year}", "2027"),
            r => template.replace("{id}", &self.id(r)),
        }
    }
}

type Body = fn(&World) -> Option<Value>;

struct Row {
    method: Method,
    template: &'static str,
    res: Res,
    /// Appended to the path (a query string).
    query: &'static str,
    body: Body,
    /// Each caller signs in afresh for this row (logout revokes its token).
    fresh_token: bool,
    expect: [Class; 9],
}

fn none(_: &World) -> Option<Value> {
    None
}

fn empty(_: &World) -> Option<Value> {
    Some(json!({}))
}

fn row(method: Method, template: &'static str, res: Res, body: Body, expect: [Class; 9]) -> Row {
    Row {
        method,
        template,
        res,
        query: "",
        body,
        fresh_token: false,
        expect,
    }
}

/// The matrix. Rows run in this order; within a row refusals go first.
fn table() -> Vec<Row> {
    use Method as M;
    let q = |mut r: Row, query: &'static str| {
        r.query = query;
        r
    };
    vec![
        // Operations.
        row(M::GET, "/healthz", Res::None, none, PUBLIC),
        row(M::GET, "/readyz", Res::None, none, PUBLIC),
        row(M::GET, "/metrics", Res::None, none, PUBLIC),
        row(M::GET, "/", Res::None, none, PUBLIC),
        row(M::GET, "/openapi.yaml", Res::None, none, PUBLIC),
        row(M::GET, "/openapi.json", Res::None, none, PUBLIC),
        // Public reads.
        q(
            row(M::GET, "/v1/sites", Res::None, none, PUBLIC),
            "?bbox=116.9,36.5,117.3,36.8",
        ),
        row(M::GET, "/v1/sites/changes", Res::None, none, PUBLIC),
        q(
            row(M::GET, "/v1/sites/clusters", Res::None, none, PUBLIC),
            "?bbox=116.9,36.5,117.3,36.8&zoom=10",
        ),
        q(
            row(M::GET, "/v1/sites/nearby", Res::None, none, PUBLIC),
            "?lat=36.65&lon=117.12",
        ),
        q(
            row(M::GET, "/v1/sites/search", Res::None, none, PUBLIC),
            "?q=%E6%B5%8B%E8%AF%95",
        ),
        row(M::GET, "/v1/sites/{id}", Res::SiteA, none, PUBLIC),
        row(M::GET, "/v1/tiles/{z}/{x}/{y}.mvt", Res::Tile, none, PUBLIC),
        q(
            row(M::GET, "/v1/holidays", Res::None, none, PUBLIC),
            "?year=2026",
        ),
        q(
            row(M::GET, "/v1/events", Res::None, none, PUBLIC),
            "?lat=36.65&lon=117.12",
        ),
        row(M::GET, "/v1/events/{id}", Res::EventA, none, PUBLIC),
        q(
            row(M::GET, "/v1/unions", Res::None, none, PUBLIC),
            "?adcode=37",
        ),
        row(M::GET, "/v1/unions/{id}", Res::UnionU, none, PUBLIC),
        row(M::GET, "/v1/push/vapid-public-key", Res::None, none, PUBLIC),
        // Signing in: public (an empty body is refused as a bad field).
        row(M::POST, "/v1/auth/otp", Res::None, empty, PUBLIC),
        row(M::POST, "/v1/auth/token", Res::None, empty, PUBLIC),
        row(M::POST, "/v1/auth/wechat", Res::None, empty, PUBLIC),
        row(M::DELETE, "/v1/me/wechat", Res::None, none, SIGNED_IN),
        row(
            M::POST,
            "/v1/me/wechat/subscriptions",
            Res::None,
            empty,
            SIGNED_IN,
        ),
        // About oneself.
        row(M::GET, "/v1/me", Res::None, none, SIGNED_IN),
        row(M::GET, "/v1/me/bookings", Res::None, none, SIGNED_IN),
        row(M::GET, "/v1/me/follows", Res::None, none, SIGNED_IN),
        row(M::GET, "/v1/me/memberships", Res::None, none, SIGNED_IN),
        row(
            M::GET,
            "/v1/me/notification-settings",
            Res::None,
            none,
            SIGNED_IN,
        ),
        row(
            M::PUT,
            "/v1/me/notification-settings",
            Res::None,
            empty,
            SIGNED_IN,
        ),
        row(M::GET, "/v1/me/notifications", Res::None, none, SIGNED_IN),
        row(
            M::POST,
            "/v1/me/notifications/read-all",
            Res::None,
            none,
            SIGNED_IN,
        ),
        row(
            M::POST,
            "/v1/me/notifications/{id}/read",
            Res::NotificationW,
            none,
            HIDDEN_BUT_W,
        ),
        row(
            M::PUT,
            "/v1/me/profile",
            Res::None,
            |_| Some(json!({"display_name": "职工"})),
            SIGNED_IN,
        ),
        row(M::GET, "/v1/push/subscriptions", Res::None, none, SIGNED_IN),
        row(
            M::POST,
            "/v1/push/subscriptions",
            Res::None,
            empty,
            SIGNED_IN,
        ),
        row(
            M::DELETE,
            "/v1/push/subscriptions/{id}",
            Res::SubscriptionW,
            none,
            HIDDEN_BUT_W,
        ),
        row(M::PUT, "/v1/sites/{id}/follow", Res::SiteA, none, SIGNED_IN),
        row(
            M::DELETE,
            "/v1/sites/{id}/follow",
            Res::SiteA,
            none,
            SIGNED_IN,
        ),
        // Other people's accounts: admins.
        row(M::GET, "/v1/users/{id}", Res::UserW, none, ADMIN_ONLY),
        row(
            M::PUT,
            "/v1/admin/holidays/{year}",
            Res::Year,
            empty,
            ADMIN_ONLY,
        ),
        // Sites: creating and retiring are an admin's; editing and the audit
        // log the site's managers' (each only their own) and admins'.
        row(M::POST, "/v1/sites", Res::None, empty, ADMIN_ONLY),
        row(M::PATCH, "/v1/sites/{id}", Res::SiteA, empty, SITE_A),
        row(M::PATCH, "/v1/sites/{id}", Res::SiteB, empty, SITE_B),
        row(M::GET, "/v1/sites/{id}/history", Res::SiteA, none, SITE_A),
        row(M::GET, "/v1/sites/{id}/history", Res::SiteB, none, SITE_B),
        // M_A manages C, yet only an admin retires a site.
        row(M::DELETE, "/v1/sites/{id}", Res::SiteC, none, ADMIN_ONLY),
        // Events: run by their site's managers and admins.
        row(
            M::POST,
            "/v1/events",
            Res::None,
            |w| Some(json!({"site_id": w.site_a})),
            SITE_A,
        ),
        row(
            M::POST,
            "/v1/events",
            Res::None,
            |w| Some(json!({"site_id": w.site_b})),
            SITE_B,
        ),
        // Away from any site: admins only.
        row(M::POST, "/v1/events", Res::None, empty, ADMIN_ONLY),
        row(M::PATCH, "/v1/events/{id}", Res::EventA, empty, SITE_A),
        row(M::PATCH, "/v1/events/{id}", Res::EventB, empty, SITE_B),
        row(
            M::GET,
            "/v1/events/{id}/attendees",
            Res::EventA,
            none,
            SITE_A,
        ),
        row(
            M::GET,
            "/v1/events/{id}/attendees",
            Res::EventB,
            none,
            SITE_B,
        ),
        row(
            M::GET,
            "/v1/events/{id}/attendees.csv",
            Res::EventA,
            none,
            SITE_A,
        ),
        row(
            M::GET,
            "/v1/events/{id}/attendees.csv",
            Res::EventB,
            none,
            SITE_B,
        ),
        row(
            M::POST,
            "/v1/checkins",
            Res::None,
            |w| Some(json!({"event_id": w.event_a, "code": w.checkin_code_w})),
            SITE_A,
        ),
        row(
            M::POST,
            "/v1/checkins",
            Res::None,
            |w| Some(json!({"event_id": w.event_b, "code": "not-a-code"})),
            SITE_B,
        ),
        // Bookings.
        row(
            M::POST,
            "/v1/events/{id}/bookings",
            Res::EventA,
            empty,
            SIGNED_IN,
        ),
        row(M::GET, "/v1/bookings/{id}", Res::BookingW, none, BOOKING_W),
        row(
            M::GET,
            "/v1/bookings/{id}/calendar.ics",
            Res::BookingW,
            none,
            BOOKING_W,
        ),
        row(
            M::POST,
            "/v1/bookings/{id}/accept",
            Res::BookingW,
            none,
            ONLY_W,
        ),
        row(
            M::DELETE,
            "/v1/bookings/{id}",
            Res::BookingW2,
            none,
            BOOKING_W,
        ),
        // Draws: anyone signed in applies; the record is public.
        row(
            M::POST,
            "/v1/events/{id}/applications",
            Res::DrawA,
            none,
            SIGNED_IN,
        ),
        row(M::GET, "/v1/events/{id}/draw", Res::DrawA, none, PUBLIC),
        row(M::GET, "/v1/me/applications", Res::None, none, SIGNED_IN),
        row(
            M::GET,
            "/v1/applications/{id}",
            Res::ApplicationW,
            none,
            APPLICATION_W,
        ),
        row(
            M::DELETE,
            "/v1/applications/{id}",
            Res::ApplicationW,
            none,
            HIDDEN_BUT_W,
        ),
        // Unions: creating is an admin's; running one is its admins'.
        row(M::POST, "/v1/unions", Res::None, empty, ADMIN_ONLY),
        row(M::PATCH, "/v1/unions/{id}", Res::UnionU, empty, UNION_U),
        row(M::PATCH, "/v1/unions/{id}", Res::UnionV, empty, UNION_V),
        row(
            M::GET,
            "/v1/unions/{id}/applications",
            Res::UnionU,
            none,
            UNION_U,
        ),
        row(
            M::GET,
            "/v1/unions/{id}/applications",
            Res::UnionV,
            none,
            UNION_V,
        ),
        row(
            M::GET,
            "/v1/unions/{id}/join-code",
            Res::UnionU,
            none,
            UNION_U,
        ),
        row(
            M::GET,
            "/v1/unions/{id}/join-code",
            Res::UnionV,
            none,
            UNION_V,
        ),
        row(
            M::POST,
            "/v1/unions/{id}/join-code/rotate",
            Res::UnionU,
            empty,
            UNION_U,
        ),
        row(
            M::POST,
            "/v1/unions/{id}/join-code/rotate",
            Res::UnionV,
            empty,
            UNION_V,
        ),
        row(M::GET, "/v1/unions/{id}/qr.svg", Res::UnionU, none, UNION_U),
        row(M::GET, "/v1/unions/{id}/qr.svg", Res::UnionV, none, UNION_V),
        row(M::GET, "/v1/unions/{id}/stats", Res::UnionU, none, UNION_U),
        row(M::GET, "/v1/unions/{id}/stats", Res::UnionV, none, UNION_V),
        // Memberships: W's application to U.
        row(M::POST, "/v1/memberships", Res::None, empty, SIGNED_IN),
        row(
            M::GET,
            "/v1/memberships/{id}",
            Res::MembershipW,
            none,
            MEMBERSHIP_W,
        ),
        row(
            M::POST,
            "/v1/memberships/{id}/reject",
            Res::MembershipW,
            empty,
            UNION_U,
        ),
        row(
            M::POST,
            "/v1/memberships/{id}/approve",
            Res::MembershipW,
            none,
            UNION_U,
        ),
        row(
            M::POST,
            "/v1/memberships/{id}/transfer",
            Res::MembershipW,
            empty,
            ONLY_W,
        ),
        row(
            M::POST,
            "/v1/memberships/{id}/withdraw",
            Res::MembershipW,
            none,
            ONLY_W,
        ),
        // Last: everyone signs out (each with a fresh token).
        Row {
            fresh_token: true,
            ..row(M::POST, "/v1/auth/logout", Res::None, none, SIGNED_IN)
        },
    ]
}

/// Every operation of the OpenAPI document: `METHOD path`.
fn documented() -> BTreeSet<String> {
    let doc = serde_json::to_value(yizhan::http::ApiDoc::openapi()).expect("document serializes");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                out.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    out
}

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// A token for user `id`, as `token_for` makes one.
async fn fresh_token(app: &TestApp, id: i64) -> String {
    let token = yizhan::auth::new_token();
    app.service
        .state
        .store
        .create_token(
            id,
            &yizhan::auth::token_hash(&token),
            app.clock_now() + chrono::Duration::days(30),
        )
        .await
        .expect("token stored");
    token
}

async fn union_admin(app: &TestApp, phone: &str, union: &str) -> String {
    let user = app
        .service
        .state
        .store
        .put_union_admin(
            &phone.parse::<Phone>().unwrap(),
            &[union.parse::<UnionId>().unwrap()],
            app.clock_now(),
        )
        .await
        .unwrap();
    fresh_token(app, user.id).await
}

async fn world(app: &TestApp) -> World {
    let call = |m: Method, path: String, token: &str, body: Option<Value>| {
        let token = token.to_owned();
        async move { app.call(m, &path, Some(&token), body, None).await }
    };
    let nearby = app
        .get_json("/v1/sites/nearby?lat=36.65&lon=117.12&k=3")
        .await;
    let site = |r: &str| {
        nearby["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["ref"] == r)
            .unwrap_or_else(|| panic!("site {r}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (site_a, site_b, site_c) = (site("test-1"), site("test-2"), site("test-3"));
    let sid = |s: &str| s.parse::<SiteId>().unwrap();
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    let m_a = app
        .token_for(
            "13500000001",
            Role::SiteManager,
            &[sid(&site_a), sid(&site_c)],
        )
        .await;
    let m_b = app
        .token_for("13500000002", Role::SiteManager, &[sid(&site_b)])
        .await;
    let w = app.token_for("13700000001", Role::Worker, &[]).await;
    let w2 = app.token_for("13700000002", Role::Worker, &[]).await;
    for t in [&w, &w2] {
        let r = call(
            Method::PUT,
            "/v1/me/profile".into(),
            t,
            Some(json!({"display_name": "职工"})),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let union = |body: Value| {
        let admin = admin.clone();
        async move {
            ok_json(
                call(Method::POST, "/v1/unions".into(), &admin, Some(body)).await,
                201,
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let federation =
        union(json!({"name": "总工会", "adcode": "370100", "join_policy": "auto"})).await;
    let union_u = union(json!({
        "name": "甲工会", "adcode": "370102", "join_policy": "review", "parent_id": federation,
    }))
    .await;
    let union_v = union(json!({"name": "乙工会", "adcode": "370103", "join_policy": "auto"})).await;
    let ua = union_admin(app, "13400000001", &union_u).await;
    let uv = union_admin(app, "13400000002", &union_v).await;
    let uf = union_admin(app, "13400000003", &federation).await;

    let plain = json!({"quotas": []});
    let event_a = make_event(app, &admin, &site_a, plain.clone()).await;
    let event_a2 = make_event(app, &admin, &site_a, plain.clone()).await;
    let event_b = make_event(app, &admin, &site_b, plain).await;
    let (status, booking) = book(app, &event_a, &w, "w-a").await;
    assert_eq!(status, 201, "{booking}");
    let booking_w = booking["id"].as_str().unwrap().to_owned();
    let checkin_code_w = booking["checkin_code"].as_str().unwrap().to_owned();
    let (status, booking) = book(app, &event_a2, &w, "w-a2").await;
    assert_eq!(status, 201, "{booking}");
    let booking_w2 = booking["id"].as_str().unwrap().to_owned();
    let now = app.clock_now();
    let draw_a = make_event(
        app,
        &admin,
        &site_a,
        json!({"quotas": [], "allocation": "draw",
               "booking_closes_at": (now + chrono::Duration::days(1)).to_rfc3339(),
               "draw_at": (now + chrono::Duration::days(2)).to_rfc3339()}),
    )
    .await;
    let a = ok_json(
        call(
            Method::POST,
            format!("/v1/events/{draw_a}/applications"),
            &w,
            None,
        )
        .await,
        201,
    )
    .await;
    let application_w = a["id"].as_str().unwrap().to_owned();

    let inbox = ok_json(
        call(Method::GET, "/v1/me/notifications".into(), &w, None).await,
        200,
    )
    .await;
    let notification_w = inbox["items"][0]["id"].as_str().unwrap().to_owned();

    let key = app.get_json("/v1/push/vapid-public-key").await;
    let sub = ok_json(
        call(
            Method::POST,
            "/v1/push/subscriptions".into(),
            &w,
            Some(json!({
                "endpoint": "https://push.example.com/w",
                // Any point on P-256 will do: the server's own VAPID key is one.
                "keys": {"p256dh": key["public_key"], "auth": yizhan::domain::push::b64url(&[7; 16])},
            })),
        )
        .await,
        201,
    )
    .await;
    let subscription_w = sub["id"].as_str().unwrap().to_owned();

    let m = ok_json(
        call(
            Method::POST,
            "/v1/memberships".into(),
            &w,
            Some(json!({"union_id": union_u})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(m["status"], "pending");
    let membership_w = m["id"].as_str().unwrap().to_owned();

    let tokens = vec![
        None,
        Some(w),
        Some(w2),
        Some(m_a),
        Some(m_b),
        Some(ua),
        Some(uf),
        Some(uv),
        Some(admin),
    ];
    let mut users = Vec::new();
    for t in &tokens {
        users.push(match t {
            None => None,
            Some(t) => Some(
                ok_json(call(Method::GET, "/v1/me".into(), t, None).await, 200).await["id"]
                    .as_i64()
                    .unwrap(),
            ),
        });
    }
    World {
        site_a,
        site_b,
        site_c,
        event_a,
        event_b,
        booking_w,
        booking_w2,
        draw_a,
        application_w,
        checkin_code_w,
        membership_w,
        union_u,
        union_v,
        notification_w,
        subscription_w,
        user_w: users[1].unwrap(),
        tokens,
        users,
    }
}

/// Does `status` fit `want` (in a row that hides others' resources or not)?
fn fits(want: Class, status: u16, row_hides: bool) -> bool {
    if status >= 500 || status == 429 {
        return false;
    }
    match want {
        U => status == 401,
        F => status == 403,
        H => status == 404,
        A => status != 401 && status != 403 && !(row_hides && status == 404),
    }
}

#[tokio::test]
async fn every_operation_by_every_caller() {
    let app = spawn_app(vec![
        draft(1, Kind::UnionStation, 36.65, 117.12),
        draft(2, Kind::UnionStation, 36.66, 117.13),
        draft(3, Kind::UnionStation, 36.64, 117.11),
    ])
    .await;
    let w = world(&app).await;
    let rows = table();

    // The table and the document name the same operations.
    let doc = documented();
    let named: BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.method, r.template))
        .collect();
    let missing: Vec<_> = doc.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&doc).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "operations in the OpenAPI document without a row: {missing:?}; rows naming no documented operation: {unknown:?}"
    );

    let mut report = String::new();
    let mut failures = 0;
    let mut cells = 0;
    let mut probes = 0;
    for r in &rows {
        let path = format!("{}{}", w.path(r.template, r.res), r.query);
        let row_hides = r.expect.contains(&H);
        // Refusals first, then the allowed callers.
        let mut order: Vec<usize> = (0..CALLERS.len()).collect();
        order.sort_by_key(|&i| r.expect[i] == A);
        let mut got = [0u16; 9];
        let mut details = Vec::new();
        for i in order {
            let token = match (&w.tokens[i], r.fresh_token) {
                (None, _) => None,
                (Some(_), true) => Some(fresh_token(&app, w.users[i].unwrap()).await),
                (Some(t), false) => Some(t.clone()),
            };
            let resp = app
                .call(
                    r.method.clone(),
                    &path,
                    token.as_deref(),
                    (r.body)(&w),
                    None,
                )
                .await;
            got[i] = resp.status().as_u16();
            cells += 1;
            // A refused caller stays refused whatever the body: a field the
            // handler does not know must not be judged before who is asking.
            if let (true, Some(Value::Object(mut probe))) = (r.expect[i] != A, (r.body)(&w)) {
                probe.insert("authz_probe".into(), json!(true));
                let resp = app
                    .call(
                        r.method.clone(),
                        &path,
                        token.as_deref(),
                        Some(Value::Object(probe)),
                        None,
                    )
                    .await;
                let status = resp.status().as_u16();
                probes += 1;
                if !fits(r.expect[i], status, row_hides) {
                    failures += 1;
                    let text = resp.text().await.unwrap_or_default();
                    details.push(format!(
                        "    {} with an unknown body field: expected {:?}, got {}: {}",
                        CALLERS[i],
                        r.expect[i],
                        status,
                        text.chars().take(200).collect::<String>()
                    ));
                }
            }
            if !fits(r.expect[i], got[i], row_hides) {
                failures += 1;
                let text = resp.text().await.unwrap_or_default();
                details.push(format!(
                    "    {}: expected {:?}, got {}: {}",
                    CALLERS[i],
                    r.expect[i],
                    got[i],
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
        let mut line = format!(
            "{:<7}{:<40}{:<14}",
            r.method.as_str(),
            r.template,
            format!("{:?}", r.res)
        );
        for (&want, &status) in r.expect.iter().zip(&got) {
            let mark = if fits(want, status, row_hides) {
                ' '
            } else {
                '!'
            };
            write!(line, " {}{}{:<4}", mark, want.letter(), status).unwrap();
        }
        writeln!(report, "{line}").unwrap();
        for d in details {
            writeln!(report, "{d}").unwrap();
        }
    }
    assert_eq!(cells, rows.len() * CALLERS.len());
    assert!(probes > 0);
    let mut header = format!("{:<7}{:<40}{:<14}", "", "operation", "resource");
    for c in CALLERS {
        write!(header, " {c:<6}").unwrap();
    }
    assert!(
        failures == 0,
        "{failures} of {cells} cells (and {probes} probes with an unknown body field) disagree (U 401, F 403, H hidden 404, A let through; `!` marks a disagreement, the status follows the expectation):\n{header}\n{report}"
    );
}
