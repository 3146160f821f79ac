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
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    pairs.sort_unstable();
    pairs.dedup();
    let mut signed = url.to_string();
    for (key, value) in pairs {
        signed.push_str(key);
        signed.push_str(value);
    }
    let mut mac = match Hmac::<sha1::Sha1>::new_from_slice(api_key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(signed.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let call = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ];
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
