//! Message templating.
//!
//! RaspiSMS renders messages with Twig 3 in a global sandbox. Pigeon uses
//! minijinja (Jinja2 syntax, which Twig's is based on) with Twig's lenient
//! settings: undefined variables and missing keys render as empty, no
//! autoescape, the newline after a block tag is dropped like Twig does.
//! The Twig functions and filters RaspiSMS allows that minijinja lacks are
//! added here; `apply`/`endapply` and `elseif` are rewritten to their
//! minijinja spelling.

use std::borrow::Cow;
use std::io;
use std::sync::LazyLock;

use jiff::civil::DateTime;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};
use serde_json::Value as Json;

use crate::condition::{mb_substr, php_date, php_float_string};

/// Longest accepted template source, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 10_000;
/// Longest rendered message, in characters.
pub const MAX_OUTPUT_CHARS: usize = 10_000;
/// Largest sequence one `range()` call may build.
const MAX_RANGE: i64 = 10_000;
/// Total items all `range()` calls of one render may build, so nested
/// loops over ranges stay cheap.
const RANGE_BUDGET: i64 = 100_000;
/// Instructions one render may execute, when minijinja's `fuel` feature is on.
const FUEL: u64 = 200_000;
const TEMPLATE_NAME: &str = "message";
/// Twig's default format for the `date` filter.
const TWIG_DATE_FORMAT: &str = "F j, Y H:i";

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// Checks that `text` is a valid template, for a clear error at create time.
/// Beyond the syntax, a dry run with empty data reports unknown filters,
/// functions and tests and wrong argument counts in the branches it reaches.
pub fn validate(text: &str) -> Result<(), TemplateError> {
    let template = Template::new(text)?;
    let empty = Json::Object(serde_json::Map::new());
    match template.render_raw(&empty, &empty) {
        Err(RenderFailure::Engine(e))
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownMethod
                    | ErrorKind::TooManyArguments
                    | ErrorKind::MissingArgument
            ) =>
        {
            Err(describe(&e))
        }
        // Other failures may depend on the recipient's data.
        _ => Ok(()),
    }
}

/// Renders `text` for one recipient. `contact` is the recipient's data
/// object, `contact_metas` the object with `name`, `number`, ….
/// To render the same text for many recipients, build a [`Template`] once.
pub fn render(text: &str, contact: &Json, contact_metas: &Json) -> Result<String, TemplateError> {
    Template::new(text)?.render(contact, contact_metas)
}

/// A template compiled once, to render many recipients cheaply.
#[derive(Debug, Clone)]
pub struct Template {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No template syntax at all: the text is the message.
    Plain(String),
    /// An environment holding only this template (compiled on creation).
    Compiled(Box<Environment<'static>>),
}

enum RenderFailure {
    TooLong,
    Engine(Error),
}

impl Template {
    /// Compiles `text`; syntax errors and forbidden tags are reported here.
    pub fn new(text: &str) -> Result<Template, TemplateError> {
        let chars = text.chars().count();
        if chars > MAX_TEMPLATE_CHARS {
            return Err(invalid(format!(
                "template is too long ({chars} characters, at most {MAX_TEMPLATE_CHARS})"
            )));
        }
        if !["{{", "{%", "{#"].iter().any(|d| text.contains(d)) {
            return Ok(Template {
                kind: Kind::Plain(text.to_owned()),
            });
        }
        let source = preprocess(text)?;
        let mut env = BASE_ENV.clone();
        env.add_template_owned(TEMPLATE_NAME, source.into_owned())
            .map_err(|e| describe(&e))?;
        Ok(Template {
            kind: Kind::Compiled(Box::new(env)),
        })
    }

    /// Renders for one recipient.
    pub fn render(&self, contact: &Json, contact_metas: &Json) -> Result<String, TemplateError> {
        self.render_raw(contact, contact_metas)
            .map_err(|f| match f {
                RenderFailure::TooLong => invalid(format!(
                    "rendered message is too long (more than {MAX_OUTPUT_CHARS} characters)"
                )),
                RenderFailure::Engine(e) => describe(&e),
            })
    }

    fn render_raw(&self, contact: &Json, metas: &Json) -> Result<String, RenderFailure> {
        let env = match &self.kind {
            Kind::Plain(text) => return Ok(text.clone()),
            Kind::Compiled(env) => env,
        };
        let template = env
            .get_template(TEMPLATE_NAME)
            .map_err(RenderFailure::Engine)?;
        let ctx = minijinja::context! {
            contact => Value::from_serialize(contact),
            contact_metas => Value::from_serialize(metas),
        };
        let mut out = BoundedWriter::default();
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => String::from_utf8(out.buf).map_err(|_| {
                RenderFailure::Engine(Error::new(ErrorKind::WriteFailure, "invalid UTF-8 output"))
            }),
            Err(_) if out.exceeded => Err(RenderFailure::TooLong),
            Err(e) => Err(RenderFailure::Engine(e)),
        }
    }
}

/// A one-line message: kind, detail and line, without minijinja's source dump.
fn describe(e: &Error) -> TemplateError {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    invalid(msg)
}

/// Collects the output and fails as soon as it exceeds [`MAX_OUTPUT_CHARS`],
/// so a runaway loop stops early instead of filling memory.
#[derive(Default)]
struct BoundedWriter {
    buf: Vec<u8>,
    chars: usize,
    exceeded: bool,
}

impl io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // minijinja writes whole UTF-8 fragments: count the non-continuation bytes.
        let added = data.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        if self.chars + added > MAX_OUTPUT_CHARS {
            self.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.chars += added;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Sandbox: tag filtering and Twig spellings

/// Tags that could load other templates or recurse without bound. Twig's
/// sandbox in RaspiSMS allows only `if`, `for`, `apply` and `set`.
const FORBIDDEN_TAGS: &[&str] = &[
    "macro", "call", "include", "import", "from", "extends", "block", "embed", "use", "sandbox",
];

/// Scans the tags (outside comments, raw blocks and string literals):
/// rejects [`FORBIDDEN_TAGS`] and recursive loops, and rewrites Twig's
/// `apply`/`endapply`/`elseif` to minijinja's `filter`/`endfilter`/`elif`.
/// Malformed input is left for minijinja to report.
fn preprocess(src: &str) -> Result<Cow<'_, str>, TemplateError> {
    let b = src.as_bytes();
    let line = |at: usize| src[..at].matches('\n').count() + 1;
    let mut rewrites: Vec<(usize, usize, &str)> = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => match src[i + 2..].find("#}") {
                Some(end) => i += 2 + end + 2,
                None => break,
            },
            b'{' => match find_closing(b, i + 2, b"}}") {
                Some(end) => i = end + 2,
                None => break,
            },
            b'%' => {
                let mut j = i + 2;
                if matches!(b.get(j), Some(b'-' | b'+' | b'~')) {
                    j += 1;
                }
                while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                let name_start = j;
                while b
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    j += 1;
                }
                let name = &src[name_start..j];
                let Some(end) = find_closing(b, j, b"%}") else {
                    break;
                };
                if FORBIDDEN_TAGS.contains(&name) {
                    return Err(invalid(format!(
                        "`{name}` tags are not allowed in message templates (line {})",
                        line(i)
                    )));
                }
                match name {
                    "for" if words_outside_strings(&b[j..end]).any(|w| w == b"recursive") => {
                        return Err(invalid(format!(
                            "recursive loops are not allowed in message templates (line {})",
                            line(i)
                        )));
                    }
                    "apply" => rewrites.push((name_start, j, "filter")),
                    "endapply" => rewrites.push((name_start, j, "endfilter")),
                    "elseif" => rewrites.push((name_start, j, "elif")),
                    "raw" => {
                        // Skip the raw content up to its `endraw` tag.
                        match find_endraw(src, end + 2) {
                            Some(after) => {
                                i = after;
                                continue;
                            }
                            None => break,
                        }
                    }
                    _ => {}
                }
                i = end + 2;
            }
            _ => i += 1,
        }
    }
    if rewrites.is_empty() {
        return Ok(Cow::Borrowed(src));
    }
    let mut out = String::with_capacity(src.len());
    let mut last = 0;
    for (start, end, replacement) in rewrites {
        out.push_str(&src[last..start]);
        out.push_str(replacement);
        last = end;
    }
    out.push_str(&src[last..]);
    Ok(Cow::Owned(out))
}

/// Index of `close` at or after `from`, skipping quoted strings.
fn find_closing(b: &[u8], from: usize, close: &[u8]) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ if b[i..].starts_with(close) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Identifiers of a tag body, string literals excluded.
fn words_outside_strings(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                spans.push((start, i));
            }
            _ => i += 1,
        }
    }
    spans.into_iter().filter_map(move |(s, e)| b.get(s..e))
}

/// Position after the `{% endraw %}` tag that closes a raw block.
fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let open = at + src.get(at..)?.find("{%")?;
        let rest = src[open + 2..]
            .trim_start_matches(['-', '+', '~'])
            .trim_start();
        if rest.starts_with("endraw") {
            return Some(open + 2 + src[open + 2..].find("%}")? + 2);
        }
        at = open + 2;
    }
}

// ---------------------------------------------------------------------------
// Environment

static BASE_ENV: LazyLock<Environment<'static>> = LazyLock::new(build_env);

/// Lets `env.set_fuel(..)` compile whether or not minijinja's `fuel` feature
/// is enabled: the inherent method, when it exists, takes precedence over
/// this no-op. Enabling the feature is all it takes to bound execution.
#[allow(dead_code)]
trait FuelFallback {
    fn set_fuel(&mut self, fuel: Option<u64>);
}

impl FuelFallback for Environment<'_> {
    fn set_fuel(&mut self, _fuel: Option<u64>) {}
}

fn build_env() -> Environment<'static> {
    // Deprecated only because minijinja's `serde` feature is off; it still
    // installs the builtin filters, tests and globals we rely on.
    #[allow(deprecated)]
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

fn now() -> DateTime {
    jiff::Zoned::now().datetime()
}

/// Turns a Twig date argument into a date-time: null is now, integers are
/// Unix timestamps (local time), strings are parsed like PHP's.
fn to_datetime(v: &Value) -> Result<DateTime, Error> {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Ok(now()),
        ValueKind::Number => {
            let secs = int_of(v).ok_or_else(|| op_error("invalid timestamp"))?;
            let ts = jiff::Timestamp::from_second(secs)
                .map_err(|e| op_error(format!("invalid timestamp: {e}")))?;
            Ok(ts.to_zoned(jiff::tz::TimeZone::system()).datetime())
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            php_date::parse(s, now()).ok_or_else(|| op_error(format!("cannot parse date `{s}`")))
        }
        _ => Err(op_error(format!("cannot use {} as a date", v.kind()))),
    }
}

/// Twig's `date()` function; returns `Y-m-d H:i:s` (Twig returns a
/// DateTime, which can only be formatted or compared anyway).
fn twig_date_function(v: Option<Value>) -> Result<Value, Error> {
    let dt = to_datetime(&v.unwrap_or_default())?;
    Ok(Value::from(php_date::format(dt, "Y-m-d H:i:s")))
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
    let base = php_date::format(to_datetime(&v)?, "Y-m-d H:i:s");
    php_date::parse(&format!("{base} {modifier}"), now())
        .map(|dt| php_date::format(dt, "Y-m-d H:i:s"))
        .ok_or_else(|| op_error(format!("invalid date modifier `{modifier}`")))
}

/// Twig's `slice(start, length)` on strings (characters) and sequences.
fn twig_slice(v: Value, start: i64, length: Option<i64>) -> Result<Value, Error> {
    if let Some(s) = v.as_str() {
        return Ok(Value::from(mb_substr(s, start, length)));
    }
    let items = items_of(&v)?;
    let n = items.len() as i64;
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
    Ok(Value::from(
        items
            .get(from..to)
            .map(<[Value]>::to_vec)
            .unwrap_or_default(),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jane() -> (Json, Json) {
        (
            json!({"lastname":"Doe","firstname":"Jane","birthdate":"1992-08-15","gender":"female","vip":"0"}),
            json!({"id": 1, "name": "Jane Doe", "number": "+33612345678"}),
        )
    }

    fn john() -> (Json, Json) {
        (
            json!({"lastname":"Doe","firstname":"John","birthdate":"1990-10-22","gender":"male","vip":"1"}),
            json!({"id": 2, "name": "John Doe", "number": "+33612345679"}),
        )
    }

    fn r(text: &str) -> Result<String, TemplateError> {
        let (c, m) = jane();
        render(text, &c, &m)
    }

    fn ok(text: &str) -> String {
        match r(text) {
            Ok(s) => s,
            Err(e) => panic!("{text:?} failed: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match r(text) {
            Ok(s) => panic!("{text:?} should fail, rendered {s:?}"),
            Err(TemplateError::Invalid(msg)) => msg,
        }
    }

    #[test]
    fn renders_contact_data() {
        assert_eq!(ok("Bonjour {{contact.firstname}}"), "Bonjour Jane");
        let text =
            "{% if contact.gender == 'male' %}M.{% else %}Mme.{% endif %} {{ contact_metas.name }}";
        assert_eq!(ok(text), "Mme. Jane Doe");
        let (c, m) = john();
        assert_eq!(render(text, &c, &m), Ok("M. John Doe".to_string()));
        // A compiled template renders many recipients.
        let Ok(t) = Template::new(text) else {
            panic!("compile")
        };
        assert_eq!(t.render(&c, &m), Ok("M. John Doe".to_string()));
        let (c, m) = jane();
        assert_eq!(t.render(&c, &m), Ok("Mme. Jane Doe".to_string()));
    }

    #[test]
    fn missing_values_render_empty() {
        assert_eq!(ok("[{{ nothing }}]"), "[]");
        assert_eq!(ok("[{{ contact.name }}]"), "[]");
        assert_eq!(ok("[{{ contact.a.b.c }}]"), "[]");
        assert_eq!(ok("[{{ contact_metas.missing|upper }}]"), "[]");
        assert_eq!(ok("[{% for x in contact.missing %}x{% endfor %}]"), "[]");
        assert_eq!(
            render(
                "[{{ contact.firstname }}]",
                &json!([]),
                &json!({"number": "+33612345678"})
            ),
            Ok("[]".to_string())
        );
        assert_eq!(
            render(
                "[{{ contact.x }}{{ contact.t }}{{ contact.f }}]",
                &json!({"x": null, "t": true, "f": false}),
                &json!({})
            ),
            Ok("[1]".to_string())
        );
    }

    #[test]
    fn plain_text_is_returned_as_is() {
        for text in [
            "Hello {name} }} %} #}",
            "",
            "Ça coûte 5 € 🎉\n",
            "a { b } c",
        ] {
            assert_eq!(ok(text), text);
        }
    }

    #[test]
    fn whitespace_and_multibyte_text_are_preserved() {
        assert_eq!(
            ok("  Salut {{ contact.firstname }} ! 🎉\n\n"),
            "  Salut Jane ! 🎉\n\n"
        );
        assert_eq!(
            ok("Ligne 1\n{% if true %}\nOui\n{% endif %}\nFin"),
            "Ligne 1\nOui\nFin"
        );
        assert_eq!(ok("{{ 'é' ~ contact.firstname|upper }}"), "éJANE");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let msg = err("Bonjour {{ contact.firstname ");
        assert!(msg.starts_with("syntax error"), "{msg}");
        assert!(msg.contains("line 1"), "{msg}");
        assert!(validate("{% if contact.x %}oops").is_err());
        assert!(validate("{{ contact.firstname }}").is_ok());
        assert!(validate("Hello").is_ok());
        let msg = match validate("{{ contact.firstname|nope }}") {
            Err(TemplateError::Invalid(m)) => m,
            Ok(()) => panic!("unknown filter accepted"),
        };
        assert!(msg.contains("unknown filter"), "{msg}");
        assert!(validate("{{ nope() }}").is_err());
        // Data-dependent failures are not validation errors.
        assert!(validate("{{ contact.birthdate|date('d/m/Y') }}").is_ok());
    }

    #[test]
    fn sandbox_rejects_includes_macros_and_recursion() {
        assert!(err("{% include 'x' %}").contains("`include` tags are not allowed"));
        assert!(err("a\n{%- import 'x' as y %}").contains("line 2"));
        assert!(err("{% extends 'x' %}").contains("not allowed"));
        assert!(err("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").contains("`macro`"));
        assert!(
            err("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}").contains("recursive")
        );
        // Strings and comments don't count as tags.
        assert_eq!(ok("{{ '{% include x %}' }}"), "{% include x %}");
        assert_eq!(ok("{# {% macro %} #}ok"), "ok");
        assert_eq!(ok("{% raw %}{% macro %}{% endraw %}"), "{% macro %}");
        assert_eq!(
            ok("{% for x in ['recursive'] %}{{ x }}{% endfor %}"),
            "recursive"
        );
        // `debug()` would leak the context.
        assert!(r("{{ debug() }}").is_err());
        assert!(r("{% set ns = namespace(a='x') %}").is_err());
    }

    #[test]
    fn runaway_templates_are_bounded() {
        assert!(err("{% for i in range(100000000) %}x{% endfor %}").contains("range is too large"));
        // Stopped by the range budget, or earlier by fuel when minijinja has it.
        let msg =
            err("{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}");
        assert!(
            msg.contains("too many range items") || msg.contains("fuel"),
            "{msg}"
        );
        assert!(
            err("{% for i in range(5000) %}{% for j in range(10) %}xx{% endfor %}{% endfor %}")
                .contains("too long")
        );
        assert!(err("{{ 'x' * 20000 }}").contains("too long"));
        assert!(err(&"{{ 1 }}".repeat(2000)).contains("template is too long"));
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(3000), ")".repeat(3000));
        assert!(r(&deep).is_err());
    }

    #[test]
    fn twig_functions_and_filters() {
        let letter = ok("{{ random(range('a','z'))|upper }}");
        assert_eq!(letter.chars().count(), 1, "{letter:?}");
        assert!(letter.chars().all(|c| c.is_ascii_uppercase()), "{letter:?}");
        assert_eq!(ok("{{ range(1, 3)|join(',') }}"), "1,2,3");
        assert_eq!(ok("{{ range(3, 1)|join(',') }}"), "3,2,1");
        assert_eq!(ok("{{ range(0, 10, 5)|join(',') }}"), "0,5,10");
        assert_eq!(ok("{{ range('a', 'e', 2)|join }}"), "ace");
        assert_eq!(ok("{{ range(3)|join(',') }}"), "0,1,2");
        let n: i64 = ok("{{ random(5) }}").parse().unwrap_or(-1);
        assert!((0..=5).contains(&n));
        assert_eq!(ok("{{ random([7]) }}"), "7");
        assert_eq!(ok("{{ random('x') }}"), "x");
        assert_eq!(ok("{{ max(1, 3, 2) }}-{{ min([4, 2, 8]) }}"), "3-2");
        assert_eq!(
            ok("{{ contact.nickname|default(contact.firstname) }}"),
            "Jane"
        );
        assert_eq!(ok("{{ ''|default('vide') }}"), "vide");
        assert_eq!(ok("{{ 0|default('vide') }}"), "0");
        assert_eq!(ok("{{ contact.birthdate|date('d/m/Y') }}"), "15/08/1992");
        assert_eq!(
            ok("{{ '2024-01-31'|date_modify('+1 day')|date('Y-m-d') }}"),
            "2024-02-01"
        );
        assert_eq!(
            ok("{{ date('2024-03-05 10:00')|date('D j M') }}"),
            "Tue 5 Mar"
        );
        assert_eq!(
            ok("{{ 'Bonjour'|slice(0, 3) }}|{{ [1,2,3,4]|slice(1, 2)|join }}"),
            "Bon|23"
        );
        assert_eq!(
            ok("{{ 1234567.891|number_format(2, ',', ' ') }}"),
            "1 234 567,89"
        );
        assert_eq!(ok("{{ 2.5|number_format }}"), "3");
        assert_eq!(ok("{{ 'a b&c'|url_encode }}"), "a%20b%26c");
        assert_eq!(ok("{{ {'a': 1}|json_encode }}"), "{\"a\":1}");
        assert_eq!(ok("{{ {'a': 1, 'b': 2}|keys|join(',') }}"), "a,b");
        assert_eq!(ok("{{ '<p> x </p>  <b>'|spaceless|raw }}"), "<p> x </p><b>");
        assert_eq!(ok("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 2 }}"), "1 0.3 2");
        assert_eq!(
            ok("{% if contact.nickname is empty %}vide{% endif %}"),
            "vide"
        );
        assert_eq!(ok("{{ '<b>' }}"), "<b>");
        assert_eq!(
            ok("{{ contact.firstname|title }} {{ contact.lastname|lower|capitalize }}"),
            "Jane Doe"
        );
    }

    #[test]
    fn twig_spellings_are_rewritten() {
        assert_eq!(
            ok("{% apply upper %}salut {{ contact.firstname }}{% endapply %}"),
            "SALUT JANE"
        );
        let text = "{% if contact.gender == 'male' %}M{% elseif contact.gender == 'female' %}F{% else %}?{% endif %}";
        assert_eq!(ok(text), "F");
    }
}
