//! The Astandes seed's curl examples, run with the real `curl` through a real shell against
//! Pigeon, their answers compared with the seed's.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::astandes::{
    FOREIGN_ID, assert_device, assert_message, device, get, id, keys, mark_online, ms, statuses,
};
use crate::helpers::{Curl, TestApp, spawn};

const SEED_HOST: &str = "https://astandes.com.br";
const SEED_KEY: &str = "ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx...";

const SEED_AUTH: &str = r#"curl https://astandes.com.br/api/v1/auth \
-X GET \
-H "Authorization: tokenv1  ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx...""#;
const SEED_CREATE_DEVICE: &str = r#"curl https://astandes.com.br/api/v1/device \
-X POST \
-H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx..." \
-d \
'{"phone": "+551181169093"}'"#;
const SEED_CREATE_DEVICE_ANSWER: &str = r#"{
 "description": "Device para demonstração",
 "firstname": "Demo",
 "lastname": "Astandes",
 "notification": "https://astandes.com.br",
 "phone": "",
 "email": "",
 "created": "2015-02-03T17:22:39.506Z",
 "updated": "2015-02-03T17:22:39.506Z",
 "attached": false,
 "_id": "54d103df29ba4e502b2e4e9a"
}"#;
const SEED_LIST_DEVICES: &str = r#"curl https://astandes.com.br/api/v1/device?attached=false \
 -X GET \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx...""#;
const SEED_LIST_DEVICES_ANSWER: &str = r#"{
 "skip": 0,
 "limit": 100,
 "sort": "-updated",
 "total": 1,
 "length": 1,
 "result": [
			 {
			     "_id": "54d103df29ba4e502b2e4e9a",
			     "description": "Device para demonstração",
			     "firstname": "Demo",
			     "lastname": "Astandes",
			     "notification": "https://astandes.com.br",
			     "phone": "",
			     "email": "",
			     "created": "2015-02-03T17:22:39.506Z",
			     "updated": "2015-02-03T17:22:39.506Z",
			     "attached": false
		     }
	     ]
}"#;
const SEED_DELETE_DEVICE: &str = r#"curl https://astandes.com.br/api/v1/device/54d103df29ba4e502b2e4e9a \
 -X DELETE \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx...""#;
const SEED_ATTACH: &str = r#"curl https://astandes.com.br/api/v1/attach \
 -X POST \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx..." \
 -d \
 '{"device": "54d103df29ba4e502b2e4e9a"}'"#;
const SEED_ATTACH_ANSWER: &str = r#"{
 "expires": "2015-02-03T19:29:05.180Z",
 "created": "2015-02-03T19:14:05.181Z",
 "code": "1453210",
 "device": {
		     "_id": "54d103df29ba4e502b2e...",
		     "description": "Device para demonstração",
		     "firstname": "Demo",
		     "lastname": "Astandes",
		     "notification": "https://astandes.com.br",
		     "phone": "",
		     "email": "",
		     "created": "2015-02-03T17:22:39.506Z",
		     "updated": "2015-02-03T17:22:39.506Z",
		     "attached": false
		   },
 "_id": "54d11dfde3b75236306..."
}"#;
const SEED_SEND: &str = r#"curl https://astandes.com.br/api/v1/message \
 -X POST \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx..." \
 -d \
 '{
 "device": "54d103df29ba4e502b2...",
 "phone": "+5511999999999",
 "text": "Hello world!"
 }'"#;
const SEED_SEND_RANDOM: &str = r#"curl https://astandes.com.br/api/v1/message \
 -X POST \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx..." \
 -d \
 '{
 "device":{"distribute":"random"},
 "phone": "+5511999999999",
 "text": "Hello world!"
 }'"#;
const SEED_SEND_ANSWER: &str = r#"{
 "device": {
		     "_id": "54d103df29ba4e502b2e4e9a",
		     "description": "Device para demonstração",
		     "firstname": "Demo",
		     "lastname": "Astandes",
		     "notification": "https://astandes.com.br",
		     "phone": "",
		     "email": "",
		     "created": "2015-02-03T17:22:39.506Z",
		     "updated": "2015-02-04T12:18:47.255Z",
		     "attached": true
 },
 "phone": "+5511999999999",
 "text": "Hello world!",
 "identifier": "",
 "maxtries": 1,
 "notification": "",
 "created": "2015-02-04T12:19:20.345Z",
 "debug": false,
 "updated": "2015-02-04T12:19:20.346Z",
 "status": 201,
 "history": [
		     {
			     "status": 201,
			     "date": "2015-02-04T12:19:20.346Z"
		     }
		    ],
 "ttl": "2015-02-05T12:19:20.346Z",
 "_id": "54d20e4880a811151fc16f6c"
}"#;
const SEED_BULK: &str = r#"curl https://astandes.com.br/api/v1/message/bulk \
 -X POST \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx..." \
 -d \
 '{"messages":[ 
	{"device": "54d103df29ba4e502b2...",
    "phone": "+5511999991111",
    "text": "Hello world 1!"
    },
    {"device": "54d103df29ba4e502b2...",
    "phone": "+5511999992222",
    "text": "Hello world 2!"
    },
    {"device": "54d103df29ba4e502b2...",
    "phone": "+5511999993333",
    "text": "Hello world 3!"
    }
 ]}'"#;
/// The first of the three items of the seed's bulk answer (the others have the same keys).
const SEED_BULK_ANSWER_ITEM: &str = r#"{"device":
    {
		"_id":"54ece955f3a15ecf58...",
	    "firstname":"Demo",
		"lastname":"Astandes",
		"phone":"011999999999",
		"description":"",
		"notification":"",
		"email":"",
		"created":"2015-02-24T21:12:53.481Z",
		"updated":"2015-02-24T21:13:22.067Z",
		"attached":true
	},
	"phone":"011999991111",
	"text":"Hello World 1",
	"ttl":"2015-03-19T16:48:15.076Z",
	"notification":"http://seudominio.com.br/status.php",
	"identifier":"",
	"maxtries":1,
	"debug":false,
	"status":201,
	"created":"2015-03-19T16:47:15.076Z",
	"updated":"2015-03-19T16:47:15.076Z",
	"history":[
				{
					"status":201,"date":"2015-03-19T16:47:15.076Z"
				}
			  ],
	"_id":"550afd935d6c046...."
}"#;
const SEED_LIST_MESSAGES: &str = r#"curl https://astandes.com.br/api/v1/message?debug=false \
 -X GET \
 -H "Authorization: tokenv1
ABBdC1SZ1MZRmwMQelUemcLPAQgb5969uTnkRwImaeEW57lD/33Ue/3Wsx...""#;
const SEED_LIST_MESSAGES_ANSWER: &str = r#"{
 "skip": 0,
 "limit": 100,
 "sort": "-updated",
 "total": 1,
 "length": 1,
 "result": [{
 "_id": "54d20e4880a811151fc16f6c",
 "device": {
 "_id": "54d103df29ba4e502b2e4e9a",
 "description": "Device para demonstração",
 "firstname": "Demo",
 "lastname": "Astandes",
 "notification": "https://astandes.com.br",
 "phone": "",
 "email": "",
 "created": "2015-02-03T17:22:39.506Z",
 "updated": "2015-02-04T12:18:47.255Z",
 "attached": true
 },
 "destination": "+5511999999999",
 "text": "Hello world",
 "identifier": "",
 "maxtries": 1,
 "notification": "",
 "created": "2015-02-04T12:19:20.345Z",
 "debug": false,
 "updated": "2015-02-04T12:19:20.346Z",
 "status": 201,
 "history": [{
 "status": 201,
 "date": "2015-02-04T12:19:20.346Z"
 }],
 "ttl": "2015-02-05T12:19:20.346Z"
 }]
}"#;

/// The seed's command with the host, the key and the example ids (`(seed, real)`) replaced.
fn localized(t: &TestApp, command: &str, ids: &[(&str, &str)]) -> String {
    assert!(
        t.key.bytes().all(|b| b.is_ascii_alphanumeric()),
        "the key must be safe inside the seed's double quotes"
    );
    let mut line = command
        .replace(SEED_HOST, &t.base)
        .replace(SEED_KEY, &t.key);
    for (seed, real) in ids {
        assert!(line.contains(seed), "{seed} not in {line}");
        line = line.replace(seed, real);
    }
    line
}

/// The seed prints the `Authorization` header broken after `tokenv1`: the newline is inside
/// the double quotes, so curl sends it within the header (see
/// `seed_headers_broken_over_two_lines_are_not_http`). What the seed means is one line.
fn as_meant(command: &str) -> String {
    command.replace(
        &format!("tokenv1\n{SEED_KEY}"),
        &format!("tokenv1 {SEED_KEY}"),
    )
}

/// Runs a (localized) seed command with `sh`, adding only the options that print the status.
async fn sh_curl(line: &str) -> Curl {
    let rest = line.strip_prefix("curl ").expect("a curl command");
    let script = format!("curl -s -S -w '\\n%{{http_code}}' {rest}");
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .expect("run sh");
    Curl::from_output(out, &script)
}

/// Runs a seed example as the seed means it.
async fn run(t: &TestApp, command: &str, ids: &[(&str, &str)]) -> Curl {
    sh_curl(&localized(t, &as_meant(command), ids)).await
}

fn seed(text: &str) -> Value {
    serde_json::from_str(text).expect("the seed's answer is JSON")
}

/// Pigeon gives both names of the other party, `phone` and `destination`, where each seed
/// example shows one of them.
fn assert_message_keys_as_seed(got: &Value, seed: &Value) {
    let (got, seed) = (keys(got), keys(seed));
    assert!(seed.is_subset(&got), "{seed:?} not in {got:?}");
    let extra: BTreeSet<&str> = got.difference(&seed).copied().collect();
    assert!(
        extra.is_subset(&BTreeSet::from(["phone", "destination"])),
        "{extra:?}"
    );
}

#[tokio::test]
async fn seed_headers_broken_over_two_lines_are_not_http() {
    let t = spawn().await;
    assert!(SEED_CREATE_DEVICE.contains(&format!("tokenv1\n{SEED_KEY}")));
    let got = sh_curl(&localized(&t, SEED_CREATE_DEVICE, &[])).await;
    // The key's line is a header line without a colon: the HTTP layer refuses the request.
    assert_eq!(got.status, 400, "{}", got.text);
    assert_eq!(get(&t, "/api/v1/device").await.body["total"], json!(0));
    // Meant as one line, it works.
    assert_eq!(run(&t, SEED_CREATE_DEVICE, &[]).await.status, 201);
}

#[tokio::test]
async fn seed_auth() {
    let t = spawn().await;
    // This one is printed on one line (with two spaces after tokenv1): run exactly.
    let got = sh_curl(&localized(&t, SEED_AUTH, &[])).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["ok"], json!(true), "{}", got.text);
    assert_eq!(got.body["email"], "alice@example.com");
}

#[tokio::test]
async fn seed_create_list_and_delete_a_device() {
    let t = spawn().await;
    let got = run(&t, SEED_CREATE_DEVICE, &[]).await;
    assert_eq!(got.status, 201, "{}", got.text);
    assert_eq!(keys(&got.body), keys(&seed(SEED_CREATE_DEVICE_ANSWER)));
    assert_device(&got.body);
    assert_eq!(got.body["phone"], "+551181169093");
    assert_eq!(got.body["attached"], json!(false));
    let created = got.body;

    let got = run(&t, SEED_LIST_DEVICES, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let expected = seed(SEED_LIST_DEVICES_ANSWER);
    assert_eq!(keys(&got.body), keys(&expected));
    for k in ["skip", "limit", "sort", "total", "length"] {
        assert_eq!(got.body[k], expected[k], "{k}: {}", got.text);
    }
    assert_eq!(keys(&got.body["result"][0]), keys(&expected["result"][0]));
    assert_eq!(got.body["result"][0], created);

    let got = run(&t, SEED_DELETE_DEVICE, &[(FOREIGN_ID, id(&created))]).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let got = run(&t, SEED_LIST_DEVICES, &[]).await;
    assert_eq!(
        (&got.body["total"], &got.body["result"]),
        (&json!(0), &json!([]))
    );
    // The seed's id itself, never issued by Pigeon, is refused as malformed.
    let got = run(&t, SEED_DELETE_DEVICE, &[]).await;
    assert_eq!(got.status, 400, "{}", got.text);
}

#[tokio::test]
async fn seed_attach() {
    let t = spawn().await;
    let d = device(
        &t,
        json!({"description": "Device para demonstração", "firstname": "Demo", "lastname": "Astandes", "notification": "https://astandes.com.br"}),
    )
    .await;
    let got = run(&t, SEED_ATTACH, &[(FOREIGN_ID, id(&d))]).await;
    assert!(got.status == 200 || got.status == 201, "{}", got.text);
    let expected = seed(SEED_ATTACH_ANSWER);
    assert_eq!(keys(&got.body), keys(&expected));
    assert_eq!(keys(&got.body["device"]), keys(&expected["device"]));
    let code = got.body["code"].as_str().expect("code");
    assert!(code.len() == 7 && code.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        ms(&got.body["expires"]) - ms(&got.body["created"]),
        15 * 60 * 1000
    );
    assert_eq!(got.body["device"], d);
}

#[tokio::test]
async fn seed_send_through_a_device_and_at_random() {
    let t = spawn().await;
    let d = device(
        &t,
        json!({"description": "Device para demonstração", "firstname": "Demo", "lastname": "Astandes", "notification": "https://astandes.com.br"}),
    )
    .await;
    mark_online(&t, &d).await;
    let expected = seed(SEED_SEND_ANSWER);
    for got in [
        run(&t, SEED_SEND, &[("54d103df29ba4e502b2...", id(&d))]).await,
        run(&t, SEED_SEND_RANDOM, &[]).await,
    ] {
        assert_eq!(got.status, 201, "{}", got.text);
        assert_message(&got.body);
        assert_message_keys_as_seed(&got.body, &expected);
        assert_eq!(keys(&got.body["device"]), keys(&expected["device"]));
        for k in [
            "phone",
            "text",
            "identifier",
            "maxtries",
            "notification",
            "debug",
            "status",
        ] {
            assert_eq!(got.body[k], expected[k], "{k}: {}", got.text);
        }
        assert_eq!(statuses(&got.body), [201]);
        assert_eq!(got.body["device"]["_id"], d["_id"]);
        for k in [
            "description",
            "firstname",
            "lastname",
            "notification",
            "attached",
        ] {
            assert_eq!(got.body["device"][k], expected["device"][k], "{k}");
        }
    }
}

#[tokio::test]
async fn seed_bulk_and_list_messages() {
    let t = spawn().await;
    let d = device(&t, json!({"firstname": "Demo", "lastname": "Astandes"})).await;
    mark_online(&t, &d).await;
    let got = run(&t, SEED_BULK, &[("54d103df29ba4e502b2...", id(&d))]).await;
    assert!(got.status == 200 || got.status == 201, "{}", got.text);
    let items = got
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", got.text));
    assert_eq!(items.len(), 3);
    let expected = seed(SEED_BULK_ANSWER_ITEM);
    for (i, m) in items.iter().enumerate() {
        assert_message(m);
        assert_message_keys_as_seed(m, &expected);
        assert_eq!(keys(&m["device"]), keys(&expected["device"]));
        assert_eq!(m["phone"], format!("+551199999{0}{0}{0}{0}", i + 1));
        assert_eq!(m["text"], format!("Hello world {}!", i + 1));
        for k in ["identifier", "maxtries", "debug", "status"] {
            assert_eq!(m[k], expected[k], "{k}");
        }
        assert_eq!(m["device"]["_id"], d["_id"]);
    }

    let got = run(&t, SEED_LIST_MESSAGES, &[]).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let expected = seed(SEED_LIST_MESSAGES_ANSWER);
    assert_eq!(keys(&got.body), keys(&expected));
    for k in ["skip", "limit", "sort"] {
        assert_eq!(got.body[k], expected[k], "{k}");
    }
    assert_eq!(
        (&got.body["total"], &got.body["length"]),
        (&json!(3), &json!(3))
    );
    let rows = got.body["result"].as_array().expect("result");
    for row in rows {
        assert_message_keys_as_seed(row, &expected["result"][0]);
        assert_eq!(keys(&row["device"]), keys(&expected["result"][0]["device"]));
    }
    let mut listed: Vec<&Value> = rows.iter().map(|r| &r["_id"]).collect();
    let mut sent: Vec<&Value> = items.iter().map(|m| &m["_id"]).collect();
    listed.sort_by_key(|v| v.to_string());
    sent.sort_by_key(|v| v.to_string());
    assert_eq!(listed, sent);
}
