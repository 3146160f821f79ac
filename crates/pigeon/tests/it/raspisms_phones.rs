//! Phone endpoints: create, update, status, status/force, delete.

use serde_json::Value;

use crate::helpers::{BadInput, TestApp, spawn};

async fn phones(t: &TestApp) -> Vec<Value> {
    t.get("/api/list/phone/")
        .await
        .ok()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn create_with_our_name_or_the_raspisms_class() {
    let t = spawn().await;
    let a = t
        .create("/api/phone/", &[("name", "one"), ("adapter", "test")])
        .await;
    let b = t
        .create(
            "/api/phone/",
            &[
                ("name", "two"),
                ("adapter", "adapters\\TestAdapter"),
                ("priority", "-4"),
                ("adapter_data[token]", "very-secret-token"),
                ("limits[0][volume]", "0"),
                ("limits[0][startpoint]", "today"),
                ("limits[1][volume]", "500"),
                ("limits[1][startpoint]", "this week midnight"),
            ],
        )
        .await;
    let rows = phones(&t).await;
    assert_eq!(
        rows.iter().map(|p| p["id"].as_i64()).collect::<Vec<_>>(),
        [Some(a), Some(b)]
    );
    let two = &rows[1];
    assert_eq!(two["adapter"], "test");
    assert_eq!(two["priority"], 0);
    assert_eq!(two["status"], "available");
    assert_eq!(two["limits"][0]["volume"], 1);
    assert_eq!(two["limits"][1]["startpoint"], "this week midnight");
    assert!(two.get("adapter_data").is_none());
    let raw = t.get("/api/list/phone/").await.text;
    assert!(!raw.contains("very-secret-token"));
    let db = std::fs::read(t.dir.path().join("pigeon.db")).expect("db");
    let wal = std::fs::read(t.dir.path().join("pigeon.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(17).any(|w| w == b"very-secret-token"),
            "adapter data stored in clear"
        );
    }
}

#[tokio::test]
async fn create_errors() {
    let t = spawn().await;
    t.create("/api/phone/", &[("name", "taken"), ("adapter", "test")])
        .await;
    let long = "n".repeat(151);
    let cases: Vec<BadInput> = vec![
        (
            vec![("adapter", "test")],
            4,
            "One require parameter is missing : You must specify phone name.",
        ),
        (
            vec![("name", "x")],
            4,
            "One require parameter is missing : You must specify adapter name.",
        ),
        (
            vec![("name", "taken"), ("adapter", "test")],
            2,
            "You have specified an invalid parameter : This name is already used for another phone.",
        ),
        (
            vec![("name", "x"), ("adapter", "adapters\\Nope")],
            2,
            "You have specified an invalid parameter : adapter. Adapter \"adapters\\Nope\" does not exists.",
        ),
        (
            vec![("name", &long), ("adapter", "test")],
            2,
            "You have specified an invalid parameter : name must be less than 150 char.",
        ),
        (
            vec![("name", "x"), ("adapter", "test"), ("priority", "high")],
            2,
            "You have specified an invalid parameter : priority must be an integer.",
        ),
        (
            vec![
                ("name", "x"),
                ("adapter", "test"),
                ("limits[0][volume]", "5"),
                ("limits[0][startpoint]", "whenever"),
            ],
            2,
            "You have specified an invalid parameter : limits : startpoint",
        ),
        (
            vec![
                ("name", "x"),
                ("adapter", "test"),
                ("limits[0][startpoint]", "today"),
            ],
            2,
            "You have specified an invalid parameter : limits must be",
        ),
        (
            vec![
                ("name", "x"),
                ("adapter", "test"),
                ("adapter_data", "[1,2]"),
            ],
            2,
            "You have specified an invalid parameter : adapter_data must be",
        ),
    ];
    for (form, code, message) in cases {
        let a = t.post("/api/phone/", &form).await;
        assert_eq!(
            (a.status, a.error_code()),
            (400, code),
            "{form:?}: {}",
            a.text
        );
        assert!(
            a.message().starts_with(message),
            "{form:?}: {}",
            a.message()
        );
    }
    assert_eq!(phones(&t).await.len(), 1);
}

#[tokio::test]
async fn update_replaces_given_fields_only_and_is_scoped() {
    let t = spawn().await;
    let other = t.other_user("bob@example.com").await;
    let id = t
        .create(
            "/api/phone/",
            &[("name", "p"), ("adapter", "test"), ("priority", "3")],
        )
        .await;
    t.create("/api/phone/", &[("name", "q"), ("adapter", "test")])
        .await;
    let a = t
        .post(&format!("/api/phone/{id}/"), &[("name", "renamed")])
        .await;
    assert_eq!((a.status, a.ok().clone()), (201, Value::Bool(true)));
    let row = phones(&t)
        .await
        .into_iter()
        .find(|p| p["id"] == id)
        .expect("phone");
    assert_eq!(
        (row["name"].as_str(), row["priority"].as_i64()),
        (Some("renamed"), Some(3))
    );
    let a = t.post(&format!("/api/phone/{id}/"), &[("name", "q")]).await;
    assert_eq!(a.error_code(), 2);
    for path in [
        format!("/api/phone/{id}/"),
        "/api/phone/999/".to_string(),
        "/api/phone/abc/".to_string(),
    ] {
        let key = if path.contains(&id.to_string()) {
            &other
        } else {
            &t.key
        };
        let a = t.post_as(key, &path, &[("name", "stolen")]).await;
        assert_eq!((a.status, a.error_code()), (400, 128), "{path}: {}", a.text);
        assert_eq!(
            a.message(),
            "Cannot update this entry : No phone with this id."
        );
    }
    assert!(phones(&t).await.iter().all(|p| p["name"] != "stolen"));
}

#[tokio::test]
async fn status_check_force_and_limits() {
    let t = spawn().await;
    let id = t
        .create(
            "/api/phone/",
            &[
                ("name", "p"),
                ("adapter", "test"),
                ("limits[0][volume]", "2"),
                ("limits[0][startpoint]", "-24 hours"),
            ],
        )
        .await;
    let status = |a: crate::helpers::Answer| (a.status, a.body["response"].clone());
    assert_eq!(
        status(t.post(&format!("/api/phone/{id}/status/"), &[]).await),
        (201, "available".into())
    );
    for _ in 0..2 {
        let m = pigeon_store::messages::NewMessage {
            user_id: t.user_id,
            phone_id: Some(id),
            direction: "outbound",
            destination: Some("+33612345678".into()),
            text: "x".into(),
            status: "sent".into(),
            at: pigeon_core::time::Ts::now(),
            ..Default::default()
        };
        pigeon_store::messages::insert(&t.app.store, &m)
            .await
            .expect("message");
    }
    // Limits apply only when the phone_limit setting is on.
    assert_eq!(
        status(t.post(&format!("/api/phone/{id}/status/"), &[]).await).1,
        "available"
    );
    t.set_setting("phone_limit", "1").await;
    assert_eq!(
        status(t.post(&format!("/api/phone/{id}/status/"), &[]).await).1,
        "limit_reached"
    );

    let a = t
        .post(
            &format!("/api/phone/{id}/status/force/"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(
        a.body,
        serde_json::json!({"error": 0, "message": null, "response": "disabled", "next": null, "prev": null})
    );
    let a = t.post(&format!("/api/phone/{id}/status/"), &[]).await;
    assert_eq!((a.status, a.error_code()), (400, 128));
    assert!(a.message().contains("manually disabled"));
    let a = t
        .post(
            &format!("/api/phone/{id}/status/force/"),
            &[("status", "unavailable")],
        )
        .await;
    assert_eq!(
        (a.error_code(), a.message()),
        (
            2,
            "You have specified an invalid parameter : status must be one of : available, disabled."
        )
    );
    let a = t
        .post(
            &format!("/api/phone/{id}/status/force/"),
            &[("status", "available")],
        )
        .await;
    assert_eq!(a.ok(), "available");
    let other = t.other_user("bob@example.com").await;
    let a = t
        .post_as(
            &other,
            &format!("/api/phone/{id}/status/force/"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(a.error_code(), 128);
    assert_eq!(phones(&t).await[0]["status"], "available");
}

#[tokio::test]
async fn delete_phone_works_and_scheduled_keep_going() {
    let t = spawn().await;
    let other = t.other_user("bob@example.com").await;
    let id = t
        .create("/api/phone/", &[("name", "p"), ("adapter", "test")])
        .await;
    let sms = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "x"),
                ("numbers", "+33612345678"),
                ("id_phone", &id.to_string()),
            ],
        )
        .await;
    let a = t.delete_as(&other, &format!("/api/phone/{id}/")).await;
    assert_eq!((a.status, a.error_code()), (400, 32));
    assert_eq!(t.delete(&format!("/api/phone/{id}")).await.status, 204);
    assert!(phones(&t).await.is_empty());
    let rows = t.get("/api/list/scheduled/").await.ok().clone();
    assert_eq!(rows[0]["id"], sms);
    assert!(rows[0]["id_phone"].is_null());
}
