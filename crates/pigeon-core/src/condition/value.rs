//! PHP values: conversions, truthiness, numeric strings, and PHP 8's loose
//! (`==`, `<`, …) and strict (`===`) comparisons.

use std::borrow::Cow;
use std::cmp::Ordering;

use jiff::civil::DateTime;
use serde_json::Value as Json;

use super::{Result, invalid};
use crate::time::php_date;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// A JSON object / PHP hash, in insertion order.
    Map(Vec<(String, Value)>),
    /// A PHP `DateTime` (naive local time, like RaspiSMS).
    Date(DateTime),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    pub(super) fn into_value(self) -> Value {
        match self {
            Num::I(i) => Value::Int(i),
            Num::F(f) => Value::Float(f),
        }
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    }
}

impl Value {
    pub(super) fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Value::Str(s.clone()),
            Json::Array(xs) => Value::List(xs.iter().map(Value::from_json).collect()),
            Json::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub(super) fn into_json(self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Int(i) => Json::from(i),
            Value::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s),
            Value::List(xs) => Json::Array(xs.into_iter().map(Value::into_json).collect()),
            Value::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, v.into_json())).collect()),
            Value::Date(d) => Json::String(php_date::format_datetime(d)),
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) | Value::Map(_) => "array",
            Value::Date(_) => "date",
        }
    }

    /// PHP truthiness: false, 0, 0.0, "", "0", null and [] are false.
    pub(super) fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !(s.is_empty() || s == "0"),
            Value::List(xs) => !xs.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Date(_) => true,
        }
    }

    /// PHP string conversion; arrays and dates have none.
    pub(super) fn to_php_string(&self) -> Result<Cow<'_, str>> {
        Ok(match self {
            Value::Null | Value::Bool(false) => Cow::Borrowed(""),
            Value::Bool(true) => Cow::Borrowed("1"),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(php_float_string(*f)),
            Value::Str(s) => Cow::Borrowed(s.as_str()),
            Value::List(_) | Value::Map(_) | Value::Date(_) => {
                return Err(invalid(format!(
                    "cannot convert {} to string",
                    self.type_name()
                )));
            }
        })
    }

    /// PHP 8 arithmetic operand conversion: non-numeric strings are a
    /// TypeError, leading-numeric ones ("12abc") are accepted.
    pub(super) fn to_number(&self) -> Result<Num> {
        match self {
            Value::Null => Ok(Num::I(0)),
            Value::Bool(b) => Ok(Num::I(i64::from(*b))),
            Value::Int(i) => Ok(Num::I(*i)),
            Value::Float(f) => Ok(Num::F(*f)),
            Value::Str(s) => match numeric_prefix(s) {
                Some((n, _)) => Ok(n),
                None => Err(invalid(format!("non-numeric value `{s}` in arithmetic"))),
            },
            _ => Err(invalid(format!(
                "unsupported operand type {} in arithmetic",
                self.type_name()
            ))),
        }
    }

    /// Integer argument of a PHP function (`int` parameter, coercive mode).
    pub(super) fn to_int_arg(&self, what: &str) -> Result<i64> {
        match self {
            Value::Str(s) => match parse_numeric(s) {
                Some(n) => num_to_int(n),
                None => Err(invalid(format!("{what} must be an integer, got `{s}`"))),
            },
            Value::List(_) | Value::Map(_) | Value::Date(_) => Err(invalid(format!(
                "{what} must be an integer, got {}",
                self.type_name()
            ))),
            other => num_to_int(other.to_number()?),
        }
    }
}

pub(super) fn num_to_int(n: Num) -> Result<i64> {
    match n {
        Num::I(i) => Ok(i),
        Num::F(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
        Num::F(f) => Err(invalid(format!("{f} is out of integer range"))),
    }
}

/// Parses PHP 8's numeric prefix of `s` (leading whitespace, sign, digits,
/// fraction, exponent); returns the number and whether the whole string
/// (trailing whitespace allowed) is numeric.
pub(super) fn numeric_prefix(s: &str) -> Option<(Num, bool)> {
    let b = s.as_bytes();
    let is_ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut i = 0;
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    let start = i;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    let mut is_float = false;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut k = frac_start;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if digits > 0 || k > frac_start {
            digits += k - frac_start;
            i = k;
            is_float = true;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        let exp_start = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k > exp_start {
            i = k;
            is_float = true;
        }
    }
    let text = &s[start..i];
    let num = if is_float {
        Num::F(text.parse().ok()?)
    } else {
        match text.parse::<i64>() {
            Ok(n) => Num::I(n),
            Err(_) => Num::F(text.parse().ok()?),
        }
    };
    let whole = b[i..].iter().all(|&c| is_ws(c));
    Some((num, whole))
}

/// A PHP 8 "numeric string" (whitespace around allowed).
fn parse_numeric(s: &str) -> Option<Num> {
    match numeric_prefix(s) {
        Some((n, true)) => Some(n),
        _ => None,
    }
}

/// PHP's float to string conversion (`precision` = 14, `%.14G`).
pub(crate) fn php_float_string(f: f64) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF".into() } else { "-INF".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:.13e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..14).contains(&exp) {
        let mut m = mantissa.trim_end_matches('0').to_string();
        if m.ends_with('.') {
            m.push('0');
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}E{sign}{}", exp.abs());
    }
    let decimals = usize::try_from(13 - exp).unwrap_or(0);
    let fixed = format!("{f:.decimals$}");
    if fixed.contains('.') {
        fixed
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        fixed
    }
}

/// PHP 8's `<=>` (zend_compare). `None` means uncomparable (every ordering
/// comparison is false).
pub(super) fn php_compare(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    use Value::*;
    Ok(match (a, b) {
        (Bool(_), _) | (_, Bool(_)) => Some(a.truthy().cmp(&b.truthy())),
        (Null, Null) => Some(Ordering::Equal),
        (Null, Str(s)) => Some(if s.is_empty() {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Str(s), Null) => Some(if s.is_empty() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }),
        (Null, _) | (_, Null) => Some(a.truthy().cmp(&b.truthy())),
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Date(_), _) | (_, Date(_)) => {
            return Err(invalid(format!(
                "cannot compare {} with {}",
                a.type_name(),
                b.type_name()
            )));
        }
        (Int(_) | Float(_), Int(_) | Float(_)) => num_cmp(a.to_number()?, b.to_number()?),
        (Int(_) | Float(_), Str(s)) => match parse_numeric(s) {
            Some(n) => num_cmp(a.to_number()?, n),
            None => Some(a.to_php_string()?.as_ref().cmp(s.as_str())),
        },
        (Str(s), Int(_) | Float(_)) => match parse_numeric(s) {
            Some(n) => num_cmp(n, b.to_number()?),
            None => Some(s.as_str().cmp(b.to_php_string()?.as_ref())),
        },
        (Str(x), Str(y)) => match (parse_numeric(x), parse_numeric(y)) {
            (Some(m), Some(n)) => num_cmp(m, n),
            _ => Some(x.cmp(y)),
        },
        (List(_) | Map(_), List(_) | Map(_)) => compare_arrays(a, b)?,
        (List(_) | Map(_), _) => Some(Ordering::Greater),
        (_, List(_) | Map(_)) => Some(Ordering::Less),
    })
}

/// An array's (key, value) pairs; list keys are their indexes.
fn array_pairs(v: &Value) -> Vec<(Cow<'_, str>, &Value)> {
    match v {
        Value::List(xs) => xs
            .iter()
            .enumerate()
            .map(|(i, x)| (Cow::Owned(i.to_string()), x))
            .collect(),
        Value::Map(m) => m
            .iter()
            .map(|(k, x)| (Cow::Borrowed(k.as_str()), x))
            .collect(),
        _ => Vec::new(),
    }
}

/// PHP array comparison: by size, then value by value for the keys of `a`.
fn compare_arrays(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    let (pa, pb) = (array_pairs(a), array_pairs(b));
    if pa.len() != pb.len() {
        return Ok(Some(pa.len().cmp(&pb.len())));
    }
    for (k, x) in &pa {
        let Some((_, y)) = pb.iter().find(|(kb, _)| kb == k) else {
            return Ok(None);
        };
        match php_compare(x, y)? {
            Some(Ordering::Equal) => {}
            other => return Ok(other),
        }
    }
    Ok(Some(Ordering::Equal))
}

pub(super) fn loose_eq(a: &Value, b: &Value) -> Result<bool> {
    Ok(php_compare(a, b)? == Some(Ordering::Equal))
}

/// PHP `===`: same type and value (arrays: same pairs in the same order).
pub(super) fn identical(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Date(x), Date(y)) => x == y,
        (List(x), List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q)),
        (Map(x), Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kp, p), (kq, q))| kp == kq && identical(p, q))
        }
        _ => false,
    }
}
