//! `spawn_app()`: the real service on a loopback port, with a fresh database
//! (a SQLite file, or a PostgreSQL database: see [`test_database_url`]).

use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use tempfile::TempDir;
use tokio::sync::oneshot;
use yizhan::auth::{Auth, ManualClock, MemorySender};
use yizhan::domain::site::SiteId;
use yizhan::domain::site::{Adcode, AmenitySet, Kind, SiteDraft, Status};
use yizhan::domain::user::{Phone, Role};
use yizhan::service::{Service, Timers, serve};
use yizhan::store;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub service: Service,
    /// The service's clock: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
    /// The SMS gateway's double: what codes were sent.
    pub sms: Arc<MemorySender>,
    pub database_url: String,
    _db: TestDatabase,
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.expect("JSON body")
    }

    /// A user with this role and scope, and a bearer token for them (made
    /// through the store, as `yizhan admin token` does).
    pub async fn token_for(&self, phone: &str, role: Role, sites: &[SiteId]) -> String {
        let store = &self.service.state.store;
        let phone: Phone = phone.parse().expect("a valid phone");
        let user = store
            .put_user(&phone, role, sites, self.clock_now())
            .await
            .expect("user stored");
        let token = yizhan::auth::new_token();
        store
            .create_token(
                user.id,
                &yizhan::auth::token_hash(&token),
                self.clock_now() + chrono::Duration::days(30),
            )
            .await
            .expect("token stored");
        token
    }

    /// Move the clock forward to `hour:minute` China time, today or
    /// tomorrow (the seconds stay as they are).
    pub fn move_to_china_time(&self, hour: u32, minute: u32) {
        use chrono::Timelike;
        let now = self
            .clock_now()
            .with_timezone(&yizhan::domain::hours::SHANGHAI);
        let minutes = ((hour * 60 + minute) as i64 - (now.hour() * 60 + now.minute()) as i64)
            .rem_euclid(24 * 60);
        self.clock.advance(Duration::from_secs(minutes as u64 * 60));
    }

    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use yizhan::auth::Clock;
        self.clock.now()
    }

    /// A request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        if_match: Option<&str>,
    ) -> reqwest::Response {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(m) = if_match {
            r = r.header("if-match", m);
        }
        r.send().await.expect("request sent")
    }

    /// The current ETag of a site.
    pub async fn etag(&self, id: &str) -> String {
        let r = self.get(&format!("/v1/sites/{id}")).await;
        assert_eq!(r.status(), 200);
        r.headers()["etag"].to_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}

/// A service with one union station in Jinan (what most event tests need).
pub async fn spawn_app_with_a_site() -> TestApp {
    spawn_app(vec![draft(1, Kind::UnionStation, 36.65, 117.12)]).await
}

/// A second node on `app`'s database, with the same clock.
pub async fn second_node(app: &TestApp) -> Service {
    Service::with_store_and_auth(
        store::connect(&app.database_url).await.unwrap(),
        Duration::from_secs(3600),
        Auth {
            clock: app.clock.clone(),
            sms: Arc::new(MemorySender::default()),
            sms_receipt_token: None,
        },
    )
    .await
    .unwrap()
}

/// The nearest site to Jinan's centre (the one a test made there) and an
/// admin's token.
pub async fn site_and_admin(app: &TestApp) -> (String, String) {
    let site = app
        .get_json("/v1/sites/nearby?lat=36.65&lon=117.12&k=1")
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (site, app.token_for("13600000000", Role::Admin, &[]).await)
}

/// A draft for tests; `n` makes the ref unique.
pub fn draft(n: usize, kind: Kind, lat: f64, lon: f64) -> SiteDraft {
    SiteDraft {
        ext_ref: Some(format!("test-{n}")),
        kind,
        name: format!("测试站点{n}"),
        address: format!("山东省济南市历下区测试路{n}号"),
        adcode: "370102".parse::<Adcode>().unwrap(),
        lat,
        lon,
        amenities: AmenitySet::EMPTY,
        opening_hours: "24/7".into(),
        phone: None,
        photos: vec![],
        status: Status::Open,
        closure: Default::default(),
        union_id: None,
    }
}

/// A database for one test. PostgreSQL ones are left for `pg_virtualenv` to
/// remove with its cluster: `DROP DATABASE … WITH (FORCE)` in each test's
/// teardown stalls for up to a minute on PostgreSQL 15 (its ProcSignalBarrier
/// waits for every backend), which made the suite 100× slower.
pub struct TestDatabase {
    pub url: String,
}

/// The server named by libpq's variables (`pg_virtualenv` sets them), as a URL
/// to `database`.
pub fn postgres_url(database: &str) -> String {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let host = var("PGHOST", "localhost");
    let host = if host.starts_with('/') {
        "localhost".to_owned()
    } else {
        host
    };
    let password: String =
        form_urlencoded::byte_serialize(var("PGPASSWORD", "").as_bytes()).collect();
    format!(
        "postgres://{}:{}@{}:{}/{}",
        var("PGUSER", "postgres"),
        password,
        host,
        var("PGPORT", "5432"),
        database
    )
}

/// A fresh, empty PostgreSQL database on the server libpq's variables name.
pub async fn fresh_postgres_database() -> TestDatabase {
    use sqlx::{Connection, Executor};
    let admin = postgres_url(&std::env::var("PGDATABASE").unwrap_or_else(|_| "postgres".into()));
    let name = format!("yizhan_test_{:016x}", rand::random::<u64>());
    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("YIZHAN_TEST_DATABASE=postgres: cannot reach PostgreSQL through PG* variables ({e}); run under pg_virtualenv")
    });
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("CREATE DATABASE");
    TestDatabase {
        url: postgres_url(&name),
    }
}

/// The one place the tests' database comes from: `YIZHAN_TEST_DATABASE`
/// names the backend — `sqlite`, the default: a fresh file in `dir` per test;
/// `postgres`: a fresh database per test on the server that libpq's `PG*`
/// variables name (`scripts/test` runs this half under `pg_virtualenv`). Every test reaches the database only through
/// the store contract, so each backend runs the whole suite.
pub async fn test_database_url(dir: &TempDir) -> TestDatabase {
    match std::env::var("YIZHAN_TEST_DATABASE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => TestDatabase {
            url: format!("sqlite:{}", dir.path().join("yizhan.db").display()),
        },
        Ok("postgres") => fresh_postgres_database().await,
        Ok(other) => {
            panic!("YIZHAN_TEST_DATABASE={other}: no such test backend (sqlite, postgres)")
        }
    }
}

/// Start the service over a fresh database holding `drafts`. Its background
/// tasks wait an hour between passes: tests drain them (`catch_up`, `run_jobs`).
pub async fn spawn_app(drafts: Vec<SiteDraft>) -> TestApp {
    spawn_app_with_worker(drafts, Duration::from_secs(3600)).await
}

/// As [`spawn_app`], with the worker passing every `worker_interval`.
pub async fn spawn_app_with_worker(drafts: Vec<SiteDraft>, worker_interval: Duration) -> TestApp {
    spawn_app_guarded(drafts, worker_interval, Default::default()).await
}

/// As [`spawn_app_with_worker`], with overload limits, proxies and CORS set
/// (the others start without limits).
pub async fn spawn_app_guarded(
    drafts: Vec<SiteDraft>,
    worker_interval: Duration,
    guard: yizhan::http::guard::GuardConfig,
) -> TestApp {
    spawn_app_with(drafts, worker_interval, guard, None, None).await
}

/// As [`spawn_app`], with WeChat on (`settings`, usually pointing at the
/// stand-in of [`WechatService`]).
#[allow(dead_code)]
pub async fn spawn_app_with_wechat(
    drafts: Vec<SiteDraft>,
    settings: yizhan::wechat::WechatSettings,
) -> TestApp {
    spawn_app_with(
        drafts,
        Duration::from_secs(3600),
        Default::default(),
        None,
        Some(settings),
    )
    .await
}

/// As [`spawn_app`], texting through the provider `settings` describe
/// (its receipt token included) instead of the memory double.
#[allow(dead_code)]
pub async fn spawn_app_with_sms(
    drafts: Vec<SiteDraft>,
    settings: &yizhan::sms::SmsSettings,
) -> TestApp {
    spawn_app_with(
        drafts,
        Duration::from_secs(3600),
        Default::default(),
        Some(settings),
        None,
    )
    .await
}

async fn spawn_app_with(
    drafts: Vec<SiteDraft>,
    worker_interval: Duration,
    guard: yizhan::http::guard::GuardConfig,
    sms_settings: Option<&yizhan::sms::SmsSettings>,
    wechat: Option<yizhan::wechat::WechatSettings>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = test_database_url(&dir).await;
    let url = db.url.clone();
    let store = store::connect(&url).await.expect("store opens");
    if !drafts.is_empty() {
        store
            .import_sites(drafts, chrono::Utc::now())
            .await
            .expect("import");
    }
    // A long follow interval: tests call `catch_up()` instead of waiting for it.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let sms = Arc::new(MemorySender::default());
    let auth = match sms_settings {
        None => Auth {
            clock: clock.clone(),
            sms: sms.clone(),
            sms_receipt_token: None,
        },
        Some(s) => Auth {
            clock: clock.clone(),
            sms: yizhan::sms::sender(s, true),
            sms_receipt_token: s.receipt_token.clone(),
        },
    };
    let timers = Timers {
        worker: worker_interval,
        ..Timers::every(Duration::from_secs(3600))
    };
    let mut service = Service::with_parts(
        store,
        timers,
        auth,
        yizhan::push::PushConfig::ephemeral(true),
    )
    .await
    .expect("service starts");
    if let Some(w) = wechat {
        service.set_wechat(w);
    }
    // The background worker's first pass runs at once (a restarted node
    // catches up); wait for it here, or on a loaded machine it may run late,
    // after a test has moved the clock, and take the work the test's own
    // `run_jobs` is about to count.
    tokio::time::timeout(
        Duration::from_secs(60),
        service.worker.passes().wait_for(|n| *n >= 1),
    )
    .await
    .expect("the worker's first pass within a minute")
    .expect("the worker is running");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let mut state = service.state.clone();
    state.guard = Arc::new(yizhan::http::guard::Guard::new(guard));
    tokio::spawn(async move {
        serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve");
    });
    TestApp {
        addr,
        client: {
            yizhan::push::install_tls_provider();
            reqwest::Client::new()
        },
        service,
        clock,
        sms,
        database_url: url,
        _db: db,
        _dir: dir,
        stop: Some(stop),
    }
}

/// The `ref`s of a nearby/search response's items, in order.
pub fn refs(body: &serde_json::Value) -> Vec<String> {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["ref"].as_str().expect("ref").to_owned())
        .collect()
}

/// `yizhan serve` as a child process, as operators run it. `cmd` carries the
/// subcommand and its arguments; this adds JSON logs on stderr, keeps every
/// line (for a failure's message), and waits up to `patience` for the
/// `listen` line. Returns the child, its address and its log so far.
/// (Used by the tests that run the binary: nodes, crash, overload.)
#[allow(dead_code)]
pub fn spawn_serve(
    mut cmd: std::process::Command,
    patience: Duration,
) -> (
    std::process::Child,
    String,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .env_remove("YIZHAN_DATABASE_URL")
        .env_remove("YIZHAN_LISTEN")
        .env("YIZHAN_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("yizhan starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(a) = v["fields"]["listen"].as_str() {
                let _ = tx.send(a.to_owned());
            }
            lines.lock().unwrap().push(line);
        }
    });
    match rx.recv_timeout(patience) {
        Ok(addr) => (child, addr, log),
        Err(_) => {
            let _ = child.kill();
            panic!("yizhan did not start: {}", log.lock().unwrap().join("\n"))
        }
    }
}

/// Start a stand-in written in Python (`tests/<script>`): the first line it
/// prints is `{"port": N}`; it stops when its standard input closes (when
/// the child is dropped). `needs` says what to install when it cannot start.
async fn start_stand_in(script: &str, needs: &str) -> (String, tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    // The stand-ins' own clients (reqwest) need rustls's provider.
    yizhan::push::install_tls_provider();
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new("python3")
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("python3 runs (the test command needs it, with `{needs}`): {e}")
        });
    let mut line = String::new();
    tokio::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .await
        .unwrap();
    let port =
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|_| panic!("the stand-in {script} did not start ({needs}?): {line:?}"))
            ["port"]
            .as_u64()
            .unwrap();
    (format!("http://127.0.0.1:{port}"), child)
}

/// A stand-in's control call (`PUT`/`POST` under `/control/`) that must
/// succeed; its JSON answer, if any.
async fn control(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = http
        .request(method, format!("{base}/control/{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or_default()
}

/// The push service stand-in (`tests/push_service.py`: it checks the VAPID
/// JWT and decrypts each push with Python's `cryptography` and `http_ece`),
/// stopped when dropped. Tests add what else they ask of it.
pub struct PushService {
    pub base: String,
    pub http: reqwest::Client,
    _child: tokio::process::Child,
}

impl PushService {
    pub async fn start() -> PushService {
        let (base, child) =
            start_stand_in("push_service.py", "pip install http_ece cryptography").await;
        PushService {
            base,
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// A new browser: its endpoint and keys, as `PushSubscription.toJSON()`.
    pub async fn subscriber(&self, name: &str) -> serde_json::Value {
        self.http
            .post(format!("{}/subscribers", self.base))
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every push received, in order.
    pub async fn log(&self) -> Vec<serde_json::Value> {
        self.http
            .get(format!("{}/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The SMS provider stand-in (`tests/sms_service.py`: Aliyun's and Tencent
/// Cloud's `SendSms`, each request's signature checked with the provider's
/// own published Python code), stopped when dropped.
#[allow(dead_code)]
pub struct SmsService {
    pub base: String,
    pub http: reqwest::Client,
    _child: tokio::process::Child,
}

#[allow(dead_code)]
impl SmsService {
    pub async fn start() -> SmsService {
        let (base, child) = start_stand_in(
            "sms_service.py",
            "pip install alibabacloud-openapi-util tencentcloud-sdk-python-common",
        )
        .await;
        SmsService {
            base,
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// `PUT`/`POST` a control call; its JSON answer.
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        control(&self.http, &self.base, method, path, body).await
    }

    /// Every `SendSms` seen, in order.
    pub async fn log(&self) -> Vec<serde_json::Value> {
        self.http
            .get(format!("{}/control/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The WeChat stand-in (`tests/wechat_service.py`: `jscode2session`,
/// `getuserphonenumber`, `stable_token`, `message/subscribe/send`, proven
/// by the `wechatpy` client in `tests/wechat_sdk_check.py`), stopped when
/// dropped.
#[allow(dead_code)]
pub struct WechatService {
    pub base: String,
    pub http: reqwest::Client,
    _child: tokio::process::Child,
}

#[allow(dead_code)]
impl WechatService {
    pub const APPID: &str = "wxstandin0000001";
    pub const SECRET: &str = "stand-in-wechat-secret";

    pub async fn start() -> WechatService {
        let (base, child) = start_stand_in("wechat_service.py", "python3").await;
        WechatService {
            base,
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// yizhan's settings for this stand-in, with these templates (TOML).
    pub fn settings(&self, templates: &str) -> yizhan::wechat::WechatSettings {
        yizhan::wechat::WechatSettings {
            appid: Self::APPID.into(),
            secret: yizhan::sms::config::Secret::new(Self::SECRET),
            endpoint: self.base.parse().unwrap(),
            state: yizhan::wechat::MiniprogramState::Developer,
            templates: yizhan::domain::wechat::Templates::parse(templates).unwrap(),
        }
    }

    /// A control call (`PUT`/`POST` under `/control/`).
    pub async fn control(&self, method: reqwest::Method, path: &str, body: serde_json::Value) {
        control(&self.http, &self.base, method, path, body).await;
    }

    /// What the stand-in saw (`requests`, `token_fetches`, `sent`, `consents`).
    pub async fn log(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/control/log", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Collects formatted log lines (a `tracing_subscriber` writer).
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
