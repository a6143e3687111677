//! The managers' console without a browser: its session cookie, CSRF
//! refusals, the scope of a manager, conflicts, bad input and its assets.
//! (The browser test is `tests/console_browser.rs`.)

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use yizhan::domain::site::{Kind, SiteId};
use yizhan::domain::user::{Phone, Role};

use crate::helpers::{TestApp, draft, spawn_app};

const MANAGER: &str = "13900000002";

/// Form fields or headers.
type Pairs<'a> = Vec<(&'a str, &'a str)>;

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn form_body(form: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

trait Form {
    fn form_fields(self, form: &[(&str, &str)]) -> Self;
}

impl Form for reqwest::RequestBuilder {
    fn form_fields(self, form: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(form))
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn site_ids(app: &TestApp) -> Vec<SiteId> {
    let mut sites = app.service.state.store.all_sites().await.unwrap();
    sites.sort_by_key(|s| s.draft.ext_ref.clone());
    sites.into_iter().map(|s| s.id).collect()
}

/// Sign in through the console's forms; the session cookie (`name=value`).
async fn sign_in(app: &TestApp, phone: &str, headers: &[(&str, &str)]) -> (String, String) {
    let c = no_redirects();
    let r = c
        .post(app.url("/console/login/code"))
        .form_fields(&[("phone", phone)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let code = app
        .sms
        .last_code(&phone.parse::<Phone>().unwrap())
        .expect("a code was sent");
    let mut req = c
        .post(app.url("/console/login"))
        .form_fields(&[("phone", phone), ("code", code.as_str())]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/console/sites");
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    (cookie, set)
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = no_redirects()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// A GET of `path` (with `cookie`, if any) is sent to the sign-in page.
async fn asks_to_sign_in(app: &TestApp, cookie: Option<&str>, path: &str) {
    let mut req = no_redirects().get(app.url(path));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/console/login");
}

/// One site, its manager signed in to the console: the site, the session's
/// cookie and its csrf.
async fn manager_signed_in(app: &TestApp) -> (SiteId, String, String) {
    let id = site_ids(app).await[0];
    app.token_for(MANAGER, Role::SiteManager, &[id]).await;
    let (cookie, _) = sign_in(app, MANAGER, &[]).await;
    let (_, html) = page(app, &cookie, &format!("/console/sites/{id}")).await;
    let csrf = csrf_of(&html);
    (id, cookie, csrf)
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 32].to_owned()
}

async fn post(
    app: &TestApp,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = no_redirects()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form_fields(form);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// A form of one field besides the session's `csrf`, posted to `path`.
async fn post_one(
    app: &TestApp,
    cookie: &str,
    csrf: &str,
    path: &str,
    field: (&str, &str),
) -> (StatusCode, String) {
    post(app, cookie, path, &[("csrf", csrf), field], &[]).await
}

/// `form` posted to `path` and accepted: where it sends the browser.
async fn see_other(app: &TestApp, cookie: &str, path: &str, form: &[(&str, &str)]) -> String {
    let r = no_redirects()
        .post(app.url(path))
        .header(COOKIE, cookie)
        .form_fields(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    r.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A file the console offers for download, fetched.
async fn download(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    let r = no_redirects()
        .get(app.url(path))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// `app`'s clock moved by `d`, in China time as a form's `datetime-local`.
fn local_input(app: &TestApp, d: chrono::Duration) -> String {
    (app.clock_now() + d)
        .with_timezone(&yizhan::domain::hours::SHANGHAI)
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

async fn hours_of(app: &TestApp, id: SiteId) -> (String, i64) {
    let s = app.get_json(&format!("/v1/sites/{id}")).await;
    (
        s["opening_hours"].as_str().unwrap().to_owned(),
        s["version"].as_i64().unwrap(),
    )
}

fn hours_form<'a>(csrf: &'a str, version: &'a str, raw: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("version", version),
        ("rows", "3"),
        ("rows_initial", "off"),
        ("raw_initial", "24/7"),
        ("opening_hours", raw),
    ]
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_secure_behind_tls() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let ids = site_ids(&app).await;
    app.token_for(MANAGER, Role::SiteManager, &ids).await;
    let (cookie, set) = sign_in(&app, MANAGER, &[]).await;
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/console"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    assert!(cookie.starts_with("yizhan_console=yz_"), "{cookie}");
    let (_, behind_tls) = sign_in(&app, "13900000003", &[("x-forwarded-proto", "https")]).await;
    assert!(behind_tls.contains("; Secure"), "{behind_tls}");

    let r = no_redirects()
        .get(app.url("/console/sites"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let (status, html) = page(&app, &cookie, "/console/sites").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("lang=\"zh-CN\"") && html.contains("测试站点1"),
        "{html}"
    );

    // Signing out revokes the token: the cookie no longer opens a page.
    let csrf = csrf_of(&html);
    let (status, _) = post(&app, &cookie, "/console/logout", &[("csrf", &csrf)], &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    asks_to_sign_in(&app, Some(&cookie), "/console/sites").await;
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_or_from_another_site_changes_nothing() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let (id, cookie, csrf) = manager_signed_in(&app).await;
    let path = format!("/console/sites/{id}/hours");
    let wrong = "0".repeat(32);
    let refused: [(Pairs, Pairs); 4] = [
        (
            hours_form("", "1", "Mo-Fr 08:00-12:00")[1..].to_vec(),
            vec![],
        ),
        (hours_form(&wrong, "1", "Mo-Fr 08:00-12:00"), vec![]),
        (
            hours_form(&csrf, "1", "Mo-Fr 08:00-12:00"),
            vec![("origin", "http://evil.example")],
        ),
        (
            hours_form(&csrf, "1", "Mo-Fr 08:00-12:00"),
            vec![("sec-fetch-site", "cross-site")],
        ),
    ];
    for (form, headers) in &refused {
        let (status, body) = post(&app, &cookie, &path, form, headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(body.contains("请求无效"), "{body}");
        assert_eq!(hours_of(&app, id).await, ("24/7".to_owned(), 1));
    }
    // The same form from the console itself saves, as the API would.
    let origin = format!("http://{}", app.addr);
    let (status, _) = post(
        &app,
        &cookie,
        &path,
        &hours_form(&csrf, "1", "Mo-Fr 08:00-12:00"),
        &[("origin", &origin), ("sec-fetch-site", "same-origin")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        hours_of(&app, id).await,
        ("Mo-Fr 08:00-12:00".to_owned(), 2)
    );
    // A session's csrf is its own: another session's is refused.
    app.token_for("13900000003", Role::SiteManager, &[id]).await;
    let (other, _) = sign_in(&app, "13900000003", &[]).await;
    let (status, _) = post(
        &app,
        &other,
        &path,
        &hours_form(&csrf, "2", "Mo-Fr 09:00-12:00"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_manager_cannot_open_or_change_another_managers_site() {
    let app = spawn_app(vec![
        draft(1, Kind::OutdoorStation, 36.65, 117.12),
        draft(2, Kind::MotherRoom, 36.66, 117.13),
    ])
    .await;
    let ids = site_ids(&app).await;
    app.token_for(MANAGER, Role::SiteManager, &ids[..1]).await;
    let (cookie, _) = sign_in(&app, MANAGER, &[]).await;
    let (_, list) = page(&app, &cookie, "/console/sites").await;
    assert!(
        list.contains("测试站点1") && !list.contains("测试站点2"),
        "{list}"
    );
    let csrf = csrf_of(&list);
    let theirs = ids[1];
    for path in ["", "/history", "/events", "/preview?opening_hours=24%2F7"] {
        let (status, _) = page(&app, &cookie, &format!("/console/sites/{theirs}{path}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = post(
        &app,
        &cookie,
        &format!("/console/sites/{theirs}/hours"),
        &hours_form(&csrf, "1", "off"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(hours_of(&app, theirs).await, ("24/7".to_owned(), 1));
    // Admin pages are for admins.
    let (status, _) = page(&app, &cookie, "/console/admin/managers").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Without a session: to the sign-in page.
    asks_to_sign_in(&app, None, &format!("/console/sites/{}", ids[0])).await;
}

#[tokio::test]
async fn a_stale_form_is_a_conflict_showing_the_other_change_and_nothing_is_lost() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let (id, cookie, csrf) = manager_signed_in(&app).await;
    let other = app.token_for("13900000003", Role::SiteManager, &[id]).await;
    // Someone else saves first, through the API.
    let tag = app.etag(&id.to_string()).await;
    let r = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/sites/{id}"),
            Some(&other),
            Some(serde_json::json!({"opening_hours": "Mo-Sa 07:00-19:00"})),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, body) = post(
        &app,
        &cookie,
        &format!("/console/sites/{id}/hours"),
        &hours_form(&csrf, "1", "Mo-Fr 08:00-12:00"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("其他人已先保存"), "{body}");
    assert!(
        body.contains("139****0003") && body.contains("Mo-Sa 07:00-19:00"),
        "{body}"
    );
    // The manager's input is kept to reapply, against the new version.
    assert!(body.contains("value=\"Mo-Fr 08:00-12:00\""), "{body}");
    assert!(body.contains("name=\"version\" value=\"2\""), "{body}");
    assert_eq!(
        hours_of(&app, id).await,
        ("Mo-Sa 07:00-19:00".to_owned(), 2)
    );
}

#[tokio::test]
async fn bad_input_is_explained_on_the_page_never_a_server_error() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let (id, cookie, csrf) = manager_signed_in(&app).await;
    let hours = format!("/console/sites/{id}/hours");
    let (status, body) = post(
        &app,
        &cookie,
        &hours,
        &hours_form(&csrf, "1", "Mo-Fr 25:00"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("营业时间") && body.contains("aria-invalid"),
        "{body}"
    );
    let (status, _) = post(&app, &cookie, &hours, &hours_form(&csrf, "x", "off"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A weekday in two rows of the editor.
    let mut form = hours_form(&csrf, "1", "24/7");
    form.extend([
        ("row0_day", "Mo"),
        ("row1_day", "Mo"),
        ("row1_open1", "09:00"),
        ("row1_close1", "10:00"),
    ]);
    let (status, body) = post(&app, &cookie, &hours, &form, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("周一已在另一行中"), "{body}");
    let status_path = format!("/console/sites/{id}/status");
    let (status, body) = post(
        &app,
        &cookie,
        &status_path,
        &[("csrf", &csrf), ("version", "1"), ("status", "retired")],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = post(
        &app,
        &cookie,
        &status_path,
        &[
            ("csrf", &csrf),
            ("version", "1"),
            ("status", "temporarily_closed"),
            ("reopens_at", "soon"),
        ],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(hours_of(&app, id).await, ("24/7".to_owned(), 1));
    for path in [
        "/console/sites/not-an-id",
        "/console/events/nope",
        "/console/nothing-here",
    ] {
        let (status, body) = page(&app, &cookie, path).await;
        assert!(status.is_client_error(), "{path}: {status}");
        assert_no_english(&body);
    }
    let (_, body) = page(&app, &cookie, "/console/nothing-here").await;
    assert!(body.contains("没有这个页面"), "{body}");
    // A bad phone, then a bad code: each told in Chinese only.
    for (phone, code, told) in [
        ("12345", "x", "手机号"),
        ("13800000009", "12", "请输入短信中的6位验证码"),
    ] {
        let form = [("phone", phone), ("code", code)];
        let (status, body) = post(&app, &cookie, "/console/login", &form, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body.contains(told), "{body}");
        assert_no_english(&body);
    }
}

/// The words a person reads on a console page (its text outside tags and
/// attributes) hold no English sentence: the API's details stay out.
fn assert_no_english(html: &str) {
    let mut text = String::new();
    let mut in_tag = false;
    let body = html.split("<main").nth(1).unwrap_or(html);
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    for word in [
        "expected",
        "no such",
        "not found",
        "must",
        "invalid",
        "digits",
    ] {
        assert!(
            !text.to_lowercase().contains(word),
            "English on the page ({word}): {text}"
        );
    }
}

#[tokio::test]
async fn assets_are_built_in_and_revalidated_by_etag() {
    let app = spawn_app(vec![]).await;
    for (name, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
    ] {
        let r = app.get(&format!("/console/assets/{name}")).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let again = app
            .client
            .get(app.url(&format!("/console/assets/{name}")))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }
    assert_eq!(app.get("/console/assets/nope.js").await.status(), 404);
}

#[tokio::test]
async fn the_preview_follows_the_editor_without_saving() {
    let app = spawn_app(vec![draft(1, Kind::OutdoorStation, 36.65, 117.12)]).await;
    let (id, cookie, _) = manager_signed_in(&app).await;
    let q = "rows=3&rows_initial=off&raw_initial=24%2F7&opening_hours=24%2F7\
             &row0_day=Sa&row0_day=Su&row0_open1=10:00&row0_close1=00:00";
    let (status, body) = page(&app, &cookie, &format!("/console/sites/{id}/preview?{q}")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("data-opening-hours=\"Sa,Su 10:00-24:00\""),
        "{body}"
    );
    assert!(
        body.contains("10:00–24:00") && body.contains("休息"),
        "{body}"
    );
    // Without JavaScript: the page itself, with the preview of the rows.
    let (status, body) = page(&app, &cookie, &format!("/console/sites/{id}?preview=1&{q}")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("预览，尚未保存") && body.contains("10:00–24:00"),
        "{body}"
    );
    assert_eq!(hours_of(&app, id).await, ("24/7".to_owned(), 1));
}

#[tokio::test]
async fn an_event_is_made_booked_checked_in_exported_and_cancelled_from_the_console() {
    let app = spawn_app(vec![draft(1, Kind::UnionStation, 36.65, 117.12)]).await;
    let (id, cookie, csrf) = manager_signed_in(&app).await;
    let worker = app.token_for("13900000009", Role::Worker, &[]).await;
    let local = |days: i64, hours: i64| {
        local_input(
            &app,
            chrono::Duration::days(days) + chrono::Duration::hours(hours),
        )
    };
    let (starts, ends, opens) = (local(2, 0), local(2, 2), local(0, -1));
    let events = format!("/console/sites/{id}/events");
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("kind", "training"),
        ("title", "安全驾驶培训"),
        ("starts_at", starts.as_str()),
        ("ends_at", ends.as_str()),
        ("booking_opens_at", opens.as_str()),
        ("capacity", "0"),
        ("waitlist", "1"),
    ];
    // The API's refusal, in the page: nothing is made.
    let (status, body) = post(&app, &cookie, &events, &form, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("名额"), "{body}");
    form[6] = ("capacity", "5");
    let eid = event_of(&see_other(&app, &cookie, &events, &form).await);
    // Published (the form's default is a draft without `publish`): publish it.
    let (_, list) = page(&app, &cookie, &events).await;
    assert!(
        list.contains("安全驾驶培训") && list.contains("草稿"),
        "{list}"
    );
    let event = format!("/console/events/{eid}");
    let status_path = format!("{event}/status");
    let (status, _) = post(
        &app,
        &cookie,
        &status_path,
        &[("csrf", &csrf), ("status", "published")],
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let r = app
        .client
        .post(app.url(&format!("/v1/events/{eid}/bookings")))
        .bearer_auth(&worker)
        .header("idempotency-key", "console-1")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let booking: serde_json::Value = r.json().await.unwrap();
    let code = booking["checkin_code"].as_str().unwrap();
    let checkin = format!("{event}/checkin");
    let (status, body) = post_one(&app, &cookie, &csrf, &checkin, ("code", code)).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("签到成功") && body.contains("已签到"),
        "{body}"
    );
    let (_, body) = post_one(&app, &cookie, &csrf, &checkin, ("code", code)).await;
    assert!(body.contains("无需重复签到"), "{body}");
    let (status, body) = post_one(&app, &cookie, &csrf, &checkin, ("code", "forged")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("签到码无效"), "{body}");
    let r = download(&app, &cookie, &format!("{event}/attendees.csv")).await;
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("booking_id,") && csv.contains("checked_in"),
        "{csv}"
    );
    // Cancelling asks for a confirmation first.
    let cancel = [("csrf", csrf.as_str()), ("status", "cancelled")];
    let (status, _) = post(&app, &cookie, &status_path, &cancel, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get_json(&format!("/v1/events/{eid}")).await["status"],
        "published"
    );
    let confirmed = [cancel[0], cancel[1], ("confirm", "1")];
    let (status, _) = post(&app, &cookie, &status_path, &confirmed, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_json(&format!("/v1/events/{eid}")).await["status"],
        "cancelled"
    );
    // Who may book, as the API's eligibility.
    form.extend([
        ("publish", "1"),
        ("union_members_only", "1"),
        ("min_age", "18"),
        ("max_age", ""),
    ]);
    let second = event_of(&see_other(&app, &cookie, &events, &form).await);
    let doc = app.get_json(&format!("/v1/events/{second}")).await;
    assert_eq!(doc["eligibility"]["union_members_only"], true, "{doc}");
    assert_eq!(doc["eligibility"]["min_age"], 18, "{doc}");
    assert!(doc["eligibility"]["max_age"].is_null(), "{doc}");
}

#[tokio::test]
async fn an_admin_previews_an_import_and_applies_it_only_as_previewed() {
    let app = spawn_app(vec![draft(1, Kind::UnionStation, 36.65, 117.12)]).await;
    app.token_for("13900000001", Role::Admin, &[]).await;
    let (cookie, _) = sign_in(&app, "13900000001", &[]).await;
    let (_, html) = page(&app, &cookie, "/console/admin/import").await;
    let csrf = csrf_of(&html);
    let feature = |r: &str, name: &str| {
        serde_json::json!({"type": "Feature",
            "geometry": {"type": "Point", "coordinates": [117.12, 36.65]},
            "properties": {"ref": r, "kind": "union_station", "name": name,
                "adcode": "370102", "opening_hours": "24/7",
                "address": "山东省济南市历下区测试路1号"}})
    };
    let geo = serde_json::json!({"type": "FeatureCollection",
        "features": [feature("test-1", "新名字"), feature("test-9", "新站点")]})
    .to_string();
    // multipart/form-data, as a browser sends a file.
    let boundary = "----yizhan-test-boundary";
    let part = |name: &str, file: Option<&str>, value: &str| {
        let file = file.map_or(String::new(), |f| format!("; filename=\"{f}\""));
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n{value}\r\n"
        )
    };
    let body = format!(
        "{}{}{}--{boundary}--\r\n",
        part("csrf", None, &csrf),
        part("crs", None, "wgs84"),
        part("file", Some("a.geojson"), &geo)
    );
    let upload = |origin: Option<&str>| {
        let mut r = no_redirects()
            .post(app.url("/console/admin/import"))
            .header(COOKIE, &cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body.clone());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    assert_eq!(
        upload(Some("http://evil.example")).await.unwrap().status(),
        403
    );
    let r = upload(None).await.unwrap();
    assert_eq!(r.status(), 200);
    let preview = r.text().await.unwrap();
    assert!(
        preview.contains("新建 1 个，修改 1 个，不变 0 个"),
        "{preview}"
    );
    assert!(
        preview.contains("测试站点1") && preview.contains("新名字"),
        "{preview}"
    );
    assert_eq!(
        app.service.state.store.count_sites().await.unwrap(),
        1,
        "a preview writes nothing"
    );
    let at = preview.find("name=\"fingerprint\" value=\"").unwrap() + 26;
    let fingerprint = preview[at..at + 32].to_owned();
    let apply = |fp: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("crs", "wgs84".to_owned()),
            ("fingerprint", fp.to_owned()),
            ("geojson", geo.clone()),
        ]
    };
    // Previewed against another state of the registry: asked to preview again.
    let stale = apply(&"0".repeat(32));
    let stale: Vec<(&str, &str)> = stale.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(&app, &cookie, "/console/admin/import/apply", &stale, &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("请重新预览"), "{body}");
    assert_eq!(app.service.state.store.count_sites().await.unwrap(), 1);
    let fresh = apply(&fingerprint);
    let fresh: Vec<(&str, &str)> = fresh.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(&app, &cookie, "/console/admin/import/apply", &fresh, &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("导入完成：新建 1 个，修改 1 个"), "{body}");
    // In the index at once: search finds the new site and the new name.
    for (q, r) in [("新站点", "test-9"), ("新名字", "test-1")] {
        let q: String = form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let found = app.get_json(&format!("/v1/sites/search?q={q}")).await;
        assert_eq!(crate::helpers::refs(&found), [r]);
    }
}

/// A worker with `profile`, signed in: their token.
async fn worker_with(app: &TestApp, phone: &str, profile: serde_json::Value) -> String {
    let token = app.token_for(phone, Role::Worker, &[]).await;
    let r = app
        .call(
            reqwest::Method::PUT,
            "/v1/me/profile",
            Some(&token),
            Some(profile),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    token
}

/// The event id a console redirect (`/console/events/{id}?…`) names.
fn event_of(location: &str) -> String {
    location
        .trim_start_matches("/console/events/")
        .split(['?', '#'])
        .next()
        .unwrap()
        .to_owned()
}

/// A hex string as the console writes it, in groups with `<wbr>`.
fn wrapped(hex: &str) -> String {
    hex.as_bytes()
        .chunks(8)
        .map(|c| format!("{}<wbr>", std::str::from_utf8(c).unwrap()))
        .collect()
}

/// A row of a table the console writes: `<th scope="row">name</th><td>…`.
fn group_row(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("<th scope=\"row\">{name}</th>"))
        .unwrap_or_else(|| panic!("no row {name}: {html}"));
    html[at..at + html[at..].find("</tr>").unwrap()].to_owned()
}

#[tokio::test]
async fn a_draw_is_made_watched_and_its_record_downloaded_from_the_console() {
    let app = spawn_app(vec![
        draft(1, Kind::UnionStation, 36.65, 117.12),
        draft(2, Kind::UnionStation, 36.66, 117.13),
    ])
    .await;
    let (id, cookie, csrf) = manager_signed_in(&app).await;
    let local = |d| local_input(&app, d);
    let (hours, days) = (chrono::Duration::hours, chrono::Duration::days);
    let (opens, closes) = (local(hours(-1)), local(days(1)));
    let (draw_at, starts, ends) = (local(days(1) + hours(1)), local(days(10)), local(days(12)));
    // The events page offers the draw's form beside the first-come one.
    let (_, list) = page(&app, &cookie, &format!("/console/sites/{id}/events")).await;
    let new = format!("/console/sites/{id}/events/draw");
    assert!(list.contains(&format!("href=\"{new}\"")), "{list}");
    let (status, form_page) = page(&app, &cookie, &new).await;
    assert_eq!(status, 200);
    assert!(
        form_page.contains("抽签时间") && form_page.contains("group2_union_member"),
        "{form_page}"
    );
    let mut form: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("kind", "recuperation"),
        ("title", "一线职工疗休养"),
        ("starts_at", &starts),
        ("ends_at", &ends),
        ("booking_opens_at", &opens),
        ("booking_closes_at", &closes),
        ("draw_at", &draw_at),
        ("capacity", "2"),
        ("waitlist", "1"),
        ("publish", "1"),
        ("group0_name", "一线职工"),
        ("group0_frontline", "true"),
        ("group1_name", "工会会员"),
        ("group1_union_member", "true"),
        ("group2_name", "青年女职工"),
        ("group2_gender", "female"),
        ("group2_min_age", "40"),
        ("group2_max_age", "35"),
    ];
    let events_now = || async { app.service.state.store.site_events(id).await.unwrap().len() };
    // Bad input: told on the form, naming the field, the field marked; nothing made.
    let (status, body) = post(&app, &cookie, &new, &form, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("“第3个优先组的最大年龄”填写有误"), "{body}");
    assert!(
        body.contains("name=\"group2_max_age\" type=\"number\" min=\"0\" max=\"120\" inputmode=\"numeric\" value=\"35\" aria-invalid=\"true\""),
        "{body}"
    );
    assert_no_english(&body);
    // A blank row in the middle: the API's second group is still row 3 here.
    let mut gap = form.clone();
    gap.retain(|(k, _)| !k.starts_with("group1_") && !k.starts_with("group2_"));
    gap.extend([("group2_name", ""), ("group2_gender", "female")]);
    let (status, body) = post(&app, &cookie, &new, &gap, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("“第3个优先组的名称”填写有误"), "{body}");
    form.retain(|(k, _)| *k != "group2_min_age");
    let mut early = form.clone();
    early[7] = ("draw_at", &opens);
    let (status, body) = post(&app, &cookie, &new, &early, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("“抽签时间”填写有误") && body.contains("id=\"draw_at\""),
        "{body}"
    );
    let mut not_a_time = form.clone();
    not_a_time[7] = ("draw_at", "tomorrow");
    let (status, body) = post(&app, &cookie, &new, &not_a_time, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("抽签时间："), "{body}");
    assert_eq!(events_now().await, 0, "a refused form makes nothing");

    let eid = event_of(&see_other(&app, &cookie, &new, &form).await);
    let doc = app.get_json(&format!("/v1/events/{eid}")).await;
    assert_eq!(doc["allocation"], "draw", "{doc}");
    assert_eq!(doc["offer_hours"], 48, "{doc}");
    assert_eq!(
        doc["priority_groups"],
        serde_json::json!([{"name": "一线职工", "frontline": true},
                           {"name": "工会会员", "union_member": true},
                           {"name": "青年女职工", "gender": "female", "max_age": 35}])
    );
    let commitment = doc["seed_commitment"].as_str().unwrap().to_owned();

    // Five apply: front-line; a member of a union (joined by its code);
    // two young women; one in no group.
    let (_, admin) = crate::helpers::site_and_admin(&app).await;
    let r = app
        .call(
            reqwest::Method::POST,
            "/v1/unions",
            Some(&admin),
            Some(serde_json::json!({"name": "历下区总工会", "adcode": "370102", "join_policy": "auto"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 201);
    let union = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/unions/{union}/join-code"),
            Some(&admin),
            None,
            None,
        )
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["code"]
        .clone();
    let young_woman =
        serde_json::json!({"gender": "female", "birth_year": 2000, "frontline": false});
    let people = [
        (
            "13700000001",
            serde_json::json!({"display_name": "张师傅", "frontline": true}),
        ),
        (
            "13700000002",
            serde_json::json!({"display_name": "李会员", "frontline": false, "birth_year": 1975}),
        ),
        ("13700000003", young_woman.clone()),
        ("13700000004", young_woman),
        (
            "13700000005",
            serde_json::json!({"gender": "male", "birth_year": 1970}),
        ),
    ];
    for (i, (phone, profile)) in people.iter().enumerate() {
        let token = worker_with(&app, phone, profile.clone()).await;
        if i == 1 {
            let r = app
                .call(
                    reqwest::Method::POST,
                    "/v1/memberships",
                    Some(&token),
                    Some(serde_json::json!({ "code": code })),
                    None,
                )
                .await;
            assert_eq!(r.status(), 201);
        }
        let r = app
            .client
            .post(app.url(&format!("/v1/events/{eid}/applications")))
            .bearer_auth(&token)
            .header("idempotency-key", format!("console-draw-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    // Before the draw: the commitment, the time, and how many in each group.
    let event = format!("/console/events/{eid}");
    let (status, body) = page(&app, &cookie, &event).await;
    assert_eq!(status, 200);
    assert!(body.contains(&wrapped(&commitment)), "{body}");
    assert!(body.contains("id=\"applied-total\">5<"), "{body}");
    for (group, n) in [
        ("一线职工", 1),
        ("工会会员", 1),
        ("青年女职工", 2),
        ("未进入优先组", 1),
    ] {
        let row = group_row(&body, group);
        assert!(row.ends_with(&format!("<td>{n}</td>")), "{group}: {row}");
    }
    assert!(
        !body.contains("还没有人报名"),
        "applications are not bookings"
    );
    // The public value: refused when it is not one line of at most 200
    // characters (the field named and marked, the typing kept), then saved.
    let pv = format!("{event}/public_value");
    let long = "号".repeat(201);
    let (status, body) = post_one(&app, &cookie, &csrf, &pv, ("public_value", &long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("“公开随机值”填写有误"), "{body}");
    assert!(
        body.contains("aria-invalid=\"true\"") && body.contains(&long),
        "{body}"
    );
    assert_no_english(&body);
    let value = "双色球 2026141 期 03 07 12 19 25 31 + 09";
    let to = see_other(
        &app,
        &cookie,
        &pv,
        &[("csrf", &csrf), ("public_value", value)],
    )
    .await;
    assert_eq!(to, format!("{event}?saved=public_value#draw"));
    assert_eq!(
        app.get_json(&format!("/v1/events/{eid}")).await["public_value"],
        value
    );
    let (_, body) = page(&app, &cookie, &format!("{event}?saved=public_value")).await;
    assert!(
        body.contains("公开随机值已保存") && body.contains(value),
        "{body}"
    );
    // The window, the draw's time and the groups are fixed once anyone applied.
    let edit: Vec<(&str, &str)> = vec![
        ("csrf", &csrf),
        ("title", "一线职工疗休养（第一期）"),
        ("starts_at", &starts),
        ("ends_at", &ends),
        ("booking_opens_at", &opens),
        ("booking_closes_at", &closes),
        ("capacity", "2"),
        ("waitlist", "1"),
        ("draw_at", &starts),
    ];
    let (status, body) = post(&app, &cookie, &event, &edit, &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("“抽签时间”填写有误"), "{body}");
    let mut same = edit.clone();
    same[8] = ("draw_at", &draw_at);
    let (status, _) = post(&app, &cookie, &event, &same, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the rest may change");

    // The draw at draw_at, by the worker.
    app.clock
        .advance(std::time::Duration::from_secs(25 * 3600 + 60));
    assert_eq!(app.service.run_jobs().await.unwrap().draws, 1);
    let record = app.get_json(&format!("/v1/events/{eid}/draw")).await;
    let (status, body) = page(&app, &cookie, &event).await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"entrants-total\">5<"), "{body}");
    for key in ["seed", "secret", "entrants_hash"] {
        let hex = record[key].as_str().unwrap();
        assert!(body.contains(&wrapped(hex)), "{key}: {body}");
    }
    assert!(body.contains(value), "{body}");
    assert!(
        !body.contains("public-value-form"),
        "nothing of the draw changes now"
    );
    // The first ranks with where each stands: two places, offered in order.
    let ranks = &body[body.find("id=\"draw-ranks\"").expect("the ranks")..];
    assert!(
        ranks.contains(
            "<td>1</td><td>一线职工</td><td>张师傅</td><td>137****0001</td><td>中签，待确认</td>"
        ),
        "{ranks}"
    );
    assert!(ranks.contains("<td>2</td><td>工会会员</td>"), "{ranks}");
    assert_eq!(ranks.matches("中签，待确认").count(), 2, "{ranks}");
    assert!(
        ranks.contains("<td>5</td><td>（无）</td>") && ranks.contains("候补第3位"),
        "{ranks}"
    );
    // The public value can no longer change.
    let (status, _) = post_one(&app, &cookie, &csrf, &pv, ("public_value", "另一个")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get_json(&format!("/v1/events/{eid}")).await["public_value"],
        value
    );

    // The record, downloaded: the API's own, and scripts/verify-draw accepts it.
    let r = download(&app, &cookie, &format!("{event}/draw.json")).await;
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"draw-{eid}.json\"")
    );
    let bytes = r.bytes().await.unwrap();
    let downloaded: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(downloaded, record);
    assert_eq!(downloaded["entrants"].as_array().unwrap().len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let verify = |json: &[u8]| {
        let path = dir.path().join("draw.json");
        std::fs::write(&path, json).unwrap();
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/verify-draw"))
            .arg(&path)
            .output()
            .expect("python3 runs")
    };
    let out = verify(&bytes);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut swapped = downloaded.clone();
    // Ranks 3 and 4 are both in the third group: swapped, their keys disagree.
    let third = swapped["entrants"][2]["id"].clone();
    swapped["entrants"][2]["id"] = swapped["entrants"][3]["id"].clone();
    swapped["entrants"][3]["id"] = third;
    let out = verify(&serde_json::to_vec(&swapped).unwrap());
    assert_eq!(out.status.code(), Some(1), "two swapped ranks are refused");

    // Another site's manager neither sees the page nor downloads the record.
    let ids = site_ids(&app).await;
    app.token_for("13900000003", Role::SiteManager, &ids[1..])
        .await;
    let (other, _) = sign_in(&app, "13900000003", &[]).await;
    for path in [event.clone(), format!("{event}/draw.json")] {
        let (status, _) = page(&app, &other, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    asks_to_sign_in(&app, None, &format!("{event}/draw.json")).await;
}
