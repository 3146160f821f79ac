//! Create / update / delete of contacts, groups, conditional groups, phone groups and webhooks
//! (`POST /api/{type}/`, `POST /api/{type}/{id}/`, `DELETE /api/{type}/{id}/`): success codes,
//! validation errors that store nothing, and ownership.

use pigeon_core::condition::Condition;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, created_id, spawn};

const INVALID: &str = "You have specified an invalid parameter : ";
const MISSING: &str = "One require parameter is missing : ";
const CANNOT_UPDATE: &str = "Cannot update this entry : ";
const CANNOT_DELETE: &str = "Cannot delete this entry.";

// ---------------------------------------------------------------------------------------------
// Helpers

/// The caller's rows of one entry type.
async fn list(t: &TestApp, key: &str, kind: &str) -> Vec<Value> {
    let a = t.get_as(key, &format!("/api/list/{kind}/")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.ok()
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {}", a.text))
}

async fn mine(t: &TestApp, kind: &str) -> Vec<Value> {
    list(t, &t.key, kind).await
}

async fn find(t: &TestApp, kind: &str, id: i64) -> Option<Value> {
    mine(t, kind)
        .await
        .into_iter()
        .find(|r| r["id"] == json!(id))
}

async fn get(t: &TestApp, kind: &str, id: i64) -> Value {
    find(t, kind, id)
        .await
        .unwrap_or_else(|| panic!("{kind} {id} is not listed"))
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().expect("id")).collect()
}

/// A POST that must be refused with `code` and HTTP 400, the message starting with `prefix`.
fn assert_refused(a: &Answer, code: i64, prefix: &str) {
    assert_eq!((a.status, a.error_code()), (400, code), "{}", a.text);
    assert!(
        a.message().starts_with(prefix),
        "message {:?} does not start with {prefix:?}",
        a.message()
    );
    assert!(a.body["response"].is_null(), "{}", a.text);
}

fn assert_updated(a: &Answer) {
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.ok(), &json!(true));
}

fn assert_deleted(a: &Answer) {
    assert_eq!(a.status, 204, "{}", a.text);
}

async fn contact(t: &TestApp, name: &str, number: &str) -> i64 {
    t.create("/api/contact/", &[("name", name), ("number", number)])
        .await
}

async fn phone(t: &TestApp, key: &str, name: &str) -> i64 {
    let a = t
        .post_as(key, "/api/phone/", &[("name", name), ("adapter", "test")])
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.ok().as_i64().expect("id")
}

/// Another account and one resource of `kind` it owns; returns (its key, the resource id).
async fn foreign(t: &TestApp, kind: &str, form: &[(&str, &str)]) -> (String, i64) {
    let bob = t.other_user("bob@example.com").await;
    let a = t.post_as(&bob, &format!("/api/{kind}/"), form).await;
    assert_eq!(a.status, 201, "{}", a.text);
    (bob.clone(), created_id(&a))
}

/// Updating and deleting another user's resource fails (128 / 32) and leaves it as it was.
async fn assert_others_cannot_touch(
    t: &TestApp,
    kind: &str,
    create: &[(&str, &str)],
    update: &[(&str, &str)],
) {
    let (bob, id) = foreign(t, kind, create).await;
    let before = list(t, &bob, kind).await;
    assert_eq!(ids(&before), [id]);

    let a = t.post(&format!("/api/{kind}/{id}/"), update).await;
    assert_refused(&a, 128, CANNOT_UPDATE);
    let a = t.delete(&format!("/api/{kind}/{id}/")).await;
    assert_refused(&a, 32, CANNOT_DELETE);

    assert_eq!(list(t, &bob, kind).await, before, "{kind} changed");
    assert!(mine(t, kind).await.is_empty(), "{kind} appeared for alice");
}

/// Create, update (→ true, 201) and delete (→ 204, then gone; deleting again → 32).
async fn assert_lifecycle(
    t: &TestApp,
    kind: &str,
    create: &[(&str, &str)],
    update: &[(&str, &str)],
) -> Value {
    let a = t.post(&format!("/api/{kind}/"), create).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = created_id(&a);
    let response = if kind == "webhook" {
        a.body["response"].clone()
    } else {
        json!(id)
    };
    assert_eq!(
        a.body,
        json!({"error": 0, "message": null, "response": response, "next": null, "prev": null})
    );
    assert!(find(t, kind, id).await.is_some(), "{kind} {id} not listed");

    assert_updated(&t.post(&format!("/api/{kind}/{id}/"), update).await);
    let updated = get(t, kind, id).await;

    assert_deleted(&t.delete(&format!("/api/{kind}/{id}/")).await);
    assert!(
        find(t, kind, id).await.is_none(),
        "{kind} {id} still listed"
    );
    assert_refused(
        &t.delete(&format!("/api/{kind}/{id}/")).await,
        32,
        CANNOT_DELETE,
    );
    assert_refused(
        &t.post(&format!("/api/{kind}/{id}/"), update).await,
        128,
        CANNOT_UPDATE,
    );
    updated
}

fn long_name() -> String {
    "n".repeat(101)
}

fn data_of(row: &Value) -> Value {
    serde_json::from_str(row["data"].as_str().expect("data is a string")).expect("data is JSON")
}

// ---------------------------------------------------------------------------------------------
// Contacts

#[tokio::test]
async fn contact_lifecycle() {
    let t = spawn().await;
    let updated = assert_lifecycle(
        &t,
        "contact",
        &[
            ("name", "Jane Doe"),
            ("number", "+33612345679"),
            ("data", r#"{"gender":"female"}"#),
        ],
        &[("name", "Jane Smith")],
    )
    .await;
    assert_eq!(updated["name"], "Jane Smith");
    assert_eq!(
        updated["number"], "+33612345679",
        "an update without number keeps it"
    );
    assert_eq!(
        data_of(&updated),
        json!({"gender": "female"}),
        "an update without data keeps it"
    );
}

#[tokio::test]
async fn contact_data_as_json_text_or_fields_and_numbers_normalised() {
    let t = spawn().await;
    let json_text = t
        .create(
            "/api/contact/",
            &[
                ("name", "A"),
                ("number", "+33 6 12 34 56 78"),
                ("data", r#"{"vip":"1","age":30}"#),
            ],
        )
        .await;
    let fields = t
        .create(
            "/api/contact/",
            &[
                ("name", "B"),
                ("number", "+33612345679"),
                ("data[vip]", "0"),
                ("data[city]", "Lyon"),
            ],
        )
        .await;
    let a = get(&t, "contact", json_text).await;
    assert_eq!(a["number"], "+33612345678");
    assert_eq!(data_of(&a), json!({"vip": "1", "age": 30}));
    assert_eq!(
        data_of(&get(&t, "contact", fields).await),
        json!({"vip": "0", "city": "Lyon"})
    );

    assert_updated(
        &t.post(
            &format!("/api/contact/{fields}/"),
            &[("data[vip]", "1"), ("number", "+32470123456")],
        )
        .await,
    );
    let b = get(&t, "contact", fields).await;
    assert_eq!(
        (&b["name"], &b["number"]),
        (&json!("B"), &json!("+32470123456"))
    );
    assert_eq!(
        data_of(&b),
        json!({"vip": "1"}),
        "given data replaces the stored object"
    );
}

#[tokio::test]
async fn contact_without_name_or_number_is_error_4() {
    let t = spawn().await;
    for (form, missing) in [
        (vec![("number", "+33612345678")], "name"),
        (vec![("name", ""), ("number", "+33612345678")], "name"),
        (vec![("name", "Jane")], "number"),
    ] {
        let a = t.post("/api/contact/", &form).await;
        assert_refused(&a, 4, MISSING);
        assert!(a.message().contains(missing), "{form:?}: {}", a.message());
    }
    assert!(mine(&t, "contact").await.is_empty());
}

#[tokio::test]
async fn contact_with_an_invalid_number_is_error_2_and_not_stored() {
    let t = spawn().await;
    for number in ["0612345678", "+331", "+33abc", "hello"] {
        let a = t
            .post("/api/contact/", &[("name", "Jane"), ("number", number)])
            .await;
        assert_refused(&a, 2, INVALID);
    }
    assert!(mine(&t, "contact").await.is_empty());
    let id = contact(&t, "Jane", "+33612345679").await;
    let a = t
        .post(&format!("/api/contact/{id}/"), &[("number", "0612345678")])
        .await;
    assert_refused(&a, 2, INVALID);
    assert_eq!(get(&t, "contact", id).await["number"], "+33612345679");
}

#[tokio::test]
async fn contact_name_must_be_unique_and_at_most_100_chars() {
    let t = spawn().await;
    let jane = contact(&t, "Jane", "+33612345679").await;
    let a = t
        .post(
            "/api/contact/",
            &[("name", "Jane"), ("number", "+33612345678")],
        )
        .await;
    assert_refused(&a, 2, INVALID);
    let john = contact(&t, "John", "+33612345678").await;
    let a = t
        .post(&format!("/api/contact/{john}/"), &[("name", "Jane")])
        .await;
    assert_refused(&a, 2, INVALID);
    assert_eq!(get(&t, "contact", john).await["name"], "John");

    let a = t
        .post(
            "/api/contact/",
            &[("name", &long_name()), ("number", "+33612345670")],
        )
        .await;
    assert_refused(&a, 2, INVALID);
    let a = t
        .post(&format!("/api/contact/{jane}/"), &[("name", &long_name())])
        .await;
    assert_refused(&a, 2, INVALID);
    assert_eq!(ids(&mine(&t, "contact").await), [jane, john]);
    contact(&t, &"n".repeat(100), "+33612345670").await;
}

#[tokio::test]
async fn contact_data_must_be_an_object() {
    let t = spawn().await;
    for data in ["[1]", "nope", "1", "\"text\"", "{broken"] {
        let a = t
            .post(
                "/api/contact/",
                &[("name", "Jane"), ("number", "+33612345679"), ("data", data)],
            )
            .await;
        assert_refused(&a, 2, INVALID);
    }
    assert!(mine(&t, "contact").await.is_empty());
    let id = t
        .create(
            "/api/contact/",
            &[
                ("name", "Jane"),
                ("number", "+33612345679"),
                ("data[a]", "1"),
            ],
        )
        .await;
    let a = t
        .post(&format!("/api/contact/{id}/"), &[("data", "[1]")])
        .await;
    assert_refused(&a, 2, INVALID);
    assert_eq!(data_of(&get(&t, "contact", id).await), json!({"a": "1"}));
}

#[tokio::test]
async fn another_users_contact_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    assert_others_cannot_touch(
        &t,
        "contact",
        &[("name", "Bob"), ("number", "+33612345678")],
        &[("name", "Hacked"), ("number", "+33612345679")],
    )
    .await;
}

#[tokio::test]
async fn unknown_ids_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    for kind in [
        "contact",
        "group",
        "conditional_group",
        "phone_group",
        "webhook",
    ] {
        let a = t.post(&format!("/api/{kind}/999/"), &[("name", "x")]).await;
        assert_refused(&a, 128, CANNOT_UPDATE);
        let a = t.delete(&format!("/api/{kind}/999/")).await;
        assert_refused(&a, 32, CANNOT_DELETE);
        assert_eq!(a.message(), CANNOT_DELETE);
    }
}

// ---------------------------------------------------------------------------------------------
// Groups

#[tokio::test]
async fn group_lifecycle_and_members() {
    let t = spawn().await;
    let jane = contact(&t, "Jane", "+33612345679").await;
    let john = contact(&t, "John", "+33612345678").await;
    let (j, o) = (jane.to_string(), john.to_string());
    let updated = assert_lifecycle(
        &t,
        "group",
        &[("name", "Family"), ("contacts[]", &j), ("contacts[]", &o)],
        &[("name", "Kin"), ("contacts[]", &o)],
    )
    .await;
    assert_eq!(updated["name"], "Kin");
    assert_eq!(
        ids(updated["contacts"].as_array().expect("contacts")),
        [john]
    );
    assert_eq!(updated["nb_contact"], 1);

    let g = t
        .create("/api/group/", &[("name", "G"), ("contacts[]", &j)])
        .await;
    assert_updated(&t.post(&format!("/api/group/{g}/"), &[("name", "G2")]).await);
    let row = get(&t, "group", g).await;
    assert_eq!(
        (&row["name"], &row["nb_contact"]),
        (&json!("G2"), &json!(1)),
        "a rename keeps the members"
    );
}

#[tokio::test]
async fn group_errors() {
    let t = spawn().await;
    let a = t.post("/api/group/", &[("contacts[]", "1")]).await;
    assert_refused(&a, 4, MISSING);
    t.create("/api/group/", &[("name", "Family")]).await;
    assert_refused(
        &t.post("/api/group/", &[("name", "Family")]).await,
        2,
        INVALID,
    );
    assert_refused(
        &t.post("/api/group/", &[("name", &long_name())]).await,
        2,
        INVALID,
    );
    assert_eq!(mine(&t, "group").await.len(), 1);
}

#[tokio::test]
async fn another_users_contacts_are_not_added_to_a_group() {
    let t = spawn().await;
    let own = contact(&t, "Jane", "+33612345679").await;
    let (_, theirs) = foreign(
        &t,
        "contact",
        &[("name", "Bob"), ("number", "+33612345678")],
    )
    .await;
    let g = t
        .create(
            "/api/group/",
            &[
                ("name", "G"),
                ("contacts[]", &theirs.to_string()),
                ("contacts[]", &own.to_string()),
            ],
        )
        .await;
    let row = get(&t, "group", g).await;
    assert_eq!(ids(row["contacts"].as_array().expect("contacts")), [own]);
    assert_eq!(row["nb_contact"], 1);
    assert!(!row.to_string().contains("Bob"), "{row}");

    assert_updated(
        &t.post(
            &format!("/api/group/{g}/"),
            &[("contacts[]", &theirs.to_string())],
        )
        .await,
    );
    let row = get(&t, "group", g).await;
    assert_eq!(
        (&row["contacts"], &row["nb_contact"]),
        (&json!([]), &json!(0))
    );
}

#[tokio::test]
async fn deleting_a_contact_removes_it_from_its_groups() {
    let t = spawn().await;
    let jane = contact(&t, "Jane", "+33612345679").await;
    let john = contact(&t, "John", "+33612345678").await;
    let g = t
        .create(
            "/api/group/",
            &[
                ("name", "G"),
                ("contacts[]", &jane.to_string()),
                ("contacts[]", &john.to_string()),
            ],
        )
        .await;
    assert_deleted(&t.delete(&format!("/api/contact/{jane}/")).await);
    let row = get(&t, "group", g).await;
    assert_eq!(ids(row["contacts"].as_array().expect("contacts")), [john]);
    assert_eq!(row["nb_contact"], 1);
}

#[tokio::test]
async fn another_users_group_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    assert_others_cannot_touch(
        &t,
        "group",
        &[("name", "Bob's group")],
        &[("name", "Hacked")],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Conditional groups

#[tokio::test]
async fn conditional_group_lifecycle() {
    let t = spawn().await;
    let updated = assert_lifecycle(
        &t,
        "conditional_group",
        &[
            ("name", "Women"),
            ("condition", "contact.gender == 'female'"),
        ],
        &[(
            "condition",
            "contact.vip == '1' and contact.gender == 'female'",
        )],
    )
    .await;
    assert_eq!(updated["name"], "Women");
    assert_eq!(
        updated["condition"],
        "contact.vip == '1' and contact.gender == 'female'"
    );
}

#[tokio::test]
async fn invalid_conditions_are_error_2_with_the_parse_error_and_not_stored() {
    let t = spawn().await;
    let kept = t
        .create(
            "/api/conditional_group/",
            &[("name", "Kept"), ("condition", "contact.vip == '1'")],
        )
        .await;
    for condition in [
        "contact.gender ==",
        "foo.bar == 1",
        "unknown_fn(contact.x)",
        "contact.vip == '1",
    ] {
        let error = Condition::parse(condition)
            .expect_err("the condition is invalid")
            .to_string();
        let expected = format!("{INVALID}condition : {error}");
        let a = t
            .post(
                "/api/conditional_group/",
                &[("name", "Bad"), ("condition", condition)],
            )
            .await;
        assert_refused(&a, 2, INVALID);
        assert_eq!(a.message(), expected, "{condition}");
        let a = t
            .post(
                &format!("/api/conditional_group/{kept}/"),
                &[("condition", condition)],
            )
            .await;
        assert_refused(&a, 2, INVALID);
        assert_eq!(a.message(), expected, "{condition}");
    }
    let rows = mine(&t, "conditional_group").await;
    assert_eq!(ids(&rows), [kept]);
    assert_eq!(rows[0]["condition"], "contact.vip == '1'");
}

#[tokio::test]
async fn conditional_group_errors() {
    let t = spawn().await;
    assert_refused(
        &t.post(
            "/api/conditional_group/",
            &[("condition", "contact.vip == '1'")],
        )
        .await,
        4,
        MISSING,
    );
    assert_refused(
        &t.post("/api/conditional_group/", &[("name", "No condition")])
            .await,
        4,
        MISSING,
    );
    t.create(
        "/api/conditional_group/",
        &[("name", "VIP"), ("condition", "contact.vip == '1'")],
    )
    .await;
    let a = t
        .post(
            "/api/conditional_group/",
            &[("name", "VIP"), ("condition", "contact.vip == '0'")],
        )
        .await;
    assert_refused(&a, 2, INVALID);
    let a = t
        .post(
            "/api/conditional_group/",
            &[("name", &long_name()), ("condition", "contact.vip == '0'")],
        )
        .await;
    assert_refused(&a, 2, INVALID);
    assert_eq!(mine(&t, "conditional_group").await.len(), 1);
}

#[tokio::test]
async fn another_users_conditional_group_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    assert_others_cannot_touch(
        &t,
        "conditional_group",
        &[("name", "Bob's"), ("condition", "contact.vip == '1'")],
        &[("condition", "contact.vip == '0'")],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Phone groups

#[tokio::test]
async fn phone_group_lifecycle_and_members() {
    let t = spawn().await;
    let p1 = phone(&t, &t.key, "P1").await.to_string();
    let p2 = phone(&t, &t.key, "P2").await;
    let updated = assert_lifecycle(
        &t,
        "phone_group",
        &[
            ("name", "All"),
            ("phones[]", &p1),
            ("phones[]", &p2.to_string()),
        ],
        &[("name", "Second"), ("phones[]", &p2.to_string())],
    )
    .await;
    assert_eq!(updated["name"], "Second");
    assert_eq!(ids(updated["phones"].as_array().expect("phones")), [p2]);
    assert_eq!(updated["nb_phone"], 1);
}

#[tokio::test]
async fn phone_group_errors_and_foreign_phones() {
    let t = spawn().await;
    let own = phone(&t, &t.key, "Mine").await;
    let bob = t.other_user("bob@example.com").await;
    let theirs = phone(&t, &bob, "Bob's").await;
    assert_refused(
        &t.post("/api/phone_group/", &[("phones[]", &own.to_string())])
            .await,
        4,
        MISSING,
    );
    let g = t
        .create(
            "/api/phone_group/",
            &[
                ("name", "G"),
                ("phones[]", &theirs.to_string()),
                ("phones[]", &own.to_string()),
            ],
        )
        .await;
    let row = get(&t, "phone_group", g).await;
    assert_eq!(ids(row["phones"].as_array().expect("phones")), [own]);
    assert_eq!(row["nb_phone"], 1);
    assert_refused(
        &t.post("/api/phone_group/", &[("name", "G")]).await,
        2,
        INVALID,
    );
    assert_refused(
        &t.post("/api/phone_group/", &[("name", &long_name())]).await,
        2,
        INVALID,
    );
    assert_eq!(ids(&mine(&t, "phone_group").await), [g]);
}

#[tokio::test]
async fn another_users_phone_group_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    assert_others_cannot_touch(
        &t,
        "phone_group",
        &[("name", "Bob's phones")],
        &[("name", "Hacked")],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Webhooks

#[tokio::test]
async fn webhook_lifecycle() {
    let t = spawn().await;
    let updated = assert_lifecycle(
        &t,
        "webhook",
        &[("url", "https://example.com/hook"), ("type", "send_sms")],
        &[("url", "http://example.org/other"), ("type", "receive_sms")],
    )
    .await;
    assert_eq!(
        (&updated["url"], &updated["type"]),
        (&json!("http://example.org/other"), &json!("receive_sms"))
    );
}

#[tokio::test]
async fn webhook_with_a_bad_url_or_type_is_error_2_and_not_stored() {
    let t = spawn().await;
    for (url, kind) in [
        ("ftp://x", "send_sms"),
        ("not a url", "send_sms"),
        ("https://", "send_sms"),
        ("https://example.com/hook", "sms_sent"),
        ("https://example.com/hook", "SEND_SMS"),
    ] {
        let a = t
            .post("/api/webhook/", &[("url", url), ("type", kind)])
            .await;
        assert_refused(&a, 2, INVALID);
    }
    assert_refused(
        &t.post("/api/webhook/", &[("type", "send_sms")]).await,
        4,
        MISSING,
    );
    assert_refused(
        &t.post("/api/webhook/", &[("url", "https://example.com/hook")])
            .await,
        4,
        MISSING,
    );
    assert!(mine(&t, "webhook").await.is_empty());

    let id = t
        .create(
            "/api/webhook/",
            &[("url", "https://example.com/hook"), ("type", "send_sms")],
        )
        .await;
    assert_refused(
        &t.post(&format!("/api/webhook/{id}/"), &[("url", "ftp://x")])
            .await,
        2,
        INVALID,
    );
    assert_refused(
        &t.post(&format!("/api/webhook/{id}/"), &[("type", "nope")])
            .await,
        2,
        INVALID,
    );
    let row = get(&t, "webhook", id).await;
    assert_eq!(
        (&row["url"], &row["type"]),
        (&json!("https://example.com/hook"), &json!("send_sms"))
    );
}

#[tokio::test]
async fn another_users_webhook_cannot_be_updated_or_deleted() {
    let t = spawn().await;
    assert_others_cannot_touch(
        &t,
        "webhook",
        &[
            ("url", "https://bob.example.com/hook"),
            ("type", "send_sms"),
        ],
        &[("url", "https://evil.example.com/")],
    )
    .await;
}

#[tokio::test]
async fn unknown_resource_type_is_error_2() {
    let t = spawn().await;
    for path in ["/api/user/", "/api/contacts/"] {
        let a = t.post(path, &[("name", "x")]).await;
        assert_refused(&a, 2, INVALID);
    }
}
