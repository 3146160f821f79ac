//! The C# program of the OVH SMS guide (the seed, "Envoyer des SMS avec l'API OVH en c#"),
//! ported line for line: `getSmsAccount()` (`GET …/1.0/sms/`) and `sendSms()`
//! (`POST …/1.0/sms/{serviceName}/jobs/` with the seed's body verbatim), each signing by hand
//! as the C# does: the timestamp from the local clock (no `/auth/time`), `"$1$"` + SHA1 of
//! `AS+CK+METHOD+QUERY+BODY+TSTAMP` joined by `+`, QUERY the full URL with its trailing slash,
//! `Content-Type: application/json` on both. Only the host (→ the test server), the keys
//! (→ credentials made for the test account) and the service name (→ the one listed) change.
//!
//! SHA1 is computed with the `sha1` crate, as `System.Security.Cryptography.SHA1` does for the
//! C#: not with Pigeon's own signature code, so a mistake there cannot hide.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::helpers::{TestApp, spawn_sending};

/// `String QUERY = "https://eu.api.ovh.com/1.0/sms/";` (getSmsAccount).
const SEED_ACCOUNT_QUERY: &str = "https://eu.api.ovh.com/1.0/sms/";
/// `String QUERY = "https://eu.api.ovh.com/1.0/sms/"+ServiceName+"/jobs/";` (sendSms).
const SEED_JOBS_QUERY: (&str, &str) = ("https://eu.api.ovh.com/1.0/sms/", "/jobs/");
const SEED_HOST: &str = "https://eu.api.ovh.com";
/// The C# verbatim string `@"{ ""charset"": …}"` with its doubled quotes undone (two spaces
/// before `senderForResponse`, as printed).
const SEED_BODY: &str = r#"{ "charset": "UTF-8", "receivers": [ "+33660000000" ], "message": "Test SMS OVH", "priority": "high",  "senderForResponse": true}"#;

/// The keys the C# program fills in (`your_app_key` …).
struct Keys {
    ak: String,
    r#as: String,
    ck: String,
}

/// What the C# prints: the signature, then the answer (or `Error : ` and the error body).
#[derive(Debug)]
struct Call {
    signature: String,
    status: u16,
    result: String,
}

impl Call {
    fn json(&self) -> Value {
        serde_json::from_str(&self.result)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.result))
    }
}

/// `HashSHA1(sInputString)`: lowercase hex of SHA1 over the UTF-8 bytes.
fn hash_sha1(input: &str) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(input.as_bytes()))
}

/// `(Int32)(DateTime.UtcNow.Subtract(new DateTime(1970, 1, 1))).TotalSeconds`.
fn unix_timestamp() -> i32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i32::try_from(secs).expect("before 2038")
}

/// The body of `getSmsAccount()` and `sendSms()`: sign, send with the four headers, read.
async fn call(keys: &Keys, method: &str, query: &str, body: &str) -> Call {
    let tstamp = unix_timestamp().to_string();
    let signature = format!(
        "$1${}",
        hash_sha1(&format!(
            "{}+{}+{}+{}+{}+{}",
            keys.r#as, keys.ck, method, query, body, tstamp
        ))
    );
    println!("{signature}");
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().expect("method"), query)
        .header("Content-Type", "application/json")
        .header("X-Ovh-Application", &keys.ak)
        .header("X-Ovh-Consumer", &keys.ck)
        .header("X-Ovh-Signature", &signature)
        .header("X-Ovh-Timestamp", &tstamp);
    if method == "POST" {
        // HttpWebRequest's default for a request with a body (.NET Framework).
        req = req.header("Expect", "100-continue").body(body.to_string());
    }
    let response = req.send().await.expect("the request");
    let status = response.status().as_u16();
    let result = response.text().await.expect("the body").trim().to_string();
    if (200..300).contains(&status) {
        println!("{result}");
    } else {
        println!("Error : ");
        println!("{result}");
    }
    Call {
        signature,
        status,
        result,
    }
}

/// `getSmsAccount()` with QUERY on the test server.
async fn get_sms_account(t: &TestApp, keys: &Keys) -> Call {
    let query = SEED_ACCOUNT_QUERY.replace(SEED_HOST, &t.base);
    call(keys, "GET", &query, "").await
}

/// `sendSms()` with QUERY on the test server.
async fn send_sms(t: &TestApp, keys: &Keys, service_name: &str) -> Call {
    let query = format!("{}{service_name}{}", SEED_JOBS_QUERY.0, SEED_JOBS_QUERY.1)
        .replace(SEED_HOST, &t.base);
    call(keys, "POST", &query, SEED_BODY).await
}

#[tokio::test]
async fn the_seed_csharp_program_lists_the_account_and_sends() {
    let t = spawn_sending().await;
    t.create("/api/phone/", &[("name", "test"), ("adapter", "test")])
        .await;
    let credentials = pigeon::services::ovh::create_credentials(&t.app, t.user_id)
        .await
        .expect("OVH credentials for the test account");
    let keys = Keys {
        ak: credentials.application_key.clone(),
        r#as: credentials.application_secret.clone(),
        ck: credentials.consumer_key.clone(),
    };

    // getSmsAccount(): the seed shows `["sms-XX0000-1"]`; the test account is alice@example.com.
    let account = get_sms_account(&t, &keys).await;
    assert!(account.signature.starts_with("$1$") && account.signature.len() == 43);
    assert_eq!(account.status, 200, "GET /1.0/sms/: {}", account.result);
    assert_eq!(
        account.json(),
        serde_json::json!(["sms-alice-1"]),
        "{}",
        account.result
    );
    let service_name = account.json()[0]
        .as_str()
        .expect("a service name")
        .to_string();

    // sendSms(): one receiver, no sender (senderForResponse), the STOP mention added.
    let sent = send_sms(&t, &keys, &service_name).await;
    assert_eq!(
        sent.status, 200,
        "POST /1.0/sms/{service_name}/jobs/: {}",
        sent.result
    );
    let job = sent.json();
    let ids = job["ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 1, "{}", sent.result);
    assert!(ids[0].is_i64(), "{}", sent.result);
    assert_eq!(
        job["validReceivers"],
        serde_json::json!(["+33660000000"]),
        "{}",
        sent.result
    );
    assert_eq!(
        job["invalidReceivers"],
        serde_json::json!([]),
        "{}",
        sent.result
    );
    assert_eq!(
        job["totalCreditsRemoved"], 1,
        "`Test SMS OVH` and the STOP mention make one part: {}",
        sent.result
    );
    let stored = t
        .sql("SELECT destination, text FROM messages WHERE direction = 'outbound'")
        .await;
    assert_eq!(stored.len(), 1, "one message for one receiver: {stored:?}");
    assert_eq!(stored[0]["destination"], "+33660000000", "{stored:?}");
    assert!(
        stored[0]["text"]
            .as_str()
            .is_some_and(|text| text.starts_with("Test SMS OVH\n") && text.len() > 13),
        "the STOP mention goes on a new line: {stored:?}"
    );

    // The same GET signed with another application secret.
    let wrong = Keys {
        ak: keys.ak.clone(),
        r#as: format!("{}x", keys.r#as),
        ck: keys.ck.clone(),
    };
    let refused = get_sms_account(&t, &wrong).await;
    assert_eq!(refused.status, 403, "{}", refused.result);
    assert_eq!(
        refused.json(),
        serde_json::json!({"message": "Invalid signature", "errorCode": "INVALID_CREDENTIAL"}),
        "{}",
        refused.result
    );
}
