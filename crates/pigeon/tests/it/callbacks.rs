//! Provider callbacks end to end (RaspiSMS §1.3), with the workers running: the `kannel`
//! channel against a fake Kannel and its delivery reports, Kannel reception, the test adapter's
//! status and reception callbacks, inbound calls, and the test phone's polled inbox.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, answer, poll, spawn_sending};

const WAIT: Duration = Duration::from_secs(5);
const NUMBER: &str = "+33612345678";
const BAD_KEY: &str =
    "{\"error\":\"Invalid API key. You must provide a valid GET or POST api_key param.\"}";

type Requests = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A fake Kannel `sendsms` on 127.0.0.1: accepts every message and records each query.
async fn fake_kannel() -> (String, Requests) {
    let seen: Requests = Arc::default();
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/cgi-bin/sendsms",
        axum::routing::get(move |RawQuery(query): RawQuery| {
            let record = record.clone();
            async move {
                let params = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
                record.lock().expect("lock").push(params);
                (StatusCode::ACCEPTED, "0: Accepted for delivery")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/cgi-bin/sendsms"), seen)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn kannel_phone(t: &TestApp, url: &str) -> i64 {
    t.create(
        "/api/phone/",
        &[
            ("name", "kannel"),
            ("adapter", "adapters\\KannelAdapter"),
            ("adapter_data[kannel_sendsms_url]", url),
            ("adapter_data[username]", "pigeon"),
            ("adapter_data[password]", "s3cret"),
            ("adapter_data[from]", "+33600000000"),
        ],
    )
    .await
}

async fn test_phone(t: &TestApp) -> i64 {
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await
}

/// Sends `text` to `number` now and waits for its `sended` row.
async fn send(t: &TestApp, text: &str, number: &str) -> Value {
    let id = t
        .create("/api/scheduled/", &[("text", text), ("numbers", number)])
        .await;
    let found = poll(WAIT, || async {
        t.sended()
            .await
            .into_iter()
            .find(|r| r["originating_scheduled"] == id)
    })
    .await;
    match found {
        Some(row) => row,
        None => panic!(
            "campaign {id} not sent: {:?}",
            t.sql("SELECT * FROM messages").await
        ),
    }
}

/// The `sended` status of message `id`.
async fn sended_status(t: &TestApp, id: &Value) -> Value {
    t.sended()
        .await
        .into_iter()
        .find(|r| &r["id"] == id)
        .map(|r| r["status"].clone())
        .unwrap_or(Value::Null)
}

/// Waits until message `id` shows `status` in `sended`.
async fn wait_status(t: &TestApp, id: &Value, status: &str) {
    let reached = poll(WAIT, || async {
        (sended_status(t, id).await == status).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "message {id} never became {status}: {}",
        sended_status(t, id).await
    );
}

/// A call callback (`inbound_call` or `end_call`) for phone `p`.
async fn call(t: &TestApp, p: i64, path: &str, form: &[(&str, &str)]) -> crate::helpers::Answer {
    let url = t.url(&format!("{path}{p}/?api_key={}", t.key));
    answer(t.client.post(url).form(form)).await
}

/// GET on a full URL; (status, body).
async fn get_url(t: &TestApp, url: &str) -> (u16, String) {
    let a = answer(t.client.get(url)).await;
    (a.status, a.text)
}

#[tokio::test]
async fn kannel_sends_and_its_delivery_reports_move_the_message_forward_only() {
    let t = spawn_sending().await;
    let (url, seen) = fake_kannel().await;
    let phone = kannel_phone(&t, &url).await;
    let first = send(&t, "Bonjour Kannel", NUMBER).await;
    assert_eq!(first["adapter"], "kannel");
    assert_eq!(first["status"], "unknown");
    let uid = first["uid"].as_str().expect("uid").to_string();
    let query = seen.lock().expect("lock")[0].clone();
    assert_eq!(param(&query, "to"), Some(NUMBER));
    assert_eq!(param(&query, "text"), Some("Bonjour Kannel"));
    assert_eq!(param(&query, "from"), Some("+33600000000"));
    assert_eq!(param(&query, "username"), Some("pigeon"));
    assert_eq!(param(&query, "password"), Some("s3cret"));
    assert!(
        param(&query, "dlr-mask").is_some_and(|m| !m.is_empty()),
        "{query:?}"
    );
    let dlr_url = param(&query, "dlr-url").expect("dlr-url").to_string();
    assert_eq!(
        dlr_url,
        format!(
            "{}/callback/status/kannel/{phone}?api_key={}&sms_uid={uid}&type=%d",
            t.base, t.key
        )
    );

    // Kannel calls the DLR URL with %d replaced by the report type: 1 is delivered.
    assert_eq!(
        get_url(&t, &dlr_url.replace("%d", "1")).await,
        (200, String::new())
    );
    wait_status(&t, &first["id"], "delivered").await;

    let second = send(&t, "Encore", "+33611111111").await;
    assert_eq!(seen.lock().expect("lock").len(), 2);
    let second_dlr = param(&seen.lock().expect("lock")[1], "dlr-url")
        .expect("dlr-url")
        .to_string();
    assert_eq!(
        get_url(&t, &second_dlr.replace("%d", "16")).await,
        (200, String::new())
    );
    wait_status(&t, &second["id"], "failed").await;
    let m = t.message(second["id"].as_i64().expect("id")).await;
    assert_eq!(m["status"], "failed", "{m}");

    // A report for a message nobody sent changes nothing and is still acknowledged.
    let unknown = format!(
        "{}/callback/status/kannel/?api_key={}&sms_uid=1-deadbeef&type=16",
        t.base, t.key
    );
    assert_eq!(get_url(&t, &unknown).await, (200, String::new()));
    // A bad key is refused.
    let forged = dlr_url.replace(&t.key, "not-a-key").replace("%d", "16");
    assert_eq!(get_url(&t, &forged).await, (401, BAD_KEY.to_string()));
    // Late or duplicated reports never move a delivered message backwards.
    for kind in ["8", "16", "2"] {
        assert_eq!(
            get_url(&t, &dlr_url.replace("%d", kind)).await,
            (200, String::new())
        );
    }
    assert_eq!(sended_status(&t, &first["id"]).await, "delivered");
    assert_eq!(sended_status(&t, &second["id"]).await, "failed");
    let m = t.message(first["id"].as_i64().expect("id")).await;
    assert_eq!(m["status"], "delivered", "{m}");
}

#[tokio::test]
async fn kannel_reception_takes_the_sender_from_x_kannel_from() {
    let t = spawn_sending().await;
    let (url, _) = fake_kannel().await;
    let p = kannel_phone(&t, &url).await;
    let post = |key: &str| {
        t.client
            .post(t.url(&format!("/callback/reception/kannel/{p}/?api_key={key}")))
            .header("X-Kannel-From", NUMBER)
            .header("X-Kannel-To", "+33600000000")
            .header("Content-Type", "text/plain; charset=\"UTF-8\"")
            .body("Bonjour")
    };
    let other = t.other_user("bob@example.com").await;
    let a = answer(post(&other)).await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    assert!(
        t.received().await.is_empty(),
        "another account's key cannot inject into this phone"
    );
    let a = answer(post(&t.key)).await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    let rows = t.received().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["text"], "Bonjour");
    assert_eq!(rows[0]["origin"], NUMBER);
    assert_eq!(rows[0]["id_phone"], p);
    assert!(t.get_as(&other, "/api/list/received/").await.ok() == &json!([]));
}

#[tokio::test]
async fn test_adapter_status_callbacks_deliver_by_name_and_raspisms_uid() {
    let t = spawn_sending().await;
    test_phone(&t).await;
    for adapter in ["test", "test_adapter"] {
        let row = send(&t, &format!("via {adapter}"), NUMBER).await;
        assert_eq!(row["status"], "unknown");
        let uid = row["uid"].as_str().expect("uid");
        let a = t
            .get(&format!(
                "/callback/status/{adapter}/?api_key={}&uid={uid}&status=delivered",
                t.key
            ))
            .await;
        assert_eq!((a.status, a.text.as_str()), (200, ""));
        wait_status(&t, &row["id"], "delivered").await;
    }
}

#[tokio::test]
async fn inbound_calls_are_recorded_and_ended() {
    let t = spawn_sending().await;
    let p = test_phone(&t).await;
    let a = call(
        &t,
        p,
        "/callback/inbound_call/",
        &[
            ("uid", "call-1"),
            ("start", "2026-01-01 10:00:00"),
            ("origin", NUMBER),
        ],
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    let calls = pigeon_store::calls::list(&t.app.store, t.user_id)
        .await
        .expect("calls");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let start = jiff::Timestamp::from_second(1_767_261_600).expect("ts");
    assert_eq!(calls[0].uid, "call-1");
    assert_eq!(calls[0].phone_id, Some(p));
    assert_eq!(calls[0].origin.as_deref(), Some(NUMBER));
    assert_eq!(calls[0].direction, "inbound");
    assert_eq!(calls[0].start_at, start.as_millisecond());
    assert_eq!(calls[0].end_at, None);

    let a = call(
        &t,
        p,
        "/callback/end_call/",
        &[("uid", "call-1"), ("end", "2026-01-01 10:05:00")],
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    let calls = pigeon_store::calls::list(&t.app.store, t.user_id)
        .await
        .expect("calls");
    assert_eq!(calls[0].end_at, Some(start.as_millisecond() + 300_000));

    let a = call(
        &t,
        p,
        "/callback/inbound_call/",
        &[("uid", "call-2"), ("start", "2026-01-01 11:00:00")],
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (200, ""));
    let calls = pigeon_store::calls::list(&t.app.store, t.user_id)
        .await
        .expect("calls");
    assert_eq!(
        calls.len(),
        1,
        "a call without origin is not stored: {calls:?}"
    );
}

#[tokio::test]
async fn a_test_phone_reads_its_inbox_file() {
    let t = spawn_sending().await;
    let p = test_phone(&t).await;
    let dir = t.app.config.data_dir.join("channels").join(p.to_string());
    std::fs::create_dir_all(&dir).expect("dir");
    let mut inbox = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("inbox.jsonl"))
        .expect("inbox");
    writeln!(inbox, "{}", json!({"origin": NUMBER, "text": "hi"})).expect("write");
    drop(inbox);
    let row = poll(WAIT, || async {
        t.received().await.into_iter().find(|r| r["text"] == "hi")
    })
    .await
    .expect("the inbox line in the received list");
    assert_eq!(row["origin"], NUMBER);
    assert_eq!(row["id_phone"], p);
    assert_eq!(t.received().await.len(), 1, "read once");
}
