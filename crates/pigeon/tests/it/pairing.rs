//! Device pairing: `POST /api/v1/attach` gives a 7-digit code, `POST /device/v1/pair` redeems it
//! once for a device token; wrong codes are limited so codes cannot be guessed.

use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, spawn};

async fn api(t: &TestApp, path: &str, body: Value) -> Answer {
    answer(
        t.client
            .post(t.url(path))
            .header("Authorization", format!("tokenv1 {}", t.key))
            .body(body.to_string()),
    )
    .await
}

async fn pair(t: &TestApp, code: &str) -> Answer {
    answer(
        t.client
            .post(t.url("/device/v1/pair"))
            .body(json!({ "code": code }).to_string()),
    )
    .await
}

/// A new device and a pairing code for it.
async fn device_and_code(t: &TestApp) -> (String, String) {
    let device = api(t, "/api/v1/device", json!({"firstname": "Demo"})).await;
    assert_eq!(device.status, 201, "{}", device.text);
    let id = device.body["_id"].as_str().expect("id").to_string();
    let attach = api(t, "/api/v1/attach", json!({ "device": id })).await;
    assert_eq!(attach.status, 201, "{}", attach.text);
    let code = attach.body["code"].as_str().expect("code").to_string();
    assert!(
        code.len() == 7 && code.chars().all(|c| c.is_ascii_digit()),
        "{code}"
    );
    (id, code)
}

#[tokio::test]
async fn a_code_pairs_once_and_attaches_the_device() {
    let t = spawn().await;
    let (id, code) = device_and_code(&t).await;
    let paired = pair(&t, &code).await;
    assert_eq!(paired.status, 201, "{}", paired.text);
    let token = paired.body["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("pgd_") && token.len() > 40, "{token}");
    assert_eq!(
        (
            paired.body["device"]["_id"].as_str(),
            &paired.body["device"]["attached"]
        ),
        (Some(id.as_str()), &json!(true))
    );
    let listed = answer(
        t.client
            .get(t.url("/api/v1/device?attached=true"))
            .header("Authorization", format!("tokenv1 {}", t.key)),
    )
    .await;
    assert_eq!(listed.body["total"], 1, "{}", listed.text);
    // Single use.
    let again = pair(&t, &code).await;
    assert_eq!(
        (again.status, again.body["error"].as_str()),
        (401, Some("invalid, used or expired code"))
    );
    // The token is kept only as a digest.
    let db = std::fs::read(t.dir.path().join("pigeon.db")).expect("db");
    let wal = std::fs::read(t.dir.path().join("pigeon.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token stored in clear"
        );
    }
}

#[tokio::test]
async fn expired_and_malformed_codes_are_refused() {
    let t = spawn().await;
    let (_, code) = device_and_code(&t).await;
    let db = t.dir.path().join("pigeon.db");
    let status = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("UPDATE pairing_codes SET expires_at = 0")
        .status()
        .expect("sqlite3");
    assert!(status.success());
    assert_eq!(pair(&t, &code).await.status, 401);
    for bad in ["123456", "12345678", "abcdefg", ""] {
        assert_eq!(pair(&t, bad).await.status, 400, "{bad}");
    }
    let a = answer(t.client.post(t.url("/device/v1/pair")).body("not json")).await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn guessing_is_cut_off_even_for_the_right_code() {
    let t = spawn().await;
    let (_, code) = device_and_code(&t).await;
    let wrong = if code == "0000000" {
        "0000001"
    } else {
        "0000000"
    };
    for _ in 0..10 {
        assert_eq!(pair(&t, wrong).await.status, 401);
    }
    let refused = pair(&t, &code).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let response = t
        .client
        .post(t.url("/device/v1/pair"))
        .body(json!({ "code": code }).to_string())
        .send()
        .await
        .expect("pair");
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(wait > 0 && wait <= 15 * 60, "{wait}");
}

#[tokio::test]
async fn a_code_of_another_account_cannot_be_made() {
    let t = spawn().await;
    let (id, _) = device_and_code(&t).await;
    let bob = t.other_user("bob@example.com").await;
    let a = answer(
        t.client
            .post(t.url("/api/v1/attach"))
            .header("Authorization", format!("tokenv1 {bob}"))
            .body(json!({ "device": id }).to_string()),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text);
}
