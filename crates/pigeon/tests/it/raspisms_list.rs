//! `GET /api/list/{entry_type}/...`: the rows of every entry type (fields, JSON types, per-type
//! extras), pagination (page form, `after/` and `before/` cursors, `next` / `prev` links) and
//! errors; every list is scoped to the caller.

use std::collections::BTreeSet;

use pigeon::services::accounts;
use pigeon_store::messages::{self, NewMessage};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, answer, spawn};

const INVALID: &str = "You have specified an invalid parameter : ";
const ENTRY_TYPES: [&str; 10] = [
    "sended",
    "received",
    "scheduled",
    "contact",
    "group",
    "conditional_group",
    "phone",
    "phone_group",
    "media",
    "webhook",
];
/// A value given at phone creation that must never come back.
const PHONE_SECRET: &str = "s3cr3t-adapter-token-4Vnc9rDq";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The rows of a successful list answer.
fn rows(a: &Answer) -> &Vec<Value> {
    assert_eq!(a.status, 200, "{}", a.text);
    a.ok()
        .as_array()
        .unwrap_or_else(|| panic!("response is not an array: {}", a.text))
}

async fn list(t: &TestApp, path: &str) -> Vec<Value> {
    rows(&t.get(path).await).clone()
}

/// The one row of `kind` with this id.
async fn row(t: &TestApp, kind: &str, id: i64) -> Value {
    let all = list(t, &format!("/api/list/{kind}/")).await;
    let found: Vec<&Value> = all.iter().filter(|r| r["id"] == json!(id)).collect();
    assert_eq!(found.len(), 1, "{kind} {id} in {all:?}");
    found[0].clone()
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| int(r, "id")).collect()
}

fn int(row: &Value, key: &str) -> i64 {
    row[key]
        .as_i64()
        .unwrap_or_else(|| panic!("`{key}` is not a JSON integer in {row}"))
}

fn text<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a JSON string in {row}"))
}

fn boolean(row: &Value, key: &str) -> bool {
    row[key]
        .as_bool()
        .unwrap_or_else(|| panic!("`{key}` is not a JSON boolean in {row}"))
}

fn array<'a>(row: &'a Value, key: &str) -> &'a Vec<Value> {
    row[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not a JSON array in {row}"))
}

/// `Y-m-d H:i:s`, exactly.
fn is_datetime(s: &str) -> bool {
    s.len() == 19
        && s.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        })
}

fn assert_dates(row: &Value, keys: &[&str]) {
    for key in keys {
        let value = text(row, key);
        assert!(
            is_datetime(value),
            "`{key}` = {value:?} is not \"Y-m-d H:i:s\" in {row}"
        );
    }
}

fn keys(row: &Value) -> BTreeSet<&str> {
    row.as_object()
        .unwrap_or_else(|| panic!("not an object: {row}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn assert_keys(row: &Value, expected: &[&str]) {
    assert_eq!(
        keys(row),
        expected.iter().copied().collect(),
        "fields of {row}"
    );
}

/// A contact row as RaspiSMS shows it, `data` being a JSON string.
fn assert_contact_row(row: &Value, user_id: i64) -> Value {
    assert_keys(
        row,
        &[
            "id",
            "id_user",
            "name",
            "number",
            "data",
            "created_at",
            "updated_at",
        ],
    );
    int(row, "id");
    assert_eq!(int(row, "id_user"), user_id);
    text(row, "name");
    text(row, "number");
    assert_dates(row, &["created_at", "updated_at"]);
    serde_json::from_str(text(row, "data"))
        .unwrap_or_else(|e| panic!("data is not JSON text ({e}) in {row}"))
}

fn assert_phone_row(row: &Value, user_id: i64) {
    for key in [
        "id",
        "id_user",
        "name",
        "adapter",
        "priority",
        "status",
        "limits",
        "created_at",
        "updated_at",
    ] {
        assert!(row.get(key).is_some(), "`{key}` missing in {row}");
    }
    assert!(
        row.get("adapter_data").is_none(),
        "adapter_data shown in {row}"
    );
    assert!(
        !row.to_string().contains(PHONE_SECRET),
        "secret shown in {row}"
    );
    int(row, "id");
    assert_eq!(int(row, "id_user"), user_id);
    text(row, "name");
    text(row, "adapter");
    int(row, "priority");
    text(row, "status");
    assert_dates(row, &["created_at", "updated_at"]);
}

fn assert_group_row(row: &Value, user_id: i64) {
    int(row, "id");
    assert_eq!(int(row, "id_user"), user_id);
    text(row, "name");
    assert_dates(row, &["created_at", "updated_at"]);
}

async fn user_id(t: &TestApp, key: &str) -> i64 {
    accounts::by_api_key(&t.app, key)
        .await
        .expect("lookup")
        .expect("user")
        .id
}

fn ts(local: &str) -> pigeon_store::Ts {
    pigeon_core::time::parse_local(local, &jiff::tz::TimeZone::UTC).expect("date")
}

fn outbound(user_id: i64, phone: i64, status: &str, at: &str) -> NewMessage {
    NewMessage {
        user_id,
        phone_id: Some(phone),
        direction: "outbound",
        destination: Some("+33612345678".into()),
        text: format!("sms {status}"),
        status: status.into(),
        provider_id: Some(format!("uid-{status}")),
        adapter: Some("test".into()),
        tag: Some("promo".into()),
        at: ts(at),
        ..Default::default()
    }
}

fn inbound(user_id: i64, phone: i64, at: &str) -> NewMessage {
    NewMessage {
        user_id,
        phone_id: Some(phone),
        direction: "inbound",
        origin: Some("+33612345679".into()),
        text: "incoming".into(),
        status: "received".into(),
        at: ts(at),
        ..Default::default()
    }
}

async fn insert(t: &TestApp, m: &NewMessage) -> i64 {
    messages::insert(&t.app.store, m)
        .await
        .expect("insert message")
}

async fn contact(t: &TestApp, name: &str, number: &str) -> i64 {
    t.create("/api/contact/", &[("name", name), ("number", number)])
        .await
}

/// `n` contacts, oldest first.
async fn contacts(t: &TestApp, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(contact(t, &format!("Contact {i:02}"), &format!("+336123456{i:02}")).await);
    }
    ids
}

/// A test-adapter phone created with a secret in its adapter data and one limit.
async fn phone(t: &TestApp, name: &str) -> i64 {
    t.create(
        "/api/phone/",
        &[
            ("name", name),
            ("adapter", "test"),
            ("adapter_data[token]", PHONE_SECRET),
            ("limits[0][volume]", "10"),
            ("limits[0][startpoint]", "today"),
        ],
    )
    .await
}

/// A pending MMS with one uploaded file; returns (scheduled id, media id, media path).
async fn scheduled_mms(t: &TestApp) -> (i64, i64, String) {
    let form = Form::new()
        .text("text", "picture")
        .text("numbers", "+33612345678")
        .text("mms", "1")
        .text("at", "2030-01-01 00:00:00")
        .part(
            "medias[]",
            Part::bytes(b"GIF89a\x01\x00\x01\x00".to_vec()).file_name("pic.gif"),
        );
    let a = answer(
        t.client
            .post(t.url("/api/scheduled/"))
            .header("X-Api-Key", &t.key)
            .multipart(form),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.ok().as_i64().expect("id");
    let medias = array(&row(t, "scheduled", id).await, "medias").clone();
    assert_eq!(medias.len(), 1, "{medias:?}");
    (
        id,
        int(&medias[0], "id"),
        text(&medias[0], "path").to_string(),
    )
}

fn link(t: &TestApp, kind: &str, cursor: &str, id: i64) -> Value {
    json!(format!("{}/api/list/{kind}/{cursor}/{id}/", t.base))
}

/// The path of a link, which must point at the test server.
fn path_of<'a>(t: &TestApp, link: &'a str) -> &'a str {
    link.strip_prefix(&t.base)
        .unwrap_or_else(|| panic!("{link} is not under {}", t.base))
}

// ---------------------------------------------------------------------------------------------
// Rows of each entry type

#[tokio::test]
async fn contact_rows_have_raspisms_fields_and_data_as_a_json_string() {
    let t = spawn().await;
    let data = r#"{"firstname":"Jane","vip":"1","birthdate":"1992-08-15"}"#;
    let id = t
        .create(
            "/api/contact/",
            &[
                ("name", "Jane Doe"),
                ("number", "+33612345679"),
                ("data", data),
            ],
        )
        .await;
    let plain = contact(&t, "No Data", "+33612345678").await;
    let r = row(&t, "contact", id).await;
    let parsed = assert_contact_row(&r, t.user_id);
    assert_eq!(int(&r, "id"), id);
    assert_eq!(
        (text(&r, "name"), text(&r, "number")),
        ("Jane Doe", "+33612345679")
    );
    assert_eq!(parsed, serde_json::from_str::<Value>(data).expect("json"));
    let r = row(&t, "contact", plain).await;
    assert_eq!(assert_contact_row(&r, t.user_id), json!({}));
}

#[tokio::test]
async fn group_rows_carry_their_contacts_and_nb_contact() {
    let t = spawn().await;
    let jane = t
        .create(
            "/api/contact/",
            &[
                ("name", "Jane"),
                ("number", "+33612345679"),
                ("data[vip]", "1"),
            ],
        )
        .await;
    let john = contact(&t, "John", "+33612345678").await;
    let both = t
        .create(
            "/api/group/",
            &[
                ("name", "Both"),
                ("contacts[]", &john.to_string()),
                ("contacts[]", &jane.to_string()),
            ],
        )
        .await;
    let empty = t.create("/api/group/", &[("name", "Empty")]).await;

    let r = row(&t, "group", both).await;
    assert_group_row(&r, t.user_id);
    assert_eq!(text(&r, "name"), "Both");
    assert_eq!(int(&r, "nb_contact"), 2);
    let members = array(&r, "contacts");
    assert_eq!(ids(members), [jane, john]);
    for m in members {
        assert_contact_row(m, t.user_id);
    }
    assert_eq!(
        assert_contact_row(&members[0], t.user_id),
        json!({"vip": "1"})
    );

    let r = row(&t, "group", empty).await;
    assert_eq!(int(&r, "nb_contact"), 0);
    assert!(array(&r, "contacts").is_empty());
}

#[tokio::test]
async fn conditional_group_rows_show_their_condition() {
    let t = spawn().await;
    let condition = "contact.gender == 'female'";
    let id = t
        .create(
            "/api/conditional_group/",
            &[("name", "Women"), ("condition", condition)],
        )
        .await;
    let r = row(&t, "conditional_group", id).await;
    assert_group_row(&r, t.user_id);
    assert_eq!(
        (text(&r, "name"), text(&r, "condition")),
        ("Women", condition)
    );
}

#[tokio::test]
async fn phone_rows_never_show_adapter_data_or_secrets() {
    let t = spawn().await;
    let id = phone(&t, "Main").await;
    let a = t.get("/api/list/phone/").await;
    assert!(!a.text.contains(PHONE_SECRET), "{}", a.text);
    assert!(!a.text.contains("adapter_data"), "{}", a.text);
    let r = row(&t, "phone", id).await;
    assert_phone_row(&r, t.user_id);
    assert_eq!(int(&r, "id"), id);
    assert_eq!(text(&r, "name"), "Main");
    assert_eq!(int(&r, "priority"), 0);
    assert_eq!(text(&r, "status"), "available");
    assert_eq!(r["limits"], json!([{"volume": 10, "startpoint": "today"}]));
}

#[tokio::test]
async fn phone_group_rows_carry_their_phones_and_nb_phone() {
    let t = spawn().await;
    let p1 = phone(&t, "P1").await;
    let p2 = phone(&t, "P2").await;
    let g = t
        .create(
            "/api/phone_group/",
            &[
                ("name", "All"),
                ("phones[]", &p2.to_string()),
                ("phones[]", &p1.to_string()),
            ],
        )
        .await;
    let a = t.get("/api/list/phone_group/").await;
    assert!(
        !a.text.contains(PHONE_SECRET) && !a.text.contains("adapter_data"),
        "{}",
        a.text
    );
    let r = row(&t, "phone_group", g).await;
    assert_group_row(&r, t.user_id);
    assert_eq!(int(&r, "nb_phone"), 2);
    let phones = array(&r, "phones");
    assert_eq!(ids(phones), [p1, p2]);
    for p in phones {
        assert_phone_row(p, t.user_id);
    }
}

#[tokio::test]
async fn webhook_rows_never_show_a_secret() {
    let t = spawn().await;
    let id = t
        .create(
            "/api/webhook/",
            &[("url", "https://example.com/hook"), ("type", "receive_sms")],
        )
        .await;
    let a = t.get("/api/list/webhook/").await;
    assert!(
        !a.text.to_ascii_lowercase().contains("secret"),
        "{}",
        a.text
    );
    assert!(!a.text.contains("whsec_"), "{}", a.text);
    let r = row(&t, "webhook", id).await;
    assert_eq!(int(&r, "id_user"), t.user_id);
    assert_dates(&r, &["created_at", "updated_at"]);
    assert_keys(
        &r,
        &[
            "id",
            "id_user",
            "url",
            "type",
            "status",
            "disabled_at",
            "failing_since",
            "created_at",
            "updated_at",
        ],
    );
    assert_eq!(
        (text(&r, "url"), text(&r, "type"), text(&r, "status")),
        ("https://example.com/hook", "receive_sms", "enabled")
    );
    assert!(r["disabled_at"].is_null() && r["failing_since"].is_null());
}

#[tokio::test]
async fn scheduled_rows_carry_numbers_contacts_groups_conditional_groups_and_medias() {
    let t = spawn().await;
    let c = contact(&t, "Jane", "+33612345679").await;
    let g = t
        .create(
            "/api/group/",
            &[("name", "G"), ("contacts[]", &c.to_string())],
        )
        .await;
    let cg = t
        .create(
            "/api/conditional_group/",
            &[("name", "CG"), ("condition", "contact.vip == '1'")],
        )
        .await;
    let p = phone(&t, "P").await;
    let id = t
        .create(
            "/api/scheduled/",
            &[
                ("text", "Hello"),
                ("numbers[0][number]", "+33612345678"),
                ("numbers[0][data]", r#"{"firstname":"Max"}"#),
                ("numbers[1][number]", "+33612345670"),
                ("contacts[]", &c.to_string()),
                ("groups[]", &g.to_string()),
                ("conditional_groups[]", &cg.to_string()),
                ("id_phone", &p.to_string()),
                ("at", "2030-01-02 03:04:05"),
                ("flash", "1"),
                ("tag", "promo"),
            ],
        )
        .await;

    let r = row(&t, "scheduled", id).await;
    assert_eq!(int(&r, "id_user"), t.user_id);
    assert_eq!(int(&r, "id_phone"), p);
    assert!(r["id_phone_group"].is_null(), "{r}");
    assert_eq!(text(&r, "at"), "2030-01-02 03:04:05");
    assert_eq!((text(&r, "text"), text(&r, "tag")), ("Hello", "promo"));
    assert!(boolean(&r, "flash"));
    assert!(!boolean(&r, "mms"));
    assert_dates(&r, &["at", "created_at", "updated_at"]);

    let numbers = array(&r, "numbers");
    assert_eq!(numbers.len(), 2, "{r}");
    for n in numbers {
        int(n, "id");
        assert_eq!(int(n, "id_scheduled"), id);
        assert_dates(n, &["created_at", "updated_at"]);
    }
    assert_eq!(text(&numbers[0], "number"), "+33612345678");
    let data: Value =
        serde_json::from_str(text(&numbers[0], "data")).expect("number data is JSON text");
    assert_eq!(data, json!({"firstname": "Max"}));
    assert_eq!(
        (text(&numbers[1], "number"), text(&numbers[1], "data")),
        ("+33612345670", "[]")
    );

    let contacts = array(&r, "contacts");
    assert_eq!(ids(contacts), [c]);
    assert_contact_row(&contacts[0], t.user_id);
    let groups = array(&r, "groups");
    assert_eq!(ids(groups), [g]);
    assert_group_row(&groups[0], t.user_id);
    let conditional = array(&r, "conditional_groups");
    assert_eq!(ids(conditional), [cg]);
    assert_eq!(text(&conditional[0], "condition"), "contact.vip == '1'");
    assert!(array(&r, "medias").is_empty());
}

#[tokio::test]
async fn scheduled_mms_lists_its_medias_and_media_rows_exist() {
    let t = spawn().await;
    let (id, media, path) = scheduled_mms(&t).await;
    let r = row(&t, "scheduled", id).await;
    assert!(boolean(&r, "mms"));
    assert_eq!(
        r["medias"],
        json!([{"id": media, "id_user": t.user_id, "path": path}])
    );

    let m = row(&t, "media", media).await;
    assert_keys(&m, &["id", "id_user", "path", "created_at", "updated_at"]);
    assert_eq!(int(&m, "id_user"), t.user_id);
    assert_eq!(text(&m, "path"), path);
    assert_dates(&m, &["created_at", "updated_at"]);
}

#[tokio::test]
async fn sended_rows_show_raspisms_statuses_and_skip_queued_messages() {
    let t = spawn().await;
    let p = phone(&t, "P").await;
    let mut expected = Vec::new();
    for (status, shown) in [
        ("sent", "unknown"),
        ("delivered", "delivered"),
        ("failed", "failed"),
        ("undelivered", "failed"),
        ("expired", "failed"),
    ] {
        expected.push((
            insert(&t, &outbound(t.user_id, p, status, "2024-03-10 12:00:00")).await,
            shown,
        ));
    }
    let queued = insert(&t, &outbound(t.user_id, p, "queued", "2024-03-10 12:00:00")).await;
    insert(&t, &inbound(t.user_id, p, "2024-03-10 12:00:00")).await;

    let rows = list(&t, "/api/list/sended/").await;
    assert!(
        !ids(&rows).contains(&queued),
        "a queued message is listed: {rows:?}"
    );
    let got: Vec<(i64, &str)> = rows
        .iter()
        .map(|r| (int(r, "id"), text(r, "status")))
        .collect();
    assert_eq!(got, expected);
    for r in &rows {
        assert_keys(
            r,
            &[
                "id",
                "id_user",
                "id_phone",
                "at",
                "text",
                "destination",
                "flash",
                "mms",
                "status",
                "uid",
                "adapter",
                "tag",
                "originating_scheduled",
                "created_at",
                "updated_at",
                "medias",
            ],
        );
        assert_eq!(int(r, "id_user"), t.user_id);
        assert_eq!(int(r, "id_phone"), p);
        assert_eq!(text(r, "at"), "2024-03-10 12:00:00");
        assert_dates(r, &["at", "created_at", "updated_at"]);
        assert_eq!(text(r, "destination"), "+33612345678");
        assert!(!boolean(r, "flash") && !boolean(r, "mms"), "{r}");
        assert_eq!(text(r, "tag"), "promo");
        assert_eq!(text(r, "adapter"), "test");
        assert!(r["originating_scheduled"].is_null(), "{r}");
        assert!(array(r, "medias").is_empty());
    }
    assert_eq!(text(&rows[0], "uid"), "uid-sent");
    assert_eq!(text(&rows[0], "text"), "sms sent");
}

#[tokio::test]
async fn received_rows_are_unread_with_medias() {
    let t = spawn().await;
    let p = phone(&t, "P").await;
    let id = insert(&t, &inbound(t.user_id, p, "2024-05-06 07:08:09")).await;
    insert(&t, &outbound(t.user_id, p, "sent", "2024-05-06 07:08:09")).await;
    let rows = list(&t, "/api/list/received/").await;
    assert_eq!(ids(&rows), [id]);
    let r = &rows[0];
    assert_keys(
        r,
        &[
            "id",
            "id_user",
            "id_phone",
            "at",
            "text",
            "origin",
            "command",
            "status",
            "mms",
            "created_at",
            "updated_at",
            "medias",
        ],
    );
    assert_eq!(int(r, "id_user"), t.user_id);
    assert_eq!(int(r, "id_phone"), p);
    assert_eq!(text(r, "at"), "2024-05-06 07:08:09");
    assert_dates(r, &["at", "created_at", "updated_at"]);
    assert_eq!(
        (text(r, "origin"), text(r, "text"), text(r, "status")),
        ("+33612345679", "incoming", "unread")
    );
    assert!(!boolean(r, "command") && !boolean(r, "mms"), "{r}");
    assert!(array(r, "medias").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Pagination

#[tokio::test]
async fn no_contacts_is_an_empty_page_without_links() {
    let t = spawn().await;
    for path in [
        "/api/list/contact/",
        "/api/list/contact",
        "/api/list/contact/0/",
    ] {
        let a = t.get(path).await;
        assert!(rows(&a).is_empty(), "{path}: {}", a.text);
        assert!(
            a.body["next"].is_null() && a.body["prev"].is_null(),
            "{path}: {}",
            a.text
        );
    }
}

#[tokio::test]
async fn exactly_25_contacts_link_next_to_an_empty_cursor_page() {
    let t = spawn().await;
    let all = contacts(&t, 25).await;
    let a = t.get("/api/list/contact/").await;
    assert_eq!(ids(rows(&a)), all);
    assert_eq!(a.body["next"], link(&t, "contact", "after", all[24]));
    assert!(a.body["prev"].is_null(), "{}", a.text);

    let a = t
        .get(path_of(&t, a.body["next"].as_str().expect("next")))
        .await;
    assert!(rows(&a).is_empty(), "{}", a.text);
    assert!(
        a.body["next"].is_null() && a.body["prev"].is_null(),
        "{}",
        a.text
    );

    let a = t.get("/api/list/contact/1/").await;
    assert!(rows(&a).is_empty(), "{}", a.text);
    assert!(a.body["next"].is_null(), "{}", a.text);
}

#[tokio::test]
async fn twenty_six_contacts_make_two_pages() {
    let t = spawn().await;
    let all = contacts(&t, 26).await;
    let a = t.get("/api/list/contact/").await;
    assert_eq!(ids(rows(&a)), all[..25]);
    assert_eq!(a.body["next"], link(&t, "contact", "after", all[24]));
    assert!(a.body["prev"].is_null(), "{}", a.text);

    let a = t.get("/api/list/contact/1/").await;
    assert_eq!(ids(rows(&a)), all[25..]);
    assert!(a.body["next"].is_null(), "{}", a.text);
    assert_eq!(a.body["prev"], link(&t, "contact", "before", all[25]));

    // A cursor page with rows links both ways, even with fewer than 25 rows.
    let a = t
        .get(&format!("/api/list/contact/before/{}/", all[5]))
        .await;
    assert_eq!(ids(rows(&a)), all[..5]);
    assert_eq!(a.body["next"], link(&t, "contact", "after", all[4]));
    assert_eq!(a.body["prev"], link(&t, "contact", "before", all[0]));
    let a = t
        .get(&format!("/api/list/contact/after/{}/", all[24]))
        .await;
    assert_eq!(ids(rows(&a)), all[25..]);
    assert!(a.body["next"].is_null(), "{}", a.text);
    assert_eq!(a.body["prev"], link(&t, "contact", "before", all[25]));
}

#[tokio::test]
async fn fifty_one_contacts_make_three_pages() {
    let t = spawn().await;
    let all = contacts(&t, 51).await;
    let pages = [
        ("/api/list/contact/", 0..25),
        ("/api/list/contact/1/", 25..50),
        ("/api/list/contact/2/", 50..51),
    ];
    for (path, range) in pages {
        let a = t.get(path).await;
        let got = ids(rows(&a));
        assert_eq!(got, all[range.clone()], "{path}");
        let expected_next = if got.len() == 25 {
            link(&t, "contact", "after", all[range.end - 1])
        } else {
            Value::Null
        };
        assert_eq!(a.body["next"], expected_next, "{path}");
        let expected_prev = if range.start > 0 {
            link(&t, "contact", "before", all[range.start])
        } else {
            Value::Null
        };
        assert_eq!(a.body["prev"], expected_prev, "{path}");
    }
    let a = t.get("/api/list/contact/3/").await;
    assert!(rows(&a).is_empty(), "{}", a.text);
    assert!(a.body["next"].is_null(), "{}", a.text);
}

#[tokio::test]
async fn following_next_visits_every_contact_once_oldest_first() {
    let t = spawn().await;
    let all = contacts(&t, 51).await;
    let mut seen = Vec::new();
    let mut path = "/api/list/contact/".to_string();
    for _ in 0..10 {
        let a = t.get(&path).await;
        seen.extend(ids(rows(&a)));
        match a.body["next"].as_str() {
            Some(next) => path = path_of(&t, next).to_string(),
            None => break,
        }
    }
    assert_eq!(seen, all);
}

#[tokio::test]
async fn before_returns_the_25_previous_contacts_in_ascending_order() {
    let t = spawn().await;
    let all = contacts(&t, 51).await;
    let a = t
        .get(&format!("/api/list/contact/before/{}/", all[40]))
        .await;
    assert_eq!(ids(rows(&a)), all[15..40]);
    assert_eq!(a.body["next"], link(&t, "contact", "after", all[39]));
    assert_eq!(a.body["prev"], link(&t, "contact", "before", all[15]));
    // Following prev from the end walks back to the start.
    let a = t
        .get(&format!("/api/list/contact/before/{}/", all[15]))
        .await;
    assert_eq!(ids(rows(&a)), all[..15]);
    let a = t
        .get(&format!("/api/list/contact/before/{}/", all[0]))
        .await;
    assert!(rows(&a).is_empty(), "{}", a.text);
    assert!(
        a.body["next"].is_null() && a.body["prev"].is_null(),
        "{}",
        a.text
    );
}

/// RaspiSMS takes `after/{id}` as `id > X` (an `?int`), so a cursor walk can start at
/// `after/0/`.
#[tokio::test]
async fn after_zero_starts_from_the_first_contact() {
    let t = spawn().await;
    let all = contacts(&t, 26).await;
    let a = t.get("/api/list/contact/after/0/").await;
    assert_eq!(ids(rows(&a)), all[..25]);
    assert_eq!(a.body["next"], link(&t, "contact", "after", all[24]));
}

#[tokio::test]
async fn links_never_carry_the_api_key() {
    let t = spawn().await;
    let all = contacts(&t, 26).await;
    for path in [
        "/api/list/contact/".to_string(),
        "/api/list/contact/1/".to_string(),
        format!("/api/list/contact/after/{}/", all[0]),
        format!("/api/list/contact/before/{}/", all[25]),
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let a = answer(
            t.client
                .get(t.url(&format!("{path}{sep}api_key={}", t.key))),
        )
        .await;
        assert!(!rows(&a).is_empty(), "{path}");
        let links: Vec<&str> = ["next", "prev"]
            .iter()
            .filter_map(|k| a.body[*k].as_str())
            .collect();
        assert!(!links.is_empty(), "{path}: {}", a.text);
        for l in links {
            assert!(!l.contains(&t.key) && !l.contains("api_key"), "{path}: {l}");
            assert!(
                l.starts_with(&format!("{}/api/list/contact/", t.base)),
                "{l}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors and scoping

#[tokio::test]
async fn unknown_entry_type_is_error_2_with_http_404() {
    let t = spawn().await;
    for path in [
        "/api/list/sms/",
        "/api/list/contacts/",
        "/api/list/user/1/",
        "/api/list/CONTACT/",
        "/api/list/nope/after/1/",
    ] {
        let a = t.get(path).await;
        assert_eq!((a.status, a.error_code()), (404, 2), "{path}: {}", a.text);
        assert!(a.message().starts_with(INVALID), "{path}: {}", a.message());
        assert!(a.body["response"].is_null(), "{path}: {}", a.text);
    }
}

#[tokio::test]
async fn non_numeric_page_or_cursor_is_error_2_with_http_404() {
    let t = spawn().await;
    contacts(&t, 1).await;
    for path in [
        "/api/list/contact/abc/",
        "/api/list/contact/1.5/",
        "/api/list/contact/after/x/",
        "/api/list/contact/before/x/",
    ] {
        let a = t.get(path).await;
        assert_eq!((a.status, a.error_code()), (404, 2), "{path}: {}", a.text);
        assert!(a.message().starts_with(INVALID), "{path}: {}", a.message());
    }
}

#[tokio::test]
async fn another_user_sees_none_of_the_first_users_rows() {
    let t = spawn().await;
    let c = contact(&t, "Jane", "+33612345679").await;
    t.create(
        "/api/group/",
        &[("name", "G"), ("contacts[]", &c.to_string())],
    )
    .await;
    t.create(
        "/api/conditional_group/",
        &[("name", "CG"), ("condition", "contact.vip == '1'")],
    )
    .await;
    let p = phone(&t, "P").await;
    t.create(
        "/api/phone_group/",
        &[("name", "PG"), ("phones[]", &p.to_string())],
    )
    .await;
    t.create(
        "/api/webhook/",
        &[("url", "https://example.com/hook"), ("type", "send_sms")],
    )
    .await;
    t.create(
        "/api/scheduled/",
        &[
            ("text", "hi"),
            ("contacts[]", &c.to_string()),
            ("at", "2030-01-01 00:00:00"),
        ],
    )
    .await;
    scheduled_mms(&t).await;
    insert(
        &t,
        &outbound(t.user_id, p, "delivered", "2024-03-10 12:00:00"),
    )
    .await;
    insert(&t, &inbound(t.user_id, p, "2024-03-10 12:00:00")).await;

    let bob = t.other_user("bob@example.com").await;
    let bob_id = user_id(&t, &bob).await;
    for kind in ENTRY_TYPES {
        let mine = list(&t, &format!("/api/list/{kind}/")).await;
        assert!(!mine.is_empty(), "alice has no {kind}");
        for path in [
            format!("/api/list/{kind}/"),
            format!("/api/list/{kind}/0/"),
            format!("/api/list/{kind}/before/1000000/"),
            format!("/api/list/{kind}/after/1/"),
        ] {
            let a = t.get_as(&bob, &path).await;
            assert!(
                rows(&a).is_empty(),
                "bob sees alice's rows at {path}: {}",
                a.text
            );
            assert!(!a.text.contains("Jane"), "{path}: {}", a.text);
        }
    }
    // Bob's own rows are his alone.
    let theirs = t
        .post_as(
            &bob,
            "/api/contact/",
            &[("name", "Bob's"), ("number", "+33612345670")],
        )
        .await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    let bob_rows = rows(&t.get_as(&bob, "/api/list/contact/").await).clone();
    assert_eq!(bob_rows.len(), 1);
    assert_eq!(int(&bob_rows[0], "id_user"), bob_id);
    assert_eq!(ids(&list(&t, "/api/list/contact/").await), [c]);
}
