//! A subscribe message WeChat refuses with `47003` (a field's value broke
//! its type's rule) is the templates file's fault: the configuration metric
//! counts every one, and the log says so once, at ERROR, naming the template
//! and the field. The service runs with a real subscriber capturing every
//! line (the only test of this binary, so the process-wide subscriber sees
//! every thread), through the WeChat stand-in on loopback.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::site::Kind;
use yizhan::domain::user::Role;

use helpers::{Captured, TestApp, WechatService, draft, site_and_admin, spawn_app_with_wechat};

const TEMPLATES: &str = r#"
[seat_offered]
template_id = "tmpl-offer"
fields = { thing1 = "event", time2 = "deadline" }
"#;

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

/// `worker` (waitlisted) is offered a seat of a new event once `holder` cancels.
async fn offer(app: &TestApp, admin: &str, site: &str, holder: &str, worker: &str, key: &str) {
    let now = app.clock_now();
    let event = ok_json(
        app.call(
            Method::POST,
            "/v1/events",
            Some(admin),
            Some(json!({
                "kind": "matchmaking", "site_id": site, "title": "单身职工联谊会", "capacity": 1,
                "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
                "ends_at": (now + chrono::Duration::days(10) + chrono::Duration::hours(3)).to_rfc3339(),
                "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
                "cancel_deadline": (now + chrono::Duration::days(9)).to_rfc3339(),
                "waitlist": true, "offer_hours": 12,
            })),
            None,
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let book = |token: &str, k: String| {
        app.client
            .post(app.url(&format!("/v1/events/{event}/bookings")))
            .bearer_auth(token.to_owned())
            .header("idempotency-key", k)
            .json(&json!({}))
            .send()
    };
    let seat = ok_json(book(holder, format!("{key}-h")).await.unwrap(), 201).await;
    ok_json(book(worker, format!("{key}-w")).await.unwrap(), 201).await;
    let id = seat["id"].as_str().unwrap();
    ok_json(
        app.call(
            Method::DELETE,
            &format!("/v1/bookings/{id}"),
            Some(holder),
            None,
            None,
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn a_refused_field_is_said_once_at_error_naming_it_and_counted_each_time() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let wx = WechatService::start().await;
    wx.control(
        Method::PUT,
        "templates/tmpl-offer",
        json!({"fields": ["thing1", "time2"]}),
    )
    .await;
    let app = spawn_app_with_wechat(
        vec![draft(1, Kind::UnionStation, 36.65, 117.12)],
        wx.settings(TEMPLATES),
    )
    .await;
    app.move_to_china_time(10, 0);
    let (site, admin) = site_and_admin(&app).await;
    wx.control(Method::PUT, "login_codes/L1", json!({"openid": "o-log"}))
        .await;
    wx.control(
        Method::PUT,
        "phone_codes/P1",
        json!({"phone": "13800138041"}),
    )
    .await;
    let signed = ok_json(
        app.call(
            Method::POST,
            "/v1/auth/wechat",
            None,
            Some(json!({"login_code": "L1", "phone_code": "P1"})),
            None,
        )
        .await,
        200,
    )
    .await;
    let worker = signed["token"].as_str().unwrap().to_owned();
    wx.control(
        Method::PUT,
        "consents/o-log/tmpl-offer",
        json!({"count": 2}),
    )
    .await;
    for _ in 0..2 {
        ok_json(
            app.call(
                Method::POST,
                "/v1/me/wechat/subscriptions",
                Some(&worker),
                Some(json!({"accepted": ["tmpl-offer"]})),
                None,
            )
            .await,
            200,
        )
        .await;
    }
    let holder = app.token_for("13800138042", Role::Worker, &[]).await;
    let refused = json!({"errcode": 47003, "errmsg": "argument invalid! data.time2.value invalid rid: 6752a1"});
    wx.control(
        Method::PUT,
        "cues/subscribe_send",
        json!({"answers": [refused.clone(), refused]}),
    )
    .await;
    for key in ["a", "b"] {
        offer(&app, &admin, &site, &holder, &worker, key).await;
        app.service.run_jobs().await.unwrap();
    }

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("yizhan_wechat_config_errors_total{cause=\"field\"} 2"),
        "{metrics}"
    );
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("yizhan::wechat"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(
        errors[0].contains("time2") && errors[0].contains("tmpl-offer"),
        "{}",
        errors[0]
    );
    // Both were tried once and given up; nothing was sent.
    let sent = wx.log().await;
    assert!(sent["sent"].as_array().unwrap().is_empty());
    assert!(!log.contains(WechatService::SECRET));
}
