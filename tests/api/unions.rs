//! Unions and membership (issue 14): a rider joins the nearest union by its
//! code and may then book a members-only event; review, rejection, transfer,
//! rotated and forged codes; the QR code read back by an independent
//! decoder; a federation's numbers adding up over three levels; who may do
//! what.

use reqwest::Method;
use serde_json::{Value, json};
use yizhan::domain::union::{UnionId, join_code};
use yizhan::domain::user::{Phone, Role};

use crate::events::{book, make_event, setup};
use crate::helpers::TestApp;

async fn problem(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "{body}");
    body
}

async fn ok_json(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    app.call(Method::POST, path, token, Some(body), None).await
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    app.call(Method::GET, path, token, None, None).await
}

/// A union made by an admin through the API; its id.
async fn make_union(app: &TestApp, admin: &str, body: Value) -> String {
    ok_json(post(app, "/v1/unions", Some(admin), body).await, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A union admin of `unions`, as `yizhan admin user create --role union_admin` makes one.
async fn union_admin(app: &TestApp, phone: &str, unions: &[&str]) -> String {
    let store = &app.service.state.store;
    let unions: Vec<UnionId> = unions.iter().map(|u| u.parse().unwrap()).collect();
    let user = store
        .put_union_admin(&phone.parse::<Phone>().unwrap(), &unions, app.clock_now())
        .await
        .unwrap();
    assert_eq!(user.role, Role::UnionAdmin);
    let token = yizhan::auth::new_token();
    store
        .create_token(
            user.id,
            &yizhan::auth::token_hash(&token),
            app.clock_now() + chrono::Duration::days(30),
        )
        .await
        .unwrap();
    token
}

/// A worker with a name on their profile.
async fn worker(app: &TestApp, phone: &str, name: &str) -> String {
    let token = app.token_for(phone, Role::Worker, &[]).await;
    let r = app
        .call(
            Method::PUT,
            "/v1/me/profile",
            Some(&token),
            Some(json!({"display_name": name})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    token
}

async fn code_of(app: &TestApp, union: &str, admin: &str) -> Value {
    ok_json(
        get(app, &format!("/v1/unions/{union}/join-code"), Some(admin)).await,
        200,
    )
    .await
}

async fn mine(app: &TestApp, token: &str) -> Value {
    ok_json(get(app, "/v1/me/memberships", Some(token)).await, 200).await
}

#[tokio::test]
async fn a_rider_signs_in_finds_the_nearest_union_joins_by_its_code_and_books() {
    let (app, site, admin) = setup().await;
    // Two unions: the rider stands 1 km from the first, 30 km from the second.
    let near = make_union(
        &app,
        &admin,
        json!({"name": "历下区快递行业联合工会", "adcode": "370102", "lat": 36.66, "lon": 117.12, "join_policy": "auto"}),
    )
    .await;
    make_union(
        &app,
        &admin,
        json!({"name": "章丘区总工会", "adcode": "370114", "lat": 36.70, "lon": 117.50, "join_policy": "auto"}),
    )
    .await;
    let staff = union_admin(&app, "13500000001", &[&near]).await;
    let me = ok_json(get(&app, "/v1/me", Some(&staff)).await, 200).await;
    assert_eq!(
        (me["role"].clone(), me["unions"].clone()),
        (json!("union_admin"), json!([near]))
    );
    let event = make_event(
        &app,
        &admin,
        &site,
        json!({"kind": "recuperation", "quotas": [], "eligibility": {"union_members_only": true}}),
    )
    .await;

    // Sign in with a code by SMS: the first sign-in makes a worker.
    let phone = "13912345678";
    assert_eq!(
        post(&app, "/v1/auth/otp", None, json!({"phone": phone}))
            .await
            .status(),
        202
    );
    let code = app.sms.last_code(&phone.parse().unwrap()).unwrap();
    let signed = ok_json(
        post(
            &app,
            "/v1/auth/token",
            None,
            json!({"phone": phone, "code": code}),
        )
        .await,
        200,
    )
    .await;
    let rider = signed["token"].as_str().unwrap().to_owned();
    // A member number typed into the profile grants nothing.
    let r = app
        .call(
            Method::PUT,
            "/v1/me/profile",
            Some(&rider),
            Some(json!({"display_name": "王师傅", "union_member_no": "370102-999999", "frontline": true})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, body) = book(&app, &event, &rider, "before").await;
    assert_eq!(
        (status, body["param"].as_str()),
        (403, Some("union_members_only")),
        "{body}"
    );

    // The nearest union, in the phone map's coordinates.
    let found = ok_json(
        get(&app, "/v1/unions?lat=36.6493&lon=117.1262&crs=gcj02", None).await,
        200,
    )
    .await;
    assert_eq!(found["items"][0]["id"], near.as_str(), "{found}");
    assert!(found["items"][0]["distance_m"].as_f64().unwrap() < 2_000.0);
    assert_eq!(found["items"].as_array().unwrap().len(), 2);

    // The station's wall shows the union's code as a join URL; the rider's
    // phone scans it and sends what it read.
    let wall = code_of(&app, &near, &staff).await;
    let url = wall["join_url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/join?code={}", wall["code"].as_str().unwrap())));
    let joined = ok_json(
        post(&app, "/v1/memberships", Some(&rider), json!({"code": url})).await,
        201,
    )
    .await;
    assert_eq!(joined["status"], "active");
    assert_eq!(joined["union_id"], near.as_str());
    assert_eq!(joined["union_name"], "历下区快递行业联合工会");
    let no = joined["member_no"].as_str().unwrap();
    assert!(no.starts_with("370102-"), "{no}");

    let (status, body) = book(&app, &event, &rider, "after").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("confirmed")),
        "{body}"
    );
    let me = mine(&app, &rider).await;
    assert_eq!(me["active"]["member_no"], no);
    assert_eq!(me["items"].as_array().unwrap().len(), 1);
    // By adcode too: the county's, the city's, the province's.
    for (q, n) in [("370102", 1), ("3701", 2), ("37", 2), ("44", 0)] {
        let r = ok_json(
            get(&app, &format!("/v1/unions?adcode={q}"), None).await,
            200,
        )
        .await;
        assert_eq!(r["items"].as_array().unwrap().len(), n, "{q}: {r}");
    }
}

#[tokio::test]
async fn review_rejection_transfer_and_refused_codes() {
    let (app, _site, admin) = setup().await;
    let reviewing = make_union(
        &app,
        &admin,
        json!({"name": "某物流公司工会", "adcode": "370102", "join_policy": "review"}),
    )
    .await;
    let auto = make_union(
        &app,
        &admin,
        json!({"name": "某外卖站点工会", "adcode": "370102", "join_policy": "auto"}),
    )
    .await;
    let other = make_union(
        &app,
        &admin,
        json!({"name": "市中区新业态工会", "adcode": "370103", "join_policy": "auto"}),
    )
    .await;
    let r_staff = union_admin(&app, "13500000001", &[&reviewing]).await;
    let a_staff = union_admin(&app, "13500000002", &[&auto]).await;
    let r_code = code_of(&app, &reviewing, &r_staff).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let a_code = code_of(&app, &auto, &a_staff).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let o_code = code_of(&app, &other, &admin).await["code"]
        .as_str()
        .unwrap()
        .to_owned();

    // No name on the profile: refused, naming the field, and nothing stored.
    let nameless = app.token_for("13700000009", Role::Worker, &[]).await;
    let p = problem(
        post(
            &app,
            "/v1/memberships",
            Some(&nameless),
            json!({"code": r_code}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "display_name");
    assert!(
        mine(&app, &nameless).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Review: pending, listed for the union's admins only, then approved.
    let li = worker(&app, "13700000001", "李师傅").await;
    let applied = ok_json(
        post(&app, "/v1/memberships", Some(&li), json!({"code": r_code})).await,
        201,
    )
    .await;
    assert_eq!(applied["status"], "pending");
    assert_eq!(applied["member_no"], Value::Null);
    let id = applied["id"].as_str().unwrap().to_owned();
    problem(
        post(&app, "/v1/memberships", Some(&li), json!({"code": a_code})).await,
        409,
    )
    .await;
    let apps_path = format!("/v1/unions/{reviewing}/applications");
    let apps = ok_json(get(&app, &apps_path, Some(&r_staff)).await, 200).await;
    assert_eq!(apps["items"][0]["membership"]["id"], id.as_str());
    assert_eq!(apps["items"][0]["applicant"]["display_name"], "李师傅");
    assert_eq!(apps["items"][0]["applicant"]["phone"], "137****0001");
    problem(get(&app, &apps_path, Some(&a_staff)).await, 403).await;
    problem(get(&app, &apps_path, Some(&li)).await, 403).await;
    problem(get(&app, &apps_path, None).await, 401).await;
    problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/approve"),
            Some(&a_staff),
            json!({}),
        )
        .await,
        403,
    )
    .await;
    problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/approve"),
            Some(&li),
            json!({}),
        )
        .await,
        403,
    )
    .await;
    let approved = ok_json(
        post(
            &app,
            &format!("/v1/memberships/{id}/approve"),
            Some(&r_staff),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(approved["status"], "active");
    let li_no = approved["member_no"].as_str().unwrap().to_owned();
    assert!(li_no.starts_with("370102-"), "{li_no}");
    assert!(approved["decided_at"].is_string());
    problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/approve"),
            Some(&r_staff),
            json!({}),
        )
        .await,
        409,
    )
    .await;
    problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/reject"),
            Some(&r_staff),
            json!({"reason": "x"}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        ok_json(get(&app, &apps_path, Some(&r_staff)).await, 200).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Rejected with a reason the applicant reads; they may then join elsewhere.
    let zhao = worker(&app, "13700000002", "赵师傅").await;
    let applied = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&zhao),
            json!({"union_id": reviewing}),
        )
        .await,
        201,
    )
    .await;
    let zid = applied["id"].as_str().unwrap().to_owned();
    let p = problem(
        post(
            &app,
            &format!("/v1/memberships/{zid}/reject"),
            Some(&r_staff),
            json!({}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "reason");
    let rejected = ok_json(
        post(
            &app,
            &format!("/v1/memberships/{zid}/reject"),
            Some(&r_staff),
            json!({"reason": "不是本单位职工"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    // Both applicants are told in their inbox.
    let inbox = |t: String| {
        let app = &app;
        async move {
            ok_json(get(app, "/v1/me/notifications", Some(&t)).await, 200).await["items"][0].clone()
        }
    };
    let told = inbox(li.clone()).await;
    assert_eq!(told["type"], "membership_approved", "{told}");
    assert!(told["body"].as_str().unwrap().contains(&li_no), "{told}");
    let told = inbox(zhao.clone()).await;
    assert_eq!(told["type"], "membership_rejected", "{told}");
    assert!(
        told["body"].as_str().unwrap().contains("不是本单位职工"),
        "{told}"
    );
    let me = mine(&app, &zhao).await;
    assert_eq!(me["active"], Value::Null);
    assert_eq!(me["items"][0]["reason"], "不是本单位职工");
    let joined = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&zhao),
            json!({"code": a_code}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(joined["status"], "active");
    let zhao_no = joined["member_no"].as_str().unwrap().to_owned();
    assert_ne!(zhao_no, li_no, "member numbers are unique");

    // An applicant may take a pending application back (nobody else may),
    // and then apply elsewhere.
    let sun = worker(&app, "13700000004", "孙师傅").await;
    let wrong = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&sun),
            json!({"union_id": reviewing}),
        )
        .await,
        201,
    )
    .await;
    let withdraw = format!("/v1/memberships/{}/withdraw", wrong["id"].as_str().unwrap());
    problem(post(&app, &withdraw, Some(&zhao), json!({})).await, 403).await;
    problem(post(&app, &withdraw, Some(&r_staff), json!({})).await, 403).await;
    let back = ok_json(post(&app, &withdraw, Some(&sun), json!({})).await, 200).await;
    assert_eq!(back["status"], "withdrawn");
    problem(post(&app, &withdraw, Some(&sun), json!({})).await, 409).await;
    assert!(
        ok_json(get(&app, &apps_path, Some(&r_staff)).await, 200).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    ok_json(
        post(&app, "/v1/memberships", Some(&sun), json!({"code": a_code})).await,
        201,
    )
    .await;

    // Transfer in one step to an auto union: active there at once, under its
    // adcode; the old membership is kept in the history as transferred.
    app.clock.advance(std::time::Duration::from_secs(3600));
    let p = problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/transfer"),
            Some(&zhao),
            json!({"code": o_code}),
        )
        .await,
        403,
    )
    .await;
    assert!(p["detail"].is_string());
    let moved = ok_json(
        post(
            &app,
            &format!("/v1/memberships/{id}/transfer"),
            Some(&li),
            json!({"code": o_code}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(moved["status"], "active");
    assert_eq!(moved["union_id"], other.as_str());
    assert_eq!(moved["transferred_from"], id.as_str());
    assert!(moved["member_no"].as_str().unwrap().starts_with("370103-"));
    let me = mine(&app, &li).await;
    assert_eq!(me["active"]["id"], moved["id"]);
    let history: Vec<(&str, &str)> = me["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["union_id"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            (other.as_str(), "active"),
            (reviewing.as_str(), "transferred")
        ]
    );
    assert_eq!(
        me["items"][1]["member_no"],
        li_no.as_str(),
        "the old number stays in the history"
    );
    // The old membership is no longer active: it cannot move again.
    problem(
        post(
            &app,
            &format!("/v1/memberships/{id}/transfer"),
            Some(&li),
            json!({"code": a_code}),
        )
        .await,
        409,
    )
    .await;

    // Transfer to a reviewing union: pending, and the member stays a member
    // of the old union until it is approved.
    let zhao_active = mine(&app, &zhao).await["active"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pending = ok_json(
        post(
            &app,
            &format!("/v1/memberships/{zhao_active}/transfer"),
            Some(&zhao),
            json!({"code": r_code}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        mine(&app, &zhao).await["active"]["id"],
        zhao_active.as_str()
    );
    let pid = pending["id"].as_str().unwrap();
    ok_json(
        post(
            &app,
            &format!("/v1/memberships/{pid}/approve"),
            Some(&r_staff),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let me = mine(&app, &zhao).await;
    assert_eq!(me["active"]["id"], pid);
    let statuses: Vec<(&str, &str)> = me["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["union_id"].as_str().unwrap(),
                m["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 3);
    assert_eq!(statuses[0], (reviewing.as_str(), "active"));
    assert!(
        statuses.contains(&(auto.as_str(), "transferred")),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(reviewing.as_str(), "rejected")),
        "{statuses:?}"
    );

    // A rotated code is refused (and changes nothing); the new one works.
    let wang = worker(&app, "13700000003", "王师傅").await;
    let rotated = ok_json(
        post(
            &app,
            &format!("/v1/unions/{auto}/join-code/rotate"),
            Some(&a_staff),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let new_code = rotated["code"].as_str().unwrap();
    assert_ne!(new_code, a_code);
    assert_eq!(rotated["version"], 2);
    let p = problem(
        post(
            &app,
            "/v1/memberships",
            Some(&wang),
            json!({"code": a_code}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "code");
    assert!(p["detail"].as_str().unwrap().contains("replaced"), "{p}");
    assert!(
        mine(&app, &wang).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(code_of(&app, &auto, &a_staff).await["code"], new_code);

    // Forged codes are refused: signed with another key, altered, or made up.
    let auto_id: UnionId = auto.parse().unwrap();
    let forged = join_code(b"a key that is not the server's", auto_id, 2);
    let mut altered = new_code.to_owned().into_bytes();
    altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
    for code in [
        forged,
        String::from_utf8(altered).unwrap(),
        "GH370102".into(),
    ] {
        let p = problem(
            post(&app, "/v1/memberships", Some(&wang), json!({"code": code})).await,
            422,
        )
        .await;
        assert_eq!(p["param"], "code", "{p}");
        assert!(
            p["detail"].as_str().unwrap().contains("not a genuine"),
            "{p}"
        );
    }
    let li_active = mine(&app, &li).await["active"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p = problem(
        post(
            &app,
            &format!("/v1/memberships/{li_active}/transfer"),
            Some(&li),
            json!({"code": "forged"}),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "code");
    assert_eq!(mine(&app, &li).await["active"]["id"], li_active.as_str());
    assert!(
        mine(&app, &wang).await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let joined = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&wang),
            json!({"code": new_code}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(joined["status"], "active");

    // Other bad bodies name their field.
    for (body, param) in [
        (json!({}), "code"),
        (json!({"code": a_code, "union_id": auto}), "union_id"),
        (json!({"union_id": "u000000000001"}), "union_id"),
        (json!({"union_id": "nope"}), "union_id"),
        (json!({"code": 5}), "code"),
        (json!({"hello": 1}), "hello"),
    ] {
        let p = problem(
            post(&app, "/v1/memberships", Some(&nameless), body.clone()).await,
            422,
        )
        .await;
        assert_eq!(p["param"], param, "{body}: {p}");
    }
    problem(
        post(&app, "/v1/memberships", None, json!({"code": new_code})).await,
        401,
    )
    .await;
}

/// The served SVG's dark modules as a pixel grid: the path's `M x y h w v h
/// H x V y` rectangles, as `qrcode` draws them (independent of its encoder).
fn svg_pixels(svg: &str) -> (usize, usize, Vec<bool>) {
    let attr = |name: &str| -> usize {
        let at = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[at..svg[at..].find('"').unwrap() + at].parse().unwrap()
    };
    let (w, h) = (attr("width"), attr("height"));
    let d_at = svg.find(" d=\"").unwrap() + 4;
    let d = &svg[d_at..svg[d_at..].find('"').unwrap() + d_at];
    let mut grid = vec![false; w * h];
    // Split into commands: a letter followed by its numbers.
    let mut cmds: Vec<(char, Vec<f64>)> = Vec::new();
    let mut num = String::new();
    let flush = |num: &mut String, cmds: &mut Vec<(char, Vec<f64>)>| {
        if !num.is_empty() {
            cmds.last_mut().unwrap().1.push(num.parse().unwrap());
            num.clear();
        }
    };
    for c in d.chars() {
        if c.is_ascii_alphabetic() {
            flush(&mut num, &mut cmds);
            cmds.push((c, Vec::new()));
        } else if c == ' ' || c == ',' {
            flush(&mut num, &mut cmds);
        } else {
            num.push(c);
        }
    }
    flush(&mut num, &mut cmds);
    let mut i = 0;
    while i < cmds.len() {
        let (c, args) = &cmds[i];
        assert_eq!(*c, 'M', "a rectangle starts with a move: {d}");
        let (x, y) = (args[0] as usize, args[1] as usize);
        let (rw, rh) = (cmds[i + 1].1[0] as usize, cmds[i + 2].1[0] as usize);
        assert_eq!((cmds[i + 1].0, cmds[i + 2].0), ('h', 'v'));
        for yy in y..y + rh {
            for xx in x..x + rw {
                grid[yy * w + xx] = true;
            }
        }
        // H x V y close the rectangle.
        i += 5;
    }
    (w, h, grid)
}

#[tokio::test]
async fn the_qr_code_decodes_back_to_the_join_url() {
    let (app, _site, admin) = setup().await;
    let union = make_union(
        &app,
        &admin,
        json!({"name": "槐荫区总工会", "adcode": "370104", "join_policy": "auto"}),
    )
    .await;
    let staff = union_admin(&app, "13500000001", &[&union]).await;
    let path = format!("/v1/unions/{union}/qr.svg");
    let r = get(&app, &path, Some(&staff)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    let svg = r.text().await.unwrap();
    let (w, h, dark) = svg_pixels(&svg);
    assert!(w >= 320 && h >= 320, "{w}x{h}");
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(
            w,
            h,
            |x, y| {
                if dark[y * w + x] { 0 } else { 255 }
            },
        );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().expect("the QR code decodes");
    let url = code_of(&app, &union, &staff).await["join_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(content, url);
    // Whoever holds the scanned URL can join with it.
    let rider = worker(&app, "13700000001", "骑手").await;
    let joined = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&rider),
            json!({"code": content}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(joined["union_id"], union.as_str());
    // Only the union's admins print it.
    problem(get(&app, &path, Some(&rider)).await, 403).await;
    problem(get(&app, &path, None).await, 401).await;
}

#[tokio::test]
async fn a_federations_numbers_add_up_over_three_levels() {
    let (app, _site, admin) = setup().await;
    let u = |name: &str, adcode: &str, parent: Option<&str>| {
        let mut b = json!({"name": name, "adcode": adcode, "join_policy": "auto"});
        if let Some(p) = parent {
            b["parent_id"] = json!(p);
        }
        b
    };
    let city = make_union(&app, &admin, u("济南市总工会", "370100", None)).await;
    let lixia = make_union(&app, &admin, u("历下区总工会", "370102", Some(&city))).await;
    let shizhong = make_union(&app, &admin, u("市中区总工会", "370103", Some(&city))).await;
    let g1 = make_union(&app, &admin, u("某快递网点工会", "370102", Some(&lixia))).await;
    let g2 = make_union(&app, &admin, u("某外卖站点工会", "370102", Some(&lixia))).await;
    let g3 = make_union(&app, &admin, u("某物流园工会", "370103", Some(&shizhong))).await;
    let unrelated = make_union(&app, &admin, u("青岛市总工会", "370200", None)).await;

    // October (China time): 3 join g1, 1 joins g2, 2 join g3, 1 the
    // unrelated city's union. November: one moves g1 -> g3, one g2 -> g1, and
    // 1 more joins lixia's own union.
    let october = chrono::DateTime::parse_from_rfc3339("2026-10-15T10:00:00+08:00")
        .unwrap()
        .to_utc();
    app.clock.set(october);
    let mut people = Vec::new();
    for (i, union) in [&g1, &g1, &g1, &g2, &g3, &g3, &unrelated]
        .iter()
        .enumerate()
    {
        let t = worker(&app, &format!("1370000{i:04}"), &format!("职工{i}")).await;
        let m = ok_json(
            post(
                &app,
                "/v1/memberships",
                Some(&t),
                json!({"union_id": union}),
            )
            .await,
            201,
        )
        .await;
        people.push((t, m["id"].as_str().unwrap().to_owned()));
    }
    app.clock.set(october + chrono::Duration::days(20));
    for (who, to) in [(0, &g3), (3, &g1)] {
        let (t, id) = &people[who];
        ok_json(
            post(
                &app,
                &format!("/v1/memberships/{id}/transfer"),
                Some(t),
                json!({"union_id": to}),
            )
            .await,
            201,
        )
        .await;
    }
    let t = worker(&app, "13700000099", "职工99").await;
    ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&t),
            json!({"union_id": lixia}),
        )
        .await,
        201,
    )
    .await;

    let stats = |union: &str| format!("/v1/unions/{union}/stats?from=2026-09&to=2026-11");
    let s = ok_json(get(&app, &stats(&city), Some(&admin)).await, 200).await;
    assert_eq!(s["unions"], 6);
    let total = &s["total"];
    assert_eq!(total["union_id"], city.as_str());
    assert_eq!(total["members_now"], 7, "{s}");
    let month = |f: &Value, m: &str, k: &str| -> u64 {
        f["months"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["month"] == m)
            .unwrap_or_else(|| panic!("{m} in {f}"))[k]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        total["months"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["month"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["2026-09", "2026-10", "2026-11"]
    );
    assert_eq!(month(total, "2026-09", "joined"), 0);
    assert_eq!(month(total, "2026-10", "joined"), 6);
    assert_eq!(month(total, "2026-11", "joined"), 1);
    assert_eq!(month(total, "2026-11", "transferred_in"), 2);
    assert_eq!(month(total, "2026-11", "transferred_out"), 2);
    // The parts add up to the whole, figure by figure.
    let parts = s["by_union"].as_array().unwrap();
    assert_eq!(parts[0]["union_id"], city.as_str());
    for key in ["members_now", "pending_now"] {
        let sum: u64 = parts.iter().map(|p| p[key].as_u64().unwrap()).sum();
        assert_eq!(sum, total[key].as_u64().unwrap(), "{key}");
    }
    for m in ["2026-10", "2026-11"] {
        for k in ["joined", "transferred_in", "transferred_out"] {
            let sum: u64 = parts.iter().map(|p| month(p, m, k)).sum();
            assert_eq!(sum, month(total, m, k), "{m} {k}");
        }
    }
    let own = |id: &str| parts.iter().find(|p| p["union_id"] == id).unwrap().clone();
    assert_eq!(own(&g1)["members_now"], 3);
    assert_eq!(month(&own(&g1), "2026-11", "transferred_out"), 1);
    assert_eq!(month(&own(&g1), "2026-11", "transferred_in"), 1);
    assert_eq!(own(&g3)["members_now"], 3);
    assert_eq!(own(&lixia)["members_now"], 1);

    // The district's figures are its part of the city's: lixia, g1, g2.
    let d = ok_json(get(&app, &stats(&lixia), Some(&admin)).await, 200).await;
    assert_eq!(d["unions"], 3);
    assert_eq!(d["total"]["members_now"], 1 + 3);
    assert_eq!(month(&d["total"], "2026-10", "joined"), 4);
    assert_eq!(month(&d["total"], "2026-11", "transferred_in"), 1);
    assert_eq!(month(&d["total"], "2026-11", "transferred_out"), 2);
    let s3 = ok_json(get(&app, &stats(&shizhong), Some(&admin)).await, 200).await;
    assert_eq!(
        d["total"]["members_now"].as_u64().unwrap() + s3["total"]["members_now"].as_u64().unwrap(),
        total["members_now"].as_u64().unwrap()
    );

    // A window of one month: movements outside it are left out, members now are not.
    let nov = ok_json(
        get(
            &app,
            &format!("/v1/unions/{city}/stats?from=2026-11&to=2026-11"),
            Some(&admin),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(nov["total"]["members_now"], 7);
    assert_eq!(nov["total"]["months"].as_array().unwrap().len(), 1);
    assert_eq!(month(&nov["total"], "2026-11", "joined"), 1);
    assert_eq!(month(&nov["total"], "2026-11", "transferred_in"), 2);
    // The month's edges are China time's: the last microsecond of November
    // and the first of December fall apart.
    for (i, at) in [
        "2026-11-30T23:59:59.999999+08:00",
        "2026-12-01T00:00:00+08:00",
    ]
    .iter()
    .enumerate()
    {
        app.clock
            .set(chrono::DateTime::parse_from_rfc3339(at).unwrap().to_utc());
        let t = worker(&app, &format!("1370000{:04}", 50 + i), "边界").await;
        ok_json(
            post(&app, "/v1/memberships", Some(&t), json!({"union_id": g2})).await,
            201,
        )
        .await;
    }
    for (m, joined) in [("2026-11", 1), ("2026-12", 1)] {
        let s = ok_json(
            get(
                &app,
                &format!("/v1/unions/{g2}/stats?from={m}&to={m}"),
                Some(&admin),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(month(&s["total"], m, "joined"), joined, "{m}: {s}");
        assert_eq!(s["total"]["members_now"], 2);
    }

    // A district's admins see their district and the unions below, not the
    // city nor the other district; the city's see everything below them.
    let district_staff = union_admin(&app, "13500000001", &[&lixia]).await;
    let city_staff = union_admin(&app, "13500000002", &[&city]).await;
    ok_json(get(&app, &stats(&g1), Some(&district_staff)).await, 200).await;
    problem(get(&app, &stats(&city), Some(&district_staff)).await, 403).await;
    problem(get(&app, &stats(&g3), Some(&district_staff)).await, 403).await;
    ok_json(get(&app, &stats(&g3), Some(&city_staff)).await, 200).await;
    problem(get(&app, &stats(&unrelated), Some(&city_staff)).await, 403).await;
    // Default: the last 12 months; bad months are named.
    let s = ok_json(
        get(&app, &format!("/v1/unions/{city}/stats"), Some(&admin)).await,
        200,
    )
    .await;
    assert_eq!(s["total"]["months"].as_array().unwrap().len(), 12);
    for (q, param) in [
        ("from=2026-13", "from"),
        ("to=soon", "to"),
        ("from=2026-11&to=2026-01", "from"),
        ("from=2000-01&to=2026-01", "from"),
    ] {
        let p = problem(
            get(&app, &format!("/v1/unions/{city}/stats?{q}"), Some(&admin)).await,
            400,
        )
        .await;
        assert_eq!(p["param"], param, "{q}");
    }
}

/// (method, path, body, expected status for: nobody, worker, site manager,
/// another union's admin, the union's admin, its federation's admin, admin)
type Case = (Method, String, Option<Value>, [u16; 7]);

#[tokio::test]
async fn who_may_do_what_with_unions() {
    let (app, site, admin) = setup().await;
    let federation = make_union(
        &app,
        &admin,
        json!({"name": "联合会", "adcode": "370100", "join_policy": "auto"}),
    )
    .await;
    let union = make_union(
        &app,
        &admin,
        json!({"name": "基层工会", "adcode": "370102", "join_policy": "review", "parent_id": federation}),
    )
    .await;
    let elsewhere = make_union(
        &app,
        &admin,
        json!({"name": "别的工会", "adcode": "370103", "join_policy": "auto"}),
    )
    .await;
    let site_id: yizhan::domain::site::SiteId = site.parse().unwrap();
    let tokens: Vec<Option<String>> = vec![
        None,
        Some(app.token_for("13700000001", Role::Worker, &[]).await),
        Some(
            app.token_for("13700000002", Role::SiteManager, &[site_id])
                .await,
        ),
        Some(union_admin(&app, "13700000003", &[&elsewhere]).await),
        Some(union_admin(&app, "13700000004", &[&union]).await),
        Some(union_admin(&app, "13700000005", &[&federation]).await),
        Some(admin.clone()),
    ];
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/v1/unions".into(),
            Some(json!({"name": "新工会", "adcode": "370102", "join_policy": "auto"})),
            [401, 403, 403, 403, 403, 403, 201],
        ),
        (Method::GET, format!("/v1/unions/{union}"), None, [200; 7]),
        (
            Method::GET,
            format!("/v1/unions/{union}/join-code"),
            None,
            [401, 403, 403, 403, 200, 200, 200],
        ),
        (
            Method::POST,
            format!("/v1/unions/{union}/join-code/rotate"),
            Some(json!({})),
            [401, 403, 403, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v1/unions/{union}/qr.svg"),
            None,
            [401, 403, 403, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v1/unions/{union}/applications"),
            None,
            [401, 403, 403, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v1/unions/{union}/stats"),
            None,
            [401, 403, 403, 403, 200, 200, 200],
        ),
        (
            Method::GET,
            format!("/v1/unions/{federation}/stats"),
            None,
            [401, 403, 403, 403, 403, 200, 200],
        ),
        (
            Method::GET,
            "/v1/me/memberships".into(),
            None,
            [401, 200, 200, 200, 200, 200, 200],
        ),
    ];
    let mut checked = 0;
    for (method, path, body, expected) in cases {
        for (i, (token, want)) in tokens.iter().zip(expected).enumerate() {
            let r = app
                .call(method.clone(), &path, token.as_deref(), body.clone(), None)
                .await;
            let status = r.status().as_u16();
            if status >= 400 {
                assert_eq!(r.headers()["content-type"], "application/problem+json");
            }
            assert_eq!(
                status,
                want,
                "caller {i}: {method} {path}: {}",
                r.text().await.unwrap()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 63);

    // Deciding on an application: the union's admins and those above them.
    let worker_token = tokens[1].clone().unwrap();
    let r = app
        .call(
            Method::PUT,
            "/v1/me/profile",
            Some(&worker_token),
            Some(json!({"display_name": "申请人"})),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let m = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&worker_token),
            json!({"union_id": union}),
        )
        .await,
        201,
    )
    .await;
    let approve = format!("/v1/memberships/{}/approve", m["id"].as_str().unwrap());
    let view = format!("/v1/memberships/{}", m["id"].as_str().unwrap());
    for (i, want) in [401, 403, 403, 403].into_iter().enumerate() {
        problem(
            app.call(
                Method::POST,
                &approve,
                tokens[i].as_deref(),
                Some(json!({})),
                None,
            )
            .await,
            want,
        )
        .await;
    }
    // Its member and its union's admins may look at it; others not.
    ok_json(get(&app, &view, Some(&worker_token)).await, 200).await;
    ok_json(get(&app, &view, tokens[4].as_deref()).await, 200).await;
    problem(get(&app, &view, tokens[3].as_deref()).await, 403).await;
    problem(get(&app, &view, tokens[2].as_deref()).await, 403).await;
    let done = ok_json(
        app.call(
            Method::POST,
            &approve,
            tokens[5].as_deref(),
            Some(json!({})),
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(done["status"], "active");
    assert!(done["member_no"].as_str().unwrap().starts_with("370102-"));
}

#[tokio::test]
async fn bad_union_input_is_named_and_changes_nothing() {
    let (app, _site, admin) = setup().await;
    let good = json!({"name": "工会", "adcode": "370102", "join_policy": "auto"});
    for (patch, param) in [
        (json!({"adcode": "37010"}), "adcode"),
        (json!({"adcode": null}), "adcode"),
        (json!({"join_policy": "maybe"}), "join_policy"),
        (json!({"name": ""}), "name"),
        (json!({"parent_id": "u000000000001"}), "parent_id"),
        (json!({"parent_id": "s000000000001"}), "parent_id"),
        (json!({"lat": 36.6}), "lon"),
        (json!({"lon": 117.0}), "lat"),
        (json!({"lat": 95.0, "lon": 117.0}), "lat"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let p = problem(
            post(&app, "/v1/unions", Some(&admin), body.clone()).await,
            422,
        )
        .await;
        assert_eq!(p["param"], param, "{body}: {p}");
    }
    let listed = ok_json(get(&app, "/v1/unions?adcode=37", None).await, 200).await;
    assert!(listed["items"].as_array().unwrap().is_empty(), "{listed}");
    for (q, param) in [
        ("", "lat"),
        ("adcode=3", "adcode"),
        ("lat=36", "lon"),
        ("lat=36&lon=117&limit=0", "limit"),
        // Malformed even where it would not apply (schemathesis found it ignored).
        ("adcode=37&radius_m=%C3%B6E%7D", "radius_m"),
    ] {
        let p = problem(get(&app, &format!("/v1/unions?{q}"), None).await, 400).await;
        assert_eq!(p["param"], param, "{q}");
    }
    let p = problem(get(&app, "/v1/unions/nope", None).await, 404).await;
    assert_eq!(p["param"], "id", "{p}");
    problem(get(&app, "/v1/unions/u000000000001", None).await, 404).await;
    let t = worker(&app, "13700000001", "某人").await;
    let p = problem(get(&app, "/v1/memberships/nope", Some(&t)).await, 404).await;
    assert_eq!(p["param"], "id", "{p}");
    problem(
        get(&app, "/v1/memberships/m000000000001", Some(&t)).await,
        404,
    )
    .await;
    problem(
        post(
            &app,
            "/v1/memberships/m000000000001/transfer",
            Some(&t),
            json!({"union_id": "u000000000001"}),
        )
        .await,
        404,
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/memberships"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let p = problem(r, 400).await;
    assert_eq!(p["param"], "body");
    assert!(mine(&app, &t).await["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_site_names_the_union_that_runs_it() {
    let (app, site, admin) = setup().await;
    let union = make_union(
        &app,
        &admin,
        json!({"name": "历下区总工会", "adcode": "370102", "join_policy": "auto"}),
    )
    .await;
    let path = format!("/v1/sites/{site}");
    let doc = ok_json(get(&app, &path, None).await, 200).await;
    assert_eq!(doc["union_id"], Value::Null);
    let site_id: yizhan::domain::site::SiteId = site.parse().unwrap();
    let manager = app
        .token_for("13700000002", Role::SiteManager, &[site_id])
        .await;
    let tag = app.etag(&site).await;
    let p = problem(
        app.call(
            Method::PATCH,
            &path,
            Some(&manager),
            Some(json!({"union_id": union})),
            Some(&tag),
        )
        .await,
        403,
    )
    .await;
    assert_eq!(p["param"], "union_id");
    let p = problem(
        app.call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"union_id": "u000000000001"})),
            Some(&tag),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "union_id");
    assert_eq!(app.etag(&site).await, tag, "a refused edit changes nothing");
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"union_id": union})),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status(), 200);
    let doc = ok_json(get(&app, &path, None).await, 200).await;
    assert_eq!(doc["union_id"], union.as_str());
    let history = ok_json(
        get(&app, &format!("{path}/history"), Some(&admin)).await,
        200,
    )
    .await;
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["changes"]["union_id"]["new"], union.as_str(), "{last}");
    // null clears it.
    let tag = app.etag(&site).await;
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"union_id": null})),
            Some(&tag),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        ok_json(get(&app, &path, None).await, 200).await["union_id"],
        Value::Null
    );
}

#[tokio::test]
async fn a_crowd_joining_at_once_gets_one_membership_each_and_unique_numbers() {
    let (app, _site, admin) = setup().await;
    let union = make_union(
        &app,
        &admin,
        json!({"name": "物流园区联合工会", "adcode": "370112", "join_policy": "auto"}),
    )
    .await;
    let staff = union_admin(&app, "13500000001", &[&union]).await;
    let code = code_of(&app, &union, &staff).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tokens = Vec::new();
    for i in 0..24 {
        tokens.push(worker(&app, &format!("1370000{i:04}"), &format!("职工{i}")).await);
    }
    // Everyone presses "join" at once, the first of them four times.
    let mut presses: Vec<String> = tokens.clone();
    presses.extend(std::iter::repeat_n(tokens[0].clone(), 3));
    let mut tasks = Vec::new();
    for t in presses {
        let (client, url, code) = (app.client.clone(), app.url("/v1/memberships"), code.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(&t)
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut numbers = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, body) => numbers.push(body["member_no"].as_str().unwrap().to_owned()),
            (409, _) => conflicts += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((numbers.len(), conflicts), (24, 3));
    numbers.sort();
    let expected: Vec<String> = (1..=24).map(|n| format!("370112-{n:06}")).collect();
    assert_eq!(numbers, expected, "unique, and none skipped");
    for t in &tokens {
        let me = mine(&app, t).await;
        assert_eq!(me["items"].as_array().unwrap().len(), 1);
    }
    let s = ok_json(
        get(&app, &format!("/v1/unions/{union}/stats"), Some(&staff)).await,
        200,
    )
    .await;
    assert_eq!(s["total"]["members_now"], 24);
}

#[tokio::test]
async fn a_unions_staff_edit_it_and_a_bad_edit_changes_nothing() {
    let (app, _site, admin) = setup().await;
    let city = make_union(
        &app,
        &admin,
        json!({"name": "市总工会", "adcode": "370100", "join_policy": "auto"}),
    )
    .await;
    let union = make_union(
        &app,
        &admin,
        json!({"name": "某公司工会", "adcode": "370102", "join_policy": "review", "parent_id": city}),
    )
    .await;
    let staff = union_admin(&app, "13500000001", &[&union]).await;
    let path = format!("/v1/unions/{union}");
    let patch = |token: &str, body: Value| {
        let (app, path, token) = (&app, path.clone(), token.to_owned());
        async move {
            app.call(Method::PATCH, &path, Some(&token), Some(body), None)
                .await
        }
    };
    let before = ok_json(get(&app, &path, None).await, 200).await;
    for (who, body, status, param) in [
        (&staff, json!({"adcode": "370103"}), 403, "adcode"),
        (&staff, json!({"parent_id": null}), 403, "parent_id"),
        (
            &staff,
            json!({"join_policy": "auto", "lat": 36.6}),
            422,
            "lon",
        ),
        (
            &staff,
            json!({"join_policy": "auto", "lat": null, "lon": 117.0}),
            422,
            "lat",
        ),
        (
            &staff,
            json!({"join_policy": "sometimes"}),
            422,
            "join_policy",
        ),
        (&staff, json!({"name": "  "}), 422, "name"),
        (&admin, json!({"parent_id": union}), 422, "parent_id"),
        (
            &admin,
            json!({"parent_id": "u000000000001"}),
            422,
            "parent_id",
        ),
    ] {
        let p = problem(patch(who, body.clone()).await, status).await;
        assert_eq!(p["param"], param, "{body}: {p}");
    }
    let r = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.token_for("13700000001", Role::Worker, &[]).await),
            Some(json!({"name": "x"})),
            None,
        )
        .await;
    problem(r, 403).await;
    assert_eq!(
        ok_json(get(&app, &path, None).await, 200).await,
        before,
        "refused edits change nothing"
    );
    // The city may not become a member of its own member union.
    let p = problem(
        app.call(
            Method::PATCH,
            &format!("/v1/unions/{city}"),
            Some(&admin),
            Some(json!({"parent_id": union})),
            None,
        )
        .await,
        422,
    )
    .await;
    assert_eq!(p["param"], "parent_id");

    // From review to auto: the next joiner is a member at once.
    let done = ok_json(
        patch(
            &staff,
            json!({"join_policy": "auto", "name": "某公司联合工会", "lat": 36.66, "lon": 117.12}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(done["join_policy"], "auto");
    assert_eq!(done["name"], "某公司联合工会");
    assert!((done["lat"].as_f64().unwrap() - 36.66).abs() < 1e-6);
    let w = worker(&app, "13700000002", "王").await;
    let m = ok_json(
        post(
            &app,
            "/v1/memberships",
            Some(&w),
            json!({"union_id": union}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(m["status"], "active");
    let near = ok_json(
        get(&app, "/v1/unions?lat=36.66&lon=117.12", None).await,
        200,
    )
    .await;
    assert_eq!(near["items"][0]["id"], union.as_str());
    // An admin moves it out of the city's federation and clears its location.
    let moved = ok_json(
        patch(
            &admin,
            json!({"parent_id": null, "adcode": "370103", "lat": null, "lon": null}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (
            moved["parent_id"].clone(),
            moved["adcode"].clone(),
            moved["lat"].clone()
        ),
        (Value::Null, json!("370103"), Value::Null)
    );
    let code = ok_json(
        post(
            &app,
            &format!("/v1/unions/{union}/join-code/rotate"),
            Some(&admin),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        code["version"], 2,
        "an edit leaves the code's version alone"
    );
}

/// POST with an Idempotency-Key: the status, the Idempotent-Replayed header
/// and the body.
async fn keyed_post(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (r.status().as_u16(), replayed, r.json().await.unwrap())
}

#[tokio::test]
async fn creating_an_event_joining_and_transferring_are_safe_to_retry_with_a_key() {
    let (app, site, admin) = setup().await;
    let now = app.clock_now();
    let event = json!({
        "kind": "training", "site_id": site, "title": "电动车安全骑行培训", "capacity": 30,
        "starts_at": (now + chrono::Duration::days(10)).to_rfc3339(),
        "ends_at": (now + chrono::Duration::days(10) + chrono::Duration::hours(2)).to_rfc3339(),
        "booking_opens_at": (now - chrono::Duration::minutes(1)).to_rfc3339(),
    });
    // An event: the retry answers with the event the first request made.
    let (s, replayed, first) = keyed_post(&app, "/v1/events", &admin, "ev-1", &event).await;
    assert_eq!((s, replayed), (201, false), "{first}");
    let (s, replayed, again) = keyed_post(&app, "/v1/events", &admin, "ev-1", &event).await;
    assert_eq!((s, replayed), (201, true), "{again}");
    assert_eq!(again["id"], first["id"]);
    // The same key for another request is refused, naming the header.
    let mut other = event.clone();
    other["title"] = json!("另一场培训");
    let (s, _, p) = keyed_post(&app, "/v1/events", &admin, "ev-1", &other).await;
    assert_eq!(
        (s, p["param"].as_str()),
        (422, Some("Idempotency-Key")),
        "{p}"
    );
    // Another key is another event.
    let (s, replayed, second) = keyed_post(&app, "/v1/events", &admin, "ev-2", &other).await;
    assert_eq!((s, replayed), (201, false));
    assert_ne!(second["id"], first["id"]);

    // Joining and transferring: a retry answers with the membership made,
    // where without the key it would be refused (a member already).
    let auto = make_union(
        &app,
        &admin,
        json!({"name": "历下区快递行业联合工会", "adcode": "370102", "join_policy": "auto"}),
    )
    .await;
    let review = make_union(
        &app,
        &admin,
        json!({"name": "历城区总工会", "adcode": "370112", "join_policy": "review"}),
    )
    .await;
    let rider = worker(&app, "13900000077", "王师傅").await;
    let join = json!({"union_id": auto});
    let (s, replayed, m) = keyed_post(&app, "/v1/memberships", &rider, "join-1", &join).await;
    assert_eq!(
        (s, replayed, m["status"].as_str()),
        (201, false, Some("active")),
        "{m}"
    );
    let (s, replayed, again) = keyed_post(&app, "/v1/memberships", &rider, "join-1", &join).await;
    assert_eq!((s, replayed), (201, true), "{again}");
    assert_eq!(again["id"], m["id"]);
    problem(
        post(&app, "/v1/memberships", Some(&rider), join.clone()).await,
        409,
    )
    .await;
    let to = json!({"union_id": review});
    let path = format!("/v1/memberships/{}/transfer", m["id"].as_str().unwrap());
    let (s, replayed, t) = keyed_post(&app, &path, &rider, "move-1", &to).await;
    assert_eq!(
        (s, replayed, t["status"].as_str()),
        (201, false, Some("pending")),
        "{t}"
    );
    let (s, replayed, again) = keyed_post(&app, &path, &rider, "move-1", &to).await;
    assert_eq!((s, replayed), (201, true), "{again}");
    assert_eq!(again["id"], t["id"]);
    // One membership and one application, not two of either.
    let items = mine(&app, &rider).await["items"].as_array().unwrap().len();
    assert_eq!(items, 2);
}
