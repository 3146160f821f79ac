//! Astandes objects: 24-hex `_id`s, ISO-8601 UTC dates with milliseconds and `Z`, status codes.

pub mod status;

use std::collections::HashMap;

use pigeon_store::devices::{self, Device};
use pigeon_store::messages::{self, Detailed};
use serde_json::{Value, json};

use self::status::code;
use crate::app::App;
use crate::services::ServiceError;

/// An id as a 24-hex ObjectId.
pub fn id_of(id: i64) -> String {
    format!("{id:024x}")
}

/// An id Pigeon issued, from its 24-hex form.
pub fn parse_id(text: &str) -> Option<i64> {
    let text = text.trim();
    (text.len() == 24)
        .then(|| i64::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|id| *id > 0)
}

pub use pigeon_core::time::iso_millis as iso;

pub fn device(d: &Device) -> Value {
    json!({
        "_id": id_of(d.id),
        "firstname": d.firstname,
        "lastname": d.lastname,
        "phone": d.number,
        "email": d.email,
        "description": d.description,
        "notification": d.notification,
        "created": iso(d.created_at),
        "updated": iso(d.updated_at),
        "attached": d.attached,
    })
}

/// The messages of `ids` (the user's devices' only), in that order, each with its device and
/// history.
pub async fn messages(app: &App, user: i64, ids: &[i64]) -> Result<Vec<Value>, ServiceError> {
    let mut rows: Vec<Detailed> = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(m) = messages::device_message(&app.store, user, *id).await? {
            rows.push(m);
        }
    }
    let phones: Vec<i64> = rows.iter().filter_map(|m| m.phone_id).collect();
    let by_phone: HashMap<i64, Device> = devices::by_phones(&app.store, user, &phones)
        .await?
        .into_iter()
        .map(|d| (d.phone_id, d))
        .collect();
    let mut histories: HashMap<i64, Vec<(String, i64)>> = HashMap::new();
    for h in messages::histories(&app.store, &rows.iter().map(|m| m.id).collect::<Vec<_>>()).await?
    {
        histories
            .entry(h.message_id)
            .or_default()
            .push((h.status, h.at));
    }
    Ok(rows
        .iter()
        .map(|m| {
            message(
                m,
                m.phone_id.and_then(|p| by_phone.get(&p)),
                histories.get(&m.id).map(Vec::as_slice).unwrap_or_default(),
            )
        })
        .collect())
}

/// A message the API has just queued: its history is its first status.
pub fn queued(q: &crate::services::devices::Queued) -> Value {
    let m = &q.message;
    message(m, Some(&q.device), &[(m.status.clone(), m.created_at)])
}

/// One message. `phone` is the other party (the recipient, or the sender of an inbound SMS),
/// given also as `destination` (the document uses both names).
pub fn message(m: &Detailed, device: Option<&Device>, history: &[(String, i64)]) -> Value {
    let other = if m.direction == "inbound" {
        &m.origin
    } else {
        &m.destination
    };
    let mut queued_before = false;
    let history: Vec<Value> = history
        .iter()
        .map(|(status, at)| {
            let shown = code(status, queued_before && status == "queued", None);
            queued_before |= status == "queued";
            json!({ "status": shown, "date": iso(*at) })
        })
        .collect();
    json!({
        "_id": id_of(m.id),
        "device": device.map(self::device),
        "phone": other,
        "destination": other,
        "text": m.text,
        "identifier": m.client_ref.clone().unwrap_or_default(),
        "maxtries": m.max_tries,
        "notification": m.callback_url.clone().unwrap_or_default(),
        "debug": false,
        "status": code(&m.status, m.tries > 0, m.error_code.as_deref()),
        "history": history,
        "ttl": m.valid_until.map(iso),
        "created": iso(m.created_at),
        "updated": iso(m.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_24_hex_and_round_trip() {
        assert_eq!(id_of(1), "000000000000000000000001");
        assert_eq!(parse_id(&id_of(0x54d1_03df)), Some(0x54d1_03df));
        // Ids Pigeon never issued (wider than 63 bits) are refused like garbage.
        for bad in [
            "54d103df29ba4e502b2e4e9a",
            "",
            "1",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
            "000000000000000000000000",
        ] {
            assert!(parse_id(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dates_have_milliseconds_and_z() {
        assert_eq!(iso(1_423_052_360_346), "2015-02-04T12:19:20.346Z");
    }
}
