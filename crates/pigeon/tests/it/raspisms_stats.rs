//! `GET /api/usage/`, `GET /api/stats/sms-status/` and `GET /api/invalid_number/[{page}/]`, over
//! messages inserted through the store (dates in UTC, the default account time zone).

use std::collections::BTreeMap;

use pigeon::services::accounts;
use pigeon_store::messages::{self, NewMessage};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, spawn};

const INVALID: &str = "You have specified an invalid parameter : ";
const MISSING: &str = "One require parameter is missing : ";

// ---------------------------------------------------------------------------------------------
// Helpers

async fn phone(t: &TestApp, key: &str, name: &str) -> i64 {
    let a = t
        .post_as(key, "/api/phone/", &[("name", name), ("adapter", "test")])
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.ok().as_i64().expect("phone id")
}

async fn user_id(t: &TestApp, key: &str) -> i64 {
    accounts::by_api_key(&t.app, key)
        .await
        .expect("lookup")
        .expect("user")
        .id
}

/// An outbound message with `status`, sent at `at` (UTC `Y-m-d H:i:s`).
struct Sms<'a> {
    user: i64,
    phone: i64,
    to: &'a str,
    status: &'a str,
    at: &'a str,
    tag: Option<&'a str>,
}

impl Sms<'_> {
    async fn insert(&self, t: &TestApp) {
        let message = NewMessage {
            user_id: self.user,
            phone_id: Some(self.phone),
            direction: "outbound",
            destination: Some(self.to.to_string()),
            text: "hello".into(),
            status: self.status.into(),
            tag: self.tag.map(str::to_string),
            at: pigeon_core::time::parse_local(self.at, &jiff::tz::TimeZone::UTC).expect("date"),
            ..Default::default()
        };
        messages::insert(&t.app.store, &message)
            .await
            .expect("insert message");
    }
}

/// Inserts `(destination, status)` messages of one user on one phone, all on 2024-03-10.
async fn sends(t: &TestApp, user: i64, phone: i64, list: &[(&str, &str)]) {
    for (to, status) in list {
        Sms {
            user,
            phone,
            to,
            status,
            at: "2024-03-10 12:00:00",
            tag: None,
        }
        .insert(t)
        .await;
    }
}

async fn inbound(t: &TestApp, user: i64, phone: i64) {
    let message = NewMessage {
        user_id: user,
        phone_id: Some(phone),
        direction: "inbound",
        origin: Some("+33612345678".into()),
        text: "incoming".into(),
        status: "received".into(),
        at: pigeon_core::time::parse_local("2024-03-10 12:00:00", &jiff::tz::TimeZone::UTC)
            .expect("date"),
        ..Default::default()
    };
    messages::insert(&t.app.store, &message)
        .await
        .expect("insert message");
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn get_with(t: &TestApp, key: &str, path: &str, pairs: &[(&str, &str)]) -> Answer {
    t.get_as(key, &format!("{path}?{}", query(pairs))).await
}

fn assert_get_error(a: &Answer, code: i64, prefix: &str) {
    assert_eq!((a.status, a.error_code()), (404, code), "{}", a.text);
    assert!(
        a.message().starts_with(prefix),
        "message {:?} does not start with {prefix:?}",
        a.message()
    );
    assert!(a.body["response"].is_null(), "{}", a.text);
}

fn success(a: &Answer) -> &Value {
    assert_eq!(a.status, 200, "{}", a.text);
    a.ok()
}

// ---------------------------------------------------------------------------------------------
// GET /api/usage/

/// Alice: phones p1 (three sent in March: tags camp-spring, campaign, other; plus a queued and an
/// inbound message that do not count) and p2 (nothing). Bob: one phone with two sent.
struct Usage {
    t: TestApp,
    p1: i64,
    p2: i64,
    bob: String,
    bob_phone: i64,
}

async fn usage_fixture() -> Usage {
    let t = spawn().await;
    let p1 = phone(&t, &t.key, "P1").await;
    let p2 = phone(&t, &t.key, "P2").await;
    let user = t.user_id;
    let to = "+33612345678";
    for (status, at, tag) in [
        ("sent", "2024-03-10 10:00:00", Some("camp-spring")),
        ("delivered", "2024-03-11 10:00:00", Some("campaign")),
        ("failed", "2024-03-12 10:00:00", Some("other")),
        ("queued", "2024-03-11 10:00:00", Some("campaign")),
    ] {
        Sms {
            user,
            phone: p1,
            to,
            status,
            at,
            tag,
        }
        .insert(&t)
        .await;
    }
    inbound(&t, user, p1).await;
    let bob = t.other_user("bob@example.com").await;
    let bob_id = user_id(&t, &bob).await;
    let bob_phone = phone(&t, &bob, "Bob").await;
    sends(&t, bob_id, bob_phone, &[(to, "delivered"), (to, "sent")]).await;
    Usage {
        t,
        p1,
        p2,
        bob,
        bob_phone,
    }
}

impl Usage {
    fn expect(&self, p1: i64) -> Value {
        json!({"total": p1, "phones_volumes": {self.p1.to_string(): p1, self.p2.to_string(): 0}})
    }

    async fn usage(&self, pairs: &[(&str, &str)]) -> Value {
        success(&get_with(&self.t, &self.t.key, "/api/usage/", pairs).await).clone()
    }
}

#[tokio::test]
async fn usage_counts_sent_messages_of_every_phone_of_the_caller() {
    let u = usage_fixture().await;
    assert_eq!(u.usage(&[]).await, u.expect(3));
    let a = u.t.get("/api/usage").await;
    assert_eq!(success(&a), &u.expect(3));
    assert!(
        a.body["next"].is_null() && a.body["prev"].is_null(),
        "{}",
        a.text
    );
    let bob = success(&u.t.get_as(&u.bob, "/api/usage/").await).clone();
    assert_eq!(
        bob,
        json!({"total": 2, "phones_volumes": {u.bob_phone.to_string(): 2}})
    );
}

#[tokio::test]
async fn usage_filters_by_start_and_end() {
    let u = usage_fixture().await;
    assert_eq!(
        u.usage(&[("start", "2024-03-11 00:00:00")]).await,
        u.expect(2)
    );
    assert_eq!(
        u.usage(&[("end", "2024-03-11 10:00:00")]).await,
        u.expect(2)
    );
    assert_eq!(
        u.usage(&[
            ("start", "2024-03-11 00:00:00"),
            ("end", "2024-03-11 23:59:59")
        ])
        .await,
        u.expect(1)
    );
    assert_eq!(
        u.usage(&[("start", "2025-01-01 00:00:00")]).await,
        u.expect(0)
    );
}

#[tokio::test]
async fn usage_tag_is_a_like_pattern() {
    let u = usage_fixture().await;
    assert_eq!(u.usage(&[("tag", "camp%")]).await, u.expect(2));
    assert_eq!(u.usage(&[("tag", "camp_spring")]).await, u.expect(1));
    assert_eq!(u.usage(&[("tag", "other")]).await, u.expect(1));
    assert_eq!(u.usage(&[("tag", "%")]).await, u.expect(3));
    assert_eq!(u.usage(&[("tag", "nothing")]).await, u.expect(0));
    assert_eq!(
        u.usage(&[("tag", "camp%"), ("start", "2024-03-11 00:00:00")])
            .await,
        u.expect(1)
    );
}

#[tokio::test]
async fn usage_dates_must_be_strict_y_m_d_h_i_s() {
    let u = usage_fixture().await;
    for (name, value) in [
        ("start", "2024-03-10"),
        ("start", "2024-03-10T00:00:00"),
        ("end", "yesterday"),
        ("end", "2024-13-01 00:00:00"),
        ("end", "2024-03-10 00:00"),
    ] {
        let a = get_with(&u.t, &u.t.key, "/api/usage/", &[(name, value)]).await;
        assert_get_error(&a, 2, INVALID);
        assert!(
            a.message().contains(name),
            "{name}={value}: {}",
            a.message()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// GET /api/stats/sms-status/

#[tokio::test]
async fn sms_status_requires_start_and_end() {
    let t = spawn().await;
    for pairs in [
        vec![],
        vec![("start", "2024-03-01")],
        vec![("end", "2024-03-31")],
    ] {
        let a = get_with(&t, &t.key, "/api/stats/sms-status/", &pairs).await;
        assert_get_error(&a, 4, MISSING);
        assert_eq!(
            a.message(),
            "One require parameter is missing : start and end date are required."
        );
    }
    let a = get_with(
        &t,
        &t.key,
        "/api/stats/sms-status/",
        &[("start", "not a date"), ("end", "2024-03-31")],
    )
    .await;
    assert_get_error(&a, 2, INVALID);
}

fn status_row(day: &str, phone: i64, status: &str, nb: i64) -> Value {
    json!({"at_ymd": day, "id_phone": phone, "status": status, "nb": nb})
}

#[tokio::test]
async fn sms_status_counts_per_day_phone_and_raspisms_status() {
    let t = spawn().await;
    let p1 = phone(&t, &t.key, "P1").await;
    let p2 = phone(&t, &t.key, "P2").await;
    let to = "+33612345678";
    let user = t.user_id;
    for status in [
        "sent",
        "sent",
        "delivered",
        "failed",
        "undelivered",
        "expired",
        "queued",
    ] {
        Sms {
            user,
            phone: p1,
            to,
            status,
            at: "2024-03-10 08:00:00",
            tag: None,
        }
        .insert(&t)
        .await;
    }
    Sms {
        user,
        phone: p1,
        to,
        status: "delivered",
        at: "2024-03-11 23:30:00",
        tag: None,
    }
    .insert(&t)
    .await;
    Sms {
        user,
        phone: p2,
        to,
        status: "sent",
        at: "2024-03-10 09:00:00",
        tag: None,
    }
    .insert(&t)
    .await;
    Sms {
        user,
        phone: p2,
        to,
        status: "sent",
        at: "2024-04-01 09:00:00",
        tag: None,
    }
    .insert(&t)
    .await;
    inbound(&t, user, p1).await;
    let bob = t.other_user("bob@example.com").await;
    let bob_phone = phone(&t, &bob, "Bob").await;
    sends(&t, user_id(&t, &bob).await, bob_phone, &[(to, "failed")]).await;

    let march = [("start", "2024-03-01"), ("end", "2024-03-31")];
    let rows = success(&get_with(&t, &t.key, "/api/stats/sms-status/", &march).await).clone();
    assert_eq!(
        rows,
        json!([
            status_row("2024-03-10", p1, "delivered", 1),
            status_row("2024-03-10", p1, "failed", 3),
            status_row("2024-03-10", p1, "unknown", 2),
            status_row("2024-03-10", p2, "unknown", 1),
            status_row("2024-03-11", p1, "delivered", 1),
        ])
    );

    let p2_id = p2.to_string();
    let one_day = [
        ("start", "2024-03-10 00:00:00"),
        ("end", "2024-03-10 23:59:59"),
        ("id_phone", p2_id.as_str()),
    ];
    let rows = success(&get_with(&t, &t.key, "/api/stats/sms-status/", &one_day).await).clone();
    assert_eq!(rows, json!([status_row("2024-03-10", p2, "unknown", 1)]));

    let empty = [("start", "2020-01-01"), ("end", "2020-12-31")];
    assert_eq!(
        success(&get_with(&t, &t.key, "/api/stats/sms-status/", &empty).await),
        &json!([])
    );

    let bobs = success(&get_with(&t, &bob, "/api/stats/sms-status/", &march).await).clone();
    assert_eq!(
        bobs,
        json!([status_row("2024-03-10", bob_phone, "failed", 1)])
    );
}

#[tokio::test]
async fn sms_status_for_another_users_phone_is_error_2() {
    let t = spawn().await;
    let bob = t.other_user("bob@example.com").await;
    let bob_phone = phone(&t, &bob, "Bob").await;
    sends(
        &t,
        user_id(&t, &bob).await,
        bob_phone,
        &[("+33612345678", "delivered")],
    )
    .await;
    let bob_phone_id = bob_phone.to_string();
    let pairs = [
        ("start", "2024-03-01"),
        ("end", "2024-03-31"),
        ("id_phone", bob_phone_id.as_str()),
    ];
    let a = get_with(&t, &t.key, "/api/stats/sms-status/", &pairs).await;
    assert_get_error(&a, 2, INVALID);
    assert_eq!(
        a.message(),
        format!("{INVALID}phone with id {bob_phone} does not exists.")
    );
    let a = get_with(&t, &bob, "/api/stats/sms-status/", &pairs).await;
    assert_eq!(success(&a).as_array().map(Vec::len), Some(1), "{}", a.text);
}

// ---------------------------------------------------------------------------------------------
// GET /api/invalid_number/

const X: &str = "+33600000001";
const Y: &str = "+33600000002";
const Z: &str = "+33600000003";
const W: &str = "+33600000009";

/// Alice: X 4 sent (2 failed, 1 unknown, 1 delivered), Y 3 sent (1 failed, 2 unknown, and a
/// queued one that does not count), Z 1 delivered. Bob: W 3 failed.
async fn health_fixture() -> (TestApp, String) {
    let t = spawn().await;
    let p = phone(&t, &t.key, "P").await;
    let list = [
        (X, "failed"),
        (X, "undelivered"),
        (X, "sent"),
        (X, "delivered"),
        (Y, "expired"),
        (Y, "sent"),
        (Y, "sent"),
        (Y, "queued"),
        (Z, "delivered"),
    ];
    sends(&t, t.user_id, p, &list).await;
    let bob = t.other_user("bob@example.com").await;
    let bob_phone = phone(&t, &bob, "Bob").await;
    sends(
        &t,
        user_id(&t, &bob).await,
        bob_phone,
        &[(W, "failed"), (W, "failed"), (W, "failed")],
    )
    .await;
    (t, bob)
}

/// `(destination, total, failed ratio, unknown ratio)` of each row, by destination.
fn health(response: &Value) -> Vec<(String, i64, f64, f64)> {
    let rows = response
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {response}"));
    let mut out: Vec<_> = rows
        .iter()
        .map(|r| {
            let obj = r.as_object().expect("row");
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "destination",
                    "failed_percentage",
                    "total_sms_sent",
                    "unknown_percentage"
                ],
                "{r}"
            );
            (
                r["destination"].as_str().expect("destination").to_string(),
                r["total_sms_sent"]
                    .as_i64()
                    .expect("total_sms_sent is an integer"),
                r["failed_percentage"]
                    .as_f64()
                    .expect("failed_percentage is a number"),
                r["unknown_percentage"]
                    .as_f64()
                    .expect("unknown_percentage is a number"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn assert_health(got: &[(String, i64, f64, f64)], expected: &[(&str, i64, f64, f64)]) {
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!((g.0.as_str(), g.1), (e.0, e.1), "{got:?}");
        assert!(
            (g.2 - e.2).abs() < 1e-9 && (g.3 - e.3).abs() < 1e-9,
            "{g:?} != {e:?}"
        );
    }
}

async fn invalid_numbers(
    t: &TestApp,
    key: &str,
    volume: &str,
    failed: &str,
    unknown: &str,
) -> Vec<(String, i64, f64, f64)> {
    let pairs = [
        ("volume", volume),
        ("percent_failed", failed),
        ("percent_unknown", unknown),
    ];
    health(success(
        &get_with(t, key, "/api/invalid_number/", &pairs).await,
    ))
}

#[tokio::test]
async fn invalid_number_requires_volume_and_both_percentages() {
    let t = spawn().await;
    let all = [
        ("volume", "1"),
        ("percent_failed", "50"),
        ("percent_unknown", "0"),
    ];
    for skip in 0..all.len() {
        let pairs: Vec<(&str, &str)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, p)| *p)
            .collect();
        let a = get_with(&t, &t.key, "/api/invalid_number/", &pairs).await;
        assert_get_error(&a, 4, MISSING);
        assert!(a.message().contains(all[skip].0), "{}", a.message());
    }
    let a = t.get("/api/invalid_number/").await;
    assert_get_error(&a, 4, MISSING);
    let a = get_with(&t, &t.key, "/api/invalid_number/abc/", &all).await;
    assert_get_error(&a, 2, INVALID);
}

#[tokio::test]
async fn invalid_number_rows_are_ratios_rounded_to_two_decimals() {
    let (t, _) = health_fixture().await;
    assert_health(
        &invalid_numbers(&t, &t.key, "0", "0", "0").await,
        &[(X, 4, 0.5, 0.25), (Y, 3, 0.33, 0.67), (Z, 1, 0.0, 0.0)],
    );
    assert_health(
        &invalid_numbers(&t, &t.key, "2", "30", "20").await,
        &[(X, 4, 0.5, 0.25), (Y, 3, 0.33, 0.67)],
    );
    assert_health(
        &invalid_numbers(&t, &t.key, "4", "0", "0").await,
        &[(X, 4, 0.5, 0.25)],
    );
    assert_health(
        &invalid_numbers(&t, &t.key, "0", "50", "0").await,
        &[(X, 4, 0.5, 0.25)],
    );
    assert_health(
        &invalid_numbers(&t, &t.key, "0", "0", "50").await,
        &[(Y, 3, 0.33, 0.67)],
    );
    assert_health(&invalid_numbers(&t, &t.key, "5", "0", "0").await, &[]);
}

#[tokio::test]
async fn invalid_number_lists_only_the_callers_destinations() {
    let (t, bob) = health_fixture().await;
    let alice = invalid_numbers(&t, &t.key, "0", "0", "0").await;
    assert!(
        alice.iter().all(|r| r.0 != W),
        "bob's destination leaked: {alice:?}"
    );
    let a = get_with(
        &t,
        &t.key,
        "/api/invalid_number/",
        &[
            ("volume", "0"),
            ("percent_failed", "0"),
            ("percent_unknown", "0"),
        ],
    )
    .await;
    assert!(!a.text.contains(W), "{}", a.text);
    assert_health(
        &invalid_numbers(&t, &bob, "0", "0", "0").await,
        &[(W, 3, 1.0, 0.0)],
    );
}

/// A link's path and its query pairs.
fn split_link(link: &str) -> (&str, BTreeMap<String, String>) {
    let (path, query) = link.split_once('?').unwrap_or((link, ""));
    (
        path,
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
    )
}

#[tokio::test]
async fn invalid_number_pages_link_with_the_filters_but_never_the_api_key() {
    let t = spawn().await;
    let p = phone(&t, &t.key, "P").await;
    let destinations: Vec<String> = (0..30).map(|i| format!("+336000001{i:02}")).collect();
    let list: Vec<(&str, &str)> = destinations
        .iter()
        .map(|d| (d.as_str(), "failed"))
        .collect();
    sends(&t, t.user_id, p, &list).await;
    let filters = [
        ("volume", "1"),
        ("percent_failed", "100"),
        ("percent_unknown", "0"),
    ];
    let expected_filters: BTreeMap<String, String> = filters
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let with_key = |page: &str| {
        format!(
            "{}/api/invalid_number/{page}?{}&api_key={}",
            t.base,
            query(&filters),
            t.key
        )
    };

    let first = answer(t.client.get(with_key(""))).await;
    let page0 = health(success(&first));
    assert_eq!(page0.len(), 25);
    assert!(first.body["prev"].is_null(), "{}", first.text);
    let next = first.body["next"]
        .as_str()
        .unwrap_or_else(|| panic!("no next: {}", first.text));
    assert!(
        !next.contains(&t.key) && !next.contains("api_key"),
        "{next}"
    );
    let (path, pairs) = split_link(next);
    assert_eq!(path, format!("{}/api/invalid_number/1/", t.base));
    assert_eq!(pairs, expected_filters);

    // The link works as given (the key comes from the header).
    let second = answer(t.client.get(next).header("X-Api-Key", &t.key)).await;
    let page1 = health(success(&second));
    assert_eq!(page1.len(), 5);
    assert!(second.body["next"].is_null(), "{}", second.text);
    let prev = second.body["prev"]
        .as_str()
        .unwrap_or_else(|| panic!("no prev: {}", second.text));
    assert!(
        !prev.contains(&t.key) && !prev.contains("api_key"),
        "{prev}"
    );
    let (path, pairs) = split_link(prev);
    assert_eq!(path, format!("{}/api/invalid_number/0/", t.base));
    assert_eq!(pairs, expected_filters);

    let same = answer(t.client.get(with_key("1/"))).await;
    assert_eq!(health(success(&same)), page1);

    let mut seen: Vec<String> = page0.into_iter().chain(page1).map(|r| r.0).collect();
    seen.sort();
    assert_eq!(seen, destinations);
}
