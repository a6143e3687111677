//! The `yizhan` command as operators use it: import (all or nothing, idempotent),
//! export, geodata generate, and serve answering on a real port.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn yizhan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_yizhan"));
    c.env_remove("YIZHAN_DATABASE_URL")
        .env_remove("YIZHAN_LISTEN");
    c
}

fn feature(r: &str, kind: &str, lon: f64, lat: f64) -> Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {
            "ref": r, "kind": kind, "name": format!("站点 {r}"), "address": "山东省济南市历下区泉城路1号",
            "adcode": "370102", "amenities": ["drinking_water", "microwave"], "opening_hours": "24/7",
            "phone": null, "photos": [], "status": "open"
        }
    })
}

fn collection(features: Vec<Value>) -> String {
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("yizhan runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn import_is_all_or_nothing_and_idempotent_and_export_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let good = dir.path().join("good.geojson");
    std::fs::write(
        &good,
        collection(vec![
            feature("a-1", "outdoor_station", 117.12, 36.65),
            feature("a-2", "mother_room", 117.13, 36.66),
        ]),
    )
    .unwrap();
    let (ok, out, err) =
        run(yizhan().args(["import", good.to_str().unwrap(), "--database-url", &db]));
    assert!(ok, "{err}");
    assert!(out.contains("2 created"), "{out}");

    // A bad third feature: nothing of the file is applied, and the message names it.
    let bad = dir.path().join("bad.geojson");
    let mut changed = feature("a-1", "outdoor_station", 117.5, 36.9);
    changed["properties"]["name"] = json!("改名");
    std::fs::write(
        &bad,
        collection(vec![
            changed,
            feature("a-3", "union_station", 117.0, 36.0),
            feature("a-4", "cafe", 117.0, 36.0),
        ]),
    )
    .unwrap();
    let (ok, _, err) = run(yizhan().args(["import", bad.to_str().unwrap(), "--database-url", &db]));
    assert!(!ok);
    assert!(
        err.contains("feature 2") && err.contains("kind") && err.contains("cafe"),
        "{err}"
    );

    // Re-importing the good file changes nothing.
    let (ok, out, err) =
        run(yizhan().args(["import", good.to_str().unwrap(), "--database-url", &db]));
    assert!(ok, "{err}");
    assert!(out.contains("0 created, 0 updated, 2 unchanged"), "{out}");

    // Export: both sites, with their refs and the same coordinates.
    let (ok, out, err) = run(yizhan().args(["export", "--database-url", &db]));
    assert!(ok, "{err}");
    let fc: Value = serde_json::from_str(&out).expect("export is JSON");
    assert_eq!(fc["type"], "FeatureCollection");
    let feats = fc["features"].as_array().unwrap();
    assert_eq!(feats.len(), 2);
    let a1 = feats
        .iter()
        .find(|f| f["properties"]["ref"] == "a-1")
        .expect("a-1 exported");
    assert_eq!(a1["geometry"]["coordinates"], json!([117.12, 36.65]));
    assert_eq!(a1["properties"]["name"], "站点 a-1");

    // Export then import into the same database: still nothing changes.
    let exported = dir.path().join("export.geojson");
    std::fs::write(&exported, &out).unwrap();
    let (ok, out, err) =
        run(yizhan().args(["import", exported.to_str().unwrap(), "--database-url", &db]));
    assert!(ok, "{err}");
    assert!(out.contains("2 unchanged"), "{out}");
}

#[test]
fn import_in_gcj02_stores_wgs84() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let (glat, glon) = yizhan::domain::coords::wgs84_to_gcj02(36.65, 117.12);
    let file = dir.path().join("gcj.geojson");
    std::fs::write(
        &file,
        collection(vec![feature("g-1", "union_station", glon, glat)]),
    )
    .unwrap();
    let (ok, _, err) = run(yizhan().args([
        "import",
        file.to_str().unwrap(),
        "--crs",
        "gcj02",
        "--database-url",
        &db,
    ]));
    assert!(ok, "{err}");
    let (ok, out, _) = run(yizhan().args(["export", "--database-url", &db]));
    assert!(ok);
    let fc: Value = serde_json::from_str(&out).unwrap();
    let c = &fc["features"][0]["geometry"]["coordinates"];
    assert!(
        (c[0].as_f64().unwrap() - 117.12).abs() < 1e-6
            && (c[1].as_f64().unwrap() - 36.65).abs() < 1e-6,
        "{c}"
    );
}

#[test]
fn geodata_generate_is_deterministic() {
    let a = run(yizhan().args([
        "geodata",
        "generate",
        "--sites",
        "300",
        "--seed",
        "9",
        "--adcode-prefix",
        "3701",
    ]));
    let b = run(yizhan().args([
        "geodata",
        "generate",
        "--sites",
        "300",
        "--seed",
        "9",
        "--adcode-prefix",
        "3701",
    ]));
    assert!(a.0, "{}", a.2);
    assert_eq!(a.1, b.1);
    let fc: Value = serde_json::from_str(&a.1).unwrap();
    let feats = fc["features"].as_array().unwrap();
    assert_eq!(feats.len(), 300);
    assert!(feats.iter().all(|f| {
        f["properties"]["adcode"]
            .as_str()
            .unwrap()
            .starts_with("3701")
    }));
    assert_eq!(fc["metadata"]["synthetic"], true);
}

/// Kills the server if the test panics before it stops it.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_seeds_shandong_and_answers_nearby_at_jinan() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let mut server = Server(
        yizhan()
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .env("YIZHAN_LOG_FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The service logs the address it bound; read it from the structured log,
    // and keep draining the log so the server never blocks on a full pipe.
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let drain = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(a) = v["fields"]["listen"].as_str() {
                let _ = tx.send(a.to_owned());
            }
            lines.push(line);
        }
        lines
    });
    let addr = rx.recv().expect("serve logged its address");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    yizhan::push::install_tls_provider();
    let (body, vapid): (Value, Value) = rt.block_on(async {
        let r = reqwest::get(format!(
            "http://{addr}/v1/sites/nearby?lat=36.65&lon=117.12&crs=gcj02&k=5"
        ))
        .await
        .expect("nearby answered");
        assert_eq!(r.status(), 200);
        let key = reqwest::get(format!("http://{addr}/v1/push/vapid-public-key"))
            .await
            .expect("key answered");
        (
            r.json().await.expect("nearby is JSON"),
            key.json().await.expect("key is JSON"),
        )
    });
    // SIGTERM: graceful shutdown, exit 0.
    let ok = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = drain.join().unwrap().join("\n");
    assert!(log.contains("SIGTERM received"), "{log}");
    // Without --vapid-private-key-file, a key was made beside the database;
    // its public half is served and logged, its private half never logged.
    let pem = std::fs::read_to_string(dir.path().join("vapid-private-key.pem")).unwrap();
    let public = vapid["public_key"].as_str().unwrap();
    assert!(log.contains(public), "{log}");
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "the private key leaked into the log");
    }
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for it in items {
        assert!(it["adcode"].as_str().unwrap().starts_with("3701"), "{it}");
        assert!(it["distance_m"].as_f64().unwrap() < 20_000.0, "{it}");
    }
}

#[test]
fn admin_creates_users_and_prints_just_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let file = dir.path().join("s.geojson");
    std::fs::write(
        &file,
        collection(vec![feature("m-1", "outdoor_station", 117.12, 36.65)]),
    )
    .unwrap();
    let (ok, _, err) =
        run(yizhan().args(["import", file.to_str().unwrap(), "--database-url", &db]));
    assert!(ok, "{err}");
    let (ok, out, err) = run(yizhan().args(["export", "--database-url", &db]));
    assert!(ok, "{err}");
    let fc: Value = serde_json::from_str(&out).unwrap();
    let site = fc["features"][0]["id"].as_str().unwrap().to_owned();

    let (ok, out, err) = run(yizhan().args([
        "admin",
        "user",
        "create",
        "--phone",
        "+86 138 0000 1111",
        "--role",
        "site_manager",
        "--site",
        &site,
        "--database-url",
        &db,
    ]));
    assert!(ok, "{err}");
    assert!(!out.contains("13800001111"), "the phone is masked: {out}");
    let (ok, token, err) = run(yizhan().args([
        "admin",
        "token",
        "--phone",
        "13800001111",
        "--ttl",
        "1h",
        "--database-url",
        &db,
    ]));
    assert!(ok, "{err}");
    let token = token.trim_end().to_owned();
    assert!(
        token.starts_with("yz_") && token.len() == 46 && !token.contains(char::is_whitespace),
        "{token:?}"
    );

    // The token is the manager's, scoped to the site, for an hour.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = yizhan::store::connect(&db).await.unwrap();
        let hash = yizhan::auth::token_hash(&token);
        let now = chrono::Utc::now();
        let user = store
            .token_user(&hash, now)
            .await
            .unwrap()
            .expect("a live token");
        assert_eq!(user.role, yizhan::domain::user::Role::SiteManager);
        assert_eq!(
            user.sites.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            vec![site.clone()]
        );
        assert!(
            store
                .token_user(&hash, now + chrono::Duration::minutes(61))
                .await
                .unwrap()
                .is_none()
        );
    });

    for (args, says) in [
        (
            vec![
                "admin", "user", "create", "--phone", "12345", "--role", "admin",
            ],
            "--phone",
        ),
        (
            vec![
                "admin",
                "user",
                "create",
                "--phone",
                "13800001112",
                "--role",
                "worker",
                "--site",
                &site,
            ],
            "site managers only",
        ),
        (
            vec![
                "admin",
                "user",
                "create",
                "--phone",
                "13800001112",
                "--role",
                "site_manager",
                "--site",
                "s0000000000000",
            ],
            "--site",
        ),
        (
            vec![
                "admin",
                "user",
                "create",
                "--phone",
                "13800001112",
                "--role",
                "boss",
            ],
            "boss",
        ),
        (vec!["admin", "token", "--phone", "13999999999"], "no user"),
        (
            vec!["admin", "token", "--phone", "13800001111", "--ttl", "0h"],
            "0h",
        ),
        (
            vec!["admin", "token", "--phone", "13800001111", "--ttl", "soon"],
            "soon",
        ),
    ] {
        let (ok, out, err) = run(yizhan().args(&args).args(["--database-url", &db]));
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn vapid_generate_writes_a_key_once_and_serve_checks_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vapid.pem");
    let out_s = out.to_str().unwrap();
    let (ok, stdout, stderr) = run(yizhan().args(["vapid", "generate", "--out", out_s]));
    assert!(ok, "{stderr}");
    let public = yizhan::domain::push::from_b64url(stdout.trim()).unwrap();
    assert_eq!((public.len(), public[0]), (65, 4), "{stdout}");
    let pem = std::fs::read_to_string(&out).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = yizhan::push::VapidKey::parse(&pem).unwrap();
    assert_eq!(key.public_key(), stdout.trim());
    // Never overwritten.
    let (ok, _, stderr) = run(yizhan().args(["vapid", "generate", "--out", out_s]));
    assert!(!ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), pem);
    // A subject Apple would reject stops serve before it starts.
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let (ok, _, stderr) = run(yizhan().args([
        "serve",
        "--database-url",
        &db,
        "--vapid-private-key-file",
        out_s,
        "--vapid-subject",
        "https://localhost",
    ]));
    assert!(!ok);
    assert!(stderr.contains("--vapid-subject"), "{stderr}");
}

#[test]
fn union_admins_are_made_with_their_unions_and_sites_name_existing_unions() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let union = rt.block_on(async {
        let store = yizhan::store::connect(&db).await.unwrap();
        store
            .create_union(
                yizhan::domain::union::UnionDraft {
                    name: "历下区总工会".into(),
                    adcode: "370102".parse().unwrap(),
                    parent_id: None,
                    location: None,
                    join_policy: yizhan::domain::union::JoinPolicy::Review,
                },
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .id
            .to_string()
    });
    let (ok, out, err) = run(yizhan().args([
        "admin",
        "user",
        "create",
        "--phone",
        "13800002222",
        "--role",
        "union_admin",
        "--union",
        &union,
        "--database-url",
        &db,
    ]));
    assert!(ok, "{err}");
    assert!(out.contains("union_admin of 1 union"), "{out}");
    rt.block_on(async {
        let store = yizhan::store::connect(&db).await.unwrap();
        let user = store
            .user_by_phone(&"13800002222".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.role, yizhan::domain::user::Role::UnionAdmin);
        assert_eq!(
            user.unions
                .iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>(),
            vec![union.clone()]
        );
    });
    // Made a worker again, the person loses the union scope.
    let (ok, _, err) = run(yizhan().args([
        "admin",
        "user",
        "create",
        "--phone",
        "13800002222",
        "--role",
        "worker",
        "--database-url",
        &db,
    ]));
    assert!(ok, "{err}");
    rt.block_on(async {
        let store = yizhan::store::connect(&db).await.unwrap();
        let user = store
            .user_by_phone(&"13800002222".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(user.unions.is_empty());
    });
    for (args, says) in [
        (
            vec!["--role", "union_admin", "--union", "u000000000001"],
            "no such union",
        ),
        (vec!["--role", "union_admin"], "--union"),
        (
            vec!["--role", "worker", "--union", &union],
            "union admins only",
        ),
        (vec!["--role", "union_admin", "--union", "nope"], "--union"),
    ] {
        let (ok, out, err) = run(yizhan()
            .args(["admin", "user", "create", "--phone", "13800003333"])
            .args(&args)
            .args(["--database-url", &db]));
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // A site imported with its union keeps it through export; an unknown
    // union refuses the whole file.
    let mut f = feature("u-1", "outdoor_station", 117.12, 36.65);
    f["properties"]["union_id"] = json!(union);
    let file = dir.path().join("with-union.geojson");
    std::fs::write(&file, collection(vec![f.clone()])).unwrap();
    let (ok, _, err) =
        run(yizhan().args(["import", file.to_str().unwrap(), "--database-url", &db]));
    assert!(ok, "{err}");
    let (ok, out, err) = run(yizhan().args(["export", "--database-url", &db]));
    assert!(ok, "{err}");
    let fc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fc["features"][0]["properties"]["union_id"], union.as_str());
    let mut g = feature("u-2", "outdoor_station", 117.13, 36.66);
    g["properties"]["union_id"] = json!("u000000000001");
    std::fs::write(&file, collection(vec![g])).unwrap();
    let (ok, _, err) =
        run(yizhan().args(["import", file.to_str().unwrap(), "--database-url", &db]));
    assert!(!ok);
    assert!(
        err.contains("properties.union_id") && err.contains("nothing was imported"),
        "{err}"
    );
}

/// Every boolean variable of `serve` takes 1/0, true/false, yes/no, on/off in
/// any case, as the docs write them; `serve` logs what it understood (the
/// `switches` line, before it opens the database) and is stopped there.
#[test]
fn boolean_variables_take_every_documented_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    // What `serve` understood, from its `switches` log line.
    let switches = |envs: &[(&str, &str)], args: &[&str]| -> Value {
        let mut c = yizhan();
        c.args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .args(args)
            .env("YIZHAN_LOG_FORMAT", "json")
            .env_remove("YIZHAN_LOG")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for v in BOOLEANS {
            c.env_remove(v.0);
        }
        c.envs(envs.iter().copied());
        let mut server = Server(c.spawn().unwrap());
        let stderr = server.0.stderr.take().unwrap();
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["fields"]["message"] == "switches" {
                return v["fields"].clone();
            }
            seen.push(line);
        }
        panic!("no switches line: {}", seen.join("\n"));
    };
    const BOOLEANS: [(&str, &str); 3] = [
        ("YIZHAN_NO_SEED", "no_seed"),
        ("YIZHAN_CONSOLE_SECURE_COOKIE", "console_secure_cookie"),
        (
            "YIZHAN_PUSH_ALLOW_INSECURE_LOOPBACK",
            "push_allow_insecure_loopback",
        ),
    ];
    let spellings = [
        ("1", true),
        ("0", false),
        ("true", true),
        ("FALSE", false),
        ("yes", true),
        ("No", false),
        ("ON", true),
        ("off", false),
    ];
    for (var, field) in BOOLEANS {
        for (value, meant) in spellings {
            let got = switches(&[(var, value)], &[]);
            assert_eq!(got[field], meant, "{var}={value}: {got}");
            for (other, other_field) in BOOLEANS.iter().filter(|b| b.0 != var) {
                assert_eq!(
                    got[other_field], false,
                    "{var}={value} moved {other}: {got}"
                );
            }
        }
    }
    // Unset: false; the flag alone: true, and it wins over its variable.
    assert_eq!(switches(&[], &[])["no_seed"], false);
    assert_eq!(switches(&[], &["--no-seed"])["no_seed"], true);
    assert_eq!(
        switches(&[("YIZHAN_NO_SEED", "0")], &["--no-seed"])["no_seed"],
        true
    );
    // Anything else is refused, naming the flag.
    let (ok, _, err) = run(yizhan()
        .args(["serve", "--database-url", &db])
        .env("YIZHAN_NO_SEED", "maybe"));
    assert!(!ok);
    assert!(err.contains("--no-seed") && err.contains("maybe"), "{err}");
}

/// `RUST_LOG` sets the filter when `YIZHAN_LOG` is unset; `YIZHAN_LOG` wins.
#[test]
fn rust_log_works_and_yizhan_log_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    // `admin holidays list` opens the database: sqlx logs its statements at DEBUG.
    let stderr = |envs: &[(&str, &str)]| {
        let mut c = yizhan();
        c.args(["admin", "holidays", "list", "--database-url", &db])
            .env_remove("YIZHAN_LOG")
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied());
        let (ok, _, err) = run(&mut c);
        assert!(ok, "{err}");
        err
    };
    let quiet = stderr(&[]);
    let rust_log = stderr(&[("RUST_LOG", "debug")]);
    let yizhan_wins = stderr(&[("RUST_LOG", "debug"), ("YIZHAN_LOG", "warn")]);
    let yizhan_log = stderr(&[("YIZHAN_LOG", "debug")]);
    assert!(!quiet.contains("DEBUG"), "{quiet}");
    assert!(rust_log.contains("DEBUG"), "{rust_log}");
    assert!(yizhan_log.contains("DEBUG"), "{yizhan_log}");
    assert!(!yizhan_wins.contains("DEBUG"), "{yizhan_wins}");
    // Both are said in --help.
    let (ok, help, _) = run(yizhan().args(["serve", "--help"]));
    assert!(
        ok && help.contains("YIZHAN_LOG") && help.contains("RUST_LOG"),
        "{help}"
    );
}

/// `admin code` prints only a pending development code: with none it fails,
/// saying why (the tour in README.md runs the case where one is pending).
#[test]
fn admin_code_without_a_pending_code_fails_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("y.db").display());
    let (ok, out, err) = run(yizhan().args([
        "admin",
        "code",
        "--phone",
        "13812345678",
        "--database-url",
        &db,
    ]));
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no development sign-in code is pending for 138****5678"),
        "{err}"
    );
    let (ok, _, err) =
        run(yizhan().args(["admin", "code", "--phone", "12", "--database-url", &db]));
    assert!(!ok && err.contains("--phone"), "{err}");
}
