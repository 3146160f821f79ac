//! Timestamps: stored as i64 epoch milliseconds (UTC), formatted by each door in the account's
//! time zone.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

pub(crate) mod php_date;
pub mod window;

/// Epoch milliseconds, UTC: the one time representation the store knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub i64);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("not a date of format \"Y-m-d H:i:s\"")]
    Format,
    #[error("not a date")]
    Unparsable,
    #[error("unknown time zone `{0}`")]
    Zone(String),
}

impl Ts {
    pub fn now() -> Ts {
        Ts(Timestamp::now().as_millisecond())
    }

    pub fn from_timestamp(ts: Timestamp) -> Ts {
        Ts(ts.as_millisecond())
    }

    pub fn to_timestamp(self) -> Timestamp {
        Timestamp::from_millisecond(self.0).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    pub fn minus_millis(self, ms: i64) -> Ts {
        Ts(self.0.saturating_sub(ms))
    }
}

/// ISO 8601 in UTC with milliseconds and `Z` (`2015-02-04T12:19:20.346Z`), the date shape of
/// the device and messaging APIs (their clients parse exactly this).
pub fn iso_millis(ms: i64) -> String {
    Ts(ms)
        .to_timestamp()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub fn zone(name: &str) -> Result<TimeZone, TimeError> {
    TimeZone::get(name).map_err(|_| TimeError::Zone(name.to_string()))
}

/// Parses RaspiSMS's strict `Y-m-d H:i:s` in the account's time zone.
pub fn parse_local(text: &str, tz: &TimeZone) -> Result<Ts, TimeError> {
    let strict = text.len() == 19
        && text.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == ' ',
            13 | 16 => c == ':',
            _ => c.is_ascii_digit(),
        });
    if !strict {
        return Err(TimeError::Format);
    }
    let civil = DateTime::strptime("%Y-%m-%d %H:%M:%S", text).map_err(|_| TimeError::Format)?;
    let zoned = civil.to_zoned(tz.clone()).map_err(|_| TimeError::Format)?;
    Ok(Ts::from_timestamp(zoned.timestamp()))
}

/// Parses the date forms people pass to stats endpoints (what PHP's `new DateTime()` is used for):
/// `Y-m-d`, `Y-m-d H:i:s`, `Y-m-dTH:i:s`, RFC 3339, `now`, `today`, `yesterday`, `tomorrow`.
pub fn parse_lenient(text: &str, tz: &TimeZone, now: Ts) -> Result<Ts, TimeError> {
    let text = text.trim();
    let today = now.to_timestamp().to_zoned(tz.clone()).date();
    let day = |offset: i64| -> Result<Ts, TimeError> {
        let date = today
            .checked_add(offset.days())
            .map_err(|_| TimeError::Unparsable)?;
        start_of(date.to_datetime(jiff::civil::Time::midnight()), tz)
    };
    match text.to_ascii_lowercase().as_str() {
        "now" => return Ok(now),
        "today" | "midnight" => return day(0),
        "yesterday" => return day(-1),
        "tomorrow" => return day(1),
        _ => {}
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(Ts::from_timestamp(ts));
    }
    if let Ok(civil) = text.parse::<DateTime>() {
        return start_of(civil, tz);
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return start_of(date.to_datetime(jiff::civil::Time::midnight()), tz);
    }
    Err(TimeError::Unparsable)
}

fn start_of(civil: DateTime, tz: &TimeZone) -> Result<Ts, TimeError> {
    civil
        .to_zoned(tz.clone())
        .map(|z| Ts::from_timestamp(z.timestamp()))
        .map_err(|_| TimeError::Unparsable)
}

/// Formats as `Y-m-d H:i:s` in the given zone.
pub fn format_local(ts: Ts, tz: &TimeZone) -> String {
    ts.to_timestamp()
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Formats the day part (`Y-m-d`) in the given zone.
pub fn format_day(ts: Ts, tz: &TimeZone) -> String {
    ts.to_timestamp()
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d")
        .to_string()
}

/// The start of a phone-limit window, from the PHP relative date strings RaspiSMS stores
/// (`today`, `-24 hours`, `this week midnight`, ...). Only the forms people use for limits are
/// understood; anything else is an error rather than a silently ignored limit.
pub fn window_start(startpoint: &str, now: Ts, tz: &TimeZone) -> Result<Ts, TimeError> {
    let zoned = now.to_timestamp().to_zoned(tz.clone());
    let text = startpoint.trim().to_ascii_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = match words.as_slice() {
        ["today"] | ["midnight"] | ["today", "midnight"] | ["this", "month", "midnight"] => {
            midnight(&zoned)?
        }
        ["yesterday"] | ["yesterday", "midnight"] => midnight(&zoned)?
            .checked_sub(1.day())
            .map_err(|_| TimeError::Unparsable)?,
        ["this", "week"] | ["monday", "this", "week"] => monday(&zoned)?
            .with()
            .time(zoned.time())
            .build()
            .map_err(|_| TimeError::Unparsable)?,
        ["this", "week", "midnight"] | ["monday", "this", "week", "midnight"] => {
            midnight(&monday(&zoned)?)?
        }
        ["first", "day", "of", "this", "month"] => {
            zoned.first_of_month().map_err(|_| TimeError::Unparsable)?
        }
        ["first", "day", "of", "this", "month", "midnight"] => {
            midnight(&zoned.first_of_month().map_err(|_| TimeError::Unparsable)?)?
        }
        [amount, unit] => zoned
            .checked_add(relative_span(amount, unit)?)
            .map_err(|_| TimeError::Unparsable)?,
        [amount, unit, "ago"] if !amount.starts_with(['-', '+']) => zoned
            .checked_sub(relative_span(amount, unit)?)
            .map_err(|_| TimeError::Unparsable)?,
        _ => return Err(TimeError::Unparsable),
    };
    Ok(Ts::from_timestamp(at.timestamp()))
}

fn midnight(zoned: &Zoned) -> Result<Zoned, TimeError> {
    zoned.start_of_day().map_err(|_| TimeError::Unparsable)
}

fn monday(zoned: &Zoned) -> Result<Zoned, TimeError> {
    let back = i64::from(zoned.weekday().to_monday_zero_offset());
    zoned
        .checked_sub(back.days())
        .map_err(|_| TimeError::Unparsable)
}

fn relative_span(amount: &str, unit: &str) -> Result<jiff::Span, TimeError> {
    let n: i64 = amount.parse().map_err(|_| TimeError::Unparsable)?;
    let span = jiff::Span::new();
    let span = match unit.trim_end_matches('s') {
        "sec" | "second" => span.try_seconds(n),
        "min" | "minute" => span.try_minutes(n),
        "hour" => span.try_hours(n),
        "day" => span.try_days(n),
        "week" => span.try_weeks(n),
        "month" => span.try_months(n),
        _ => return Err(TimeError::Unparsable),
    };
    span.map_err(|_| TimeError::Unparsable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> TimeZone {
        zone("Europe/Paris").expect("zone")
    }

    #[test]
    fn strict_format_round_trips_in_zone() {
        let ts = parse_local("2020-06-17 17:30:25", &paris()).expect("parse");
        assert_eq!(format_local(ts, &paris()), "2020-06-17 17:30:25");
        assert_eq!(format_local(ts, &TimeZone::UTC), "2020-06-17 15:30:25");
    }

    #[test]
    fn strict_format_rejects_other_shapes() {
        for bad in [
            "2020-06-17",
            "2020-06-17T17:30:25",
            "2020-6-17 17:30:25",
            "2020-13-17 17:30:25",
            "2020-02-30 10:00:00",
            "tomorrow",
            "",
            "2020-06-17 17:30:25 ",
        ] {
            assert_eq!(parse_local(bad, &paris()), Err(TimeError::Format), "{bad}");
        }
    }

    #[test]
    fn lenient_accepts_common_forms() {
        let now = parse_local("2024-03-10 12:00:00", &TimeZone::UTC).expect("now");
        let utc = TimeZone::UTC;
        let day = parse_lenient("2024-03-01", &utc, now).expect("day");
        assert_eq!(format_local(day, &utc), "2024-03-01 00:00:00");
        let full = parse_lenient("2024-03-01 10:11:12", &utc, now).expect("full");
        assert_eq!(format_local(full, &utc), "2024-03-01 10:11:12");
        let rfc = parse_lenient("2024-03-01T10:11:12Z", &utc, now).expect("rfc");
        assert_eq!(rfc, full);
        assert_eq!(
            format_local(parse_lenient("yesterday", &utc, now).expect("y"), &utc),
            "2024-03-09 00:00:00"
        );
        assert!(parse_lenient("not a date", &utc, now).is_err());
    }

    #[test]
    fn limit_windows() {
        let utc = TimeZone::UTC;
        // A Wednesday.
        let now = parse_local("2024-03-13 15:45:00", &utc).expect("now");
        let check = |s: &str, want: &str| {
            let got = window_start(s, now, &utc).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(format_local(got, &utc), want, "{s}");
        };
        check("today", "2024-03-13 00:00:00");
        check("-24 hours", "2024-03-12 15:45:00");
        check("24 hours ago", "2024-03-12 15:45:00");
        check("-1 week", "2024-03-06 15:45:00");
        check("this week midnight", "2024-03-11 00:00:00");
        check("first day of this month midnight", "2024-03-01 00:00:00");
        check("-30 minutes", "2024-03-13 15:15:00");
        for bad in ["", "sometime", "-x hours", "-3 fortnights"] {
            assert!(window_start(bad, now, &utc).is_err(), "{bad}");
        }
    }
}
