//! The real `pigeon agent` binary paired with a 7-digit code, sending for the server through
//! the device protocol, and a device that disconnects handing its jobs to another.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, answer, poll, spawn_sending};

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

/// A new device, paired by a real agent started with its code.
async fn paired_agent(t: &TestApp, name: &str, extra: &[&str]) -> (String, Child) {
    let device = api(
        t,
        reqwest::Method::POST,
        "/api/v1/device",
        Some(json!({ "firstname": name })),
    )
    .await;
    let id = device["_id"].as_str().expect("id").to_string();
    let attach = api(
        t,
        reqwest::Method::POST,
        "/api/v1/attach",
        Some(json!({ "device": id })),
    )
    .await;
    let code = attach["code"].as_str().expect("code").to_string();
    let state = t.dir.path().join(format!("{name}.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_pigeon"))
        .args(["agent", "--server", &t.base, "--pin", &code, "--state"])
        .arg(&state)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("agent");
    let online = poll(Duration::from_secs(10), || async {
        let devices = api(
            t,
            reqwest::Method::GET,
            "/api/v1/device?attached=true",
            None,
        )
        .await;
        let attached = devices["result"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["_id"] == id.as_str());
        let phones = t.get("/api/list/phone/").await.ok().clone();
        let available =
            phones.as_array().into_iter().flatten().any(|p| {
                p["name"] == format!("device {id}").as_str() && p["status"] == "available"
            });
        (attached && available).then_some(())
    })
    .await
    .is_some();
    assert!(online, "the agent {name} did not pair and connect");
    (id, child)
}

fn codes(message: &Value) -> Vec<i64> {
    message["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["status"].as_i64())
        .collect()
}

#[tokio::test]
async fn a_paired_agent_sends_and_reports_delivery() {
    let t = spawn_sending().await;
    let (device, _agent) = paired_agent(&t, "phone-a", &["--backend", "simulator"]).await;
    let body = json!({"device": {"distribute": "random"}, "phone": "+5511999999999", "text": "Hello world!"});
    let message = api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    assert_eq!(message["device"]["_id"], device.as_str());
    let path = format!("/api/v1/message/{}", message["_id"].as_str().expect("id"));
    let delivered = poll(Duration::from_secs(10), || async {
        (api(&t, reqwest::Method::GET, &path, None).await["status"] == 205).then_some(())
    })
    .await
    .is_some();
    let shown = api(&t, reqwest::Method::GET, &path, None).await;
    assert!(delivered, "{shown}");
    assert_eq!(codes(&shown), [201, 202, 302, 203, 205]);
}

#[tokio::test]
async fn a_command_backend_failure_keeps_its_code_and_the_text_stays_one_argument() {
    let t = spawn_sending().await;
    let log = t.dir.path().join("sent.log");
    let script = t.dir.path().join("send.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s|%s\\n' \"$1\" \"$2\" >> {}\n[ \"$2\" = fail ] && exit 3\nexit 0\n", log.display()),
    )
    .expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let template = format!("{} {{to}} {{text}}", script.display());
    let (device, _agent) = paired_agent(
        &t,
        "modem",
        &["--backend", "command", "--send-command", &template],
    )
    .await;
    for text in ["hello; rm -rf / \"quoted\"", "fail"] {
        api(
            &t,
            reqwest::Method::POST,
            "/api/v1/message",
            Some(json!({"device": device, "phone": "+5511999999999", "text": text})),
        )
        .await;
    }
    let done = poll(Duration::from_secs(10), || async {
        let list = api(
            &t,
            reqwest::Method::GET,
            "/api/v1/message?sort=created",
            None,
        )
        .await;
        let statuses: Vec<i64> = list["result"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["status"].as_i64())
            .collect();
        (statuses == [203, 510]).then_some(())
    })
    .await
    .is_some();
    let list = api(
        &t,
        reqwest::Method::GET,
        "/api/v1/message?sort=created",
        None,
    )
    .await;
    assert!(done, "{list}");
    let sent = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        sent,
        "+5511999999999|hello; rm -rf / \"quoted\"\n+5511999999999|fail\n"
    );
}

/// A paired command agent whose send never finishes: the jobs pushed to it stay unacknowledged.
async fn stuck_agent(t: &TestApp) -> (String, Child) {
    let script = t.dir.path().join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 30\n").expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let template = format!("{} {{to}} {{text}}", script.display());
    paired_agent(
        t,
        "stuck",
        &["--backend", "command", "--send-command", &template],
    )
    .await
}

#[tokio::test]
async fn jobs_of_a_device_that_disconnects_go_to_another_device() {
    let t = spawn_sending().await;
    let (stuck, mut agent) = stuck_agent(&t).await;
    let body =
        json!({"device": stuck, "phone": "+5511999999999", "text": "take me", "maxtries": 3});
    let message = api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
    let path = format!("/api/v1/message/{}", message["_id"].as_str().expect("id"));
    let pushed = poll(Duration::from_secs(10), || async {
        (api(&t, reqwest::Method::GET, &path, None).await["status"] == 302).then_some(())
    })
    .await
    .is_some();
    assert!(pushed, "the job was not pushed");
    let (other, _second) = paired_agent(&t, "other", &["--backend", "simulator"]).await;
    agent.kill().await.expect("kill");
    let moved = poll(Duration::from_secs(15), || async {
        (api(&t, reqwest::Method::GET, &path, None).await["status"] == 205).then_some(())
    })
    .await
    .is_some();
    let shown = api(&t, reqwest::Method::GET, &path, None).await;
    assert!(moved, "{shown}");
    assert_eq!(shown["device"]["_id"], other.as_str(), "{shown}");
}

#[tokio::test]
async fn an_agent_killed_mid_batch_leaves_the_rest_to_another_and_nothing_goes_twice() {
    let t = spawn_sending().await;
    let (stuck, mut agent) = stuck_agent(&t).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"device": stuck, "phone": format!("+551199999999{i}"), "text": "batch", "maxtries": 2});
        let m = api(&t, reqwest::Method::POST, "/api/v1/message", Some(body)).await;
        ids.push(m["_id"].as_str().expect("id").to_string());
    }
    let pushed = poll(Duration::from_secs(10), || async {
        let first = api(
            &t,
            reqwest::Method::GET,
            &format!("/api/v1/message/{}", ids[0]),
            None,
        )
        .await;
        (first["status"] == 302).then_some(())
    })
    .await;
    assert!(pushed.is_some(), "the first job was not pushed");
    let (other, _second) = paired_agent(&t, "other", &["--backend", "simulator"]).await;
    agent.kill().await.expect("kill");
    for id in &ids {
        let path = format!("/api/v1/message/{id}");
        let done = poll(Duration::from_secs(15), || async {
            (api(&t, reqwest::Method::GET, &path, None).await["status"] == 205).then_some(())
        })
        .await;
        let shown = api(&t, reqwest::Method::GET, &path, None).await;
        assert!(done.is_some(), "{shown}");
        assert_eq!(shown["device"]["_id"], other.as_str(), "{shown}");
        assert_eq!(
            codes(&shown).iter().filter(|c| **c == 203).count(),
            1,
            "sent once: {shown}"
        );
    }
}
