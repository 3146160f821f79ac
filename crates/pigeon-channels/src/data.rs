//! Reading a phone's adapter data: the fields the HTTP provider channels share.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::ConfigError;

/// The default wait for a provider's answer; `timeout_ms` (not in the registries: for tests
/// and slow links) changes it.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;

pub(crate) fn bad(field: &str, reason: &str) -> ConfigError {
    ConfigError::Field {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

/// A string field, trimmed (credentials and senders never have surrounding spaces); numbers are
/// accepted as written (a sender number sent as a JSON number). Absent, null and blank are
/// `None`.
pub(crate) fn optional(
    data: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(name, "must be a string")),
    }
}

pub(crate) fn required(data: &Map<String, Value>, name: &str) -> Result<String, ConfigError> {
    optional(data, name)?.ok_or_else(|| bad(name, "is required"))
}

/// `timeout_ms`: a positive number of milliseconds, 30 s when absent.
pub(crate) fn timeout(data: &Map<String, Value>) -> Result<Duration, ConfigError> {
    let ms = match optional(data, "timeout_ms")? {
        None => DEFAULT_TIMEOUT_MS,
        Some(ms) => ms
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .ok_or_else(|| bad("timeout_ms", "must be a positive number of milliseconds"))?,
    };
    Ok(Duration::from_millis(ms))
}
