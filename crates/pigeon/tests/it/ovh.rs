//! The OVH SMS API (`/1.0/...`) over HTTP, against its contract: request signing (raw target,
//! raw body, with and without the port), OVH's errors, the account as the service, jobs (STOP
//! mention, STOP list, deferral, the commercial window, senders), outgoing and incoming
//! messages, the blacklist, estimates, the account's callBack / stopCallBack, and ownership.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use pigeon::services::{accounts, quotas};
use pigeon_core::signature;
use serde_json::{Value, json};

use crate::helpers::{TestApp, inject, poll, spawn, spawn_sending};

const SN: &str = "sms-alice-1";
const DEST: &str = "+33612345678";
const DEST2: &str = "+33612345679";
const WAIT: Duration = Duration::from_secs(10);
const UNLIMITED: i64 = 2_147_483_647;

/// An account's OVH credentials.
#[derive(Debug, Clone)]
struct Creds {
    ak: String,
    secret: String,
    ck: String,
}

async fn creds_of(t: &TestApp, user_id: i64) -> Creds {
    let c = pigeon::services::ovh::create_credentials(&t.app, user_id)
        .await
        .expect("OVH credentials");
    Creds {
        ak: c.application_key,
        secret: c.application_secret,
        ck: c.consumer_key,
    }
}

async fn creds(t: &TestApp) -> Creds {
    creds_of(t, t.user_id).await
}

/// Bob's account and his credentials.
async fn bob(t: &TestApp) -> Creds {
    let created = accounts::create_user(&t.app, "bob@example.com", false, None, None)
        .await
        .expect("bob");
    creds_of(t, created.id).await
}

/// An answer of the OVH door: status, headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    /// The body of a success (always 200).
    fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "not a success: {}", self.text);
        &self.body
    }

    /// The ids of a collection answer.
    fn ids(&self) -> Vec<i64> {
        self.ok()
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {}", self.text))
            .iter()
            .map(|v| {
                v.as_i64()
                    .unwrap_or_else(|| panic!("not an integer id: {}", self.text))
            })
            .collect()
    }

    /// Checks an OVH error: the status, a `message` containing `needle`, and `errorCode` if given.
    fn error(&self, status: u16, needle: &str, code: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.body["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "message should contain {needle:?}: {}",
            self.text
        );
        if let Some(code) = code {
            assert_eq!(self.body["errorCode"], code, "{}", self.text);
        }
    }
}

/// Sends `method target` with `headers` and an optional raw body, and checks that the answer
/// carries an `X-Ovh-QueryId` (every answer must, success or error).
async fn raw(
    t: &TestApp,
    method: &str,
    target: &str,
    body: Option<&str>,
    headers: &[(&str, String)],
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = t.client.request(method, t.url(target));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    let reply = Reply {
        status,
        headers,
        body,
        text,
    };
    assert!(
        reply
            .headers
            .get("x-ovh-queryid")
            .is_some_and(|v| !v.is_empty()),
        "no X-Ovh-QueryId on {status} {}",
        reply.text
    );
    reply
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The four OVH headers of a request signed over `url` and `body` at `ts`.
fn signed_headers(
    c: &Creds,
    method: &str,
    url: &str,
    body: &str,
    ts: i64,
) -> Vec<(&'static str, String)> {
    vec![
        ("X-Ovh-Application", c.ak.clone()),
        ("X-Ovh-Consumer", c.ck.clone()),
        ("X-Ovh-Timestamp", ts.to_string()),
        (
            "X-Ovh-Signature",
            signature::ovh(&c.secret, &c.ck, method, url, body.as_bytes(), ts),
        ),
    ]
}

/// A request signed as the Python client signs it: the base URL with its port + the target.
async fn call(t: &TestApp, c: &Creds, method: &str, target: &str, body: Option<&str>) -> Reply {
    let url = t.url(target);
    let headers = signed_headers(c, method, &url, body.unwrap_or_default(), now());
    raw(t, method, target, body, &headers).await
}

async fn get(t: &TestApp, c: &Creds, target: &str) -> Reply {
    call(t, c, "GET", target, None).await
}

async fn delete(t: &TestApp, c: &Creds, target: &str) -> Reply {
    call(t, c, "DELETE", target, None).await
}

/// POST or PUT of a JSON body, serialised compactly as the clients do.
async fn send_json(t: &TestApp, c: &Creds, method: &str, target: &str, body: &Value) -> Reply {
    let text = serde_json::to_string(body).expect("json");
    call(t, c, method, target, Some(&text)).await
}

/// `/1.0/sms/sms-alice-1` + `rest`.
fn p(rest: &str) -> String {
    format!("/1.0/sms/{SN}{rest}")
}

/// Posts a job and returns its report (checked to be a success).
async fn job(t: &TestApp, c: &Creds, body: Value) -> Value {
    send_json(t, c, "POST", &p("/jobs"), &body)
        .await
        .ok()
        .clone()
}

/// Posts a job of `message` to one receiver (no STOP mention), returning its id.
async fn one(t: &TestApp, c: &Creds, receiver: &str, message: &str, extra: Value) -> i64 {
    let mut body = json!({"message": message, "receivers": [receiver], "noStopClause": true});
    if let Value::Object(extra) = extra {
        body.as_object_mut().expect("object").extend(extra);
    }
    let report = job(t, c, body).await;
    assert_eq!(report["validReceivers"], json!([receiver]), "{report}");
    report["ids"][0]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {report}"))
}

/// Percent-encodes a query value as the clients do (`:` → `%3A`, `+` → `%2B`).
fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// An ISO 8601 date with offset, `hours` from now, in UTC.
fn iso_in(hours: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours))
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

async fn test_phone(t: &TestApp) -> i64 {
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await
}

async fn set(t: &TestApp, name: &str, value: &str) {
    accounts::set_setting(&t.app, "alice@example.com", name, value)
        .await
        .unwrap_or_else(|e| panic!("setting {name}={value}: {e}"));
}

/// The test adapter's delivery report for the message sent to `dest`.
async fn deliver(t: &TestApp, dest: &str) {
    let rows = t
        .sql(&format!(
            "SELECT provider_id FROM messages WHERE direction = 'outbound' AND destination = '{dest}' AND provider_id IS NOT NULL"
        ))
        .await;
    let uid = rows
        .first()
        .and_then(|r| r["provider_id"].as_str())
        .unwrap_or_else(|| panic!("no provider uid for {dest}: {rows:?}"))
        .to_string();
    let a = t
        .get(&format!(
            "/callback/status/test/?api_key={}&uid={uid}&status=delivered",
            t.key
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

/// Waits until `target` lists `id` (or, with `present` false, no longer does).
async fn wait_listed(t: &TestApp, c: &Creds, target: &str, id: i64, present: bool) {
    let seen = poll(WAIT, || async {
        (get(t, c, target).await.ids().contains(&id) == present).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "{target} should {}list {id}: {} / {:?}",
        if present { "" } else { "not " },
        get(t, c, target).await.text,
        t.sql(&format!("SELECT id, status FROM messages WHERE id = {id}"))
            .await
    );
}

// Authentication.

#[tokio::test]
async fn auth_time_is_public_and_near_now() {
    let t = spawn().await;
    let r = raw(&t, "GET", "/1.0/auth/time", None, &[]).await;
    let server = r
        .ok()
        .as_i64()
        .unwrap_or_else(|| panic!("not a bare integer: {}", r.text));
    assert!((server - now()).abs() <= 5, "{server} vs {}", now());
    // As the Python client asks: with its application key only.
    let r = raw(
        &t,
        "GET",
        "/1.0/auth/time",
        None,
        &[("X-Ovh-Application", "whatever".into())],
    )
    .await;
    assert!(r.ok().is_i64(), "{}", r.text);
}

#[tokio::test]
async fn signed_urls_with_and_without_the_port_are_accepted() {
    let t = spawn().await;
    let c = creds(&t).await;
    let port = t.base.rsplit(':').next().expect("port");
    let host = t.base.trim_end_matches(&format!(":{port}")).to_string();
    assert_eq!(host, "http://127.0.0.1");
    for base in [
        t.base.clone(),
        host,
        // The Node client: always https, never the port.
        "https://127.0.0.1".to_string(),
    ] {
        let url = format!("{base}/1.0/sms");
        let headers = signed_headers(&c, "GET", &url, "", now());
        let r = raw(&t, "GET", "/1.0/sms", None, &headers).await;
        assert_eq!(r.ok(), &json!([SN]), "signed over {url}");
    }
    // Another host is not our URL.
    let headers = signed_headers(&c, "GET", "http://example.com/1.0/sms", "", now());
    raw(&t, "GET", "/1.0/sms", None, &headers).await.error(
        403,
        "Invalid signature",
        Some("INVALID_CREDENTIAL"),
    );
}

#[tokio::test]
async fn bad_credentials_get_ovh_errors() {
    let t = spawn().await;
    let c = creds(&t).await;
    let url = t.url("/1.0/sms");
    let target = "/1.0/sms";
    // `GET /sms` signed with `creds` at `time`, with the headers `drop` leaves out.
    let signed_get = |creds: Creds, time: i64, drop: &'static str| {
        let headers: Vec<_> = signed_headers(&creds, "GET", &url, "", time)
            .into_iter()
            .filter(|(name, _)| *name != drop)
            .collect();
        let t = &t;
        async move { raw(t, "GET", target, None, &headers).await }
    };
    let with = |change: fn(&mut Creds)| {
        let mut changed = c.clone();
        change(&mut changed);
        changed
    };

    signed_get(with(|c| c.ak = "NotAnApplicationKey".into()), now(), "")
        .await
        .error(403, "Invalid application key", Some("INVALID_KEY"));
    signed_get(c.clone(), now(), "X-Ovh-Application")
        .await
        .error(
            403,
            "This call has not been granted",
            Some("NOT_GRANTED_CALL"),
        );
    signed_get(c.clone(), now(), "X-Ovh-Consumer").await.error(
        403,
        "This credential does not exist",
        Some("INVALID_CREDENTIAL"),
    );
    signed_get(with(|c| c.ck = "NotAConsumerKey".into()), now(), "")
        .await
        .error(
            403,
            "This credential does not exist",
            Some("INVALID_CREDENTIAL"),
        );
    signed_get(with(|c| c.secret = "not-the-secret".into()), now(), "")
        .await
        .error(403, "Invalid signature", Some("INVALID_CREDENTIAL"));

    // Bob's consumer key with Alice's application (signed with Alice's secret, or with Bob's).
    let b = bob(&t).await;
    for secret in [&c.secret, &b.secret] {
        let mixed = Creds {
            ak: c.ak.clone(),
            secret: secret.clone(),
            ck: b.ck.clone(),
        };
        signed_get(mixed, now(), "")
            .await
            .error(403, "", Some("INVALID_CREDENTIAL"));
    }

    // A correctly signed request an hour old, and one an hour ahead.
    for time in [now() - 3600, now() + 3600] {
        signed_get(c.clone(), time, "")
            .await
            .error(400, "Query out of time", None);
    }

    // The body is signed: another body than the one signed is refused, and changes nothing.
    let account = p("");
    let signed_body = r#"{"description":"signed"}"#;
    let headers = signed_headers(&c, "PUT", &t.url(&account), signed_body, now());
    raw(
        &t,
        "PUT",
        &account,
        Some(r#"{"description":"tampered"}"#),
        &headers,
    )
    .await
    .error(403, "Invalid signature", Some("INVALID_CREDENTIAL"));
    let r = raw(&t, "PUT", &account, Some(signed_body), &headers).await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    assert_eq!(get(&t, &c, &account).await.ok()["description"], "signed");

    // The method is signed too.
    let headers = signed_headers(&c, "POST", &url, "", now());
    raw(&t, "GET", target, None, &headers).await.error(
        403,
        "Invalid signature",
        Some("INVALID_CREDENTIAL"),
    );
}

#[tokio::test]
async fn the_query_string_and_the_trailing_slash_are_signed_raw() {
    let t = spawn().await;
    let c = creds(&t).await;
    let target =
        format!("/1.0/sms/{SN}/outgoing?creationDatetime.from=2026-01-01T00%3A00%3A00%2B00%3A00");
    let headers = signed_headers(&c, "GET", &t.url(&target), "", now());
    let r = raw(&t, "GET", &target, None, &headers).await;
    assert!(r.ok().is_array(), "{}", r.text);
    // Signed over the decoded query, it is not the request that was sent.
    let decoded = format!("/1.0/sms/{SN}/outgoing?creationDatetime.from=2026-01-01T00:00:00+00:00");
    let headers = signed_headers(&c, "GET", &t.url(&decoded), "", now());
    raw(&t, "GET", &target, None, &headers).await.error(
        403,
        "Invalid signature",
        Some("INVALID_CREDENTIAL"),
    );

    // A trailing slash is part of the signed URL.
    let headers = signed_headers(&c, "GET", &t.url("/1.0/sms/"), "", now());
    let r = raw(&t, "GET", "/1.0/sms/", None, &headers).await;
    assert_eq!(r.ok(), &json!([SN]), "{}", r.text);
    let headers = signed_headers(&c, "GET", &t.url("/1.0/sms"), "", now());
    raw(&t, "GET", "/1.0/sms/", None, &headers).await.error(
        403,
        "Invalid signature",
        Some("INVALID_CREDENTIAL"),
    );
}

// The account.

#[tokio::test]
async fn the_account_is_the_only_service() {
    let t = spawn().await;
    let c = creds(&t).await;
    assert_eq!(get(&t, &c, "/1.0/sms").await.ok(), &json!([SN]));
    let b = bob(&t).await;
    assert_eq!(get(&t, &b, "/1.0/sms").await.ok(), &json!(["sms-bob-1"]));
    // The login keeps only lower-case letters and digits.
    let odd = accounts::create_user(&t.app, "Jean.Dupont+42@Example.com", false, None, None)
        .await
        .expect("user");
    let j = creds_of(&t, odd.id).await;
    assert_eq!(
        get(&t, &j, "/1.0/sms").await.ok(),
        &json!(["sms-jeandupont42-1"])
    );
    // Another account's service, or none, is not found.
    for other in ["sms-bob-1", "sms-nobody-1", "sms-alice-2"] {
        get(&t, &c, &format!("/1.0/sms/{other}"))
            .await
            .error(404, "does not exist", None);
        get(&t, &c, &format!("/1.0/sms/{other}/jobs"))
            .await
            .error(404, "does not exist", None);
    }
    send_json(
        &t,
        &c,
        "PUT",
        "/1.0/sms/sms-bob-1",
        &json!({"description": "mine now"}),
    )
    .await
    .error(404, "does not exist", None);

    let account = get(&t, &c, &p("")).await;
    let a = account.ok();
    assert_eq!(a["name"], SN, "{a}");
    assert_eq!(a["status"], "enable", "{a}");
    assert_eq!(a["channel"], "both", "{a}");
    assert_eq!(a["creditsLeft"].as_i64(), Some(UNLIMITED), "{a}");
    for key in ["description", "callBack", "stopCallBack"] {
        assert!(a.get(key).is_some(), "{key} missing from {a}");
    }

    let r = send_json(
        &t,
        &c,
        "PUT",
        &p(""),
        &json!({
            "callBack": "https://example.com/dlr?x=1",
            "stopCallBack": "https://example.com/stop",
            "description": "Alice's SMS",
        }),
    )
    .await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    let a = get(&t, &c, &p("")).await.ok().clone();
    assert_eq!(
        (&a["callBack"], &a["stopCallBack"], &a["description"]),
        (
            &json!("https://example.com/dlr?x=1"),
            &json!("https://example.com/stop"),
            &json!("Alice's SMS")
        ),
        "{a}"
    );
    // A partial PUT changes only what it names.
    let r = send_json(&t, &c, "PUT", &p(""), &json!({"description": "Renamed"})).await;
    assert_eq!(r.ok(), &Value::Null);
    let a = get(&t, &c, &p("")).await.ok().clone();
    assert_eq!(
        (&a["callBack"], &a["description"]),
        (&json!("https://example.com/dlr?x=1"), &json!("Renamed")),
        "{a}"
    );
    // Bob's account is untouched.
    let bobs = get(&t, &b, "/1.0/sms/sms-bob-1").await.ok().clone();
    assert_ne!(bobs["description"], "Renamed", "{bobs}");
}

#[tokio::test]
async fn credits_left_follow_the_quota() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    let c = creds(&t).await;
    assert_eq!(
        get(&t, &c, &p("")).await.ok()["creditsLeft"].as_i64(),
        Some(UNLIMITED)
    );
    let input = quotas::QuotaInput {
        credit: 100,
        additional: 5,
        interval: "P1M".into(),
        auto_renew: true,
        report_unused: false,
        report_unused_additional: false,
    };
    quotas::set(&t.app, "alice@example.com", &input)
        .await
        .expect("quota");
    assert_eq!(
        get(&t, &c, &p("")).await.ok()["creditsLeft"].as_f64(),
        Some(105.0)
    );
    // A message of two segments, sent: two credits fewer.
    let id = one(&t, &c, DEST, &"a".repeat(200), json!({})).await;
    wait_listed(&t, &c, &p("/outgoing"), id, true).await;
    let left = poll(WAIT, || async {
        let left = get(&t, &c, &p("")).await.ok()["creditsLeft"].as_f64();
        (left == Some(103.0)).then_some(())
    })
    .await;
    assert!(
        left.is_some(),
        "creditsLeft: {}",
        get(&t, &c, &p("")).await.text
    );
}

// Jobs.

#[tokio::test]
async fn jobs_report_valid_and_invalid_receivers() {
    let t = spawn().await;
    let c = creds(&t).await;
    let report = job(
        &t,
        &c,
        json!({
            "message": "Hello",
            "receivers": [DEST, "not a number", DEST2, "+12"],
            "noStopClause": true,
            "tag": "first",
            "priority": "high",
            "validityPeriod": 60,
        }),
    )
    .await;
    assert_eq!(report["validReceivers"], json!([DEST, DEST2]), "{report}");
    assert_eq!(
        report["invalidReceivers"],
        json!(["not a number", "+12"]),
        "{report}"
    );
    assert_eq!(
        report["totalCreditsRemoved"].as_f64(),
        Some(2.0),
        "{report}"
    );
    assert_eq!(report["tag"], "first", "{report}");
    let ids: Vec<i64> = report["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_i64().expect("integer id"))
        .collect();
    assert_eq!(ids.len(), 2, "{report}");
    assert_ne!(ids[0], ids[1]);
    // The ids line up with the valid receivers; no workers run, so both are pending jobs.
    let mut pending = get(&t, &c, &p("/jobs")).await.ids();
    pending.sort_unstable();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(pending, sorted);
    for (id, receiver) in ids.iter().zip([DEST, DEST2]) {
        let r = get(&t, &c, &p(&format!("/jobs/{id}"))).await;
        let j = r.ok();
        assert_eq!(j["id"].as_i64(), Some(*id), "{j}");
        assert_eq!(j["receiver"], receiver, "{j}");
        assert_eq!(j["message"], "Hello", "{j}");
        assert_eq!(j["numberOfSms"].as_i64(), Some(1), "{j}");
        assert_eq!(j["messageLength"].as_i64(), Some(5), "{j}");
        assert_eq!(
            (&j["deliveredAt"], &j["sentAt"]),
            (&Value::Null, &Value::Null)
        );
        for key in [
            "creationDatetime",
            "credits",
            "deliveryReceipt",
            "differedDelivery",
            "ptt",
            "sender",
        ] {
            assert!(j.get(key).is_some(), "{key} missing from {j}");
        }
        let created = j["creationDatetime"].as_str().expect("date");
        let at: jiff::Timestamp = created
            .parse()
            .unwrap_or_else(|_| panic!("not ISO 8601 with offset: {created}"));
        assert!((at.as_second() - now()).abs() <= 60, "{created}");
    }
    // No valid receiver: still 200, no ids.
    let report = job(
        &t,
        &c,
        json!({"message": "Hello", "receivers": ["nope"], "noStopClause": true}),
    )
    .await;
    assert_eq!(report["ids"], json!([]), "{report}");
    assert_eq!(report["validReceivers"], json!([]), "{report}");
    assert_eq!(report["invalidReceivers"], json!(["nope"]), "{report}");
    // Missing the message or the receivers: bad parameters.
    send_json(&t, &c, "POST", &p("/jobs"), &json!({"receivers": [DEST]}))
        .await
        .error(400, "", None);
    send_json(&t, &c, "POST", &p("/jobs"), &json!({"message": "x"}))
        .await
        .error(400, "", None);
    raw(
        &t,
        "POST",
        &p("/jobs"),
        Some("[1"),
        &signed_headers(&c, "POST", &t.url(&p("/jobs")), "[1", now()),
    )
    .await
    .error(400, "", None);
    let n = t
        .sql("SELECT COUNT(*) AS n FROM messages WHERE direction = 'outbound'")
        .await;
    assert_eq!(n[0]["n"], 2, "only the two valid receivers were stored");
}

#[tokio::test]
async fn stop_listed_receivers_are_invalid() {
    let t = spawn().await;
    let c = creds(&t).await;
    t.sql_write(&format!(
        "INSERT INTO stop_list (user_id, number, created_at) VALUES ({}, '{DEST}', 0)",
        t.user_id
    ))
    .await;
    let report = job(
        &t,
        &c,
        json!({"message": "Promo", "receivers": [DEST, DEST2], "noStopClause": true}),
    )
    .await;
    assert_eq!(report["validReceivers"], json!([DEST2]), "{report}");
    assert_eq!(report["invalidReceivers"], json!([DEST]), "{report}");
    assert_eq!(report["ids"].as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(
        report["totalCreditsRemoved"].as_f64(),
        Some(1.0),
        "{report}"
    );
}

#[tokio::test]
async fn the_stop_mention_is_appended_unless_no_stop_clause() {
    let t = spawn().await;
    let c = creds(&t).await;
    // 150 characters: one segment alone, two with the 14 characters of "\nSTOP au 36111".
    let text = "a".repeat(150);
    let plain = job(
        &t,
        &c,
        json!({"message": text, "receivers": [DEST], "noStopClause": true}),
    )
    .await;
    assert_eq!(plain["totalCreditsRemoved"].as_f64(), Some(1.0), "{plain}");
    let j = get(&t, &c, &p(&format!("/jobs/{}", plain["ids"][0])))
        .await
        .ok()
        .clone();
    assert_eq!(j["message"], text.as_str(), "{j}");
    assert_eq!(j["numberOfSms"].as_i64(), Some(1), "{j}");

    let commercial = job(&t, &c, json!({"message": text, "receivers": [DEST]})).await;
    assert_eq!(
        commercial["totalCreditsRemoved"].as_f64(),
        Some(2.0),
        "{commercial}"
    );
    let j = get(&t, &c, &p(&format!("/jobs/{}", commercial["ids"][0])))
        .await
        .ok()
        .clone();
    assert_eq!(j["message"], format!("{text}\nSTOP au 36111"), "{j}");
    assert_eq!(j["numberOfSms"].as_i64(), Some(2), "{j}");
    assert_eq!(j["messageLength"].as_i64(), Some(164), "{j}");
    let stored = t
        .sql(&format!(
            "SELECT text, segments FROM messages WHERE id = {}",
            commercial["ids"][0]
        ))
        .await;
    assert_eq!(
        stored[0]["text"],
        format!("{text}\nSTOP au 36111"),
        "the mention is sent"
    );

    // `noStopClause: false` is the default, said explicitly; the mention is the account's.
    set(&t, "ovh_stop_clause", "STOP au 12345").await;
    let custom = job(
        &t,
        &c,
        json!({"message": "Soldes", "receivers": [DEST], "noStopClause": false}),
    )
    .await;
    let j = get(&t, &c, &p(&format!("/jobs/{}", custom["ids"][0])))
        .await
        .ok()
        .clone();
    assert_eq!(j["message"], "Soldes\nSTOP au 12345", "{j}");
}

#[tokio::test]
async fn differed_jobs_are_pending_until_canceled() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    let c = creds(&t).await;
    let id = one(&t, &c, DEST, "Later", json!({"differedPeriod": 60})).await;
    // The workers run, but it waits for its time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(get(&t, &c, &p("/jobs")).await.ids().contains(&id));
    assert!(!get(&t, &c, &p("/outgoing")).await.ids().contains(&id));
    let j = get(&t, &c, &p(&format!("/jobs/{id}"))).await.ok().clone();
    assert_eq!(
        (&j["receiver"], &j["message"], &j["sentAt"]),
        (&json!(DEST), &json!("Later"), &Value::Null),
        "{j}"
    );
    let row = t
        .sql(&format!(
            "SELECT status, next_try_at FROM messages WHERE id = {id}"
        ))
        .await;
    assert_eq!(row[0]["status"], "scheduled", "{row:?}");
    let due = row[0]["next_try_at"].as_i64().expect("next_try_at");
    let expected = (now() + 3600) * 1000;
    assert!(
        (due - expected).abs() <= 60_000,
        "due at {due}, expected about {expected}"
    );

    let r = delete(&t, &c, &p(&format!("/jobs/{id}"))).await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    get(&t, &c, &p(&format!("/jobs/{id}")))
        .await
        .error(404, "does not exist", None);
    delete(&t, &c, &p(&format!("/jobs/{id}")))
        .await
        .error(404, "does not exist", None);
    assert!(!get(&t, &c, &p("/jobs")).await.ids().contains(&id));
    assert_eq!(t.message(id).await["status"], "canceled");
    // Canceled, it is past the pending stage: an outgoing message that failed (ptt 2).
    assert!(get(&t, &c, &p("/outgoing")).await.ids().contains(&id));
    let o = get(&t, &c, &p(&format!("/outgoing/{id}")))
        .await
        .ok()
        .clone();
    assert_eq!(o["ptt"].as_i64(), Some(2), "{o}");
    get(&t, &c, &p("/jobs/999999"))
        .await
        .error(404, "does not exist", None);
}

#[tokio::test]
async fn commercial_jobs_wait_for_the_sending_window() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    let c = creds(&t).await;
    // A one-minute window twelve hours away, every day, in UTC.
    let now_utc = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let hour = (now_utc.hour() + 12) % 24;
    set(&t, "timezone", "UTC").await;
    set(&t, "commercial_days", "mon,tue,wed,thu,fri,sat,sun").await;
    set(
        &t,
        "commercial_hours",
        &format!("{hour:02}:00-{hour:02}:01"),
    )
    .await;
    let mut opening = now_utc
        .date()
        .at(hour, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("zoned");
    if opening <= now_utc {
        opening = opening.tomorrow().expect("tomorrow");
    }

    let held = job(&t, &c, json!({"message": "Promo", "receivers": [DEST]})).await;
    let held = held["ids"][0].as_i64().expect("id");
    let urgent = one(&t, &c, DEST2, "Your code: 1234", json!({})).await;
    // The transactional one goes at once; the commercial one waits for the window.
    wait_listed(&t, &c, &p("/outgoing"), urgent, true).await;
    assert!(!get(&t, &c, &p("/jobs")).await.ids().contains(&urgent));
    let o = get(&t, &c, &p(&format!("/outgoing/{urgent}")))
        .await
        .ok()
        .clone();
    assert_eq!(o["ptt"].as_i64(), Some(0), "{o}");
    assert!(get(&t, &c, &p("/jobs")).await.ids().contains(&held));
    assert!(!get(&t, &c, &p("/outgoing")).await.ids().contains(&held));
    let j = get(&t, &c, &p(&format!("/jobs/{held}"))).await.ok().clone();
    assert_eq!(j["message"], "Promo\nSTOP au 36111", "{j}");
    let row = t
        .sql(&format!(
            "SELECT status, next_try_at FROM messages WHERE id = {held}"
        ))
        .await;
    assert_eq!(row[0]["status"], "scheduled", "{row:?}");
    let due = row[0]["next_try_at"].as_i64().expect("next_try_at");
    let expected = opening.timestamp().as_millisecond();
    assert!(
        (due - expected).abs() <= 60_000,
        "held until {due}, the window opens at {expected} ({opening})"
    );
}

#[tokio::test]
async fn senders_must_be_registered_first() {
    let t = spawn().await;
    let c = creds(&t).await;
    let body =
        json!({"message": "Hi", "receivers": [DEST], "sender": "Pigeon", "noStopClause": true});
    send_json(&t, &c, "POST", &p("/jobs"), &body)
        .await
        .error(400, "", None);
    assert_eq!(get(&t, &c, &p("/senders")).await.ok(), &json!([]));

    let r = send_json(
        &t,
        &c,
        "POST",
        &p("/senders"),
        &json!({"sender": "Pigeon", "description": "Our name", "reason": "brand"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get(&t, &c, &p("/senders")).await.ok(), &json!(["Pigeon"]));
    let s = get(&t, &c, &p("/senders/Pigeon")).await.ok().clone();
    assert_eq!(s["sender"], "Pigeon", "{s}");
    assert_eq!(s["description"], "Our name", "{s}");
    assert_eq!(s["status"], "enable", "{s}");
    assert_eq!(s["type"], "alpha", "{s}");
    assert_eq!(s["referer"], "custom", "{s}");
    assert_eq!(s["comment"], Value::Null, "{s}");
    get(&t, &c, &p("/senders/Other"))
        .await
        .error(404, "does not exist", None);

    let report = job(&t, &c, body).await;
    let id = report["ids"][0].as_i64().expect("id");
    let j = get(&t, &c, &p(&format!("/jobs/{id}"))).await.ok().clone();
    assert_eq!(j["sender"], "Pigeon", "{j}");
    // Bob cannot send as Alice's sender.
    let b = bob(&t).await;
    let body =
        json!({"message": "Hi", "receivers": [DEST], "sender": "Pigeon", "noStopClause": true});
    send_json(&t, &b, "POST", "/1.0/sms/sms-bob-1/jobs", &body)
        .await
        .error(400, "", None);
}

// Outgoing messages.

#[tokio::test]
async fn sent_messages_are_outgoing_with_filters_and_delivery_receipts() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    let c = creds(&t).await;
    let a = one(&t, &c, DEST, "First", json!({"tag": "t1"})).await;
    let b = one(&t, &c, DEST2, "Second", json!({"tag": "t2"})).await;
    wait_listed(&t, &c, &p("/outgoing"), a, true).await;
    wait_listed(&t, &c, &p("/outgoing"), b, true).await;
    assert!(get(&t, &c, &p("/jobs")).await.ids().is_empty());

    let ids = |q: String| {
        let t = &t;
        let c = &c;
        async move {
            let mut ids = get(t, c, &p(&format!("/outgoing?{q}"))).await.ids();
            ids.sort_unstable();
            ids
        }
    };
    assert_eq!(ids("tag=t1".into()).await, [a]);
    assert_eq!(ids("tag=t2".into()).await, [b]);
    assert_eq!(ids("tag=none".into()).await, Vec::<i64>::new());
    assert_eq!(ids(format!("receiver={}", enc(DEST2))).await, [b]);
    assert_eq!(
        ids(format!("creationDatetime.from={}", enc(&iso_in(-1)))).await,
        [a, b]
    );
    assert_eq!(
        ids(format!("creationDatetime.from={}", enc(&iso_in(1)))).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(format!("creationDatetime.to={}", enc(&iso_in(-1)))).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(format!(
            "creationDatetime.from={}&creationDatetime.to={}&tag=t1",
            enc(&iso_in(-1)),
            enc(&iso_in(1))
        ))
        .await,
        [a]
    );

    let o = get(&t, &c, &p(&format!("/outgoing/{a}")))
        .await
        .ok()
        .clone();
    assert_eq!(o["id"].as_i64(), Some(a), "{o}");
    assert_eq!(o["receiver"], DEST, "{o}");
    assert_eq!(o["message"], "First", "{o}");
    assert_eq!(o["tag"], "t1", "{o}");
    assert_eq!(o["ptt"].as_i64(), Some(0), "{o}");
    assert_eq!(o["deliveryReceipt"].as_i64(), Some(0), "{o}");
    assert_eq!(o["batchID"], Value::Null, "{o}");
    assert_eq!(o["tariffCode"], Value::Null, "{o}");
    assert_eq!(o["numberOfSms"].as_i64(), Some(1), "{o}");
    assert!(o.get("messageID").is_some(), "messageID missing from {o}");
    assert!(o["sentAt"].is_string(), "{o}");
    // A sent message is not a job any more.
    get(&t, &c, &p(&format!("/jobs/{a}")))
        .await
        .error(404, "does not exist", None);

    deliver(&t, DEST).await;
    let delivered = poll(WAIT, || async {
        let o = get(&t, &c, &p(&format!("/outgoing/{a}")))
            .await
            .ok()
            .clone();
        (o["deliveryReceipt"].as_i64() == Some(1)).then_some(o)
    })
    .await;
    let Some(delivered) = delivered else {
        panic!("never delivered: {}", t.message(a).await)
    };
    assert_eq!(delivered["ptt"].as_i64(), Some(0), "{delivered}");
    assert_eq!(ids("deliveryReceipt=1".into()).await, [a]);
    assert_eq!(ids("deliveryReceipt=0".into()).await, [b]);

    let r = delete(&t, &c, &p(&format!("/outgoing/{a}"))).await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    get(&t, &c, &p(&format!("/outgoing/{a}")))
        .await
        .error(404, "does not exist", None);
    delete(&t, &c, &p(&format!("/outgoing/{a}")))
        .await
        .error(404, "does not exist", None);
    assert_eq!(get(&t, &c, &p("/outgoing")).await.ids(), [b]);
}

// Callbacks.

type Hits = Arc<Mutex<Vec<(Method, String, Vec<(String, String)>)>>>;

/// A receiver on 127.0.0.1 recording each call's method, path and query parameters.
async fn receiver() -> (String, Hits) {
    let got: Hits = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/{*path}",
        any(move |method: Method, uri: Uri, _headers: HeaderMap| {
            let sink = sink.clone();
            async move {
                let query = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
                sink.lock()
                    .expect("lock")
                    .push((method, uri.path().to_string(), query));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, got)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `dlr` codes received on `path` for job `id`, once they are `want`.
async fn dlrs(got: &Hits, path: &str, id: i64, want: &[&str]) {
    let seen = || {
        got.lock()
            .expect("lock")
            .iter()
            .filter(|(_, p, q)| p == path && param(q, "id") == Some(&id.to_string()))
            .map(|(_, _, q)| param(q, "dlr").unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let done = poll(WAIT, || async { (seen() == want).then_some(()) }).await;
    assert!(
        done.is_some(),
        "callBack dlr codes for {id}: {:?}, wanted {want:?} (all: {:?})",
        seen(),
        got.lock().expect("lock")
    );
}

#[tokio::test]
async fn the_call_back_is_called_when_sent_and_when_delivered() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    let c = creds(&t).await;
    let (base, got) = receiver().await;
    let r = send_json(
        &t,
        &c,
        "PUT",
        &p(""),
        &json!({"callBack": format!("{base}/dlr?token=abc")}),
    )
    .await;
    assert_eq!(r.ok(), &Value::Null);
    let id = one(&t, &c, DEST, "Hello", json!({})).await;
    dlrs(&got, "/dlr", id, &["8"]).await;
    deliver(&t, DEST).await;
    dlrs(&got, "/dlr", id, &["8", "1"]).await;
    for (method, _, query) in got.lock().expect("lock").iter() {
        assert_eq!(method, Method::GET);
        assert_eq!(param(query, "token"), Some("abc"), "{query:?}");
    }
}

#[tokio::test]
async fn the_stop_call_back_is_called_when_a_stop_arrives() {
    let t = spawn_sending().await;
    let phone = test_phone(&t).await;
    let c = creds(&t).await;
    let (base, got) = receiver().await;
    let r = send_json(
        &t,
        &c,
        "PUT",
        &p(""),
        &json!({"stopCallBack": format!("{base}/stop")}),
    )
    .await;
    assert_eq!(r.ok(), &Value::Null);
    inject(&t, phone, DEST, "Hello there").await;
    inject(&t, phone, DEST, "STOP").await;
    let hit = poll(WAIT, || async {
        got.lock()
            .expect("lock")
            .iter()
            .find(|(_, path, _)| path == "/stop")
            .cloned()
    })
    .await
    .unwrap_or_else(|| panic!("no stopCallBack: {:?}", got.lock().expect("lock")));
    let (method, _, query) = hit;
    assert_eq!(method, Method::GET);
    assert_eq!(param(&query, "number"), Some(DEST), "{query:?}");
    assert_eq!(param(&query, "message"), Some("STOP"), "{query:?}");
    let id: i64 = param(&query, "id")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no integer id in {query:?}"));
    let i = get(&t, &c, &p(&format!("/incoming/{id}")))
        .await
        .ok()
        .clone();
    assert_eq!(
        (&i["message"], &i["sender"]),
        (&json!("STOP"), &json!(DEST)),
        "{i}"
    );
    // Only the STOP called it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stops = got
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, path, _)| path == "/stop")
        .count();
    assert_eq!(stops, 1);
}

// Incoming messages and the blacklist.

#[tokio::test]
async fn inbound_sms_are_incoming_until_deleted() {
    let t = spawn().await;
    let phone = test_phone(&t).await;
    let c = creds(&t).await;
    assert!(get(&t, &c, &p("/incoming")).await.ids().is_empty());
    inject(&t, phone, DEST, "Bonjour à vous").await;
    inject(&t, phone, DEST2, "Second").await;
    let ids = get(&t, &c, &p("/incoming")).await.ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let mut by_text = std::collections::HashMap::new();
    for id in &ids {
        let i = get(&t, &c, &p(&format!("/incoming/{id}")))
            .await
            .ok()
            .clone();
        assert_eq!(i["id"].as_i64(), Some(*id), "{i}");
        assert_eq!(i["credits"].as_f64(), Some(0.0), "{i}");
        assert!(i.get("tag").is_some(), "tag missing from {i}");
        let created = i["creationDatetime"].as_str().expect("date");
        let at: jiff::Timestamp = created
            .parse()
            .unwrap_or_else(|_| panic!("not ISO 8601 with offset: {created}"));
        assert!((at.as_second() - now()).abs() <= 60, "{created}");
        by_text.insert(i["message"].as_str().expect("message").to_string(), i);
    }
    let first = &by_text["Bonjour à vous"];
    assert_eq!(first["sender"], DEST, "{first}");
    assert_eq!(by_text["Second"]["sender"], DEST2);
    let first_id = first["id"].as_i64().expect("id");
    let filtered = get(&t, &c, &p(&format!("/incoming?sender={}", enc(DEST2))))
        .await
        .ids();
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_ne!(filtered[0], first_id);
    assert!(
        get(
            &t,
            &c,
            &p(&format!(
                "/incoming?creationDatetime.from={}",
                enc(&iso_in(1))
            ))
        )
        .await
        .ids()
        .is_empty()
    );

    let r = delete(&t, &c, &p(&format!("/incoming/{first_id}"))).await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    get(&t, &c, &p(&format!("/incoming/{first_id}")))
        .await
        .error(404, "does not exist", None);
    delete(&t, &c, &p(&format!("/incoming/{first_id}")))
        .await
        .error(404, "does not exist", None);
    assert_eq!(get(&t, &c, &p("/incoming")).await.ids(), filtered);
    // Outbound messages are never incoming.
    let out = one(&t, &c, DEST, "Out", json!({})).await;
    get(&t, &c, &p(&format!("/incoming/{out}")))
        .await
        .error(404, "does not exist", None);
}

#[tokio::test]
async fn a_stop_blacklists_the_number_until_deleted() {
    let t = spawn().await;
    let phone = test_phone(&t).await;
    let c = creds(&t).await;
    assert_eq!(get(&t, &c, &p("/blacklists")).await.ok(), &json!([]));
    inject(&t, phone, DEST, "STOP").await;
    assert_eq!(get(&t, &c, &p("/blacklists")).await.ok(), &json!([DEST]));
    let entry = get(&t, &c, &p(&format!("/blacklists/{DEST}")))
        .await
        .ok()
        .clone();
    assert_eq!(entry["number"], DEST, "{entry}");
    assert_eq!(entry["batchID"], Value::Null, "{entry}");
    assert_eq!(entry["smsOutgoingID"], Value::Null, "{entry}");
    let created = entry["dateCreation"].as_str().expect("date");
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
    get(&t, &c, &p(&format!("/blacklists/{DEST2}")))
        .await
        .error(404, "does not exist", None);
    let report = job(
        &t,
        &c,
        json!({"message": "Hi", "receivers": [DEST], "noStopClause": true}),
    )
    .await;
    assert_eq!(report["invalidReceivers"], json!([DEST]), "{report}");

    let r = delete(&t, &c, &p(&format!("/blacklists/{DEST}"))).await;
    assert_eq!(r.ok(), &Value::Null, "{}", r.text);
    assert_eq!(get(&t, &c, &p("/blacklists")).await.ok(), &json!([]));
    get(&t, &c, &p(&format!("/blacklists/{DEST}")))
        .await
        .error(404, "does not exist", None);
    let report = job(
        &t,
        &c,
        json!({"message": "Hi", "receivers": [DEST], "noStopClause": true}),
    )
    .await;
    assert_eq!(report["validReceivers"], json!([DEST]), "{report}");
}

// Estimates.

#[tokio::test]
async fn estimates_count_characters_parts_and_the_stop_mention() {
    let t = spawn().await;
    let c = creds(&t).await;
    let estimate = |message: String, no_stop: bool| {
        let t = &t;
        let c = &c;
        async move {
            let body = json!({"message": message, "noStopClause": no_stop, "senderType": "alpha"});
            send_json(t, c, "POST", "/1.0/sms/estimate", &body)
                .await
                .ok()
                .clone()
        }
    };
    let e = estimate("Hello".into(), true).await;
    assert_eq!(
        e,
        json!({"characters": 5, "charactersClass": "7bits", "maxCharactersPerPart": 160, "parts": 1})
    );
    // "\nSTOP au 36111": 14 more characters.
    let e = estimate("Hello".into(), false).await;
    assert_eq!(
        (e["characters"].as_i64(), e["parts"].as_i64()),
        (Some(19), Some(1)),
        "{e}"
    );
    // GSM 7-bit letters such as é stay 7 bits.
    let e = estimate("Héllo".into(), true).await;
    assert_eq!(e["charactersClass"], "7bits", "{e}");
    let e = estimate("Привет".into(), true).await;
    assert_eq!(
        e,
        json!({"characters": 6, "charactersClass": "unicode", "maxCharactersPerPart": 70, "parts": 1})
    );
    let e = estimate("ы".repeat(71), true).await;
    assert_eq!(
        (e["charactersClass"].as_str(), e["parts"].as_i64()),
        (Some("unicode"), Some(2)),
        "{e}"
    );
    let e = estimate("a".repeat(160), true).await;
    assert_eq!(e["parts"].as_i64(), Some(1), "{e}");
    let e = estimate("a".repeat(161), true).await;
    assert_eq!(
        (e["characters"].as_i64(), e["parts"].as_i64()),
        (Some(161), Some(2)),
        "{e}"
    );
    let e = estimate("a".repeat(150), false).await;
    assert_eq!(
        (e["characters"].as_i64(), e["parts"].as_i64()),
        (Some(164), Some(2)),
        "{e}"
    );
}

// Ownership.

#[tokio::test]
async fn accounts_cannot_reach_each_others_messages() {
    let t = spawn().await;
    let phone = test_phone(&t).await;
    let c = creds(&t).await;
    let b = bob(&t).await;
    let pending = one(&t, &c, DEST, "Mine", json!({"differedPeriod": 60})).await;
    let canceled = one(&t, &c, DEST2, "Mine too", json!({"differedPeriod": 60})).await;
    assert_eq!(
        delete(&t, &c, &p(&format!("/jobs/{canceled}"))).await.ok(),
        &Value::Null
    );
    inject(&t, phone, DEST, "Hi Alice").await;
    let incoming = get(&t, &c, &p("/incoming")).await.ids()[0];

    let bobs = |rest: String| format!("/1.0/sms/sms-bob-1{rest}");
    for (kind, id) in [
        ("jobs", pending),
        ("outgoing", canceled),
        ("incoming", incoming),
    ] {
        let target = bobs(format!("/{kind}/{id}"));
        get(&t, &b, &target)
            .await
            .error(404, "does not exist", None);
        delete(&t, &b, &target)
            .await
            .error(404, "does not exist", None);
        assert!(
            !get(&t, &b, &bobs(format!("/{kind}")))
                .await
                .ids()
                .contains(&id)
        );
        // Through Alice's service name, Bob's credentials find nothing either.
        get(&t, &b, &p(&format!("/{kind}/{id}")))
            .await
            .error(404, "does not exist", None);
        delete(&t, &b, &p(&format!("/{kind}/{id}")))
            .await
            .error(404, "does not exist", None);
        // Alice still has it.
        let mine = get(&t, &c, &p(&format!("/{kind}/{id}"))).await;
        assert_eq!(mine.status, 200, "{kind}/{id}: {}", mine.text);
    }
    assert_eq!(t.message(pending).await["status"], "scheduled");
}

// Virtual numbers: a phone's own number (its adapter data's `number`).

#[tokio::test]
async fn virtual_numbers_send_through_their_phone_only() {
    let t = spawn().await;
    let c = creds(&t).await;
    test_phone(&t).await;
    let numbered = t
        .create(
            "/api/phone/",
            &[
                ("name", "numbered"),
                ("adapter", "test"),
                ("adapter_data[number]", "+33600000001"),
            ],
        )
        .await;
    assert_eq!(
        get(&t, &c, &p("/virtualNumbers")).await.ok(),
        &json!(["+33600000001"])
    );
    // Outside the commercial window: a virtual number's job is never held, nor mentions STOP.
    let hour = (jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .hour()
        + 12)
        % 24;
    set(
        &t,
        "commercial_hours",
        &format!("{hour:02}:00-{hour:02}:01"),
    )
    .await;
    for number in ["+33600000001", "0033600000001"] {
        let target = p(&format!("/virtualNumbers/{number}/jobs"));
        let r = send_json(
            &t,
            &c,
            "POST",
            &target,
            &json!({"message": "Via the number", "receivers": [DEST, "bad"]}),
        )
        .await;
        let report = r.ok();
        assert_eq!(report["validReceivers"], json!([DEST]), "{report}");
        assert_eq!(report["invalidReceivers"], json!(["bad"]), "{report}");
        assert_eq!(
            report["totalCreditsRemoved"].as_f64(),
            Some(1.0),
            "{report}"
        );
        let id = report["ids"][0].as_i64().expect("id");
        let row = t.message(id).await;
        assert_eq!(row["phone_id"], numbered, "{row}");
        assert_eq!(row["phone_fixed"], 1, "{row}");
        assert_eq!(row["text"], "Via the number", "{row}");
        assert_eq!(row["status"], "queued", "{row}");
    }
    send_json(
        &t,
        &c,
        "POST",
        &p("/virtualNumbers/+33600000099/jobs"),
        &json!({"message": "x", "receivers": [DEST]}),
    )
    .await
    .error(404, "does not exist", None);
    // Bob does not have Alice's number.
    let b = bob(&t).await;
    assert_eq!(
        get(&t, &b, "/1.0/sms/sms-bob-1/virtualNumbers").await.ok(),
        &json!([])
    );
    send_json(
        &t,
        &b,
        "POST",
        "/1.0/sms/sms-bob-1/virtualNumbers/+33600000001/jobs",
        &json!({"message": "x", "receivers": [DEST]}),
    )
    .await
    .error(404, "does not exist", None);
}
