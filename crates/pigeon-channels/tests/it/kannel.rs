//! The Kannel adapter against a fake Kannel: an HTTP server with Kannel's `sendsms` interface.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use pigeon_channels::{Channel, Report, SendError, find, parse_status_callback};
use serde_json::json;

use crate::helpers::{Phone, STATUS_CALLBACK, data, outgoing};

/// One `sendsms` request as the fake Kannel saw it: decoded parameters and the raw query.
#[derive(Debug, Clone)]
struct Request {
    params: Vec<(String, String)>,
    raw: String,
}

impl Request {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct FakeKannel {
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeKannel {
    fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn sendsms(
    State(fake): State<FakeKannel>,
    RawQuery(raw): RawQuery,
    Query(params): Query<Vec<(String, String)>>,
) -> (StatusCode, &'static str) {
    let request = Request {
        params,
        raw: raw.unwrap_or_default(),
    };
    let authorized =
        request.get("username") == Some("pigeon") && request.get("password") == Some("s3cret&=");
    if let Ok(mut requests) = fake.requests.lock() {
        requests.push(request);
    }
    if authorized {
        (StatusCode::ACCEPTED, "0: Accepted for delivery")
    } else {
        (StatusCode::FORBIDDEN, "Authorization failed for sendsms")
    }
}

async fn busy() -> (StatusCode, &'static str) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporal failure, try again later.",
    )
}

async fn start_fake() -> (SocketAddr, FakeKannel) {
    let fake = FakeKannel::default();
    let app = Router::new()
        .route("/cgi-bin/sendsms", get(sendsms))
        .route("/busy/cgi-bin/sendsms", get(busy))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

fn open(phone: &Phone, url: String, extra: serde_json::Value) -> Channel {
    let mut fields = data(json!({
        "kannel_sendsms_url": url,
        "username": "pigeon",
        // Characters that must be escaped in a query.
        "password": "s3cret&=",
        "from": "+33600000000",
    }));
    fields.extend(data(extra));
    Channel::open("adapters\\KannelAdapter", &fields, phone.ctx()).expect("valid Kannel data")
}

#[tokio::test]
async fn sends_the_exact_sendsms_parameters() {
    let (addr, fake) = start_fake().await;
    let phone = Phone::new();
    let kannel = open(
        &phone,
        format!("http://{addr}/cgi-bin/sendsms"),
        json!({"smsc": "modem1"}),
    );

    let mut plain = outgoing(1, "+33611111111", "hello €");
    plain.ucs2 = false;
    let sent = kannel.send(&plain).await.expect("accepted");
    let mut unicode = outgoing(2, "+33622222222", "Привет 😀");
    unicode.ucs2 = true;
    let sent_unicode = kannel.send(&unicode).await.expect("accepted");

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.get("to"), Some("+33611111111"));
    assert_eq!(first.get("from"), Some("+33600000000"));
    assert_eq!(first.get("text"), Some("hello €"));
    assert_eq!(first.get("dlr-mask"), Some("31"));
    assert_eq!(first.get("smsc"), Some("modem1"));
    assert_eq!(first.get("coding"), None);
    assert_eq!(first.get("charset"), None);
    let expected_dlr = format!("{STATUS_CALLBACK}&sms_uid={}&type=%d", sent.provider_id);
    assert_eq!(first.get("dlr-url"), Some(expected_dlr.as_str()));
    // One parameter, with its `&`, `=` and `%` escaped, so Kannel keeps `%d` to substitute.
    assert!(first.raw.contains("type%3D%25d"), "{}", first.raw);
    assert_eq!(
        first
            .params
            .iter()
            .filter(|(k, _)| k == "type" || k == "sms_uid")
            .count(),
        0
    );

    let second = &requests[1];
    assert_eq!(second.get("text"), Some("Привет 😀"));
    assert_eq!(second.get("coding"), Some("2"));
    assert_eq!(second.get("charset"), Some("UTF-8"));
    assert!(
        second
            .get("dlr-url")
            .is_some_and(|u| u.contains(&format!("sms_uid={}&", sent_unicode.provider_id)))
    );

    // RaspiSMS-style ids, one per message.
    assert_ne!(sent.provider_id, sent_unicode.provider_id);
    let (secs, hex) = sent.provider_id.split_once('-').expect("<secs>-<hex>");
    assert!(secs.parse::<u64>().is_ok());
    assert!(hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn the_dlr_url_kannel_calls_back_parses_to_the_provider_id() {
    let (addr, fake) = start_fake().await;
    let phone = Phone::new();
    let kannel = open(
        &phone,
        format!("http://{addr}/cgi-bin/sendsms"),
        json!({"dlr_url": "https://pigeon.example/dlr/kannel"}),
    );
    let sent = kannel
        .send(&outgoing(1, "+33611111111", "hi"))
        .await
        .expect("accepted");
    let dlr_url = fake.requests()[0]
        .get("dlr-url")
        .map(str::to_string)
        .expect("a dlr-url");
    assert!(
        dlr_url.starts_with("https://pigeon.example/dlr/kannel?sms_uid="),
        "{dlr_url}"
    );

    // What Kannel does when the handset reports delivery: substitute %d and call the URL.
    let called = reqwest::Url::parse(&dlr_url.replace("%d", "1")).expect("a URL");
    let params: Vec<(String, String)> = called
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let adapter = find("kannel_adapter").expect("kannel adapter");
    assert_eq!(
        parse_status_callback(adapter, &params),
        Some((sent.provider_id, Report::Delivered))
    );
}

#[tokio::test]
async fn bad_credentials_are_permanent_with_kannels_answer() {
    let (addr, _fake) = start_fake().await;
    let phone = Phone::new();
    let kannel = open(
        &phone,
        format!("http://{addr}/cgi-bin/sendsms"),
        json!({"password": "wrong"}),
    );
    match kannel.send(&outgoing(1, "+33611111111", "hi")).await {
        Err(SendError::Permanent(message)) => {
            assert!(
                message.contains("403") && message.contains("Authorization failed"),
                "{message}"
            );
            assert!(!message.contains("wrong"), "the password leaked: {message}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn unavailable_kannel_is_transient() {
    let (addr, _fake) = start_fake().await;
    let phone = Phone::new();
    let kannel = open(
        &phone,
        format!("http://{addr}/busy/cgi-bin/sendsms"),
        json!({}),
    );
    match kannel.send(&outgoing(1, "+33611111111", "hi")).await {
        Err(SendError::Transient(message)) => assert!(message.contains("503"), "{message}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kannel_that_never_answers_is_transient_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // Accepts connections and keeps them open without a word.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let phone = Phone::new();
    let kannel = open(
        &phone,
        format!("http://{addr}/cgi-bin/sendsms"),
        json!({"timeout_ms": 300}),
    );
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        kannel.send(&outgoing(1, "+33611111111", "hi")),
    )
    .await
    .expect("the adapter's own timeout fires first");
    assert!(started.elapsed() >= Duration::from_millis(300));
    match result {
        Err(SendError::Transient(message)) => assert!(message.contains("300 ms"), "{message}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_hides_the_password() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("local addr")
    };
    let phone = Phone::new();
    let kannel = open(&phone, format!("http://{addr}/cgi-bin/sendsms"), json!({}));
    match kannel.send(&outgoing(1, "+33611111111", "hi")).await {
        Err(SendError::Transient(message)) => assert!(!message.contains("s3cret"), "{message}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_destination_with_spaces_is_refused_before_kannel_sees_it() {
    let (addr, fake) = start_fake().await;
    let phone = Phone::new();
    let kannel = open(&phone, format!("http://{addr}/cgi-bin/sendsms"), json!({}));
    let result = kannel
        .send(&outgoing(1, "+33611111111 +33622222222", "hi"))
        .await;
    assert!(matches!(result, Err(SendError::Permanent(_))), "{result:?}");
    assert!(fake.requests().is_empty());
}
