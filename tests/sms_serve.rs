//! `yizhan serve` with a real SMS provider, as operators run it: a bad
//! configuration file stops it with an error naming the key; with a good
//! one, texts go through the provider stand-in (`tests/sms_service.py`), a
//! wrong configuration is logged at ERROR once per cause, and neither the
//! provider's secret nor a sign-in code ever reaches the log (the whole log
//! is read, at debug level).

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::sms::Message;
use yizhan::sms::config::suggested_params;

use helpers::{SmsService, spawn_serve, test_database_url};

const SECRET: &str = "stand-in-aliyun-secret";

fn templates() -> String {
    Message::ALL
        .iter()
        .map(|m| {
            let params: Vec<&str> = suggested_params(*m).iter().map(|v| v.as_str()).collect();
            format!(
                "{} = {{ id = \"SMS_{}\", params = {} }}\n",
                m.as_str(),
                m.as_str().to_uppercase(),
                serde_json::to_string(&params).unwrap()
            )
        })
        .collect()
}

/// `yizhan serve` on an empty registry and a free loopback port, texting
/// through Aliyun as `file` configures.
fn serve_aliyun(file: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_yizhan"));
    cmd.args([
        "serve",
        "--no-seed",
        "--listen",
        "127.0.0.1:0",
        "--sms-provider",
        "aliyun",
    ])
    .arg("--sms-config")
    .arg(file);
    cmd
}

#[test]
fn a_bad_configuration_stops_serve_naming_the_key_and_not_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A template without an id.
        (
            format!(
                "access_key_id = \"LTAI5tStandInKeyId\"\naccess_key_secret = \"{SECRET}\"\nsign_name = \"职工驿站\"\n[templates]\n{}",
                templates().replace("id = \"SMS_SEAT_OFFERED\", ", "")
            ),
            "templates.seat_offered.id",
        ),
        // A variable the message does not have.
        (
            format!(
                "access_key_id = \"LTAI5tStandInKeyId\"\naccess_key_secret = \"{SECRET}\"\nsign_name = \"职工驿站\"\n[templates]\n{}",
                templates().replace(
                    "params = [\"event\",\"time\",\"site\"]",
                    "params = [\"event\",\"deadline\"]"
                )
            ),
            "params",
        ),
        // A missing key.
        (
            format!(
                "access_key_secret = \"{SECRET}\"\nsign_name = \"职工驿站\"\n[templates]\n{}",
                templates()
            ),
            "access_key_id",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let good = format!(
            "access_key_id = \"LTAI5tStandInKeyId\"\naccess_key_secret = \"{SECRET}\"\nsign_name = \"职工驿站\"\n[templates]\n{}",
            templates()
        );
        assert_ne!(text, &good, "case {i} must differ from a good file");
        let file = dir.path().join(format!("sms{i}.toml"));
        std::fs::write(&file, text).unwrap();
        let child = serve_aliyun(&file)
            .env(
                "YIZHAN_DATABASE_URL",
                format!("sqlite:{}", dir.path().join("db.sqlite").display()),
            )
            .env_remove("YIZHAN_SMS_SECRET")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A serve that started despite the file must not hang the test.
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(60)).is_err() {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let out = child.wait_with_output().unwrap();
        let _ = tx.send(());
        watchdog.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "serve did not stop on a bad file: {stderr}"
        );
        assert!(stderr.contains(key), "{key} not named: {stderr}");
        assert!(!stderr.contains(SECRET), "the secret leaked: {stderr}");
    }
}

#[tokio::test]
async fn the_whole_log_holds_no_secret_nor_code_and_one_error_per_cause() {
    let stand_in = SmsService::start().await;
    for m in Message::ALL {
        let params: Vec<&str> = suggested_params(m).iter().map(|v| v.as_str()).collect();
        stand_in
            .control(
                Method::PUT,
                &format!("templates/aliyun/SMS_{}", m.as_str().to_uppercase()),
                json!({"params": params}),
            )
            .await;
    }
    for phone in ["13700000601", "13700000602"] {
        stand_in
            .control(
                Method::PUT,
                &format!("cues/{phone}"),
                json!({"answers": ["isv.SMS_TEMPLATE_ILLEGAL"], "then": "ok"}),
            )
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = test_database_url(&dir).await;
    // The secret comes from the environment, not the file.
    let file = dir.path().join("sms.toml");
    std::fs::write(
        &file,
        format!(
            "access_key_id = \"LTAI5tStandInKeyId\"\nsign_name = \"职工驿站\"\nreceipt_token = \"receipt-token-0123456789\"\n[templates]\n{}",
            templates()
        ),
    )
    .unwrap();
    let mut cmd = serve_aliyun(&file);
    cmd.args(["--sms-endpoint", &stand_in.base, "--database-url", &db.url])
        .env("YIZHAN_SMS_SECRET", SECRET)
        .env("YIZHAN_LOG", "debug");
    let (mut child, addr, log) = spawn_serve(cmd, Duration::from_secs(120));
    let http = reqwest::Client::new();
    let otp = |phone: &'static str| {
        http.post(format!("http://{addr}/v1/auth/otp"))
            .json(&json!({"phone": phone}))
            .send()
    };
    // The template is refused twice: two 503s, one ERROR.
    for phone in ["13700000601", "13700000602"] {
        assert_eq!(otp(phone).await.unwrap().status(), 503);
    }
    // A code that goes through.
    assert_eq!(otp("13700000603").await.unwrap().status(), 202);
    let sent: Vec<Value> = stand_in.log().await;
    let code = sent
        .iter()
        .rev()
        .find(|e| {
            e["phones"][0]
                .as_str()
                .is_some_and(|p| p.ends_with("13700000603"))
        })
        .and_then(|e| e["params"]["code"].as_str())
        .expect("the code reached the provider")
        .to_owned();
    assert!(sent.iter().all(|e| e["verified"] == true), "{sent:?}");
    let r = http
        .post(format!("http://{addr}/v1/auth/token"))
        .json(&json!({"phone": "13700000603", "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(
            |l| l == "yizhan_sms_config_errors_total{provider=\"aliyun\",cause=\"template\"} 2"
        ),
        "{metrics}"
    );
    // Stop it, so that every line is written, then read them all.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let lines = log.lock().unwrap().clone();
    let all = lines.join("\n");
    assert!(!all.contains(SECRET), "the secret is in the log");
    assert!(!all.contains(&code), "a sign-in code is in the log");
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("SMS configuration"))
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR per cause: {errors:?}");
    assert!(errors[0].contains("template"), "{}", errors[0]);
    assert!(
        all.contains("text accepted"),
        "the accepted text is logged (masked)"
    );
}
