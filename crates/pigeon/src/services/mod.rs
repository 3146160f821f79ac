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
/// made by another process (the CLI) within the time to live.
#[derive(Debug)]
pub struct Recent<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

/// Entries kept at most; past it the cache starts afresh.
const RECENT_MAX: usize = 10_000;

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    pub fn new(ttl: Duration) -> Recent<K, V> {
        Recent {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<K, (Instant, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.entries()
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries();
        if entries.len() >= RECENT_MAX {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries().clear();
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
