//! The `ovh_shortcode` channel end to end, with the workers running: a phone sending through a
//! fake OVH that checks every signature, OVH's delivery report on Pigeon's status URL, and a
//! reply polled from OVH's incoming SMS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use pigeon_core::signature;
use serde_json::{Value, json};

use crate::helpers::{TestApp, answer, poll, spawn_sending};

const WAIT: Duration = Duration::from_secs(5);
const NUMBER: &str = "+33612345678";
const SERVICE: &str = "sms-ab12345-1";
const APP_KEY: &str = "ovh-app-key";
const APP_SECRET: &str = "ovh-app-s3cret";
const CONSUMER_KEY: &str = "ovh-consumer-k3y";
/// OVH's clock runs this far ahead: only timestamps with the learnt delta pass.
const OFFSET_SECS: i64 = 3600;
const JOB_ID: i64 = 26_929_925;

/// What the fake OVH holds: the job bodies it took, and the incoming SMS it serves.
#[derive(Clone, Default)]
struct FakeOvh {
    origin: String,
    jobs: Arc<Mutex<Vec<Value>>>,
    incoming: Arc<Mutex<Vec<Value>>>,
    /// Requests whose signature or timestamp was wrong.
    refused: Arc<Mutex<Vec<String>>>,
}

fn server_now() -> i64 {
    let local = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    local + OFFSET_SECS
}

fn ovh_json(status: StatusCode, value: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

impl FakeOvh {
    /// Whether the request carries OVH's headers, a timestamp in OVH's clock and the signature
    /// of the URL it was called at, its body and that timestamp.
    fn signed(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let timestamp = header("x-ovh-timestamp").and_then(|t| t.parse::<i64>().ok());
        let Some(timestamp) = timestamp.filter(|t| (t - server_now()).abs() <= 10) else {
            return false;
        };
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        header("x-ovh-application") == Some(APP_KEY)
            && header("x-ovh-consumer") == Some(CONSUMER_KEY)
            && signature::ovh_valid(
                APP_SECRET,
                CONSUMER_KEY,
                method.as_str(),
                &format!("{}{target}", self.origin),
                body,
                timestamp,
                header("x-ovh-signature").unwrap_or_default(),
            )
    }

    fn take_job(&self, body: &[u8]) -> Response {
        let job: Value = serde_json::from_slice(body).unwrap_or_default();
        let receivers = job["receivers"].clone();
        self.jobs.lock().expect("lock").push(job);
        let report = json!({
            "totalCreditsRemoved": 1, "invalidReceivers": [], "ids": [JOB_ID],
            "validReceivers": receivers,
        });
        ovh_json(StatusCode::OK, report)
    }

    fn incoming(&self, id: Option<&str>) -> Response {
        let incoming = self.incoming.lock().expect("lock");
        let Some(id) = id else {
            let ids: Vec<Value> = incoming.iter().map(|sms| sms["id"].clone()).collect();
            return ovh_json(StatusCode::OK, json!(ids));
        };
        let id = id.parse::<i64>().ok();
        match incoming.iter().find(|sms| sms["id"].as_i64() == id) {
            Some(sms) => ovh_json(StatusCode::OK, sms.clone()),
            None => ovh_json(StatusCode::NOT_FOUND, json!({"message": "no such SMS"})),
        }
    }
}

async fn handle(
    State(fake): State<FakeOvh>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/1.0/auth/time" {
        return ovh_json(StatusCode::OK, json!(server_now()));
    }
    if !fake.signed(&method, &uri, &headers, &body) {
        fake.refused.lock().expect("lock").push(uri.to_string());
        let error =
            json!({"errorCode": "INVALID_CREDENTIAL", "message": "This credential is not valid"});
        return ovh_json(StatusCode::FORBIDDEN, error);
    }
    let account = format!("/1.0/sms/{SERVICE}/");
    let rest = uri.path().strip_prefix(&account).unwrap_or_default();
    match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::POST, ["jobs"]) => fake.take_job(&body),
        (Method::GET, ["incoming"]) => fake.incoming(None),
        (Method::GET, ["incoming", id]) => fake.incoming(Some(id)),
        _ => ovh_json(StatusCode::NOT_FOUND, json!({"message": "not found"})),
    }
}

/// A fake OVH on 127.0.0.1 and its endpoint (`…/1.0`).
async fn fake_ovh() -> (String, FakeOvh) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let fake = FakeOvh {
        origin: origin.clone(),
        ..FakeOvh::default()
    };
    let router = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("{origin}/1.0"), fake)
}

/// The `sended` row of campaign `scheduled`, once there is one.
async fn sended_row(t: &TestApp, scheduled: i64) -> Option<Value> {
    t.sended()
        .await
        .into_iter()
        .find(|r| r["originating_scheduled"] == scheduled)
}

#[tokio::test]
async fn ovh_sends_signed_jobs_takes_its_reports_and_polls_its_replies() {
    let t = spawn_sending().await;
    let (endpoint, fake) = fake_ovh().await;
    let phone = t
        .create(
            "/api/phone/",
            &[
                ("name", "ovh"),
                ("adapter", "ovh_shortcode"),
                ("adapter_data[service_name]", SERVICE),
                ("adapter_data[app_key]", APP_KEY),
                ("adapter_data[app_secret]", APP_SECRET),
                ("adapter_data[consumer_key]", CONSUMER_KEY),
                ("adapter_data[endpoint]", &endpoint),
                ("adapter_data[no_stop_clause]", "1"),
            ],
        )
        .await;
    let scheduled = t
        .create(
            "/api/scheduled/",
            &[("text", "Bonjour OVH"), ("numbers", NUMBER)],
        )
        .await;
    let Some(row) = poll(WAIT, || sended_row(&t, scheduled)).await else {
        panic!("not sent: {:?}", t.sql("SELECT * FROM messages").await);
    };
    assert_eq!(row["adapter"], "ovh_shortcode");
    assert_eq!(row["status"], "unknown");
    assert_eq!(row["uid"], JOB_ID.to_string());
    let jobs = fake.jobs.lock().expect("lock").clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["message"], "Bonjour OVH");
    assert_eq!(jobs[0]["receivers"], json!([NUMBER]));
    assert_eq!(jobs[0]["senderForResponse"], true);
    assert_eq!(jobs[0]["noStopClause"], true);
    assert!(
        jobs[0]["tag"]
            .as_str()
            .is_some_and(|tag| tag.starts_with("pigeon-"))
    );

    // The callback URL the owner pastes into the OVH manager; OVH adds `id` and `dlr`.
    let report = format!(
        "{}/callback/status/ovh_shortcode/{phone}?api_key={}&id={JOB_ID}&dlr=1",
        t.base, t.key
    );
    assert_eq!(answer(t.client.get(&report)).await.status, 200);
    let delivered = poll(WAIT, || async {
        sended_row(&t, scheduled)
            .await
            .filter(|r| r["status"] == "delivered")
    })
    .await;
    assert!(delivered.is_some(), "{:?}", sended_row(&t, scheduled).await);

    fake.incoming.lock().expect("lock").push(json!({
        "id": 9001, "creationDatetime": "2024-01-15T10:20:30+01:00", "credits": 0,
        "message": "Merci !", "sender": NUMBER, "tag": "",
    }));
    let received = poll(WAIT, || async {
        t.received()
            .await
            .into_iter()
            .find(|r| r["text"] == "Merci !")
    })
    .await;
    let Some(received) = received else {
        panic!("the reply was not received: {:?}", t.received().await);
    };
    assert_eq!(received["origin"], NUMBER);
    assert_eq!(received["id_phone"], phone);
    // Read once, though OVH keeps listing it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(t.received().await.len(), 1);
    assert_eq!(*fake.refused.lock().expect("lock"), Vec::<String>::new());
}
