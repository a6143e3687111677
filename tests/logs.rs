//! No plain token, sign-in code or phone number reaches the logs at info
//! level: the service runs with a real subscriber capturing every line while a
//! person signs in, uses a token and signs out.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::site::Kind;
use yizhan::domain::user::{Phone, Role};

use helpers::{Captured, draft, spawn_app};

#[tokio::test]
async fn info_logs_hold_no_token_code_or_phone() {
    // The only test of this binary, so the process-wide subscriber sees
    // everything the server logs, on every thread.
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    assert_eq!(
        app.call(
            Method::POST,
            "/v1/auth/otp",
            None,
            Some(json!({"phone": "+86 139 8765 4321"})),
            None
        )
        .await
        .status(),
        202
    );
    let phone = "13987654321";
    let code = app.sms.last_code(&phone.parse::<Phone>().unwrap()).unwrap();
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let exchange = |code: String| {
        app.call(
            Method::POST,
            "/v1/auth/token",
            None,
            Some(json!({"phone": phone, "code": code})),
            None,
        )
    };
    assert_eq!(exchange(wrong).await.status(), 401);
    let body: Value = exchange(code.clone()).await.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let admin = app.token_for("13600000000", Role::Admin, &[]).await;
    app.call(Method::GET, "/v1/me", Some(&token), None, None)
        .await;
    app.call(
        Method::GET,
        &format!("/v1/me?token={token}"),
        Some(&token),
        None,
        None,
    )
    .await;
    app.call(Method::POST, "/v1/auth/logout", Some(&token), None, None)
        .await;
    app.call(Method::GET, "/v1/me", Some(&token), None, None)
        .await;
    app.call(Method::GET, "/v1/me", Some(&admin), None, None)
        .await;
    // A rider's position is in the query string: it must not reach the log.
    app.call(
        Method::GET,
        "/v1/sites/nearby?lat=36.6512345&lon=117.1209876&k=3",
        None,
        None,
        None,
    )
    .await;

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: request lines and the sign-in are there…
    assert!(
        log.contains("sign-in code sent") && log.contains("signed in"),
        "{log}"
    );
    assert!(log.contains("/v1/me"), "{log}");
    assert!(log.contains("/v1/sites/nearby"), "{log}");
    // …and no secret is.
    for secret in [
        token.as_str(),
        admin.as_str(),
        code.as_str(),
        phone,
        "13600000000",
        &token[3..20],
        "36.6512345",
        "117.1209876",
    ] {
        assert!(!log.contains(secret), "the log holds {secret}:\n{log}");
    }
}
