//! The Reach messaging API (`/rest/messaging/v1/...`) over HTTP: the seed's requests, MessageItem
//! answers, list paging, update/unschedule/delete, errors, ownership, the rate limit and the
//! signed status callbacks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::routing::post;
use pigeon::services::accounts;
use pigeon_core::signature;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, inject, poll, spawn, spawn_sending, spawn_with};

const DEST: &str = "+237671234567";
const SRC: &str = "+237691234567";
const WAIT: Duration = Duration::from_secs(10);
const BASE: &str = "/rest/messaging/v1";

fn url(t: &TestApp, op: &str) -> String {
    t.url(&format!("{BASE}/{op}"))
}

fn authed(t: &TestApp, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.header("ApiUser", "alice@example.com")
        .header("ApiKey", &t.key)
}

async fn post_form(t: &TestApp, op: &str, form: &[(&str, &str)]) -> Answer {
    answer(authed(t, t.client.post(url(t, op))).form(form)).await
}

async fn get_query(t: &TestApp, op: &str, query: &[(&str, &str)]) -> Answer {
    answer(authed(t, t.client.get(url(t, op))).query(query)).await
}

async fn create(t: &TestApp, extra: &[(&str, &str)]) -> Value {
    let mut form = vec![("dest", DEST), ("src", SRC), ("body", "Hello World!")];
    form.extend_from_slice(extra);
    let a = post_form(t, "create", &form).await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

fn id_of(item: &Value) -> String {
    item["messageId"].as_str().expect("messageId").to_string()
}

fn in_an_hour() -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn assert_error(a: &Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["errorCode"], 20000 + i64::from(status), "{}", a.text);
    assert!(
        a.body["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains(needle)),
        "{}",
        a.text
    );
    assert!(a.body["errorDetails"].is_object(), "{}", a.text);
}

#[tokio::test]
async fn the_seeds_curl_request_creates_a_message_item() {
    let t = spawn().await;
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-X", "POST", &url(&t, "create")])
        .args(["--data-urlencode", &format!("dest={DEST}")])
        .args(["--data-urlencode", &format!("src={SRC}")])
        .args([
            "--data-urlencode",
            "body=Hello World! This is a sms message.",
        ])
        .args([
            "-H",
            "ApiUser: alice@example.com",
            "-H",
            &format!("ApiKey: {}", t.key),
        ])
        .output()
        .await
        .expect("curl");
    let item: Value = serde_json::from_slice(&out.stdout).expect("json");
    for key in [
        "appletId",
        "apiVersion",
        "body",
        "dest",
        "src",
        "bulkId",
        "numSegments",
        "numMedia",
        "price",
        "priceUnit",
        "messageId",
        "status",
        "messageType",
        "errorCode",
        "errorMessage",
        "dateCreated",
        "dateSent",
        "dateUpdated",
    ] {
        assert!(item.get(key).is_some(), "{key} missing from {item}");
    }
    assert_eq!(item["body"], "Hello World! This is a sms message.");
    assert_eq!(
        (item["dest"].as_str(), item["src"].as_str()),
        (Some(DEST), Some(SRC))
    );
    assert_eq!(item["status"], "queued");
    assert_eq!(item["messageType"], "outbound");
    assert_eq!(
        (item["numSegments"].as_i64(), item["numMedia"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(id_of(&item).starts_with("MID"));
    let created = item["dateCreated"].as_str().expect("date");
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`, which the clients parse.
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.parse::<jiff::Timestamp>().is_ok(),
        "{created}"
    );

    // The seed's second example sends scheduledTime percent-encoded twice; it is read all the same.
    let at = in_an_hour().replace(':', "%3A");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-X", "POST", &url(&t, "create")])
        .args([
            "--data-urlencode",
            &format!("dest={DEST}"),
            "--data-urlencode",
            &format!("src={SRC}"),
        ])
        .args([
            "--data-urlencode",
            "body=later",
            "--data-urlencode",
            &format!("scheduledTime={at}"),
        ])
        .args([
            "-H",
            "ApiUser: alice@example.com",
            "-H",
            &format!("ApiKey: {}", t.key),
        ])
        .output()
        .await
        .expect("curl");
    let item: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(item["status"], "scheduled", "{item}");
    assert_eq!(
        (item["price"].clone(), item["dateSent"].clone()),
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn json_bodies_alphanumeric_senders_and_fetch() {
    let t = spawn().await;
    let body = json!({"dest": DEST, "src": "Pigeon", "body": "Salut", "bulkIdentifier": "b1", "validityPeriod": 60});
    let a = answer(authed(&t, t.client.post(url(&t, "create"))).json(&body)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (a.body["src"].as_str(), a.body["bulkId"].as_str()),
        (Some("Pigeon"), Some("b1"))
    );
    let fetched = get_query(&t, "fetch", &[("messageId", &id_of(&a.body))]).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body["messageId"], a.body["messageId"]);
    assert_eq!(fetched.body["body"], "Salut");
    let valid_for = t
        .sql("SELECT valid_until - created_at AS v FROM messages")
        .await[0]["v"]
        .as_i64()
        .expect("validity");
    assert!((59_000..=60_000).contains(&valid_for), "{valid_for}");
}

#[tokio::test]
async fn the_create_answer_is_the_message_as_fetched_afterwards() {
    let t = spawn().await;
    accounts::set_setting(&t.app, "alice@example.com", "price_per_segment", "0.05")
        .await
        .expect("price");
    let at = in_an_hour();
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[
            ("bulkIdentifier", "b7"),
            ("statusCallback", "http://127.0.0.1:9/cb"),
        ],
        &[("scheduledTime", &at), ("validityPeriod", "600")],
        &[("maxPrice", "0.01"), ("src", "Pigeon")],
    ];
    t.sql_write(&format!(
        "INSERT INTO stop_list (user_id, number, created_at) VALUES ({}, '+33612345678', 0)",
        t.user_id
    ))
    .await;
    let cases: Vec<&[(&str, &str)]> = cases
        .into_iter()
        .chain([&[("dest", "+33612345678")][..]])
        .collect();
    for extra in cases {
        let created = create(&t, extra).await;
        let fetched = get_query(&t, "fetch", &[("messageId", &id_of(&created))]).await;
        assert_eq!(fetched.status, 200, "{}", fetched.text);
        assert_eq!(created, fetched.body, "{extra:?}");
    }
}

#[tokio::test]
async fn bad_input_gets_reach_errors_and_stores_nothing() {
    let t = spawn().await;
    let long = "x".repeat(153 * 10 + 1);
    let soon = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(5)).to_string();
    let far = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 6)).to_string();
    for (form, needle) in [
        (vec![("src", SRC), ("body", "x")], "dest"),
        (
            vec![("dest", "0671234567"), ("src", SRC), ("body", "x")],
            "dest",
        ),
        (vec![("dest", DEST), ("body", "x")], "src"),
        (
            vec![("dest", DEST), ("src", "Far_Too_Long_Name"), ("body", "x")],
            "src",
        ),
        (vec![("dest", DEST), ("src", SRC)], "body"),
        (
            vec![("dest", DEST), ("src", SRC), ("body", &long)],
            "segments",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("scheduledTime", &soon),
            ],
            "15 minutes",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("scheduledTime", &far),
            ],
            "5 days",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("scheduledTime", "tomorrow"),
            ],
            "ISO 8601",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("validityPeriod", "14401"),
            ],
            "validityPeriod",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("validityPeriod", "0"),
            ],
            "validityPeriod",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("maxPrice", "-1"),
            ],
            "maxPrice",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("maxPrice", "cheap"),
            ],
            "maxPrice",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("statusCallback", "ftp://x"),
            ],
            "statusCallback",
        ),
        (
            vec![
                ("dest", DEST),
                ("src", SRC),
                ("body", "x"),
                ("statusCallback", "https://my_host.example/cb"),
            ],
            "underscores",
        ),
    ] {
        let a = post_form(&t, "create", &form).await;
        assert_error(&a, 400, needle);
    }
    let a = answer(
        authed(&t, t.client.post(url(&t, "create")))
            .header("content-type", "application/json")
            .body("[1"),
    )
    .await;
    assert_error(&a, 400, "JSON");
    assert_eq!(t.sql("SELECT COUNT(*) AS n FROM messages").await[0]["n"], 0);
    // Ten segments are allowed.
    create(&t, &[("body", &"x".repeat(153 * 10))]).await;
}

#[tokio::test]
async fn credentials_are_checked_and_messages_are_private() {
    let t = spawn().await;
    let mine = id_of(&create(&t, &[]).await);
    let fetch = |user: &'static str, key: String| {
        let t = &t;
        let mine = mine.clone();
        async move {
            answer(
                t.client
                    .get(url(t, "fetch"))
                    .query(&[("messageId", mine)])
                    .header("ApiUser", user)
                    .header("ApiKey", key),
            )
            .await
        }
    };
    assert_error(
        &answer(
            t.client
                .get(url(&t, "fetch"))
                .query(&[("messageId", &mine)]),
        )
        .await,
        401,
        "ApiKey",
    );
    assert_error(
        &fetch("alice@example.com", "wrong".into()).await,
        401,
        "ApiKey",
    );
    // The key of one account with the email of another is refused.
    let bob = t.other_user("bob@example.com").await;
    assert_error(
        &fetch("alice@example.com", bob.clone()).await,
        401,
        "ApiKey",
    );
    // Bob cannot see, change, cancel or delete Alice's message, nor find it in his list.
    let a = fetch("bob@example.com", bob.clone()).await;
    assert_error(&a, 404, "not found");
    assert_eq!(a.body["errorDetails"]["messageId"], mine.as_str());
    let as_bob = |r: reqwest::RequestBuilder| {
        r.header("ApiUser", "bob@example.com")
            .header("ApiKey", bob.clone())
    };
    for op in ["update", "unschedule"] {
        let a = answer(
            as_bob(t.client.post(url(&t, op)))
                .form(&[("messageId", mine.as_str()), ("body", "pwned")]),
        )
        .await;
        assert_error(&a, 404, "not found");
    }
    let a = answer(as_bob(t.client.delete(url(&t, "delete"))).query(&[("messageId", &mine)])).await;
    assert_error(&a, 404, "not found");
    let a = answer(as_bob(t.client.get(url(&t, "list")))).await;
    assert_eq!(a.body["totalMessages"], 0, "{}", a.text);
    let still = get_query(&t, "fetch", &[("messageId", &mine)]).await;
    assert_eq!(
        (still.body["body"].as_str(), still.body["status"].as_str()),
        (Some("Hello World!"), Some("queued"))
    );
    // A suspended account is refused.
    accounts::set_status(&t.app, "alice@example.com", "suspended")
        .await
        .expect("suspend");
    assert_error(
        &get_query(&t, "fetch", &[("messageId", &mine)]).await,
        403,
        "suspended",
    );
}

#[tokio::test]
async fn lists_page_from_zero_newest_first_with_only_six_keys() {
    let t = spawn().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let body = format!("n{i}");
        ids.push(id_of(
            &create(&t, &[("bulkIdentifier", "batch"), ("body", &body)]).await,
        ));
    }
    create(&t, &[("dest", "+33612345678")]).await;
    let mut seen = Vec::new();
    for page in 0..3 {
        let a = get_query(
            &t,
            "list",
            &[
                ("bulkIdentifier", "batch"),
                ("pageSize", "10"),
                ("page", &page.to_string()),
            ],
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        let keys: Vec<&String> = a.body.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            [
                "page",
                "pageSize",
                "totalMessages",
                "totalPages",
                "outOfPageRange",
                "messages"
            ]
        );
        assert_eq!(
            (
                a.body["page"].as_i64(),
                a.body["totalMessages"].as_i64(),
                a.body["totalPages"].as_i64()
            ),
            (Some(page), Some(25), Some(3))
        );
        assert_eq!(a.body["outOfPageRange"], false);
        seen.extend(
            a.body["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(id_of),
        );
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let past = get_query(
        &t,
        "list",
        &[
            ("bulkIdentifier", "batch"),
            ("pageSize", "10"),
            ("page", "3"),
        ],
    )
    .await;
    assert_eq!(
        (
            past.body["outOfPageRange"].as_bool(),
            past.body["messages"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    // Without paging parameters: page 0 of 20.
    let all = get_query(&t, "list", &[]).await;
    assert_eq!(
        (
            all.body["pageSize"].as_i64(),
            all.body["totalMessages"].as_i64()
        ),
        (Some(20), Some(26))
    );
    let by_dest = get_query(&t, "list", &[("dest", "+33 6 12 34 56 78")]).await;
    assert_eq!(by_dest.body["totalMessages"], 1, "{}", by_dest.text);
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    assert_eq!(
        get_query(&t, "list", &[("sentAt", &today)]).await.body["totalMessages"],
        26
    );
    assert_eq!(
        get_query(&t, "list", &[("sentBefore", "2020-01-01")])
            .await
            .body["totalMessages"],
        0
    );
    assert_error(
        &get_query(&t, "list", &[("pageSize", "0")]).await,
        400,
        "pageSize",
    );
}

#[tokio::test]
async fn update_unschedule_and_delete() {
    let t = spawn().await;
    let at = in_an_hour();
    let scheduled = id_of(&create(&t, &[("scheduledTime", &at)]).await);
    let a = post_form(
        &t,
        "update",
        &[("messageId", &scheduled), ("body", "Changed")],
    )
    .await;
    assert_eq!(
        (a.status, a.body["body"].as_str()),
        (200, Some("Changed")),
        "{}",
        a.text
    );
    assert_error(
        &post_form(&t, "update", &[("messageId", &scheduled), ("body", "")]).await,
        400,
        "empty",
    );
    // In progress: it cannot be deleted.
    let del = |id: String| {
        let t = &t;
        async move {
            answer(authed(t, t.client.delete(url(t, "delete"))).query(&[("messageId", id)])).await
        }
    };
    assert_error(&del(scheduled.clone()).await, 409, "in progress");
    let a = post_form(&t, "unschedule", &[("messageId", &scheduled)]).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("canceled")),
        "{}",
        a.text
    );
    assert_error(
        &post_form(&t, "unschedule", &[("messageId", &scheduled)]).await,
        409,
        "cannot be unscheduled",
    );
    let gone = del(scheduled.clone()).await;
    assert_eq!((gone.status, gone.text.as_str()), (204, ""));
    assert_error(
        &get_query(&t, "fetch", &[("messageId", &scheduled)]).await,
        404,
        "not found",
    );
    assert_error(&del(scheduled).await, 404, "not found");
    assert_error(
        &get_query(&t, "fetch", &[("messageId", "MIDnope")]).await,
        404,
        "not found",
    );
    assert_error(&get_query(&t, "fetch", &[]).await, 400, "messageId");
}

#[tokio::test]
async fn max_price_fails_a_message_that_costs_more() {
    let t = spawn().await;
    accounts::set_setting(&t.app, "alice@example.com", "price_per_segment", "0.05")
        .await
        .expect("price");
    let cheap = create(&t, &[("maxPrice", "0.05")]).await;
    assert_eq!(cheap["status"], "queued");
    assert_eq!(
        (cheap["price"].as_f64(), cheap["priceUnit"].as_str()),
        (Some(0.05), Some("eur"))
    );
    let dear = create(&t, &[("maxPrice", "0.01")]).await;
    assert_eq!(dear["status"], "failed", "{dear}");
    assert_eq!(dear["errorCode"], 30010);
    assert!(
        dear["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("maxPrice")),
        "{dear}"
    );
    // A number that answered STOP fails at once too, from the next message on.
    let inbox = t
        .create("/api/phone/", &[("name", "inbox"), ("adapter", "test")])
        .await;
    inject(&t, inbox, "+33612345678", "STOP").await;
    let stopped = create(&t, &[("dest", "+33612345678")]).await;
    assert_eq!(
        (stopped["status"].as_str(), stopped["errorCode"].as_i64()),
        (Some("failed"), Some(21610))
    );
}

#[tokio::test]
async fn over_the_rate_limit_the_answer_is_429_and_nothing_is_stored() {
    let t = spawn_with(|c| {
        c.reach_rate_per_sec = 1;
        c.reach_rate_burst = 3;
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(post_form(&t, "create", &[("dest", DEST), ("src", SRC), ("body", "x")]).await);
    }
    let accepted = answers.iter().filter(|a| a.status == 201).count();
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!((accepted, limited.len()), (3, 2));
    assert_error(limited[0], 429, "too many requests");
    let stored = t.sql("SELECT COUNT(*) AS n FROM messages").await;
    assert_eq!(stored[0]["n"], 3);
    // Each key has its own allowance.
    let bob = t.other_user("bob@example.com").await;
    let a = answer(
        t.client
            .get(url(&t, "list"))
            .header("ApiUser", "bob@example.com")
            .header("ApiKey", bob),
    )
    .await;
    assert_eq!(a.status, 200);
    let retry = reqwest::Client::new()
        .post(url(&t, "create"))
        .header("ApiUser", "alice@example.com")
        .header("ApiKey", &t.key)
        .form(&[("dest", DEST), ("src", SRC), ("body", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(retry.status(), 429);
    let wait: u64 = retry.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
}

type Callbacks = Arc<Mutex<Vec<(String, HeaderMap, Vec<(String, String)>)>>>;

/// A receiver on 127.0.0.1 recording each callback's path and query, headers and form.
async fn receiver() -> (String, Callbacks) {
    let got: Callbacks = Arc::default();
    let sink = got.clone();
    let app = Router::new().route(
        "/{*path}",
        post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let form = form_urlencoded::parse(&body).into_owned().collect();
                let target = uri
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                sink.lock().expect("lock").push((target, headers, form));
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

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Waits until the receiver holds callbacks with `statuses`, in that order.
async fn statuses(
    got: &Callbacks,
    want: &[&str],
) -> Vec<(String, HeaderMap, Vec<(String, String)>)> {
    let done = poll(WAIT, || async {
        let all = got.lock().expect("lock").clone();
        let seen: Vec<&str> = all
            .iter()
            .filter_map(|(_, _, f)| field(f, "status"))
            .collect();
        (seen == want).then_some(all.clone())
    })
    .await;
    done.unwrap_or_else(|| {
        panic!(
            "callbacks {:?}, wanted {want:?}",
            got.lock()
                .expect("lock")
                .iter()
                .map(|c| field(&c.2, "status").map(str::to_string))
                .collect::<Vec<_>>()
        )
    })
}

fn assert_signed(t: &TestApp, callback_url: &str, headers: &HeaderMap, form: &[(String, String)]) {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sent = headers["x-reach-signature"].to_str().expect("ascii");
    assert_eq!(sent, signature::reach(&t.key, callback_url, &pairs));
    assert!(
        headers
            .get("content-type")
            .is_some_and(|c| c == "application/x-www-form-urlencoded")
    );
}

#[tokio::test]
async fn status_callbacks_are_signed_forms_for_each_change() {
    let t = spawn_sending().await;
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await;
    let (base, got) = receiver().await;
    let callback = format!("{base}/reach/status?token=abc");
    let item = create(
        &t,
        &[("statusCallback", &callback), ("bulkIdentifier", "cb")],
    )
    .await;
    let id = id_of(&item);
    let sent = statuses(&got, &["queued", "sent"]).await;
    assert_signed(&t, &callback, &sent[0].1, &sent[0].2);
    let (target, headers, form) = &sent[1];
    assert_eq!(target, "/reach/status?token=abc");
    assert_signed(&t, &callback, headers, form);
    for (name, want) in [
        ("messageId", id.as_str()),
        ("dest", DEST),
        ("src", SRC),
        ("bulkId", "cb"),
        ("numSegments", "1"),
    ] {
        assert_eq!(field(form, name), Some(want), "{name} in {form:?}");
    }
    assert_eq!(
        get_query(&t, "fetch", &[("messageId", &id)]).await.body["status"],
        "sent"
    );
    assert!(get_query(&t, "fetch", &[("messageId", &id)]).await.body["dateSent"].is_string());

    // A delivery report: `delivered`, with the DLR's date.
    let uid: String = t.sql("SELECT provider_id FROM messages").await[0]["provider_id"]
        .as_str()
        .expect("uid")
        .into();
    let report = t.url(&format!(
        "/callback/status/test/?api_key={}&uid={uid}&status=delivered",
        t.key
    ));
    assert_eq!(answer(t.client.get(report)).await.status, 200);
    let all = statuses(&got, &["queued", "sent", "delivered"]).await;
    let (_, headers, form) = &all[2];
    assert_signed(&t, &callback, headers, form);
    assert!(
        field(form, "dlrDate").is_some_and(|d| d.len() == 10),
        "{form:?}"
    );
}

/// A report the channel hands to the events worker at once (the simulator's, before the send
/// is recorded) calls back too: which message it applies to, and whether that one asked for
/// callbacks, is known only when it is applied.
#[tokio::test]
async fn a_delivery_report_from_the_channel_calls_back_delivered() {
    let t = spawn_sending().await;
    t.create(
        "/api/phone/",
        &[
            ("name", "sim"),
            ("adapter", "simulator"),
            ("adapter_data[dlr]", "1"),
            ("adapter_data[success_rate]", "1"),
            ("adapter_data[delivered_rate]", "1"),
            ("adapter_data[dlr_delay_ms]", "0"),
        ],
    )
    .await;
    let (base, got) = receiver().await;
    let callback = format!("{base}/reach/status");
    let id = id_of(&create(&t, &[("statusCallback", &callback)]).await);
    let all = statuses(&got, &["queued", "sent", "delivered"]).await;
    let (_, headers, form) = &all[2];
    assert_signed(&t, &callback, headers, form);
    assert_eq!(field(form, "messageId"), Some(id.as_str()));
}

#[tokio::test]
async fn scheduled_messages_call_back_when_queued_and_when_canceled() {
    let t = spawn_sending().await;
    let (base, got) = receiver().await;
    let callback = format!("{base}/cb");
    let at = in_an_hour();
    let first = id_of(&create(&t, &[("statusCallback", &callback), ("scheduledTime", &at)]).await);
    let second = id_of(&create(&t, &[("statusCallback", &callback), ("scheduledTime", &at)]).await);
    post_form(&t, "unschedule", &[("messageId", &second)]).await;
    statuses(&got, &["canceled"]).await;
    // The first one's time comes (moved to now): it joins the queue (no phone: it waits there).
    t.sql_write(&format!(
        "UPDATE messages SET next_try_at = 0 WHERE id = {}",
        i64::from_str_radix(first.trim_start_matches("MID"), 16).expect("hex")
    ))
    .await;
    let all = statuses(&got, &["canceled", "queued"]).await;
    assert_eq!(field(&all[1].2, "messageId"), Some(first.as_str()));
    assert_signed(&t, &callback, &all[1].1, &all[1].2);
    assert_eq!(
        get_query(&t, "fetch", &[("messageId", &first)]).await.body["status"],
        "queued"
    );
}
