//! Accounts: creation, API-key authentication and rotation, status, settings.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use pigeon_core::secret::{self, generate_api_key, sha256_hex};
use pigeon_core::settings::{DEFAULTS, Pricing, php_truthy};
use pigeon_store::users::{self, NewUser, User};

use super::{Result, ServiceError, check_len, conflict_as};
use crate::app::App;

/// Given API keys must be at least this long, so they cannot be guessed.
pub const MIN_API_KEY_LEN: usize = 16;
pub const FIRST_ADMIN_EMAIL: &str = "admin@pigeon.local";

pub struct Created {
    pub id: i64,
    pub email: String,
    /// Set when the password was generated, to be shown once.
    pub password: Option<String>,
    pub api_key: String,
}

pub async fn create_user(
    app: &App,
    email: &str,
    admin: bool,
    password: Option<String>,
    api_key: Option<String>,
) -> Result<Created> {
    let email = email.trim();
    if !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(ServiceError::Invalid(format!(
            "`{email}` is not an email address"
        )));
    }
    check_len("email", email, 150)?;
    let api_key = match api_key {
        Some(key)
            if key.chars().count() < MIN_API_KEY_LEN || key.chars().any(char::is_whitespace) =>
        {
            return Err(ServiceError::Invalid(format!(
                "an API key must be at least {MIN_API_KEY_LEN} characters, without spaces"
            )));
        }
        Some(key) => key,
        None => generate_api_key()?,
    };
    let generated = password.is_none();
    let password = match password {
        Some(p) => p,
        None => secret::random_hex(12)?,
    };
    let id = users::create(
        &app.store,
        &NewUser {
            email,
            password_hash: &hash_password(&password)?,
            admin,
            api_key_digest: &sha256_hex(&api_key),
            api_key_sealed: &app.key.seal(&api_key)?,
        },
    )
    .await
    .map_err(conflict_as(
        "an account with this email already exists, or this API key is taken",
    ))?;
    Ok(Created {
        id,
        email: email.to_string(),
        password: generated.then_some(password),
        api_key,
    })
}

/// At first start, when there is no account, creates an administrator.
pub async fn create_first_admin(app: &App) -> Result<Option<Created>> {
    if users::count(&app.store).await? > 0 {
        return Ok(None);
    }
    create_user(app, FIRST_ADMIN_EMAIL, true, None, None)
        .await
        .map(Some)
}

fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(e.to_string()))
}

/// A user's API key, in clear (it keys the signatures of their callbacks).
pub async fn api_key(app: &App, user_id: i64) -> Result<String> {
    let user = users::get(&app.store, user_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    Ok(app.key.open(&user.api_key_sealed)?)
}

/// The account an API key belongs to, whatever its status.
pub async fn by_api_key(app: &App, api_key: &str) -> Result<Option<User>> {
    let digest = sha256_hex(api_key);
    if let Some(user) = app.recent_users.get(&digest) {
        return Ok(Some(user));
    }
    let read_in = app.recent_users.generation();
    let user = users::by_api_key_digest(&app.store, &digest).await?;
    if let Some(user) = &user {
        app.recent_users.put(digest, user.clone(), read_in);
    }
    Ok(user)
}

pub async fn rotate_key(app: &App, email: &str) -> Result<String> {
    let key = generate_api_key()?;
    users::set_api_key(&app.store, email, &sha256_hex(&key), &app.key.seal(&key)?).await?;
    app.recent_users.clear();
    app.recent_targets.clear();
    Ok(key)
}

pub async fn set_status(app: &App, email: &str, status: &str) -> Result<()> {
    users::set_status(&app.store, email, status).await?;
    app.recent_users.clear();
    Ok(())
}

/// A user's settings, defaults filled in.
#[derive(Debug, Clone)]
pub struct Settings(Arc<HashMap<String, String>>);

impl Settings {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or_default()
    }

    pub fn is_on(&self, name: &str) -> bool {
        php_truthy(self.get(name))
    }

    /// What the account's messages cost (free if the setting is not a price).
    pub fn pricing(&self) -> Pricing {
        Pricing::parse(self.get("price_per_segment"), self.get("price_unit")).unwrap_or(Pricing {
            per_segment: 0.0,
            unit: self.get("price_unit").to_string(),
        })
    }

    /// The account's time zone (UTC if the setting names no known zone).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        pigeon_core::time::zone(self.get("timezone")).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// Changes one setting of an account; only known settings, and a known time zone.
pub async fn set_setting(app: &App, email: &str, name: &str, value: &str) -> Result<()> {
    if !DEFAULTS.iter().any(|(known, _)| *known == name) {
        return Err(ServiceError::Invalid(format!("unknown setting `{name}`")));
    }
    if name == "timezone" {
        pigeon_core::time::zone(value).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    }
    if name == "commercial_days" || name == "commercial_hours" {
        let current = |n: &str, v: &str| {
            if n == name {
                value.to_string()
            } else {
                v.to_string()
            }
        };
        let user = users::by_email(&app.store, email)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let s = settings(app, user.id).await?;
        let days = current("commercial_days", s.get("commercial_days"));
        let hours = current("commercial_hours", s.get("commercial_hours"));
        pigeon_core::time::window::Window::parse(&days, &hours).map_err(|_| {
            ServiceError::Invalid(
                "commercial_days are day names separated by commas (mon,tue,…) and commercial_hours HH:MM-HH:MM".into(),
            )
        })?;
    }
    if name == "price_per_segment" && Pricing::parse(value, "").is_none() {
        return Err(ServiceError::Invalid(
            "price_per_segment must be a number, 0 or more".into(),
        ));
    }
    let user = users::by_email(&app.store, email)
        .await?
        .ok_or(ServiceError::NotFound)?;
    pigeon_store::settings::set(&app.store, user.id, name, value).await?;
    app.recent_settings.clear();
    app.recent_targets.clear();
    Ok(())
}

/// The account's STOP list, from memory when it was read within the last second (this server
/// forgets it when it changes the list).
pub async fn stop_list(app: &App, user_id: i64) -> Result<Arc<HashSet<String>>> {
    let read = async {
        Ok(Arc::new(
            pigeon_store::stop_list::numbers(&app.store, user_id).await?,
        ))
    };
    app.recent_stop_lists.get_or_load(user_id, read).await
}

pub async fn settings(app: &App, user_id: i64) -> Result<Settings> {
    let read = async {
        let mut all: HashMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(pigeon_store::settings::all(&app.store, user_id).await?);
        Ok(Settings(Arc::new(all)))
    };
    app.recent_settings.get_or_load(user_id, read).await
}
