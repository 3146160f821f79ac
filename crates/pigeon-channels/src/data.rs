//! Reading a phone's adapter data: the fields the HTTP provider channels share.

use std::time::Duration;

use reqwest::Url;
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

/// A yes/no field: a JSON boolean, `1`/`0`, `true`/`false`, or `on`/`off` (what a checkbox
/// sends). Absent, null and blank are `None`.
pub(crate) fn flag(data: &Map<String, Value>, name: &str) -> Result<Option<bool>, ConfigError> {
    if let Some(Value::Bool(b)) = data.get(name) {
        return Ok(Some(*b));
    }
    let text = optional(data, name).map_err(|_| bad(name, "must be 1 or 0"))?;
    match text.map(|t| t.to_ascii_lowercase()).as_deref() {
        None => Ok(None),
        Some("1" | "true" | "on") => Ok(Some(true)),
        Some("0" | "false" | "off") => Ok(Some(false)),
        Some(_) => Err(bad(name, "must be 1 or 0")),
    }
}

/// A provider's base URL (`default` when absent), without its trailing `/`: http or https with
/// a host, and a path if any (a proxy's prefix), not a query.
pub(crate) fn base_url(
    data: &Map<String, Value>,
    name: &str,
    default: &str,
) -> Result<String, ConfigError> {
    let url = optional(data, name)?.unwrap_or_else(|| default.to_string());
    let base = url.trim_end_matches('/');
    Url::parse(base)
        .ok()
        .filter(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none()
                && url.fragment().is_none()
        })
        .ok_or_else(|| bad(name, "must be an http:// or https:// URL without a query"))?;
    Ok(base.to_string())
}

/// A channel's context for unit tests: phone 1, reports sent to `status_callback_url`.
#[cfg(test)]
pub(crate) fn test_context(status_callback_url: &str) -> crate::Context {
    crate::Context {
        phone_id: 1,
        data_dir: std::env::temp_dir(),
        status_callback_url: status_callback_url.into(),
        events: tokio::sync::mpsc::channel(1).0,
        http: crate::loopback_client().expect("client"),
    }
}

/// Query or form parameters as a callback's parser receives them (for the channels' tests).
#[cfg(test)]
pub(crate) fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The field a configuration was refused for, if it was (for the channels' tests).
#[cfg(test)]
pub(crate) fn failing_field<T>(result: Result<T, ConfigError>) -> Option<String> {
    match result {
        Err(ConfigError::Field { field, .. }) => Some(field),
        _ => None,
    }
}
