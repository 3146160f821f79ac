//! Astandes status codes for Pigeon's message states: the one table of this dialect.

/// The code a message shows for an internal state. `tried` tells a message back in the queue
/// after a failed attempt (301, trying again) from a new one (201); a failure keeps the raw
/// 5xx code its device reported, if any.
pub fn code(status: &str, tried: bool, error_code: Option<&str>) -> u16 {
    match status {
        "scheduled" => 201,
        // A history stage only: the device's phone has the message.
        "device_received" => 202,
        "queued" if tried => 301,
        "queued" => 201,
        "sending" => 302,
        "sent" => 203,
        "delivered" => 205,
        "received" => 204,
        "expired" => 501,
        "undelivered" => 504,
        "canceled" => 505,
        "failed" => error_code
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (500..=511).contains(c))
            .unwrap_or(506),
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::code;

    #[test]
    fn every_state_has_its_code() {
        for (status, tried, error, expected) in [
            ("scheduled", false, None, 201),
            ("device_received", false, None, 202),
            ("queued", false, None, 201),
            ("queued", true, None, 301),
            ("sending", false, None, 302),
            ("sent", false, None, 203),
            ("delivered", false, None, 205),
            ("received", false, None, 204),
            ("expired", false, None, 501),
            ("undelivered", false, None, 504),
            ("canceled", false, None, 505),
            ("failed", false, None, 506),
            ("failed", false, Some("507"), 507),
            ("failed", false, Some("510"), 510),
            ("failed", false, Some("42"), 506),
            ("failed", false, Some("garbage"), 506),
        ] {
            assert_eq!(
                code(status, tried, error),
                expected,
                "{status} {tried} {error:?}"
            );
        }
    }
}
