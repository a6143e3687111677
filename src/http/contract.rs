//! The exact contract: what the derive annotations cannot say, added to the
//! generated OpenAPI document in one pass over every operation.
//!
//! - cross-cutting answers: 400 wherever there is a parameter or a body,
//!   404 wherever the path names a resource, 401 where a bearer token is
//!   required, 413 and 422 where there is a body, 429 on every write and 503
//!   (overloaded, timed out, database busy) everywhere, with `Retry-After`;
//! - every query and path parameter's type, range, enum and pattern, from the
//!   same constants the parsers in this module's siblings use;
//! - the JSON bodies that are read field by field (`body::JsonObject`): their
//!   fields, which are required, and `additionalProperties: false` (unknown
//!   fields are refused with 422 naming the field).
//!
//! Rules the schema language cannot state (a box's minLat <= maxLat, a tile's
//! column below 2^z, an event ending after it starts, a site that must exist)
//! are said in the descriptions and answered 400/422 as documented.

use serde_json::{Map, Value, json};

/// The generated document, tightened. It is handled as JSON because utoipa's
/// typed model cannot hold every schema here (a schema without a type, a
/// type list with `null`).
pub fn exact(openapi: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(openapi).expect("the document serializes");
    tighten(&mut doc);
    doc["info"]["license"]["identifier"] = json!("MIT");
    // Relative to wherever this yizhan answers (it serves this document itself).
    doc["servers"] = json!([{"url": "/", "description": "the yizhan serving this document"}]);
    doc
}

/// The id prefix of the resource a path names (see `domain::id`).
fn id_prefix(path: &str) -> Option<&'static str> {
    [
        ("/v1/sites/", "s"),
        ("/v1/events/", "e"),
        ("/v1/applications/", "a"),
        ("/v1/bookings/", "b"),
        ("/v1/memberships/", "m"),
        ("/v1/unions/", "u"),
        ("/v1/push/subscriptions/", "p"),
        ("/v1/me/notifications/", "n"),
    ]
    .into_iter()
    .find(|(p, _)| path.starts_with(p))
    .map(|(_, prefix)| prefix)
}

/// The prefix, then 12 digits not all zero (zero is no id).
fn id_pattern(prefix: &str) -> String {
    const NONZERO: &str = "[1-9a-hjkmnp-tv-z]";
    const DIGIT: &str = "[0-9a-hjkmnp-tv-z]";
    let alternatives: Vec<String> = (0..12)
        .map(|zeros| format!("0{{{zeros}}}{NONZERO}{DIGIT}{{{}}}", 11 - zeros))
        .collect();
    format!("^{prefix}({})$", alternatives.join("|"))
}

/// A list of a component enum's names, sent comma-separated (the parameter
/// is `style: form, explode: false`).
fn enum_list(component: &str) -> Value {
    // A name given twice is accepted (and counts once), so no uniqueItems.
    json!({"type": "array", "minItems": 1,
           "items": {"$ref": format!("#/components/schemas/{component}")}})
}

fn number(lo: f64, hi: f64) -> Value {
    json!({"type": "number", "format": "double", "minimum": lo, "maximum": hi})
}

fn integer(lo: i64, hi: i64) -> Value {
    json!({"type": "integer", "format": "int64", "minimum": lo, "maximum": hi})
}

/// One line of text as `body::text` reads it: no control characters, not
/// blank, no leading or trailing (Unicode) white space.
fn one_line() -> String {
    const EDGE: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    const MID: &str = r"[^\x00-\x1f\x7f-\x9f]";
    format!("^{EDGE}({MID}*{EDGE})?$")
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn date_time_eg(example: &str) -> Value {
    json!({"type": "string", "format": "date-time", "example": example})
}

/// A query or path parameter's exact schema, by operation and name.
fn param_schema(op: &str, name: &str) -> Option<Value> {
    if let Some((_, arity)) = super::paging::PAGED.iter().find(|(o, _)| *o == op) {
        match name {
            "cursor" => return Some(super::paging::cursor_schema(*arity)),
            "limit" => return Some(integer(1, super::paging::MAX_LIMIT)),
            _ => {}
        }
    }
    let coord = r"-?(0|[1-9][0-9]?|1[0-7][0-9])(\.[0-9]{1,6})?";
    let lat = r"-?(0|[1-8]?[0-9])(\.[0-9]{1,6})?";
    Some(match (op, name) {
        (_, "crs") => json!({"$ref": "#/components/schemas/Crs", "default": "wgs84"}),
        (_, "kind") if op == "find_events" => json!({"$ref": "#/components/schemas/EventKind"}),
        // Lists of one vocabulary, comma-separated (`kind=a,b`: form, not exploded).
        (_, "kind") => enum_list("Kind"),
        (_, "amenity") => enum_list("Amenity"),
        (_, "at") => date_time(),
        ("find_events", "from" | "to") => date_time(),
        ("stats", "from" | "to") => {
            json!({"type": "string", "pattern": "^(19|[2-9][0-9])[0-9]{2}-(0[1-9]|1[0-2])$", "description": "A month, YYYY-MM, from 1900-01"})
        }
        (_, "lat") => number(-90.0, 90.0),
        (_, "lon") => number(-180.0, 180.0),
        ("nearby", "radius_m") => {
            json!({"type": "number", "format": "double", "exclusiveMinimum": 0, "maximum": super::sites::MAX_RADIUS_M})
        }
        (_, "radius_m") => number(1.0, 2_000_000.0),
        ("nearby", "k") => integer(1, super::sites::MAX_K),
        ("nearby", "open") => json!({"type": "boolean"}),
        ("viewport", "limit") => integer(1, super::map::MAX_LIMIT),
        ("clusters", "limit") => integer(1, super::clusters::MAX_LIMIT),
        ("clusters", "zoom") => integer(0, i64::from(crate::index::cluster::MAX_ZOOM)),
        ("changes", "limit") => integer(1, super::feed::MAX_LIMIT),
        ("changes", "since") => integer(0, i64::MAX),
        ("search", "limit") => integer(1, super::search::MAX_LIMIT),
        ("search", "q") => {
            json!({"type": "string", "minLength": 2, "maxLength": 100, "pattern": r"^\s*\S{2,}(\s+\S{2,}){0,7}\s*$", "description": "1 to 8 words of at least 2 characters each"})
        }
        ("find_unions", "limit") | ("inbox", "limit") => integer(1, 100),
        ("find_unions", "adcode") => {
            json!({"type": "string", "pattern": "^([0-9]{2}|[0-9]{4}|[0-9]{6})$"})
        }
        ("inbox", "before" | "cursor") => json!({"type": "string", "pattern": id_pattern("n")}),
        ("attendees", "format") => json!({"type": "string", "enum": ["json", "csv"]}),
        ("holiday_year" | "put_holiday_year", "year") => integer(2000, 2100),
        ("tile", "z") => integer(0, i64::from(crate::index::cluster::MAX_ZOOM)),
        ("tile", "x") => integer(0, (1 << crate::index::cluster::MAX_ZOOM) - 1),
        ("tile", "y") => integer(0, (1 << crate::index::cluster::MAX_ZOOM) - 1),
        (_, "Idempotency-Key") => json!({"type": "string", "pattern": "^[!-~]{1,100}$"}),
        (_, "bbox") => json!({
            "type": "string",
            "pattern": format!("^{coord},{lat},{coord},{lat}$"),
            "description": "minLon,minLat,maxLon,maxLat (minLat <= maxLat, else 400)"
        }),
        _ => return None,
    })
}

/// The field-by-field bodies, by operation.
fn body_schema(op: &str) -> Option<Value> {
    let text = |max: usize| json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": one_line()});
    let multiline = |max: usize| json!({"type": "string", "maxLength": max, "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"});
    let nullable = |mut v: Value| {
        let t = v["type"].clone();
        v["type"] = json!([t, "null"]);
        v
    };
    let phone = json!({"type": "string", "pattern": r"^(\+86)?1[3-9][0-9]{9}$", "description": "Mainland mobile number"});
    let adcode = json!({"type": "string", "pattern": "^[1-9][0-9]{5}$"});
    let site_id = json!({"type": "string", "pattern": id_pattern("s")});
    let union_id = json!({"type": "string", "pattern": id_pattern("u")});
    let event_id = json!({"type": "string", "pattern": id_pattern("e")});
    let join_policy = json!({"$ref": "#/components/schemas/JoinPolicy"});
    let event_status = json!({"$ref": "#/components/schemas/EventStatus"});
    let obj = |props: Value, required: &[&str]| json!({"type": "object", "properties": props, "required": required, "additionalProperties": false});
    Some(match op {
        "request_code" => obj(json!({"phone": phone}), &["phone"]),
        "sign_in" => obj(
            json!({"phone": phone, "code": {"type": "string", "pattern": "^[0-9]{6}$"}}),
            &["phone", "code"],
        ),
        "wechat_sign_in" => {
            let code =
                json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"});
            obj(
                json!({"login_code": code, "phone_code": code}),
                &["login_code"],
            )
        }
        "wechat_subscriptions" => {
            let ids = json!({"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 128}});
            obj(json!({"accepted": ids, "rejected": ids}), &[])
        }
        "check_in" => obj(
            json!({"event_id": event_id, "code": text(64)}),
            &["event_id", "code"],
        ),
        "join" | "transfer" => json!({
            "description": "The union: `code` (a scanned join code or the join URL) or `union_id`, exactly one.",
            "oneOf": [
                obj(json!({"code": text(500)}), &["code"]),
                obj(json!({"union_id": union_id}), &["union_id"]),
            ],
        }),
        "reject" => obj(json!({"reason": text(500)}), &["reason"]),
        "put_settings" => obj(
            json!({
                "muted_types": {"type": "array", "items": {"$ref": "#/components/schemas/NoticeType"}},
                "quiet_hours": {"oneOf": [{"$ref": "#/components/schemas/QuietHoursDoc"}, {"type": "null"}]},
            }),
            &[],
        ),
        "create_union" | "patch_union" => {
            let creating = op == "create_union";
            let mut props = json!({
                "name": text(100),
                "adcode": adcode,
                "parent_id": union_id,
                "lat": number(-90.0, 90.0),
                "lon": number(-180.0, 180.0),
                "join_policy": join_policy,
            });
            if !creating {
                for f in ["parent_id", "lat", "lon"] {
                    props[f] = nullable(props[f].take());
                }
            }
            let required: &[&str] = if creating {
                &["name", "adcode", "join_policy"]
            } else {
                &[]
            };
            let mut v = obj(props, required);
            v["description"] = json!("`lat` and `lon` go together.");
            v
        }
        "create_event" | "patch_event" => {
            let creating = op == "create_event";
            let mut props = json!({
                "title": text(100),
                "description": multiline(5000),
                // Examples in the order the times must keep.
                "starts_at": date_time_eg("2030-06-01T09:00:00+08:00"),
                "ends_at": date_time_eg("2030-06-01T11:00:00+08:00"),
                "capacity": integer(1, 100_000),
                "booking_opens_at": date_time_eg("2030-05-01T09:00:00+08:00"),
                "booking_closes_at": date_time_eg("2030-05-31T18:00:00+08:00"),
                "cancel_deadline": date_time_eg("2030-05-31T12:00:00+08:00"),
                "waitlist": {"type": "boolean"},
                "status": event_status,
                "draw_at": date_time(),
                "priority_groups": {"type": "array", "maxItems": crate::domain::draw::MAX_GROUPS, "items": {"$ref": "#/components/schemas/PriorityGroup"}},
                "public_value": {"type": "string", "maxLength": 200, "description": "A draw's public value (a lottery result announced in advance); one line"},
            });
            if creating {
                let more = json!({
                    "kind": {"$ref": "#/components/schemas/EventKind"},
                    "site_id": site_id,
                    "venue_name": text(100),
                    "lat": number(-90.0, 90.0),
                    "lon": number(-180.0, 180.0),
                    "quotas": {"type": "array", "items": {"$ref": "#/components/schemas/Quota"}},
                    "eligibility": {"$ref": "#/components/schemas/Eligibility"},
                    "offer_hours": integer(1, 24 * 14),
                    "allocation": {"$ref": "#/components/schemas/Allocation"},
                });
                props
                    .as_object_mut()
                    .expect("object")
                    .extend(more.as_object().expect("object").clone());
            }
            let required: &[&str] = if creating {
                &[
                    "kind",
                    "title",
                    "starts_at",
                    "ends_at",
                    "capacity",
                    "booking_opens_at",
                ]
            } else {
                &[]
            };
            let mut v = obj(props, required);
            v["description"] = json!(
                "Away from a site (no `site_id`, admins only) `lat`, `lon` and `venue_name` are required. Times must be in order (`booking_opens_at` <= `booking_closes_at` <= `starts_at` < `ends_at`), else 422 naming the field. A draw (`allocation: draw`) needs `draw_at` (at or after `booking_closes_at`, before `starts_at`); `priority_groups`, `public_value` and `offer_hours` (default 48) are optional. Only a draw has `draw_at`, `priority_groups` and `public_value`; the window, `draw_at` and the groups are fixed once anyone has applied, and nothing of a draw changes once it is made (422 naming the field)."
            );
            v
        }
        "create_site" | "patch_site" => {
            let creating = op == "create_site";
            let props = json!({
                "ref": nullable(text(100)),
                "kind": {"$ref": "#/components/schemas/Kind"},
                "name": text(100),
                "address": text(200),
                "adcode": adcode,
                "lat": number(-90.0, 90.0),
                "lon": number(-180.0, 180.0),
                "opening_hours": {"type": "string", "minLength": 1, "example": "Mo-Fr 08:00-18:00; PH off", "description": "OpenStreetMap opening_hours syntax, read in Asia/Shanghai with China's holiday calendar (422 naming the field when it does not parse)"},
                "amenities": {"type": "array", "items": {"$ref": "#/components/schemas/Amenity"}, "uniqueItems": true},
                "status": {"$ref": "#/components/schemas/SettableStatus"},
                "status_reason": nullable(text(200)),
                "reopens_at": {"type": ["string", "null"], "description": "An RFC 3339 time or a YYYY-MM-DD date"},
                "closures": {"type": "array", "maxItems": 100, "items": {"$ref": "#/components/schemas/Closure"}},
                "phone": nullable(text(40)),
                "photos": {"type": "array", "maxItems": 20, "items": {"type": "string", "format": "uri"}},
                "union_id": nullable(union_id),
            });
            let required: &[&str] = if creating {
                &[
                    "kind",
                    "name",
                    "address",
                    "adcode",
                    "lat",
                    "lon",
                    "opening_hours",
                ]
            } else {
                &[]
            };
            let mut v = obj(props, required);
            v["description"] = json!(
                "`lat` and `lon` go together; `ref`, `status` and `union_id` are for admins (403 otherwise)."
            );
            v
        }
        _ => return None,
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn retry_after(mut response: Value) -> Value {
    response["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0}
    }});
    response
}

/// Adds the response for `status` unless the operation documents its own;
/// a `Retry-After` header of the shared one is added to an own one too (the
/// server always sends it with 429 and 503).
fn add_response(op: &mut Map<String, Value>, status: &str, response: Value) {
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    let own = responses.entry(status).or_insert_with(|| response.clone());
    if let Some(retry) = response.pointer("/headers/Retry-After") {
        let headers = own
            .as_object_mut()
            .expect("a response is an object")
            .entry("headers")
            .or_insert_with(|| json!({}));
        if let Some(headers) = headers.as_object_mut() {
            headers
                .entry("Retry-After")
                .or_insert_with(|| retry.clone());
        }
    }
}

/// Request body components read field by field: unknown fields are refused,
/// and these fields may be absent but not null.
fn tighten_components(doc: &mut Value) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // One enum for the coordinate system, wherever a `crs` is answered.
    schemas.insert(
        "Crs".into(),
        json!({"type": "string", "enum": ["wgs84", "gcj02", "bd09"],
               "description": "Coordinate system: wgs84 (GPS), gcj02 (AMap/Tencent, mandated in mainland China), bd09 (Baidu)"}),
    );
    for schema in schemas.values_mut() {
        if let Some(crs) = schema.pointer_mut("/properties/crs")
            && crs["type"] == "string"
        {
            *crs = json!({"$ref": "#/components/schemas/Crs"});
        }
    }
    // Every problem's `type`: absolute URIs under one base (this document's
    // base is the local server's; a served document names its own).
    let types: Vec<String> = crate::error::ProblemType::ALL
        .iter()
        .map(|t| format!("{}/problems/{}", crate::error::DEFAULT_BASE, t.slug()))
        .collect();
    let list: Vec<String> = crate::error::ProblemType::ALL
        .iter()
        .map(|t| {
            let text = t.text();
            format!("- `…/{}` ({}): {}", t.slug(), text.title_zh, text.about_en)
        })
        .collect();
    schemas.insert(
        "ProblemType".into(),
        json!({"type": "string", "format": "uri", "enum": types,
               "description": format!("Every problem `type` yizhan answers, under the base of the server that answers it (`--public-url`, or the scheme and host the request came to; this list is written for `{}`). Each URI answers a page for people. Branch on the last segment:\n\n{}", crate::error::DEFAULT_BASE, list.join("\n"))}),
    );
    if let Some(t) = schemas
        .get_mut("Problem")
        .and_then(|p| p.pointer_mut("/properties/type"))
    {
        // One of the list, or (from a server under another base) a URI: a
        // client generated from this document still reads the latter.
        *t = json!({"anyOf": [{"$ref": "#/components/schemas/ProblemType"}, {"type": "string", "format": "uri"}]});
        t["description"] = json!(
            "The problem type: one of `ProblemType`, an absolute URI under this server's base; its last segment names the kind."
        );
    }
    // A quota's value depends on its attribute: one shape per attribute,
    // told apart by `attribute`.
    if let Some(quota) = schemas.get("Quota").cloned() {
        let seats = quota["properties"]["seats"].clone();
        let mut mapping = Map::new();
        let mut alternatives = Vec::new();
        for (attribute, name, value) in [
            (
                "gender",
                "GenderQuota",
                json!({"$ref": "#/components/schemas/Gender"}),
            ),
            (
                "marital_status",
                "MaritalStatusQuota",
                json!({"$ref": "#/components/schemas/MaritalStatus"}),
            ),
            (
                "frontline",
                "FrontlineQuota",
                json!({"type": "string", "enum": ["true", "false"], "description": "`true`: front-line workers; `false`: the others"}),
            ),
        ] {
            let reference = format!("#/components/schemas/{name}");
            mapping.insert(attribute.into(), json!(reference));
            alternatives.push(json!({"$ref": reference}));
            schemas.insert(
                name.into(),
                json!({
                    "type": "object",
                    "description": format!("Seats reserved for people whose `{attribute}` is `value`"),
                    "properties": {
                        "attribute": {"type": "string", "const": attribute},
                        "value": value,
                        "seats": seats,
                    },
                    "required": ["attribute", "value", "seats"],
                }),
            );
        }
        schemas.insert(
            "Quota".into(),
            json!({
                "description": quota["description"],
                "oneOf": alternatives,
                "discriminator": {"propertyName": "attribute", "mapping": mapping},
            }),
        );
        // Each shape names its attribute itself.
        schemas.remove("QuotaAttribute");
    }
    // The quota a seat counts against, as `attribute=value`.
    for holder in ["Booking", "Attendee"] {
        if let Some(q) = schemas
            .get_mut(holder)
            .and_then(|h| h.pointer_mut("/properties/quota"))
        {
            q["pattern"] = json!(
                "^(gender=(male|female)|marital_status=(single|married|divorced|widowed)|frontline=(true|false))$"
            );
        }
    }
    // Fields the Rust types keep as strings but that take a fixed set of values.
    schemas.insert(
        "HistoryAction".into(),
        json!({"type": "string", "enum": ["create", "update", "retire"],
               "description": "What a change did to a site"}),
    );
    schemas.insert(
        "SettableStatus".into(),
        json!({"type": "string", "enum": ["open", "temporarily_closed"],
               "description": "The statuses a write gives a site (retire it with `DELETE /v1/sites/{id}`)"}),
    );
    if let Some(action) = schemas
        .get_mut("HistoryItem")
        .and_then(|h| h.pointer_mut("/properties/action"))
    {
        *action = json!({"$ref": "#/components/schemas/HistoryAction"});
    }
    if let Some(t) = schemas
        .get_mut("TokenResponse")
        .and_then(|h| h.pointer_mut("/properties/token_type"))
    {
        *t = json!({"type": "string", "enum": ["Bearer"], "description": "Always `Bearer`"});
    }
    for (name, not_null) in [
        ("SubscribeBody", &["types"][..]),
        ("SubscriptionKeys", &[]),
        ("HolidayYearBody", &["source"]),
        ("HolidayDayInput", &[]),
    ] {
        let Some(schema) = schemas.get_mut(name) else {
            continue;
        };
        schema["additionalProperties"] = json!(false);
        for field in not_null {
            let t = &mut schema["properties"][*field]["type"];
            if let Some(types) = t.as_array() {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                *t = kept.into_iter().next().unwrap_or(Value::Null);
            }
        }
    }
    notice_data(schemas);
    if let Some(holidays) = schemas.get_mut("HolidayYearBody") {
        // Every year has New Year's Day (422 naming holidays otherwise).
        holidays["properties"]["holidays"]["minItems"] = json!(1);
    }
    if let Some(name) = schemas
        .get_mut("PriorityGroup")
        .and_then(|g| g.pointer_mut("/properties/name"))
    {
        name["pattern"] = json!(one_line());
        name["minLength"] = json!(1);
        name["maxLength"] = json!(50);
    }
    if let Some(quiet) = schemas.get_mut("QuietHoursDoc") {
        for bound in ["from", "to"] {
            quiet["properties"][bound]["pattern"] = json!("^([01][0-9]|2[0-3]):[0-5][0-9]$");
        }
        quiet["description"] = json!("`from` and `to` differ (422 otherwise)");
    }
    if let Some(profile) = schemas.get_mut("Profile") {
        profile["additionalProperties"] = json!(false);
        for (field, max) in [
            ("display_name", 50),
            ("union_member_no", 32),
            ("employer", 100),
        ] {
            let f = &mut profile["properties"][field];
            f["minLength"] = json!(1);
            f["maxLength"] = json!(max);
            f["pattern"] = json!(one_line());
        }
        let year = &mut profile["properties"]["birth_year"];
        year["minimum"] = json!(1900);
        year["description"] = json!("1900 to this year");
    }
}

/// What a body without its own description is, by operation.
fn body_description(op: &str) -> String {
    match op {
        "request_code" => "The phone to text a sign-in code to".into(),
        "sign_in" => "The phone and the code texted to it".into(),
        "wechat_sign_in" => "`wx.login`'s code, and the phone-number button's code when asked for".into(),
        "wechat_subscriptions" => "What `wx.requestSubscribeMessage` answered: template ids accepted and rejected".into(),
        "check_in" => "A code scanned at the door, for this event".into(),
        "reject" => "Why the application is rejected (the applicant is told)".into(),
        "put_settings" => "Which notice types are muted, and the quiet hours (China time); absent fields stay as they are".into(),
        op => format!("The body of `{op}`"),
    }
}

/// The component name of an operation's field-by-field body: the operation
/// in CamelCase and `Body` (`create_event` → `CreateEventBody`); joining
/// and transferring name a union the same way, so they share one.
/// A whole, valid body for the writes whose fields depend on each other
/// (times in order, hours that parse), for the reference page and for
/// clients' tests. The site id is of the right form; a real one is the
/// caller's.
fn body_example(op: &str) -> Option<Value> {
    Some(match op {
        "create_event" => json!({
            "kind": "training", "site_id": "s000000000001", "title": "电动车安全骑行培训",
            "starts_at": "2030-06-01T09:00:00+08:00", "ends_at": "2030-06-01T11:00:00+08:00",
            "capacity": 40, "booking_opens_at": "2030-05-01T09:00:00+08:00",
            "booking_closes_at": "2030-05-31T18:00:00+08:00"
        }),
        "patch_event" => json!({"title": "电动车安全骑行培训（第二期）", "capacity": 60}),
        "create_site" => json!({
            "kind": "outdoor_station", "name": "泉城路环卫工人驿站", "address": "济南市历下区泉城路1号",
            "adcode": "370102", "lat": 36.66, "lon": 117.13,
            "opening_hours": "Mo-Fr 08:00-18:00; PH off",
            "amenities": ["drinking_water", "microwave", "phone_charging"]
        }),
        "patch_site" => json!({
            "opening_hours": "Mo-Su 07:00-20:00",
            "amenities": ["drinking_water", "ebike_charging"]
        }),
        _ => return None,
    })
}

fn body_name(op: &str) -> String {
    if matches!(op, "join" | "transfer") {
        return "UnionChoice".to_owned();
    }
    camel(op) + "Body"
}

/// `create_event` → `CreateEvent`.
fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

pub fn tighten(doc: &mut Value) {
    tighten_components(doc);
    let mut bodies = Vec::new();
    tighten_paths(doc, &mut bodies);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in bodies {
            schemas.insert(name, schema);
        }
    }
    always_present(doc);
    add_links(doc);
}

/// What a create's answer leads to: the operations its `id` (or another
/// field) is the path `id` of. Declared as OpenAPI links, so that a client
/// generator or a stateful tester follows a created thing to its reads and
/// changes.
const LINKS: &[(&str, &str, &[&str])] = &[
    (
        "create_site",
        "id",
        &[
            "site_detail",
            "patch_site",
            "retire_site",
            "history",
            "follow",
            "unfollow",
        ],
    ),
    (
        "create_event",
        "id",
        &[
            "event_detail",
            "patch_event",
            "book",
            "apply_for_draw",
            "attendees",
            "attendees_csv",
            "draw_record",
        ],
    ),
    (
        "book",
        "id",
        &["booking_or_ics", "booking_ics", "cancel", "accept"],
    ),
    ("book", "event_id", &["event_detail", "attendees"]),
    (
        "apply_for_draw",
        "id",
        &["get_application", "withdraw_application"],
    ),
    ("apply_for_draw", "event_id", &["draw_record"]),
    (
        "create_union",
        "id",
        &[
            "union_detail",
            "patch_union",
            "join_code",
            "rotate_join_code",
            "qr_svg",
            "applications",
            "stats",
        ],
    ),
    (
        "join",
        "id",
        &["membership", "approve", "reject", "transfer", "withdraw"],
    ),
    (
        "transfer",
        "id",
        &["membership", "approve", "reject", "withdraw"],
    ),
    ("subscribe", "id", &["unsubscribe"]),
];

fn add_links(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let op_id = op["operationId"].as_str().unwrap_or_default().to_owned();
            for (_, field, targets) in LINKS.iter().filter(|(from, ..)| *from == op_id) {
                // `event_detail` by the answer's id is `EventDetail`; by
                // another field, `EventDetailByEventId`.
                let via = match *field {
                    "id" => String::new(),
                    f => format!("By{}", camel(f)),
                };
                let Some(responses) = op["responses"].as_object_mut() else {
                    continue;
                };
                for (status, response) in responses.iter_mut() {
                    if !matches!(status.as_str(), "200" | "201") {
                        continue;
                    }
                    for target in *targets {
                        response["links"][format!("{}{via}", camel(target))] = json!({
                            "operationId": target,
                            "parameters": {"id": format!("$response.body#/{field}")},
                        });
                    }
                }
            }
        }
    }
}

/// The component names `value` refers to (`$ref`), at any depth.
fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| refs_in(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// Whether a property's schema admits `null`.
fn nullable(schema: &Value) -> bool {
    match &schema["type"] {
        Value::Array(types) => types.iter().any(|t| t == "null"),
        t => {
            *t == "null"
                || ["oneOf", "anyOf"].iter().any(|k| {
                    schema[*k]
                        .as_array()
                        .is_some_and(|alts| alts.iter().any(nullable))
                })
        }
    }
}

/// One shape per field in answers: a nullable field of a schema that only
/// answers (no request body uses it) is always sent, `null` when empty, so
/// it is required. Request bodies keep theirs optional: an absent field
/// there means "unchanged" or "none".
fn always_present(doc: &mut Value) {
    let mut in_requests = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for item in paths.values() {
            for op in item.as_object().into_iter().flat_map(|i| i.values()) {
                refs_in(&op["requestBody"], &mut in_requests);
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = in_requests.pop() {
        if seen.insert(name.clone()) {
            refs_in(&doc["components"]["schemas"][&name], &mut in_requests);
        }
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        if seen.contains(name) {
            continue;
        }
        let Some(props) = schema["properties"].as_object() else {
            continue;
        };
        let mut required: Vec<Value> = schema["required"].as_array().cloned().unwrap_or_default();
        for (field, s) in props {
            if nullable(s) && !required.iter().any(|r| r == field) {
                required.push(json!(field));
            }
        }
        schema["required"] = json!(required);
    }
}

fn tighten_paths(doc: &mut Value, bodies: &mut Vec<(String, Value)>) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let op_id = op
                .get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let has_params = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params.iter_mut() {
                    let name = p["name"].as_str().unwrap_or_default().to_owned();
                    let located = p["in"].as_str().unwrap_or_default().to_owned();
                    if located == "path" && name == "id" {
                        p["schema"] = match id_prefix(path) {
                            Some(prefix) => {
                                json!({"type": "string", "pattern": id_pattern(prefix)})
                            }
                            None => json!({"type": "integer", "format": "int64", "minimum": 1}),
                        };
                    } else if let Some(s) = param_schema(&op_id, &name) {
                        if s["type"] == "array" {
                            p["style"] = json!("form");
                            p["explode"] = json!(false);
                        }
                        p["schema"] = s;
                    }
                }
            }
            // A conditional GET says which header makes it conditional.
            if op.get("responses").and_then(|r| r.get("304")).is_some() {
                let params = op
                    .entry("parameters")
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("parameters are a list");
                if !params.iter().any(|p| p["name"] == "If-None-Match") {
                    params.push(json!({
                        "name": "If-None-Match", "in": "header", "required": false,
                        "description": "The ETag of the copy held: 304 (no body) when it is still current",
                        "schema": {"type": "string"}
                    }));
                }
            }
            let has_body = op.contains_key("requestBody");
            if let Some(schema) = body_schema(&op_id) {
                // A named component, so a generated client has one class per body.
                let name = body_name(&op_id);
                let reference = json!({"$ref": format!("#/components/schemas/{name}")});
                let mut schema = schema;
                if schema.get("description").is_none() {
                    schema["description"] = json!(body_description(&op_id));
                }
                bodies.push((name, schema));
                let mut content = json!({"schema": reference});
                if let Some(example) = body_example(&op_id) {
                    content["example"] = example;
                }
                op.insert(
                    "requestBody".into(),
                    json!({"content": {"application/json": content}, "required": true}),
                );
            }
            if has_params || has_body {
                add_response(
                    op,
                    "400",
                    problem("A parameter or the body is malformed (problem+json naming it)"),
                );
            }
            if path.contains('{') {
                add_response(
                    op,
                    "404",
                    problem("No such resource (also a path id not of its form)"),
                );
            }
            if has_body {
                add_response(op, "413", problem("The body is larger than 64 KiB"));
                add_response(
                    op,
                    "422",
                    problem("A body field is not acceptable (problem+json naming it)"),
                );
            }
            let secured = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            // Public operations say so: no credentials needed.
            op.entry("security").or_insert_with(|| json!([]));
            if secured {
                let mut r = problem("No valid bearer token");
                r["headers"] = json!({"WWW-Authenticate": {"schema": {"type": "string"}}});
                add_response(op, "401", r);
            }
            if matches!(method.as_str(), "post" | "put" | "patch" | "delete") {
                add_response(
                    op,
                    "429",
                    retry_after(problem(
                        "Too many requests; retry after Retry-After seconds",
                    )),
                );
            }
            // The HTTP layer's own refusals, before any handler: no body.
            add_response(
                op,
                "414",
                json!({"description": "The request line is longer than the server reads (no body; the connection closes)"}),
            );
            add_response(
                op,
                "431",
                json!({"description": "The request's headers are larger than the server reads (no body; the connection closes)"}),
            );
            add_response(
                op,
                "503",
                retry_after(problem(
                    "Overloaded, timed out or the database is busy; retry after Retry-After seconds",
                )),
            );
        }
    }
}

/// A notice's `data` by its type: one schema per shape, told apart by
/// `data.type` (a discriminator), which the inbox adds to every notice's data.
fn notice_data(schemas: &mut serde_json::Map<String, Value>) {
    let id = |prefix: &str, what: &str| json!({"type": "string", "pattern": id_pattern(prefix), "description": what});
    let time = |what: &str| json!({"type": "string", "format": "date-time", "description": what});
    let event = id("e", "The event");
    let booking = id("b", "The booking");
    // (description, the notice types of this shape, fields, required): one
    // schema per type, `{Type}Data`, its `type` a constant.
    type Shape<'a> = (&'a str, &'a [&'a str], Value, &'a [&'a str]);
    let shapes: [Shape; 9] = [
        (
            "A booking's news: confirmed, promoted from the waitlist, or its offer lapsed.",
            &["booking_confirmed", "waitlist_promoted", "offer_lapsed"],
            json!({"event_id": event, "booking_id": booking}),
            &["event_id", "booking_id"],
        ),
        (
            "A seat offered: accept it before `offer_expires_at` (`drawn`: by a draw).",
            &["seat_offered"],
            json!({"event_id": event, "booking_id": booking,
                   "offer_expires_at": time("The offer's deadline"),
                   "drawn": {"type": "boolean", "description": "The offer is a draw's"}}),
            &["event_id", "booking_id", "offer_expires_at"],
        ),
        (
            "An event was cancelled: the booking it cancelled, or the application of a draw that will not be made.",
            &["event_cancelled"],
            json!({"event_id": event, "booking_id": booking,
                   "application_id": id("a", "The application")}),
            &["event_id"],
        ),
        (
            "An event the person holds a seat for starts soon.",
            &["event_reminder"],
            json!({"event_id": event, "booking_id": booking, "starts_at": time("When it starts")}),
            &["event_id", "booking_id", "starts_at"],
        ),
        (
            "An event moved in time or place: its times now.",
            &["event_changed"],
            json!({"event_id": event, "starts_at": time("When it starts now"),
                   "ends_at": time("When it ends now")}),
            &["event_id", "starts_at", "ends_at"],
        ),
        (
            "A followed site closed, reopened or changed its hours.",
            &["site_hours_changed", "site_closed", "site_reopened"],
            json!({"site_id": id("s", "The site")}),
            &["site_id"],
        ),
        (
            "An application to a union was approved: the member number.",
            &["membership_approved"],
            json!({"membership_id": id("m", "The membership"),
                   "member_no": {"type": "string", "description": "The member number"}}),
            &["membership_id", "member_no"],
        ),
        (
            "An application to a union was rejected, and why.",
            &["membership_rejected"],
            json!({"membership_id": id("m", "The membership"),
                   "reason": {"type": "string", "description": "The union's reason"}}),
            &["membership_id", "reason"],
        ),
        (
            "A draw did not place the person: waiting (`rank`, `waitlist_position`) or not eligible.",
            &["draw_result"],
            json!({"event_id": event, "application_id": id("a", "The application"),
                   "result": {"type": "string", "enum": ["waiting", "not_eligible"], "description": "What the draw made of the application"},
                   "rank": {"type": "integer", "minimum": 1, "description": "The place the draw gave"},
                   "waitlist_position": {"type": "integer", "minimum": 1, "description": "The place on the waitlist"}}),
            &["event_id", "application_id", "result"],
        ),
    ];
    let mut refs = Vec::new();
    let mut mapping = serde_json::Map::new();
    for (description, types, properties, required) in shapes {
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, "type");
        for t in types {
            let name = format!("{}Data", camel(t));
            let reference = format!("#/components/schemas/{name}");
            let mut properties = properties.clone();
            properties["type"] =
                json!({"type": "string", "const": t, "description": "The notice's type"});
            schemas.insert(
                name,
                json!({"type": "object", "description": description,
                       "properties": properties, "required": required}),
            );
            mapping.insert((*t).into(), json!(reference));
            refs.push(json!({"$ref": reference}));
        }
    }
    if let Some(data) = schemas
        .get_mut("NotificationDoc")
        .and_then(|n| n.pointer_mut("/properties/data"))
    {
        *data = json!({
            "description": "What the notice is about, by its type (`data.type`, the notice's own `type`)",
            "oneOf": refs,
            "discriminator": {"propertyName": "type", "mapping": mapping},
        });
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((path.clone(), method.clone(), op.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_operation_states_its_cross_cutting_answers() {
        let doc = exact(&crate::http::ApiDoc::openapi());
        let ops = operations(&doc);
        assert!(ops.len() > 50, "{}", ops.len());
        for (path, method, op) in ops {
            let at = format!("{method} {path}");
            let responses = &op["responses"];
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{at}"
            );
            assert!(
                responses["414"].is_object() && responses["431"].is_object(),
                "{at}"
            );
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(
                responses["401"].is_object(),
                secured || path == "/v1/auth/token",
                "{at}"
            );
            let write = matches!(method.as_str(), "post" | "put" | "patch" | "delete");
            assert_eq!(
                responses["429"].is_object(),
                write || path == "/v1/auth/otp",
                "{at}"
            );
            if op["requestBody"].is_object() {
                for status in ["400", "413", "422"] {
                    assert!(responses[status].is_object(), "{at}: {status}");
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let schema = &p["schema"];
                match p["name"].as_str().unwrap() {
                    "crs" => {
                        assert_eq!(schema["$ref"], "#/components/schemas/Crs", "{at}");
                        assert_eq!(
                            doc["components"]["schemas"]["Crs"]["enum"],
                            json!(["wgs84", "gcj02", "bd09"])
                        );
                    }
                    "id" if p["in"] == "path" => {
                        assert!(responses["404"].is_object(), "{at}");
                        assert!(
                            schema["pattern"].is_string() || schema["minimum"] == 1,
                            "{at}: {schema}"
                        );
                    }
                    "limit" => assert!(
                        schema["minimum"] == 1 && schema["maximum"].is_number(),
                        "{at}"
                    ),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn links_lead_to_operations_with_an_id_and_answers_are_whole() {
        let doc = exact(&crate::http::ApiDoc::openapi());
        let ops = operations(&doc);
        let path_of = |id: &str| {
            ops.iter()
                .find(|(_, _, op)| op["operationId"] == id)
                .map(|(path, ..)| path.clone())
        };
        let mut links = 0;
        for (path, method, op) in &ops {
            for (status, response) in op["responses"].as_object().unwrap() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    let to = path_of(target)
                        .unwrap_or_else(|| panic!("{method} {path} {status} {name}: no {target}"));
                    assert!(to.contains("{id}"), "{name}: {to}");
                    let field = link["parameters"]["id"].as_str().unwrap();
                    let field = field.strip_prefix("$response.body#/").unwrap();
                    // The field is in the answer's schema.
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    let schema = schema.as_str().unwrap().rsplit('/').next().unwrap();
                    assert!(
                        doc["components"]["schemas"][schema]["properties"][field].is_object(),
                        "{name}: {schema}.{field}"
                    );
                    links += 1;
                }
            }
        }
        assert!(links >= 30, "{links}");
        // Nullable fields of answers are always sent, so required.
        let me = &doc["components"]["schemas"]["Me"];
        assert!(
            me["required"]
                .as_array()
                .unwrap()
                .contains(&json!("wechat")),
            "{me}"
        );
        let booking = &doc["components"]["schemas"]["Booking"];
        assert!(
            booking["required"]
                .as_array()
                .unwrap()
                .contains(&json!("checkin_code"))
        );
        // A body's nullable fields stay optional (absent: unchanged).
        let patch = &doc["components"]["schemas"]["PatchSiteBody"];
        assert!(patch["required"].as_array().unwrap().is_empty(), "{patch}");
    }

    #[test]
    fn id_patterns_admit_ids_and_not_zero() {
        // Each alternative is `0{k}`, one non-zero digit, then 11-k digits:
        // an id's leading zeros choose exactly one of them, the all-zero
        // string none.
        let pattern = id_pattern("s");
        for k in 0..12 {
            assert!(
                pattern.contains(&format!(
                    "0{{{k}}}[1-9a-hjkmnp-tv-z][0-9a-hjkmnp-tv-z]{{{}}}",
                    11 - k
                )),
                "{pattern}"
            );
        }
        assert!(
            pattern.starts_with("^s(") && pattern.ends_with(")$"),
            "{pattern}"
        );
        let id = crate::domain::site::SiteId::random().to_string();
        let digits = &id[1..];
        let zeros = digits.bytes().take_while(|b| *b == b'0').count();
        assert!(zeros < 12, "{id}");
        assert!(!digits[zeros..].starts_with('0'));
    }
}
