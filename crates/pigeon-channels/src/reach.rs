//! Reach by TalkyLabs (messaging API v1) as an upstream: a phone whose SMS leave through a
//! Reach applet, authenticated by the `ApiUser`/`ApiKey` header pair, with Reach's delivery
//! reports posted back to Pigeon's per-phone status URL and signed with `X-Reach-Signature`.
//!
//! A create is not idempotent at Reach, so a create whose outcome is unknown (a timeout, a
//! connection lost once the request was out, an answer Pigeon cannot read) is never repeated
//! blindly. Every create carries the message's idempotency key as `bulkIdentifier`; after such
//! a create, and before any create of a later attempt, Pigeon lists Reach's messages with that
//! identifier and adopts the one it finds instead of sending the SMS a second time.

use std::fmt;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::data::{base_url, required, timeout};
use crate::http_client::HttpClient;
use crate::test::param;
use crate::upstream::{self, CallError, read_body, settle, snippet};
use crate::{ConfigError, Context, Outgoing, Report, SendError, Sent};

const DEFAULT_BASE_URL: &str = "https://api.reach.talkylabs.com";
/// A MessageItem is a few hundred bytes and a list page of 20 a few dozen kilobytes: a larger
/// answer is not Reach's, and is not read further.
const MAX_BODY_BYTES: usize = 1 << 20;

pub struct Reach {
    /// `{base_url}/rest/messaging/v1`.
    api: String,
    api_user: String,
    api_key: String,
    src: String,
    status_callback: String,
    timeout: Duration,
    http: HttpClient,
}

// By hand: the API key and the callback URL's Pigeon API key stay out of logs.
impl fmt::Debug for Reach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reach")
            .field("api", &self.api)
            .field("api_user", &self.api_user)
            .field("src", &self.src)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The fields of a MessageItem Pigeon reads (every field is optional in Reach's schema).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageItem {
    message_id: String,
    status: Option<String>,
    bulk_id: Option<String>,
    error_message: Option<String>,
}

/// A MessageItem that names the message; anything else is not one.
fn message_item(value: Value) -> Option<MessageItem> {
    serde_json::from_value::<MessageItem>(value)
        .ok()
        .filter(|item| !item.message_id.trim().is_empty())
}

/// A list page; Pigeon needs only its messages.
#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    messages: Vec<Value>,
}

/// Reach's error body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<Value>,
    error_message: Option<String>,
}

impl Reach {
    /// Fields `api_user`, `api_key`, `src` (required), `base_url` (default Reach's), and
    /// `timeout_ms` (not in the registry: for tests and slow links; default 30 s).
    pub fn open(data: &Map<String, Value>, ctx: Context) -> Result<Reach, ConfigError> {
        let base_url = base_url(data, "base_url", DEFAULT_BASE_URL)?;
        Ok(Reach {
            api: format!("{base_url}/rest/messaging/v1"),
            api_user: required(data, "api_user")?,
            api_key: required(data, "api_key")?,
            src: required(data, "src")?,
            status_callback: ctx.status_callback_url,
            timeout: timeout(data)?,
            http: ctx.http,
        })
    }

    pub async fn send(&self, m: &Outgoing) -> Result<Sent, SendError> {
        if m.destination.trim().is_empty() {
            return Err(SendError::Permanent(
                "the message has no destination".into(),
            ));
        }
        let key = &m.idempotency_key;
        // An earlier attempt may have been taken by Reach without Pigeon learning it.
        if m.attempt > 1
            && let Some(item) = self.find(key).await?
        {
            return taken(item);
        }
        match self.create(m).await {
            Ok(sent) => Ok(sent),
            Err(CallError::Refused(e)) => Err(e),
            Err(CallError::Unknown(why)) => settle("Reach", key, &why, self.find(key).await, taken),
        }
    }

    async fn create(&self, m: &Outgoing) -> Result<Sent, CallError> {
        // The client's sender when it asked for one, else the applet's.
        let src = m
            .sender
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(&self.src);
        let form = [
            ("dest", m.destination.as_str()),
            ("src", src),
            ("body", &m.text),
            ("bulkIdentifier", &m.idempotency_key),
            ("statusCallback", &self.status_callback),
        ];
        let request = self
            .request(Method::POST, "create")
            .map_err(CallError::Refused)?;
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = response.status();
        let body = read_body(response, MAX_BODY_BYTES).await;
        if !status.is_success() {
            return Err(CallError::Refused(refusal(
                status,
                &body.unwrap_or_default(),
            )));
        }
        let body = body.map_err(|e| self.request_error(e))?;
        let item = serde_json::from_slice(&body).ok().and_then(message_item);
        match item {
            Some(item) => taken(item).map_err(CallError::Refused),
            None => Err(CallError::Unknown(format!(
                "Reach accepted the message (HTTP {}) without a message id",
                status.as_u16()
            ))),
        }
    }

    /// The message Reach holds under the bulk identifier `key`, if any.
    async fn find(&self, key: &str) -> Result<Option<MessageItem>, SendError> {
        let response = self
            .request(Method::GET, "list")?
            .query(&[("bulkIdentifier", key)])
            .send()
            .await
            .map_err(|e| self.request_error(e).into_send_error())?;
        let status = response.status();
        let body = read_body(response, MAX_BODY_BYTES).await;
        if !status.is_success() {
            return Err(refusal(status, &body.unwrap_or_default()));
        }
        let body = body.map_err(|e| self.request_error(e).into_send_error())?;
        let page: Page = serde_json::from_slice(&body).map_err(|_| {
            SendError::Transient("Reach answered the list with something else than a page".into())
        })?;
        // The echoed `bulkId` is checked too: a server that ignored the filter must not make
        // Pigeon adopt another message.
        Ok(page
            .messages
            .into_iter()
            .filter_map(message_item)
            .find(|item| item.bulk_id.as_deref() == Some(key)))
    }

    /// A request to the operation `op` with Reach's headers and the adapter's timeout.
    fn request(&self, method: Method, op: &str) -> Result<RequestBuilder, SendError> {
        let request = self
            .http
            .request(method, &format!("{}/{op}", self.api))
            .map_err(|blocked| SendError::Permanent(blocked.to_string()))?;
        Ok(request
            .header("ApiUser", &self.api_user)
            .header("ApiKey", &self.api_key)
            .header(ACCEPT, "application/json")
            // The shared client may have no timeout of its own.
            .timeout(self.timeout))
    }

    fn request_error(&self, e: reqwest::Error) -> CallError {
        CallError::request("Reach", self.timeout, &e)
    }
}

/// What Reach's MessageItem says of the send.
fn taken(item: MessageItem) -> Result<Sent, SendError> {
    if item.status.as_deref() == Some("failed") {
        let reason = item.error_message.as_deref().unwrap_or("no reason given");
        return Err(SendError::Permanent(format!(
            "Reach failed the message: {reason}"
        )));
    }
    Ok(Sent {
        provider_id: item.message_id,
    })
}

/// A non-2xx answer, with Reach's reason.
fn refusal(status: StatusCode, body: &[u8]) -> SendError {
    upstream::refusal("Reach", status, &error_text(body))
}

/// Reach's `errorMessage` (with its `errorCode`), or the start of whatever else the body is.
fn error_text(body: &[u8]) -> String {
    if let Ok(ErrorBody {
        error_code,
        error_message: Some(message),
    }) = serde_json::from_slice(body)
    {
        return match error_code {
            Some(code) if !code.is_null() => format!("{message} (error {code})"),
            _ => message,
        };
    }
    snippet(body)
}

/// Reach's status callback: `messageId` and `status` (form parameters).
pub fn parse_status(params: &[(String, String)]) -> Option<(String, Report)> {
    let id = param(params, "messageId")?.trim();
    if id.is_empty() {
        return None;
    }
    let report = match param(params, "status")?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "delivered" => Report::Delivered,
        "undelivered" => Report::Undelivered,
        "failed" | "canceled" => Report::Failed,
        "queued" | "accepted" | "scheduled" | "sending" | "sent" => Report::Pending,
        _ => return None,
    };
    Some((id.to_string(), report))
}

/// Checks a status callback's `X-Reach-Signature` (header names arrive in lowercase) against
/// the phone's API key, over the callback URL and the form parameters.
pub fn verify(
    data: &Map<String, Value>,
    url: &str,
    headers: &[(String, String)],
    form: &[(String, String)],
) -> Result<(), String> {
    let api_key = required(data, "api_key").map_err(|e| e.to_string())?;
    let signature = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-reach-signature"))
        .map(|(_, value)| value.as_str())
        .ok_or("no X-Reach-Signature header")?;
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if pigeon_core::signature::reach_valid(&api_key, url, &form, signature) {
        Ok(())
    } else {
        Err("the X-Reach-Signature does not match".into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::data::bad;
    use crate::data::{failing_field, params, test_context};

    const CALLBACK: &str = "http://pigeon.test/callback/status/reach/1?api_key=pigeon-key";

    fn context() -> Context {
        test_context(CALLBACK)
    }

    fn open(data: Value) -> Result<Reach, ConfigError> {
        match data {
            Value::Object(map) => Reach::open(&map, context()),
            _ => Err(bad("data", "not an object")),
        }
    }

    fn valid() -> Value {
        json!({"api_user": "applet-user", "api_key": "reach-secret", "src": "+33600000000"})
    }

    #[test]
    fn opens_with_defaults_and_hides_secrets() {
        let reach = open(valid()).expect("valid data");
        assert_eq!(
            reach.api,
            "https://api.reach.talkylabs.com/rest/messaging/v1"
        );
        assert_eq!(reach.status_callback, CALLBACK);
        assert_eq!(reach.timeout, Duration::from_secs(30));
        let debug = format!("{reach:?}");
        assert!(
            !debug.contains("reach-secret") && !debug.contains("pigeon-key"),
            "{debug}"
        );
    }

    #[test]
    fn reads_optional_fields() {
        let mut data = valid();
        data["base_url"] = json!("http://127.0.0.1:8080/reach/");
        data["timeout_ms"] = json!(250);
        data["src"] = json!(33600000000u64);
        data["api_key"] = json!(" reach-secret \n");
        let reach = open(data).expect("valid data");
        assert_eq!(reach.api, "http://127.0.0.1:8080/reach/rest/messaging/v1");
        assert_eq!(reach.timeout, Duration::from_millis(250));
        assert_eq!(reach.src, "33600000000");
        assert_eq!(reach.api_key, "reach-secret");
    }

    #[test]
    fn rejects_missing_and_invalid_fields() {
        for field in ["api_user", "api_key", "src"] {
            let mut missing = valid();
            missing.as_object_mut().map(|m| m.remove(field));
            assert_eq!(failing_field(open(missing)).as_deref(), Some(field));
            let mut blank = valid();
            blank[field] = json!("  ");
            assert_eq!(failing_field(open(blank)).as_deref(), Some(field));
        }
        let cases = [
            ("base_url", json!("api.reach.talkylabs.com")),
            ("base_url", json!("ftp://api.reach.talkylabs.com")),
            ("base_url", json!("https://api.reach.talkylabs.com/?x=1")),
            ("api_user", json!({"name": "u"})),
            ("timeout_ms", json!(0)),
            ("timeout_ms", json!("soon")),
        ];
        for (field, value) in cases {
            let mut data = valid();
            data[field] = value;
            assert_eq!(failing_field(open(data)).as_deref(), Some(field));
        }
    }

    #[test]
    fn status_callbacks_map_reach_statuses() {
        let report = |status: &str| {
            parse_status(&params(&[("messageId", "m1"), ("status", status)])).map(|(_, r)| r)
        };
        assert_eq!(report("delivered"), Some(Report::Delivered));
        assert_eq!(report("undelivered"), Some(Report::Undelivered));
        assert_eq!(report("failed"), Some(Report::Failed));
        assert_eq!(report("canceled"), Some(Report::Failed));
        for pending in ["queued", "accepted", "scheduled", "sending", "sent", "SENT"] {
            assert_eq!(report(pending), Some(Report::Pending), "{pending}");
        }
        assert_eq!(report("received"), None);
        assert_eq!(report(""), None);
        let full = params(&[
            ("api_key", "k"),
            ("messageId", "MSG42"),
            ("status", "delivered"),
            ("bulkId", "pigeon-7"),
        ]);
        assert_eq!(
            parse_status(&full),
            Some(("MSG42".into(), Report::Delivered))
        );
        assert_eq!(parse_status(&params(&[("status", "delivered")])), None);
        let blank = params(&[("messageId", " "), ("status", "delivered")]);
        assert_eq!(parse_status(&blank), None);
        assert_eq!(parse_status(&params(&[("messageId", "m1")])), None);
    }

    #[test]
    fn answers_map_to_transient_or_permanent() {
        let body = br#"{"errorCode":21211,"errorMessage":"invalid dest","errorDetails":{}}"#;
        let cases = [
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::BAD_GATEWAY, true),
            (StatusCode::BAD_REQUEST, false),
            (StatusCode::UNAUTHORIZED, false),
            (StatusCode::MOVED_PERMANENTLY, false),
        ];
        for (status, transient) in cases {
            match refusal(status, body) {
                SendError::Transient(m) if transient => {
                    assert!(m.contains("invalid dest (error 21211)"), "{m}")
                }
                SendError::Permanent(m) if !transient => {
                    assert!(m.contains(&status.as_u16().to_string()), "{m}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_texts_quote_reach_or_the_start_of_the_body() {
        assert_eq!(
            error_text(br#"{"errorCode":null,"errorMessage":"nope"}"#),
            "nope"
        );
        assert_eq!(
            error_text(b"  <html>Bad gateway</html>\n"),
            "<html>Bad gateway</html>"
        );
    }

    #[test]
    fn message_items_need_an_id_and_a_failed_one_is_permanent() {
        let item = |value: Value| message_item(value).map(taken);
        assert_eq!(
            item(json!({"messageId": "M1", "status": "queued", "bulkId": "k"})),
            Some(Ok(Sent {
                provider_id: "M1".into()
            }))
        );
        assert_eq!(item(json!({"status": "queued"})), None);
        assert_eq!(item(json!({"messageId": ""})), None);
        assert_eq!(item(json!({"messageId": null})), None);
        match item(json!({"messageId": "M2", "status": "failed", "errorMessage": "no route"})) {
            Some(Err(SendError::Permanent(m))) => assert!(m.contains("no route"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
