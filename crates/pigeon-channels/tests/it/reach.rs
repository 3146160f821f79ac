//! The Reach adapter against a fake Reach: an HTTP server with the messaging API's `create` and
//! `list`, which checks the credentials and records every request.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use pigeon_channels::{
    Channel, Outgoing, Report, SendError, Sent, find, parse_status_callback, verify_status_callback,
};
use pigeon_core::signature;
use serde_json::{Value, json};

use crate::helpers::{Phone, STATUS_CALLBACK, data, outgoing};

const API_USER: &str = "applet-user";
const API_KEY: &str = "reach-s3cret";
const SRC: &str = "+33600000000";

/// How the fake answers a create.
#[derive(Debug, Clone)]
enum Mode {
    /// Records the message and answers its MessageItem.
    Accept,
    /// Records the message, then answers only after this long.
    Slow(Duration),
    /// Records nothing and answers only after this long.
    Hang(Duration),
    /// Records nothing and answers this error.
    Refuse(StatusCode, &'static str),
    /// Records the message and answers it as failed.
    Fail,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    op: &'static str,
    /// `ApiUser`, `ApiKey` and `Accept` were Reach's.
    authorized: bool,
    params: Vec<(String, String)>,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct FakeReach {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The MessageItems Reach holds.
    messages: Arc<Mutex<Vec<Value>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeReach {
    fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    fn ops(&self) -> Vec<&'static str> {
        self.seen().iter().map(|s| s.op).collect()
    }

    /// Records a request; `None` when its credentials are not Reach's.
    fn record(
        &self,
        op: &'static str,
        headers: &HeaderMap,
        params: Vec<(String, String)>,
    ) -> Option<Seen> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let authorized = header("apiuser") == Some(API_USER)
            && header("apikey") == Some(API_KEY)
            && header("accept") == Some("application/json");
        let seen = Seen {
            op,
            authorized,
            params,
        };
        lock(&self.seen).push(seen.clone());
        authorized.then_some(seen)
    }

    /// Stores a MessageItem for a create's form, as Reach does.
    fn store(&self, form: &Seen, status: &str) -> Value {
        let mut messages = lock(&self.messages);
        let item = json!({
            "messageId": format!("MSG{}", messages.len() + 1),
            "status": status,
            "dest": form.get("dest"),
            "src": form.get("src"),
            "body": form.get("body"),
            "bulkId": form.get("bulkIdentifier"),
            "errorCode": if status == "failed" { json!(30008) } else { Value::Null },
            "errorMessage": if status == "failed" { json!("unknown error at the carrier") } else { Value::Null },
        });
        messages.push(item.clone());
        item
    }

    /// The status callback Reach posts for message `id` to the `statusCallback` it was given:
    /// the form, and the header signed with `key` over `signed_url`.
    fn callback(&self, signed_url: &str, key: &str, id: &str) -> (Vec<(String, String)>, String) {
        let form = [
            ("messageId", id),
            ("status", "delivered"),
            ("dest", "+33611111111"),
        ];
        let header = signature::reach(key, signed_url, &form);
        let form = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (form, header)
    }
}

fn reach_error(status: StatusCode, message: &str) -> Response {
    let body =
        json!({"errorCode": status.as_u16() * 100, "errorMessage": message, "errorDetails": {}});
    (status, Json(body)).into_response()
}

async fn create(
    State(fake): State<FakeReach>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> Response {
    let Some(form) = fake.record("create", &headers, params) else {
        return reach_error(StatusCode::UNAUTHORIZED, "Authentication failed");
    };
    let mode = lock(&fake.mode).clone();
    let item = match mode {
        Mode::Accept => fake.store(&form, "queued"),
        Mode::Fail => fake.store(&form, "failed"),
        Mode::Slow(delay) => {
            let item = fake.store(&form, "queued");
            tokio::time::sleep(delay).await;
            item
        }
        Mode::Hang(delay) => {
            tokio::time::sleep(delay).await;
            return reach_error(StatusCode::GATEWAY_TIMEOUT, "too late");
        }
        Mode::Refuse(status, message) => return reach_error(status, message),
    };
    (StatusCode::CREATED, Json(item)).into_response()
}

async fn list(
    State(fake): State<FakeReach>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Some(query) = fake.record("list", &headers, params) else {
        return reach_error(StatusCode::UNAUTHORIZED, "Authentication failed");
    };
    let bulk = query.get("bulkIdentifier");
    let messages: Vec<Value> = lock(&fake.messages)
        .iter()
        .filter(|m| bulk.is_none() || m["bulkId"].as_str() == bulk)
        .cloned()
        .collect();
    Json(json!({
        "page": 0, "pageSize": 20, "totalMessages": messages.len(), "totalPages": 1,
        "outOfPageRange": false, "messages": messages,
    }))
    .into_response()
}

async fn start_fake() -> (String, FakeReach) {
    let fake = FakeReach {
        mode: Arc::new(Mutex::new(Mode::Accept)),
        seen: Arc::default(),
        messages: Arc::default(),
    };
    let app = Router::new()
        .route("/rest/messaging/v1/create", post(create))
        .route("/rest/messaging/v1/list", get(list))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), fake)
}

fn open(phone: &Phone, base_url: &str, extra: Value) -> Channel {
    let mut fields = data(json!({
        "api_user": API_USER, "api_key": API_KEY, "src": SRC, "base_url": base_url,
    }));
    fields.extend(data(extra));
    Channel::open("adapters\\ReachAdapter", &fields, phone.ctx()).expect("valid Reach data")
}

fn attempt(n: u32, m: Outgoing) -> Outgoing {
    Outgoing { attempt: n, ..m }
}

#[tokio::test]
async fn sends_the_create_form_with_reach_headers() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({}));
    assert_eq!(reach.adapter().name, "reach");

    let sent = reach
        .send(&outgoing(1, "+33611111111", "Bonjour & à bientôt"))
        .await;
    assert_eq!(
        sent,
        Ok(Sent {
            provider_id: "MSG1".into()
        })
    );
    let mut named = outgoing(2, "+33622222222", "hi");
    named.sender = Some("Pigeon".into());
    let sent = reach.send(&named).await;
    assert_eq!(
        sent,
        Ok(Sent {
            provider_id: "MSG2".into()
        })
    );

    let seen = fake.seen();
    assert_eq!(
        fake.ops(),
        ["create", "create"],
        "a first attempt does not list"
    );
    assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
    let first = &seen[0];
    assert_eq!(first.get("dest"), Some("+33611111111"));
    assert_eq!(first.get("src"), Some(SRC));
    assert_eq!(first.get("body"), Some("Bonjour & à bientôt"));
    assert_eq!(first.get("bulkIdentifier"), Some("key-1"));
    assert_eq!(first.get("statusCallback"), Some(STATUS_CALLBACK));
    assert_eq!(first.params.len(), 5, "{first:?}");
    assert_eq!(seen[1].get("src"), Some("Pigeon"));
    assert_eq!(seen[1].get("bulkIdentifier"), Some("key-2"));
}

#[tokio::test]
async fn refusals_are_permanent_and_a_busy_reach_transient() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({}));
    let m = outgoing(1, "+33611111111", "hi");

    fake.set_mode(Mode::Refuse(
        StatusCode::BAD_REQUEST,
        "dest is not a valid E.164 number",
    ));
    match reach.send(&m).await {
        Err(SendError::Permanent(e)) => {
            assert!(
                e.contains("400") && e.contains("dest is not a valid E.164 number"),
                "{e}"
            )
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    for status in [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::SERVICE_UNAVAILABLE,
    ] {
        fake.set_mode(Mode::Refuse(status, "try later"));
        match reach.send(&m).await {
            Err(SendError::Transient(e)) => assert!(e.contains("try later"), "{e}"),
            other => panic!("{status}: expected a transient error, got {other:?}"),
        }
    }
    fake.set_mode(Mode::Fail);
    match reach.send(&m).await {
        Err(SendError::Permanent(e)) => assert!(e.contains("unknown error at the carrier"), "{e}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert_eq!(fake.ops(), ["create"; 4]);

    let wrong_key = open(&phone, &url, json!({"api_key": "not-the-key"}));
    match wrong_key.send(&m).await {
        Err(SendError::Permanent(e)) => {
            assert!(e.contains("401") && !e.contains("not-the-key"), "{e}")
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_create_that_times_out_is_adopted_from_the_list_without_a_second_create() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({"timeout_ms": 300}));
    fake.set_mode(Mode::Slow(Duration::from_secs(2)));

    let sent = reach.send(&outgoing(7, "+33611111111", "hi")).await;
    assert_eq!(
        sent,
        Ok(Sent {
            provider_id: "MSG1".into()
        })
    );
    assert_eq!(fake.ops(), ["create", "list"]);
    let seen = fake.seen();
    assert_eq!(seen[1].get("bulkIdentifier"), Some("key-7"));
    assert!(seen.iter().all(|s| s.authorized), "{seen:?}");
}

#[tokio::test]
async fn a_timed_out_create_reach_never_took_is_transient_and_the_next_attempt_creates() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({"timeout_ms": 300}));
    fake.set_mode(Mode::Hang(Duration::from_secs(2)));
    let m = outgoing(7, "+33611111111", "hi");

    match reach.send(&m).await {
        Err(SendError::Transient(e)) => assert!(e.contains("300 ms"), "{e}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(fake.ops(), ["create", "list"]);

    fake.set_mode(Mode::Accept);
    let sent = reach.send(&attempt(2, m)).await;
    assert_eq!(
        sent,
        Ok(Sent {
            provider_id: "MSG1".into()
        })
    );
    assert_eq!(fake.ops(), ["create", "list", "list", "create"]);
}

#[tokio::test]
async fn a_later_attempt_adopts_what_an_earlier_one_created() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({}));
    let first = reach.send(&outgoing(3, "+33611111111", "hi")).await;
    assert_eq!(
        first,
        Ok(Sent {
            provider_id: "MSG1".into()
        })
    );
    // Another message, so the list has to pick the right one.
    let other = reach.send(&outgoing(4, "+33622222222", "other")).await;
    assert_eq!(
        other,
        Ok(Sent {
            provider_id: "MSG2".into()
        })
    );

    let again = reach
        .send(&attempt(2, outgoing(3, "+33611111111", "hi")))
        .await;
    assert_eq!(
        again,
        Ok(Sent {
            provider_id: "MSG1".into()
        })
    );
    assert_eq!(fake.ops(), ["create", "create", "list"]);
}

#[tokio::test]
async fn status_callbacks_are_verified_by_their_reach_signature() {
    let (url, fake) = start_fake().await;
    let phone = Phone::new();
    let reach = open(&phone, &url, json!({}));
    let sent = reach
        .send(&outgoing(1, "+33611111111", "hi"))
        .await
        .expect("accepted");
    let adapter = find("reach").expect("reach adapter");
    let phone_data = data(json!({"api_user": API_USER, "api_key": API_KEY, "src": SRC}));
    let callback_url = fake.seen()[0]
        .get("statusCallback")
        .map(str::to_string)
        .expect("a statusCallback");
    let verify = |signed_url: &str, key: &str, header: Option<&str>| {
        let (form, signature) = fake.callback(signed_url, key, &sent.provider_id);
        let headers = vec![(header.unwrap_or("x-reach-signature").to_string(), signature)];
        verify_status_callback(adapter, &phone_data, &callback_url, &headers, &form)
    };

    assert_eq!(verify(&callback_url, API_KEY, None), Ok(()));
    // Reach may sign the URL with the scheme's port written out.
    let with_port = callback_url.replace("pigeon.test/", "pigeon.test:80/");
    assert_ne!(with_port, callback_url);
    assert_eq!(verify(&with_port, API_KEY, None), Ok(()));
    assert!(verify(&callback_url, "another-key", None).is_err());
    assert!(verify(&callback_url, API_KEY, Some("x-other-header")).is_err());
    let other_url = callback_url.replace("api_key=", "api_key=x");
    assert!(verify(&other_url, API_KEY, None).is_err());

    // A form changed after signing is refused; the signed one parses to the report.
    let (mut form, signature) = fake.callback(&callback_url, API_KEY, &sent.provider_id);
    let headers = vec![("x-reach-signature".to_string(), signature)];
    assert_eq!(
        parse_status_callback(adapter, &form),
        Some((sent.provider_id.clone(), Report::Delivered))
    );
    form[1].1 = "failed".into();
    assert!(verify_status_callback(adapter, &phone_data, &callback_url, &headers, &form).is_err());
    // The other adapters do not sign.
    let kannel = find("kannel").expect("kannel adapter");
    assert_eq!(
        verify_status_callback(kannel, &phone_data, &callback_url, &[], &form),
        Ok(())
    );
}
