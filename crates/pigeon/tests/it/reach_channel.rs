//! The `reach` channel end to end, with the workers running: a phone sending through a fake
//! Reach, and Reach's signed status callback on Pigeon's per-phone URL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::Form;
use axum::http::{HeaderMap, StatusCode};
use pigeon_core::signature;
use serde_json::{Value, json};

use crate::helpers::{TestApp, answer, poll, spawn_sending};

const WAIT: Duration = Duration::from_secs(5);
const NUMBER: &str = "+33612345678";
const API_USER: &str = "applet-user";
const API_KEY: &str = "reach-s3cret";

/// What the fake Reach saw of each create: the `ApiUser` and `ApiKey` headers, and the form.
type Creates = Arc<Mutex<Vec<(Option<String>, Option<String>, Vec<(String, String)>)>>>;

/// A fake Reach on 127.0.0.1 whose `create` accepts every message as `RM1`, `RM2`...
async fn fake_reach() -> (String, Creates) {
    let seen: Creates = Arc::default();
    let record = seen.clone();
    let create = move |headers: HeaderMap, Form(form): Form<Vec<(String, String)>>| {
        let record = record.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let mut creates = record.lock().expect("lock");
            creates.push((header("apiuser"), header("apikey"), form));
            let item = json!({"messageId": format!("RM{}", creates.len()), "status": "queued"});
            (StatusCode::CREATED, Json(item))
        }
    };
    let router =
        axum::Router::new().route("/rest/messaging/v1/create", axum::routing::post(create));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), seen)
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `sended` row of campaign `scheduled`, once there is one.
async fn sended_row(t: &TestApp, scheduled: i64) -> Option<Value> {
    t.sended()
        .await
        .into_iter()
        .find(|r| r["originating_scheduled"] == scheduled)
}

/// POSTs a status callback form to `url` with `X-Reach-Signature: signature` (none if `None`).
async fn post_callback(
    t: &TestApp,
    url: &str,
    form: &[(&str, &str)],
    signature: Option<&str>,
) -> u16 {
    let mut request = t.client.post(url).form(form);
    if let Some(signature) = signature {
        request = request.header("X-Reach-Signature", signature);
    }
    answer(request).await.status
}

#[tokio::test]
async fn reach_sends_and_its_signed_status_callback_delivers() {
    let t = spawn_sending().await;
    let (base_url, creates) = fake_reach().await;
    let phone = t
        .create(
            "/api/phone/",
            &[
                ("name", "reach"),
                ("adapter", "reach"),
                ("adapter_data[api_user]", API_USER),
                ("adapter_data[api_key]", API_KEY),
                ("adapter_data[src]", "+33600000000"),
                ("adapter_data[base_url]", &base_url),
            ],
        )
        .await;
    let scheduled = t
        .create(
            "/api/scheduled/",
            &[("text", "Bonjour Reach"), ("numbers", NUMBER)],
        )
        .await;
    let Some(row) = poll(WAIT, || sended_row(&t, scheduled)).await else {
        panic!("not sent: {:?}", t.sql("SELECT * FROM messages").await);
    };
    assert_eq!(row["adapter"], "reach");
    assert_eq!(row["status"], "unknown");
    assert_eq!(row["uid"], "RM1");

    let (user, key, form) = creates.lock().expect("lock")[0].clone();
    assert_eq!(
        (user.as_deref(), key.as_deref()),
        (Some(API_USER), Some(API_KEY))
    );
    assert_eq!(param(&form, "dest"), Some(NUMBER));
    assert_eq!(param(&form, "src"), Some("+33600000000"));
    assert_eq!(param(&form, "body"), Some("Bonjour Reach"));
    let callback = format!("{}/callback/status/reach/{phone}?api_key={}", t.base, t.key);
    assert_eq!(param(&form, "statusCallback"), Some(callback.as_str()));
    let bulk = param(&form, "bulkIdentifier").expect("a bulkIdentifier");

    let report = [
        ("messageId", "RM1"),
        ("status", "delivered"),
        ("bulkId", bulk),
    ];
    let forged = signature::reach("another-key", &callback, &report);
    assert_eq!(post_callback(&t, &callback, &report, None).await, 403);
    // The RaspiSMS-style URL without the phone cannot check a signature: refused.
    let phoneless = format!("{}/callback/status/reach/?api_key={}", t.base, t.key);
    let signed_elsewhere = signature::reach(API_KEY, &phoneless, &report);
    assert_eq!(
        post_callback(&t, &phoneless, &report, Some(&signed_elsewhere)).await,
        403
    );
    assert_eq!(
        post_callback(&t, &callback, &report, Some(&forged)).await,
        403
    );
    let status = sended_row(&t, scheduled).await.map(|r| r["status"].clone());
    assert_eq!(
        status,
        Some(json!("unknown")),
        "a refused report changes nothing"
    );

    let signed = signature::reach(API_KEY, &callback, &report);
    assert_eq!(
        post_callback(&t, &callback, &report, Some(&signed)).await,
        200
    );
    let delivered = poll(WAIT, || async {
        sended_row(&t, scheduled)
            .await
            .filter(|r| r["status"] == "delivered")
    })
    .await;
    assert!(delivered.is_some(), "{:?}", sended_row(&t, scheduled).await);
    assert_eq!(creates.lock().expect("lock").len(), 1);
}
