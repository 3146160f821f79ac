//! Astandes notifications: the message object to the message's URL on every status change,
//! inbound SMS (204) to the device's URL, signed with the device's secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{TestApp, answer, poll, spawn_sending};

type Received = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;

/// A receiver on 127.0.0.1 recording (path, headers, JSON body).
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = Router::new().route(
        "/{*path}",
        post(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    sink.lock()
                        .expect("lock")
                        .push((uri.path().to_string(), headers, json));
                    "ok"
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

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

fn verify(secret: &str, headers: &HeaderMap, body: &Value) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(
        format!(
            "{}.{}.{}",
            header("webhook-id"),
            header("webhook-timestamp"),
            body
        )
        .as_bytes(),
    );
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(header("webhook-signature"), expected);
    assert_eq!(header("content-type"), "application/json");
}

fn statuses(received: &Received, path: &str) -> Vec<i64> {
    received
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _, _)| p == path)
        .filter_map(|(_, _, b)| b["status"].as_i64())
        .collect()
}

#[tokio::test]
async fn every_status_change_and_inbound_sms_is_notified() {
    let t = spawn_sending().await;
    let (base, received) = receiver().await;
    let device = api(
        &t,
        reqwest::Method::POST,
        "/api/v1/device",
        Some(json!({"notification": format!("{base}/inbox")})),
    )
    .await;
    let id = device["_id"].as_str().expect("id").to_string();
    let secret = api(
        &t,
        reqwest::Method::GET,
        &format!("/api/v1/device/{id}/secret"),
        None,
    )
    .await["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    // Offline: the TTL runs out on the server (501), and a deleted message is notified (505).
    let body = json!({"device": id, "phone": "+5511999999999", "text": "late", "ttl": 1, "notification": format!("{base}/status")});
    api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    let body = json!({"device": id, "phone": "+5511999999998", "text": "gone", "notification": format!("{base}/status")});
    let gone = api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    api(
        &t,
        reqwest::Method::DELETE,
        &format!("/api/v1/message/{}", gone["_id"].as_str().expect("id")),
        None,
    )
    .await;
    let expired = poll(Duration::from_secs(10), || async {
        let mut s = statuses(&received, "/status");
        s.sort_unstable();
        (s == [501, 505]).then_some(())
    })
    .await;
    assert!(expired.is_some(), "{:?}", statuses(&received, "/status"));

    // Online: pair a real agent, send, and get 203 then 205; an inbound SMS reaches the device URL.
    let attach = api(
        &t,
        reqwest::Method::POST,
        "/api/v1/attach",
        Some(json!({ "device": id })),
    )
    .await;
    let state = t.dir.path().join("agent.json");
    let inbox = t.dir.path().join("inbox.sh");
    let script = "#!/bin/sh\necho '{\"from\":\"+33612345678\",\"text\":\"Bonjour\"}'\nsleep 60\n";
    std::fs::write(&inbox, script).expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&inbox)
        .status()
        .expect("chmod");
    let _agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .args([
            "agent",
            "--server",
            &t.base,
            "--pin",
            attach["code"].as_str().expect("code"),
            "--state",
        ])
        .arg(&state)
        .arg("--receive-command")
        .arg(&inbox)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent");
    let body = json!({"device": id, "phone": "+5511999999997", "text": "hello", "notification": format!("{base}/sent")});
    let sent = api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    // Notifications of one message may arrive in any order (several are in flight at once).
    let sorted = || {
        let mut s = statuses(&received, "/sent");
        s.sort_unstable();
        s
    };
    let delivered = poll(Duration::from_secs(15), || async {
        (sorted().len() == 4).then_some(())
    })
    .await;
    assert!(delivered.is_some(), "{:?}", statuses(&received, "/sent"));
    assert_eq!(sorted(), [202, 203, 205, 302]);
    for (path, headers, body) in received.lock().expect("lock").iter() {
        verify(&secret, headers, body);
        if path == "/sent" {
            assert_eq!(body["_id"], sent["_id"]);
            assert_eq!(body["device"]["_id"], id.as_str());
        }
    }
    // The delivery's notification carries the whole history.
    let last = received
        .lock()
        .expect("lock")
        .iter()
        .find(|(p, _, b)| p == "/sent" && b["status"] == 205)
        .map(|(_, _, b)| b.clone());
    let history: Vec<i64> = last.expect("notification")["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["status"].as_i64())
        .collect();
    assert_eq!(history, [201, 202, 302, 203, 205]);
    let inbound = poll(Duration::from_secs(10), || async {
        let received = received.lock().expect("lock");
        received
            .iter()
            .find(|(p, _, _)| p == "/inbox")
            .map(|(_, _, b)| b.clone())
    })
    .await
    .expect("inbound notification");
    assert_eq!(
        (
            inbound["status"].as_i64(),
            inbound["phone"].as_str(),
            inbound["text"].as_str()
        ),
        (Some(204), Some("+33612345678"), Some("Bonjour"))
    );
    assert_eq!(inbound["device"]["_id"], id.as_str());
}
