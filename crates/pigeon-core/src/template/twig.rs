//! The environment: Twig's lenient settings, and the Twig functions, filters
//! and tests RaspiSMS allows that minijinja lacks or spells differently.

use std::borrow::Cow;

use jiff::civil::DateTime;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use crate::condition::{mb_substr, php_float_string, php_slice};
use crate::time::php_date;

/// Largest sequence one `range()` call may build.
const MAX_RANGE: i64 = 10_000;
/// Total items all `range()` calls of one render may build, so nested
/// loops over ranges stay cheap.
const RANGE_BUDGET: i64 = 100_000;
/// Instructions one render may execute (minijinja's fuel).
const FUEL: u64 = 200_000;
/// Twig's default format for the `date` filter.
const TWIG_DATE_FORMAT: &str = "F j, Y H:i";

/// minijinja's builtins with Twig's settings, a fuel limit, and the Twig
/// functions, filters and tests below.
pub(super) fn build_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_keep_trailing_newline(true);
    // Twig drops the first newline after a block tag.
    env.set_trim_blocks(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(twig_formatter);
    env.set_fuel(Some(FUEL));
    // `debug()` would dump the whole context into a message; `namespace()`
    // (not Twig) lets a loop accumulate, e.g. double a string 60 times.
    env.remove_global("debug");
    env.remove_global("namespace");

    env.add_function("range", twig_range);
    env.add_function("random", twig_random);
    env.add_function("date", twig_date_function);
    env.add_function("max", |args: Rest<Value>| {
        extreme(args, std::cmp::Ordering::Greater)
    });
    env.add_function("min", |args: Rest<Value>| {
        extreme(args, std::cmp::Ordering::Less)
    });

    env.add_filter("default", twig_default);
    env.add_filter("date", twig_date_filter);
    env.add_filter("date_modify", twig_date_modify);
    env.add_filter("slice", twig_slice);
    env.add_filter("keys", twig_keys);
    env.add_filter("json_encode", twig_json_encode);
    env.add_filter("url_encode", twig_url_encode);
    env.add_filter("number_format", twig_number_format);
    env.add_filter("spaceless", twig_spaceless);
    env.add_filter("raw", |v: Value| v);
    env.add_test("empty", twig_empty);
    env
}

fn op_error(msg: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Prints values like Twig: null as nothing, booleans as `1`/``, floats
/// with PHP's conversion (`1.0` → `1`).
fn twig_formatter(out: &mut Output<'_>, state: &State<'_, '_>, value: &Value) -> Result<(), Error> {
    let write = |out: &mut Output<'_>, s: &str| {
        out.write_str(s)
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "formatting failed"))
    };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(()),
        ValueKind::Bool => write(out, if value.is_true() { "1" } else { "" }),
        ValueKind::Number if !value.is_integer() => match f64::try_from(value.clone()) {
            Ok(f) => write(out, &php_float_string(f)),
            Err(_) => minijinja::escape_formatter(out, state, value),
        },
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Twig's emptiness: undefined, null, false, "" and empty sequences/maps
/// (but not 0 or "0").
fn is_twig_empty(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => true,
        ValueKind::Bool => !v.is_true(),
        ValueKind::String => v.as_str().is_some_and(str::is_empty),
        ValueKind::Seq | ValueKind::Map => v.len() == Some(0),
        _ => false,
    }
}

fn twig_empty(v: Value) -> bool {
    is_twig_empty(&v)
}

/// Twig's `default`: applies to empty values too, not only undefined ones.
fn twig_default(v: Value, default: Option<Value>) -> Value {
    if is_twig_empty(&v) {
        default.unwrap_or_else(|| Value::from(""))
    } else {
        v
    }
}

fn int_of(v: &Value) -> Option<i64> {
    match v.as_str() {
        Some(s) => s.trim().parse().ok(),
        None => v.as_i64().or_else(|| {
            f64::try_from(v.clone())
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f.trunc() as i64)
        }),
    }
}

fn single_char(v: &Value) -> Option<char> {
    let s = v.as_str()?;
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// Charges `items` against the per-render range budget.
fn charge_range(state: &State<'_, '_>, items: i64) -> Result<(), Error> {
    const KEY: &str = "pigeon.range_budget";
    let used = state.get_temp(KEY).and_then(|v| v.as_i64()).unwrap_or(0);
    let total = used.saturating_add(items);
    if total > RANGE_BUDGET {
        return Err(op_error("template builds too many range items"));
    }
    state.set_temp(KEY, Value::from(total));
    Ok(())
}

/// Twig's `range(low, high[, step])`: inclusive, either direction, letters
/// when both ends are single non-digit characters (`range('a', 'z')`).
/// `range(n)` keeps Jinja's meaning, `0..n` exclusive.
fn twig_range(
    state: &State<'_, '_>,
    low: Value,
    high: Option<Value>,
    step: Option<Value>,
) -> Result<Value, Error> {
    let step = match &step {
        None => 1,
        Some(s) => int_of(s).ok_or_else(|| op_error("range step must be an integer"))?,
    }
    .unsigned_abs();
    if step == 0 {
        return Err(op_error("range step must not be zero"));
    }
    let step = i64::try_from(step).map_err(|_| op_error("range step is too large"))?;
    let too_big = || op_error(format!("range is too large (at most {MAX_RANGE} items)"));
    let Some(high) = high else {
        let n = int_of(&low).ok_or_else(|| op_error("range bound must be an integer"))?;
        let n = n.max(0);
        let count = n.unsigned_abs().div_ceil(step.unsigned_abs());
        if count > MAX_RANGE.unsigned_abs() {
            return Err(too_big());
        }
        charge_range(state, count as i64)?;
        let step = usize::try_from(step).map_err(|_| op_error("range step is too large"))?;
        let items: Vec<Value> = (0..n).step_by(step).map(Value::from).collect();
        return Ok(Value::from(items));
    };
    if let (Some(a), Some(b)) = (single_char(&low), single_char(&high))
        && !(a.is_ascii_digit() && b.is_ascii_digit())
    {
        let (from, to) = (i64::from(u32::from(a)), i64::from(u32::from(b)));
        let count = from.abs_diff(to) as i64 / step + 1;
        charge_range(state, count)?;
        let codes = int_steps(from, to, step);
        let items: Vec<Value> = codes
            .into_iter()
            .filter_map(|c| u32::try_from(c).ok().and_then(char::from_u32))
            .map(Value::from)
            .collect();
        return Ok(Value::from(items));
    }
    let from = int_of(&low).ok_or_else(|| op_error("range bounds must be integers or letters"))?;
    let to = int_of(&high).ok_or_else(|| op_error("range bounds must be integers or letters"))?;
    let count = from.abs_diff(to) / step.unsigned_abs() + 1;
    if count > MAX_RANGE as u64 {
        return Err(too_big());
    }
    charge_range(state, count as i64)?;
    Ok(Value::from(
        int_steps(from, to, step)
            .into_iter()
            .map(Value::from)
            .collect::<Vec<_>>(),
    ))
}

/// `from..=to` by `step` (positive), descending when `from > to`.
/// Callers bound the length first.
fn int_steps(from: i64, to: i64, step: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut x = from;
    loop {
        out.push(x);
        let next = if from <= to {
            x.checked_add(step)
        } else {
            x.checked_sub(step)
        };
        match next {
            Some(n) if (from <= to && n <= to) || (from > to && n >= to) => x = n,
            _ => return out,
        }
    }
}

fn random_u64() -> Result<u64, Error> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf).map_err(|e| op_error(format!("no randomness available: {e}")))?;
    Ok(u64::from_le_bytes(buf))
}

/// Uniform-enough integer in `lo..=hi` (modulo bias is irrelevant here).
fn random_between(lo: i64, hi: i64) -> Result<i64, Error> {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let span = (i128::from(hi) - i128::from(lo) + 1) as u128;
    let offset = u128::from(random_u64()?) % span;
    i64::try_from(i128::from(lo) + offset as i128).map_err(|_| op_error("random out of range"))
}

/// Items of a sequence, or values of a map.
fn items_of(v: &Value) -> Result<Vec<Value>, Error> {
    if v.kind() == ValueKind::Map {
        v.try_iter()?.map(|k| v.get_item(&k)).collect()
    } else {
        Ok(v.try_iter()?.collect())
    }
}

/// Twig's `random()`: a random item of a sequence, character of a string,
/// integer up to a number, or between two numbers.
fn twig_random(args: Rest<Value>) -> Result<Value, Error> {
    const MT_RANDMAX: i64 = 2_147_483_647;
    match args.as_slice() {
        [] => Ok(Value::from(random_between(0, MT_RANDMAX)?)),
        [v] if v.is_undefined() || v.is_none() => Ok(Value::from(random_between(0, MT_RANDMAX)?)),
        [v] if v.kind() == ValueKind::Number => {
            let n = int_of(v).ok_or_else(|| op_error("random() bound must be an integer"))?;
            Ok(Value::from(random_between(0, n)?))
        }
        [v] if v.kind() == ValueKind::String => {
            let chars: Vec<char> = v.as_str().unwrap_or_default().chars().collect();
            if chars.is_empty() {
                return Ok(Value::from(""));
            }
            let i = random_between(0, chars.len() as i64 - 1)?;
            Ok(chars
                .get(usize::try_from(i).unwrap_or(0))
                .map_or_else(|| Value::from(""), |c| Value::from(*c)))
        }
        [v] => {
            let items = items_of(v)?;
            if items.is_empty() {
                return Err(op_error("random() cannot pick from an empty sequence"));
            }
            let i = random_between(0, items.len() as i64 - 1)?;
            Ok(items
                .get(usize::try_from(i).unwrap_or(0))
                .cloned()
                .unwrap_or_default())
        }
        [lo, hi] => {
            let lo = int_of(lo).ok_or_else(|| op_error("random() bounds must be integers"))?;
            let hi = int_of(hi).ok_or_else(|| op_error("random() bounds must be integers"))?;
            Ok(Value::from(random_between(lo, hi)?))
        }
        _ => Err(Error::from(ErrorKind::TooManyArguments)),
    }
}

/// Twig's `max(…)` / `min(…)`: of the arguments, or of a single sequence.
fn extreme(args: Rest<Value>, want: std::cmp::Ordering) -> Result<Value, Error> {
    let items = match args.as_slice() {
        [v] if matches!(
            v.kind(),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
        ) =>
        {
            items_of(v)?
        }
        other => other.to_vec(),
    };
    let mut best: Option<Value> = None;
    for item in items {
        best = match best {
            Some(b) if item.cmp(&b) != want => Some(b),
            _ => Some(item),
        };
    }
    best.ok_or_else(|| op_error("max()/min() need at least one value"))
}

/// Turns a Twig date argument into a date-time: null is now, integers are
/// Unix timestamps (local time), strings are parsed like PHP's.
fn to_datetime(v: &Value) -> Result<DateTime, Error> {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(php_date::now()),
        ValueKind::Number => {
            let secs = int_of(v).ok_or_else(|| op_error("invalid timestamp"))?;
            let ts = jiff::Timestamp::from_second(secs)
                .map_err(|e| op_error(format!("invalid timestamp: {e}")))?;
            Ok(ts.to_zoned(jiff::tz::TimeZone::system()).datetime())
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            php_date::parse(s, php_date::now())
                .ok_or_else(|| op_error(format!("cannot parse date `{s}`")))
        }
        _ => Err(op_error(format!("cannot use {} as a date", v.kind()))),
    }
}

/// Twig's `date()` function; returns `Y-m-d H:i:s` (Twig returns a
/// DateTime, which can only be formatted or compared anyway).
fn twig_date_function(v: Option<Value>) -> Result<Value, Error> {
    let dt = to_datetime(&v.unwrap_or_default())?;
    Ok(Value::from(php_date::format_datetime(dt)))
}

/// Twig's `date` filter, with PHP format characters (`d/m/Y`).
fn twig_date_filter(
    v: Value,
    format: Option<String>,
    _timezone: Option<Value>,
) -> Result<String, Error> {
    let dt = to_datetime(&v)?;
    Ok(php_date::format(
        dt,
        format.as_deref().unwrap_or(TWIG_DATE_FORMAT),
    ))
}

/// Twig's `date_modify`: `'2024-01-31'|date_modify('+1 day')`.
fn twig_date_modify(v: Value, modifier: String) -> Result<String, Error> {
    let base = php_date::format_datetime(to_datetime(&v)?);
    php_date::parse(&format!("{base} {modifier}"), php_date::now())
        .map(php_date::format_datetime)
        .ok_or_else(|| op_error(format!("invalid date modifier `{modifier}`")))
}

/// Twig's `slice(start, length)` on strings (characters) and sequences.
fn twig_slice(v: Value, start: i64, length: Option<i64>) -> Result<Value, Error> {
    if let Some(s) = v.as_str() {
        return Ok(Value::from(mb_substr(s, start, length)));
    }
    let items = items_of(&v)?;
    Ok(Value::from(php_slice(&items, start, length).to_vec()))
}

/// Twig's `keys`: map keys, or sequence indexes.
fn twig_keys(v: Value) -> Result<Value, Error> {
    match v.kind() {
        ValueKind::Map => Ok(Value::from(v.try_iter()?.collect::<Vec<_>>())),
        ValueKind::Seq | ValueKind::Iterable => {
            let n = v.try_iter()?.count();
            Ok(Value::from((0..n).map(Value::from).collect::<Vec<_>>()))
        }
        _ => Ok(Value::from(Vec::<Value>::new())),
    }
}

fn twig_json_encode(v: Value) -> Result<String, Error> {
    serde_json::to_string(&v).map_err(|e| op_error(format!("json_encode failed: {e}")))
}

/// Twig's `url_encode` on strings: RFC 3986 percent-encoding.
fn twig_url_encode(v: Value) -> String {
    let s = match v.as_str() {
        Some(s) => s.to_owned(),
        None if v.is_undefined() || v.is_none() => String::new(),
        None => v.to_string(),
    };
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Twig's `number_format(decimals = 0, dec_point = '.', thousands_sep = ',')`,
/// rounding half away from zero like PHP.
fn twig_number_format(
    v: Value,
    decimals: Option<i64>,
    dec_point: Option<String>,
    thousands_sep: Option<String>,
) -> Result<String, Error> {
    let f = match v.as_str() {
        Some(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        None if v.is_undefined() || v.is_none() => 0.0,
        None => f64::try_from(v.clone()).map_err(|_| op_error("number_format needs a number"))?,
    };
    let decimals = usize::try_from(decimals.unwrap_or(0).clamp(0, 15)).unwrap_or(0);
    let factor = 10f64.powi(i32::try_from(decimals).unwrap_or(0));
    let rounded = (f * factor).round() / factor;
    let fixed = format!("{:.decimals$}", rounded.abs());
    let (int_part, frac_part) = fixed.split_once('.').unwrap_or((fixed.as_str(), ""));
    let sep = thousands_sep.as_deref().unwrap_or(",");
    let mut grouped = String::new();
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (int_part.len() - i) % 3 == 0 {
            grouped.push_str(sep);
        }
        grouped.push(c);
    }
    let mut out = String::new();
    if rounded < 0.0 {
        out.push('-');
    }
    out.push_str(&grouped);
    if decimals > 0 {
        out.push_str(dec_point.as_deref().unwrap_or("."));
        out.push_str(frac_part);
    }
    Ok(out)
}

/// Twig's `spaceless`: removes whitespace between HTML tags, then trims.
fn twig_spaceless(s: String) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '>' {
            let mut ws = String::new();
            while let Some(&n) = chars.peek().filter(|n| n.is_whitespace()) {
                ws.push(n);
                chars.next();
            }
            if chars.peek() != Some(&'<') {
                out.push_str(&ws);
            }
        }
    }
    out
}
