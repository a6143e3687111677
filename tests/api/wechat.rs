//! Sign-in with WeChat through the WeChat stand-in (`tests/wechat_service.py`,
//! which speaks WeChat's protocol and is proven by the `wechatpy` client),
//! and the access token that every node shares (issue 25).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, WechatService, spawn_app_with_wechat};

const TEMPLATES: &str = r#"
[seat_offered]
template_id = "tmpl-offer"
page = "pages/booking/detail"
fields = { thing1 = "event", time2 = "deadline", thing3 = "site" }
"#;

async fn login_code(wx: &WechatService, code: &str, openid: &str) {
    wx.control(
        Method::PUT,
        &format!("login_codes/{code}"),
        json!({"openid": openid}),
    )
    .await;
}

async fn phone_code(wx: &WechatService, code: &str, phone: &str) {
    wx.control(
        Method::PUT,
        &format!("phone_codes/{code}"),
        json!({"phone": phone}),
    )
    .await;
}

async fn sign_in(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/v1/auth/wechat"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn me(app: &TestApp, token: &str) -> Value {
    app.client
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_worker_signs_in_with_a_login_code_and_a_phone_code_and_again_with_a_login_code_alone()
 {
    let wx = WechatService::start().await;
    let app = spawn_app_with_wechat(wx.settings(TEMPLATES)).await;

    // Not yet bound: the app must ask for the phone number.
    login_code(&wx, "L1", "o-rider-1").await;
    let (status, body) = sign_in(&app, json!({"login_code": "L1"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["param"], "phone_code", "{body}");

    // A new login code with the phone code: a new worker, no SMS.
    login_code(&wx, "L2", "o-rider-1").await;
    phone_code(&wx, "P1", "13800138001").await;
    let (status, first) = sign_in(&app, json!({"login_code": "L2", "phone_code": "P1"})).await;
    assert_eq!(status, 200, "{first}");
    let token = first["token"].as_str().unwrap();
    let who = me(&app, token).await;
    assert_eq!(who["id"], first["user"]["id"], "{who}");
    assert_eq!(who["role"], "worker");
    assert_eq!(app.sms.count(), 0, "no SMS for a WeChat sign-in");

    // Again, with a login code alone: the same person.
    login_code(&wx, "L3", "o-rider-1").await;
    let (status, again) = sign_in(&app, json!({"login_code": "L3"})).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_ne!(again["token"], first["token"]);

    // A used code, an unknown code, a malformed one: each names its field.
    let (status, body) = sign_in(&app, json!({"login_code": "L3"})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("login_code")),
        "{body}"
    );
    let (status, body) = sign_in(&app, json!({"login_code": "nope"})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("login_code")),
        "{body}"
    );
    let (status, body) = sign_in(&app, json!({"login_code": ""})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("login_code")),
        "{body}"
    );
    login_code(&wx, "L4", "o-rider-2").await;
    let (status, body) =
        sign_in(&app, json!({"login_code": "L4", "phone_code": "P-unknown"})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("phone_code")),
        "{body}"
    );

    // The session key never left the server.
    let log = wx.log().await;
    assert!(!first.to_string().contains("session_key"));
    assert!(
        log["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r.to_string().contains(WechatService::SECRET))
    );
}

#[tokio::test]
async fn a_phone_that_has_an_account_gets_it_and_unbinding_stops_wechat_sign_in() {
    let wx = WechatService::start().await;
    let app = spawn_app_with_wechat(wx.settings(TEMPLATES)).await;
    let token = app
        .token_for("13800138002", yizhan::domain::user::Role::Worker, &[])
        .await;
    let known = me(&app, &token).await;

    login_code(&wx, "L1", "o-known").await;
    phone_code(&wx, "P1", "13800138002").await;
    let (status, body) = sign_in(&app, json!({"login_code": "L1", "phone_code": "P1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], known["id"]);

    let r = app
        .client
        .delete(app.url("/v1/me/wechat"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .client
        .delete(app.url("/v1/me/wechat"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    login_code(&wx, "L2", "o-known").await;
    let (status, body) = sign_in(&app, json!({"login_code": "L2"})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("phone_code")),
        "{body}"
    );
}

#[tokio::test]
async fn wechat_busy_is_503_with_retry_after_and_changes_nothing() {
    let wx = WechatService::start().await;
    let app = spawn_app_with_wechat(wx.settings(TEMPLATES)).await;
    wx.control(Method::PUT, "cues/jscode2session", json!({"answers": [-1]}))
        .await;
    login_code(&wx, "L1", "o-busy").await;
    let r = app
        .client
        .post(app.url("/v1/auth/wechat"))
        .json(&json!({"login_code": "L1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // The cued answer did not use the code: the retry gets through.
    let (status, body) = sign_in(&app, json!({"login_code": "L1"})).await;
    assert_eq!(
        (status, body["param"].as_str()),
        (422, Some("phone_code")),
        "{body}"
    );
}

/// Two nodes on one database that need WeChat's access token at the same
/// moment fetch it once; a token WeChat calls expired (42001) is fetched
/// anew once and the call goes through once.
#[tokio::test]
async fn two_nodes_share_one_access_token_and_an_expired_one_is_refreshed_once() {
    let wx = WechatService::start().await;
    let app = spawn_app_with_wechat(wx.settings(TEMPLATES)).await;
    let store = app.service.state.store.clone();
    let metrics = app.service.state.metrics.clone();
    let node_a =
        yizhan::wechat::Wechat::new(wx.settings(TEMPLATES), store.clone(), metrics.clone());
    let node_b =
        yizhan::wechat::Wechat::new(wx.settings(TEMPLATES), store.clone(), metrics.clone());
    phone_code(&wx, "PA", "13800138011").await;
    phone_code(&wx, "PB", "13800138012").await;
    let (a, b) = tokio::join!(node_a.phone("PA"), node_b.phone("PB"));
    assert_eq!(a.unwrap().unwrap().as_str(), "13800138011");
    assert_eq!(b.unwrap().unwrap().as_str(), "13800138012");
    let log = wx.log().await;
    assert_eq!(
        log["token_fetches"]["stable_token"], 1,
        "{}",
        log["token_fetches"]
    );

    // The token expires at WeChat before yizhan expected: 42001, one new
    // fetch, and the call made once more.
    wx.control(Method::POST, "expire_token", json!({})).await;
    phone_code(&wx, "PC", "13800138013").await;
    let c = node_a.phone("PC").await;
    assert_eq!(c.unwrap().unwrap().as_str(), "13800138013");
    let log = wx.log().await;
    assert_eq!(
        log["token_fetches"]["stable_token"], 2,
        "{}",
        log["token_fetches"]
    );
    let lookups: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/wxa/business/getuserphonenumber")
        .collect();
    let errcodes: Vec<i64> = lookups
        .iter()
        .map(|r| r["errcode"].as_i64().unwrap())
        .collect();
    assert_eq!(errcodes, vec![0, 0, 42001, 0]);
    // The other node reads the new token from the database: no fetch.
    phone_code(&wx, "PD", "13800138014").await;
    assert!(node_b.phone("PD").await.unwrap().is_ok());
    let log = wx.log().await;
    assert_eq!(log["token_fetches"]["stable_token"], 2);
}
