//! The long-poll fallback of the device protocol: jobs by polling, acknowledgements by POST, and
//! a device that stops polling taken offline with its jobs handed back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, poll, spawn_with};

async fn api(t: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = t
        .client
        .request(method, t.url(path))
        .header("Authorization", format!("tokenv1 {}", t.key));
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let a = answer(request).await;
    assert!(a.status < 300, "{path}: {} {}", a.status, a.text);
    a.body
}

/// A device paired through the API and the pairing endpoint: (its id, its token).
async fn paired(t: &TestApp) -> (String, String) {
    let device = api(t, reqwest::Method::POST, "/api/v1/device", Some(json!({}))).await;
    let id = device["_id"].as_str().expect("id").to_string();
    let attach = api(
        t,
        reqwest::Method::POST,
        "/api/v1/attach",
        Some(json!({ "device": id })),
    )
    .await;
    let pair = answer(
        t.client
            .post(t.url("/device/v1/pair"))
            .body(json!({"code": attach["code"]}).to_string()),
    )
    .await;
    assert_eq!(pair.status, 201, "{}", pair.text);
    (id, pair.body["token"].as_str().expect("token").to_string())
}

async fn jobs(t: &TestApp, token: &str, wait: u64) -> Answer {
    answer(
        t.client
            .get(t.url(&format!("/device/v1/jobs?wait={wait}&capacity=2")))
            .bearer_auth(token),
    )
    .await
}

async fn events(t: &TestApp, token: &str, frames: Value) -> Answer {
    answer(
        t.client
            .post(t.url("/device/v1/events"))
            .bearer_auth(token)
            .body(frames.to_string()),
    )
    .await
}

/// A paired device that has polled once (so it is online), and a message `body` sent through
/// it: (the device's token, the message as created).
async fn polling_with_message(t: &TestApp, mut body: Value) -> (String, Value) {
    let (id, token) = paired(t).await;
    jobs(t, &token, 0).await;
    body["device"] = json!(id);
    let message = api(t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    (token, message)
}

#[tokio::test]
async fn a_polling_device_gets_jobs_and_acknowledges_them() {
    let t = spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
    })
    .await;
    let (id, token) = paired(&t).await;
    assert_eq!(jobs(&t, "pgd_wrong", 0).await.status, 401);
    // The first poll brings the device online; nothing to do yet.
    let empty = jobs(&t, &token, 0).await;
    assert_eq!((empty.status, &empty.body), (200, &json!({"jobs": []})));
    let message = api(&t, reqwest::Method::POST, "/api/v1/message", Some(json!({"device": {"distribute": "random"}, "phone": "+5511999999999", "text": "by poll"}))).await;
    let got = jobs(&t, &token, 5).await;
    let job = &got.body["jobs"][0];
    assert_eq!(
        (
            job["type"].as_str(),
            &job["job"],
            job["to"].as_str(),
            job["text"].as_str()
        ),
        (
            Some("job"),
            &message["_id"],
            Some("+5511999999999"),
            Some("by poll")
        )
    );
    let acks = json!([
        {"type": "ack", "job": job["job"], "status": 202},
        {"type": "ack", "job": job["job"], "status": 203},
        {"type": "ack", "job": job["job"], "status": 205},
        {"type": "inbound", "from": "+5511988887777", "text": "reply"},
    ]);
    assert_eq!(events(&t, &token, acks).await.status, 200);
    let path = format!("/api/v1/message/{}", message["_id"].as_str().expect("id"));
    let shown = api(&t, reqwest::Method::GET, &path, None).await;
    assert_eq!(shown["status"], 205, "{shown}");
    assert_eq!(shown["device"]["_id"], id.as_str());
    let received = t.get("/api/list/received/").await.ok().clone();
    assert_eq!(received[0]["text"], "reply");
    assert_eq!(
        events(&t, &token, json!({"type": "nope"})).await.status,
        400
    );
}

#[tokio::test]
async fn a_device_that_stops_polling_goes_offline_and_its_job_comes_back() {
    let t = spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
        c.device_silence_secs = 1;
        c.retry_ms = vec![100];
    })
    .await;
    let (token, message) = polling_with_message(
        &t,
        json!({"phone": "+5511999999999", "text": "lost", "maxtries": 2}),
    )
    .await;
    let got = jobs(&t, &token, 5).await;
    assert_eq!(
        got.body["jobs"].as_array().map(Vec::len),
        Some(1),
        "{}",
        got.text
    );
    // No ack, no more polls: past the silence the device is offline and the job is queued again.
    let path = format!("/api/v1/message/{}", message["_id"].as_str().expect("id"));
    let back = poll(Duration::from_secs(10), || async {
        (api(&t, reqwest::Method::GET, &path, None).await["status"] == 301).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "{}",
        api(&t, reqwest::Method::GET, &path, None).await
    );
    let phones = t.get("/api/list/phone/").await.ok().clone();
    assert_eq!(phones[0]["status"], "unavailable");
    // Polling again brings it back, and the job with it, never sent twice.
    let again = jobs(&t, &token, 5).await;
    assert_eq!(
        again.body["jobs"][0]["job"], message["_id"],
        "{}",
        again.text
    );
}

/// A report needs no claim on its link: a device whose link was closed (it stayed silent) and
/// that comes back with events only still gets its delivery recorded.
#[tokio::test]
async fn a_delivery_reported_on_a_new_link_is_recorded() {
    let t = spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
        c.device_silence_secs = 1;
    })
    .await;
    let (token, message) = polling_with_message(
        &t,
        json!({"phone": "+5511999999999", "text": "late report"}),
    )
    .await;
    let got = jobs(&t, &token, 5).await;
    let job = got.body["jobs"][0]["job"].clone();
    assert_eq!(job, message["_id"], "{}", got.text);
    let sent = json!([{"type": "ack", "job": job, "status": 203}]);
    assert_eq!(events(&t, &token, sent).await.status, 200);
    // Silent past the limit: its link is closed and its phone unavailable.
    let closed = poll(Duration::from_secs(10), || async {
        (t.get("/api/list/phone/").await.ok()[0]["status"] == "unavailable").then_some(())
    })
    .await;
    assert!(closed.is_some(), "the link was not closed");
    let delivered = json!([{"type": "ack", "job": job, "status": 205}]);
    assert_eq!(events(&t, &token, delivered).await.status, 200);
    let path = format!("/api/v1/message/{}", message["_id"].as_str().expect("id"));
    let shown = api(&t, reqwest::Method::GET, &path, None).await;
    assert_eq!(shown["status"], 205, "{shown}");
}

#[tokio::test]
async fn a_talking_device_is_recorded_as_seen_at_most_once_a_second() {
    let t = spawn_with(|c| c.workers = true).await;
    let (_, token) = paired(&t).await;
    let seen = || async {
        t.sql("SELECT last_seen_at FROM devices").await[0]["last_seen_at"]
            .as_i64()
            .expect("seen")
    };
    let opened = std::time::Instant::now();
    jobs(&t, &token, 0).await;
    let connected = seen().await;
    for _ in 0..5 {
        let a = events(&t, &token, json!({"type": "heartbeat"})).await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    // (Only if this machine was quick enough for them to come within the second.)
    if opened.elapsed() < Duration::from_millis(900) {
        assert_eq!(seen().await, connected, "heartbeats within a second");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    events(&t, &token, json!({"type": "heartbeat"})).await;
    assert!(seen().await > connected, "a heartbeat a second later");
}
