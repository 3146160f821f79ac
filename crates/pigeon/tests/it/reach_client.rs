//! Compatibility with the official Reach Python client, `reach-talkylabs` 1.0.0 from PyPI: the
//! script `tests/compat/reach_client.py` drives Pigeon's `/rest/messaging/v1/` API through the
//! unmodified client (only its base URL changed) and checks the status callbacks Pigeon sends,
//! recorded here, with the client's `RequestValidator`.
//!
//! Needs `python3` with the `venv` module and access to PyPI (see [`crate::python`]).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::json;

use crate::helpers::spawn_sending;
use crate::python;

const REQUIREMENTS: &[&str] = &["reach-talkylabs==1.0.0"];
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// A status-callback receiver on 127.0.0.1: appends every request to `file` as one JSON line
/// (`method`, `path` with its query, `contentType`, `signature`, form `params` as pairs).
/// Answers 200. Returns the receiver's URL (with a query string, which the signature covers).
async fn callback_receiver(file: PathBuf) -> String {
    let out = Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .expect("callbacks file"),
    ));
    let record = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let out = out.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let params: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            let line = json!({
                "method": method.as_str(),
                "path": uri.path_and_query().map(|p| p.as_str()).unwrap_or(uri.path()),
                "contentType": header("content-type"),
                "signature": header("x-reach-signature"),
                "params": params,
            });
            // One write per line, under the lock: the script never sees two records mixed.
            let mut f = out.lock().expect("lock");
            f.write_all(format!("{line}\n").as_bytes())
                .expect("write callback");
            f.flush().expect("flush callback");
            StatusCode::OK
        }
    };
    let router = axum::Router::new().route("/reach/status", axum::routing::any(record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/reach/status?run=compat")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_official_reach_python_client_works_against_pigeon() {
    let python = python::venv(REQUIREMENTS).await;
    let t = spawn_sending().await;
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await;
    let email = t
        .sql(&format!("SELECT email FROM users WHERE id = {}", t.user_id))
        .await
        .first()
        .and_then(|r| r["email"].as_str().map(str::to_string))
        .expect("the test account's email");
    let callbacks = t.dir.path().join("reach-callbacks.jsonl");
    let callback_url = callback_receiver(callbacks.clone()).await;
    let script = python::compat_dir().join("reach_client.py");
    let callbacks_arg = callbacks.display().to_string();
    let out = python::run(
        &python,
        &script,
        &[
            "--base-url",
            &t.base,
            "--api-user",
            &email,
            "--api-key",
            &t.key,
            "--callback-url",
            &callback_url,
            "--callbacks-file",
            &callbacks_arg,
        ],
        // The client goes through `requests`, which honours proxy variables: not for loopback.
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
    assert!(
        out.status.success(),
        "the Reach Python client failed against Pigeon: {}\ncallbacks received:\n{}",
        out.report(),
        std::fs::read_to_string(&callbacks).unwrap_or_default()
    );
    assert!(
        out.stdout.contains("PASS all"),
        "the script ended without its summary: {}",
        out.report()
    );
}
