//! The functions of RaspiSMS's `ExpressionProvider`, with PHP's semantics.

use super::eval::{Ctx, eval_arg};
use super::parser::Expr;
use super::value::{Num, Value, numeric_prefix};
use super::{Result, invalid};
use crate::time::php_date;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    Exists,
    IsBirthday,
    Lower,
    Upper,
    Substr,
    Strlen,
    Abs,
    Date,
    DateFromFormat,
    Intval,
    Boolval,
    Count,
    Constant,
}

/// Name, function, accepted argument counts (the PHP signatures').
pub(super) const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("exists", Func::Exists, 1, 1),
    ("is_birthday", Func::IsBirthday, 1, 1),
    ("lower", Func::Lower, 1, 2),
    ("upper", Func::Upper, 1, 2),
    ("substr", Func::Substr, 2, 4),
    ("strlen", Func::Strlen, 1, 2),
    ("abs", Func::Abs, 1, 1),
    ("date", Func::Date, 0, 1),
    ("date_from_format", Func::DateFromFormat, 2, 2),
    ("intval", Func::Intval, 1, 2),
    ("boolval", Func::Boolval, 1, 1),
    ("count", Func::Count, 1, 2),
    ("constant", Func::Constant, 1, 1),
];

pub(super) fn call(func: Func, args: &[Expr], ctx: &Ctx<'_>) -> Result<Value> {
    if func == Func::Exists {
        // isset(): an undefined property (an error here) or null is "unset".
        return Ok(Value::Bool(
            matches!(eval_arg(args, 0, ctx), Ok(v) if v != Value::Null),
        ));
    }
    let values: Vec<Value> = args.iter().map(|e| e.eval(ctx)).collect::<Result<_>>()?;
    let arg = |i: usize| values.get(i).unwrap_or(&Value::Null);
    match func {
        Func::Exists => Ok(Value::Bool(arg(0) != &Value::Null)),
        Func::Constant => Ok(Value::Null),
        Func::Boolval => Ok(Value::Bool(arg(0).truthy())),
        Func::Lower => Ok(Value::Str(arg(0).to_php_string()?.to_lowercase())),
        Func::Upper => Ok(Value::Str(arg(0).to_php_string()?.to_uppercase())),
        Func::Strlen => Ok(Value::Int(
            i64::try_from(arg(0).to_php_string()?.chars().count()).unwrap_or(i64::MAX),
        )),
        Func::Substr => {
            let s = arg(0).to_php_string()?;
            let start = arg(1).to_int_arg("substr() start")?;
            let length = match values.get(2) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.to_int_arg("substr() length")?),
            };
            Ok(Value::Str(mb_substr(&s, start, length)))
        }
        Func::Abs => Ok(match arg(0).to_number()? {
            Num::I(i) => i
                .checked_abs()
                .map_or(Value::Float((i as f64).abs()), Value::Int),
            Num::F(f) => Value::Float(f.abs()),
        }),
        Func::Intval => {
            let base = match values.get(1) {
                None => 10,
                Some(v) => v.to_int_arg("intval() base")?,
            };
            Ok(Value::Int(php_intval(arg(0), base)?))
        }
        Func::Count => {
            let recursive = values.get(1).is_some_and(Value::truthy);
            match arg(0) {
                v @ (Value::List(_) | Value::Map(_)) => Ok(Value::Int(
                    i64::try_from(php_count(v, recursive)).unwrap_or(i64::MAX),
                )),
                other => Err(invalid(format!(
                    "count() expects an array, got {}",
                    other.type_name()
                ))),
            }
        }
        Func::Date => {
            let parsed = match values.first() {
                None | Some(Value::Null) => Some(ctx.now),
                Some(v) => php_date::parse(&v.to_php_string()?, ctx.now),
            };
            // date_create() returns false on unparsable input.
            Ok(parsed.map_or(Value::Bool(false), Value::Date))
        }
        Func::DateFromFormat => {
            let format = arg(0).to_php_string()?;
            let input = arg(1).to_php_string()?;
            Ok(php_date::parse_with_format(&format, &input, ctx.now)
                .map_or(Value::Bool(false), Value::Date))
        }
        Func::IsBirthday => {
            let date = match arg(0) {
                Value::Date(d) => *d,
                // RaspiSMS wants a DateTime; a date string is accepted too.
                Value::Str(s) => php_date::parse(s, ctx.now)
                    .ok_or_else(|| invalid(format!("is_birthday(): `{s}` is not a date")))?,
                other => {
                    return Err(invalid(format!(
                        "is_birthday() expects a date, got {}",
                        other.type_name()
                    )));
                }
            };
            let today = ctx.now.date();
            Ok(Value::Bool(
                date.month() == today.month() && date.day() == today.day(),
            ))
        }
    }
}

fn php_count(v: &Value, recursive: bool) -> usize {
    let children: Vec<&Value> = match v {
        Value::List(xs) => xs.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, x)| x).collect(),
        _ => return 0,
    };
    let nested = if recursive {
        children.iter().map(|c| php_count(c, true)).sum()
    } else {
        0
    };
    children.len() + nested
}

/// PHP's slice of `items` (`array_slice`, `mb_substr` on characters):
/// a negative `start` counts from the end, a negative `length` stops that
/// many items before the end, `None` runs to the end.
pub(crate) fn php_slice<T>(items: &[T], start: i64, length: Option<i64>) -> &[T] {
    let n = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let from = if start < 0 {
        (n + start).max(0)
    } else {
        start.min(n)
    };
    let to = match length {
        None => n,
        Some(l) if l < 0 => (n + l).max(from),
        Some(l) => from.saturating_add(l).min(n),
    };
    let (from, to) = (
        usize::try_from(from).unwrap_or(0),
        usize::try_from(to).unwrap_or(0),
    );
    items.get(from..to).unwrap_or_default()
}

/// `mb_substr`: character based, negative start / length count from the end.
pub(crate) fn mb_substr(s: &str, start: i64, length: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    php_slice(&chars, start, length).iter().collect()
}

/// PHP `intval()`: leading number of strings, truncation of floats,
/// saturation on overflow.
fn php_intval(v: &Value, base: i64) -> Result<i64> {
    Ok(match v {
        Value::Null => 0,
        Value::Bool(b) => i64::from(*b),
        Value::Int(i) => *i,
        Value::Float(f) if f.is_finite() => *f as i64,
        Value::Float(_) => 0,
        Value::List(xs) => i64::from(!xs.is_empty()),
        Value::Map(m) => i64::from(!m.is_empty()),
        Value::Date(_) => 1,
        Value::Str(s) if base == 10 => match numeric_prefix(s) {
            Some((Num::I(i), _)) => i,
            Some((Num::F(f), _)) if f.is_nan() => 0,
            // `as` saturates, like PHP's string to int conversion.
            Some((Num::F(f), _)) => f as i64,
            None => 0,
        },
        Value::Str(s) => {
            if !(base == 0 || (2..=36).contains(&base)) {
                return Err(invalid("intval(): base must be 0 or between 2 and 36"));
            }
            let t = s.trim_start();
            let (neg, t) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            let lower = t.to_ascii_lowercase();
            let (radix, digits) = match base {
                0 | 16 if lower.starts_with("0x") => (16, &t[2..]),
                0 | 8 if lower.starts_with("0o") => (8, &t[2..]),
                0 | 2 if lower.starts_with("0b") => (2, &t[2..]),
                0 if t.starts_with('0') => (8, t),
                0 => (10, t),
                b => (u32::try_from(b).unwrap_or(10), t),
            };
            let end = digits
                .find(|c: char| !c.is_digit(radix))
                .unwrap_or(digits.len());
            let magnitude = if end == 0 {
                0
            } else {
                i64::from_str_radix(&digits[..end], radix).unwrap_or(i64::MAX)
            };
            if neg {
                magnitude.saturating_neg()
            } else {
                magnitude
            }
        }
    })
}
