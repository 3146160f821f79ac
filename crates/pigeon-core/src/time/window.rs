//! A weekly sending window (days of the week and hours of the day, in a time zone), such as the
//! French rule for commercial SMS: Monday to Saturday, 08:00 to 20:00.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};

use super::{TimeError, Ts};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: Vec<Weekday>,
    opens: Time,
    closes: Time,
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.trim().to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

impl Window {
    /// `days`: names separated by commas (`mon,tue,…`); `hours`: `HH:MM-HH:MM`, opening before
    /// closing.
    pub fn parse(days: &str, hours: &str) -> Result<Window, TimeError> {
        let days = days
            .split(',')
            .filter(|d| !d.trim().is_empty())
            .map(|d| weekday(d).ok_or(TimeError::Unparsable))
            .collect::<Result<Vec<_>, _>>()?;
        let (opens, closes) = hours.split_once('-').ok_or(TimeError::Unparsable)?;
        let time = |t: &str| t.trim().parse::<Time>().map_err(|_| TimeError::Unparsable);
        let (opens, closes) = (time(opens)?, time(closes)?);
        if days.is_empty() || opens >= closes {
            return Err(TimeError::Unparsable);
        }
        Ok(Window {
            days,
            opens,
            closes,
        })
    }

    /// `None` when the window is open at `now`; otherwise when it next opens.
    pub fn next_opening(&self, now: Ts, tz: &TimeZone) -> Option<Ts> {
        let now = now.to_timestamp().to_zoned(tz.clone());
        (0..=7).find_map(|ahead| {
            let day = now.date().checked_add(ahead.days()).ok()?;
            if !self.days.contains(&day.weekday()) {
                return None;
            }
            let at = |t: Time| day.to_datetime(t).to_zoned(tz.clone()).ok();
            let (opens, closes): (Zoned, Zoned) = (at(self.opens)?, at(self.closes)?);
            if ahead == 0 && opens <= now && now < closes {
                return Some(None);
            }
            (opens > now).then(|| Some(Ts::from_timestamp(opens.timestamp())))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Ts {
        Ts::from_timestamp(text.parse().expect("timestamp"))
    }

    #[test]
    fn the_french_commercial_window() {
        let w = Window::parse("mon,tue,wed,thu,fri,sat", "08:00-20:00").expect("window");
        let paris = TimeZone::get("Europe/Paris").expect("zone");
        // Wednesday 2026-11-25, 10:00 in Paris: open.
        assert_eq!(w.next_opening(at("2026-11-25T09:00:00Z"), &paris), None);
        // 21:00 in Paris: the next morning at 08:00 Paris time.
        assert_eq!(
            w.next_opening(at("2026-11-25T20:00:00Z"), &paris),
            Some(at("2026-11-26T07:00:00Z"))
        );
        // Saturday 20:30: Monday 08:00 (no Sunday).
        assert_eq!(
            w.next_opening(at("2026-11-28T19:30:00Z"), &paris),
            Some(at("2026-11-30T07:00:00Z"))
        );
        // Early morning: the same day's opening.
        assert_eq!(
            w.next_opening(at("2026-11-25T05:00:00Z"), &paris),
            Some(at("2026-11-25T07:00:00Z"))
        );
        // Closing time itself is closed.
        assert_eq!(
            w.next_opening(at("2026-11-25T19:00:00Z"), &paris),
            Some(at("2026-11-26T07:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_are_refused() {
        for (days, hours) in [
            ("", "08:00-20:00"),
            ("mon,funday", "08:00-20:00"),
            ("mon", "20:00-08:00"),
            ("mon", "8h-20h"),
        ] {
            assert!(Window::parse(days, hours).is_err(), "{days} {hours}");
        }
        assert!(Window::parse("Monday, sat", " 08:00 - 20:00 ").is_ok());
    }
}
