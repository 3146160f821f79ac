//! RaspiSMS's KannelAdapter, corrected: UCS-2 text is sent with `coding=2` (RaspiSMS sends
//! 8-bit), every delivery-report type is asked for, the origin of an inbound SMS is read from
//! `X-Kannel-From` (RaspiSMS reads `X-Kannel-To`, which is the phone's own number), and requests
//! have a timeout.
//!
//! Kannel's side: a `sendsms-user` (with `max-messages > 1` for long texts) and, for reception,
//! an `sms-service` with `post-url` pointing at Pigeon's reception callback and
//! `send-sender = true` (without it Kannel leaves out `X-Kannel-From`).

use std::fmt;
use std::time::Duration;

use pigeon_core::time::Ts;
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value};

use crate::data::{bad, optional, required, timeout};
use crate::http_client::HttpClient;
use crate::test::{param, parse_utc, raspisms_uid};
use crate::{ConfigError, Context, Inbound, Outgoing, Report, SendError, Sent};

/// Kannel's error bodies are one line; a proxy's may be a whole page.
const BODY_SNIPPET_CHARS: usize = 200;
/// Every report: delivered (1), undelivered (2), queued on SMSC (4), accepted by SMSC (8),
/// rejected by SMSC (16).
const DLR_MASK: &str = "31";

pub struct Kannel {
    sendsms_url: Url,
    username: String,
    password: String,
    from: String,
    dlr_url: String,
    smsc: Option<String>,
    timeout: Duration,
    http: HttpClient,
}

// By hand: the password and the DLR URL's API key stay out of logs.
impl fmt::Debug for Kannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kannel")
            .field("sendsms_url", &self.sendsms_url.as_str())
            .field("username", &self.username)
            .field("from", &self.from)
            .field("smsc", &self.smsc)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Kannel {
    /// Fields `kannel_sendsms_url`, `username`, `password`, `from` (required), `dlr_url`
    /// (default: Pigeon's status callback), `smsc`, and `timeout_ms` (not in the registry: for
    /// tests and slow links; default 30 s).
    pub fn open(data: &Map<String, Value>, ctx: Context) -> Result<Kannel, ConfigError> {
        let sendsms_url = http_url("kannel_sendsms_url", &required(data, "kannel_sendsms_url")?)?;
        let dlr_url = match optional(data, "dlr_url")? {
            // Checked but kept as written: Kannel gets it back byte for byte.
            Some(url) => http_url("dlr_url", &url).map(|_| url.trim().to_string())?,
            None => ctx.status_callback_url,
        };
        Ok(Kannel {
            sendsms_url,
            username: required(data, "username")?,
            password: required(data, "password")?,
            from: required(data, "from")?,
            dlr_url,
            smsc: optional(data, "smsc")?,
            timeout: timeout(data)?,
            http: ctx.http,
        })
    }

    pub async fn send(&self, m: &Outgoing) -> Result<Sent, SendError> {
        // Kannel reads spaces in `to` as a list of recipients.
        if m.destination.is_empty() || m.destination.chars().any(char::is_whitespace) {
            return Err(SendError::Permanent(format!(
                "invalid destination `{}`",
                m.destination
            )));
        }
        let uid = raspisms_uid()?;
        let dlr_url = dlr_url_for(&self.dlr_url, &uid);
        let mut query: Vec<(&str, &str)> = vec![
            ("username", &self.username),
            ("password", &self.password),
            ("text", &m.text),
            ("to", &m.destination),
            ("from", &self.from),
            ("dlr-mask", DLR_MASK),
            ("dlr-url", &dlr_url),
        ];
        if m.ucs2 {
            // Without a charset Kannel takes UCS-2 input as UTF-16BE.
            query.extend([("coding", "2"), ("charset", "UTF-8")]);
        }
        if let Some(smsc) = &self.smsc {
            query.push(("smsc", smsc));
        }
        let request = self
            .http
            .get(self.sendsms_url.as_str())
            .map_err(|blocked| SendError::Permanent(blocked.to_string()))?;
        let response = request
            .query(&query)
            // The shared client may have no timeout of its own.
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.request_error(e))?;
        let status = response.status();
        if status == StatusCode::ACCEPTED || status == StatusCode::OK {
            return Ok(Sent { provider_id: uid });
        }
        let body = body_snippet(response).await;
        let code = status.as_u16();
        Err(match status {
            // 408 and 429 come from proxies in front of Kannel and pass with time.
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                SendError::Transient(format!("Kannel is busy (HTTP {code}): {body}"))
            }
            s if s.is_client_error() => {
                SendError::Permanent(format!("Kannel refused the message (HTTP {code}): {body}"))
            }
            s if s.is_server_error() => {
                SendError::Transient(format!("Kannel is unavailable (HTTP {code}): {body}"))
            }
            _ => SendError::Permanent(format!(
                "unexpected answer from Kannel (HTTP {code}): {body}"
            )),
        })
    }

    fn request_error(&self, e: reqwest::Error) -> SendError {
        if crate::http_client::is_blocked_error(&e) {
            return SendError::Permanent(format!(
                "{}: the Kannel address is not allowed",
                e.without_url()
            ));
        }
        // The URL carries the password.
        let e = e.without_url();
        if e.is_timeout() {
            return SendError::Transient(format!(
                "Kannel did not answer within {} ms",
                self.timeout.as_millis()
            ));
        }
        let message = crate::http_client::describe(&e);
        if e.is_builder() {
            SendError::Permanent(format!("cannot build the Kannel request: {message}"))
        } else if e.is_connect() {
            SendError::Transient(format!("cannot connect to Kannel: {message}"))
        } else {
            SendError::Transient(format!("Kannel request failed: {message}"))
        }
    }
}

/// The DLR URL for one message: Kannel substitutes `%d` with the report type.
fn dlr_url_for(base: &str, uid: &str) -> String {
    let separator = match base.chars().last() {
        Some('?' | '&') => "",
        _ if base.contains('?') => "&",
        _ => "?",
    };
    format!("{base}{separator}sms_uid={uid}&type=%d")
}

/// The start of an error body, read no further than needed.
async fn body_snippet(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    // Four bytes per char at most.
    while bytes.len() < BODY_SNIPPET_CHARS * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    match text.char_indices().nth(BODY_SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// DLR callback: `sms_uid` (ours, from the DLR URL) and `type` (Kannel's `%d`).
pub fn parse_status(params: &[(String, String)]) -> Option<(String, Report)> {
    let uid = param(params, "sms_uid")?.trim();
    if uid.is_empty() {
        return None;
    }
    let kind: u32 = param(params, "type")?.trim().parse().ok()?;
    let report = match kind {
        1 => Report::Delivered,
        2 => Report::Undelivered,
        16 => Report::Failed,
        // 4 (queued on SMSC), 8 (accepted by SMSC): still on its way.
        _ => Report::Pending,
    };
    Some((uid.to_string(), report))
}

/// Reception by an `sms-service` `post-url`: the body is the text (in the charset of its
/// `Content-Type`), `X-Kannel-From` the sender and `X-Kannel-Time` the SMSC's time in UTC.
pub fn parse_reception(headers: &[(String, String)], body: &[u8]) -> Result<Inbound, String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let origin = header("X-Kannel-From")
        .filter(|o| !o.is_empty())
        .ok_or("missing header X-Kannel-From (set `send-sender = true` in Kannel's sms-service)")?;
    let text = decode(body, header("Content-Type").and_then(charset));
    let at = header("X-Kannel-Time")
        .and_then(parse_utc)
        .unwrap_or_else(Ts::now);
    Ok(Inbound {
        origin: origin.to_string(),
        text,
        at,
    })
}

/// The `charset` parameter of a `Content-Type` (Kannel quotes it).
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|part| {
        let (name, value) = part.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_uppercase())
    })
}

/// Kannel posts UTF-8, or UTF-16BE for UCS-2 messages when `mo-recode` is off, or the SMSC's
/// charset; anything unknown is read as UTF-8, lossily.
fn decode(body: &[u8], charset: Option<String>) -> String {
    match charset.as_deref() {
        Some("UTF-16BE" | "UTF-16" | "UCS-2" | "UCS-2BE" | "ISO-10646-UCS-2") => {
            let units = body.chunks(2).map(|pair| match pair {
                [high, low] => u16::from_be_bytes([*high, *low]),
                // An odd byte out cannot be half of anything.
                _ => 0xFFFD,
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        Some("ISO-8859-1" | "ISO8859-1" | "LATIN1") => {
            body.iter().map(|b| char::from(*b)).collect()
        }
        Some("WINDOWS-1252" | "CP1252") => body.iter().map(|b| windows_1252(*b)).collect(),
        _ => String::from_utf8_lossy(body).into_owned(),
    }
}

/// Windows-1252 differs from Latin-1 only in 0x80–0x9F (where it has €, quotes, dashes).
fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9f => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

fn http_url(field: &str, text: &str) -> Result<Url, ConfigError> {
    Url::parse(text.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| bad(field, "must be an http:// or https:// URL"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::data::{failing_field, params, test_context};

    fn context() -> Context {
        test_context("http://pigeon.test/callback/status/kannel/?api_key=k")
    }

    fn open(data: Value) -> Result<Kannel, ConfigError> {
        match data {
            Value::Object(map) => Kannel::open(&map, context()),
            _ => Err(bad("data", "not an object")),
        }
    }

    fn valid() -> Value {
        json!({
            "kannel_sendsms_url": "http://kannel.test:13013/cgi-bin/sendsms",
            "username": "user", "password": "secret", "from": "+33600000000",
        })
    }

    #[test]
    fn opens_with_defaults() {
        let kannel = open(valid()).expect("valid data");
        assert_eq!(
            kannel.dlr_url,
            "http://pigeon.test/callback/status/kannel/?api_key=k"
        );
        assert_eq!(kannel.smsc, None);
        assert_eq!(kannel.timeout, Duration::from_secs(30));
        let debug = format!("{kannel:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("api_key"),
            "{debug}"
        );
    }

    #[test]
    fn reads_optional_fields() {
        let mut data = valid();
        data["dlr_url"] = json!("https://elsewhere.test/dlr");
        data["smsc"] = json!("modem1");
        data["timeout_ms"] = json!(250);
        data["from"] = json!(33600000000u64);
        let kannel = open(data).expect("valid data");
        assert_eq!(kannel.dlr_url, "https://elsewhere.test/dlr");
        assert_eq!(kannel.smsc.as_deref(), Some("modem1"));
        assert_eq!(kannel.timeout, Duration::from_millis(250));
        assert_eq!(kannel.from, "33600000000");
    }

    #[test]
    fn rejects_missing_and_invalid_fields() {
        for field in ["kannel_sendsms_url", "username", "password", "from"] {
            let mut missing = valid();
            missing.as_object_mut().map(|m| m.remove(field));
            assert_eq!(failing_field(open(missing)).as_deref(), Some(field));
            let mut blank = valid();
            blank[field] = json!("  ");
            assert_eq!(failing_field(open(blank)).as_deref(), Some(field));
        }
        let cases = [
            ("kannel_sendsms_url", json!("kannel:13013/cgi-bin/sendsms")),
            ("kannel_sendsms_url", json!("ftp://kannel.test/")),
            ("username", json!(["user"])),
            ("dlr_url", json!("not a url")),
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
    fn dlr_url_gets_the_right_separator() {
        assert_eq!(
            dlr_url_for("http://p/cb", "u1"),
            "http://p/cb?sms_uid=u1&type=%d"
        );
        assert_eq!(
            dlr_url_for("http://p/cb?api_key=k", "u1"),
            "http://p/cb?api_key=k&sms_uid=u1&type=%d"
        );
        assert_eq!(
            dlr_url_for("http://p/cb?", "u1"),
            "http://p/cb?sms_uid=u1&type=%d"
        );
    }

    #[test]
    fn status_maps_dlr_types() {
        let report = |kind: &str| {
            parse_status(&params(&[("sms_uid", "u1"), ("type", kind)])).map(|(_, r)| r)
        };
        assert_eq!(report("1"), Some(Report::Delivered));
        assert_eq!(report("2"), Some(Report::Undelivered));
        assert_eq!(report("16"), Some(Report::Failed));
        assert_eq!(report("4"), Some(Report::Pending));
        assert_eq!(report("8"), Some(Report::Pending));
        assert_eq!(report("%d"), None);
        let p = params(&[("api_key", "k"), ("sms_uid", "123-abc"), ("type", "1")]);
        assert_eq!(
            parse_status(&p),
            Some(("123-abc".into(), Report::Delivered))
        );
        assert_eq!(parse_status(&params(&[("type", "1")])), None);
        assert_eq!(
            parse_status(&params(&[("sms_uid", ""), ("type", "1")])),
            None
        );
        assert_eq!(parse_status(&params(&[("sms_uid", "u1")])), None);
    }

    #[test]
    fn reception_reads_kannel_headers() {
        let headers = params(&[
            ("x-kannel-from", "+33611111111"),
            ("X-Kannel-To", "+33600000000"),
            ("X-KANNEL-TIME", "2024-02-03 04:05:06"),
            ("content-type", "text/plain; charset=\"UTF-8\""),
        ]);
        let sms = parse_reception(&headers, "Bonjour à vous".as_bytes()).expect("valid reception");
        assert_eq!(sms.origin, "+33611111111");
        assert_eq!(sms.text, "Bonjour à vous");
        assert_eq!(sms.at, Ts(1_706_933_106_000));
    }

    #[test]
    fn reception_without_time_is_now_and_without_sender_is_an_error() {
        let before = Ts::now();
        let sms = parse_reception(
            &params(&[("X-Kannel-From", "+1"), ("X-Kannel-Time", "soon")]),
            b"x",
        )
        .expect("valid reception");
        assert!(sms.at >= before && sms.at <= Ts::now());
        assert!(parse_reception(&params(&[("X-Kannel-To", "+33600000000")]), b"x").is_err());
        assert!(parse_reception(&params(&[("X-Kannel-From", " ")]), b"x").is_err());
    }

    #[test]
    fn reception_decodes_the_body_charset() {
        let with = |content_type: &str, body: &[u8]| {
            let headers = params(&[("X-Kannel-From", "+1"), ("Content-Type", content_type)]);
            parse_reception(&headers, body).map(|sms| sms.text)
        };
        let utf16: Vec<u8> = "Привет 😀"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(
            with("text/plain; charset=\"UTF-16BE\"", &utf16).as_deref(),
            Ok("Привет 😀")
        );
        assert_eq!(
            with("text/plain; charset=ISO-8859-1", b"caf\xe9").as_deref(),
            Ok("café")
        );
        assert_eq!(
            with("text/plain; charset=\"WINDOWS-1252\"", b"5 \x80").as_deref(),
            Ok("5 €")
        );
        assert_eq!(
            with("text/plain", b"bad \xff utf8").as_deref(),
            Ok("bad \u{fffd} utf8")
        );
    }
}
