//! The device protocol: JSON text frames on one WebSocket (`GET /device/v1/ws`, with
//! `Authorization: Bearer <device token>` from pairing), in both directions.
//!
//! The server pushes jobs; the agent acknowledges each stage with an Astandes status code:
//! 202 (received by the phone), 302 (sending), 203 (sent: the server never sends it again),
//! 205 (delivered), or an error 501–511 with the raw platform or modem code in `code`. The
//! agent also reports inbound SMS and sends a heartbeat at least every 30 seconds; a device
//! silent for 90 seconds is taken offline and its unacknowledged jobs go to another device.

use serde::{Deserialize, Serialize};

/// How often an agent must speak, at least.
pub const HEARTBEAT_SECS: u64 = 30;
/// Silence after which the server drops a device connection.
pub const SILENCE_SECS: u64 = 90;

/// What the agent sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromAgent {
    /// First frame: how many jobs the device takes at once (default 1).
    Hello {
        agent: String,
        capacity: Option<usize>,
    },
    Ack {
        job: String,
        status: u16,
        code: Option<String>,
        detail: Option<String>,
    },
    Inbound {
        from: String,
        text: String,
        at: Option<String>,
    },
    Heartbeat,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToAgent {
    Welcome {
        device: String,
    },
    /// `job` is the message's 24-hex `_id`.
    Job {
        job: String,
        to: String,
        text: String,
        attempt: i64,
    },
}

/// Whether an error status from a device is worth trying again (elsewhere): no service, no data
/// network, a generic or delivery failure; an invalid or rejected message is not.
pub fn transient(status: u16) -> bool {
    matches!(status, 500 | 506 | 507 | 509 | 510)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_json() {
        let ack: FromAgent =
            serde_json::from_str(r#"{"type":"ack","job":"00000000000000000000000a","status":203}"#)
                .expect("ack");
        assert_eq!(
            ack,
            FromAgent::Ack {
                job: "00000000000000000000000a".into(),
                status: 203,
                code: None,
                detail: None
            }
        );
        let job = ToAgent::Job {
            job: "x".into(),
            to: "+33612345678".into(),
            text: "hi".into(),
            attempt: 1,
        };
        assert_eq!(
            serde_json::to_value(&job).expect("json"),
            serde_json::json!({"type": "job", "job": "x", "to": "+33612345678", "text": "hi", "attempt": 1})
        );
        assert!(serde_json::from_str::<FromAgent>(r#"{"type":"nope"}"#).is_err());
        assert!(transient(507) && !transient(502) && !transient(503));
    }
}
