//! OVH's vocabulary (reference `provider-apis.md` §2.2): jobs, outgoing and incoming SMS, the
//! `ptt`, `deliveryReceipt` and callback `dlr` codes, dates with their offset.

use jiff::tz::TimeZone;
use pigeon_core::time::Ts;
use pigeon_store::messages::Item;
use serde_json::{Value, json};

/// ISO 8601 with the offset of the account's time zone (`2026-11-25T16:02:03+01:00`).
pub fn date(ms: i64, tz: &TimeZone) -> String {
    Ts(ms)
        .to_timestamp()
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Pigeon's `ptt`: 0 taken by the network, 1 waiting, 2 failed.
pub fn ptt(status: &str) -> i64 {
    match status {
        "sent" | "delivered" => 0,
        "scheduled" | "queued" | "sending" => 1,
        _ => 2,
    }
}

/// `deliveryReceipt`, in the DLR-mask codes OVH uses: 1 delivered, 2 not delivered, 16 failed,
/// 0 no report yet.
pub fn delivery_receipt(status: &str) -> i64 {
    match status {
        "delivered" => 1,
        "undelivered" => 2,
        "failed" | "expired" | "canceled" => 16,
        _ => 0,
    }
}

/// The `dlr` of the account's `callBack` for a message moving to `status` (`tried`: back in
/// the queue after a failed attempt); `None` for changes OVH does not report.
pub fn callback_dlr(status: &str, tried: bool) -> Option<i64> {
    match status {
        "delivered" => Some(1),
        "undelivered" => Some(2),
        "failed" | "expired" => Some(16),
        "sent" => Some(8),
        "queued" if tried => Some(4),
        _ => None,
    }
}

/// A pending job (`sms.Job`).
pub fn job(m: &Item, tz: &TimeZone) -> Value {
    json!({
        "id": m.id,
        "creationDatetime": date(m.created_at, tz),
        "credits": m.segments,
        "deliveredAt": m.delivered_at.map(|at| date(at, tz)),
        "deliveryReceipt": delivery_receipt(&m.status),
        "differedDelivery": ((m.at - m.created_at) / 60_000).max(0),
        "message": m.text,
        "messageLength": m.text.chars().count(),
        "numberOfSms": m.segments,
        "ptt": ptt(&m.status),
        "receiver": m.destination,
        "sender": m.origin.clone().unwrap_or_default(),
        "sentAt": m.sent_at.map(|at| date(at, tz)),
    })
}

/// A sent SMS (`sms.Outgoing`): a job's fields and its tag.
pub fn outgoing(m: &Item, tz: &TimeZone) -> Value {
    let mut v = job(m, tz);
    if let Value::Object(fields) = &mut v {
        fields.insert("tag".into(), json!(m.tag.clone().unwrap_or_default()));
        fields.insert("batchID".into(), Value::Null);
        fields.insert("messageID".into(), json!(m.id.to_string()));
        fields.insert("tariffCode".into(), Value::Null);
    }
    v
}

/// A received SMS (`sms.Incoming`).
pub fn incoming(m: &Item, tz: &TimeZone) -> Value {
    json!({
        "id": m.id,
        "creationDatetime": date(m.at, tz),
        "credits": 0,
        "message": m.text,
        "sender": m.origin,
        "tag": m.tag.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_carry_the_accounts_offset() {
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        assert_eq!(date(1_764_086_523_000, &paris), "2025-11-25T17:02:03+01:00");
        assert_eq!(
            date(1_764_086_523_000, &TimeZone::UTC),
            "2025-11-25T16:02:03+00:00"
        );
    }

    #[test]
    fn status_codes() {
        for (status, p, receipt, dlr) in [
            ("queued", 1, 0, None),
            ("sent", 0, 0, Some(8)),
            ("delivered", 0, 1, Some(1)),
            ("undelivered", 2, 2, Some(2)),
            ("failed", 2, 16, Some(16)),
            ("expired", 2, 16, Some(16)),
            ("canceled", 2, 16, None),
        ] {
            assert_eq!(
                (
                    ptt(status),
                    delivery_receipt(status),
                    callback_dlr(status, false)
                ),
                (p, receipt, dlr),
                "{status}"
            );
        }
        assert_eq!(callback_dlr("queued", true), Some(4));
    }
}
