//! Sign-in with WeChat through the WeChat stand-in (`tests/wechat_service.py`,
//! which speaks WeChat's protocol and is proven by the `wechatpy` client),
//! and the access token that every node shares (issue 25).

use reqwest::Method;
use serde_json::{Value, json};

use yizhan::domain::site::Kind;
use yizhan::domain::user::Role;

use crate::events::{book, make_event};
use crate::helpers::{TestApp, WechatService, draft, site_and_admin, spawn_app_with_wechat};
use crate::notifications::{cancel, inbox};

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
    let app = spawn_app_with_wechat(vec![], wx.settings(TEMPLATES)).await;

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
    assert_eq!(who["wechat"]["bound"], true, "{who}");
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
    let app = spawn_app_with_wechat(vec![], wx.settings(TEMPLATES)).await;
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
    assert_eq!(me(&app, &token).await["wechat"]["bound"], false);
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
    let app = spawn_app_with_wechat(vec![], wx.settings(TEMPLATES)).await;
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
    let app = spawn_app_with_wechat(vec![], wx.settings(TEMPLATES)).await;
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

/// A waitlisted worker, signed in with WeChat, is offered a seat in a new
/// event (capacity 1) once `holder` cancels: the worker's notification id.
async fn offer(app: &TestApp, admin: &str, site: &str, holder: &str, worker: &str, key: &str) {
    let event = make_event(
        app,
        admin,
        site,
        json!({"title": TITLE, "quotas": [], "capacity": 1, "offer_hours": 12}),
    )
    .await;
    let (s, seat) = book(app, &event, holder, &format!("{key}-h")).await;
    assert_eq!(s, 201);
    let (s, _) = book(app, &event, worker, &format!("{key}-w")).await;
    assert_eq!(s, 201);
    cancel(app, holder, &seat).await;
    let inbox = inbox(app, worker, "").await;
    assert_eq!(inbox["items"][0]["type"], "seat_offered");
}

/// A recuperation trip's long title: more than a `thing` holds.
const TITLE: &str = "山东省总工会二〇二六年冬季一线职工疗休养（第一批）";

/// A worker signed in with WeChat as `openid`, with `phone`: their token.
async fn wechat_worker(app: &TestApp, wx: &WechatService, openid: &str, phone: &str) -> String {
    login_code(wx, &format!("{openid}-login"), openid).await;
    phone_code(wx, &format!("{openid}-phone"), phone).await;
    let (status, body) = sign_in(
        app,
        json!({"login_code": format!("{openid}-login"), "phone_code": format!("{openid}-phone")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn consent(app: &TestApp, wx: &WechatService, token: &str, openid: &str) -> Value {
    // WeChat's side (what the person tapped) and what the app reports.
    wx.control(
        Method::PUT,
        &format!("consents/{openid}/tmpl-offer"),
        json!({"count": 1}),
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/me/wechat/subscriptions"))
        .bearer_auth(token)
        .json(&json!({"accepted": ["tmpl-offer"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_consented_offer_goes_by_wechat_and_by_sms_at_once_and_spends_the_consent() {
    let wx = WechatService::start().await;
    wx.control(
        Method::PUT,
        "templates/tmpl-offer",
        json!({"fields": ["thing1", "time2", "thing3"]}),
    )
    .await;
    let app = spawn_app_with_wechat(
        vec![draft(1, Kind::UnionStation, 36.65, 117.12)],
        wx.settings(TEMPLATES),
    )
    .await;
    app.move_to_china_time(10, 0);
    let (site, admin) = site_and_admin(&app).await;
    let phone = "13800138021";
    let worker = wechat_worker(&app, &wx, "o-rider", phone).await;
    let consents = consent(&app, &wx, &worker, "o-rider").await;
    assert_eq!(consents["remaining"]["tmpl-offer"], 1, "{consents}");
    let holder = app.token_for("13800138022", Role::Worker, &[]).await;

    // WeChat ends the access token before yizhan expected (the phone
    // lookup fetched it): the send gets 42001, one new token, one send more.
    wx.control(Method::POST, "expire_token", json!({})).await;
    offer(&app, &admin, &site, &holder, &worker, "one").await;
    app.service.run_jobs().await.unwrap();
    let log = wx.log().await;
    let sent = log["sent"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{}", log["requests"]);
    let sends: Vec<i64> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/cgi-bin/message/subscribe/send")
        .map(|r| r["errcode"].as_i64().unwrap())
        .collect();
    assert_eq!(sends, vec![42001, 0]);
    assert_eq!(
        log["token_fetches"]["stable_token"], 2,
        "{}",
        log["token_fetches"]
    );
    let m = &sent[0];
    assert_eq!(m["touser"], "o-rider");
    assert_eq!(m["template_id"], "tmpl-offer");
    assert_eq!(m["miniprogram_state"], "developer");
    assert!(
        m["page"]
            .as_str()
            .unwrap()
            .starts_with("pages/booking/detail?booking=b"),
        "{m}"
    );
    let title: String = TITLE.chars().take(20).collect();
    assert_eq!(m["data"]["thing1"]["value"], title.as_str());
    assert_eq!(m["data"]["thing3"]["value"], "测试站点1");
    // The deadline: 12 hours after the offer, in China time.
    let deadline = app.clock_now() + chrono::Duration::hours(12);
    assert_eq!(
        m["data"]["time2"]["value"],
        yizhan::domain::wechat::wechat_time(deadline).as_str()
    );
    // And an SMS at once, without waiting for the fallback's 15 minutes.
    let phone: yizhan::domain::user::Phone = phone.parse().unwrap();
    assert_eq!(app.sms.texts_to(&phone).len(), 1);
    // The consent is spent, here and at WeChat.
    assert_eq!(log["consents"]["o-rider"]["tmpl-offer"], 0);
    let id: i64 = app
        .service
        .state
        .store
        .user_by_phone(&phone)
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        app.service
            .state
            .store
            .consents_left(id, "tmpl-offer")
            .await
            .unwrap(),
        0
    );

    // The next offer, without a consent left: the other channels only.
    offer(&app, &admin, &site, &holder, &worker, "two").await;
    app.service.run_jobs().await.unwrap();
    let log = wx.log().await;
    assert_eq!(log["sent"].as_array().unwrap().len(), 1);
    assert_eq!(app.sms.texts_to(&phone).len(), 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("yizhan_wechat_calls_total{api=\"subscribe_send\",outcome=\"ok\"} 1"),
        "{metrics}"
    );
}

/// WeChat refuses a field's value (47003): the templates file is wrong.
/// The configuration metric counts it, the delivery is not retried, and the
/// field is named.
#[tokio::test]
async fn a_refused_field_is_a_configuration_error_not_retried() {
    let wx = WechatService::start().await;
    wx.control(
        Method::PUT,
        "templates/tmpl-offer",
        json!({"fields": ["thing1", "time2", "thing3"]}),
    )
    .await;
    let app = spawn_app_with_wechat(
        vec![draft(1, Kind::UnionStation, 36.65, 117.12)],
        wx.settings(TEMPLATES),
    )
    .await;
    app.move_to_china_time(10, 0);
    let (site, admin) = site_and_admin(&app).await;
    let worker = wechat_worker(&app, &wx, "o-field", "13800138031").await;
    consent(&app, &wx, &worker, "o-field").await;
    let holder = app.token_for("13800138032", Role::Worker, &[]).await;
    wx.control(
        Method::PUT,
        "cues/subscribe_send",
        json!({"answers": [{"errcode": 47003, "errmsg": "argument invalid! data.time2.value invalid rid: 1"}]}),
    )
    .await;
    offer(&app, &admin, &site, &holder, &worker, "f").await;
    let report = app.service.run_jobs().await.unwrap();
    assert_eq!(report.deliveries.failed, 1, "{report:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("yizhan_wechat_config_errors_total{cause=\"field\"} 1"),
        "{metrics}"
    );
    // Not tried again, an hour on.
    app.clock.advance(std::time::Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    let log = wx.log().await;
    let sends = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/cgi-bin/message/subscribe/send")
        .count();
    assert_eq!(sends, 1);
    assert!(log["sent"].as_array().unwrap().is_empty());
}
