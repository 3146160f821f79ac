//! Webhooks end to end (issue 4), with the workers running and time shrunk by configuration:
//! a receiver on 127.0.0.1:0 (`webhook_receiver`) that records every request and can switch
//! its answer mid-test checks both signatures of everything Pigeon sends and the exact body of
//! each of the five types. Then the engine: retries on the schedule, 429 / `Retry-After` and
//! timeouts, redirects not followed, disabling, redelivery, the SSRF guard, a hanging endpoint
//! that does not slow another, the `webhook` setting, and a SIGKILL of the real server with
//! undelivered events.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use pigeon::config::Config;
use pigeon::services::reliability;
use pigeon_core::time::Ts;
use pigeon_store::messages::{self, NewMessage};
use serde_json::Value;

use crate::binary::{free_address, logs, read_api_key, spawn, wait_until_up};
use crate::helpers::{
    TestApp, all_with_status, answer, inject, poll, spawn_with, sql_at, wait_rows,
};
use crate::webhook_receiver::{
    Hit, Receiver, Reply, SEND_SMS_KEYS, WAIT, assert_recent, format_utc, keys, paths, sorted,
    verify, verify_all,
};

const NUMBER: &str = "+33612345678";

// ---------------------------------------------------------------------------------------------
// Pigeon's side.

/// Workers on, ticking fast, webhook time shrunk; `more` configures further.
async fn server(more: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
        c.read_interval_secs = 1;
        c.webhook_retry_ms = vec![100, 100, 100];
        c.webhook_throttle_ms = 200;
        c.webhook_timeout_ms = 2_000;
        more(c);
    })
    .await
}

/// Creates a webhook through the API: its id and its signing secret.
async fn create_webhook(t: &TestApp, url: &str, kind: &str) -> (i64, String) {
    let a = t
        .post("/api/webhook/", &[("url", url), ("type", kind)])
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let response = a.ok();
    let id = response["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{}", a.text));
    let secret = response["secret"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("whsec_"), "{}", a.text);
    (id, secret)
}

async fn test_phone(t: &TestApp) -> i64 {
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await
}

fn rows(a: &crate::helpers::Answer) -> Vec<Value> {
    a.ok().as_array().cloned().unwrap_or_default()
}

async fn deliveries(t: &TestApp, hook: i64) -> Vec<Value> {
    rows(&t.get(&format!("/api/webhook/{hook}/deliveries/")).await)
}

async fn attempts(t: &TestApp, hook: i64) -> Vec<Value> {
    rows(&t.get(&format!("/api/webhook/{hook}/attempts/")).await)
}

/// Waits until the webhook's deliveries satisfy `done`, and returns them.
async fn wait_deliveries(t: &TestApp, hook: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    match wait_rows(|| deliveries(t, hook), done).await {
        Some(rows) => rows,
        None => panic!(
            "webhook {hook}: deliveries {:#?}\nattempts {:#?}",
            deliveries(t, hook).await,
            attempts(t, hook).await
        ),
    }
}

async fn webhook_row(t: &TestApp, hook: i64) -> Value {
    t.list("webhook")
        .await
        .into_iter()
        .find(|w| w["id"] == hook)
        .unwrap_or(Value::Null)
}

/// A message sent by phone `phone` (for the reliability check), `minutes_ago`.
async fn sent(t: &TestApp, phone: i64, status: &str, minutes_ago: i64) {
    let m = NewMessage {
        user_id: t.user_id,
        phone_id: Some(phone),
        direction: "outbound",
        destination: Some(NUMBER.into()),
        text: "x".into(),
        status: status.into(),
        at: Ts::now().minus_millis(minutes_ago * 60_000),
        ..Default::default()
    };
    messages::insert(&t.app.store, &m).await.expect("message");
}

/// The `sended` row of a campaign, once it is there.
async fn sended_of(t: &TestApp, campaign: i64) -> Value {
    let found = poll(WAIT, || async {
        t.sended()
            .await
            .into_iter()
            .find(|r| r["originating_scheduled"] == campaign)
    })
    .await;
    found.unwrap_or_else(|| panic!("campaign {campaign} not sent"))
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {field} in {v}"))
}

// ---------------------------------------------------------------------------------------------
// 1. The five types, end to end, with their exact bodies.

#[tokio::test]
async fn send_sms_and_status_change_have_raspisms_bodies_and_a_change_fires_once() {
    let t = server(|_| {}).await;
    let rx_send = Receiver::start(200).await;
    let rx_status = Receiver::start(200).await;
    let (send_hook, send_secret) = create_webhook(&t, &rx_send.url("/send"), "send_sms").await;
    let (status_hook, status_secret) =
        create_webhook(&t, &rx_status.url("/status"), "send_sms_status_change").await;
    let sim = t
        .create(
            "/api/phone/",
            &[
                ("name", "sim"),
                ("adapter", "simulator"),
                ("adapter_data[dlr]", "0"),
            ],
        )
        .await;
    let test = test_phone(&t).await;

    // A tagged campaign through the simulator.
    let sim_id = sim.to_string();
    let campaign = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "Bonjour webhook"),
                ("numbers", NUMBER),
                ("id_phone", &sim_id),
                ("tag", "promo-2026"),
            ],
        )
        .await;
    let row = sended_of(&t, campaign).await;
    rx_send.wait_hits(1).await;
    let got = verify_all(&rx_send, &t.key, &send_secret);
    assert_eq!(got.len(), 1, "{:?}", paths(&rx_send.hits()));
    assert_eq!(got[0].kind, "send_sms");
    let body = &got[0].body;
    assert_eq!(keys(body), sorted(SEND_SMS_KEYS), "{body}");
    assert_eq!(body["id"], row["id"], "{body}");
    assert_recent(&body["at"]);
    assert_eq!(body["status"], "unknown");
    assert_eq!(body["text"], "Bonjour webhook");
    assert_eq!(body["destination"], NUMBER);
    assert_eq!(
        body["origin"], sim,
        "RaspiSMS puts the phone's id in origin"
    );
    assert_eq!(body["mms"], false);
    assert_eq!(body["medias"], serde_json::json!([]));
    assert_eq!(body["originating_scheduled"], campaign);
    assert_eq!(body["tag"], "promo-2026");
    let d = wait_deliveries(&t, send_hook, |r| all_with_status(r, 1, "succeeded")).await;
    assert_eq!(d[0]["event_id"], got[0].random_id.as_str());
    assert_eq!(d[0]["type"], "send_sms");

    // An untagged one through the test phone, then its delivery report, twice.
    let test_id = test.to_string();
    let campaign = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "Second"),
                ("numbers", NUMBER),
                ("id_phone", &test_id),
            ],
        )
        .await;
    let row = sended_of(&t, campaign).await;
    rx_send.wait_hits(2).await;
    let got = verify_all(&rx_send, &t.key, &send_secret);
    let body = &got[1].body;
    assert_eq!(body["id"], row["id"], "{body}");
    assert_eq!(body["origin"], test);
    assert_eq!(body["status"], "unknown");
    assert!(
        body["tag"].is_null() || body["tag"] == "",
        "no tag: empty or null, {body}"
    );
    assert!(
        rx_status.hits().is_empty(),
        "no report yet, no status change: {:?}",
        paths(&rx_status.hits())
    );
    let uid = row["uid"].as_str().expect("uid").to_string();
    for _ in 0..2 {
        let a = t
            .get(&format!(
                "/callback/status/test/?api_key={}&uid={uid}&status=delivered",
                t.key
            ))
            .await;
        assert_eq!((a.status, a.text.as_str()), (200, ""));
    }
    // The callback applies the report before answering: the outbox is written by now.
    let d = deliveries(&t, status_hook).await;
    assert_eq!(d.len(), 1, "a duplicated report is not a change: {d:#?}");
    rx_status.wait_hits(1).await;
    wait_deliveries(&t, status_hook, |r| all_with_status(r, 1, "succeeded")).await;
    let got = verify_all(&rx_status, &t.key, &status_secret);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "send_sms_status_change");
    assert_eq!(keys(&got[0].body), sorted(&["id", "status"]));
    assert_eq!(got[0].body["id"], row["id"]);
    assert_eq!(got[0].body["status"], "delivered");
    assert_eq!(rx_send.count(), 2, "send_sms only once per attempt");
}

#[tokio::test]
async fn a_failed_send_fires_send_sms_with_status_failed() {
    let t = server(|c| c.max_tries = 1).await;
    let rx = Receiver::start(200).await;
    let (_, secret) = create_webhook(&t, &rx.url("/"), "send_sms").await;
    let sim = t
        .create(
            "/api/phone/",
            &[
                ("name", "broken"),
                ("adapter", "simulator"),
                ("adapter_data[success_rate]", "0"),
                ("adapter_data[failure]", "permanent"),
            ],
        )
        .await;
    let campaign = t
        .create(
            "/api/scheduled/",
            &[("text", "Échec"), ("numbers", NUMBER), ("tag", "t")],
        )
        .await;
    let row = sended_of(&t, campaign).await;
    rx.wait_hits(1).await;
    let got = verify_all(&rx, &t.key, &secret);
    assert_eq!(got.len(), 1, "{:?}", paths(&rx.hits()));
    let body = &got[0].body;
    assert_eq!(got[0].kind, "send_sms");
    assert_eq!(keys(body), sorted(SEND_SMS_KEYS));
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["id"], row["id"]);
    assert_eq!(body["origin"], sim);
    assert_eq!(body["destination"], NUMBER);
    assert_eq!(body["text"], "Échec");
    assert_eq!(body["originating_scheduled"], campaign);
    assert_eq!(body["tag"], "t");
}

#[tokio::test]
async fn receive_sms_inbound_call_and_phone_reliability_have_raspisms_bodies() {
    let t = server(|_| {}).await;
    let rx_sms = Receiver::start(200).await;
    let rx_call = Receiver::start(200).await;
    let rx_rel = Receiver::start(200).await;
    let (_, sms_secret) = create_webhook(&t, &rx_sms.url("/sms"), "receive_sms").await;
    let (_, call_secret) = create_webhook(&t, &rx_call.url("/call"), "inbound_call").await;
    let (_, rel_secret) = create_webhook(&t, &rx_rel.url("/rel"), "phone_reliability").await;
    let phone = test_phone(&t).await;

    // receive_sms
    inject(&t, phone, NUMBER, "Bonjour Pigeon").await;
    rx_sms.wait_hits(1).await;
    let got = verify_all(&rx_sms, &t.key, &sms_secret);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "receive_sms");
    let body = &got[0].body;
    assert_eq!(
        keys(body),
        sorted(&[
            "id",
            "at",
            "text",
            "destination",
            "origin",
            "command",
            "mms",
            "medias"
        ]),
        "{body}"
    );
    let received = t.received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(body["id"], received[0]["id"]);
    assert_eq!(body["at"], received[0]["at"]);
    assert_recent(&body["at"]);
    assert_eq!(body["text"], "Bonjour Pigeon");
    assert_eq!(
        body["destination"], phone,
        "RaspiSMS puts the phone's id in destination"
    );
    assert_eq!(body["origin"], NUMBER);
    assert_eq!(body["command"], false);
    assert_eq!(body["mms"], false);
    assert_eq!(body["medias"], serde_json::json!([]));

    // inbound_call
    let a = answer(
        t.client
            .post(t.url(&format!(
                "/callback/inbound_call/{phone}/?api_key={}",
                t.key
            )))
            .form(&[
                ("uid", "call-1"),
                ("start", "2026-01-01 10:00:00"),
                ("end", "2026-01-01 10:05:00"),
                ("origin", NUMBER),
            ]),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    let a = answer(
        t.client
            .post(t.url(&format!(
                "/callback/inbound_call/{phone}/?api_key={}",
                t.key
            )))
            .form(&[
                ("uid", "call-2"),
                ("start", "2026-01-01 11:00:00"),
                ("origin", NUMBER),
            ]),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    rx_call.wait_hits(2).await;
    let calls = pigeon_store::calls::list(&t.app.store, t.user_id)
        .await
        .expect("calls");
    let mut got = verify_all(&rx_call, &t.key, &call_secret);
    assert_eq!(got.len(), 2);
    got.sort_by_key(|v| v.body["uid"].as_str().unwrap_or_default().to_string());
    for (v, (uid, start, end)) in got.iter().zip([
        (
            "call-1",
            "2026-01-01 10:00:00",
            Value::from("2026-01-01 10:05:00"),
        ),
        ("call-2", "2026-01-01 11:00:00", Value::Null),
    ]) {
        assert_eq!(v.kind, "inbound_call");
        let body = &v.body;
        assert_eq!(
            keys(body),
            sorted(&[
                "id",
                "id_user",
                "id_phone",
                "uid",
                "start",
                "end",
                "direction",
                "origin",
                "destination"
            ]),
            "{body}"
        );
        let call = calls
            .iter()
            .find(|c| c.uid == uid)
            .unwrap_or_else(|| panic!("{uid} not stored: {calls:?}"));
        assert_eq!(body["id"], call.id);
        assert_eq!(body["id_user"], t.user_id);
        assert_eq!(body["id_phone"], phone);
        assert_eq!(body["uid"], uid);
        assert_eq!(body["start"], start);
        assert_eq!(body["end"], end, "{body}");
        assert_eq!(body["direction"], "inbound");
        assert_eq!(body["origin"], NUMBER);
        assert_eq!(body["destination"], Value::Null);
    }

    // phone_reliability: 5 failures out of 30 over the default 120-minute period.
    for i in 0..30 {
        sent(&t, phone, if i < 5 { "failed" } else { "delivered" }, 10).await;
    }
    let alerts = reliability::check(&t.app).await.expect("check");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    rx_rel.wait_hits(1).await;
    let got = verify_all(&rx_rel, &t.key, &rel_secret);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "phone_reliability");
    let body = &got[0].body;
    assert_eq!(
        keys(body),
        sorted(&[
            "reliability_type",
            "id_phone",
            "period",
            "total",
            "unreliable",
            "rate"
        ]),
        "{body}"
    );
    assert_eq!(body["reliability_type"], "failed");
    assert_eq!(body["id_phone"], phone);
    assert_eq!(body["period"], 120, "minutes");
    assert_eq!(body["total"], 30);
    assert_eq!(body["unreliable"], 5);
    let rate = body["rate"].as_f64().expect("rate is a number");
    assert!((rate - 5.0 / 30.0).abs() < 1e-9, "{body}");
}

// ---------------------------------------------------------------------------------------------
// 2. Retries.

#[tokio::test]
async fn a_failing_delivery_is_retried_on_the_schedule_until_it_succeeds() {
    let t = server(|_| {}).await;
    // A body far larger than any attempt keeps.
    let big = "e".repeat(100_000);
    let rx = Receiver::start(500).await;
    rx.answer(Reply::status(500).body(big.clone()));
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "retry me").await;
    rx.wait_hits(2).await;
    rx.answer(Reply::status(200).body("thanks".into()));
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 1, "succeeded")).await;

    let hits = rx.hits();
    let got = verify_all(&rx, &t.key, &secret);
    let n = hits.len();
    assert!((3..=4).contains(&n), "{:?}", paths(&hits));
    let answered: Vec<u16> = hits.iter().map(|h| h.answered).collect();
    assert!(
        answered[..n - 1].iter().all(|s| *s == 500) && answered[n - 1] == 200,
        "{answered:?}"
    );
    let ids: BTreeSet<&str> = got.iter().map(|v| v.random_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        1,
        "the same webhook-id on every attempt: {ids:?}"
    );
    for pair in hits.windows(2) {
        let gap = pair[1].at - pair[0].at;
        // 100 ms ± 20 %.
        assert!(
            gap >= Duration::from_millis(75),
            "retried after {gap:?}, before the schedule's 100 ms"
        );
    }

    assert_eq!(int(&d[0], "attempts"), n as i64, "{:#?}", d[0]);
    assert_eq!(d[0]["last_status_code"], 200);
    assert_eq!(d[0]["event_id"], got[0].random_id.as_str());
    assert_eq!(d[0]["next_attempt_at"], Value::Null);
    let list = attempts(&t, hook).await;
    assert_eq!(list.len(), n, "{list:#?}");
    let codes: Vec<i64> = list.iter().map(|a| int(a, "status_code")).collect();
    let expected: Vec<i64> = answered.iter().map(|s| i64::from(*s)).collect();
    assert_eq!(codes, expected);
    for a in &list {
        assert_eq!(a["id_delivery"], d[0]["id"]);
        assert!(int(a, "duration_ms") >= 0, "{a}");
        assert_eq!(a["error"], Value::Null, "{a}");
        assert_recent(&a["at"]);
    }
    for a in &list[..n - 1] {
        let kept = a["response_body"].as_str().expect("a response body");
        assert!(
            !kept.is_empty() && kept.len() < big.len() && big.starts_with(kept),
            "the response body is kept truncated ({} bytes)",
            kept.len()
        );
    }
    assert_eq!(list[n - 1]["response_body"], "thanks");
}

#[tokio::test]
async fn a_delivery_failing_forever_ends_failed_after_the_schedule() {
    let t = server(|_| {}).await;
    let rx = Receiver::start(500).await;
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "never").await;
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 1, "failed")).await;
    // 1 + len(retry schedule) attempts.
    assert_eq!(int(&d[0], "attempts"), 4, "{:#?}", d[0]);
    assert_eq!(d[0]["last_status_code"], 500);
    assert_eq!(d[0]["next_attempt_at"], Value::Null);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = verify_all(&rx, &t.key, &secret);
    assert_eq!(got.len(), 4, "{:?}", paths(&rx.hits()));
    let ids: BTreeSet<&str> = got.iter().map(|v| v.random_id.as_str()).collect();
    assert_eq!(ids.len(), 1);
    let list = attempts(&t, hook).await;
    assert_eq!(
        list.iter()
            .map(|a| int(a, "status_code"))
            .collect::<Vec<_>>(),
        [500; 4]
    );
}

// ---------------------------------------------------------------------------------------------
// 3. 429 / Retry-After, and timeouts.

#[tokio::test]
async fn a_429_with_retry_after_delays_the_next_attempt() {
    let t = server(|c| c.webhook_throttle_ms = 600).await;
    let rx = Receiver::start(200).await;
    rx.script(vec![Reply::status(429).header("Retry-After", "1")]);
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "slow down").await;
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 1, "succeeded")).await;
    let hits = rx.hits();
    verify_all(&rx, &t.key, &secret);
    assert_eq!(
        hits.iter().map(|h| h.answered).collect::<Vec<_>>(),
        [429, 200]
    );
    let gap = hits[1].at - hits[0].at;
    // At least the throttle wait (600 ms), and Retry-After's 1 s, which is within twice it.
    assert!(
        gap >= Duration::from_millis(950),
        "retried {gap:?} after a 429 with Retry-After: 1"
    );
    assert_eq!(int(&d[0], "attempts"), 2);
    let list = attempts(&t, hook).await;
    assert_eq!(list[0]["status_code"], 429);
    assert_eq!(list[1]["status_code"], 200);
}

#[tokio::test]
async fn a_timeout_is_recorded_with_an_error_and_retried_after_the_throttle_wait() {
    let t = server(|c| {
        c.webhook_timeout_ms = 300;
        c.webhook_throttle_ms = 600;
    })
    .await;
    let rx = Receiver::start(200).await;
    rx.script(vec![Reply::status(200).delay(Duration::from_millis(1500))]);
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "hang").await;
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 1, "succeeded")).await;
    let hits = rx.hits();
    let got = verify_all(&rx, &t.key, &secret);
    assert_eq!(hits.len(), 2, "{:?}", paths(&hits));
    assert_eq!(got[0].random_id, got[1].random_id);
    let gap = hits[1].at - hits[0].at;
    // The 300 ms timeout, then at least the 600 ms throttle wait.
    assert!(
        gap >= Duration::from_millis(850),
        "retried {gap:?} after the attempt started"
    );
    assert_eq!(int(&d[0], "attempts"), 2);
    let list = attempts(&t, hook).await;
    assert_eq!(list.len(), 2, "{list:#?}");
    let timed_out = &list[0];
    assert_eq!(timed_out["status_code"], Value::Null, "{timed_out}");
    let error = timed_out["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty(),
        "a timeout is recorded with an error: {timed_out}"
    );
    let duration = int(timed_out, "duration_ms");
    assert!(
        (250..1_400).contains(&duration),
        "the attempt lasted the timeout: {timed_out}"
    );
    assert_eq!(list[1]["status_code"], 200);
}

// ---------------------------------------------------------------------------------------------
// 4. Redirects.

#[tokio::test]
async fn redirects_are_not_followed() {
    let t = server(|c| c.webhook_retry_ms = Vec::new()).await;
    let rx = Receiver::start(200).await;
    rx.answer(Reply::status(302).header("Location", &rx.url("/elsewhere")));
    let (hook, secret) = create_webhook(&t, &rx.url("/hook"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "redirect").await;
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 1, "failed")).await;
    assert_eq!(d[0]["last_status_code"], 302);
    let list = attempts(&t, hook).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status_code"], 302);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hits = rx.hits();
    verify_all(&rx, &t.key, &secret);
    assert_eq!(
        hits.iter().map(|h| h.path.as_str()).collect::<Vec<_>>(),
        ["/hook"],
        "the Location was not followed"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Disabling.

#[tokio::test]
async fn a_webhook_failing_too_long_is_disabled_visibly_and_can_be_re_enabled() {
    let t = server(|c| {
        c.webhook_disable_after_secs = 1;
        c.webhook_retry_ms = vec![250; 20];
    })
    .await;
    let rx = Receiver::start(500).await;
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let row = webhook_row(&t, hook).await;
    assert_eq!(row["status"], "enabled", "{row}");
    assert_eq!(row["disabled_at"], Value::Null);
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "first").await;
    let disabled = poll(WAIT, || async {
        let row = webhook_row(&t, hook).await;
        (row["status"] == "disabled").then_some(row)
    })
    .await
    .unwrap_or_else(|| panic!("not disabled: {:?}", paths(&rx.hits())));
    assert_recent(&disabled["disabled_at"]);
    let hits = rx.hits();
    assert!(
        hits.last().expect("hits").at - hits[0].at >= Duration::from_millis(900),
        "disabled only after failing for about the configured second: {:?}",
        hits.iter().map(|h| h.at - hits[0].at).collect::<Vec<_>>()
    );
    verify_all(&rx, &t.key, &secret);

    // Nothing more is sent to it: neither the pending retry nor new events.
    let before = rx.count();
    inject(&t, phone, NUMBER, "while disabled").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.count(), before, "{:?}", paths(&rx.hits()));
    let d = deliveries(&t, hook).await;
    assert!(
        d.iter().all(|r| r["status"] != "succeeded"),
        "nothing delivered while disabled: {d:#?}"
    );

    // Re-enabled, it gets events again.
    rx.set_status(200);
    let a = t
        .post(&format!("/api/webhook/{hook}/"), &[("enabled", "1")])
        .await;
    assert_eq!(a.ok(), &Value::Bool(true), "{}", a.text);
    let row = webhook_row(&t, hook).await;
    assert_eq!(row["status"], "enabled", "{row}");
    assert_eq!(row["disabled_at"], Value::Null);
    inject(&t, phone, NUMBER, "after").await;
    let found = poll(WAIT, || async {
        let hits = rx.hits();
        hits.iter()
            .filter(|h| h.answered == 200)
            .map(|h| verify(h, &t.key, &secret).body)
            .find(|b| b["text"] == "after")
    })
    .await;
    assert!(found.is_some(), "{:?}", paths(&rx.hits()));
    let texts: Vec<Value> = verify_all(&rx, &t.key, &secret)
        .into_iter()
        .map(|v| v.body["text"].clone())
        .collect();
    assert!(
        !texts.contains(&Value::from("while disabled")),
        "an event raised while the webhook was disabled is not delivered: {texts:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Redelivery.

#[tokio::test]
async fn failed_deliveries_are_redelivered_one_or_all_since_a_time_by_their_owner_only() {
    let t = server(|c| c.webhook_retry_ms = Vec::new()).await;
    let rx = Receiver::start(500).await;
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let (other_hook, _) = create_webhook(&t, &rx.url("/other"), "send_sms").await;
    let phone = test_phone(&t).await;
    let since = format_utc(jiff::Timestamp::now().as_second() - 60);
    for text in ["one", "two", "three"] {
        inject(&t, phone, NUMBER, text).await;
    }
    let d = wait_deliveries(&t, hook, |r| all_with_status(r, 3, "failed")).await;
    assert_eq!(rx.count(), 3);
    rx.set_status(200);
    let ids: Vec<i64> = d.iter().map(|r| int(r, "id")).collect();

    // Another account sees and redelivers nothing.
    let bob = t.other_user("bob@example.com").await;
    for path in [
        format!("/api/webhook/{hook}/deliveries/"),
        format!("/api/webhook/{hook}/attempts/"),
    ] {
        let a = t.get_as(&bob, &path).await;
        assert_eq!((a.status, a.error_code()), (404, 2), "{path}: {}", a.text);
    }
    let a = t
        .post_as(
            &bob,
            &format!("/api/webhook/{hook}/deliveries/{}/redeliver/", ids[0]),
            &[],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!([2, 128].contains(&a.error_code()), "{}", a.text);
    let a = t
        .post_as(
            &bob,
            &format!("/api/webhook/{hook}/redeliver/"),
            &[("since", &since)],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!([2, 128].contains(&a.error_code()), "{}", a.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 3, "nothing was sent again by those requests");
    assert!(
        deliveries(&t, hook)
            .await
            .iter()
            .all(|r| r["status"] == "failed"),
        "{:#?}",
        deliveries(&t, hook).await
    );

    // One delivery.
    let a = t
        .post(
            &format!("/api/webhook/{hook}/deliveries/{}/redeliver/", ids[0]),
            &[],
        )
        .await;
    assert_eq!(a.ok(), &Value::Bool(true), "{}", a.text);
    let d = wait_deliveries(&t, hook, |r| {
        r.iter().filter(|r| r["status"] == "succeeded").count() == 1
    })
    .await;
    assert_eq!(d[0]["status"], "succeeded", "{d:#?}");
    assert_eq!(int(&d[0], "attempts"), 2);
    let hits = rx.hits();
    assert_eq!(hits.len(), 4);
    assert_eq!(hits[3].answered, 200);
    assert_eq!(
        hits[3].webhook_id(),
        d[0]["event_id"].as_str().unwrap_or_default(),
        "a redelivery keeps the event's webhook-id"
    );

    // Every failed one since a time: none since the future, the other two since a minute ago.
    let future = format_utc(jiff::Timestamp::now().as_second() + 3600);
    let a = t
        .post(
            &format!("/api/webhook/{hook}/redeliver/"),
            &[("since", &future)],
        )
        .await;
    assert_eq!(a.ok(), &Value::from(0), "{}", a.text);
    let a = t
        .post(
            &format!("/api/webhook/{hook}/redeliver/"),
            &[("since", "yesterday")],
        )
        .await;
    assert_eq!((a.status, a.error_code()), (400, 2), "{}", a.text);
    let a = t
        .post(
            &format!("/api/webhook/{hook}/redeliver/"),
            &[("since", &since)],
        )
        .await;
    assert_eq!(a.ok(), &Value::from(2), "{}", a.text);
    wait_deliveries(&t, hook, |r| all_with_status(r, 3, "succeeded")).await;
    let got = verify_all(&rx, &t.key, &secret);
    // Three answered 500, one redelivered, two redelivered since a time.
    assert_eq!(got.len(), 6);
    assert_eq!(
        rx.hits().iter().filter(|h| h.answered == 200).count(),
        3,
        "{:?}",
        paths(&rx.hits())
    );
    let delivered: BTreeSet<String> = rx
        .hits()
        .iter()
        .filter(|h| h.answered == 200)
        .map(Hit::webhook_id)
        .collect();
    let events: BTreeSet<String> = d
        .iter()
        .map(|r| r["event_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(delivered, events, "each event delivered once with a 200");

    // A delivery is redelivered under its own webhook only.
    let a = t
        .post(
            &format!("/api/webhook/{other_hook}/deliveries/{}/redeliver/", ids[0]),
            &[],
        )
        .await;
    assert_eq!(
        a.status, 400,
        "webhook {other_hook} has no delivery {}: {}",
        ids[0], a.text
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 6, "{:?}", paths(&rx.hits()));
}

// ---------------------------------------------------------------------------------------------
// 7. SSRF.

#[tokio::test]
async fn loopback_destinations_are_refused_at_once_without_the_allow_list() {
    let t = server(|c| c.allow_outbound_cidr = Vec::new()).await;
    let rx = Receiver::start(200).await;
    let port = rx.port();
    let mut hooks = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
    ] {
        hooks.push((create_webhook(&t, &url, "receive_sms").await.0, url));
    }
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "ssrf").await;
    let mut errors = Vec::new();
    for (hook, url) in &hooks {
        let d = wait_deliveries(&t, *hook, |r| all_with_status(r, 1, "failed")).await;
        assert_eq!(int(&d[0], "attempts"), 1, "{url}: refused, not retried");
        assert_eq!(d[0]["last_status_code"], Value::Null);
        let list = attempts(&t, *hook).await;
        assert_eq!(list.len(), 1, "{url}: {list:#?}");
        assert_eq!(list[0]["status_code"], Value::Null);
        let error = list[0]["error"].as_str().unwrap_or_default().to_string();
        errors.push((url.clone(), error));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 0, "{:?}", paths(&rx.hits()));
    let unexplained: Vec<&(String, String)> = errors
        .iter()
        .filter(|(_, e)| !(e.contains("not allowed") || e.contains("allowed address")))
        .collect();
    assert!(
        unexplained.is_empty(),
        "the attempt says the address is not allowed: {unexplained:?}"
    );
}

#[tokio::test]
async fn the_allow_list_lets_through_only_its_networks() {
    let t = server(|c| c.allow_outbound_cidr = vec!["127.0.0.1/32".into()]).await;
    let allowed = Receiver::start(200).await;
    let other = Receiver::start_on("127.0.0.2:0", 200).await;
    let (ok_hook, ok_secret) = create_webhook(&t, &allowed.url("/"), "receive_sms").await;
    let (refused_hook, _) = create_webhook(&t, &other.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "allow list").await;
    wait_deliveries(&t, ok_hook, |r| all_with_status(r, 1, "succeeded")).await;
    let d = wait_deliveries(&t, refused_hook, |r| all_with_status(r, 1, "failed")).await;
    assert_eq!(int(&d[0], "attempts"), 1);
    assert_eq!(verify_all(&allowed, &t.key, &ok_secret).len(), 1);
    assert_eq!(other.count(), 0, "127.0.0.2 is outside 127.0.0.1/32");
}

// ---------------------------------------------------------------------------------------------
// 8. A hanging endpoint does not slow another.

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another() {
    let t = server(|c| {
        c.webhook_timeout_ms = 5_000;
        c.webhook_endpoint_concurrency = 2;
    })
    .await;
    let slow = Receiver::start(200).await;
    slow.answer(Reply::status(200).delay(Duration::from_secs(4)));
    let fast = Receiver::start(200).await;
    let (_, slow_secret) = create_webhook(&t, &slow.url("/slow"), "receive_sms").await;
    let (fast_hook, fast_secret) = create_webhook(&t, &fast.url("/fast"), "receive_sms").await;
    let phone = test_phone(&t).await;
    let started = Instant::now();
    for i in 0..6 {
        inject(&t, phone, NUMBER, &format!("sms {i}")).await;
    }
    fast.wait_hits(6).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(2000),
        "the fast endpoint got its 6 events after {elapsed:?}"
    );
    assert_eq!(
        slow.answered(),
        0,
        "the slow endpoint's requests are still hanging"
    );
    let in_flight = slow.count();
    assert!(
        (1..=2).contains(&in_flight),
        "at most webhook_endpoint_concurrency requests in flight to the slow endpoint: {in_flight}"
    );
    wait_deliveries(&t, fast_hook, |r| all_with_status(r, 6, "succeeded")).await;
    verify_all(&fast, &t.key, &fast_secret);
    verify_all(&slow, &t.key, &slow_secret);
}

// ---------------------------------------------------------------------------------------------
// 9. The `webhook` setting.

#[tokio::test]
async fn the_webhook_setting_off_creates_no_deliveries() {
    let t = server(|_| {}).await;
    let rx = Receiver::start(200).await;
    let (hook, secret) = create_webhook(&t, &rx.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    t.set_setting("webhook", "0").await;
    inject(&t, phone, NUMBER, "muted").await;
    assert!(deliveries(&t, hook).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.count(), 0);
    t.set_setting("webhook", "1").await;
    inject(&t, phone, NUMBER, "heard").await;
    wait_deliveries(&t, hook, |r| all_with_status(r, 1, "succeeded")).await;
    let got = verify_all(&rx, &t.key, &secret);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["text"], "heard");
}

/// The webhooks of an event are kept in memory for a moment: a change through the API must
/// still apply to the very next event.
#[tokio::test]
async fn a_changed_or_deleted_webhook_applies_to_the_next_event_at_once() {
    let t = server(|_| {}).await;
    let (old, new) = (Receiver::start(200).await, Receiver::start(200).await);
    let (hook, secret) = create_webhook(&t, &old.url("/"), "receive_sms").await;
    let phone = test_phone(&t).await;
    inject(&t, phone, NUMBER, "first").await;
    let a = t
        .post(&format!("/api/webhook/{hook}/"), &[("url", &new.url("/"))])
        .await;
    assert_eq!(a.ok(), &Value::Bool(true), "{}", a.text);
    inject(&t, phone, NUMBER, "second").await;
    wait_deliveries(&t, hook, |r| all_with_status(r, 2, "succeeded")).await;
    let texts = |rx: &Receiver| -> Vec<Value> {
        verify_all(rx, &t.key, &secret)
            .into_iter()
            .map(|v| v.body["text"].clone())
            .collect()
    };
    assert_eq!(texts(&old), ["first"]);
    assert_eq!(texts(&new), ["second"]);
    let a = t.delete(&format!("/api/webhook/{hook}/")).await;
    assert_eq!(a.status, 204, "{}", a.text);
    inject(&t, phone, NUMBER, "third").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((old.count(), new.count()), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// 10. Crash safety with the real binary.

/// Loopback receivers, short retries and ticks for the binary.
const BINARY_SETTINGS: &[(&str, &str)] = &[
    ("PIGEON_ALLOW_OUTBOUND_CIDR", r#"["127.0.0.1/32"]"#),
    ("PIGEON_WEBHOOK_RETRY_MS", "[500,500,500,500,500]"),
    ("PIGEON_TICK_MS", "50"),
];

async fn post_to(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    form: &[(&str, &str)],
) -> crate::helpers::Answer {
    answer(client.post(url).header("X-Api-Key", key).form(form)).await
}

#[tokio::test]
async fn a_killed_server_delivers_every_committed_event_after_its_restart() {
    const EVENTS: usize = 5;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (listen, base) = free_address();
    let client = reqwest::Client::new();
    let rx = Receiver::start(500).await;

    let mut first = spawn(dir, &listen, "first.log", Stdio::piped(), BINARY_SETTINGS);
    let key = read_api_key(&mut first, dir).await;
    wait_until_up(&client, &base, &mut first, dir).await;
    let a = post_to(
        &client,
        &format!("{base}/api/phone/"),
        &key,
        &[("name", "test"), ("adapter", "test")],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let phone = a.ok().as_i64().expect("phone id");
    let a = post_to(
        &client,
        &format!("{base}/api/webhook/"),
        &key,
        &[("url", &rx.url("/hook")), ("type", "receive_sms")],
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let secret = a.ok()["secret"].as_str().expect("secret").to_string();
    let texts: Vec<String> = (0..EVENTS).map(|i| format!("crash {i}")).collect();
    for text in &texts {
        let a = answer(
            client
                .post(format!(
                    "{base}/callback/reception/test/{phone}/?api_key={key}"
                ))
                .form(&[("origin", NUMBER), ("text", text.as_str())]),
        )
        .await;
        assert_eq!((a.status, a.text.as_str()), (200, ""), "reception callback");
    }
    // Every event has been tried (and refused with a 500) at least once: all are pending.
    let tried = poll(WAIT, || async {
        let ids: BTreeSet<String> = rx.hits().iter().map(Hit::webhook_id).collect();
        (ids.len() == EVENTS).then_some(())
    })
    .await;
    assert!(
        tried.is_some(),
        "not every event was attempted: {:?}{}",
        paths(&rx.hits()),
        logs(dir)
    );
    first.kill().await.expect("SIGKILL");
    let status = first.wait().await.expect("wait");
    assert_eq!(status.signal(), Some(9), "not killed by SIGKILL: {status}");
    let before = rx.count();
    let db = dir.join("pigeon.db");
    let left = sql_at(
        &db,
        "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status",
    )
    .await;
    assert!(
        left.iter().all(|r| r["status"] != "succeeded"),
        "nothing succeeded before the kill: {left:?}"
    );
    rx.set_status(200);

    let mut second = spawn(dir, &listen, "second.log", Stdio::null(), BINARY_SETTINGS);
    wait_until_up(&client, &base, &mut second, dir).await;
    let done = poll(Duration::from_secs(10), || async {
        let ok: BTreeSet<String> = rx
            .hits()
            .iter()
            .filter(|h| h.answered == 200)
            .map(Hit::webhook_id)
            .collect();
        (ok.len() == EVENTS).then_some(())
    })
    .await;
    assert!(
        done.is_some(),
        "not every event was delivered after the restart: {:?}{}",
        paths(&rx.hits()),
        logs(dir)
    );
    // Past the retry schedule: nothing more comes.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hits = rx.hits();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for h in hits.iter().filter(|h| h.answered == 200) {
        *per_id.entry(h.webhook_id()).or_default() += 1;
    }
    assert!(
        per_id.len() == EVENTS && per_id.values().all(|n| *n == 1),
        "each event answered 200 exactly once: {per_id:?}"
    );
    assert!(
        hits[before..].iter().all(|h| h.answered == 200),
        "after the restart everything is answered 200"
    );
    let mut delivered: Vec<String> = hits
        .iter()
        .filter(|h| h.answered == 200)
        .map(|h| {
            let v = verify(h, &key, &secret);
            assert_eq!(v.kind, "receive_sms");
            v.body["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    delivered.sort();
    assert_eq!(delivered, texts);
    for h in &hits {
        verify(h, &key, &secret);
    }
    let rows = sql_at(&db, "SELECT status, attempts FROM deliveries ORDER BY id").await;
    assert_eq!(rows.len(), EVENTS, "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "succeeded"), "{rows:?}");
    second.kill().await.expect("kill");
}
