//! What the HTTP provider channels share: reading an answer, quoting an error, and telling a
//! refusal (nothing was created) from an unknown outcome (the provider may have taken the
//! message). Provider creates are not idempotent, so a create whose outcome is unknown is never
//! repeated blindly: the channel looks the message up first (see [`settle`]).

use std::time::Duration;

use reqwest::{Response, StatusCode};

use crate::http_client::{self, Blocked};
use crate::{SendError, Sent};

/// Error texts quoted in a failure are cut to this (a proxy's error may be a whole page).
const SNIPPET_CHARS: usize = 200;

/// Why a request brought back no answer to use.
pub(crate) enum CallError {
    /// The provider said no, or the request never left: nothing was created.
    Refused(SendError),
    /// The provider may have taken the request.
    Unknown(String),
}

impl CallError {
    /// For requests that create nothing (lookups), where an unknown outcome is just a failure
    /// worth retrying.
    pub(crate) fn into_send_error(self) -> SendError {
        match self {
            CallError::Refused(e) => e,
            CallError::Unknown(why) => SendError::Transient(why),
        }
    }

    /// The SSRF guard refused the URL before anything was sent.
    pub(crate) fn blocked(blocked: Blocked) -> CallError {
        CallError::Refused(SendError::Permanent(blocked.to_string()))
    }

    /// A failed exchange with `provider`: refused when nothing can have reached it, unknown
    /// once the request may have been out.
    pub(crate) fn request(provider: &str, timeout: Duration, e: &reqwest::Error) -> CallError {
        let message = http_client::describe(e);
        if http_client::is_blocked_error(e) {
            return CallError::Refused(SendError::Permanent(format!(
                "{message}: the {provider} address is not allowed"
            )));
        }
        if e.is_builder() {
            CallError::Refused(SendError::Permanent(format!(
                "cannot build the {provider} request: {message}"
            )))
        } else if e.is_connect() {
            CallError::Refused(SendError::Transient(format!(
                "cannot connect to {provider}: {message}"
            )))
        } else if e.is_timeout() {
            CallError::Unknown(format!(
                "{provider} did not answer within {} ms",
                timeout.as_millis()
            ))
        } else {
            CallError::Unknown(format!("the exchange with {provider} broke off: {message}"))
        }
    }
}

/// A non-2xx answer: 408, 429 and 5xx pass with time (providers do not process a request they
/// answer so, and the next attempt looks for the message before creating it anyway); other
/// answers will not change by retrying.
pub(crate) fn refusal(provider: &str, status: StatusCode, reason: &str) -> SendError {
    let code = status.as_u16();
    match status {
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
            SendError::Transient(format!("{provider} is busy (HTTP {code}): {reason}"))
        }
        s if s.is_server_error() => {
            SendError::Transient(format!("{provider} is unavailable (HTTP {code}): {reason}"))
        }
        s if s.is_client_error() => SendError::Permanent(format!(
            "{provider} refused the request (HTTP {code}): {reason}"
        )),
        _ => SendError::Permanent(format!(
            "unexpected answer from {provider} (HTTP {code}): {reason}"
        )),
    }
}

/// The start of a body that is not the provider's error document.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The answer's body, no more than `limit` bytes of it (a larger answer is not the provider's).
pub(crate) async fn read_body(
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(body)
}

/// After a create whose outcome is unknown (`why`), what the lookup of message `key` found:
/// the message the provider took, or a transient error, so that the next attempt looks again
/// before creating.
pub(crate) fn settle<T>(
    provider: &str,
    key: &str,
    why: &str,
    found: Result<Option<T>, SendError>,
    taken: impl FnOnce(T) -> Result<Sent, SendError>,
) -> Result<Sent, SendError> {
    match found {
        Ok(Some(item)) => taken(item),
        Ok(None) => Err(SendError::Transient(format!(
            "{why}; {provider} lists no message {key} (yet): the next attempt looks again before sending"
        ))),
        Err(SendError::Transient(e) | SendError::Permanent(e)) => {
            Err(SendError::Transient(format!("{why}; {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_transient_or_permanent() {
        let cases = [
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::BAD_GATEWAY, true),
            (StatusCode::BAD_REQUEST, false),
            (StatusCode::FORBIDDEN, false),
            (StatusCode::MOVED_PERMANENTLY, false),
        ];
        for (status, transient) in cases {
            match refusal("Acme", status, "why") {
                SendError::Transient(m) if transient => assert!(m.contains("why"), "{m}"),
                SendError::Permanent(m) if !transient => {
                    assert!(m.contains(&status.as_u16().to_string()), "{m}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn snippets_are_trimmed_and_cut() {
        assert_eq!(
            snippet(b"  <html>Bad gateway</html>\n"),
            "<html>Bad gateway</html>"
        );
        let long = "é".repeat(SNIPPET_CHARS + 10);
        assert_eq!(
            snippet(long.as_bytes()),
            format!("{}…", "é".repeat(SNIPPET_CHARS))
        );
    }

    #[test]
    fn settling_adopts_what_was_found_and_otherwise_stays_transient() {
        let sent = |id: &str| {
            Ok(Sent {
                provider_id: id.into(),
            })
        };
        let found = settle("Acme", "k", "timeout", Ok(Some("M1")), sent);
        assert_eq!(found, sent("M1"));
        match settle::<&str>("Acme", "k", "timeout", Ok(None), sent) {
            Err(SendError::Transient(m)) => assert!(m.contains("timeout; Acme lists no message k")),
            other => panic!("{other:?}"),
        }
        let lookup = Err(SendError::Permanent("HTTP 403".into()));
        match settle::<&str>("Acme", "k", "timeout", lookup, sent) {
            Err(SendError::Transient(m)) => assert_eq!(m, "timeout; HTTP 403"),
            other => panic!("{other:?}"),
        }
    }
}
