//! A webhook receiver for the tests: it records every request, can change its answer mid-test,
//! and checks both signatures of what Pigeon sends (RaspiSMS's and Standard Webhooks'), written
//! here from the specifications alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::poll;

type HmacSha256 = Hmac<Sha256>;

/// How long the receiver waits for the requests a test expects.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// The five form fields of every RaspiSMS webhook, sorted.
const FORM_FIELDS: [&str; 5] = [
    "body",
    "webhook_random_id",
    "webhook_signature",
    "webhook_timestamp",
    "webhook_type",
];

// ---------------------------------------------------------------------------------------------
// The receiver.

/// What the receiver answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
    /// Waits this long before answering (a hanging endpoint).
    pub(crate) delay: Duration,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: format!("answered {status}"),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn body(mut self, body: String) -> Reply {
        self.body = body;
        self
    }

    pub(crate) fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    /// When it arrived.
    pub(crate) at: Instant,
    /// Wall clock at arrival, Unix seconds.
    pub(crate) unix: i64,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The status it was answered with (or was going to be, if the client gave up).
    pub(crate) answered: u16,
}

impl Hit {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn webhook_id(&self) -> String {
        self.header("webhook-id").unwrap_or_default().to_string()
    }
}

#[derive(Debug, Default)]
pub(crate) struct ReceiverState {
    pub(crate) hits: Mutex<Vec<Hit>>,
    /// Answers used first, one per request, in order.
    pub(crate) script: Mutex<VecDeque<Reply>>,
    /// The answer once the script is used up; the test switches it mid-test.
    pub(crate) default: Mutex<Option<Reply>>,
    /// Requests answered (after their delay).
    pub(crate) answered: AtomicUsize,
}

/// An axum server on 127.0.0.1:0 that records every request (headers and raw body) and answers
/// what the test tells it to.
#[derive(Debug, Clone)]
pub(crate) struct Receiver {
    pub(crate) base: String,
    pub(crate) state: Arc<ReceiverState>,
}

impl Receiver {
    pub(crate) async fn start(status: u16) -> Receiver {
        Receiver::start_on("127.0.0.1:0", status).await
    }

    pub(crate) async fn start_on(addr: &str, status: u16) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        *state.default.lock().expect("lock") = Some(Reply::status(status));
        let router = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            base: format!("http://{addr}"),
            state,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// The answer from now on (once the script is used up).
    pub(crate) fn answer(&self, reply: Reply) {
        *self.state.default.lock().expect("lock") = Some(reply);
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.answer(Reply::status(status));
    }

    /// Answers used first, in order, one per request.
    pub(crate) fn script(&self, replies: Vec<Reply>) {
        self.state.script.lock().expect("lock").extend(replies);
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().expect("lock").clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.state.hits.lock().expect("lock").len()
    }

    pub(crate) fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived; all of them.
    pub(crate) async fn wait_hits(&self, n: usize) -> Vec<Hit> {
        let found = poll(WAIT, || async {
            let hits = self.hits();
            (hits.len() >= n).then_some(hits)
        })
        .await;
        found.unwrap_or_else(|| {
            panic!(
                "{} requests, expected {n}: {:?}",
                self.count(),
                paths(&self.hits())
            )
        })
    }
}

pub(crate) fn paths(hits: &[Hit]) -> Vec<(String, u16, String)> {
    hits.iter()
        .map(|h| (h.path.clone(), h.answered, h.webhook_id()))
        .collect()
}

pub(crate) async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = match state.script.lock().expect("lock").pop_front() {
        Some(reply) => reply,
        None => state
            .default
            .lock()
            .expect("lock")
            .clone()
            .unwrap_or_else(|| Reply::status(200)),
    };
    state.hits.lock().expect("lock").push(Hit {
        at: Instant::now(),
        unix: jiff::Timestamp::now().as_second(),
        method,
        path: uri.path().to_string(),
        headers,
        body,
        answered: reply.status,
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    state.answered.fetch_add(1, Ordering::SeqCst);
    let status = StatusCode::from_u16(reply.status).expect("status");
    let mut response = (status, reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Both signatures, checked as a receiver would.

/// A webhook that passed every check.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) kind: String,
    pub(crate) random_id: String,
    pub(crate) body: Value,
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac
}

/// RaspiSMS's `webhook_signature`, from the seed: "une signature HMAC SHA-256 du
/// webhook_random_id, signé avec votre clé API" (`hash_hmac`, lowercase hex).
pub(crate) fn raspisms_signature(random_id: &str, api_key: &str) -> String {
    hmac_sha256(api_key.as_bytes(), random_id.as_bytes())
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a `webhook-signature` header carries a `v1` entry that matches (Standard Webhooks:
/// any of the space-separated entries may; compared in constant time).
pub(crate) fn standard_signature_ok(
    header: &str,
    secret: &str,
    id: &str,
    ts: &str,
    body: &[u8],
) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("the secret is base64");
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(body);
    header.split_whitespace().any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|sig| hmac_sha256(&key, &signed).verify_slice(&sig).is_ok())
    })
}

/// Checks one request against both contracts and returns what it carried.
pub(crate) fn verify(hit: &Hit, api_key: &str, secret: &str) -> Verified {
    let at = format!("{} {}", hit.path, hit.webhook_id());
    assert_eq!(hit.method, Method::POST, "{at}");
    assert!(
        hit.header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
        "{at}: content-type {:?}",
        hit.header("content-type")
    );
    let form: Vec<(String, String)> = form_urlencoded::parse(&hit.body).into_owned().collect();
    let mut names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names, FORM_FIELDS,
        "{at}: exactly the five fields, once each"
    );
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };

    // RaspiSMS: `<unix>-<32 hex>`, its timestamp, its signature.
    let random_id = field("webhook_random_id");
    let (unix, random) = random_id
        .split_once('-')
        .unwrap_or_else(|| panic!("{at}: webhook_random_id {random_id:?}"));
    let unix: i64 = unix
        .parse()
        .unwrap_or_else(|_| panic!("{at}: webhook_random_id {random_id:?}"));
    assert!(
        random.len() == 32
            && random
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{at}: webhook_random_id {random_id:?} is not <unix>-<32 hex>"
    );
    let timestamp: i64 = field("webhook_timestamp")
        .parse()
        .unwrap_or_else(|_| panic!("{at}: webhook_timestamp {:?}", field("webhook_timestamp")));
    assert!(
        (timestamp - unix).abs() <= 1,
        "{at}: timestamp {timestamp}, id {random_id}"
    );
    assert!(
        timestamp <= hit.unix + 1 && timestamp > hit.unix - 120,
        "{at}: webhook_timestamp {timestamp} received at {}",
        hit.unix
    );
    assert_eq!(
        field("webhook_signature"),
        raspisms_signature(&random_id, api_key),
        "{at}: RaspiSMS signature (HMAC-SHA256 of the random id keyed with the API key)"
    );

    // Standard Webhooks: the id is RaspiSMS's random id, the timestamp this attempt's.
    assert_eq!(
        hit.header("webhook-id"),
        Some(random_id.as_str()),
        "{at}: webhook-id"
    );
    let ts = hit.header("webhook-timestamp").unwrap_or_default();
    let ts_value: i64 = ts
        .parse()
        .unwrap_or_else(|_| panic!("{at}: webhook-timestamp {ts:?}"));
    assert!(
        (ts_value - hit.unix).abs() <= 300,
        "{at}: webhook-timestamp {ts_value} is not this attempt's time {}",
        hit.unix
    );
    let signature = hit.header("webhook-signature").unwrap_or_default();
    assert!(
        standard_signature_ok(signature, secret, &random_id, ts, &hit.body),
        "{at}: Standard Webhooks signature {signature:?} does not verify"
    );

    let kind = field("webhook_type");
    let body = serde_json::from_str(&field("body"))
        .unwrap_or_else(|e| panic!("{at}: body is not JSON ({e}): {:?}", field("body")));
    Verified {
        kind,
        random_id,
        body,
    }
}

/// Verifies every request a receiver got; what they carried.
pub(crate) fn verify_all(rx: &Receiver, api_key: &str, secret: &str) -> Vec<Verified> {
    rx.hits()
        .iter()
        .map(|h| verify(h, api_key, secret))
        .collect()
}

pub(crate) fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// The fields of RaspiSMS's `send_sms` webhook body.
pub(crate) const SEND_SMS_KEYS: &[&str] = &[
    "id",
    "at",
    "status",
    "text",
    "destination",
    "origin",
    "mms",
    "medias",
    "originating_scheduled",
    "tag",
];

pub(crate) fn sorted(fields: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

/// Unix seconds of a `Y-m-d H:i:s` date in UTC (the account's default zone).
pub(crate) fn utc(text: &str) -> i64 {
    jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", text)
        .unwrap_or_else(|e| panic!("{text:?} is not Y-m-d H:i:s: {e}"))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("zoned")
        .timestamp()
        .as_second()
}

pub(crate) fn assert_recent(text: &Value) {
    let at = utc(text
        .as_str()
        .unwrap_or_else(|| panic!("not a date: {text}")));
    let now = jiff::Timestamp::now().as_second();
    assert!((now - at).abs() <= 30, "{text} is not now ({now})");
}

pub(crate) fn format_utc(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .expect("ts")
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The receiver's own checks against published vectors.

#[test]
pub(crate) fn the_receivers_checks_match_published_vectors() {
    // RFC 4231 test case 2.
    assert_eq!(
        raspisms_signature("what do ya want for nothing?", "Jefe"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // The Standard Webhooks reference libraries' example.
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let header = "v0,abc v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    assert!(standard_signature_ok(
        header,
        secret,
        id,
        "1649367553",
        body
    ));
    assert!(!standard_signature_ok(
        header,
        secret,
        id,
        "1649367554",
        body
    ));
}
