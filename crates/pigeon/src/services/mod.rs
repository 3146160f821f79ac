//! Services: the use cases every front door calls. They validate, apply the core rules and
//! talk to the store; doors only parse and render.

pub mod accounts;
pub mod campaigns;
pub mod contacts;
pub mod devices;
pub mod events;
pub mod groups;
pub mod inbound;
pub mod messaging;
pub mod notifications;
pub mod ovh;
pub mod phones;
pub mod quotas;
pub mod reliability;
pub mod sending;
pub mod stats;
pub mod webhooks;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pigeon_store::StoreError;

/// Values read on every request and changed rarely (accounts by API key, settings), each kept
/// for a short time: a change made in this process is seen at once (it forgets the value), one
/// made by another process (the CLI) within the time to live. A value read before a change
/// but put after it is not kept: [`Recent::put`] takes the generation the read began in.
#[derive(Debug)]
pub struct Recent<K, V> {
    ttl: Duration,
    entries: Mutex<Entries<K, V>>,
}

#[derive(Debug)]
struct Entries<K, V> {
    /// How many times the cache was cleared.
    generation: u64,
    values: HashMap<K, (Instant, V)>,
}

/// Entries kept at most; past it the cache starts afresh.
const RECENT_MAX: usize = 10_000;

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    pub fn new(ttl: Duration) -> Recent<K, V> {
        Recent {
            ttl,
            entries: Mutex::new(Entries {
                generation: 0,
                values: HashMap::new(),
            }),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.entries()
            .values
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// The value of `key`: kept, or read by `load` (begun only if needed) and kept.
    pub async fn get_or_load<E>(
        &self,
        key: K,
        load: impl std::future::Future<Output = std::result::Result<V, E>>,
    ) -> std::result::Result<V, E> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let read_in = self.generation();
        let value = load.await?;
        self.put(key, value.clone(), read_in);
        Ok(value)
    }

    /// The generation a read of a value to [`Recent::put`] begins in.
    pub fn generation(&self) -> u64 {
        self.entries().generation
    }

    /// Keeps `value`, read from generation `read_in` on, unless the cache was cleared since.
    pub fn put(&self, key: K, value: V, read_in: u64) {
        let mut entries = self.entries();
        if entries.generation != read_in {
            return;
        }
        if entries.values.len() >= RECENT_MAX {
            entries.values.clear();
        }
        entries.values.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.values.clear();
    }

    /// Forgets one value (and, as [`Recent::clear`], any read under way).
    pub fn forget(&self, key: &K) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.values.remove(key);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A parameter has a wrong value; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// A required parameter is absent.
    #[error("{0}")]
    Missing(String),
    /// No such resource for this user.
    #[error("not found")]
    NotFound,
    /// The resource's current state forbids the action; the text says why.
    #[error("{0}")]
    State(String),
    /// A uniqueness rule was broken; the text says which.
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict => ServiceError::Conflict("already exists".into()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<pigeon_core::secret::SecretError> for ServiceError {
    fn from(e: pigeon_core::secret::SecretError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// Turns a store conflict into a conflict that names the rule broken.
pub(crate) fn conflict_as(message: &str) -> impl Fn(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::Conflict => ServiceError::Conflict(message.to_string()),
        other => other.into(),
    }
}

/// A name that must be given and not blank, trimmed, at most `max` characters.
pub(crate) fn required_name(name: Option<&str>, max: usize) -> Result<&str> {
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::Missing("name".into()))?;
    check_len("name", name, max)?;
    Ok(name)
}

/// A name that may be absent (kept on update) but not blank, trimmed, at most `max` characters.
pub(crate) fn optional_name(name: Option<&str>, max: usize) -> Result<Option<&str>> {
    name.map(|n| required_name(Some(n), max)).transpose()
}

/// Checks a text parameter's length in characters.
pub(crate) fn check_len(field: &str, value: &str, max: usize) -> Result<()> {
    if value.chars().count() > max {
        return Err(ServiceError::Invalid(format!(
            "{field} must be less than {max} char."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_read_before_a_change_is_not_kept_after_it() {
        let recent: Recent<i64, &str> = Recent::new(Duration::from_secs(60));
        let read_in = recent.generation();
        recent.put(1, "kept", read_in);
        assert_eq!(recent.get(&1), Some("kept"));
        // A read begins, the value changes (and is forgotten), the read ends.
        let read_in = recent.generation();
        recent.forget(&1);
        recent.put(1, "stale", read_in);
        assert_eq!(recent.get(&1), None);
        let read_in = recent.generation();
        recent.clear();
        recent.put(2, "stale", read_in);
        assert_eq!(recent.get(&2), None);
        recent.put(2, "fresh", recent.generation());
        assert_eq!(recent.get(&2), Some("fresh"));
    }
}
