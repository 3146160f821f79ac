//! The curl examples of the RaspiSMS API documentation (the seed), run verbatim with the real
//! `curl` binary: only the host (→ the test server) and the API key (→ the test user's) are
//! replaced, plus the example ids where the test cannot know them in advance.

use serde_json::{Value, json};

use crate::helpers::{Curl, TestApp, spawn};

const SEED_KEY: &str = "ac122e8d46faac0615c181b93d07612d";
const SEED_HOSTS: [&str; 2] = ["https://app.raspisms.fr", "http://127.0.0.1/raspisms"];

const LIST_CONTACTS: &str = "curl https://app.raspisms.fr/api/list/contact/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d'";
const LIST_CONTACTS_ANSWER: &str = r#"{
"error":0,
"message":null,
"response":[
{
"id":"11",
"id_user":"3",
"name":"Jane Doe",
"number":"+33612345679",
"data":"{\"lastname\":\"Doe\",\"firstname\":\"Jane\",\"birthdate\":\"1992-08-15\",\"gender\":\"female\",\"vip\":\"0\"}"
},
{
"id":"12",
"id_user":"3",
"name":"John Doe",
"number":"+33612345678",
"data":"{\"lastname\":\"Doe\",\"firstname\":\"John\",\"birthdate\":\"1990-10-22\",\"gender\":\"male\",\"vip\":\"1\"}"
}
],
"next":null,
"prev":null
}"#;
const DELETE_SCHEDULED: &str = "curl -X DELETE https://app.raspisms.fr/api/scheduled/13 -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d'";
const CREATE_SCHEDULED_1: &str = "curl -X POST https://app.raspisms.fr/api/scheduled/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d' -d 'text=Mon%20SMS%20d%27exemple' -d 'numbers=%2B33612345678'";
/// As printed in the seed: the quote before `contacts[]=11` is missing.
const CREATE_SCHEDULED_2_PRINTED: &str = "curl -X POST https://app.raspisms.fr/api/scheduled/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d' -d 'text=Mon%20SMS%20d%27exemple' -d contacts[]=11' -d 'contacts[]=12' -d 'id_phone=3' -d 'at=2020-06-17 17:30:25'";
/// What the seed means.
const CREATE_SCHEDULED_2: &str = "curl -X POST https://app.raspisms.fr/api/scheduled/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d' -d 'text=Mon%20SMS%20d%27exemple' -d 'contacts[]=11' -d 'contacts[]=12' -d 'id_phone=3' -d 'at=2020-06-17 17:30:25'";
const DELETE_PHONE: &str = "curl -X DELETE https://app.raspisms.fr/api/phone/42 -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d'";
const CREATE_PHONE_1: &str = r"curl -X POST https://app.raspisms.fr/api/phone/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d' -d 'name=Test phone' -d 'adapter=adapters\TestAdapter'";
const CREATE_PHONE_2: &str = r"curl -X POST http://127.0.0.1/raspisms/api/phone/ -H 'X-Api-Key: ac122e8d46faac0615c181b93d07612d' -d 'name=My Octopush Phone' -d 'adapter=adapters\OctopushShortcodeAdapter' -d 'adapter_data[login]=mail@example.com' -d 'adapter_data[api_key]=4Vnc9rDqFcJxp6ywBMtIydtFEsQ0J13RXG8Ms96F'";

// ---------------------------------------------------------------------------------------------
// Running curl

/// Reads what RaspiSMS answers.
trait CreatedId {
    fn created_id(&self) -> i64;
}

impl CreatedId for Curl {
    /// The new id of a successful create, after checking the whole answer is RaspiSMS's.
    fn created_id(&self) -> i64 {
        assert_eq!(self.status, 201, "{}", self.text);
        let id = self.body["response"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id: {}", self.text));
        assert_eq!(
            self.text,
            format!(r#"{{"error":0,"message":null,"response":{id},"next":null,"prev":null}}"#)
        );
        id
    }
}

/// Splits a command line into words as a POSIX shell does for what the seed uses: blanks and
/// single quotes. `None` when a quote is not closed.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return None;
    }
    words.extend(word);
    Some(words)
}

/// Runs a seed command line against the test server: host and key replaced, then `ids`
/// (`(seed text, real text)`) replaced.
async fn run(t: &TestApp, command: &str, ids: &[(&str, String)]) -> Curl {
    let mut line = command.replace(SEED_KEY, &t.key);
    for host in SEED_HOSTS {
        line = line.replace(host, &t.base);
    }
    for (seed, real) in ids {
        assert!(line.contains(seed), "{seed} not in {line}");
        line = line.replace(seed, real);
    }
    let argv = shell_words(&line).unwrap_or_else(|| panic!("unbalanced quotes in {line}"));
    assert_eq!(argv[0], "curl");
    curl(&argv[1..]).await
}

async fn curl(args: &[String]) -> Curl {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-S", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    Curl::from_output(out, &format!("curl {args:?}"))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The seed's two contacts (Jane then John, with their data); returns their ids.
async fn seed_contacts(t: &TestApp) -> (i64, i64) {
    let seed: Value = serde_json::from_str(LIST_CONTACTS_ANSWER).expect("seed answer");
    let mut ids = Vec::new();
    for row in seed["response"].as_array().expect("rows") {
        let field = |k: &str| row[k].as_str().expect("field").to_string();
        let (name, number, data) = (field("name"), field("number"), field("data"));
        ids.push(
            t.create(
                "/api/contact/",
                &[("name", &name), ("number", &number), ("data", &data)],
            )
            .await,
        );
    }
    (ids[0], ids[1])
}

/// Every id of one list, following `next` links.
async fn all_ids(t: &TestApp, kind: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut path = format!("/api/list/{kind}/");
    loop {
        let a = t.get(&path).await;
        let rows = a
            .ok()
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {}", a.text));
        ids.extend(rows.iter().map(|r| r["id"].as_i64().expect("id")));
        match a.body["next"].as_str() {
            Some(next) => {
                path = next
                    .strip_prefix(&t.base)
                    .expect("link to the server")
                    .to_string()
            }
            None => return ids,
        }
    }
}

async fn scheduled_row(t: &TestApp, id: i64) -> Value {
    let a = t.get("/api/list/scheduled/").await;
    let rows = a.ok().as_array().cloned().unwrap_or_default();
    rows.into_iter()
        .find(|r| r["id"] == json!(id))
        .unwrap_or_else(|| panic!("scheduled {id} not listed"))
}

/// Creates resources at `path` until one gets `id` (the database is fresh, ids count from 1).
async fn create_until(
    t: &TestApp,
    path: &str,
    id: i64,
    form: impl Fn(i64) -> Vec<(&'static str, String)>,
) {
    for i in 1..=id {
        let fields = form(i);
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if t.create(path, &pairs).await == id {
            return;
        }
    }
    panic!("no {path} got id {id}");
}

// ---------------------------------------------------------------------------------------------
// The seed's examples

#[tokio::test]
async fn seed_list_contacts() {
    let t = spawn().await;
    let (jane, john) = seed_contacts(&t).await;
    let seed: Value = serde_json::from_str(LIST_CONTACTS_ANSWER).expect("seed answer");
    let got = run(&t, LIST_CONTACTS, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text);
    for key in ["error", "message", "next", "prev"] {
        assert_eq!(got.body[key], seed[key], "{key}: {}", got.text);
    }
    let rows = got.body["response"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", got.text));
    let expected = seed["response"].as_array().expect("seed rows");
    assert_eq!(rows.len(), expected.len(), "{}", got.text);
    for ((row, seed_row), id) in rows.iter().zip(expected).zip([jane, john]) {
        for key in seed_row.as_object().expect("seed row").keys() {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        // Pigeon gives ids as JSON numbers where the seed (PHP < 8.1) shows strings.
        assert_eq!(row["id"], json!(id));
        assert_eq!(row["id_user"], json!(t.user_id));
        assert_eq!(
            (&row["name"], &row["number"]),
            (&seed_row["name"], &seed_row["number"])
        );
        let data = row["data"]
            .as_str()
            .unwrap_or_else(|| panic!("data is not a JSON string in {row}"));
        let seed_data: Value =
            serde_json::from_str(seed_row["data"].as_str().expect("seed data")).expect("json");
        assert_eq!(
            serde_json::from_str::<Value>(data).expect("data is JSON"),
            seed_data
        );
    }
}

#[tokio::test]
async fn seed_delete_scheduled_13() {
    let t = spawn().await;
    create_until(&t, "/api/scheduled/", 13, |i| {
        vec![
            ("text", format!("sms {i}")),
            ("numbers", "+33612345678".into()),
            ("at", "2030-01-01 00:00:00".into()),
        ]
    })
    .await;
    let got = run(&t, DELETE_SCHEDULED, &[]).await;
    assert_eq!(got.status, 204, "{}", got.text);
    assert_eq!(got.text, "");
    let left = all_ids(&t, "scheduled").await;
    assert_eq!(left, (1..=12).collect::<Vec<_>>());

    let again = run(&t, DELETE_SCHEDULED, &[]).await;
    assert_eq!(
        (again.status, &again.body["error"]),
        (400, &json!(32)),
        "{}",
        again.text
    );
    assert_eq!(again.body["message"], "Cannot delete this entry.");
}

#[tokio::test]
async fn seed_create_scheduled_example_1() {
    let t = spawn().await;
    let id = run(&t, CREATE_SCHEDULED_1, &[]).await.created_id();
    let row = scheduled_row(&t, id).await;
    assert_eq!(row["text"], "Mon SMS d'exemple");
    let numbers: Vec<&Value> = row["numbers"]
        .as_array()
        .expect("numbers")
        .iter()
        .map(|n| &n["number"])
        .collect();
    assert_eq!(numbers, [&json!("+33612345678")]);
    assert_eq!(row["flash"], json!(false));
    assert!(row["id_phone"].is_null(), "{row}");
}

#[tokio::test]
async fn seed_create_scheduled_example_2() {
    let t = spawn().await;
    assert!(
        shell_words(CREATE_SCHEDULED_2_PRINTED).is_none(),
        "the seed's quoting is broken as printed"
    );
    let (jane, john) = seed_contacts(&t).await;
    let phone = t
        .create("/api/phone/", &[("name", "Phone"), ("adapter", "test")])
        .await;
    let ids = [
        ("contacts[]=11", format!("contacts[]={jane}")),
        ("contacts[]=12", format!("contacts[]={john}")),
        ("id_phone=3", format!("id_phone={phone}")),
    ];
    let id = run(&t, CREATE_SCHEDULED_2, &ids).await.created_id();
    let row = scheduled_row(&t, id).await;
    assert_eq!(row["text"], "Mon SMS d'exemple");
    assert_eq!(row["at"], "2020-06-17 17:30:25");
    assert_eq!(row["id_phone"], json!(phone));
    let contacts: Vec<&Value> = row["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(contacts, [&json!(jane), &json!(john)]);
    assert_eq!(row["numbers"], json!([]));
}

#[tokio::test]
async fn seed_delete_phone_42() {
    let t = spawn().await;
    create_until(&t, "/api/phone/", 42, |i| {
        vec![("name", format!("Phone {i}")), ("adapter", "test".into())]
    })
    .await;
    let got = run(&t, DELETE_PHONE, &[]).await;
    assert_eq!(got.status, 204, "{}", got.text);
    assert_eq!(all_ids(&t, "phone").await, (1..=41).collect::<Vec<_>>());

    let again = run(&t, DELETE_PHONE, &[]).await;
    assert_eq!(
        (again.status, &again.body["error"]),
        (400, &json!(32)),
        "{}",
        again.text
    );
}

#[tokio::test]
async fn seed_create_phone_example_1() {
    let t = spawn().await;
    let id = run(&t, CREATE_PHONE_1, &[]).await.created_id();
    let a = t.get("/api/list/phone/").await;
    let rows = a.ok().as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{}", a.text);
    assert_eq!(
        (&rows[0]["id"], &rows[0]["name"]),
        (&json!(id), &json!("Test phone"))
    );
    assert_eq!(rows[0]["status"], "available");
}

#[tokio::test]
async fn seed_create_phone_example_2_has_no_octopush_adapter() {
    let t = spawn().await;
    let got = run(&t, CREATE_PHONE_2, &[]).await;
    assert_eq!(got.status, 400, "{}", got.text);
    assert_eq!(
        got.body,
        json!({
            "error": 2,
            "message": r#"You have specified an invalid parameter : adapter. Adapter "adapters\OctopushShortcodeAdapter" does not exists."#,
            "response": null,
            "next": null,
            "prev": null,
        })
    );
    assert!(all_ids(&t, "phone").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The key as a GET or POST parameter

#[tokio::test]
async fn api_key_as_query_or_form_parameter() {
    let t = spawn().await;
    let (jane, john) = seed_contacts(&t).await;

    let got = run(
        &t,
        "curl 'https://app.raspisms.fr/api/list/contact/?api_key=ac122e8d46faac0615c181b93d07612d'",
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let ids: Vec<&Value> = got.body["response"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| &r["id"])
        .collect();
    assert_eq!(ids, [&json!(jane), &json!(john)]);

    let id = run(
        &t,
        "curl -X POST https://app.raspisms.fr/api/scheduled/ -d api_key=ac122e8d46faac0615c181b93d07612d -d 'text=Mon%20SMS%20d%27exemple' -d 'numbers=%2B33612345678'",
        &[],
    )
    .await
    .created_id();
    assert_eq!(scheduled_row(&t, id).await["text"], "Mon SMS d'exemple");

    let got = run(
        &t,
        "curl -X DELETE 'https://app.raspisms.fr/api/scheduled/ID?api_key=ac122e8d46faac0615c181b93d07612d'",
        &[("ID", id.to_string())],
    )
    .await;
    assert_eq!(got.status, 204, "{}", got.text);
    assert!(all_ids(&t, "scheduled").await.is_empty());

    for command in [
        "curl 'https://app.raspisms.fr/api/list/contact/?api_key=0123456789abcdef0123456789abcdef'",
        "curl -X POST https://app.raspisms.fr/api/scheduled/ -d api_key=0123456789abcdef0123456789abcdef -d text=hi -d numbers=%2B33612345678",
        "curl https://app.raspisms.fr/api/list/contact/",
    ] {
        let got = run(&t, command, &[]).await;
        assert_eq!(
            (got.status, &got.body["error"]),
            (401, &json!(1)),
            "{command}: {}",
            got.text
        );
    }
    assert!(all_ids(&t, "scheduled").await.is_empty());
}
