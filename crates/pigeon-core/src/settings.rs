//! Per-user settings: RaspiSMS's key/value store with its defaults, plus Pigeon's own keys.

/// Every setting a user has, with its default (RaspiSMS `USER_DEFAULT_SETTINGS`, plus
/// `timezone`, which RaspiSMS takes from the server).
pub const DEFAULTS: &[(&str, &str)] = &[
    ("detect_url", "1"),
    ("sms_reception_sound", "1"),
    ("transfer", "0"),
    ("smsstop", "1"),
    ("sms_flash", "0"),
    ("templating", "1"),
    ("display_help", "1"),
    ("conditional_group", "1"),
    ("webhook", "1"),
    ("preferred_phone_country", "fr,be,ca"),
    ("default_phone_country", "fr"),
    ("authorized_phone_country", "fr,be,ca"),
    ("mms", "1"),
    ("alert_quota_limit_reached", "1"),
    ("alert_quota_limit_close", "0.9"),
    ("hide_menus", ""),
    ("force_gsm_alphabet", "0"),
    ("phone_limit", "0"),
    ("phone_priority", "0"),
    ("shorten_url", "0"),
    ("smsstop_respond", "1"),
    (
        "smsstop_response",
        "Demande prise en compte, vous ne recevrez plus de messages.",
    ),
    ("phone_reliability_failed", "1"),
    ("phone_reliability_failed_rate_limit", "10"),
    ("phone_reliability_failed_volume", "25"),
    ("phone_reliability_failed_period", "120"),
    ("phone_reliability_failed_grace_period", "1"),
    ("phone_reliability_failed_email", "0"),
    ("phone_reliability_failed_webhook", "1"),
    ("phone_reliability_failed_auto_disable", "0"),
    ("phone_reliability_unknown", "0"),
    ("phone_reliability_unknown_rate_limit", "25"),
    ("phone_reliability_unknown_volume", "25"),
    ("phone_reliability_unknown_period", "120"),
    ("phone_reliability_unknown_grace_period", "1"),
    ("phone_reliability_unknown_email", "0"),
    ("phone_reliability_unknown_webhook", "1"),
    ("phone_reliability_unknown_auto_disable", "0"),
    ("timezone", "UTC"),
    // What one segment costs, shown as a message's `price` by the APIs that have one (Reach)
    // and checked against its `maxPrice`; a unit in lower-case ISO 4217.
    ("price_per_segment", "0"),
    ("price_unit", "eur"),
    // The OVH dialect's account: its callback URLs and description, the opt-out mention added
    // to commercial messages, and when commercial messages may go out (in `timezone`).
    ("ovh_callback", ""),
    ("ovh_stop_callback", ""),
    ("ovh_description", ""),
    ("ovh_stop_clause", "STOP au 36111"),
    ("commercial_days", "mon,tue,wed,thu,fri,sat"),
    ("commercial_hours", "08:00-20:00"),
];

/// What one segment costs, and in which currency (settings `price_per_segment`, `price_unit`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pricing {
    pub per_segment: f64,
    pub unit: String,
}

impl Pricing {
    /// From the settings' text; `None` unless the price is a non-negative number.
    pub fn parse(per_segment: &str, unit: &str) -> Option<Pricing> {
        let per_segment = per_segment.trim().parse::<f64>().ok()?;
        (per_segment.is_finite() && per_segment >= 0.0).then(|| Pricing {
            per_segment,
            unit: unit.trim().to_ascii_lowercase(),
        })
    }

    /// The price of a message of `segments` segments.
    pub fn of(&self, segments: i64) -> f64 {
        self.per_segment * segments as f64
    }
}

/// PHP's truthiness of a form or setting string: only `""` and `"0"` are false, so `"false"`
/// and `"no"` are true (RaspiSMS casts form fields with `(bool)`).
pub fn php_truthy(value: &str) -> bool {
    !(value.is_empty() || value == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_truthiness() {
        assert!(!php_truthy(""));
        assert!(!php_truthy("0"));
        for yes in ["1", "true", "false", "no", " ", "00"] {
            assert!(php_truthy(yes), "{yes}");
        }
    }

    #[test]
    fn prices_are_non_negative_numbers() {
        let p = Pricing::parse("0.05", "EUR").expect("price");
        assert_eq!(p.unit, "eur");
        assert!((p.of(3) - 0.15).abs() < 1e-9);
        for bad in ["", "-1", "abc", "NaN", "inf"] {
            assert!(Pricing::parse(bad, "eur").is_none(), "{bad}");
        }
    }

    #[test]
    fn defaults_are_unique() {
        let mut names: Vec<_> = DEFAULTS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DEFAULTS.len());
    }
}
