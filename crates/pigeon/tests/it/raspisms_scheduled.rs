//! `POST /api/scheduled/`, `DELETE /api/scheduled/{id}/`, `GET /api/send-sms/` and the
//! recipients preview.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{BadInput, TestApp, answer, spawn};

async fn scheduled(t: &TestApp) -> Vec<Value> {
    t.get("/api/list/scheduled/")
        .await
        .ok()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn numbers_of(row: &Value) -> Vec<(String, String)> {
    row["numbers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["number"].as_str().unwrap_or_default().to_string(),
                n["data"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_number_form_is_accepted_and_invalid_numbers_are_dropped() {
    let t = spawn().await;
    let single = t
        .create(
            "/api/scheduled/",
            &[("text", "one"), ("numbers", "+33612345678")],
        )
        .await;
    let list = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "two"),
                ("numbers[]", "+33612345678"),
                ("numbers[]", "0612"),
                ("numbers[]", "+32470123456"),
            ],
        )
        .await;
    let with_data = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "Hi {{ contact.first }}"),
                ("numbers[0][number]", "+33612345678"),
                ("numbers[0][data]", "{\"first\":\"Ann\"}"),
                ("numbers[1][number]", "+33612345679"),
            ],
        )
        .await;
    let rows = scheduled(&t).await;
    let by_id = |id: i64| rows.iter().find(|r| r["id"] == id).cloned().expect("row");
    assert_eq!(
        numbers_of(&by_id(single)),
        [("+33612345678".into(), "[]".into())]
    );
    assert_eq!(
        numbers_of(&by_id(list)),
        [
            ("+33612345678".into(), "[]".into()),
            ("+32470123456".into(), "[]".into())
        ]
    );
    assert_eq!(
        numbers_of(&by_id(with_data)),
        [
            ("+33612345678".into(), "{\"first\":\"Ann\"}".into()),
            ("+33612345679".into(), "[]".into())
        ]
    );
    let preview = t
        .get(&format!("/api/scheduled/{with_data}/recipients/"))
        .await;
    assert_eq!(preview.ok()[0]["text"], "Hi Ann");
    assert_eq!(preview.ok()[1]["text"], "Hi ");
}

#[tokio::test]
async fn bad_input_gets_the_right_error_and_stores_nothing() {
    let t = spawn().await;
    let phone = t
        .create("/api/phone/", &[("name", "p"), ("adapter", "test")])
        .await
        .to_string();
    let other = t.other_user("bob@example.com").await;
    let theirs = t
        .post_as(&other, "/api/phone/", &[("name", "p"), ("adapter", "test")])
        .await
        .ok()
        .to_string();
    let long = "x".repeat(1001);
    let long_tag = "t".repeat(256);
    let n = ("numbers", "+33612345678");
    let cases: Vec<BadInput> = vec![
        (vec![n], 4, "One require parameter is missing : text"),
        (
            vec![("text", ""), n],
            4,
            "One require parameter is missing : text",
        ),
        (
            vec![("text", "0"), n],
            4,
            "One require parameter is missing : text",
        ),
        (
            vec![("text", &long), n],
            2,
            "You have specified an invalid parameter : text must be less than 1000 char.",
        ),
        (
            vec![("text", "hi")],
            4,
            "One require parameter is missing : You must specify at least one valid number",
        ),
        (
            vec![("text", "hi"), ("numbers", "0612345678")],
            4,
            "One require parameter is missing : You must specify at least one",
        ),
        (
            vec![("text", "hi"), ("numbers[]", "abc"), ("numbers[]", "+1")],
            4,
            "One require parameter is missing : You must",
        ),
        (
            vec![("text", "hi"), n, ("at", "2020-06-17")],
            2,
            "You have specified an invalid parameter : at must be a date of format \"Y-m-d H:i:s\".",
        ),
        (
            vec![("text", "hi"), n, ("at", "tomorrow")],
            2,
            "You have specified an invalid parameter : at must be",
        ),
        (
            vec![
                ("text", "hi"),
                ("numbers[0][number]", "+33612345678"),
                ("numbers[0][data]", "{nope"),
            ],
            2,
            "You have specified an invalid parameter : number data must be a valid json",
        ),
        (
            vec![
                ("text", "hi"),
                n,
                ("id_phone", &phone),
                ("id_phone_group", "1"),
            ],
            2,
            "You have specified an invalid parameter : id_phone, id_phone_group",
        ),
        (
            vec![("text", "hi"), n, ("id_phone", &theirs)],
            2,
            "You have specified an invalid parameter : id_phone",
        ),
        (
            vec![("text", "hi"), n, ("id_phone", "abc")],
            2,
            "You have specified an invalid parameter : id_phone",
        ),
        (
            vec![("text", "hi"), n, ("id_phone_group", "999")],
            2,
            "You have specified an invalid parameter : id_phone_group",
        ),
        (
            vec![("text", "hi"), n, ("tag", &long_tag)],
            2,
            "You have specified an invalid parameter : tag must be less than 255 char.",
        ),
        (
            vec![("text", "hi"), ("contacts[]", "x")],
            2,
            "You have specified an invalid parameter : contacts",
        ),
        (
            vec![("text", "{% if %}"), n],
            2,
            "You have specified an invalid parameter : text : ",
        ),
        (
            vec![("text[]", "hi"), n],
            2,
            "You have specified an invalid parameter : text must be a string.",
        ),
    ];
    for (form, code, message) in cases {
        let a = t.post("/api/scheduled/", &form).await;
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
    assert!(scheduled(&t).await.is_empty());
}

#[tokio::test]
async fn at_is_read_in_the_account_time_zone() {
    let t = spawn().await;
    t.set_setting("timezone", "Europe/Paris").await;
    let id = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "hi"),
                ("numbers", "+33612345678"),
                ("at", "2020-06-17 17:30:25"),
            ],
        )
        .await;
    let row = scheduled(&t)
        .await
        .into_iter()
        .find(|r| r["id"] == id)
        .expect("row");
    assert_eq!(row["at"], "2020-06-17 17:30:25");
    let c = pigeon_store::campaigns::get(&t.app.store, t.user_id, id)
        .await
        .expect("get")
        .expect("campaign");
    assert_eq!(
        pigeon_core::time::format_local(pigeon_core::time::Ts(c.at), &jiff::tz::TimeZone::UTC),
        "2020-06-17 15:30:25"
    );
}

#[tokio::test]
async fn flags_follow_php_truthiness() {
    let t = spawn().await;
    let yes = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "a"),
                ("numbers", "+33612345678"),
                ("flash", "false"),
            ],
        )
        .await;
    let no = t
        .create(
            "/api/scheduled/",
            &[("text", "b"), ("numbers", "+33612345678"), ("flash", "0")],
        )
        .await;
    let rows = scheduled(&t).await;
    let flash = |id: i64| {
        rows.iter()
            .find(|r| r["id"] == id)
            .map(|r| r["flash"].clone())
    };
    assert_eq!(flash(yes), Some(Value::Bool(true)));
    assert_eq!(flash(no), Some(Value::Bool(false)));
}

#[tokio::test]
async fn mms_media_and_csv_upload_through_multipart() {
    let t = spawn().await;
    let form = Form::new()
        .text("text", "Look {{ contact.firstname }}")
        .text("mms", "1")
        .part(
            "medias[]",
            Part::bytes(b"\x89PNG fake".to_vec()).file_name("cat.png"),
        )
        .part(
            "numbers_csv",
            Part::bytes(
                b"phone,first name,city\n+33612345678,Ann,\n+33612345679,Bob,Lyon\n".to_vec(),
            )
            .file_name("n.csv"),
        );
    let a = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .multipart(form),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let row = scheduled(&t).await.into_iter().next().expect("row");
    assert_eq!(row["mms"], true);
    assert_eq!(
        numbers_of(&row),
        [
            ("+33612345678".into(), "{\"firstname\":\"Ann\"}".into()),
            (
                "+33612345679".into(),
                "{\"firstname\":\"Bob\",\"city\":\"Lyon\"}".into()
            )
        ]
    );
    let path = row["medias"][0]["path"]
        .as_str()
        .expect("media path")
        .to_string();
    assert!(
        path.starts_with(&format!("{}/", t.user_id)) && path.ends_with(".png"),
        "{path}"
    );
    let stored =
        std::fs::read(t.app.config.data_dir.join("media").join(&path)).expect("media file");
    assert_eq!(stored, b"\x89PNG fake");

    let bad_csv = Form::new().text("text", "x").part(
        "numbers_csv",
        Part::bytes(b"n\n0612\n".to_vec()).file_name("n.csv"),
    );
    let a = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .multipart(bad_csv),
    )
    .await;
    assert_eq!(a.error_code(), 2);
    assert!(
        a.message().contains("csv : Erreur à la ligne 2 colonne 1"),
        "{}",
        a.message()
    );

    t.set_setting("mms", "0").await;
    let a = t
        .post(
            "/api/scheduled/",
            &[("text", "x"), ("numbers", "+33612345678"), ("mms", "1")],
        )
        .await;
    assert_eq!(
        a.message(),
        "You have specified an invalid parameter : mms is set to true, but mms are disabled in settings."
    );

    let broken = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .header("Content-Type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\nunterminated"),
    )
    .await;
    assert_eq!(
        (broken.status, broken.error_code()),
        (400, 2),
        "{}",
        broken.text
    );
    assert_eq!(scheduled(&t).await.len(), 1);
}

#[tokio::test]
async fn delete_only_own_pending_scheduled() {
    let t = spawn().await;
    let other = t.other_user("bob@example.com").await;
    let id = t
        .create(
            "/api/scheduled/",
            &[("text", "x"), ("numbers", "+33612345678")],
        )
        .await;
    let a = t.delete_as(&other, &format!("/api/scheduled/{id}/")).await;
    assert_eq!((a.status, a.error_code()), (400, 32));
    assert_eq!(a.message(), "Cannot delete this entry.");
    assert_eq!(
        t.get_as(&other, &format!("/api/scheduled/{id}/recipients/"))
            .await
            .status,
        404
    );
    assert_eq!(scheduled(&t).await.len(), 1);
    let a = t.delete(&format!("/api/scheduled/{id}/")).await;
    assert_eq!(a.status, 204);
    assert!(scheduled(&t).await.is_empty());
    assert_eq!(
        t.delete(&format!("/api/scheduled/{id}/"))
            .await
            .error_code(),
        32
    );
    assert_eq!(t.delete("/api/scheduled/abc/").await.error_code(), 32);
}

#[tokio::test]
async fn send_sms_by_get() {
    let t = spawn().await;
    let a = t.get("/api/send-sms/?to=%2B33612345678&text=Hello").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.ok().as_i64().expect("id");
    let row = scheduled(&t)
        .await
        .into_iter()
        .find(|r| r["id"] == id)
        .expect("row");
    assert_eq!(row["text"], "Hello");
    for (query, missing) in [
        ("to=0612&text=x", "to"),
        ("to=%2B33612345678&text=0", "text"),
        ("", "to text"),
    ] {
        let a = t.get(&format!("/api/send-sms/?{query}")).await;
        assert_eq!((a.status, a.error_code()), (404, 4), "{query}");
        assert_eq!(
            a.message(),
            format!("One require parameter is missing : {missing}")
        );
    }
    let a = t
        .get("/api/send-sms/?to=%2B33612345678&text=x&id_phone=999")
        .await;
    assert_eq!((a.status, a.error_code()), (404, 8), "{}", a.text);
}

#[tokio::test]
async fn recipients_resolve_every_target_kind_in_order() {
    let t = spawn().await;
    let jane = t
        .create(
            "/api/contact/",
            &[
                ("name", "Jane Doe"),
                ("number", "+33612345679"),
                (
                    "data",
                    "{\"gender\":\"female\",\"vip\":\"0\",\"firstname\":\"Jane\"}",
                ),
            ],
        )
        .await;
    let john = t
        .create(
            "/api/contact/",
            &[
                ("name", "John Doe"),
                ("number", "+33612345678"),
                (
                    "data",
                    "{\"gender\":\"male\",\"vip\":\"1\",\"firstname\":\"John\"}",
                ),
            ],
        )
        .await;
    let _max = t
        .create(
            "/api/contact/",
            &[
                ("name", "Max"),
                ("number", "+33612345670"),
                (
                    "data",
                    "{\"gender\":\"male\",\"vip\":\"1\",\"firstname\":\"Max\"}",
                ),
            ],
        )
        .await;
    let stopped = t
        .create(
            "/api/contact/",
            &[("name", "Stop"), ("number", "+33612345671")],
        )
        .await;
    pigeon_store::stop_list::add(&t.app.store, t.user_id, "+33612345671")
        .await
        .expect("stop");
    let group = t
        .create(
            "/api/group/",
            &[
                ("name", "g"),
                ("contacts[]", &john.to_string()),
                ("contacts[]", &stopped.to_string()),
            ],
        )
        .await;
    let vip = t
        .create(
            "/api/conditional_group/",
            &[("name", "vip"), ("condition", "contact.vip == 1")],
        )
        .await;
    let text =
        "{% if contact.gender == 'male' %}M.{% else %}Mme{% endif %} {{ contact_metas.name }}";
    let form = [
        ("text", text),
        ("numbers", "+33612345678"),
        ("contacts[]", &jane.to_string()),
        ("groups[]", &group.to_string()),
        ("conditional_groups", &vip.to_string()),
    ];
    let id = t.create("/api/scheduled/", &form).await;
    let preview = t.get(&format!("/api/scheduled/{id}/recipients/")).await;
    let rows: Vec<(String, String, String)> = preview
        .ok()
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["number"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
                r["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            // The raw number comes first and wins over John's contact with the same number.
            ("+33612345678".into(), "send".into(), "Mme ".into()),
            ("+33612345679".into(), "send".into(), "Mme Jane Doe".into()),
            ("+33612345671".into(), "skipped".into(), String::new()),
            ("+33612345670".into(), "send".into(), "M. Max".into()),
        ]
    );
    // SMS_STOP bypasses the STOP list.
    let form = [
        ("text", "bye"),
        ("contacts", &stopped.to_string()),
        ("tag", "SMS_STOP"),
    ];
    let id = t.create("/api/scheduled/", &form).await;
    let preview = t.get(&format!("/api/scheduled/{id}/recipients/")).await;
    assert_eq!(preview.ok()[0]["status"], "send");
}
