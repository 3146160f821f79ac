//! Authentication order, status codes of credential errors, wrong verbs and unknown paths.

use pigeon::services::accounts;

use crate::helpers::{answer, spawn};

#[tokio::test]
async fn key_in_query_then_body_then_header() {
    let t = spawn().await;
    let other = t.other_user("bob@example.com").await;
    // Query first: a valid query key wins over a wrong header.
    let a = answer(
        t.client
            .get(t.url(&format!("/api/list/contact/?api_key={}", t.key)))
            .header("X-Api-Key", "wrong-wrong-wrong-wrong"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    // A wrong query key is refused even with a good header: no fallback.
    let a = answer(
        t.client
            .get(t.url("/api/list/contact/?api_key=nope"))
            .header("X-Api-Key", &t.key),
    )
    .await;
    assert_eq!((a.status, a.error_code()), (401, 1));
    // Body before header: the body's key decides whose contact this is.
    let body = format!("api_key={other}&name=Bob&number=%2B33612345678");
    let a = answer(
        t.client
            .post(t.url("/api/contact/"))
            .header("X-Api-Key", &t.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        t.get_as(&other, "/api/list/contact/")
            .await
            .ok()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        t.get("/api/list/contact/")
            .await
            .ok()
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn missing_or_unknown_key_is_401_with_the_exact_message() {
    let t = spawn().await;
    for a in [
        answer(t.client.get(t.url("/api/list/contact/"))).await,
        t.get_as("0123456789abcdef0123456789abcdef", "/api/list/contact/")
            .await,
        t.post_as(
            "bad",
            "/api/scheduled/",
            &[("text", "hi"), ("numbers", "+33612345678")],
        )
        .await,
        t.delete_as("bad", "/api/scheduled/1/").await,
    ] {
        assert_eq!(a.status, 401, "{}", a.text);
        assert_eq!(a.error_code(), 1);
        assert_eq!(
            a.message(),
            "Invalid API Key. Please provide a valid API key as GET or POST parameter \"api_key\" or a HTTP \"X-Api-Key\"."
        );
        assert!(
            a.body["response"].is_null() && a.body["next"].is_null() && a.body["prev"].is_null()
        );
    }
}

#[tokio::test]
async fn suspended_account_is_403_and_reactivation_restores_access() {
    let t = spawn().await;
    accounts::set_status(&t.app, "alice@example.com", "suspended")
        .await
        .expect("suspend");
    let a = t.get("/api/list/contact/").await;
    assert_eq!((a.status, a.error_code()), (403, 16));
    assert_eq!(a.message(), "This user account is currently suspended.");
    let a = t
        .post(
            "/api/scheduled/",
            &[("text", "hi"), ("numbers", "+33612345678")],
        )
        .await;
    assert_eq!((a.status, a.error_code()), (403, 16));
    accounts::set_status(&t.app, "alice@example.com", "active")
        .await
        .expect("activate");
    assert_eq!(t.get("/api/list/contact/").await.status, 200);
}

#[tokio::test]
async fn rotated_key_replaces_the_old_one() {
    let t = spawn().await;
    let new_key = accounts::rotate_key(&t.app, "alice@example.com")
        .await
        .expect("rotate");
    assert_eq!(t.get("/api/list/contact/").await.status, 401);
    assert_eq!(t.get_as(&new_key, "/api/list/contact/").await.status, 200);
}

#[tokio::test]
async fn api_keys_are_stored_only_as_digest_and_sealed_copy() {
    let t = spawn().await;
    let db = std::fs::read(t.dir.path().join("pigeon.db")).expect("db");
    let wal = std::fs::read(t.dir.path().join("pigeon.db-wal")).unwrap_or_default();
    let needle = t.key.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "API key stored in clear"
        );
    }
}

#[tokio::test]
async fn wrong_verb_is_json_405_and_unknown_path_json_404() {
    let t = spawn().await;
    let a = answer(
        t.client
            .put(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key),
    )
    .await;
    assert_eq!(a.status, 405, "{}", a.text);
    assert_eq!(a.error_code(), 2);
    let a = answer(
        t.client
            .get(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key),
    )
    .await;
    assert_eq!(a.status, 405);
    let a = t.get("/api/nothing/here/at/all").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.error_code(), 2);
}

#[tokio::test]
async fn responses_are_json_and_not_html_escaped() {
    let t = spawn().await;
    t.create(
        "/api/contact/",
        &[("name", "Tom & <Jerry>"), ("number", "+33612345678")],
    )
    .await;
    let response = t
        .client
        .get(t.url("/api/list/contact/"))
        .header("X-Api-Key", &t.key)
        .send()
        .await
        .expect("get");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["response"][0]["name"], "Tom & <Jerry>");
}

#[tokio::test]
async fn oversized_bodies_are_refused_and_nothing_is_stored() {
    let t = spawn().await;
    let huge = format!(
        "text={}&numbers=%2B33612345678",
        "a".repeat(17 * 1024 * 1024)
    );
    let a = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(huge),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.error_code(), 2);
    assert!(
        t.get("/api/list/scheduled/")
            .await
            .ok()
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}
