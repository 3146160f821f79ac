//! Evaluation of the syntax tree: variables, property and item access,
//! operators with PHP 8 semantics.

use std::cmp::Ordering;

use jiff::civil::DateTime;
use serde_json::Value as Json;

use super::functions::call;
use super::parser::{BinOp, Expr, Kind, UnOp, Var, compile_pcre};
use super::value::{Num, Value, identical, loose_eq, num_to_int, numeric_prefix, php_compare};
use super::{ConditionError, Result, invalid};
use crate::time::php_date;

/// Largest array the `..` operator may build.
const MAX_RANGE: usize = 10_000;

/// What a condition is evaluated against: one contact, and "now".
pub(super) struct Ctx<'j> {
    pub(super) contact: &'j Json,
    pub(super) metas: &'j Json,
    pub(super) now: DateTime,
}

/// Either a borrowed piece of the contact's JSON (no copy while walking
/// `contact.a.b`) or a computed value.
enum Ref<'j> {
    Json(&'j Json),
    Val(Value),
}

impl Ref<'_> {
    fn into_value(self) -> Value {
        match self {
            Ref::Json(j) => Value::from_json(j),
            Ref::Val(v) => v,
        }
    }
}

fn missing_property(name: &str) -> ConditionError {
    invalid(format!("undefined property `{name}`"))
}

fn non_object(name: &str) -> ConditionError {
    invalid(format!("cannot get property `{name}` of a non-object"))
}

/// PHP array key of a value (`1`, `"1"` and `true` all address key 1).
fn array_key(key: &Value) -> Result<String> {
    match key {
        Value::Float(f) => Ok(num_to_int(Num::F(*f))?.to_string()),
        Value::Bool(b) => Ok(i64::from(*b).to_string()),
        other => Ok(other.to_php_string()?.into_owned()),
    }
}

impl Expr {
    pub(super) fn eval(&self, ctx: &Ctx<'_>) -> Result<Value> {
        match &self.kind {
            Kind::Lit(v) => Ok(v.clone()),
            Kind::Var(_) | Kind::Attr(..) | Kind::Index(..) => Ok(self.eval_ref(ctx)?.into_value()),
            Kind::Array(items) => Ok(Value::List(
                items.iter().map(|e| e.eval(ctx)).collect::<Result<_>>()?,
            )),
            Kind::Hash(items) => {
                let mut map: Vec<(String, Value)> = Vec::with_capacity(items.len());
                for (k, e) in items {
                    let v = e.eval(ctx)?;
                    // Later duplicate keys overwrite earlier ones, like PHP.
                    match map.iter_mut().find(|(mk, _)| mk == k) {
                        Some(slot) => slot.1 = v,
                        None => map.push((k.clone(), v)),
                    }
                }
                Ok(Value::Map(map))
            }
            Kind::Format(base, args) => {
                let base = base.eval(ctx)?;
                let Value::Date(d) = base else {
                    return Err(invalid(format!(
                        "format() called on {}, not a date",
                        base.type_name()
                    )));
                };
                let fmt = eval_arg(args, 0, ctx)?;
                Ok(Value::Str(php_date::format(d, &fmt.to_php_string()?)))
            }
            Kind::Call(func, args) => call(*func, args, ctx),
            Kind::Unary(op, e) => {
                let v = e.eval(ctx)?;
                match op {
                    UnOp::Not => Ok(Value::Bool(!v.truthy())),
                    UnOp::Plus => Ok(v.to_number()?.into_value()),
                    UnOp::Neg => Ok(match v.to_number()? {
                        Num::I(i) => i
                            .checked_neg()
                            .map_or(Value::Float(-(i as f64)), Value::Int),
                        Num::F(f) => Value::Float(-f),
                    }),
                }
            }
            Kind::Binary(op, l, r) => binary(*op, l, r, ctx),
            Kind::Matches(l, r, compiled) => {
                let subject = l.eval(ctx)?;
                let subject = subject.to_php_string()?;
                let found = match compiled {
                    Some(p) => p.0.is_match(&subject),
                    None => {
                        let pattern = r.eval(ctx)?;
                        compile_pcre(&pattern.to_php_string()?)?.is_match(&subject)
                    }
                };
                // preg_match returns 1 or 0.
                Ok(Value::Int(i64::from(found)))
            }
            Kind::Cond(c, a, b) => {
                let cond = c.eval(ctx)?;
                match (cond.truthy(), a) {
                    (true, Some(a)) => a.eval(ctx),
                    (true, None) => Ok(cond),
                    (false, _) => b.eval(ctx),
                }
            }
        }
    }

    /// Evaluates variable / property / item chains without copying the JSON
    /// they walk through. Like PHP/Symfony (and RaspiSMS), a missing key or a
    /// property of a non-object is an error.
    fn eval_ref<'j>(&self, ctx: &Ctx<'j>) -> Result<Ref<'j>> {
        match &self.kind {
            Kind::Var(Var::Contact) => Ok(Ref::Json(ctx.contact)),
            Kind::Var(Var::Metas) => Ok(Ref::Json(ctx.metas)),
            Kind::Attr(base, name) => match base.eval_ref(ctx)? {
                Ref::Json(Json::Object(m)) => m
                    .get(name)
                    .map(Ref::Json)
                    .ok_or_else(|| missing_property(name)),
                Ref::Val(Value::Map(m)) => m
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| Ref::Val(v))
                    .ok_or_else(|| missing_property(name)),
                _ => Err(non_object(name)),
            },
            Kind::Index(base, key) => {
                let base = base.eval_ref(ctx)?;
                let key = array_key(&key.eval(ctx)?)?;
                let missing = || invalid(format!("undefined array key `{key}`"));
                let index = || key.parse::<usize>().ok();
                match base {
                    Ref::Json(Json::Object(m)) => m.get(&key).map(Ref::Json).ok_or_else(missing),
                    Ref::Json(Json::Array(xs)) => index()
                        .and_then(|i| xs.get(i))
                        .map(Ref::Json)
                        .ok_or_else(missing),
                    Ref::Val(Value::Map(m)) => m
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| Ref::Val(v))
                        .ok_or_else(missing),
                    Ref::Val(Value::List(xs)) => index()
                        .and_then(|i| xs.into_iter().nth(i))
                        .map(Ref::Val)
                        .ok_or_else(missing),
                    other => Err(invalid(format!(
                        "cannot get item `{key}` of {}",
                        other.into_value().type_name()
                    ))),
                }
            }
            _ => Ok(Ref::Val(self.eval(ctx)?)),
        }
    }
}

pub(super) fn eval_arg(args: &[Expr], i: usize, ctx: &Ctx<'_>) -> Result<Value> {
    match args.get(i) {
        Some(e) => e.eval(ctx),
        None => Ok(Value::Null),
    }
}

fn binary(op: BinOp, l: &Expr, r: &Expr, ctx: &Ctx<'_>) -> Result<Value> {
    let left = l.eval(ctx)?;
    // `or` / `and` short-circuit, like PHP's `||` / `&&`.
    match op {
        BinOp::Or if left.truthy() => return Ok(Value::Bool(true)),
        BinOp::And if !left.truthy() => return Ok(Value::Bool(false)),
        BinOp::Or | BinOp::And => return Ok(Value::Bool(r.eval(ctx)?.truthy())),
        _ => {}
    }
    let right = r.eval(ctx)?;
    let ordering = |pred: fn(Ordering) -> bool| -> Result<Value> {
        Ok(Value::Bool(php_compare(&left, &right)?.is_some_and(pred)))
    };
    match op {
        BinOp::Or | BinOp::And => Ok(Value::Null),
        BinOp::Eq => Ok(Value::Bool(loose_eq(&left, &right)?)),
        BinOp::NotEq => Ok(Value::Bool(!loose_eq(&left, &right)?)),
        BinOp::Identical => Ok(Value::Bool(identical(&left, &right))),
        BinOp::NotIdentical => Ok(Value::Bool(!identical(&left, &right))),
        BinOp::Lt => ordering(Ordering::is_lt),
        BinOp::Gt => ordering(Ordering::is_gt),
        BinOp::Le => ordering(Ordering::is_le),
        BinOp::Ge => ordering(Ordering::is_ge),
        BinOp::In => Ok(Value::Bool(in_array(&left, &right)?)),
        BinOp::NotIn => Ok(Value::Bool(!in_array(&left, &right)?)),
        BinOp::Range => php_range(&left, &right),
        BinOp::Concat => {
            let mut s = left.to_php_string()?.into_owned();
            s.push_str(&right.to_php_string()?);
            Ok(Value::Str(s))
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => {
            arithmetic(op, left.to_number()?, right.to_number()?)
        }
        BinOp::BitOr | BinOp::BitAnd | BinOp::BitXor => {
            let a = num_to_int(left.to_number()?)?;
            let b = num_to_int(right.to_number()?)?;
            Ok(Value::Int(match op {
                BinOp::BitOr => a | b,
                BinOp::BitAnd => a & b,
                _ => a ^ b,
            }))
        }
    }
}

/// PHP 8 arithmetic: integer results when exact, floats on overflow.
fn arithmetic(op: BinOp, a: Num, b: Num) -> Result<Value> {
    let float = |f: fn(f64, f64) -> f64| Ok(Value::Float(f(a.as_f64(), b.as_f64())));
    match (op, a, b) {
        (BinOp::Div, _, _) if b.as_f64() == 0.0 => Err(invalid("division by zero")),
        (BinOp::Mod, _, _) => {
            let (x, y) = (num_to_int(a)?, num_to_int(b)?);
            if y == 0 {
                return Err(invalid("modulo by zero"));
            }
            Ok(Value::Int(x.checked_rem(y).unwrap_or(0)))
        }
        (BinOp::Add, Num::I(x), Num::I(y)) => Ok(x
            .checked_add(y)
            .map_or_else(|| Value::Float(x as f64 + y as f64), Value::Int)),
        (BinOp::Sub, Num::I(x), Num::I(y)) => Ok(x
            .checked_sub(y)
            .map_or_else(|| Value::Float(x as f64 - y as f64), Value::Int)),
        (BinOp::Mul, Num::I(x), Num::I(y)) => Ok(x
            .checked_mul(y)
            .map_or_else(|| Value::Float(x as f64 * y as f64), Value::Int)),
        (BinOp::Div, Num::I(x), Num::I(y)) if x.checked_rem(y) == Some(0) => Ok(x
            .checked_div(y)
            .map_or_else(|| Value::Float(x as f64 / y as f64), Value::Int)),
        (BinOp::Pow, Num::I(x), Num::I(y)) if y >= 0 => Ok(u32::try_from(y)
            .ok()
            .and_then(|e| x.checked_pow(e))
            .map_or_else(|| Value::Float((x as f64).powf(y as f64)), Value::Int)),
        (BinOp::Add, _, _) => float(|x, y| x + y),
        (BinOp::Sub, _, _) => float(|x, y| x - y),
        (BinOp::Mul, _, _) => float(|x, y| x * y),
        (BinOp::Div, _, _) => float(|x, y| x / y),
        (BinOp::Pow, _, _) => float(f64::powf),
        _ => Err(invalid("unsupported arithmetic operator")),
    }
}

/// Symfony 5's `in` is PHP's loose `in_array`.
fn in_array(needle: &Value, haystack: &Value) -> Result<bool> {
    let items: Vec<&Value> = match haystack {
        Value::List(xs) => xs.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        other => {
            return Err(invalid(format!(
                "`in` expects an array on its right, got {}",
                other.type_name()
            )));
        }
    };
    for item in items {
        if loose_eq(needle, item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// PHP `range()` behind `..`: inclusive, either direction, single-letter
/// strings give letter ranges.
fn php_range(a: &Value, b: &Value) -> Result<Value> {
    let too_big = || invalid(format!("range is too large (at most {MAX_RANGE} items)"));
    if let (Value::Str(x), Value::Str(y)) = (a, b)
        && x.len() == 1
        && y.len() == 1
        && !(x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit())
    {
        let (from, to) = (x.as_bytes()[0], y.as_bytes()[0]);
        let bytes: Vec<u8> = if from <= to {
            (from..=to).collect()
        } else {
            (to..=from).rev().collect()
        };
        return Ok(Value::List(
            bytes
                .into_iter()
                .map(|c| Value::Str(char::from(c).to_string()))
                .collect(),
        ));
    }
    let to_num = |v: &Value| match v {
        Value::Str(s) => numeric_prefix(s).map_or(Num::I(0), |(n, _)| n),
        other => other.to_number().unwrap_or(Num::I(0)),
    };
    match (to_num(a), to_num(b)) {
        (Num::I(x), Num::I(y)) => {
            let len = x.abs_diff(y);
            if len >= MAX_RANGE as u64 {
                return Err(too_big());
            }
            let items: Vec<Value> = if x <= y {
                (x..=y).map(Value::Int).collect()
            } else {
                (y..=x).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items))
        }
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            let span = (y - x).abs();
            if !span.is_finite() || span >= MAX_RANGE as f64 {
                return Err(too_big());
            }
            let step = if x <= y { 1.0 } else { -1.0 };
            let count = span.floor() as usize + 1;
            Ok(Value::List(
                (0..count)
                    .map(|i| Value::Float(x + step * i as f64))
                    .collect(),
            ))
        }
    }
}
