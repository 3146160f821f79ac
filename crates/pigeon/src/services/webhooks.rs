//! Webhooks: a URL that receives one type of event.

use pigeon_core::secret;
use pigeon_store::webhooks;

use super::{Result, ServiceError};
use crate::app::App;

/// The event types a webhook can subscribe to (RaspiSMS's, including the two it declares but
/// never fires).
pub const TYPES: [&str; 7] = [
    "send_sms",
    "send_sms_status_change",
    "receive_sms",
    "inbound_call",
    "phone_reliability",
    "quota_level",
    "quota_reached",
];

fn check_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
    let host_ok = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    if !scheme_ok || !host_ok || url.chars().any(char::is_whitespace) {
        return Err(ServiceError::Invalid(
            "url must be an http:// or https:// URL.".into(),
        ));
    }
    if url.chars().count() > 250 {
        return Err(ServiceError::Invalid(
            "url must be less than 250 char.".into(),
        ));
    }
    Ok(())
}

fn check_type(kind: &str) -> Result<()> {
    if TYPES.contains(&kind) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "type must be one of : {}.",
            TYPES.join(", ")
        )))
    }
}

pub async fn create(app: &App, user_id: i64, url: Option<&str>, kind: Option<&str>) -> Result<i64> {
    let url = url
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ServiceError::Missing("url".into()))?;
    let kind = kind
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ServiceError::Missing("type".into()))?;
    check_url(url)?;
    check_type(kind)?;
    let signing_secret = format!("whsec_{}", secret::random_hex(24)?);
    Ok(webhooks::create(
        &app.store,
        user_id,
        url,
        kind,
        &app.key.seal(&signing_secret)?,
    )
    .await?)
}

pub async fn update(
    app: &App,
    user_id: i64,
    id: i64,
    url: Option<&str>,
    kind: Option<&str>,
) -> Result<()> {
    let url = url.map(str::trim);
    let kind = kind.map(str::trim);
    if let Some(url) = url {
        check_url(url)?;
    }
    if let Some(kind) = kind {
        check_type(kind)?;
    }
    Ok(webhooks::update(&app.store, user_id, id, url, kind).await?)
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    Ok(webhooks::delete(&app.store, user_id, id).await?)
}
