//! Retry backoff. Pure: the caller supplies the randomness and the clock.

use std::time::Duration;

use jiff::{Timestamp, fmt::rfc2822::DateTimeParser, fmt::strtime, tz::TimeZone};

/// The sender's default schedule for transient send failures: 5 s, 30 s,
/// 2 min, 10 min, 30 min.
pub const SEND_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
];

/// Delay before retry number `attempt` (1 = first retry) from a schedule,
/// with ±`jitter` (0.0–1.0) applied using the provided random fraction `r`
/// in [0,1) (pure: the caller passes randomness), and at least `floor`; past
/// the end of the schedule the last entry repeats.
///
/// Out-of-range inputs are tolerated rather than trusted: attempt 0 counts
/// as 1, `jitter` and `r` are clamped (NaN means no jitter), an empty
/// schedule yields `floor`, and an overflowing product saturates.
pub fn delay(
    schedule: &[Duration],
    attempt: u32,
    jitter: f64,
    r: f64,
    floor: Duration,
) -> Duration {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    let Some(&base) = schedule.get(index).or(schedule.last()) else {
        return floor;
    };
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let r = if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 + jitter * (2.0 * r - 1.0);
    // Skip the float round trip when there is nothing to scale, so a
    // jitter-free schedule is returned to the nanosecond.
    let jittered = if factor == 1.0 {
        base
    } else {
        // factor is in [0, 2], so the product is never negative; only
        // overflow can fail.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    };
    jittered.max(floor)
}

/// Parses an HTTP Retry-After value (delta seconds, or an HTTP date
/// relative to `now_unix_secs`).
///
/// A date in the past means "retry now" (zero). Anything unparseable,
/// including a delta too large for a `u64`, is `None` so the caller falls
/// back to its own schedule.
pub fn parse_retry_after(value: &str, now_unix_secs: i64) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = http_date(value)?;
    let wait = at.as_second().saturating_sub(now_unix_secs);
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

/// An HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, plus the two obsolete forms
/// recipients are still asked to accept (RFC 850 and asctime).
fn http_date(value: &str) -> Option<Timestamp> {
    static PARSER: DateTimeParser = DateTimeParser::new();
    if let Ok(ts) = PARSER.parse_timestamp(value) {
        return Some(ts);
    }
    ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
        .into_iter()
        .find_map(|format| {
            let dt = strtime::parse(format, value).ok()?.to_datetime().ok()?;
            Some(dt.to_zoned(TimeZone::UTC).ok()?.timestamp())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn schedule_without_jitter() {
        let got: Vec<Duration> = (1..=7)
            .map(|a| delay(&SEND_SCHEDULE, a, 0.0, 0.3, Duration::ZERO))
            .collect();
        assert_eq!(
            got,
            vec![S(5), S(30), S(120), S(600), S(1800), S(1800), S(1800)]
        );
        // Attempt 0 is treated as the first retry.
        assert_eq!(delay(&SEND_SCHEDULE, 0, 0.0, 0.0, Duration::ZERO), S(5));
        assert_eq!(
            delay(&SEND_SCHEDULE, u32::MAX, 0.0, 0.0, Duration::ZERO),
            S(1800)
        );
    }

    #[test]
    fn jitter_spans_the_band() {
        // r = 0 → −jitter, r = 0.5 → none, r → 1 → +jitter.
        assert_eq!(delay(&[S(100)], 1, 0.2, 0.0, Duration::ZERO), S(80));
        assert_eq!(delay(&[S(100)], 1, 0.2, 0.5, Duration::ZERO), S(100));
        assert_eq!(delay(&[S(100)], 1, 0.2, 0.75, Duration::ZERO), S(110));
        assert_eq!(delay(&[S(100)], 1, 1.0, 0.0, Duration::ZERO), S(0));
    }

    #[test]
    fn floor_and_odd_inputs() {
        assert_eq!(delay(&[S(100)], 1, 1.0, 0.0, S(3)), S(3));
        assert_eq!(delay(&[], 1, 0.5, 0.5, S(7)), S(7));
        assert_eq!(delay(&[S(10)], 1, f64::NAN, 0.0, Duration::ZERO), S(10));
        assert_eq!(delay(&[S(10)], 1, 0.5, f64::NAN, Duration::ZERO), S(10));
        // Out-of-range jitter and r are clamped to 1.
        assert_eq!(delay(&[S(10)], 1, 7.0, 5.0, Duration::ZERO), S(20));
        assert_eq!(delay(&[S(10)], 1, -1.0, 0.0, Duration::ZERO), S(10));
        // Saturates instead of panicking.
        assert_eq!(
            delay(&[Duration::MAX], 1, 1.0, 0.99, Duration::ZERO),
            Duration::MAX
        );
    }

    #[test]
    fn retry_after_values() {
        // 1994-11-06T08:49:37Z
        let now = 784_111_777;
        let cases: [(&str, Option<Duration>); 13] = [
            ("120", Some(S(120))),
            (" 0 ", Some(S(0))),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(S(0))),
            ("Sun, 06 Nov 1994 08:51:37 GMT", Some(S(120))),
            // In the past: retry now.
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(S(0))),
            // Obsolete RFC 850 and asctime forms.
            ("Sunday, 06-Nov-94 08:50:37 GMT", Some(S(60))),
            ("Sun Nov  6 08:50:37 1994", Some(S(60))),
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("99999999999999999999999", None),
            ("Sun, 06 Nov 1994 25:00:00 GMT", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn delay_stays_in_band(
            schedule in prop::collection::vec(0u64..10_000_000_000, 1..8),
            attempt in 0u32..20,
            jitter in 0.0f64..=1.0,
            r in 0.0f64..1.0,
            floor_ms in 0u64..100_000,
        ) {
            let schedule: Vec<Duration> = schedule.into_iter().map(Duration::from_millis).collect();
            let floor = Duration::from_millis(floor_ms);
            let got = delay(&schedule, attempt, jitter, r, floor);
            let index = (attempt.max(1) as usize - 1).min(schedule.len() - 1);
            let base = schedule[index].as_secs_f64();
            // A microsecond of slack for float rounding.
            let eps = 1e-6;
            let low = (base * (1.0 - jitter) - eps).max(floor.as_secs_f64());
            let high = (base * (1.0 + jitter) + eps).max(floor.as_secs_f64());
            prop_assert!(got >= floor);
            prop_assert!(got.as_secs_f64() >= low, "{:?} < {}", got, low);
            prop_assert!(got.as_secs_f64() <= high, "{:?} > {}", got, high);
        }

        #[test]
        fn retry_after_never_panics(value in ".{0,40}", now in any::<i64>()) {
            let _ = parse_retry_after(&value, now);
        }

        #[test]
        fn retry_after_delta_seconds(secs in any::<u64>(), now in any::<i64>()) {
            prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(Duration::from_secs(secs)));
        }
    }
}
