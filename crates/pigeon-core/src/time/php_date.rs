//! The subset of PHP's date parsing and formatting RaspiSMS users rely on,
//! on naive (zone-less) local date-times: `date()` and `date_from_format()`
//! in conditions, the `date` function and filters in templates.

use jiff::civil::{Date, DateTime, Time};
use jiff::{Span, Timestamp};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.i - start
    }

    /// Between `min` and `max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
        let start = self.i;
        let mut v: i64 = 0;
        while self.i - start < max
            && let Some(c) = self.peek().filter(u8::is_ascii_digit)
        {
            v = v * 10 + i64::from(c - b'0');
            self.i += 1;
        }
        if self.i - start < min {
            self.i = start;
            return None;
        }
        Some(v)
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_lowercase()
    }
}

fn make_date(y: i64, m: i64, d: i64) -> Option<Date> {
    Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()
}

fn make_time(h: i64, i: i64, s: i64) -> Option<Time> {
    Time::new(
        i8::try_from(h).ok()?,
        i8::try_from(i).ok()?,
        i8::try_from(s).ok()?,
        0,
    )
    .ok()
}

type Ymd = (i64, i64, i64);

/// `Y-m-d`, `Y/m/d`, `m/d/Y` (American, like PHP) or `d-m-Y` / `d.m.Y`.
fn absolute_date(c: &mut Cursor<'_>) -> Option<Date> {
    let start = c.i;
    let mut attempt = |f: &dyn Fn(&mut Cursor<'_>) -> Option<Ymd>| {
        c.i = start;
        let r = f(c);
        if r.is_none() {
            c.i = start;
        }
        r
    };
    let ymd = attempt(&|c| {
        let y = c.digits(4, 4)?;
        let sep = c.peek().filter(|s| *s == b'-' || *s == b'/')?;
        c.i += 1;
        let m = c.digits(1, 2)?;
        c.eat(sep).then_some(())?;
        Some((y, m, c.digits(1, 2)?))
    })
    .or_else(|| {
        attempt(&|c| {
            let m = c.digits(1, 2)?;
            c.eat(b'/').then_some(())?;
            let d = c.digits(1, 2)?;
            c.eat(b'/').then_some(())?;
            Some((c.digits(4, 4)?, m, d))
        })
    })
    .or_else(|| {
        attempt(&|c| {
            let d = c.digits(1, 2)?;
            let sep = c.peek().filter(|s| *s == b'-' || *s == b'.')?;
            c.i += 1;
            let m = c.digits(1, 2)?;
            c.eat(sep).then_some(())?;
            Some((c.digits(4, 4)?, m, d))
        })
    })?;
    let date = make_date(ymd.0, ymd.1, ymd.2);
    if date.is_none() {
        // Out-of-range fields: let the caller see the text as unparsed.
        c.i = start;
    }
    date
}

/// `HH:MM[:SS[.frac]]`, optionally followed by a zone that is ignored.
fn time_of_day(c: &mut Cursor<'_>) -> Option<Time> {
    let start = c.i;
    let parsed = (|| {
        let h = c.digits(1, 2)?;
        c.eat(b':').then_some(())?;
        let m = c.digits(2, 2)?;
        let s = if c.eat(b':') { c.digits(2, 2)? } else { 0 };
        if c.eat(b'.') {
            c.digits(1, 9)?;
        }
        make_time(h, m, s)
    })();
    if parsed.is_none() {
        c.i = start;
        return None;
    }
    // Zone designators: `Z`, `+01:00`, `+0100` (naive times ignore them).
    if !c.eat(b'z') {
        let before = c.i;
        let zone = (|| {
            c.peek().filter(|s| *s == b'+' || *s == b'-')?;
            c.i += 1;
            c.digits(2, 2)?;
            c.eat(b':');
            c.digits(2, 2)
        })();
        if zone.is_none() {
            c.i = before;
        }
    }
    parsed
}

fn relative(c: &mut Cursor<'_>, base: DateTime) -> Option<DateTime> {
    let mut terms: Vec<(i64, String)> = Vec::new();
    let mut ago = false;
    loop {
        c.skip_ws();
        if c.at_end() {
            break;
        }
        let negative = if c.eat(b'-') {
            true
        } else {
            c.eat(b'+');
            false
        };
        c.skip_ws();
        if !negative && c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            // Only `ago` may follow the terms.
            if c.word() == "ago" && !terms.is_empty() {
                ago = true;
                continue;
            }
            return None;
        }
        let n = c.digits(1, 9)?;
        c.skip_ws();
        let unit = c.word();
        terms.push((if negative { -n } else { n }, unit));
    }
    let mut dt = base;
    for (n, unit) in terms {
        let n = if ago { -n } else { n };
        let span = match unit.trim_end_matches('s') {
            "sec" | "second" => Span::new().try_seconds(n),
            "min" | "minute" => Span::new().try_minutes(n),
            "hour" => Span::new().try_hours(n),
            "day" => Span::new().try_days(n),
            "week" => Span::new().try_weeks(n),
            "fortnight" => Span::new().try_weeks(n.checked_mul(2)?),
            "month" => Span::new().try_months(n),
            "year" => Span::new().try_years(n),
            _ => return None,
        }
        .ok()?;
        dt = dt.checked_add(span).ok()?;
    }
    Some(dt)
}

/// PHP `date_create()` for the formats people actually write: `now`,
/// `today`, `midnight`, `noon`, `tomorrow`, `yesterday`, absolute dates
/// with an optional time, then relative terms like `+1 day`, `-18 years`
/// or `2 weeks ago`. `None` where PHP would return false (or where we
/// don't support PHP's more exotic formats).
pub(crate) fn parse(input: &str, now: DateTime) -> Option<DateTime> {
    let lower = input.trim().to_ascii_lowercase();
    let mut c = Cursor {
        s: lower.as_bytes(),
        i: 0,
    };
    let midnight = |d: Date| d.to_datetime(Time::midnight());
    let start = c.i;
    let base = match c.word().as_str() {
        "now" | "" => {
            if c.i == start {
                // No keyword: an absolute date or time, else "now".
                if let Some(date) = absolute_date(&mut c) {
                    let mut time = Time::midnight();
                    let before = c.i;
                    if c.eat(b't') || c.skip_ws() > 0 {
                        match time_of_day(&mut c) {
                            Some(t) => time = t,
                            None => c.i = before,
                        }
                    }
                    date.to_datetime(time)
                } else if let Some(time) = time_of_day(&mut c) {
                    now.date().to_datetime(time)
                } else {
                    now
                }
            } else {
                now
            }
        }
        "today" | "midnight" => midnight(now.date()),
        "noon" => now.date().to_datetime(make_time(12, 0, 0)?),
        "tomorrow" => midnight(now.date().tomorrow().ok()?),
        "yesterday" => midnight(now.date().yesterday().ok()?),
        _ => return None,
    };
    relative(&mut c, base)
}

/// PHP `DateTime::createFromFormat()` for the format characters
/// `d j m n Y y H G h g i s A a M F D l U` plus `\`, `!`, `|`, `?`, `*`,
/// `+`, `#` and literal characters. Fields the format doesn't set come
/// from `now` unless `!` or `|` is used, like PHP.
pub(crate) fn parse_with_format(format: &str, input: &str, now: DateTime) -> Option<DateTime> {
    let mut c = Cursor {
        s: input.as_bytes(),
        i: 0,
    };
    let (mut y, mut mo, mut d) = (None, None, None);
    let (mut h, mut mi, mut s) = (None, None, None);
    let mut pm: Option<bool> = None;
    let mut epoch_defaults = false;
    let mut ignore_trailing = false;
    let mut fmt = format.chars();
    while let Some(f) = fmt.next() {
        match f {
            'd' | 'j' => d = Some(c.digits(1, 2)?),
            'm' | 'n' => mo = Some(c.digits(1, 2)?),
            'Y' => y = Some(c.digits(1, 4)?),
            'y' => {
                let v = c.digits(2, 2)?;
                y = Some(if v >= 70 { 1900 + v } else { 2000 + v });
            }
            'H' | 'G' | 'h' | 'g' => h = Some(c.digits(1, 2)?),
            'i' => mi = Some(c.digits(2, 2)?),
            's' => s = Some(c.digits(2, 2)?),
            'A' | 'a' => {
                pm = Some(match c.word().as_str() {
                    "am" => false,
                    "pm" => true,
                    _ => return None,
                });
            }
            'M' | 'F' => {
                let w = c.word();
                let idx = MONTHS.iter().position(|m| {
                    let m = m.to_ascii_lowercase();
                    w == m || (w.len() == 3 && m.starts_with(&w))
                })?;
                mo = Some(i64::try_from(idx).ok()? + 1);
            }
            'D' | 'l' => {
                if c.word().is_empty() {
                    return None;
                }
            }
            'U' => {
                let negative = c.eat(b'-');
                let secs = c.digits(1, 12)?;
                let secs = if negative { -secs } else { secs };
                let dt = jiff::tz::TimeZone::UTC.to_datetime(Timestamp::from_second(secs).ok()?);
                (y, mo, d) = (
                    Some(dt.year().into()),
                    Some(dt.month().into()),
                    Some(dt.day().into()),
                );
                (h, mi, s) = (
                    Some(dt.hour().into()),
                    Some(dt.minute().into()),
                    Some(dt.second().into()),
                );
            }
            '!' => {
                (y, mo, d, h, mi, s, pm) = (None, None, None, None, None, None, None);
                epoch_defaults = true;
            }
            '|' => epoch_defaults = true,
            '+' => ignore_trailing = true,
            '?' => {
                let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
                c.i += rest.chars().next()?.len_utf8();
            }
            '*' => {
                while c
                    .peek()
                    .is_some_and(|b| !b" ,;:/.-()".contains(&b) && !b.is_ascii_digit())
                {
                    c.i += 1;
                }
            }
            '#' => {
                c.peek().filter(|b| b";:/.,-()".contains(b))?;
                c.i += 1;
            }
            ' ' => {
                c.skip_ws();
            }
            '\\' => {
                let lit = fmt.next()?;
                let mut buf = [0u8; 4];
                for b in lit.encode_utf8(&mut buf).bytes() {
                    c.eat(b).then_some(())?;
                }
            }
            lit => {
                let mut buf = [0u8; 4];
                for b in lit.encode_utf8(&mut buf).bytes() {
                    c.eat(b).then_some(())?;
                }
            }
        }
    }
    if !c.at_end() && !ignore_trailing {
        return None;
    }
    if let (Some(hour), Some(is_pm)) = (h, pm) {
        h = Some(match (hour, is_pm) {
            (12, false) => 0,
            (hh, true) if hh < 12 => hh + 12,
            (hh, _) => hh,
        });
    }
    let date = if epoch_defaults {
        make_date(y.unwrap_or(1970), mo.unwrap_or(1), d.unwrap_or(1))?
    } else {
        let today = now.date();
        make_date(
            y.unwrap_or(today.year().into()),
            mo.unwrap_or(today.month().into()),
            d.unwrap_or(today.day().into()),
        )?
    };
    // As in PHP, setting any time field zeroes the unset ones.
    let time = if epoch_defaults || h.is_some() || mi.is_some() || s.is_some() {
        make_time(h.unwrap_or(0), mi.unwrap_or(0), s.unwrap_or(0))?
    } else {
        now.time().with().subsec_nanosecond(0).build().ok()?
    };
    Some(date.to_datetime(time))
}

/// The local wall-clock date-time: "now" for naive PHP dates.
pub(crate) fn now() -> DateTime {
    jiff::Zoned::now().datetime()
}

/// `Y-m-d H:i:s`, the form a date takes where RaspiSMS turns it into a string.
pub(crate) fn format_datetime(dt: DateTime) -> String {
    format(dt, "Y-m-d H:i:s")
}

/// PHP `date()` formatting (`d D j l N S w z W F M m n t L o Y y a A g G
/// h H i s u v U c`), `\` escapes the next character, other characters
/// are copied. Zone-dependent characters assume UTC, the times being naive.
pub(crate) fn format(dt: DateTime, pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    let day_idx = usize::try_from(dt.weekday().to_monday_zero_offset()).unwrap_or(0);
    let month_idx = usize::try_from(dt.month() - 1).unwrap_or(0);
    let hour12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    while let Some(f) = chars.next() {
        match f {
            'd' => out.push_str(&format!("{:02}", dt.day())),
            'D' => out.push_str(&DAYS[day_idx][..3]),
            'j' => out.push_str(&dt.day().to_string()),
            'l' => out.push_str(DAYS[day_idx]),
            'N' => out.push_str(&dt.weekday().to_monday_one_offset().to_string()),
            'S' => out.push_str(match dt.day() {
                1 | 21 | 31 => "st",
                2 | 22 => "nd",
                3 | 23 => "rd",
                _ => "th",
            }),
            'w' => out.push_str(&dt.weekday().to_sunday_zero_offset().to_string()),
            'z' => out.push_str(&(dt.day_of_year() - 1).to_string()),
            'W' => out.push_str(&format!("{:02}", dt.date().iso_week_date().week())),
            'o' => out.push_str(&dt.date().iso_week_date().year().to_string()),
            'F' => out.push_str(MONTHS[month_idx]),
            'M' => out.push_str(&MONTHS[month_idx][..3]),
            'm' => out.push_str(&format!("{:02}", dt.month())),
            'n' => out.push_str(&dt.month().to_string()),
            't' => out.push_str(&dt.days_in_month().to_string()),
            'L' => out.push(if dt.in_leap_year() { '1' } else { '0' }),
            'Y' => out.push_str(&format!("{:04}", dt.year())),
            'y' => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
            'a' => out.push_str(if dt.hour() < 12 { "am" } else { "pm" }),
            'A' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
            'g' => out.push_str(&hour12.to_string()),
            'G' => out.push_str(&dt.hour().to_string()),
            'h' => out.push_str(&format!("{hour12:02}")),
            'H' => out.push_str(&format!("{:02}", dt.hour())),
            'i' => out.push_str(&format!("{:02}", dt.minute())),
            's' => out.push_str(&format!("{:02}", dt.second())),
            'u' => out.push_str(&format!("{:06}", dt.subsec_nanosecond() / 1000)),
            'v' => out.push_str(&format!("{:03}", dt.subsec_nanosecond() / 1_000_000)),
            'U' => {
                if let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC) {
                    out.push_str(&z.timestamp().as_second().to_string());
                }
            }
            'c' => out.push_str(&format(dt, "Y-m-d\\TH:i:s")),
            '\\' => {
                if let Some(lit) = chars.next() {
                    out.push(lit);
                }
            }
            other => out.push(other),
        }
    }
    out
}
