//! Compatibility with the official OVH Python client, `ovh` 1.2.0 from PyPI: the script
//! `tests/compat/ovh_client.py` drives Pigeon's OVH SMS API (`/1.0/...`) through the unmodified
//! client (only an endpoint added to its map) and checks its answers; this side makes the
//! credentials, injects an inbound SMS and a STOP before the run, records the account's
//! `callBack` requests, and reports the sent job delivered when its `dlr=8` arrives, so the
//! script sees `deliveryReceipt` 1 and the receiver `dlr=1`.
//!
//! Needs `python3` with the `venv` module and access to PyPI (see [`crate::python`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode, Uri};

use crate::helpers::{inject, poll, spawn_sending};
use crate::python;

const REQUIREMENTS: &[&str] = &["ovh==1.2.0"];
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
const WAIT: Duration = Duration::from_secs(30);
/// The one number the script sends to.
const RECEIVER: &str = "+33612345678";
/// The inbound SMS injected before the run.
const INCOMING_NUMBER: &str = "+33611111111";
const INCOMING_TEXT: &str = "Bonjour Pigeon";
/// A number that sent STOP before the run.
const STOP_NUMBER: &str = "+33622222222";
const CALLBACK_PATH: &str = "/ovh/callback";

/// One request the callBack receiver got.
#[derive(Clone, Debug)]
struct Hit {
    method: String,
    path: String,
    query: Vec<(String, String)>,
}

impl Hit {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Hits = Arc<Mutex<Vec<Hit>>>;

/// A callBack receiver on 127.0.0.1 recording every request; answers 200. Returns its URL
/// (with a query of its own, which Pigeon must keep) and the record.
async fn callback_receiver() -> (String, Hits) {
    let hits: Hits = Arc::default();
    let record = hits.clone();
    let router = axum::Router::new().route(
        CALLBACK_PATH,
        axum::routing::any(move |method: Method, uri: Uri| {
            let record = record.clone();
            async move {
                let query = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
                record.lock().expect("lock").push(Hit {
                    method: method.as_str().to_string(),
                    path: uri.path().to_string(),
                    query,
                });
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}{CALLBACK_PATH}?run=compat"), hits)
}

/// The service name of the contract: `sms-` + the email's local part (lowercased, `[a-z0-9]`
/// only) + `-1`.
fn service_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let login: String = local
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("sms-{login}-1")
}

/// Until aborted: whenever the receiver has a `dlr=8` (handed to the network) for a job not yet
/// reported, looks up the message's provider uid and reports it delivered through the test
/// adapter's status callback. Problems go to `errors` for the failure message.
fn report_deliveries(
    base: String,
    key: String,
    db: std::path::PathBuf,
    hits: Hits,
    errors: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut done = BTreeSet::new();
        loop {
            let sent: Vec<String> = hits
                .lock()
                .expect("lock")
                .iter()
                .filter(|h| h.param("dlr") == Some("8"))
                .filter_map(|h| h.param("id").map(str::to_string))
                .collect();
            for id in sent {
                if done.contains(&id) {
                    continue;
                }
                let Ok(number) = id.parse::<i64>() else {
                    errors
                        .lock()
                        .expect("lock")
                        .push(format!("callBack id {id:?} is not an integer"));
                    done.insert(id);
                    continue;
                };
                let rows = crate::helpers::sql_at(
                    &db,
                    &format!("SELECT provider_id FROM messages WHERE id = {number}"),
                )
                .await;
                let Some(uid) = rows
                    .first()
                    .and_then(|r| r["provider_id"].as_str())
                    .map(str::to_string)
                else {
                    // Not stored yet, or not a message id: tried again on the next round.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let url = format!(
                    "{base}/callback/status/test/?api_key={key}&uid={uid}&status=delivered"
                );
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        done.insert(id);
                    }
                    Ok(r) => errors.lock().expect("lock").push(format!(
                        "delivery report for job {id} (uid {uid}) answered {}",
                        r.status()
                    )),
                    Err(e) => errors
                        .lock()
                        .expect("lock")
                        .push(format!("delivery report for job {id}: {e}")),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

fn show(hits: &[Hit]) -> String {
    hits.iter()
        .map(|h| format!("{} {} {:?}", h.method, h.path, h.query))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_ovh_python_client_works_against_pigeon() {
    let python = python::venv(REQUIREMENTS).await;
    let t = spawn_sending().await;
    let phone = t
        .create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await;
    let email = t
        .sql(&format!("SELECT email FROM users WHERE id = {}", t.user_id))
        .await
        .first()
        .and_then(|r| r["email"].as_str().map(str::to_string))
        .expect("the test account's email");
    let credentials = pigeon::services::ovh::create_credentials(&t.app, t.user_id)
        .await
        .expect("OVH credentials for the test account");

    inject(&t, phone, INCOMING_NUMBER, INCOMING_TEXT).await;
    inject(&t, phone, STOP_NUMBER, "STOP").await;
    let received = poll(WAIT, || async {
        let rows = t.received().await;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert!(
        received.is_some(),
        "the injected SMS were not received: {:?}",
        t.received().await
    );

    let (callback_url, hits) = callback_receiver().await;
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let reporter = report_deliveries(
        t.base.clone(),
        t.key.clone(),
        t.dir.path().join("pigeon.db"),
        hits.clone(),
        errors.clone(),
    );

    let script = python::compat_dir().join("ovh_client.py");
    let sn = service_name(&email);
    let out = python::run(
        &python,
        &script,
        &[
            "--base-url",
            &t.base,
            "--application-key",
            &credentials.application_key,
            "--application-secret",
            &credentials.application_secret,
            "--consumer-key",
            &credentials.consumer_key,
            "--service-name",
            &sn,
            "--callback-url",
            &callback_url,
            "--receiver",
            RECEIVER,
            "--incoming-number",
            INCOMING_NUMBER,
            "--incoming-text",
            INCOMING_TEXT,
            "--stop-number",
            STOP_NUMBER,
            "--wait-delivery",
        ],
        // The client goes through `requests`, which honours proxy variables: not for loopback.
        // Its configuration lookup reads OVH_* variables only for what the script leaves out.
        &[
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
        ],
        SCRIPT_TIMEOUT,
    )
    .await;
    println!("{}", out.stdout);
    if !out.stderr.is_empty() {
        eprintln!("{}", out.stderr);
    }
    let diagnostics = || {
        format!(
            "callBack requests received:\n{}\ndelivery reports: {:?}",
            show(&hits.lock().expect("lock")),
            errors.lock().expect("lock")
        )
    };
    assert!(
        out.status.success(),
        "the OVH Python client failed against Pigeon: {}\n{}",
        out.report(),
        diagnostics()
    );
    assert!(
        out.stdout.contains("PASS all"),
        "the script ended without its summary: {}",
        out.report()
    );
    let job: String = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("JOB_ID="))
        .expect("the script printed the job id")
        .trim()
        .to_string();

    // The callBack got `dlr=8` (handed to the network), then `dlr=1` (delivered), by GET,
    // with its own query kept.
    let delivered = poll(WAIT, || async {
        hits.lock()
            .expect("lock")
            .iter()
            .any(|h| h.param("id") == Some(job.as_str()) && h.param("dlr") == Some("1"))
            .then_some(())
    })
    .await;
    reporter.abort();
    let all = hits.lock().expect("lock").clone();
    println!("callBack requests received:\n{}", show(&all));
    assert!(
        delivered.is_some(),
        "no `dlr=1` for job {job}\n{}",
        diagnostics()
    );
    let ours: Vec<&Hit> = all
        .iter()
        .filter(|h| h.param("id") == Some(job.as_str()))
        .collect();
    for h in &ours {
        assert_eq!(h.method, "GET", "callBack by {}:\n{}", h.method, show(&all));
        assert_eq!(h.path, CALLBACK_PATH, "{}", show(&all));
        assert_eq!(
            h.param("run"),
            Some("compat"),
            "the callBack's own query was not kept:\n{}",
            show(&all)
        );
    }
    let codes: Vec<&str> = ours.iter().filter_map(|h| h.param("dlr")).collect();
    let sent = codes.iter().position(|c| *c == "8");
    let done = codes.iter().position(|c| *c == "1");
    assert!(
        matches!((sent, done), (Some(s), Some(d)) if s < d),
        "job {job}: dlr codes {codes:?}, expected 8 then 1\n{}",
        show(&all)
    );
    // Only `/1.0` jobs call back: every request names a job and a code.
    for h in &all {
        assert!(
            h.param("id").is_some() && h.param("dlr").is_some(),
            "a callBack without id or dlr:\n{}",
            show(&all)
        );
    }
}

#[test]
fn service_names_follow_the_contract() {
    assert_eq!(service_name("alice@example.com"), "sms-alice-1");
    assert_eq!(
        service_name("Jean.Dupont+sms@example.com"),
        "sms-jeandupontsms-1"
    );
}
