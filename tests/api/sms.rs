//! Texts through Aliyun SMS and Tencent Cloud SMS, end to end: yizhan's
//! clients against the provider stand-in on loopback (`tests/sms_service.py`),
//! which checks every `SendSms` signature with the provider's own published
//! Python code and answers on cue with the providers' real error bodies.
//! Each scenario runs for both providers, on both backends.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::notify::NotificationId;
use yizhan::domain::site::Kind;
use yizhan::domain::sms::{Message, Provider};
use yizhan::domain::user::Role;
use yizhan::sms::config::{SmsChoice, suggested_params};

use crate::events::{book, make_event};
use crate::helpers::{SmsService, TestApp, draft, site_and_admin, spawn_app_with_sms};
use crate::notifications::{cancel, inbox};

const TOKEN: &str = "receipt-token-0123456789";
/// An event title with what must survive encoding: Chinese, `+ * ~`, spaces.
const TITLE: &str = "会聚良缘 +*~ 联谊";

fn template_id(p: Provider, m: Message) -> String {
    match p {
        Provider::Aliyun => format!("SMS_{}", m.as_str().to_uppercase()),
        Provider::Tencent => format!("{}", 2_000_000 + m as u32),
    }
}

/// The stand-in, with yizhan's templates registered, and settings for a
/// yizhan that texts through it.
async fn provider(p: Provider, timeout_s: u64) -> (SmsService, yizhan::sms::SmsSettings) {
    let stand_in = SmsService::start().await;
    let mut templates = String::new();
    for m in Message::ALL {
        let params: Vec<&str> = suggested_params(m).iter().map(|v| v.as_str()).collect();
        stand_in
            .control(
                Method::PUT,
                &format!("templates/{}/{}", p.as_str(), template_id(p, m)),
                json!({"params": params}),
            )
            .await;
        templates.push_str(&format!(
            "{} = {{ id = \"{}\", params = {} }}\n",
            m.as_str(),
            template_id(p, m),
            serde_json::to_string(&params).unwrap()
        ));
    }
    let (choice, keys) = match p {
        Provider::Aliyun => (
            SmsChoice::Aliyun,
            "access_key_id = \"LTAI5tStandInKeyId\"\naccess_key_secret = \"stand-in-aliyun-secret\"\nsign_name = \"职工驿站\"\n",
        ),
        Provider::Tencent => (
            SmsChoice::Tencent,
            "secret_id = \"AKIDStandInSecretId\"\nsecret_key = \"stand-in-tencent-key\"\nsdk_app_id = \"1400000000\"\nsign_name = \"职工驿站\"\n",
        ),
    };
    let text = format!(
        "{keys}receipt_token = \"{TOKEN}\"\ntimeout_s = {timeout_s}\n[templates]\n{templates}"
    );
    let settings = yizhan::sms::config::parse(choice, &text, None, Some(&stand_in.base))
        .unwrap_or_else(|e| panic!("{e:?}"));
    (stand_in, settings)
}

/// An app texting through the stand-in, at 10:00 China time, with one site
/// and an admin.
async fn app(p: Provider, timeout_s: u64) -> (SmsService, TestApp, String, String) {
    let (stand_in, settings) = provider(p, timeout_s).await;
    let app =
        spawn_app_with_sms(vec![draft(1, Kind::UnionStation, 36.65, 117.12)], &settings).await;
    app.move_to_china_time(10, 0);
    let (site, admin) = site_and_admin(&app).await;
    (stand_in, app, site, admin)
}

/// `SendSms` requests the stand-in saw for `phone` (11 digits).
async fn sent_to(stand_in: &SmsService, phone: &str) -> Vec<Value> {
    stand_in
        .log()
        .await
        .into_iter()
        .filter(|e| {
            e["phones"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.ends_with(phone)))
            })
        })
        .collect()
}

/// The value of template variable `name` in a logged request.
fn param(p: Provider, m: Message, entry: &Value, name: &str) -> String {
    match p {
        Provider::Aliyun => entry["params"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Provider::Tencent => {
            let i = suggested_params(m)
                .iter()
                .position(|v| v.as_str() == name)
                .expect("a variable of the template");
            entry["params"][i].as_str().unwrap_or_default().to_owned()
        }
    }
}

fn accepted(e: &Value) -> bool {
    e["code"] == "OK" || e["code"] == "Ok"
}

/// A waitlisted `worker` offered a seat in a new event (capacity 1) once
/// `holder` cancels: the id of the worker's `seat_offered` notification.
async fn offer(
    app: &TestApp,
    admin: &str,
    site: &str,
    holder: &str,
    worker: &str,
    key: &str,
) -> NotificationId {
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
    inbox["items"][0]["id"].as_str().unwrap().parse().unwrap()
}

/// Past the SMS fallback's 15 minutes, and run the worker.
async fn past_fallback(app: &TestApp) -> yizhan::worker::PassReport {
    app.clock.advance(Duration::from_secs(16 * 60));
    app.service.run_jobs().await.unwrap()
}

async fn delivery(app: &TestApp, n: NotificationId) -> yizhan::store::SmsDeliveryState {
    app.service
        .state
        .store
        .sms_delivery(n)
        .await
        .unwrap()
        .expect("an SMS delivery")
}

fn metric(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

async fn sign_in_by_text(p: Provider) {
    let (stand_in, app, _, _) = app(p, 10).await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": "+86 138 0013 8001"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let sent = sent_to(&stand_in, "13800138001").await;
    assert_eq!(sent.len(), 1);
    let e = &sent[0];
    assert_eq!(e["verified"], true, "{e}");
    assert!(accepted(e), "{e}");
    assert_eq!(e["template"], template_id(p, Message::SignInCode));
    assert_eq!(e["sign_name"], "职工驿站");
    let code = param(p, Message::SignInCode, e, "code");
    assert_eq!(code.len(), 6);
    // Our id for the text went with it.
    let ours = if p == Provider::Aliyun {
        &e["out_id"]
    } else {
        &e["session_context"]
    };
    assert!(ours.as_str().is_some_and(|s| s.starts_with('c')), "{e}");
    let r = app
        .call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"phone": "13800138001", "code": code})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = app
        .call(Method::GET, "/v1/me", Some(&token), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["sms"],
        json!({"reachable": true, "reason": null, "since": null})
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let name = p.as_str();
    assert!(
        metric(
            &metrics,
            &format!("yizhan_sms_texts_total{{provider=\"{name}\",outcome=\"accepted\"}} 1")
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn aliyun_a_texted_code_signs_the_worker_in() {
    sign_in_by_text(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_a_texted_code_signs_the_worker_in() {
    sign_in_by_text(Provider::Tencent).await
}

async fn offer_texted_once_then_receipt(p: Provider) {
    let (stand_in, app, site, admin) = app(p, 10).await;
    let holder = app.token_for("13700000501", Role::Worker, &[]).await;
    let worker = app.token_for("13700000502", Role::Worker, &[]).await;
    let n = offer(&app, &admin, &site, &holder, &worker, "o").await;
    app.clock.advance(Duration::from_secs(14 * 60));
    app.service.run_jobs().await.unwrap();
    assert!(
        sent_to(&stand_in, "13700000502").await.is_empty(),
        "not yet"
    );
    let report = past_fallback(&app).await;
    assert_eq!(report.deliveries.sent, 1);
    let sent = sent_to(&stand_in, "13700000502").await;
    assert_eq!(sent.len(), 1);
    let e = &sent[0];
    assert!(e["verified"] == true && accepted(e), "{e}");
    assert_eq!(e["template"], template_id(p, Message::SeatOffered));
    assert_eq!(
        param(p, Message::SeatOffered, e, "event"),
        TITLE,
        "survives encoding"
    );
    assert_eq!(param(p, Message::SeatOffered, e, "site"), "测试站点1");
    let deadline = param(p, Message::SeatOffered, e, "deadline");
    assert!(
        deadline.contains('月')
            && deadline.contains('日')
            && deadline.len() == "12月20日22:00".len(),
        "{deadline}"
    );
    let d = delivery(&app, n).await;
    assert_eq!(d.state, "sent");
    let reference = d.provider_ref.clone().expect("the provider's id is kept");
    // Once: later passes send nothing more.
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(sent_to(&stand_in, "13700000502").await.len(), 1, "once");

    // A receipt with a wrong token is refused and changes nothing.
    let callback = |token: &str| app.url(&format!("/v1/sms/receipts/{}?token={token}", p.as_str()));
    let key = if p == Provider::Aliyun {
        "out_id"
    } else {
        "session_context"
    };
    let wrong = stand_in
        .control(
            Method::POST,
            "receipt",
            json!({"provider": p.as_str(), "url": callback("not-the-token"), key: n.to_string(), "success": true}),
        )
        .await;
    assert_eq!(wrong["status"], 401, "{wrong}");
    assert_eq!(delivery(&app, n).await.receipt, None);
    // The provider's receipt marks it delivered.
    let answer = stand_in
        .control(
            Method::POST,
            "receipt",
            json!({"provider": p.as_str(), "url": callback(TOKEN), key: n.to_string(), "success": true}),
        )
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    match p {
        Provider::Aliyun => assert_eq!(answer["body"]["code"], 0),
        Provider::Tencent => assert_eq!(answer["body"]["result"], 0),
    }
    let d = delivery(&app, n).await;
    assert_eq!(d.receipt.as_deref(), Some("delivered"), "{d:?}");
    assert_eq!(d.provider_ref.as_deref(), Some(reference.as_str()));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric(
            &metrics,
            &format!(
                "yizhan_sms_texts_total{{provider=\"{}\",outcome=\"delivered\"}} 1",
                p.as_str()
            )
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn aliyun_an_unread_offer_is_texted_once_and_its_receipt_marks_it_delivered() {
    offer_texted_once_then_receipt(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_an_unread_offer_is_texted_once_and_its_receipt_marks_it_delivered() {
    offer_texted_once_then_receipt(Provider::Tencent).await
}

async fn throttled_then_sent_once(p: Provider) {
    let (stand_in, app, site, admin) = app(p, 10).await;
    // The same request may go twice in one second (the manual clock moves,
    // the real one need not): the stand-in's replay guard would refuse it,
    // Tencent does not.
    stand_in
        .control(Method::PUT, "replay-guard", json!({"tencent": false}))
        .await;
    let throttle = match p {
        Provider::Aliyun => "Throttling.User",
        Provider::Tencent => "RequestLimitExceeded",
    };
    stand_in
        .control(
            Method::PUT,
            "cues/13700000512",
            json!({"answers": [throttle], "then": "ok"}),
        )
        .await;
    let holder = app.token_for("13700000511", Role::Worker, &[]).await;
    let worker = app.token_for("13700000512", Role::Worker, &[]).await;
    let n = offer(&app, &admin, &site, &holder, &worker, "t").await;
    let report = past_fallback(&app).await;
    assert_eq!((report.deliveries.sent, report.deliveries.retried), (0, 1));
    assert_eq!(sent_to(&stand_in, "13700000512").await.len(), 1);
    // Not before its backoff (30 s for the first retry)…
    app.clock.advance(Duration::from_secs(20));
    app.service.run_jobs().await.unwrap();
    assert_eq!(
        sent_to(&stand_in, "13700000512").await.len(),
        1,
        "backing off"
    );
    // …then sent, and sent once.
    app.clock.advance(Duration::from_secs(11));
    let report = app.service.run_jobs().await.unwrap();
    assert_eq!(report.deliveries.sent, 1);
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    let sent = sent_to(&stand_in, "13700000512").await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["code"], throttle);
    assert_eq!(
        sent.iter().filter(|e| accepted(e)).count(),
        1,
        "texted exactly once"
    );
    let d = delivery(&app, n).await;
    assert_eq!((d.state.as_str(), d.attempts), ("sent", 2));
}

#[tokio::test]
async fn aliyun_a_throttled_text_is_retried_after_its_backoff_and_sent_once() {
    throttled_then_sent_once(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_a_throttled_text_is_retried_after_its_backoff_and_sent_once() {
    throttled_then_sent_once(Provider::Tencent).await
}

async fn invalid_number_stops_texting(p: Provider) {
    let (stand_in, app, site, admin) = app(p, 10).await;
    let invalid = match p {
        Provider::Aliyun => "isv.MOBILE_NUMBER_ILLEGAL",
        Provider::Tencent => "InvalidParameterValue.IncorrectPhoneNumber",
    };
    stand_in
        .control(
            Method::PUT,
            "cues/13700000522",
            json!({"answers": [invalid], "then": "ok"}),
        )
        .await;
    let holder = app.token_for("13700000521", Role::Worker, &[]).await;
    let worker = app.token_for("13700000522", Role::Worker, &[]).await;
    let first = offer(&app, &admin, &site, &holder, &worker, "i1").await;
    let report = past_fallback(&app).await;
    assert_eq!(report.deliveries.failed, 1);
    assert_eq!(delivery(&app, first).await.state, "failed");
    let me: Value = app
        .call(Method::GET, "/v1/me", Some(&worker), None, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["sms"]["reachable"], false, "{me}");
    assert_eq!(me["sms"]["reason"], "invalid_number");
    assert!(me["sms"]["since"].is_string());
    // The next notice is not texted: the phone is not asked again.
    let second = offer(&app, &admin, &site, &holder, &worker, "i2").await;
    past_fallback(&app).await;
    assert_eq!(delivery(&app, second).await.state, "skipped");
    assert_eq!(
        sent_to(&stand_in, "13700000522").await.len(),
        1,
        "never texted again"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric(
            &metrics,
            &format!(
                "yizhan_sms_texts_total{{provider=\"{}\",outcome=\"unreachable\"}} 1",
                p.as_str()
            )
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn aliyun_an_invalid_number_is_not_texted_again_and_me_says_so() {
    invalid_number_stops_texting(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_an_invalid_number_is_not_texted_again_and_me_says_so() {
    invalid_number_stops_texting(Provider::Tencent).await
}

async fn unapproved_template_is_not_retried(p: Provider) {
    let (stand_in, app, site, admin) = app(p, 10).await;
    let unapproved = match p {
        Provider::Aliyun => "isv.SMS_TEMPLATE_ILLEGAL",
        Provider::Tencent => "FailedOperation.TemplateIncorrectOrUnapproved",
    };
    stand_in
        .control(
            Method::PUT,
            "cues/13700000532",
            json!({"answers": [unapproved], "then": "ok"}),
        )
        .await;
    let holder = app.token_for("13700000531", Role::Worker, &[]).await;
    let worker = app.token_for("13700000532", Role::Worker, &[]).await;
    let n = offer(&app, &admin, &site, &holder, &worker, "u").await;
    let report = past_fallback(&app).await;
    assert_eq!(report.deliveries.failed, 1);
    let d = delivery(&app, n).await;
    assert_eq!(d.state, "failed");
    assert!(
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains("template")),
        "{d:?}"
    );
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(
        sent_to(&stand_in, "13700000532").await.len(),
        1,
        "no retry per text"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric(
            &metrics,
            &format!(
                "yizhan_sms_config_errors_total{{provider=\"{}\",cause=\"template\"}} 1",
                p.as_str()
            )
        ),
        "{metrics}"
    );
    // A code to a number the provider cannot take now is a 503, not a 5xx crash.
    stand_in
        .control(
            Method::PUT,
            "cues/13700000533",
            json!({"answers": [unapproved], "then": "ok"}),
        )
        .await;
    let r = app
        .call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": "13700000533"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn aliyun_an_unapproved_template_fails_the_text_and_raises_the_metric() {
    unapproved_template_is_not_retried(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_an_unapproved_template_fails_the_text_and_raises_the_metric() {
    unapproved_template_is_not_retried(Provider::Tencent).await
}

/// A code to a number inside the provider's frequency window is refused
/// with its window, and the provider is not asked again inside it.
async fn number_window_on_codes(p: Provider) {
    let (stand_in, app, _, _) = app(p, 10).await;
    let limited = match p {
        Provider::Aliyun => {
            json!({"code": "isv.BUSINESS_LIMIT_CONTROL", "message": "触发小时级流控Permits:5"})
        }
        Provider::Tencent => json!("LimitExceeded.PhoneNumberOneHourLimit"),
    };
    stand_in
        .control(
            Method::PUT,
            "cues/13700000541",
            json!({"answers": [limited], "then": "ok"}),
        )
        .await;
    let ask = || {
        app.call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": "13700000541"})),
            None,
        )
    };
    let r = ask().await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&wait), "{wait}");
    app.clock.advance(Duration::from_secs(120));
    assert_eq!(ask().await.status(), 429);
    assert_eq!(
        sent_to(&stand_in, "13700000541").await.len(),
        1,
        "not hammered"
    );
}

#[tokio::test]
async fn aliyun_a_numbers_frequency_window_is_waited_out() {
    number_window_on_codes(Provider::Aliyun).await
}

#[tokio::test]
async fn tencent_a_numbers_frequency_window_is_waited_out() {
    number_window_on_codes(Provider::Tencent).await
}

/// A text that got no answer is not sent again while its receipt may come;
/// the receipt, keyed by our `OutId`, settles it. (Aliyun: Tencent's
/// receipts name only its own `SerialNo`, which an unanswered request never
/// got; such a text is sent again after the wait.)
#[tokio::test]
async fn aliyun_an_unanswered_text_is_settled_by_its_receipt_not_resent() {
    let (stand_in, app, site, admin) = app(Provider::Aliyun, 1).await;
    stand_in
        .control(
            Method::PUT,
            "cues/13700000552",
            json!({"answers": ["hold"], "then": "ok"}),
        )
        .await;
    let holder = app.token_for("13700000551", Role::Worker, &[]).await;
    let worker = app.token_for("13700000552", Role::Worker, &[]).await;
    let n = offer(&app, &admin, &site, &holder, &worker, "h").await;
    let report = past_fallback(&app).await;
    assert_eq!(report.deliveries.retried, 1);
    assert_eq!(delivery(&app, n).await.state, "pending");
    let answer = stand_in
        .control(
            Method::POST,
            "receipt",
            json!({"provider": "aliyun", "url": app.url(&format!("/v1/sms/receipts/aliyun?token={TOKEN}")),
                   "out_id": n.to_string(), "biz_id": "77777^0", "phone": "13700000552", "success": true}),
        )
        .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let d = delivery(&app, n).await;
    assert_eq!(
        (d.state.as_str(), d.receipt.as_deref()),
        ("sent", Some("delivered"))
    );
    app.clock.advance(Duration::from_secs(3600));
    app.service.run_jobs().await.unwrap();
    assert_eq!(
        sent_to(&stand_in, "13700000552").await.len(),
        1,
        "not resent"
    );
}
