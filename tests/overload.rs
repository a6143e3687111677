//! Overload and abuse, against the real server on loopback (issue 16):
//! shedding beyond the concurrency limit with 503 + Retry-After while
//! `/healthz` answers, the time bound, write limits per address and per user,
//! `X-Forwarded-For` only from a trusted proxy, body limits, CORS, the
//! security headers, and a SIGTERM that drains in-flight requests.
//!
//! Nothing here waits on a timer to synchronise: a request is known to be in
//! flight when the server, limited to that many at once, sheds the next one.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yizhan::domain::site::Kind;
use yizhan::domain::user::Role;
use yizhan::http::guard::GuardConfig;

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use helpers::{TestApp, draft, spawn_app_guarded};

async fn spawn(guard: GuardConfig) -> TestApp {
    let drafts = (0..20)
        .map(|i| draft(i, Kind::OutdoorStation, 36.65 + i as f64 * 0.001, 117.0))
        .collect();
    spawn_app_guarded(drafts, Duration::from_secs(3600), guard).await
}

const NEARBY: &str = "/v1/sites/nearby?lat=36.65&lon=117.0&limit=5";

/// A request whose body is promised but not sent: its handler is in flight
/// (holding a permit) until `finish` sends the rest.
struct Stalled {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl Stalled {
    async fn start(addr: SocketAddr, path: &str, body: &[u8]) -> Stalled {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..1]).await.unwrap();
        stream.flush().await.unwrap();
        Stalled {
            stream,
            rest: body[1..].to_vec(),
        }
    }

    /// Send the rest of the body and read the answer's status line and headers.
    async fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        self.answer().await
    }

    /// What the connection has said within 200 ms, for a failure's message:
    /// was the request answered early, or closed, or is it still in flight?
    async fn said(&mut self) -> String {
        let mut buf = vec![0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), self.stream.read(&mut buf)).await {
            Err(_) => "nothing (still in flight)".into(),
            Ok(Ok(0)) => "closed without an answer".into(),
            Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(Err(e)) => format!("a read error: {e}"),
        }
    }

    /// Read whatever the server answers (it may answer without the body).
    async fn answer(mut self) -> String {
        let mut out = Vec::new();
        let _ = self.stream.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A problem+json answer with `status` and a Retry-After.
async fn assert_problem_with_retry(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert!(
        r.headers().contains_key("retry-after"),
        "{status} without Retry-After"
    );
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["status"], status);
    p
}

/// GET `path` until the server sheds one (it holds `n` requests already);
/// `None` if it never does.
async fn until_shed(app: &TestApp) -> Option<reqwest::Response> {
    for _ in 0..10_000 {
        let r = app.get(NEARBY).await;
        if r.status() == 503 {
            return Some(r);
        }
        assert_eq!(r.status(), 200);
        tokio::task::yield_now().await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_requests_are_shed_while_healthz_answers() {
    let app = spawn(GuardConfig {
        max_concurrent_requests: Some(2),
        ..Default::default()
    })
    .await;
    // Two requests in flight fill the limit.
    let body = br#"{"phone": "not a phone"}"#;
    let mut a = Stalled::start(app.addr, "/v1/auth/otp", body).await;
    let mut b = Stalled::start(app.addr, "/v1/auth/otp", body).await;
    // The first probe may reach the server before a stalled request's
    // headers are read; then that stalled request is the one shed, and
    // with one left in flight no probe ever is. Such a request is started
    // again (it was answered at once, so it holds nothing).
    let mut attempts = 0;
    let first = loop {
        if let Some(r) = until_shed(&app).await {
            break r;
        }
        let (said_a, said_b) = (a.said().await, b.said().await);
        attempts += 1;
        let shed = |s: &str| s.starts_with("HTTP/1.1 503");
        assert!(
            attempts < 5 && (shed(&said_a) || shed(&said_b)),
            "the server never shed a request; the stalled requests' connections said {said_a:?} and {said_b:?}"
        );
        if shed(&said_a) {
            a = Stalled::start(app.addr, "/v1/auth/otp", body).await;
        }
        if shed(&said_b) {
            b = Stalled::start(app.addr, "/v1/auth/otp", body).await;
        }
    };
    let p = assert_problem_with_retry(first, 503).await;
    assert!(p["detail"].as_str().unwrap().contains("limit of 2"), "{p}");

    // A flood meanwhile: every answer is 200 or a 503 with Retry-After, never
    // another 5xx; the ops endpoints answer all along.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (client, url) = (app.client.clone(), app.url(NEARBY));
        flood.spawn(async move { client.get(url).send().await.unwrap() });
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.get(path).await.status(), 200, "{path} under overload");
    }
    let mut shed = 0;
    while let Some(r) = flood.join_next().await {
        let r = r.unwrap();
        match r.status().as_u16() {
            200 => {}
            503 => {
                assert_problem_with_retry(r, 503).await;
                shed += 1;
            }
            other => panic!("a flood request answered {other}"),
        }
    }
    // The two stalled requests still hold the limit: the whole flood was shed.
    assert_eq!(shed, 200);

    // Let them finish: they are answered (422: not a phone), and the limit frees.
    for s in [a, b] {
        let answer = s.finish().await;
        assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    }
    let mut ok = false;
    for _ in 0..10_000 {
        if app.get(NEARBY).await.status() == 200 {
            ok = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(ok, "the limit never freed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("yizhan_http_requests_shed_total{reason=\"concurrency\"}"))
        .unwrap_or_else(|| panic!("no shed counter in {metrics}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 201, "{line}");
}

#[tokio::test]
async fn a_request_past_the_time_bound_is_503_with_retry_after() {
    let app = spawn(GuardConfig {
        request_timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    // A body that never comes: the server gives up, not the client.
    let s = Stalled::start(app.addr, "/v1/auth/otp", br#"{"phone": "x"}"#).await;
    let answer = s.answer().await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{answer}");
    assert!(lower.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("longer than 0.3 s"), "{answer}");
    // Quick requests are untouched.
    assert_eq!(app.get(NEARBY).await.status(), 200);
}

async fn otp(app: &TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url("/v1/auth/otp"))
        .json(&json!({"phone": "not a phone"}));
    if let Some(f) = forwarded_for {
        r = r.header("x-forwarded-for", f);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn writes_are_limited_per_address_and_reads_are_not() {
    let app = spawn(GuardConfig {
        address_writes_per_minute: 3,
        ..Default::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(otp(&app, None).await.status(), 422);
    }
    let p = assert_problem_with_retry(otp(&app, None).await, 429).await;
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .ends_with("/problems/rate-limited"),
        "{p}"
    );
    assert!(
        p["detail"].as_str().unwrap().contains("this address"),
        "{p}"
    );
    // Reads are not writes.
    for _ in 0..10 {
        assert_eq!(app.get(NEARBY).await.status(), 200);
    }
    // From an untrusted peer X-Forwarded-For changes nothing: still 127.0.0.1.
    let r = otp(&app, Some("203.0.113.9")).await;
    assert_problem_with_retry(r, 429).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let app = spawn(GuardConfig {
        address_writes_per_minute: 2,
        trusted_proxies: yizhan::http::client_addr::parse_list("127.0.0.0/8").unwrap(),
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(otp(&app, Some("203.0.113.1")).await.status(), 422);
    }
    assert_problem_with_retry(otp(&app, Some("203.0.113.1")).await, 429).await;
    // Another client behind the same proxy, and a spoofed hop to the left of
    // the proxy's own entry (ignored: the proxy appended 203.0.113.2).
    assert_eq!(
        otp(&app, Some("203.0.113.1, 203.0.113.2")).await.status(),
        422
    );
    assert_eq!(otp(&app, Some("203.0.113.2")).await.status(), 422);
    assert_problem_with_retry(otp(&app, Some("203.0.113.2")).await, 429).await;
    // The proxy's own requests (no header) are counted as the proxy's.
    assert_eq!(otp(&app, None).await.status(), 422);
}

#[tokio::test]
async fn writes_are_limited_per_signed_in_user() {
    let app = spawn(GuardConfig {
        user_writes_per_minute: 3,
        ..Default::default()
    })
    .await;
    let alice = app.token_for("13800000001", Role::Worker, &[]).await;
    let bob = app.token_for("13800000002", Role::Worker, &[]).await;
    let read_all = |t: String| {
        app.client
            .post(app.url("/v1/me/notifications/read-all"))
            .bearer_auth(t)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(read_all(alice.clone()).await.unwrap().status(), 200);
    }
    let p = assert_problem_with_retry(read_all(alice.clone()).await.unwrap(), 429).await;
    assert!(
        p["detail"].as_str().unwrap().contains("this account"),
        "{p}"
    );
    // Her reads go on; Bob has his own limit.
    let me = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(read_all(bob).await.unwrap().status(), 200);
}

#[tokio::test]
async fn oversized_bodies_are_413_problems() {
    let app = spawn(GuardConfig::default()).await;
    let big = json!({"phone": "x".repeat(100 * 1024)});
    let r = app
        .client
        .post(app.url("/v1/auth/otp"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert!(
        p["type"].as_str().unwrap().ends_with("/problems/too-large"),
        "{p}"
    );
    // A handler reading raw bytes (booking) answers the same way.
    let token = app.token_for("13800000003", Role::Worker, &[]).await;
    let r = app
        .client
        .post(app.url("/v1/events/1/bookings"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert!(
        p["type"].as_str().unwrap().ends_with("/problems/too-large"),
        "{p}"
    );
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let app = spawn(GuardConfig {
        cors_origins: yizhan::http::guard::parse_origins("https://app.example.cn").unwrap(),
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                app.url("/v1/me/notifications/read-all"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let r = preflight("https://app.example.cn").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.cn"
    );
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization"), "{headers}");

    let r = preflight("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    // A simple request: allowed origin gets the header, another does not.
    let get = |origin: &'static str| {
        app.client
            .get(app.url(NEARBY))
            .header("origin", origin)
            .send()
    };
    let r = get("https://app.example.cn").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example.cn"
    );
    let r = get("https://evil.example").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    // Without configured origins there is no CORS at all.
    let plain = spawn(GuardConfig::default()).await;
    let r = plain
        .client
        .get(plain.url(NEARBY))
        .header("origin", "https://app.example.cn")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn security_headers_on_the_api_and_the_consoles_own_kept() {
    let app = spawn(GuardConfig::default()).await;
    let r = app.get(NEARBY).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    // Public, anonymous reads are not marked; errors and private answers are.
    assert!(!h.contains_key("cache-control"));
    let r = app.get("/v1/nowhere").await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let token = app.token_for("13800000004", Role::Worker, &[]).await;
    let r = app
        .client
        .get(app.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    // An ETag'd answer keeps its revalidation even when signed in.
    let id = app.get_json(NEARBY).await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .get(app.url(&format!("/v1/sites/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("etag"));
    assert!(!r.headers().contains_key("cache-control"));
    // The console's pages keep their own policy.
    let r = app.get("/console/login").await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
}

/// `yizhan serve` on a fresh SQLite file, its log lines collected.
struct Served {
    child: Option<std::process::Child>,
    addr: SocketAddr,
    /// `--ops-listen`'s address, when given.
    ops: Option<SocketAddr>,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        yizhan::push::install_tls_provider();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("yizhan.db").display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_yizhan"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
            .args(["--no-seed", "--vapid-subject", "mailto:ops@example.cn"])
            .args(args);
        let (child, addr, log) = helpers::spawn_serve(cmd, Duration::from_secs(120));
        let addr: SocketAddr = addr.parse().unwrap();
        // Logged before `listen`.
        let ops = log.lock().unwrap().iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            v["fields"]["ops_listen"].as_str()?.parse().ok()
        });
        Served {
            child: Some(child),
            addr,
            ops,
            log,
            _dir: dir,
        }
    }

    fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.child.as_ref().unwrap().id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Wait for the exit (at most a minute, or the test fails).
    fn exit_status(mut self) -> (std::process::ExitStatus, String) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut child = self.child.take().unwrap();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(s) => s.unwrap(),
            Err(_) => {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                panic!("yizhan did not exit within a minute of SIGTERM");
            }
        };
        (status, self.log.lock().unwrap().join("\n"))
    }

    async fn get(&self, path: &str) -> Option<reqwest::StatusCode> {
        reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .ok()
            .map(|r| r.status())
    }

    /// Poll until the listener refuses connections (shutdown has begun).
    async fn until_closed(&self) {
        for _ in 0..100_000 {
            if TcpStream::connect(self.addr).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the listener never closed");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_then_exits_cleanly() {
    let served = Served::start(&[
        "--max-concurrent-requests",
        "1",
        "--ops-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(served.get("/healthz").await, Some(reqwest::StatusCode::OK));
    // The operators' own listener: the probes, and nothing else.
    let ops = served.ops.expect("ops_listen logged");
    let ops_get = |path: &'static str| async move {
        reqwest::get(format!("http://{ops}{path}"))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ops_get("/healthz").await, 200);
    assert_eq!(ops_get("/readyz").await, 200);
    assert_eq!(ops_get(NEARBY).await, 404);
    let mut stalled = Stalled::start(served.addr, "/v1/auth/otp", br#"{"phone": "x"}"#).await;
    // It is in flight once the next request is shed.
    let mut shed = false;
    for _ in 0..10_000 {
        if served.get(NEARBY).await == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) {
            shed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    if !shed {
        panic!(
            "the stalled request never held the limit; its connection said {:?}; the log:\n{}",
            stalled.said().await,
            served.log.lock().unwrap().join("\n")
        );
    }
    // The limit is full, and the probes answer on both listeners.
    assert_eq!(served.get("/healthz").await, Some(reqwest::StatusCode::OK));
    assert_eq!(ops_get("/healthz").await, 200);
    served.sigterm();
    served.until_closed().await;
    // Draining: the request in flight is still answered.
    let answer = stalled.finish().await;
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    let (status, log) = served.exit_status();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("draining in-flight requests"), "{log}");
    assert!(log.contains("shut down cleanly"), "{log}");
    assert!(!log.contains("still in flight"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_ends_does_not_hold_shutdown_past_the_grace() {
    let served = Served::start(&[
        "--max-concurrent-requests",
        "1",
        "--request-timeout",
        "0",
        "--shutdown-grace",
        "0.5",
    ]);
    let mut stalled = Stalled::start(served.addr, "/v1/auth/otp", br#"{"phone": "x"}"#).await;
    let mut shed = false;
    for _ in 0..10_000 {
        if served.get(NEARBY).await == Some(reqwest::StatusCode::SERVICE_UNAVAILABLE) {
            shed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    if !shed {
        panic!(
            "the stalled request never held the limit; its connection said {:?}; the log:\n{}",
            stalled.said().await,
            served.log.lock().unwrap().join("\n")
        );
    }
    served.sigterm();
    let (status, log) = served.exit_status();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("still in flight after the shutdown grace"),
        "{log}"
    );
    assert!(log.contains("shut down cleanly"), "{log}");
    drop(stalled);
}
