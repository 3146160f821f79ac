//! Webhook signatures: RaspiSMS's (HMAC-SHA256 of the random id, keyed with the API key, in
//! lowercase hex), Standard Webhooks' (`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`,
//! keyed with the decoded `whsec_` secret), and Reach's `X-Reach-Signature` (Twilio's legacy
//! scheme: base64 HMAC-SHA1 of the URL followed by the sorted form parameters).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("a webhook secret is `whsec_` followed by base64")]
    Secret,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// RaspiSMS's `webhook_signature`: `hash_hmac('sha256', random_id, api_key)`.
pub fn raspisms(random_id: &str, api_key: &str) -> String {
    hex::encode(hmac(api_key.as_bytes(), &[random_id.as_bytes()]))
}

/// A new Standard Webhooks secret: `whsec_` + base64 of 24 random bytes.
pub fn new_secret(random: [u8; 24]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(random))
}

/// The `webhook-signature` header value for one attempt.
pub fn standard(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = secret
        .strip_prefix(SECRET_PREFIX)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .ok_or(SignatureError::Secret)?;
    let timestamp = timestamp.to_string();
    let mac = hmac(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    Ok(format!("v1,{}", STANDARD.encode(mac)))
}

/// `X-Reach-Signature` of a request to `url` (exactly as the sender configured it) with the
/// form parameters `params`: every key in byte order, each of its distinct values sorted,
/// appended as `key + value`; keyed with the API key.
pub fn reach(api_key: &str, url: &str, params: &[(&str, &str)]) -> String {
    reach_mac(api_key, url, params)
        .map(|mac| STANDARD.encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `signature` is the `X-Reach-Signature` of a request to `url` with the form
/// parameters `params`, as Reach's (and Twilio's) validators judge it: the URL may have been
/// signed with its port or without it ("signing on the back end is inconsistent"), so both are
/// tried; the comparison is constant time.
///
/// A URL whose query carries `bodySHA256` was signed for a JSON body: the signature covers the
/// URL alone and the body is vouched for by that hash, which this function does not see. Form
/// parameters next to such a URL are covered by nothing, so they make the request invalid; a
/// caller that reads a JSON body must compare its SHA-256 with `bodySHA256` itself.
pub fn reach_valid(api_key: &str, url: &str, params: &[(&str, &str)], signature: &str) -> bool {
    let Ok(expected) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    if has_body_hash(url) && !params.is_empty() {
        return false;
    }
    let (with_port, without_port) = port_variants(url);
    [with_port, without_port].iter().any(|candidate| {
        reach_mac(api_key, candidate, params).is_some_and(|mac| mac.verify_slice(&expected).is_ok())
    })
}

fn reach_mac(api_key: &str, url: &str, params: &[(&str, &str)]) -> Option<Hmac<sha1::Sha1>> {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(api_key.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    for (key, value) in pairs {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(mac)
}

/// Whether the URL's query has a `bodySHA256` parameter (the JSON-body form of the signature).
fn has_body_hash(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == "bodySHA256")
}

/// The URL with an explicit port (its own, else `:443` for https and `:80` for http) and the
/// URL without any port, everything else kept byte for byte: re-serialising through a URL
/// parser would change the escaping the signature was computed over.
fn port_variants(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), url.to_string());
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    let (userinfo, host_port) = authority.split_at(authority.rfind('@').map_or(0, |at| at + 1));
    let (host, port) = split_port(host_port);
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => Some("443"),
        "http" => Some("80"),
        _ => None,
    };
    let with_port = match port.or(default) {
        Some(port) => format!("{scheme}://{userinfo}{host}:{port}{tail}"),
        None => url.to_string(),
    };
    (with_port, format!("{scheme}://{userinfo}{host}{tail}"))
}

/// `host:port` as host and port (`None` without one).
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    // An IPv6 literal's colons are inside its brackets; a port can only follow them.
    let host_end = host_port.rfind(']').map_or(0, |bracket| bracket + 1);
    match host_port[host_end..].rfind(':') {
        Some(colon) => {
            let (host, port) = host_port.split_at(host_end + colon);
            (host, port.strip_prefix(':'))
        }
        None => (host_port, None),
    }
}

/// `X-Ovh-Signature` of a request: `$1$` + lowercase hex SHA-1 of
/// `AS+CK+METHOD+URL+BODY+TIMESTAMP` (joined with `+`), where URL is the full URL with its
/// query exactly as sent and BODY the raw body (empty for none).
pub fn ovh(
    application_secret: &str,
    consumer_key: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: i64,
) -> String {
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    for part in [
        application_secret.as_bytes(),
        consumer_key.as_bytes(),
        method.as_bytes(),
        url.as_bytes(),
    ] {
        sha.update(part);
        sha.update(b"+");
    }
    sha.update(body);
    sha.update(b"+");
    sha.update(timestamp.to_string().as_bytes());
    format!("$1${}", hex::encode(sha.finalize()))
}

/// Whether `signature` is the `X-Ovh-Signature` of the request, compared in constant time.
pub fn ovh_valid(
    application_secret: &str,
    consumer_key: &str,
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: i64,
    signature: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let expected = ovh(
        application_secret,
        consumer_key,
        method,
        url,
        body,
        timestamp,
    );
    bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of python-ovh's `tests/test_client.py`.
    #[test]
    fn ovh_signatures_match_the_clients_vectors() {
        const AS: &str = "9ufkBmLaTQ9nz5yMUlg79taH0GNnzDjk";
        const CK: &str = "5mBuy6SUQcRw2ZUxg0cG68BoDKpED4KY";
        const URL: &str = "https://eu.api.ovh.com/1.0/auth";
        const BODY: &[u8] = br#"{"a":"b","c":"d"}"#;
        for (method, body, expected) in [
            (
                "GET",
                &b""[..],
                "$1$e9556054b6309771395efa467c22e627407461ad",
            ),
            ("POST", BODY, "$1$ec2fb5c7a81f64723c77d2e5b609ae6f58a84fc1"),
            ("PUT", BODY, "$1$8a75a9e7c8e7296c9dbeda6a2a735eb6bd58ec4b"),
            (
                "DELETE",
                &b""[..],
                "$1$a1eecd00b3b02b6cf5708b84b9ff42059a950d85",
            ),
        ] {
            assert_eq!(
                ovh(AS, CK, method, URL, body, 1_457_018_875),
                expected,
                "{method}"
            );
            assert!(ovh_valid(
                AS,
                CK,
                method,
                URL,
                body,
                1_457_018_875,
                expected
            ));
            assert!(!ovh_valid(
                AS,
                CK,
                method,
                URL,
                body,
                1_457_018_876,
                expected
            ));
            assert!(!ovh_valid(
                AS,
                "other",
                method,
                URL,
                body,
                1_457_018_875,
                expected
            ));
        }
    }

    #[test]
    fn standard_webhooks_published_vector() {
        let signature = standard(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Ok("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn raspisms_is_lowercase_hex_hmac_of_the_random_id() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            raspisms("what do ya want for nothing?", "Jefe"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn reach_published_vectors() {
        let (url, call) = (VECTOR_URL, VECTOR_PARAMS);
        assert_eq!(reach("12345", url, &call), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            reach("12345", with_port, &call),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        // Repeated keys: distinct values, sorted.
        let repeated = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        assert_eq!(
            reach("12345", url, &repeated),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        // Keys sort before their values are appended: `Reason` comes before `ReasonConferenceEnded`.
        let mut longer = call.to_vec();
        longer.extend([("Reason", "Participant"), ("ReasonConferenceEnded", "test")]);
        assert_eq!(reach("12345", url, &longer), "vOEb5UThFn24KEfnOFLQY2AE5FY=");
        // A JSON body is signed through its hash in the URL only.
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let json_url = format!("https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256={hash}");
        assert_eq!(
            reach("12345", &json_url, &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
    }

    const VECTOR_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const VECTOR_PARAMS: [(&str, &str); 5] = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];

    #[test]
    fn reach_valid_accepts_the_url_with_or_without_its_port() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signed_without = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        let signed_with = "kvajT1Ptam85bY51eRf/AJRuM3w=";
        for url in [VECTOR_URL, with_port] {
            for signature in [signed_without, signed_with] {
                assert!(
                    reach_valid("12345", url, &VECTOR_PARAMS, signature),
                    "{url} {signature}"
                );
            }
        }
        // Any port is removed, but only the scheme's default port is added.
        let other_port = "https://mycompany.com:8443/myapp.php?foo=1&bar=2";
        assert!(reach_valid(
            "12345",
            other_port,
            &VECTOR_PARAMS,
            signed_without
        ));
        assert!(!reach_valid(
            "12345",
            other_port,
            &VECTOR_PARAMS,
            signed_with
        ));
        let http = "http://pigeon.test/cb?api_key=k";
        let signature = reach("k", http, &[("status", "delivered")]);
        let http_80 = "http://pigeon.test:80/cb?api_key=k";
        assert!(reach_valid(
            "k",
            http_80,
            &[("status", "delivered")],
            &signature
        ));
    }

    #[test]
    fn reach_valid_refuses_wrong_signatures_keys_and_parameters() {
        let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
        assert!(!reach_valid(
            "12345",
            VECTOR_URL,
            &VECTOR_PARAMS,
            "RSOYDt4T1cUTdK1PDd93/VVr8B9="
        ));
        assert!(!reach_valid("54321", VECTOR_URL, &VECTOR_PARAMS, good));
        assert!(!reach_valid("12345", VECTOR_URL, &VECTOR_PARAMS[1..], good));
        assert!(!reach_valid("12345", VECTOR_URL, &VECTOR_PARAMS, ""));
        assert!(!reach_valid(
            "12345",
            VECTOR_URL,
            &VECTOR_PARAMS,
            "not base64!"
        ));
        // Surrounding spaces of a header value are not part of the signature.
        assert!(reach_valid(
            "12345",
            VECTOR_URL,
            &VECTOR_PARAMS,
            &format!(" {good} ")
        ));
    }

    #[test]
    fn reach_valid_json_body_form_covers_the_url_only() {
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let url = format!("{VECTOR_URL}&bodySHA256={hash}");
        assert!(reach_valid(
            "12345",
            &url,
            &[],
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        let only_hash = format!("https://mycompany.com/myapp.php?bodySHA256={hash}");
        assert!(reach_valid(
            "12345",
            &only_hash,
            &[],
            "y77kIzt2vzLz71DgmJGsen2scGs="
        ));
        // Form parameters beside a body hash are signed by nothing.
        let forged = [("status", "delivered")];
        assert!(!reach_valid(
            "12345",
            &only_hash,
            &forged,
            "y77kIzt2vzLz71DgmJGsen2scGs="
        ));
    }

    #[test]
    fn port_variants_keep_everything_but_the_port() {
        let cases = [
            (
                "https://a.test/p?q=1",
                "https://a.test:443/p?q=1",
                "https://a.test/p?q=1",
            ),
            (
                "http://a.test:8080?q=1",
                "http://a.test:8080?q=1",
                "http://a.test?q=1",
            ),
            (
                "HTTP://u:p@a.test",
                "HTTP://u:p@a.test:80",
                "HTTP://u:p@a.test",
            ),
            ("http://[::1]:81/x", "http://[::1]:81/x", "http://[::1]/x"),
            (
                "http://[::1]/x#f",
                "http://[::1]:80/x#f",
                "http://[::1]/x#f",
            ),
            ("not a url", "not a url", "not a url"),
        ];
        for (url, with, without) in cases {
            assert_eq!(
                port_variants(url),
                (with.to_string(), without.to_string()),
                "{url}"
            );
        }
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let secret = new_secret([7; 24]);
        assert!(secret.starts_with("whsec_"));
        assert!(standard(&secret, "id", 1, b"{}").is_ok());
        assert_eq!(
            standard("nope", "id", 1, b"{}"),
            Err(SignatureError::Secret)
        );
        assert_eq!(
            standard("whsec_***", "id", 1, b"{}"),
            Err(SignatureError::Secret)
        );
    }
}
