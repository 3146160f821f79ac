//! Sending end to end, with the workers running: campaigns created through the RaspiSMS API
//! are dispatched, routed, sent through `simulator` and `test` phones, retried, expired,
//! failed over, limited, filtered by STOP and quotas; MMS links, encodings, and the graceful
//! shutdown that finishes the sends under way.

use std::sync::Arc;
use std::time::Duration;

use pigeon::app::{self, App};
use pigeon::config::Config;
use pigeon::services::{accounts, quotas};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::helpers::{
    TestApp, all_with_status, answer, inject, poll, spawn_sending, spawn_with, sql_at, wait_rows,
};

const WAIT: Duration = Duration::from_secs(5);
const NUMBER: &str = "+33612345678";
const STOP_ACK: &str = "Demande prise en compte, vous ne recevrez plus de messages.";

/// A fast-ticking server with its workers running, configured further by `more`.
async fn sending_with(more: impl FnOnce(&mut Config)) -> TestApp {
    spawn_with(|c| {
        c.workers = true;
        c.tick_ms = 50;
        c.read_interval_secs = 1;
        more(c);
    })
    .await
}

/// Creates a phone through the API: `adapter_data[k]=v` for each of `data`, plus `extra` fields.
async fn phone(
    t: &TestApp,
    name: &str,
    adapter: &str,
    data: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> i64 {
    let mut form: Vec<(String, String)> = vec![
        ("name".into(), name.into()),
        ("adapter".into(), adapter.into()),
    ];
    form.extend(
        data.iter()
            .map(|(k, v)| (format!("adapter_data[{k}]"), v.to_string())),
    );
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    t.create("/api/phone/", &pairs).await
}

/// A campaign sent now to `numbers`, with `extra` fields (`id_phone`, `id_phone_group`...).
async fn campaign(t: &TestApp, text: &str, numbers: &[&str], extra: &[(&str, &str)]) -> i64 {
    let mut form = vec![("text", text)];
    form.extend(numbers.iter().map(|n| ("numbers[]", *n)));
    form.extend_from_slice(extra);
    t.create("/api/scheduled/", &form).await
}

/// The `sended` rows of a campaign.
async fn sended_of(t: &TestApp, campaign: i64) -> Vec<Value> {
    t.sended()
        .await
        .into_iter()
        .filter(|r| r["originating_scheduled"] == campaign)
        .collect()
}

/// Every message row, for failure messages.
async fn dump(t: &TestApp) -> String {
    let rows = t
        .sql(
            "SELECT id, status, phone_id, destination, tries, max_tries, error_text, campaign_id, tag \
             FROM messages ORDER BY id",
        )
        .await;
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

/// Waits until the campaign's `sended` rows satisfy `done`, and returns them.
async fn wait_sended(t: &TestApp, campaign: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    match wait_rows(|| sended_of(t, campaign), done).await {
        Some(rows) => rows,
        None => panic!(
            "campaign {campaign}: sended rows {:?}\nmessages: {}",
            sended_of(t, campaign).await,
            dump(t).await
        ),
    }
}

fn int(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no integer {field} in {v}"))
}

fn statuses(history: &[(String, Option<String>)]) -> Vec<&str> {
    history.iter().map(|(s, _)| s.as_str()).collect()
}

/// What a simulator phone accepted, from its log.
fn simulated(t: &TestApp, phone: i64) -> Vec<pigeon_channels::simulator::SimulatedSend> {
    let dir = t
        .app
        .config
        .data_dir
        .join("channels")
        .join(phone.to_string());
    pigeon_channels::simulator::load_log(&dir).expect("simulator log")
}

/// What a test phone sent, from its `sent.jsonl`.
fn test_sent(t: &TestApp, phone: i64) -> Vec<Value> {
    let path = t
        .app
        .config
        .data_dir
        .join("channels")
        .join(phone.to_string())
        .join("sent.jsonl");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("sent.jsonl line"))
        .collect()
}

/// Gives the account a one-month quota of `credit` SMS.
async fn set_credit(t: &TestApp, credit: i64) {
    let quota = quotas::QuotaInput {
        credit,
        additional: 0,
        interval: "P1M".into(),
        auto_renew: false,
        report_unused: false,
        report_unused_additional: false,
    };
    quotas::set(&t.app, "alice@example.com", &quota)
        .await
        .expect("quota");
}

#[tokio::test]
async fn the_seed_example_is_sent_delivered_and_answered() {
    let t = spawn_sending().await;
    let sim = phone(
        &t,
        "sim",
        "simulator",
        &[("dlr_delay_ms", "50"), ("auto_reply", "Merci")],
        &[],
    )
    .await;
    // The seed's "Exemple 1": -d 'text=Mon%20SMS%20d%27exemple' -d 'numbers=%2B33612345678'.
    let id = t
        .create(
            "/api/scheduled/",
            &[("text", "Mon SMS d'exemple"), ("numbers", NUMBER)],
        )
        .await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 1, "delivered")).await;
    let row = &rows[0];
    assert_eq!(row["uid"], format!("sim-{}", int(row, "id")), "{row}");
    assert_eq!(row["adapter"], "simulator");
    assert_eq!(row["id_phone"], sim);
    assert_eq!(row["destination"], NUMBER);
    assert_eq!(row["text"], "Mon SMS d'exemple");
    assert_eq!(row["originating_scheduled"], id);
    let reply = poll(WAIT, || async {
        t.received()
            .await
            .into_iter()
            .find(|r| r["text"] == "Merci" && r["origin"] == NUMBER)
    })
    .await
    .expect("the auto-reply in the received list");
    assert_eq!(reply["id_phone"], sim);
    assert!(
        !t.list("scheduled").await.iter().any(|r| r["id"] == id),
        "a sent campaign is no longer listed as scheduled"
    );
    let history = t.history(int(row, "id")).await;
    assert_eq!(statuses(&history), ["queued", "sent", "delivered"]);
}

#[tokio::test]
async fn a_future_sms_is_not_sent_before_its_time() {
    let t = spawn_sending().await;
    phone(&t, "sim", "simulator", &[], &[]).await;
    let at_secs = jiff::Timestamp::now().as_second() + 3;
    let at = jiff::Timestamp::from_second(at_secs).expect("time");
    let id = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "later"),
                ("numbers", NUMBER),
                ("at", &at.strftime("%Y-%m-%d %H:%M:%S").to_string()),
            ],
        )
        .await;
    let at_ms = at_secs * 1000;
    let one_second_before = at_ms - 1000 - jiff::Timestamp::now().as_millisecond();
    tokio::time::sleep(Duration::from_millis(one_second_before.max(0) as u64)).await;
    assert!(
        t.list("scheduled").await.iter().any(|r| r["id"] == id),
        "still scheduled one second before its time"
    );
    assert!(t.sended().await.is_empty(), "nothing sent before its time");
    let rows = wait_sended(&t, id, |r| r.len() == 1).await;
    let sent_at = int(&t.message(int(&rows[0], "id")).await, "at");
    assert!(
        sent_at >= at_ms,
        "sent at {sent_at}, before its time {at_ms}"
    );
    assert!(!t.list("scheduled").await.iter().any(|r| r["id"] == id));
}

#[tokio::test]
async fn transient_failures_are_retried_then_fail() {
    let t = sending_with(|c| {
        c.max_tries = 3;
        c.retry_ms = vec![50];
    })
    .await;
    let sim = phone(&t, "flaky", "simulator", &[("success_rate", "0")], &[]).await;
    let id = campaign(&t, "try me", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 1, "failed")).await;
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["tries"], 3, "{m}");
    assert_eq!(m["error_text"], "simulated failure");
    assert_eq!(m["phone_id"], sim);
    let history = t.history(int(&m, "id")).await;
    assert_eq!(
        statuses(&history),
        ["queued", "queued", "queued", "failed"],
        "{history:?}"
    );
    for (_, detail) in &history[1..] {
        assert_eq!(detail.as_deref(), Some("simulated failure"));
    }
    assert!(simulated(&t, sim).is_empty());
}

#[tokio::test]
async fn a_permanent_failure_fails_after_one_try() {
    let t = sending_with(|c| {
        c.max_tries = 3;
        c.retry_ms = vec![50];
    })
    .await;
    phone(
        &t,
        "broken",
        "simulator",
        &[("success_rate", "0"), ("failure", "permanent")],
        &[],
    )
    .await;
    let id = campaign(&t, "no way", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 1, "failed")).await;
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(
        (&m["status"], &m["tries"]),
        (&"failed".into(), &1.into()),
        "{m}"
    );
    assert_eq!(
        statuses(&t.history(int(&m, "id")).await),
        ["queued", "failed"]
    );
}

#[tokio::test]
async fn a_message_no_phone_can_send_expires() {
    let t = sending_with(|c| c.validity_secs = 1).await;
    let sim = phone(&t, "off", "simulator", &[], &[]).await;
    let a = t
        .post(
            &format!("/api/phone/{sim}/status/force/"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(a.ok(), "disabled");
    let id = campaign(&t, "too late", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 1, "failed")).await;
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(m["status"], "expired", "{m}");
    assert_eq!(m["tries"], 0, "{m}");
    assert_eq!(
        t.history(int(&m, "id")).await.last().cloned(),
        Some(("expired".into(), Some("validity period exceeded".into())))
    );
    assert!(simulated(&t, sim).is_empty());
}

#[tokio::test]
async fn a_failing_phone_of_a_group_fails_over_to_another() {
    let t = sending_with(|c| {
        c.max_tries = 3;
        c.retry_ms = vec![50];
    })
    .await;
    // Priority makes the failing phone the first choice, so the failover is always exercised.
    t.set_setting("phone_priority", "1").await;
    let a = phone(
        &t,
        "A",
        "simulator",
        &[("success_rate", "0"), ("failure", "transient")],
        &[("priority", "5")],
    )
    .await;
    let b = phone(&t, "B", "simulator", &[("success_rate", "1")], &[]).await;
    let group = t
        .create(
            "/api/phone_group/",
            &[
                ("name", "both"),
                ("phones[]", &a.to_string()),
                ("phones[]", &b.to_string()),
            ],
        )
        .await;
    let id = campaign(
        &t,
        "through B",
        &[NUMBER],
        &[("id_phone_group", &group.to_string())],
    )
    .await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 1, "delivered")).await;
    assert_eq!(rows[0]["id_phone"], b, "{}", rows[0]);
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(m["tries"], 2, "one try on A, one on B: {m}");
    assert_eq!(
        statuses(&t.history(int(&m, "id")).await),
        ["queued", "queued", "sent", "delivered"]
    );
    assert!(simulated(&t, a).is_empty());
    assert_eq!(simulated(&t, b).len(), 1);
}

#[tokio::test]
async fn sends_are_woken_by_their_work_not_by_a_tick() {
    // A tick longer than the test: only wake-ups move the messages along.
    let t = sending_with(|c| {
        c.tick_ms = 60_000;
        c.max_tries = 3;
        c.retry_ms = vec![50];
    })
    .await;
    t.set_setting("phone_priority", "1").await;
    let a = phone(
        &t,
        "A",
        "simulator",
        &[("success_rate", "0"), ("failure", "transient")],
        &[("priority", "5")],
    )
    .await;
    let b = phone(&t, "B", "simulator", &[("success_rate", "1")], &[]).await;
    // Routed (to A first, then failed over to B), then with B chosen by the campaign.
    let routed = campaign(&t, "routed", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, routed, |r| all_with_status(r, 1, "delivered")).await;
    assert_eq!(rows[0]["id_phone"], b, "{}", rows[0]);
    let fixed = campaign(
        &t,
        "fixed",
        &["+33612345679"],
        &[("id_phone", &b.to_string())],
    )
    .await;
    wait_sended(&t, fixed, |r| all_with_status(r, 1, "delivered")).await;
    assert_eq!(simulated(&t, b).len(), 2);
    assert!(simulated(&t, a).is_empty());
}

#[tokio::test]
async fn limits_and_priority_share_messages_between_phones() {
    let t = spawn_sending().await;
    for setting in ["phone_limit", "phone_priority"] {
        t.set_setting(setting, "1").await;
    }
    let a = phone(
        &t,
        "A",
        "simulator",
        &[],
        &[
            ("priority", "5"),
            ("limits[0][volume]", "2"),
            ("limits[0][startpoint]", "today"),
        ],
    )
    .await;
    let b = phone(&t, "B", "simulator", &[], &[]).await;
    let numbers = [
        "+33612345670",
        "+33612345671",
        "+33612345672",
        "+33612345673",
        "+33612345674",
    ];
    let id = campaign(&t, "shared", &numbers, &[]).await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 5, "delivered")).await;
    let via = |p: i64| rows.iter().filter(|r| r["id_phone"] == p).count();
    assert_eq!((via(a), via(b)), (2, 3), "{rows:?}\n{}", dump(&t).await);
    assert_eq!((simulated(&t, a).len(), simulated(&t, b).len()), (2, 3));
}

#[tokio::test]
async fn a_message_waiting_for_a_phone_gets_it_before_a_newer_campaign() {
    // No workers: the test takes the scheduler's passes itself.
    let t = spawn_with(|_| {}).await;
    t.set_setting("phone_limit", "1").await;
    let a = phone(
        &t,
        "A",
        "simulator",
        &[],
        &[
            ("limits[0][volume]", "1"),
            ("limits[0][startpoint]", "today"),
        ],
    )
    .await;
    let force = |status: &'static str| {
        let t = &t;
        async move {
            let path = format!("/api/phone/{a}/status/force/");
            assert_eq!(t.post(&path, &[("status", status)]).await.ok(), status);
        }
    };
    let phone_of = |campaign: i64| {
        let t = &t;
        async move {
            t.sql(&format!(
                "SELECT phone_id FROM messages WHERE campaign_id = {campaign} AND status = 'queued'"
            ))
            .await[0]["phone_id"]
                .as_i64()
        }
    };
    force("disabled").await;
    let waiting = campaign(&t, "first", &[NUMBER], &[]).await;
    pigeon::workers::advance(&t.app).await.expect("pass");
    assert_eq!(phone_of(waiting).await, None, "{}", dump(&t).await);
    // The phone is back with room for one message: the waiting one gets it, not the new one.
    force("available").await;
    let newer = campaign(&t, "second", &["+33612345679"], &[]).await;
    pigeon::workers::advance(&t.app).await.expect("pass");
    assert_eq!(phone_of(waiting).await, Some(a), "{}", dump(&t).await);
    assert_eq!(phone_of(newer).await, None, "{}", dump(&t).await);
}

#[tokio::test]
async fn new_messages_wait_while_more_are_waiting_than_one_pass_routes() {
    let t = spawn_with(|_| {}).await;
    let a = phone(&t, "A", "simulator", &[], &[]).await;
    let path = format!("/api/phone/{a}/status/force/");
    assert_eq!(
        t.post(&path, &[("status", "disabled")]).await.ok(),
        "disabled"
    );
    let numbers: Vec<String> = (0..501).map(|i| format!("+336120{i:05}")).collect();
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    campaign(&t, "many", &numbers, &[]).await;
    pigeon::workers::advance(&t.app).await.expect("pass");
    assert_eq!(
        t.post(&path, &[("status", "available")]).await.ok(),
        "available"
    );
    let newer = campaign(&t, "newer", &[NUMBER], &[]).await;
    let unrouted = || async {
        t.sql("SELECT campaign_id FROM messages WHERE phone_id IS NULL")
            .await
            .iter()
            .map(|r| r["campaign_id"].as_i64().expect("campaign"))
            .collect::<Vec<_>>()
    };
    // One pass routes 500 of the 501 waiting: the new message does not overtake the last.
    pigeon::workers::advance(&t.app).await.expect("pass");
    let left = unrouted().await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&newer), "{left:?}");
    pigeon::workers::advance(&t.app).await.expect("pass");
    assert_eq!(unrouted().await, Vec::<i64>::new());
}

#[tokio::test]
async fn a_fixed_phone_is_always_used_without_the_limit_and_priority_settings() {
    let t = spawn_sending().await;
    let a = phone(
        &t,
        "A",
        "simulator",
        &[],
        &[
            ("limits[0][volume]", "1"),
            ("limits[0][startpoint]", "today"),
        ],
    )
    .await;
    let b = phone(&t, "B", "simulator", &[], &[("priority", "9")]).await;
    let numbers = ["+33612345670", "+33612345671", "+33612345672"];
    let id = campaign(&t, "fixed", &numbers, &[("id_phone", &a.to_string())]).await;
    let rows = wait_sended(&t, id, |r| all_with_status(r, 3, "delivered")).await;
    assert!(rows.iter().all(|r| r["id_phone"] == a), "{rows:?}");
    assert!(simulated(&t, b).is_empty());
}

#[tokio::test]
async fn stop_is_acknowledged_and_honoured_until_start() {
    let t = spawn_sending().await;
    let p = phone(&t, "test", "test", &[], &[]).await;
    let other = "+33699999999";
    inject(&t, p, NUMBER, "STOP").await;
    let ack = poll(WAIT, || async {
        t.sended()
            .await
            .into_iter()
            .find(|r| r["tag"] == "SMS_STOP" && r["destination"] == NUMBER)
    })
    .await;
    let Some(ack) = ack else {
        panic!("no STOP acknowledgement: {}", dump(&t).await);
    };
    assert_eq!(ack["text"], STOP_ACK);
    assert_eq!(
        ack["id_phone"], p,
        "acknowledged through the phone it came on"
    );
    assert!(
        t.received()
            .await
            .iter()
            .any(|r| r["text"] == "STOP" && r["origin"] == NUMBER)
    );

    let blocked = campaign(&t, "promo", &[NUMBER, other], &[]).await;
    let rows = wait_sended(&t, blocked, |r| r.len() == 1).await;
    assert_eq!(rows[0]["destination"], other);
    // Dispatch writes all of a campaign's messages at once: none was made for the stopped number.
    let made = t
        .sql(&format!(
            "SELECT destination FROM messages WHERE campaign_id = {blocked}"
        ))
        .await;
    assert_eq!(
        made,
        [serde_json::json!({"destination": other})],
        "nothing goes to a number on the STOP list"
    );
    let texts: Vec<String> = test_sent(&t, p)
        .iter()
        .filter(|s| s["destination"] == NUMBER)
        .map(|s| s["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(texts, [STOP_ACK]);

    inject(&t, p, NUMBER, "START").await;
    let welcome = campaign(&t, "welcome back", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, welcome, |r| r.len() == 1).await;
    assert_eq!(rows[0]["destination"], NUMBER);
}

#[tokio::test]
async fn an_exhausted_quota_fails_the_message() {
    let t = spawn_sending().await;
    let p = phone(&t, "test", "test", &[], &[]).await;
    set_credit(&t, 1).await;
    let first = campaign(&t, "one segment", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, first, |r| r.len() == 1).await;
    assert_eq!(rows[0]["status"], "unknown");
    assert_eq!(t.message(int(&rows[0], "id")).await["status"], "sent");
    let second = campaign(&t, "one more", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, second, |r| all_with_status(r, 1, "failed")).await;
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(m["status"], "failed", "{m}");
    assert_eq!(m["error_text"], "Not enough credit to send message.");
    assert_eq!(
        test_sent(&t, p).len(),
        1,
        "the second SMS never reached the phone"
    );
}

/// A server whose account sent one message through its test phone while it had no quota.
async fn sent_without_quota() -> (TestApp, i64) {
    let t = spawn_sending().await;
    let p = phone(&t, "test", "test", &[], &[]).await;
    let free = campaign(&t, "before the quota", &[NUMBER], &[]).await;
    let rows = wait_sended(&t, free, |r| r.len() == 1).await;
    assert_eq!(t.message(int(&rows[0], "id")).await["status"], "sent");
    (t, p)
}

/// The account's next message fails for want of credit and never reaches phone `p`.
async fn refused_for_credit(t: &TestApp, p: i64) {
    let refused = campaign(t, "after it", &[NUMBER], &[]).await;
    let rows = wait_sended(t, refused, |r| all_with_status(r, 1, "failed")).await;
    let m = t.message(int(&rows[0], "id")).await;
    assert_eq!(m["error_text"], "Not enough credit to send message.", "{m}");
    assert_eq!(test_sent(t, p).len(), 1);
}

/// Sends of an account without a quota write no reservation: whether it has one is kept for a
/// moment. A quota given through the service applies to the very next message.
#[tokio::test]
async fn a_quota_given_between_two_sends_applies_to_the_second() {
    let (t, p) = sent_without_quota().await;
    // Within the second the server keeps that the account has none.
    assert_eq!(t.app.recent_quotas.get(&t.user_id), Some(false));
    set_credit(&t, 0).await;
    refused_for_credit(&t, p).await;
}

/// A quota written by another process (the CLI, on the same database) applies within the
/// second for which the server keeps that the account had none.
#[tokio::test]
async fn a_quota_given_by_another_process_applies_within_a_second() {
    let (t, p) = sent_without_quota().await;
    let now = pigeon_core::time::Ts::now().0;
    let empty = pigeon_store::quotas::Quota {
        id: 0,
        user_id: t.user_id,
        credit: 0,
        additional: 0,
        consumed: 0,
        report_unused: false,
        report_unused_additional: false,
        auto_renew: false,
        renew_interval: "P1M".into(),
        start_date: now - 1_000,
        expiration_date: now + 86_400_000,
        alerted_level: false,
        alerted_reached: false,
    };
    pigeon_store::quotas::set(&t.app.store, &empty)
        .await
        .expect("quota");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    refused_for_credit(&t, p).await;
}

/// Credit 1 and two messages claimed together by one phone (the test channel sends four at
/// once): only one may go out.
#[tokio::test]
async fn concurrent_sends_never_overspend_a_quota() {
    let t = spawn_sending().await;
    let p = phone(&t, "test", "test", &[], &[]).await;
    set_credit(&t, 1).await;
    let id = campaign(&t, "one each", &["+33612345670", "+33612345671"], &[]).await;
    let rows = wait_sended(&t, id, |r| r.len() == 2).await;
    let mut shown: Vec<&str> = rows
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default())
        .collect();
    shown.sort_unstable();
    assert_eq!(
        (shown, test_sent(&t, p).len()),
        (vec!["failed", "unknown"], 1),
        "{}",
        dump(&t).await
    );
}

#[tokio::test]
async fn mms_media_become_links_on_a_channel_without_mms() {
    let t = spawn_sending().await;
    let sim = phone(&t, "sim", "simulator", &[], &[]).await;
    let bytes = b"\x89PNG not really".to_vec();
    let form = Form::new()
        .text("text", "Regarde")
        .text("mms", "1")
        .text("numbers", NUMBER)
        .part("medias[]", Part::bytes(bytes.clone()).file_name("cat.png"));
    let a = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .multipart(form),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.ok().as_i64().expect("id");
    wait_sended(&t, id, |r| r.len() == 1).await;
    let sent = simulated(&t, sim);
    assert_eq!(sent.len(), 1);
    let prefix = format!("Regarde\n{}/media/{}/", t.base, t.user_id);
    assert!(
        sent[0].text.starts_with(&prefix) && sent[0].text.ends_with(".png"),
        "{:?}",
        sent[0].text
    );
    let url = sent[0].text.trim_start_matches("Regarde\n");
    let got = t.client.get(url).send().await.expect("media");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn each_message_stores_its_encoding_and_segments() {
    let t = spawn_sending().await;
    phone(&t, "test", "test", &[], &[]).await;
    let long = "a".repeat(161);
    let euros = "€".repeat(80);
    let cases = [
        ("Привет", "ucs2", 1),
        (long.as_str(), "gsm7", 2),
        (euros.as_str(), "gsm7", 1),
    ];
    for (text, encoding, segments) in cases {
        let id = campaign(&t, text, &[NUMBER], &[]).await;
        let rows = wait_sended(&t, id, |r| r.len() == 1).await;
        let m = t.message(int(&rows[0], "id")).await;
        assert_eq!(
            (m["encoding"].as_str(), m["segments"].as_i64()),
            (Some(encoding), Some(segments)),
            "{text}"
        );
    }
}

/// A server whose workers send through a slow simulator phone (`data` added to its adapter
/// data), sending one campaign to `numbers`; stopped gracefully once `sending` messages are
/// being sent. The database, and the ids of those messages.
async fn shut_down_while_sending(
    data: &[(&str, &str)],
    numbers: &[&str],
    sending: usize,
) -> (tempfile::TempDir, std::path::PathBuf, Vec<i64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("pigeon.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = Config {
        listen: addr.to_string(),
        database_url: format!("sqlite://{}", db.display()),
        public_url: Some(format!("http://{addr}")),
        data_dir: dir.path().join("data"),
        workers: true,
        tick_ms: 50,
        ..Config::default()
    };
    let app = Arc::new(App::open(config).await.expect("open"));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app::run(app.clone(), listener, async {
        let _ = stopped.await;
    }));
    let key = accounts::create_user(&app, "alice@example.com", false, None, None)
        .await
        .expect("user")
        .api_key;
    let client = reqwest::Client::new();
    let post = |path: &str, form: &[(&str, &str)]| {
        client
            .post(format!("http://{addr}{path}"))
            .header("X-Api-Key", &key)
            .form(form)
    };
    let mut phone = vec![
        ("name", "slow"),
        ("adapter", "simulator"),
        ("adapter_data[latency_ms]", "2000"),
        ("adapter_data[dlr]", "0"),
    ];
    phone.extend_from_slice(data);
    let a = answer(post("/api/phone/", &phone)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let mut campaign = vec![("text", "in flight")];
    campaign.extend(numbers.iter().map(|n| ("numbers[]", *n)));
    let a = answer(post("/api/scheduled/", &campaign)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    // Seen before the first send ends (the phone takes 2 s per send).
    let ids = poll(WAIT, || async {
        let rows = sql_at(&db, "SELECT id, status FROM messages ORDER BY id").await;
        let sent = rows.iter().any(|r| r["status"] == "sent");
        let ids: Vec<i64> = rows
            .iter()
            .filter(|r| r["status"] == "sending")
            .filter_map(|r| r["id"].as_i64())
            .collect();
        (!sent && ids.len() == sending).then_some(ids)
    })
    .await
    .expect("the messages are being sent");
    stop.send(()).expect("server running");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("run() returns once the sends are done")
        .expect("server task")
        .expect("run");
    (dir, db, ids)
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_sends_under_way() {
    let (_dir, db, sending) = shut_down_while_sending(&[], &[NUMBER], 1).await;
    let sending = sending[0];
    let rows = sql_at(
        &db,
        &format!("SELECT status, provider_id FROM messages WHERE id = {sending}"),
    )
    .await;
    assert_eq!(rows[0]["status"], "sent", "{rows:?}");
    assert_eq!(rows[0]["provider_id"], format!("sim-{sending}"));
}

#[tokio::test]
async fn graceful_shutdown_gives_back_the_sends_claimed_ahead() {
    // Two slots, and one message claimed ahead of them (a quarter of the slots, rounded up).
    let numbers = [
        "+33612345671",
        "+33612345672",
        "+33612345673",
        "+33612345674",
    ];
    let (_dir, db, claimed) =
        shut_down_while_sending(&[("adapter_data[concurrency]", "2")], &numbers, 3).await;
    let rows = sql_at(&db, "SELECT id, status, tries FROM messages ORDER BY id").await;
    let of = |id: i64| {
        rows.iter()
            .find(|r| r["id"] == id)
            .expect("claimed message")
    };
    for id in &claimed[..2] {
        assert_eq!(of(*id)["status"], "sent", "{rows:?}");
    }
    // The one claimed ahead never reached the phone: queued again, its try not counted.
    assert_eq!(of(claimed[2])["status"], "queued", "{rows:?}");
    assert_eq!(of(claimed[2])["tries"], 0, "{rows:?}");
    let statuses: Vec<&str> = rows.iter().filter_map(|r| r["status"].as_str()).collect();
    assert_eq!(statuses, ["sent", "sent", "queued", "queued"], "{rows:?}");
}
