//! Reach's vocabulary (reference `provider-apis.md` §1.3): `MID…` message ids, the MessageItem
//! object, its statuses, and the form its status callbacks carry.

use pigeon_core::settings::Pricing;
use pigeon_core::time::iso_millis;
use pigeon_store::messages::Item;
use serde_json::{Value, json};

pub const API_VERSION: &str = "1.0.0";

/// An id as a Reach message id: `MID` and 24 hex digits.
pub fn message_id(id: i64) -> String {
    format!("MID{id:024x}")
}

/// A message id Pigeon issued, from its `MID…` form.
pub fn parse_message_id(text: &str) -> Option<i64> {
    let hex = text.trim().strip_prefix("MID")?;
    (hex.len() == 24)
        .then(|| i64::from_str_radix(hex, 16).ok())
        .flatten()
        .filter(|id| *id > 0)
}

/// The applet (Reach's account) of a user.
pub fn applet_id(user_id: i64) -> String {
    format!("AID{user_id:024x}")
}

/// Reach's status for an internal state (§1.3 has Twilio's list without `read`).
pub fn status(internal: &str) -> &'static str {
    match internal {
        "scheduled" => "scheduled",
        "queued" => "queued",
        "sending" | "device_received" => "sending",
        "sent" => "sent",
        "delivered" => "delivered",
        "undelivered" => "undelivered",
        "canceled" => "canceled",
        "received" => "received",
        // A message whose validity ran out failed, as the document says.
        _ => "failed",
    }
}

/// The numeric `errorCode` of a message that went wrong: a provider's numeric code, else
/// 30008 (unknown error, Twilio's catalogue, which Reach's clients share); none otherwise.
fn error_code(m: &Item, status: &str) -> Option<i64> {
    match status {
        "failed" | "undelivered" => Some(
            m.error_code
                .as_deref()
                .and_then(|c| c.parse().ok())
                .unwrap_or(30008),
        ),
        _ => None,
    }
}

/// The MessageItem of a message in `status` (an internal state).
pub fn item_in(m: &Item, status_now: &str, pricing: &Pricing) -> Value {
    let status = status(status_now);
    let priced = m.direction == "outbound" && !matches!(status, "scheduled" | "canceled");
    json!({
        "appletId": applet_id(m.user_id),
        "apiVersion": API_VERSION,
        "body": m.text,
        "dest": m.destination,
        "src": m.origin,
        "bulkId": m.tag,
        "numSegments": m.segments,
        "numMedia": 0,
        "price": priced.then(|| pricing.of(m.segments)),
        "priceUnit": priced.then(|| pricing.unit.clone()),
        "messageId": message_id(m.id),
        "status": status,
        "messageType": m.direction,
        "errorCode": error_code(m, status),
        "errorMessage": error_code(m, status).map(|_| m.error_text.clone().unwrap_or_default()),
        "dateCreated": iso_millis(m.created_at),
        "dateSent": m.sent_at.map(iso_millis),
        "dateUpdated": iso_millis(m.updated_at),
    })
}

pub fn item(m: &Item, pricing: &Pricing) -> Value {
    item_in(m, &m.status, pricing)
}

/// The form of a status callback: the MessageItem's fields, flat, nulls left out, plus
/// `dlrDate` (`YYMMDDhhmm`) once the network reported.
pub fn callback_form(
    m: &Item,
    status_now: &str,
    pricing: &Pricing,
    at: i64,
) -> Vec<(String, String)> {
    let mut changed = m.clone();
    changed.updated_at = at;
    let Value::Object(fields) = item_in(&changed, status_now, pricing) else {
        return Vec::new();
    };
    let mut form: Vec<(String, String)> = fields
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect();
    if matches!(status_now, "delivered" | "undelivered") {
        let done = pigeon_core::time::Ts(at)
            .to_timestamp()
            .strftime("%y%m%d%H%M");
        form.push(("dlrDate".into(), done.to_string()));
    }
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_round_trip_and_refuse_garbage() {
        assert_eq!(message_id(26), "MID00000000000000000000001a");
        assert_eq!(parse_message_id("MID00000000000000000000001a"), Some(26));
        for bad in [
            "",
            "MID",
            "nope",
            "00000000000000000000001a",
            "MID000000000000000000000000",
            "MIDzzzzzzzzzzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn statuses_map_to_reach_vocabulary() {
        for (internal, shown) in [
            ("scheduled", "scheduled"),
            ("queued", "queued"),
            ("sending", "sending"),
            ("sent", "sent"),
            ("delivered", "delivered"),
            ("undelivered", "undelivered"),
            ("failed", "failed"),
            ("expired", "failed"),
            ("canceled", "canceled"),
            ("received", "received"),
        ] {
            assert_eq!(status(internal), shown, "{internal}");
        }
    }
}
