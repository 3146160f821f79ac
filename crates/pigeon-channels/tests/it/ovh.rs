//! The OVH adapters against a fake OVH: an HTTP server with the SMS API's jobs, outgoing and
//! incoming resources and `/auth/time`, whose clock runs an hour ahead of ours. It checks every
//! request's signature (recomputed over the URL it was called at, the raw body and the
//! timestamp) and timestamp, as OVH does, and records every request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use pigeon_channels::{
    Channel, Inbound, Outgoing, Report, SendError, Sent, find, parse_status_callback,
    signs_status_callbacks, verify_status_callback,
};
use pigeon_core::signature;
use pigeon_core::time::Ts;
use serde_json::{Value, json};

use crate::helpers::{Phone, data, outgoing};

const APP_KEY: &str = "ovh-app-key";
const APP_SECRET: &str = "ovh-app-s3cret";
const CONSUMER_KEY: &str = "ovh-consumer-k3y";
const SERVICE: &str = "sms-ab12345-1";
const NUMBER: &str = "+33612345678";
/// OVH's clock is this far ahead of ours: a timestamp without the delta is refused.
const OFFSET_SECS: i64 = 3600;
/// The skew the fake tolerates.
const SKEW_SECS: i64 = 10;

/// How the fake answers a job create.
#[derive(Debug, Clone)]
enum Mode {
    /// Takes the job and answers its report.
    Accept,
    /// Takes the job, then answers only after this long.
    Slow(Duration),
    /// Takes nothing and answers only after this long.
    Hang(Duration),
    /// Takes nothing and answers this error.
    Refuse(StatusCode, &'static str),
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `METHOD /path?query`, below `/1.0`.
    op: String,
    /// The signature, timestamp and keys were right.
    signed: bool,
    body: String,
}

/// A job the fake took: pending until [`FakeOvh::send_all`], then an outgoing SMS.
#[derive(Debug, Clone)]
struct Job {
    id: i64,
    /// The path of the account (or number) it was created on.
    line: String,
    receiver: String,
    message: String,
    tag: Option<String>,
    sent: bool,
}

#[derive(Clone)]
struct FakeOvh {
    /// `http://127.0.0.1:PORT`: requests are signed over it.
    origin: String,
    offset: Arc<AtomicI64>,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    jobs: Arc<Mutex<Vec<Job>>>,
    incoming: Arc<Mutex<Vec<Value>>>,
    next_id: Arc<AtomicI64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn ovh_error(status: StatusCode, code: Option<&str>, message: &str) -> Response {
    let body = match code {
        Some(code) => {
            json!({"errorCode": code, "httpCode": status.to_string(), "message": message})
        }
        None => json!({"message": message}),
    };
    (
        status,
        [("X-Ovh-QueryId", "EU.ext-1.test")],
        body.to_string(),
    )
        .into_response()
}

fn json_answer(value: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

impl FakeOvh {
    fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    fn ops(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.op).collect()
    }

    fn jobs(&self) -> Vec<Job> {
        lock(&self.jobs).clone()
    }

    /// OVH sends every pending job: they leave `/jobs` for `/outgoing`.
    fn send_all(&self) {
        for job in lock(&self.jobs).iter_mut() {
            job.sent = true;
        }
    }

    fn add_incoming(&self, sender: &str, message: &str, at: &str) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&self.incoming).push(json!({
            "id": id, "creationDatetime": at, "credits": 0, "message": message,
            "sender": sender, "tag": "",
        }));
        id
    }

    fn incoming_ids(&self) -> Vec<i64> {
        lock(&self.incoming)
            .iter()
            .filter_map(|sms| sms["id"].as_i64())
            .collect()
    }

    /// Checks the request as OVH does: the refusal it deserves, if any.
    fn refusal(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Response> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if header("x-ovh-application") != Some(APP_KEY) {
            return Some(ovh_error(
                StatusCode::FORBIDDEN,
                Some("INVALID_KEY"),
                "Invalid application key",
            ));
        }
        let timestamp = header("x-ovh-timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0);
        let server_now = unix_now() + self.offset.load(Ordering::SeqCst);
        if (timestamp - server_now).abs() > SKEW_SECS {
            return Some(ovh_error(
                StatusCode::BAD_REQUEST,
                Some("QUERY_TIME_OUT"),
                "Query out of time",
            ));
        }
        let url = format!("{}{target}", self.origin);
        let signed = signature::ovh_valid(
            APP_SECRET,
            CONSUMER_KEY,
            method.as_str(),
            &url,
            body,
            timestamp,
            header("x-ovh-signature").unwrap_or_default(),
        );
        if header("x-ovh-consumer") != Some(CONSUMER_KEY) || !signed {
            return Some(ovh_error(
                StatusCode::FORBIDDEN,
                Some("INVALID_CREDENTIAL"),
                "This credential is not valid",
            ));
        }
        let json_body = header("content-type") == Some("application/json");
        if !body.is_empty() && !json_body {
            return Some(ovh_error(
                StatusCode::BAD_REQUEST,
                None,
                "Invalid JSON body",
            ));
        }
        None
    }

    async fn create(&self, line: &str, body: &[u8]) -> Response {
        let mode = lock(&self.mode).clone();
        let job: Value = serde_json::from_slice(body).unwrap_or_default();
        let message = job["message"].as_str().unwrap_or_default();
        let tag = job["tag"].as_str().map(str::to_string);
        let receivers: Vec<&str> = job["receivers"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let valid = |r: &&str| r.len() > 8 && r.starts_with('+');
        let (valid, invalid): (Vec<&str>, Vec<&str>) = receivers.into_iter().partition(valid);
        match mode {
            Mode::Hang(delay) => {
                tokio::time::sleep(delay).await;
                return ovh_error(StatusCode::GATEWAY_TIMEOUT, None, "too late");
            }
            Mode::Refuse(status, message) => return ovh_error(status, None, message),
            Mode::Accept | Mode::Slow(_) => {}
        }
        let ids: Vec<i64> = valid
            .iter()
            .map(|receiver| {
                let id = self.next_id.fetch_add(1, Ordering::SeqCst);
                lock(&self.jobs).push(Job {
                    id,
                    line: line.to_string(),
                    receiver: receiver.to_string(),
                    message: message.to_string(),
                    tag: tag.clone(),
                    sent: false,
                });
                id
            })
            .collect();
        if let Mode::Slow(delay) = mode {
            tokio::time::sleep(delay).await;
        }
        json_answer(json!({
            "totalCreditsRemoved": ids.len(), "invalidReceivers": invalid, "ids": ids,
            "validReceivers": valid,
        }))
    }

    /// The jobs of `line`, pending (`sent` false) or sent, with `tag` when given.
    fn job_ids(&self, line: &str, sent: bool, tag: Option<&str>) -> Response {
        let ids: Vec<i64> = self
            .jobs()
            .into_iter()
            .filter(|j| j.line == line && j.sent == sent)
            .filter(|j| tag.is_none() || j.tag.as_deref() == tag)
            .map(|j| j.id)
            .collect();
        json_answer(json!(ids))
    }

    fn job(&self, line: &str, sent: bool, id: &str) -> Response {
        let id = id.parse::<i64>().ok();
        let job = self
            .jobs()
            .into_iter()
            .find(|j| j.line == line && j.sent == sent && Some(j.id) == id);
        let Some(job) = job else {
            return ovh_error(StatusCode::NOT_FOUND, None, "This job does not exist");
        };
        let mut record = json!({
            "id": job.id, "receiver": job.receiver, "message": format!("{}\nSTOP 36180", job.message),
            "sender": "36180", "credits": 1, "ptt": 0,
        });
        if sent {
            record["tag"] = json!(job.tag);
        }
        json_answer(record)
    }

    fn incoming(&self, method: &Method, id: Option<&str>) -> Response {
        let mut incoming = lock(&self.incoming);
        let Some(id) = id else {
            return json_answer(json!(self.ids_of(&incoming)));
        };
        let id = id.parse::<i64>().ok();
        let Some(index) = incoming.iter().position(|sms| sms["id"].as_i64() == id) else {
            return ovh_error(StatusCode::NOT_FOUND, None, "This SMS does not exist");
        };
        if *method == Method::DELETE {
            incoming.remove(index);
            return json_answer(Value::Null);
        }
        json_answer(incoming[index].clone())
    }

    fn ids_of(&self, incoming: &[Value]) -> Vec<i64> {
        incoming
            .iter()
            .filter_map(|sms| sms["id"].as_i64())
            .collect()
    }
}

/// `/sms/{service}[/virtualNumbers/{number}]` and what follows.
fn split_line(path: &str) -> Option<(String, Vec<&str>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["sms", service, "virtualNumbers", number, rest @ ..] => Some((
            format!("/sms/{service}/virtualNumbers/{number}"),
            rest.to_vec(),
        )),
        ["sms", service, rest @ ..] => Some((format!("/sms/{service}"), rest.to_vec())),
        _ => None,
    }
}

async fn handle(
    State(fake): State<FakeOvh>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let op = format!("{method} {}", target.trim_start_matches("/1.0"));
    if uri.path() == "/1.0/auth/time" {
        let signed = headers.get("x-ovh-application").is_some();
        let body = String::new();
        lock(&fake.seen).push(Seen { op, signed, body });
        let now = unix_now() + fake.offset.load(Ordering::SeqCst);
        return json_answer(json!(now));
    }
    let refusal = fake.refusal(&method, &target, &headers, &body);
    let text = String::from_utf8_lossy(&body).into_owned();
    lock(&fake.seen).push(Seen {
        op,
        signed: refusal.is_none(),
        body: text,
    });
    if let Some(refusal) = refusal {
        return refusal;
    }
    let path = uri.path().trim_start_matches("/1.0");
    let Some((line, rest)) = split_line(path).filter(|(line, _)| line.contains(SERVICE)) else {
        return ovh_error(StatusCode::NOT_FOUND, None, "This service does not exist");
    };
    let tag = query
        .iter()
        .find(|(k, _)| k == "tag")
        .map(|(_, v)| v.as_str());
    match (&method, rest.as_slice()) {
        (&Method::POST, ["jobs"]) => fake.create(&line, &body).await,
        (&Method::GET, ["jobs"]) => fake.job_ids(&line, false, None),
        (&Method::GET, ["jobs", id]) => fake.job(&line, false, id),
        (&Method::GET, ["outgoing"]) => fake.job_ids(&line, true, tag),
        (&Method::GET, ["outgoing", id]) => fake.job(&line, true, id),
        (_, ["incoming"]) => fake.incoming(&method, None),
        (_, ["incoming", id]) => fake.incoming(&method, Some(id)),
        _ => ovh_error(StatusCode::NOT_FOUND, None, "Got an invalid (or empty) URL"),
    }
}

async fn start_fake() -> (String, FakeOvh) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("local addr"));
    let fake = FakeOvh {
        origin: origin.clone(),
        offset: Arc::new(AtomicI64::new(OFFSET_SECS)),
        mode: Arc::new(Mutex::new(Mode::Accept)),
        seen: Arc::default(),
        jobs: Arc::default(),
        incoming: Arc::default(),
        next_id: Arc::new(AtomicI64::new(26_929_925)),
    };
    let app = Router::new().fallback(handle).with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{origin}/1.0"), fake)
}

fn credentials(endpoint: &str) -> serde_json::Map<String, Value> {
    data(json!({
        "service_name": SERVICE, "app_key": APP_KEY, "app_secret": APP_SECRET,
        "consumer_key": CONSUMER_KEY, "endpoint": endpoint,
    }))
}

fn open_shortcode(phone: &Phone, endpoint: &str, extra: Value) -> Channel {
    let mut fields = credentials(endpoint);
    fields.extend(data(extra));
    Channel::open("adapters\\OvhSmsShortcodeAdapter", &fields, phone.ctx()).expect("valid data")
}

fn open_virtual_number(phone: &Phone, endpoint: &str, extra: Value) -> Channel {
    let mut fields = credentials(endpoint);
    fields.insert("number".into(), json!(NUMBER));
    fields.extend(data(extra));
    Channel::open("ovh_virtual_number", &fields, phone.ctx()).expect("valid data")
}

fn attempt(n: u32, m: Outgoing) -> Outgoing {
    Outgoing { attempt: n, ..m }
}

fn sent(id: i64) -> Result<Sent, SendError> {
    Ok(Sent {
        provider_id: id.to_string(),
    })
}

const JOBS: &str = "/sms/sms-ab12345-1/jobs";
const FIRST: i64 = 26_929_925;

#[tokio::test]
async fn a_virtual_number_sends_signed_jobs_in_ovh_time() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_virtual_number(&phone, &endpoint, json!({}));
    assert_eq!(ovh.adapter().name, "ovh_virtual_number");

    let first = ovh
        .send(&outgoing(1, "+33611111111", "Bonjour à vous"))
        .await;
    assert_eq!(first, sent(FIRST));
    let second = ovh.send(&outgoing(2, "+33622222222", "hi")).await;
    assert_eq!(second, sent(FIRST + 1));

    let jobs = "POST /sms/sms-ab12345-1/virtualNumbers/0033612345678/jobs";
    // The clock is learnt once; a timestamp without it would have been refused.
    assert_eq!(fake.ops(), ["GET /auth/time", jobs, jobs].map(String::from));
    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.signed), "{seen:?}");
    assert_eq!(
        seen[1].body,
        r#"{"message":"Bonjour à vous","receivers":["+33611111111"],"tag":"key-1"}"#
    );
}

#[tokio::test]
async fn the_short_code_sends_from_ovh_s_short_code_or_a_named_sender() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let short = open_shortcode(&phone, &endpoint, json!({}));
    let named = open_shortcode(
        &phone,
        &endpoint,
        json!({"sender": "Pigeon", "no_stop_clause": "1"}),
    );
    assert_eq!(short.adapter().name, "ovh_shortcode");

    assert_eq!(
        short.send(&outgoing(1, "+33611111111", "a")).await,
        sent(FIRST)
    );
    assert_eq!(
        named.send(&outgoing(2, "+33611111111", "b")).await,
        sent(FIRST + 1)
    );
    let mut asked = outgoing(3, "+33611111111", "c");
    asked.sender = Some("Client".into());
    assert_eq!(named.send(&asked).await, sent(FIRST + 2));

    let seen = fake.seen();
    assert!(seen.iter().all(|s| s.signed), "{seen:?}");
    let bodies: Vec<&str> = seen
        .iter()
        .filter(|s| s.op == format!("POST {JOBS}"))
        .map(|s| s.body.as_str())
        .collect();
    assert_eq!(
        bodies,
        [
            r#"{"message":"a","receivers":["+33611111111"],"senderForResponse":true,"noStopClause":false,"tag":"key-1"}"#,
            r#"{"message":"b","receivers":["+33611111111"],"sender":"Pigeon","senderForResponse":false,"noStopClause":true,"tag":"key-2"}"#,
            r#"{"message":"c","receivers":["+33611111111"],"sender":"Client","senderForResponse":false,"noStopClause":true,"tag":"key-3"}"#,
        ]
    );
}

#[tokio::test]
async fn refusals_are_permanent_and_an_unavailable_ovh_transient() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({}));

    match ovh.send(&outgoing(1, "+1", "hi")).await {
        Err(SendError::Permanent(e)) => assert!(e.contains("invalid: +1"), "{e}"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    let m = outgoing(2, "+33611111111", "hi");
    for status in [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        fake.set_mode(Mode::Refuse(status, "try later"));
        match ovh.send(&m).await {
            Err(SendError::Transient(e)) => assert!(e.contains("try later"), "{e}"),
            other => panic!("{status}: expected a transient error, got {other:?}"),
        }
    }
    fake.set_mode(Mode::Refuse(StatusCode::BAD_REQUEST, "Invalid message"));
    match ovh.send(&m).await {
        Err(SendError::Permanent(e)) => assert!(e.contains("400") && e.contains("Invalid message")),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert!(fake.seen().iter().all(|s| s.signed));

    fake.set_mode(Mode::Accept);
    let wrong = open_shortcode(&phone, &endpoint, json!({"app_secret": "not-the-secret"}));
    match wrong.send(&m).await {
        Err(SendError::Permanent(e)) => {
            assert!(e.contains("403") && e.contains("INVALID_CREDENTIAL"), "{e}");
            assert!(!e.contains("not-the-secret"), "{e}");
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert!(fake.jobs().is_empty(), "{:?}", fake.jobs());
}

#[tokio::test]
async fn a_job_that_times_out_is_adopted_without_a_second_job() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({"timeout_ms": 300}));
    fake.set_mode(Mode::Slow(Duration::from_secs(2)));

    let result = ovh.send(&outgoing(7, "+33611111111", "hi")).await;
    assert_eq!(result, sent(FIRST));
    let expected = [
        "GET /auth/time".to_string(),
        format!("POST {JOBS}"),
        format!("GET {JOBS}"),
        format!("GET {JOBS}/{FIRST}"),
    ];
    assert_eq!(fake.ops(), expected);
    assert_eq!(fake.jobs().len(), 1);
    assert!(fake.seen().iter().all(|s| s.signed));
}

#[tokio::test]
async fn a_timed_out_job_ovh_never_took_is_transient_and_the_next_attempt_sends() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({"timeout_ms": 300}));
    fake.set_mode(Mode::Hang(Duration::from_secs(2)));
    let m = outgoing(7, "+33611111111", "hi");

    match ovh.send(&m).await {
        Err(SendError::Transient(e)) => assert!(e.contains("300 ms"), "{e}"),
        other => panic!("expected a transient error, got {other:?}"),
    }
    let (post, list) = (format!("POST {JOBS}"), format!("GET {JOBS}"));
    let outgoing = "GET /sms/sms-ab12345-1/outgoing?tag=key-7".to_string();
    assert_eq!(
        fake.ops()[1..],
        [post.clone(), list.clone(), outgoing.clone()]
    );

    fake.set_mode(Mode::Accept);
    assert_eq!(ovh.send(&attempt(2, m)).await, sent(FIRST));
    assert_eq!(fake.ops()[4..], [list, outgoing, post]);
    assert_eq!(fake.jobs().len(), 1);
}

#[tokio::test]
async fn a_later_attempt_adopts_what_an_earlier_one_sent() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({}));
    let m = outgoing(3, "+33611111111", "hi");
    assert_eq!(ovh.send(&m).await, sent(FIRST));
    // Same text and receiver, another message.
    assert_eq!(
        ovh.send(&outgoing(4, "+33611111111", "hi")).await,
        sent(FIRST + 1)
    );

    // Both pending: jobs have no tag, the older one is taken.
    assert_eq!(ovh.send(&attempt(2, m.clone())).await, sent(FIRST));
    assert_eq!(
        fake.ops()[3..],
        [format!("GET {JOBS}"), format!("GET {JOBS}/{FIRST}")]
    );

    // Both sent: found by tag.
    fake.send_all();
    assert_eq!(ovh.send(&attempt(3, m)).await, sent(FIRST));
    let ops = fake.ops();
    assert_eq!(
        ops[5..],
        [
            format!("GET {JOBS}"),
            "GET /sms/sms-ab12345-1/outgoing?tag=key-3".into(),
            format!("GET /sms/sms-ab12345-1/outgoing/{FIRST}"),
        ]
    );
    assert_eq!(fake.jobs().len(), 2);
}

#[tokio::test]
async fn a_clock_that_moved_is_learnt_again_once() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({}));
    assert_eq!(
        ovh.send(&outgoing(1, "+33611111111", "a")).await,
        sent(FIRST)
    );

    fake.offset.store(2 * OFFSET_SECS, Ordering::SeqCst);
    assert_eq!(
        ovh.send(&outgoing(2, "+33611111111", "b")).await,
        sent(FIRST + 1)
    );
    let post = format!("POST {JOBS}");
    let time = "GET /auth/time".to_string();
    assert_eq!(
        fake.ops(),
        [&time, &post, &post, &time, &post].map(String::clone)
    );
    let signed: Vec<bool> = fake.seen().iter().map(|s| s.signed).collect();
    assert_eq!(signed, [true, true, false, true, true]);
    assert_eq!(fake.jobs().len(), 2);
}

fn inbound(origin: &str, text: &str, at: Ts) -> Inbound {
    Inbound {
        origin: origin.into(),
        text: text.into(),
        at,
    }
}

#[tokio::test]
async fn read_hands_over_each_incoming_sms_once_and_keeps_them_at_ovh() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_shortcode(&phone, &endpoint, json!({}));
    assert_eq!(ovh.read().await, Ok(Vec::new()));

    fake.add_incoming("+33611111111", "Oui", "2024-01-15T10:20:30+01:00");
    fake.add_incoming("+33622222222", "Non merci", "2024-01-15T11:00:00+01:00");
    let read = ovh.read().await.expect("read");
    assert_eq!(
        read,
        [
            inbound("+33611111111", "Oui", Ts(1_705_310_430_000)),
            inbound("+33622222222", "Non merci", Ts(1_705_312_800_000)),
        ]
    );
    assert_eq!(ovh.read().await, Ok(Vec::new()));
    let third = fake.add_incoming("+33633333333", "STOP", "2024-01-15T12:00:00+01:00");
    let read = ovh.read().await.expect("read");
    assert_eq!(
        read.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
        ["STOP"]
    );

    // A new channel on the same phone (Pigeon reopens it when the phone changes) remembers.
    let reopened = open_shortcode(&phone, &endpoint, json!({}));
    assert_eq!(reopened.read().await, Ok(Vec::new()));
    assert_eq!(fake.incoming_ids(), [third - 2, third - 1, third]);
    let ops = fake.ops();
    assert!(!ops.iter().any(|op| op.starts_with("DELETE")), "{ops:?}");
    assert!(ops.contains(&format!("GET /sms/sms-ab12345-1/incoming/{third}")));
    assert!(fake.seen().iter().all(|s| s.signed));
}

#[tokio::test]
async fn read_deletes_at_ovh_only_when_asked() {
    let (endpoint, fake) = start_fake().await;
    let phone = Phone::new();
    let ovh = open_virtual_number(&phone, &endpoint, json!({"delete_incoming": "1"}));
    let first = fake.add_incoming("+33611111111", "Oui", "2024-01-15T10:20:30+01:00");
    // Unusable (no sender): skipped, and left at OVH since it was never handed over.
    let broken = fake.add_incoming(" ", "?", "2024-01-15T10:20:31+01:00");
    let second = fake.add_incoming("+33622222222", "Non", "2024-01-15T10:20:32+01:00");

    let read = ovh.read().await.expect("read");
    let texts: Vec<&str> = read.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(texts, ["Oui", "Non"]);
    assert_eq!(fake.incoming_ids(), [broken]);
    let line = "/sms/sms-ab12345-1/virtualNumbers/0033612345678/incoming";
    let ops = fake.ops();
    assert_eq!(
        ops[1..],
        [
            format!("GET {line}"),
            format!("GET {line}/{first}"),
            format!("GET {line}/{broken}"),
            format!("GET {line}/{second}"),
            format!("DELETE {line}/{first}"),
            format!("DELETE {line}/{second}"),
        ]
    );
    assert_eq!(ovh.read().await, Ok(Vec::new()));
    assert!(fake.seen().iter().all(|s| s.signed));
}

#[test]
fn delivery_reports_are_read_from_id_and_dlr() {
    let params = |dlr: &str| {
        vec![
            ("id".to_string(), "26929925".to_string()),
            ("dlr".to_string(), dlr.to_string()),
        ]
    };
    for name in [
        "ovh_shortcode",
        "adapters\\OvhSmsVirtualNumberAdapter",
        "ovh_sms_shortcode_adapter",
    ] {
        let adapter = find(name).expect("an OVH adapter");
        assert!(!signs_status_callbacks(adapter));
        assert_eq!(
            verify_status_callback(
                adapter,
                &credentials("http://x"),
                "http://pigeon.test/",
                &[],
                &[]
            ),
            Ok(())
        );
        let report = |dlr: &str| parse_status_callback(adapter, &params(dlr)).map(|(_, r)| r);
        assert_eq!(report("1"), Some(Report::Delivered));
        assert_eq!(report("2"), Some(Report::Undelivered));
        assert_eq!(report("16"), Some(Report::Failed));
        assert_eq!(report("4"), Some(Report::Pending));
        assert_eq!(report("8"), Some(Report::Pending));
        assert_eq!(
            parse_status_callback(adapter, &params("1")),
            Some(("26929925".to_string(), Report::Delivered))
        );
    }
}
