//! What the binary logs: no phone number in clear, even at the most verbose level.

use std::process::Stdio;
use std::time::Duration;

use crate::binary::{free_address, logs, read_api_key, spawn, stop_cleanly, wait_until_up};

#[tokio::test]
async fn numbers_stay_out_of_trace_logs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (listen, base) = free_address();
    let client = reqwest::Client::new();
    let trace = [("RUST_LOG", "trace")];
    let mut server = spawn(dir, &listen, "first.log", Stdio::piped(), &trace);
    let key = read_api_key(&mut server, dir).await;
    wait_until_up(&client, &base, &mut server, dir).await;
    let sent = client
        .post(format!("{base}/api/scheduled/"))
        .header("X-Api-Key", &key)
        .form(&[("text", "hi"), ("numbers", "+33612345678")])
        .send()
        .await
        .expect("post");
    assert!(sent.status().is_success(), "{}", logs(dir));
    stop_cleanly(&mut server, dir, Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(dir.join("first.log")).expect("log");
    assert!(log.contains("TRACE"), "trace logging was not on");
    assert!(
        !log.contains("12345678"),
        "a number in the logs{}",
        logs(dir)
    );
}
