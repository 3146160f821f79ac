//! The Astandes device API (`/api/v1/...`): authentication, devices, pairing codes, messages
//! through a device or a random attached one, bulk sends, lists, deletion (505) and expiry
//! (501), and isolation between accounts. The seed's curl examples are in `astandes_seed`.

use std::collections::BTreeSet;
use std::time::Duration;

use pigeon::services::accounts;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, poll, spawn, spawn_with};

const NUMBER: &str = "+5511999999999";
/// A well-formed id that no device nor message has.
const UNKNOWN_ID: &str = "0000000000000000000f4240";
/// The seed's ids: 96-bit MongoDB ObjectIds, which Pigeon never issued.
pub(crate) const FOREIGN_ID: &str = "54d103df29ba4e502b2e4e9a";

const DEVICE_KEYS: [&str; 10] = [
    "_id",
    "firstname",
    "lastname",
    "phone",
    "email",
    "description",
    "notification",
    "created",
    "updated",
    "attached",
];
const MESSAGE_KEYS: [&str; 14] = [
    "_id",
    "device",
    "phone",
    "destination",
    "text",
    "identifier",
    "maxtries",
    "notification",
    "debug",
    "status",
    "history",
    "ttl",
    "created",
    "updated",
];

// ---------------------------------------------------------------------------------------------
// Calling the API

async fn call(t: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> Answer {
    let mut request = t
        .client
        .request(method, t.url(path))
        .header("Authorization", format!("tokenv1 {key}"));
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    answer(request).await
}

pub(crate) async fn get(t: &TestApp, path: &str) -> Answer {
    call(t, &t.key, Method::GET, path, None).await
}

async fn post(t: &TestApp, path: &str, body: &Value) -> Answer {
    call(t, &t.key, Method::POST, path, Some(body)).await
}

async fn delete(t: &TestApp, path: &str) -> Answer {
    call(t, &t.key, Method::DELETE, path, None).await
}

/// A request with the given `Authorization` header (none with `None`) and raw body.
async fn raw(
    t: &TestApp,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> Answer {
    let mut request = t.client.request(method, t.url(path)).body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    answer(request).await
}

/// Creates a device of the account of `key`; returns the device object.
async fn device_as(t: &TestApp, key: &str, fields: Value) -> Value {
    let a = call(t, key, Method::POST, "/api/v1/device", Some(&fields)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_device(&a.body);
    a.body
}

pub(crate) async fn device(t: &TestApp, fields: Value) -> Value {
    device_as(t, &t.key, fields).await
}

/// Sends one message as the account of `key`; returns the message object.
async fn send_as(t: &TestApp, key: &str, body: Value) -> Value {
    let a = call(t, key, Method::POST, "/api/v1/message", Some(&body)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_message(&a.body);
    a.body
}

async fn send(t: &TestApp, body: Value) -> Value {
    send_as(t, &t.key, body).await
}

/// Marks a device attached in the database, as pairing does.
async fn mark_attached(t: &TestApp, device: &Value) {
    t.sql_write(&format!(
        "UPDATE devices SET attached = 1 WHERE id = {}",
        int_id(device)
    ))
    .await;
}

/// Marks a device attached and its agent connected (its phone available), as pairing and the
/// device connection do: a candidate of `{"distribute": "random"}`.
pub(crate) async fn mark_online(t: &TestApp, device: &Value) {
    mark_attached(t, device).await;
    t.sql_write(&format!(
        "UPDATE phones SET status = 'available' WHERE id = (SELECT phone_id FROM devices WHERE id = {})",
        int_id(device)
    ))
    .await;
}

async fn stored_messages(t: &TestApp) -> i64 {
    t.sql("SELECT COUNT(*) AS n FROM messages").await[0]["n"]
        .as_i64()
        .expect("count")
}

// ---------------------------------------------------------------------------------------------
// Shapes

pub(crate) fn id(v: &Value) -> &str {
    v["_id"].as_str().unwrap_or_else(|| panic!("no _id in {v}"))
}

/// The integer id behind a 24-hex `_id`.
fn int_id(v: &Value) -> i64 {
    i64::from_str_radix(id(v), 16).unwrap_or_else(|_| panic!("_id is not hex in {v}"))
}

pub(crate) fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_oid(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {v}"));
    assert!(
        s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a 24-hex id: {s}"
    );
}

/// An ISO-8601 UTC date with milliseconds and `Z`: `2015-02-03T17:22:39.506Z`.
fn assert_iso(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("date is not a string: {v}"));
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert!(
        s.len() == shape.len()
            && s.chars().zip(shape.chars()).all(|(c, want)| match want {
                'd' => c.is_ascii_digit(),
                _ => c == want,
            }),
        "not an ISO date with milliseconds and Z: {s}"
    );
}

/// Milliseconds since the epoch of an ISO date.
pub(crate) fn ms(v: &Value) -> i64 {
    assert_iso(v);
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|| panic!("not a date: {v}"))
}

pub(crate) fn assert_device(d: &Value) {
    assert_eq!(keys(d), BTreeSet::from(DEVICE_KEYS), "{d}");
    assert_oid(&d["_id"]);
    for k in [
        "firstname",
        "lastname",
        "phone",
        "email",
        "description",
        "notification",
    ] {
        assert!(d[k].is_string(), "{k} is not a string in {d}");
    }
    assert!(d["attached"].is_boolean(), "{d}");
    assert!(ms(&d["updated"]) >= ms(&d["created"]), "{d}");
}

pub(crate) fn assert_message(m: &Value) {
    assert_eq!(keys(m), BTreeSet::from(MESSAGE_KEYS), "{m}");
    assert_oid(&m["_id"]);
    assert_device(&m["device"]);
    assert_eq!(m["phone"], m["destination"], "{m}");
    assert_eq!(m["debug"], json!(false), "{m}");
    assert!(
        m["identifier"].is_string() && m["notification"].is_string(),
        "{m}"
    );
    assert!(m["maxtries"].is_i64() && m["status"].is_u64(), "{m}");
    for date in ["created", "updated", "ttl"] {
        assert_iso(&m[date]);
    }
    let history = m["history"].as_array().expect("history");
    assert!(!history.is_empty(), "{m}");
    for h in history {
        assert_eq!(keys(h), BTreeSet::from(["status", "date"]), "{m}");
        assert_iso(&h["date"]);
    }
    assert_eq!(
        history.last().map(|h| &h["status"]),
        Some(&m["status"]),
        "the last history entry is the status: {m}"
    );
}

pub(crate) fn statuses(m: &Value) -> Vec<u64> {
    m["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["status"].as_u64().expect("status"))
        .collect()
}

/// An error answer: `status` and a body that is exactly `{"error": "<some text>"}`.
#[track_caller]
fn assert_error(a: &Answer, status: u16) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(keys(&a.body), BTreeSet::from(["error"]), "{}", a.text);
    assert!(
        a.body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        a.text
    );
}

fn envelope_ids(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        keys(&a.body),
        BTreeSet::from(["skip", "limit", "sort", "total", "length", "result"]),
        "{}",
        a.text
    );
    let result = a.body["result"].as_array().expect("result");
    assert_eq!(a.body["length"], json!(result.len()), "{}", a.text);
    result.iter().map(|v| id(v).to_string()).collect()
}

async fn sleep_ms(n: u64) {
    tokio::time::sleep(Duration::from_millis(n)).await;
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test]
async fn auth_reads_the_token_leniently() {
    let t = spawn().await;
    for header in [
        format!("tokenv1 {}", t.key),
        format!("tokenv1  {}", t.key),
        format!("TokenV1 {}", t.key),
        format!("TOKENV1\t{} ", t.key),
        format!("  tokenv1   {}   ", t.key),
    ] {
        let a = raw(&t, Method::GET, "/api/v1/auth", Some(&header), "").await;
        assert_eq!(a.status, 200, "{header:?}: {}", a.text);
        assert_eq!(a.body["ok"], json!(true), "{}", a.text);
        assert_eq!(a.body["email"], "alice@example.com");
        assert_oid(&a.body["_id"]);
    }
}

#[tokio::test]
async fn missing_or_bad_tokens_are_401() {
    let t = spawn().await;
    let other = t.other_user("bob@example.com").await;
    for header in [
        None,
        Some(String::new()),
        Some(t.key.clone()),
        Some("tokenv1".to_string()),
        Some(format!("Bearer {}", t.key)),
        Some(format!("tokenv2 {}", t.key)),
        Some(format!("tokenv1 {}x", t.key)),
        Some(format!("tokenv1 {} {other}", t.key)),
        Some("tokenv1 0123456789abcdef0123456789abcdef".to_string()),
    ] {
        for (method, path, body) in [
            (Method::GET, "/api/v1/auth", ""),
            (Method::GET, "/api/v1/device", ""),
            (Method::POST, "/api/v1/device", "{}"),
            (Method::GET, "/api/v1/message", ""),
            (
                Method::POST,
                "/api/v1/message",
                r#"{"device":{"distribute":"random"},"phone":"+5511999999999","text":"hi"}"#,
            ),
        ] {
            let a = raw(&t, method.clone(), path, header.as_deref(), body).await;
            assert_error(&a, 401);
        }
    }
    // RaspiSMS's header does not open the Astandes API.
    let a = answer(
        t.client
            .get(t.url("/api/v1/auth"))
            .header("X-Api-Key", &t.key),
    )
    .await;
    assert_error(&a, 401);
    assert_eq!(get(&t, "/api/v1/device").await.body["total"], json!(0));
}

#[tokio::test]
async fn suspended_account_is_403() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    accounts::set_status(&t.app, "alice@example.com", "suspended")
        .await
        .expect("suspend");
    assert_error(&get(&t, "/api/v1/auth").await, 403);
    assert_error(&get(&t, "/api/v1/device").await, 403);
    let a = post(
        &t,
        "/api/v1/message",
        &json!({"device": id(&d), "phone": NUMBER, "text": "hi"}),
    )
    .await;
    assert_error(&a, 403);
    assert_eq!(stored_messages(&t).await, 0);
    accounts::set_status(&t.app, "alice@example.com", "active")
        .await
        .expect("activate");
    assert_eq!(get(&t, "/api/v1/auth").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Devices

#[tokio::test]
async fn device_create_get_update_delete() {
    let t = spawn().await;
    let fields = json!({
        "firstname": "Demo",
        "lastname": "Astandes",
        "phone": "+551181169093",
        "email": "demo@example.com",
        "description": "Device para demonstração",
        "notification": "https://astandes.com.br",
    });
    let d = device(&t, fields.clone()).await;
    for (k, v) in fields.as_object().expect("fields") {
        assert_eq!(&d[k], v, "{k}");
    }
    assert_eq!(d["attached"], json!(false));
    assert_eq!(d["created"], d["updated"]);
    let path = format!("/api/v1/device/{}", id(&d));
    let got = get(&t, &path).await;
    assert_eq!((got.status, &got.body), (200, &d), "{}", got.text);

    // Nothing given: every field is an empty string.
    let empty = device(&t, json!({})).await;
    for k in [
        "firstname",
        "lastname",
        "phone",
        "email",
        "description",
        "notification",
    ] {
        assert_eq!(empty[k], "", "{k}");
    }
    assert_ne!(id(&empty), id(&d));

    // PUT and PATCH change what they are given, keep the rest, and move `updated`.
    sleep_ms(5).await;
    let put = call(
        &t,
        &t.key,
        Method::PUT,
        &path,
        Some(&json!({"firstname": "Novo", "phone": "+5511988887777"})),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_device(&put.body);
    assert_eq!(
        (&put.body["firstname"], &put.body["phone"]),
        (&json!("Novo"), &json!("+5511988887777"))
    );
    assert_eq!(put.body["lastname"], "Astandes");
    assert_eq!(put.body["_id"], d["_id"]);
    assert_eq!(put.body["created"], d["created"]);
    assert!(ms(&put.body["updated"]) > ms(&d["updated"]), "{}", put.text);
    sleep_ms(5).await;
    let patch = call(
        &t,
        &t.key,
        Method::PATCH,
        &path,
        Some(&json!({"description": "", "notification": "http://127.0.0.1:9/in"})),
    )
    .await;
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(patch.body["description"], "");
    assert_eq!(patch.body["notification"], "http://127.0.0.1:9/in");
    assert_eq!(patch.body["firstname"], "Novo");
    assert!(ms(&patch.body["updated"]) > ms(&put.body["updated"]));
    assert_eq!(get(&t, &path).await.body, patch.body);

    let gone = delete(&t, &path).await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(gone.body, patch.body);
    assert_error(&get(&t, &path).await, 404);
    assert_error(&delete(&t, &path).await, 404);
    let put = call(&t, &t.key, Method::PUT, &path, Some(&json!({}))).await;
    assert_error(&put, 404);
    assert_eq!(envelope_ids(&get(&t, "/api/v1/device").await), [id(&empty)]);
}

#[tokio::test]
async fn device_body_sent_as_a_form_is_read_as_json() {
    let t = spawn().await;
    let a = answer(
        t.client
            .post(t.url("/api/v1/device"))
            .header("Authorization", format!("tokenv1 {}", t.key))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(r#"{"phone": "+551181169093", "firstname": "Demo"}"#),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_device(&a.body);
    assert_eq!(a.body["phone"], "+551181169093");
    assert_eq!(a.body["firstname"], "Demo");
}

#[tokio::test]
async fn device_bad_input_is_400() {
    let t = spawn().await;
    let long = "x".repeat(1001);
    for body in [
        String::new(),
        "not json".to_string(),
        "[]".to_string(),
        r#""phone""#.to_string(),
        r#"{"phone": "+551181169093""#.to_string(),
        r#"{"firstname": {"a": 1}}"#.to_string(),
        r#"{"email": ["a"]}"#.to_string(),
        r#"{"notification": "ftp://example.com"}"#.to_string(),
        r#"{"notification": "not a url"}"#.to_string(),
        format!(r#"{{"description": "{long}"}}"#),
    ] {
        let a = raw(
            &t,
            Method::POST,
            "/api/v1/device",
            Some(&format!("tokenv1 {}", t.key)),
            &body,
        )
        .await;
        assert_error(&a, 400);
    }
    assert_eq!(get(&t, "/api/v1/device").await.body["total"], json!(0));

    let d = device(&t, json!({"firstname": "Demo"})).await;
    let path = format!("/api/v1/device/{}", id(&d));
    for method in [Method::PUT, Method::PATCH] {
        for body in ["nope", r#"{"lastname": true}"#, r#"{"notification": "x"}"#] {
            let a = raw(
                &t,
                method.clone(),
                &path,
                Some(&format!("tokenv1 {}", t.key)),
                body,
            )
            .await;
            assert_error(&a, 400);
        }
    }
    assert_eq!(get(&t, &path).await.body, d);
}

#[tokio::test]
async fn device_ids_bad_or_unknown() {
    let t = spawn().await;
    device(&t, json!({})).await;
    for bad in ["xyz", FOREIGN_ID, "000000000000000000000000", "1"] {
        let path = format!("/api/v1/device/{bad}");
        assert_error(&get(&t, &path).await, 400);
        assert_error(&delete(&t, &path).await, 400);
        for method in [Method::PUT, Method::PATCH] {
            let a = call(&t, &t.key, method, &path, Some(&json!({}))).await;
            assert_error(&a, 400);
        }
        let a = post(&t, "/api/v1/attach", &json!({ "device": bad })).await;
        assert_error(&a, 400);
    }
    let path = format!("/api/v1/device/{UNKNOWN_ID}");
    assert_error(&get(&t, &path).await, 404);
    assert_error(&delete(&t, &path).await, 404);
    for method in [Method::PUT, Method::PATCH] {
        let a = call(&t, &t.key, method, &path, Some(&json!({}))).await;
        assert_error(&a, 404);
    }
    let a = post(&t, "/api/v1/attach", &json!({ "device": UNKNOWN_ID })).await;
    assert_error(&a, 404);
    assert_error(&post(&t, "/api/v1/attach", &json!({})).await, 400);
    assert_eq!(get(&t, "/api/v1/device").await.body["total"], json!(1));
}

#[tokio::test]
async fn device_list_envelope_sort_and_paging() {
    let t = spawn().await;
    let mut created = Vec::new();
    for name in ["bruno", "ana", "carla"] {
        created.push(device(&t, json!({ "firstname": name })).await);
        sleep_ms(3).await;
    }
    let [b, a, c] = [0, 1, 2].map(|i| id(&created[i]));

    let all = get(&t, "/api/v1/device").await;
    assert_eq!(envelope_ids(&all), [c, a, b], "newest update first");
    assert_eq!(
        (
            &all.body["skip"],
            &all.body["limit"],
            &all.body["sort"],
            &all.body["total"]
        ),
        (&json!(0), &json!(100), &json!("-updated"), &json!(3))
    );
    for r in all.body["result"].as_array().expect("result") {
        assert_device(r);
    }

    for (sort, expected) in [
        ("updated", [b, a, c]),
        ("created", [b, a, c]),
        ("-created", [c, a, b]),
        ("_id", [b, a, c]),
        ("-_id", [c, a, b]),
        ("firstname", [a, b, c]),
        ("-firstname", [c, b, a]),
    ] {
        let got = get(&t, &format!("/api/v1/device?sort={sort}")).await;
        assert_eq!(envelope_ids(&got), expected, "sort={sort}");
        assert_eq!(got.body["sort"], sort);
    }

    let page = get(&t, "/api/v1/device?sort=firstname&skip=1&limit=1").await;
    assert_eq!(envelope_ids(&page), [b]);
    assert_eq!(
        (
            &page.body["skip"],
            &page.body["limit"],
            &page.body["total"],
            &page.body["length"]
        ),
        (&json!(1), &json!(1), &json!(3), &json!(1))
    );
    let past = get(&t, "/api/v1/device?skip=10").await;
    assert!(envelope_ids(&past).is_empty());
    assert_eq!(past.body["total"], json!(3));

    // Updating a device moves it to the front of the default order.
    let patched = call(
        &t,
        &t.key,
        Method::PATCH,
        &format!("/api/v1/device/{b}"),
        Some(&json!({"lastname": "x"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(envelope_ids(&get(&t, "/api/v1/device").await), [b, c, a]);

    for bad in [
        "sort=phone",
        "sort=-nope",
        "sort=status",
        "skip=abc",
        "limit=ten",
        "attached=maybe",
        "created_start=yesterday",
        "updated_stop=2015-13-45T00:00:00Z",
    ] {
        assert_error(&get(&t, &format!("/api/v1/device?{bad}")).await, 400);
    }
}

#[tokio::test]
async fn device_list_filters_by_dates_and_attached() {
    let t = spawn().await;
    let mut created = Vec::new();
    for name in ["one", "two", "three"] {
        created.push(device(&t, json!({ "firstname": name })).await);
        sleep_ms(5).await;
    }
    let [one, two, three] = [0, 1, 2].map(|i| id(&created[i]));
    let date = |i: usize, k: &str| created[i][k].as_str().expect("date").to_string();

    let list = |query: String| {
        let t = &t;
        async move { envelope_ids(&get(t, &format!("/api/v1/device?sort=_id&{query}")).await) }
    };
    assert_eq!(
        list(format!("created_start={}", date(1, "created"))).await,
        [two, three]
    );
    assert_eq!(
        list(format!("created_stop={}", date(1, "created"))).await,
        [one, two]
    );
    assert_eq!(
        list(format!(
            "created_start={}&created_stop={}",
            date(1, "created"),
            date(1, "created")
        ))
        .await,
        [two]
    );
    assert_eq!(
        list("created_start=2100-01-01T00:00:00.000Z".into()).await,
        Vec::<String>::new()
    );
    assert_eq!(
        list("created_stop=2015-02-03T17:22:39.506Z".into()).await,
        Vec::<String>::new()
    );

    sleep_ms(5).await;
    let patched = call(
        &t,
        &t.key,
        Method::PATCH,
        &format!("/api/v1/device/{one}"),
        Some(&json!({"email": "one@example.com"})),
    )
    .await;
    let since = patched.body["updated"]
        .as_str()
        .expect("updated")
        .to_string();
    assert_eq!(list(format!("updated_start={since}")).await, [one]);
    assert_eq!(
        list(format!("updated_stop={}", date(2, "updated"))).await,
        [two, three]
    );

    assert_eq!(list("attached=false".into()).await, [one, two, three]);
    assert!(list("attached=true".into()).await.is_empty());
    mark_attached(&t, &created[1]).await;
    assert_eq!(list("attached=true".into()).await, [two]);
    assert_eq!(list("attached=false".into()).await, [one, three]);
    let got = get(&t, "/api/v1/device?attached=true").await;
    assert_eq!(got.body["total"], json!(1));
    assert_eq!(got.body["result"][0]["attached"], json!(true));
    assert_eq!(
        envelope_ids(&get(&t, "/api/v1/device?sort=-attached").await)[0],
        two
    );
}

#[tokio::test]
async fn attach_gives_a_seven_digit_code_for_15_minutes() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Demo"})).await;
    let a = post(&t, "/api/v1/attach", &json!({ "device": id(&d) })).await;
    assert!(a.status == 200 || a.status == 201, "{}", a.text);
    assert_eq!(
        keys(&a.body),
        BTreeSet::from(["expires", "created", "code", "device", "_id"]),
        "{}",
        a.text
    );
    let code = a.body["code"].as_str().expect("the code is a string");
    assert!(
        code.len() == 7 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    assert_eq!(
        ms(&a.body["expires"]) - ms(&a.body["created"]),
        15 * 60 * 1000
    );
    let now = jiff::Timestamp::now().as_millisecond();
    assert!((ms(&a.body["created"]) - now).abs() < 5_000, "{}", a.text);
    assert_oid(&a.body["_id"]);
    assert_eq!(a.body["device"], d);
    assert_eq!(a.body["device"]["attached"], json!(false));

    // Another code for the same device is another pairing code.
    let again = post(&t, "/api/v1/attach", &json!({ "device": id(&d) })).await;
    assert_ne!(again.body["_id"], a.body["_id"]);
    // The code is stored as a digest only.
    let rows = t.sql("SELECT code_digest FROM pairing_codes").await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r["code_digest"].as_str().is_some_and(|c| !c.contains(code))),
        "{rows:?}"
    );
    // Still not attached: only the phone's app redeems the code.
    assert_eq!(
        get(&t, &format!("/api/v1/device/{}", id(&d))).await.body["attached"],
        json!(false)
    );

    for body in ["", "nope", "[]", r#"{"device": {"x": 1}}"#] {
        let a = raw(
            &t,
            Method::POST,
            "/api/v1/attach",
            Some(&format!("tokenv1 {}", t.key)),
            body,
        )
        .await;
        assert_error(&a, 400);
    }
}

#[tokio::test]
async fn the_device_phone_is_an_unavailable_agent_phone_in_raspisms() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Demo"})).await;
    let phones = t.list("phone").await;
    assert_eq!(phones.len(), 1, "{phones:?}");
    assert_eq!(phones[0]["adapter"], "agent");
    assert_eq!(phones[0]["status"], "unavailable");

    for adapter in ["agent", "adapters\\PigeonAgentAdapter"] {
        let a = t
            .post("/api/phone/", &[("name", "mine"), ("adapter", adapter)])
            .await;
        assert_eq!((a.status, a.error_code()), (400, 2), "{}", a.text);
    }
    assert_eq!(t.list("phone").await.len(), 1);

    // Another account does not see it; deleting the device removes it.
    let bob = t.other_user("bob@example.com").await;
    let theirs = t.get_as(&bob, "/api/list/phone/").await;
    assert_eq!(theirs.ok(), &json!([]), "{}", theirs.text);
    assert_eq!(
        delete(&t, &format!("/api/v1/device/{}", id(&d)))
            .await
            .status,
        200
    );
    assert!(t.list("phone").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Messages

#[tokio::test]
async fn message_through_a_device() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Demo", "phone": "+551181169093"})).await;
    let m = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "Hello world!"}),
    )
    .await;
    assert_eq!(m["device"], d);
    assert_eq!(m["phone"], NUMBER);
    assert_eq!(m["destination"], NUMBER);
    assert_eq!(m["text"], "Hello world!");
    assert_eq!(m["identifier"], "");
    assert_eq!(m["maxtries"], json!(1));
    assert_eq!(m["notification"], "");
    assert_eq!(m["status"], json!(201));
    assert_eq!(statuses(&m), [201]);
    let created = ms(&m["created"]);
    let now = jiff::Timestamp::now().as_millisecond();
    assert!((created - now).abs() < 5_000, "{m}");
    // The default lifetime is 24 hours, given as an absolute date.
    let ttl = ms(&m["ttl"]) - created;
    assert!(
        (ttl - 24 * 3600 * 1000).abs() < 2_000,
        "ttl {ttl} ms after creation: {m}"
    );

    let got = get(&t, &format!("/api/v1/message/{}", id(&m))).await;
    assert_eq!((got.status, &got.body), (200, &m), "{}", got.text);
}

#[tokio::test]
async fn a_message_shows_its_device_as_it_is_at_once_after_a_change_and_none_once_deleted() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Before"})).await;
    let body = json!({"device": id(&d), "phone": NUMBER, "text": "hi"});
    assert_eq!(send(&t, body.clone()).await["device"], d);
    let path = format!("/api/v1/device/{}", id(&d));
    let changed = call(
        &t,
        &t.key,
        Method::PUT,
        &path,
        Some(&json!({"firstname": "After"})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(send(&t, body.clone()).await["device"], changed.body);
    assert_eq!(delete(&t, &path).await.status, 200);
    let stored = stored_messages(&t).await;
    let gone = post(&t, "/api/v1/message", &body).await;
    assert_error(&gone, 404);
    assert_eq!(stored_messages(&t).await, stored);
}

#[tokio::test]
async fn message_options_are_kept() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let m = send(
        &t,
        json!({
            "device": id(&d),
            "phone": "+55 11 99999-9999",
            "text": "Olá, ação!",
            "ttl": 60,
            "identifier": "order-42",
            "maxtries": 3,
            "notification": "http://127.0.0.1:9/status",
        }),
    )
    .await;
    assert_eq!(m["phone"], NUMBER, "stored in E.164");
    assert_eq!(m["text"], "Olá, ação!");
    assert_eq!(m["identifier"], "order-42");
    assert_eq!(m["maxtries"], json!(3));
    assert_eq!(m["notification"], "http://127.0.0.1:9/status");
    let ttl = ms(&m["ttl"]) - ms(&m["created"]);
    assert!((ttl - 60_000).abs() < 2_000, "{m}");
    // The answer is the message as stored.
    let got = get(&t, &format!("/api/v1/message/{}", id(&m))).await;
    assert_eq!((got.status, &got.body), (200, &m), "{}", got.text);

    // Numbers given as strings work as well.
    let m = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "x", "ttl": "120", "maxtries": "2"}),
    )
    .await;
    assert_eq!(m["maxtries"], json!(2));
    let ttl = ms(&m["ttl"]) - ms(&m["created"]);
    assert!((ttl - 120_000).abs() < 2_000, "{m}");
}

/// The document types `phone` as an integer: a JSON number has no `+`, so it is the
/// international number without it.
#[tokio::test]
async fn phone_given_as_a_number() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let a = post(
        &t,
        "/api/v1/message",
        &json!({"device": id(&d), "phone": 5_511_999_999_999_i64, "text": "Hello world!"}),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["phone"], NUMBER, "{}", a.text);
}

#[tokio::test]
async fn message_bad_input_is_refused_and_nothing_stored() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let dev = id(&d).to_string();
    let ok = json!({"device": dev, "phone": NUMBER, "text": "hi"});
    let with = |k: &str, v: Value| {
        let mut body = ok.clone();
        body[k] = v;
        body
    };
    let without = |k: &str| {
        let mut body = ok.clone();
        body.as_object_mut().expect("object").remove(k);
        body
    };
    let cases: Vec<(Value, u16)> = vec![
        (with("phone", json!("0612")), 400),
        (with("phone", json!("+33 6 12")), 400),
        (with("phone", json!("not a number")), 400),
        (with("phone", json!("")), 400),
        (with("phone", json!(["+5511999999999"])), 400),
        (without("phone"), 400),
        (without("text"), 400),
        (with("text", json!("")), 400),
        (with("text", json!({"a": 1})), 400),
        (with("text", json!("x".repeat(1601))), 400),
        (with("ttl", json!(0)), 400),
        (with("ttl", json!(-5)), 400),
        (with("ttl", json!("soon")), 400),
        (with("ttl", json!(1.5)), 400),
        (with("maxtries", json!(0)), 400),
        (with("maxtries", json!(-1)), 400),
        (with("maxtries", json!("many")), 400),
        (with("notification", json!("not a url")), 400),
        (with("device", json!("xyz")), 400),
        (with("device", json!(FOREIGN_ID)), 400),
        (with("device", json!(42)), 400),
        (with("device", json!({"distribute": "roundrobin"})), 400),
        (with("device", json!({})), 400),
        (without("device"), 400),
        (with("device", json!(UNKNOWN_ID)), 404),
        (json!([ok.clone()]), 400),
    ];
    for (body, status) in cases {
        let a = post(&t, "/api/v1/message", &body).await;
        assert_error(&a, status);
    }
    for body in ["", "{", "nope", r#"{"device": "#] {
        let a = raw(
            &t,
            Method::POST,
            "/api/v1/message",
            Some(&format!("tokenv1 {}", t.key)),
            body,
        )
        .await;
        assert_error(&a, 400);
    }
    assert_eq!(stored_messages(&t).await, 0);
    assert_eq!(get(&t, "/api/v1/message").await.body["total"], json!(0));
}

#[tokio::test]
async fn message_ids_bad_or_unknown() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    send(&t, json!({"device": id(&d), "phone": NUMBER, "text": "hi"})).await;
    for bad in ["xyz", FOREIGN_ID, "000000000000000000000000"] {
        let path = format!("/api/v1/message/{bad}");
        assert_error(&get(&t, &path).await, 400);
        assert_error(&delete(&t, &path).await, 400);
    }
    let path = format!("/api/v1/message/{UNKNOWN_ID}");
    assert_error(&get(&t, &path).await, 404);
    assert_error(&delete(&t, &path).await, 404);
}

#[tokio::test]
async fn random_without_an_attached_device_is_409() {
    let t = spawn().await;
    let body = json!({"device": {"distribute": "random"}, "phone": NUMBER, "text": "hi"});
    assert_error(&post(&t, "/api/v1/message", &body).await, 409);
    let d = device(&t, json!({})).await;
    assert_error(&post(&t, "/api/v1/message", &body).await, 409);
    // Attached but its agent not connected: no candidate either.
    mark_attached(&t, &d).await;
    assert_error(&post(&t, "/api/v1/message", &body).await, 409);
    // Another account's online device is no candidate.
    let bob = t.other_user("bob@example.com").await;
    let theirs = device_as(&t, &bob, json!({})).await;
    mark_online(&t, &theirs).await;
    assert_error(&post(&t, "/api/v1/message", &body).await, 409);
    assert_eq!(stored_messages(&t).await, 0);
}

#[tokio::test]
async fn random_picks_only_attached_devices() {
    let t = spawn().await;
    let idle = device(&t, json!({"firstname": "idle"})).await;
    let paired = device(&t, json!({"firstname": "paired"})).await;
    let offline = device(&t, json!({"firstname": "offline"})).await;
    mark_online(&t, &paired).await;
    mark_attached(&t, &offline).await;
    for i in 0..10 {
        let m = send(
            &t,
            json!({"device": {"distribute": "random"}, "phone": NUMBER, "text": format!("hi {i}")}),
        )
        .await;
        assert_eq!(m["device"]["_id"], paired["_id"], "{m}");
        assert_eq!(m["device"]["attached"], json!(true));
        assert_eq!(m["status"], json!(201));
    }
    // Two online: both are used (20 draws miss one with probability 2^-19).
    mark_online(&t, &idle).await;
    let mut used = BTreeSet::new();
    for i in 0..20 {
        let m = send(
            &t,
            json!({"device": {"distribute": "random"}, "phone": NUMBER, "text": format!("again {i}")}),
        )
        .await;
        used.insert(id(&m["device"]).to_string());
    }
    assert_eq!(
        used,
        BTreeSet::from([id(&idle).to_string(), id(&paired).to_string()])
    );
    assert_eq!(get(&t, "/api/v1/message").await.body["total"], json!(30));
}

/// Random picks the connected device with the most spare capacity, also within one batch.
#[tokio::test]
async fn random_fills_the_least_loaded_device_first() {
    let t = spawn().await;
    let busy = device(&t, json!({"firstname": "busy"})).await;
    let free = device(&t, json!({"firstname": "free"})).await;
    mark_online(&t, &busy).await;
    for i in 0..3 {
        send(
            &t,
            json!({"device": id(&busy), "phone": NUMBER, "text": format!("queued {i}")}),
        )
        .await;
    }
    mark_online(&t, &free).await;
    let messages: Vec<Value> = (0..7)
        .map(|i| json!({"device": {"distribute": "random"}, "phone": NUMBER, "text": format!("bulk {i}")}))
        .collect();
    let a = post(&t, "/api/v1/message/bulk", &json!({ "messages": messages })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let on = |d: &Value| {
        a.body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["device"]["_id"] == d["_id"])
            .count()
    };
    // 3 + 2 and 0 + 5: the batch evens the two devices out.
    assert_eq!((on(&busy), on(&free)), (2, 5), "{}", a.text);
}

#[tokio::test]
async fn bulk_answers_a_bare_array_in_order() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Demo"})).await;
    let paired = device(&t, json!({"firstname": "paired"})).await;
    mark_online(&t, &paired).await;
    let a = post(
        &t,
        "/api/v1/message/bulk",
        &json!({"messages": [
            {"device": id(&d), "phone": "+5511999991111", "text": "Hello world 1!"},
            {"device": {"distribute": "random"}, "phone": "+5511999992222", "text": "Hello world 2!", "identifier": "two"},
            {"device": id(&d), "phone": "+5511999993333", "text": "Hello world 3!", "ttl": 60, "maxtries": 2},
        ]}),
    )
    .await;
    assert!(a.status == 200 || a.status == 201, "{}", a.text);
    let items = a.body.as_array().expect("a bare array");
    assert_eq!(items.len(), 3);
    for (i, m) in items.iter().enumerate() {
        assert_message(m);
        assert_eq!(m["phone"], format!("+551199999{0}{0}{0}{0}", i + 1));
        assert_eq!(m["text"], format!("Hello world {}!", i + 1));
        assert_eq!(m["status"], json!(201));
        assert_eq!(statuses(m), [201]);
        let got = get(&t, &format!("/api/v1/message/{}", id(m))).await;
        assert_eq!(&got.body, m);
    }
    assert_eq!(items[0]["device"]["_id"], d["_id"]);
    assert_eq!(items[1]["device"]["_id"], paired["_id"]);
    assert_eq!(items[1]["identifier"], "two");
    assert_eq!(items[2]["maxtries"], json!(2));
    assert_eq!(get(&t, "/api/v1/message").await.body["total"], json!(3));
}

#[tokio::test]
async fn bulk_is_all_or_nothing() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let good = |n: u32| json!({"device": id(&d), "phone": NUMBER, "text": format!("good {n}")});
    let bob = t.other_user("bob@example.com").await;
    let theirs = device_as(&t, &bob, json!({})).await;
    let cases: Vec<(Value, u16)> = vec![
        // Refused while reading the items.
        (
            json!([good(1), {"device": id(&d), "text": "no phone"}]),
            400,
        ),
        (json!([good(1), "not an object"]), 400),
        (
            json!([good(1), {"device": "xyz", "phone": NUMBER, "text": "x"}]),
            400,
        ),
        // Refused while checking them: nothing of the batch may stay.
        (
            json!([good(1), good(2), {"device": id(&d), "phone": "0612", "text": "x"}]),
            400,
        ),
        (
            json!([good(1), {"device": id(&d), "phone": NUMBER, "text": ""}]),
            400,
        ),
        (
            json!([good(1), {"device": id(&d), "phone": NUMBER, "text": "x", "ttl": 0}]),
            400,
        ),
        (
            json!([good(1), {"device": id(&d), "phone": NUMBER, "text": "x", "maxtries": 0}]),
            400,
        ),
        (
            json!([good(1), {"device": UNKNOWN_ID, "phone": NUMBER, "text": "x"}]),
            404,
        ),
        (
            json!([good(1), {"device": id(&theirs), "phone": NUMBER, "text": "x"}]),
            404,
        ),
        (
            json!([good(1), {"device": {"distribute": "random"}, "phone": NUMBER, "text": "x"}]),
            409,
        ),
    ];
    let mut left_behind = Vec::new();
    for (messages, status) in cases {
        let before = stored_messages(&t).await;
        let a = post(&t, "/api/v1/message/bulk", &json!({ "messages": messages })).await;
        assert_error(&a, status);
        let stored = stored_messages(&t).await - before;
        if stored != 0 {
            left_behind.push(format!("{stored} of {messages}"));
        }
    }
    assert!(
        left_behind.is_empty(),
        "refused batches left messages behind:\n{}",
        left_behind.join("\n")
    );
    for body in [
        json!({}),
        json!({"messages": {}}),
        json!({"messages": "x"}),
        json!([good(1)]),
    ] {
        assert_error(&post(&t, "/api/v1/message/bulk", &body).await, 400);
    }
    assert_eq!(stored_messages(&t).await, 0);
    assert_eq!(get(&t, "/api/v1/message").await.body["total"], json!(0));
}

#[tokio::test]
async fn message_list_envelope_sort_filters_and_debug() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(
            send(
                &t,
                json!({"device": id(&d), "phone": NUMBER, "text": format!("m{i}")}),
            )
            .await,
        );
        sleep_ms(5).await;
    }
    let [m0, m1, m2] = [0, 1, 2].map(|i| id(&sent[i]));

    let all = get(&t, "/api/v1/message").await;
    assert_eq!(envelope_ids(&all), [m2, m1, m0]);
    assert_eq!(
        (
            &all.body["skip"],
            &all.body["limit"],
            &all.body["sort"],
            &all.body["total"]
        ),
        (&json!(0), &json!(100), &json!("-updated"), &json!(3))
    );
    for (row, m) in all.body["result"]
        .as_array()
        .expect("rows")
        .iter()
        .zip(sent.iter().rev())
    {
        assert_eq!(row, m);
    }
    assert_eq!(
        envelope_ids(&get(&t, "/api/v1/message?debug=false").await),
        [m2, m1, m0]
    );
    for debug in ["true", "1", "TRUE"] {
        let got = get(&t, &format!("/api/v1/message?debug={debug}")).await;
        assert!(envelope_ids(&got).is_empty(), "{}", got.text);
        assert_eq!(got.body["total"], json!(0));
    }
    for (sort, expected) in [
        ("created", [m0, m1, m2]),
        ("-created", [m2, m1, m0]),
        ("_id", [m0, m1, m2]),
        ("updated", [m0, m1, m2]),
    ] {
        let got = get(&t, &format!("/api/v1/message?sort={sort}")).await;
        assert_eq!(envelope_ids(&got), expected, "sort={sort}");
    }
    let page = get(&t, "/api/v1/message?sort=_id&skip=2&limit=5").await;
    assert_eq!(envelope_ids(&page), [m2]);
    assert_eq!(
        (&page.body["skip"], &page.body["limit"], &page.body["total"]),
        (&json!(2), &json!(5), &json!(3))
    );
    let since = sent[1]["created"].as_str().expect("created");
    assert_eq!(
        envelope_ids(
            &get(
                &t,
                &format!("/api/v1/message?sort=_id&created_start={since}")
            )
            .await
        ),
        [m1, m2]
    );
    assert_eq!(
        envelope_ids(
            &get(
                &t,
                &format!("/api/v1/message?sort=_id&created_stop={since}")
            )
            .await
        ),
        [m0, m1]
    );

    // Deleting one moves it (505) to the front, and into the updated range.
    sleep_ms(5).await;
    let gone = delete(&t, &format!("/api/v1/message/{m0}")).await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_eq!(
        envelope_ids(&get(&t, "/api/v1/message").await),
        [m0, m2, m1]
    );
    let since = gone.body["updated"].as_str().expect("updated");
    assert_eq!(
        envelope_ids(&get(&t, &format!("/api/v1/message?updated_start={since}")).await),
        [m0]
    );
    for bad in [
        "sort=firstname",
        "sort=text",
        "skip=x",
        "created_stop=never",
    ] {
        assert_error(&get(&t, &format!("/api/v1/message?{bad}")).await, 400);
    }
}

/// Messages do not sort by `status` (a code computed from the state, not a stored field): the
/// request is refused rather than ordered by something else.
#[tokio::test]
async fn message_sort_by_status_is_refused() {
    let t = spawn().await;
    for sort in ["status", "-status"] {
        assert_error(&get(&t, &format!("/api/v1/message?sort={sort}")).await, 400);
    }
}

#[tokio::test]
async fn deleting_a_message_shows_505_once() {
    let t = spawn().await;
    let d = device(&t, json!({})).await;
    let m = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "bye"}),
    )
    .await;
    let path = format!("/api/v1/message/{}", id(&m));
    sleep_ms(3).await;
    let gone = delete(&t, &path).await;
    assert_eq!(gone.status, 200, "{}", gone.text);
    assert_message(&gone.body);
    assert_eq!(gone.body["status"], json!(505));
    assert_eq!(statuses(&gone.body), [201, 505]);
    assert_eq!(gone.body["_id"], m["_id"]);
    assert_eq!(gone.body["created"], m["created"]);
    assert!(ms(&gone.body["updated"]) > ms(&m["updated"]));
    assert_eq!(get(&t, &path).await.body, gone.body);

    assert_error(&delete(&t, &path).await, 409);
    assert_eq!(get(&t, &path).await.body, gone.body);
    assert_eq!(t.message(int_id(&m)).await["status"], "canceled");
}

#[tokio::test]
async fn other_accounts_devices_and_messages_are_out_of_reach() {
    let t = spawn().await;
    let bob = t.other_user("bob@example.com").await;
    let theirs = device_as(&t, &bob, json!({"firstname": "bob"})).await;
    let their_message = send_as(
        &t,
        &bob,
        json!({"device": id(&theirs), "phone": NUMBER, "text": "bob's"}),
    )
    .await;
    let mine = device(&t, json!({"firstname": "alice"})).await;
    let my_message = send(
        &t,
        json!({"device": id(&mine), "phone": NUMBER, "text": "alice's"}),
    )
    .await;

    assert_eq!(envelope_ids(&get(&t, "/api/v1/device").await), [id(&mine)]);
    assert_eq!(
        envelope_ids(&get(&t, "/api/v1/message").await),
        [id(&my_message)]
    );
    let device_path = format!("/api/v1/device/{}", id(&theirs));
    assert_error(&get(&t, &device_path).await, 404);
    for method in [Method::PUT, Method::PATCH] {
        let a = call(
            &t,
            &t.key,
            method,
            &device_path,
            Some(&json!({"firstname": "mallory"})),
        )
        .await;
        assert_error(&a, 404);
    }
    assert_error(&delete(&t, &device_path).await, 404);
    assert_error(
        &post(&t, "/api/v1/attach", &json!({"device": id(&theirs)})).await,
        404,
    );
    let a = post(
        &t,
        "/api/v1/message",
        &json!({"device": id(&theirs), "phone": NUMBER, "text": "through bob"}),
    )
    .await;
    assert_error(&a, 404);
    let message_path = format!("/api/v1/message/{}", id(&their_message));
    assert_error(&get(&t, &message_path).await, 404);
    assert_error(&delete(&t, &message_path).await, 404);

    // Bob's things are intact, and he sees only them.
    let still = call(&t, &bob, Method::GET, &device_path, None).await;
    assert_eq!(
        (still.status, &still.body),
        (200, &theirs),
        "{}",
        still.text
    );
    let still = call(&t, &bob, Method::GET, &message_path, None).await;
    assert_eq!(
        (still.status, &still.body),
        (200, &their_message),
        "{}",
        still.text
    );
    let list = call(&t, &bob, Method::GET, "/api/v1/message", None).await;
    assert_eq!(envelope_ids(&list), [id(&their_message)]);
    let list = call(&t, &bob, Method::GET, "/api/v1/device", None).await;
    assert_eq!(envelope_ids(&list), [id(&theirs)]);
    assert_eq!(
        t.sql("SELECT COUNT(*) AS n FROM pairing_codes").await[0]["n"],
        json!(0)
    );
}

// ---------------------------------------------------------------------------------------------
// With the workers running

#[tokio::test]
async fn unsent_messages_expire_after_their_ttl() {
    let t = spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
    })
    .await;
    let d = device(&t, json!({})).await;
    mark_attached(&t, &d).await;
    let short = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "short-lived", "ttl": 1}),
    )
    .await;
    let long = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "long-lived"}),
    )
    .await;
    let path = format!("/api/v1/message/{}", id(&short));
    let expired = poll(Duration::from_secs(5), || async {
        let m = get(&t, &path).await.body;
        (m["status"] == json!(501)).then_some(m)
    })
    .await;
    let Some(expired) = expired else {
        panic!("not expired: {}", t.message(int_id(&short)).await);
    };
    assert_message(&expired);
    assert_eq!(statuses(&expired), [201, 501]);
    assert!(ms(&expired["updated"]) >= ms(&short["ttl"]), "{expired}");
    assert_error(&delete(&t, &path).await, 409);

    // The other one waits for its device, untouched.
    let still = get(&t, &format!("/api/v1/message/{}", id(&long))).await;
    assert_eq!(still.body, long);
}

/// A message bound to a device goes out through that device or not at all: deleting the
/// device must not hand its queued messages to another phone of the account.
#[tokio::test]
async fn deleting_a_device_never_reroutes_its_messages() {
    let t = spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
    })
    .await;
    let phone = t
        .create("/api/phone/", &[("name", "raspisms"), ("adapter", "test")])
        .await;
    let d = device(&t, json!({})).await;
    let m = send(
        &t,
        json!({"device": id(&d), "phone": NUMBER, "text": "device only"}),
    )
    .await;
    assert_eq!(
        delete(&t, &format!("/api/v1/device/{}", id(&d)))
            .await
            .status,
        200
    );
    sleep_ms(1_000).await;
    let row = t.message(int_id(&m)).await;
    assert!(
        !["sending", "sent", "delivered"].contains(&row["status"].as_str().unwrap_or_default()),
        "the message of a deleted device went out through another phone: {row}"
    );
    assert_ne!(row["phone_id"], json!(phone), "{row}");
}
