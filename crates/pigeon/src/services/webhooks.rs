//! Webhooks: a URL that receives one type of event.

use pigeon_core::signature;
use pigeon_core::time;
use pigeon_store::Page;
use pigeon_store::outbox::{self, AttemptRow, Delivery};
use pigeon_store::webhooks;

use super::{Result, ServiceError, accounts};
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

pub(crate) fn check_url(url: &str) -> Result<()> {
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

/// A new webhook and its signing secret (`whsec_…`), which is shown only now.
pub async fn create(
    app: &App,
    user_id: i64,
    url: Option<&str>,
    kind: Option<&str>,
) -> Result<(i64, String)> {
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
    let mut random = [0u8; 24];
    getrandom::fill(&mut random).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let signing_secret = signature::new_secret(random);
    let id = webhooks::create(
        &app.store,
        user_id,
        url,
        kind,
        &app.key.seal(&signing_secret)?,
    )
    .await?;
    app.recent_targets.clear();
    Ok((id, signing_secret))
}

/// Changes the URL or type; `enable` re-enables a webhook disabled after failing too long.
pub async fn update(
    app: &App,
    user_id: i64,
    id: i64,
    url: Option<&str>,
    kind: Option<&str>,
    enable: bool,
) -> Result<()> {
    let url = url.map(str::trim);
    let kind = kind.map(str::trim);
    if let Some(url) = url {
        check_url(url)?;
    }
    if let Some(kind) = kind {
        check_type(kind)?;
    }
    webhooks::update(&app.store, user_id, id, url, kind, enable).await?;
    app.recent_targets.clear();
    Ok(())
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    webhooks::delete(&app.store, user_id, id).await?;
    app.recent_targets.clear();
    Ok(())
}

async fn owned(app: &App, user_id: i64, id: i64) -> Result<()> {
    webhooks::get(&app.store, user_id, id)
        .await?
        .map(|_| ())
        .ok_or(ServiceError::NotFound)
}

pub async fn deliveries(app: &App, user_id: i64, id: i64, page: Page) -> Result<Vec<Delivery>> {
    owned(app, user_id, id).await?;
    Ok(outbox::page(&app.store, user_id, id, page).await?)
}

pub async fn attempts(app: &App, user_id: i64, id: i64, page: Page) -> Result<Vec<AttemptRow>> {
    owned(app, user_id, id).await?;
    Ok(outbox::attempts(&app.store, user_id, id, page).await?)
}

/// Sends one delivery again, whatever became of it.
pub async fn redeliver(app: &App, user_id: i64, id: i64, delivery_id: i64) -> Result<()> {
    owned(app, user_id, id).await?;
    outbox::redeliver(&app.store, user_id, id, delivery_id).await?;
    app.wake.notify_waiters();
    Ok(())
}

/// Sends again every failed delivery of a webhook since `since` (`Y-m-d H:i:s` in the
/// account's time zone); how many.
pub async fn redeliver_failed(
    app: &App,
    user_id: i64,
    id: i64,
    since: Option<&str>,
) -> Result<u64> {
    owned(app, user_id, id).await?;
    let since = since.ok_or_else(|| ServiceError::Missing("since".into()))?;
    let tz = accounts::settings(app, user_id).await?.time_zone();
    let since = time::parse_local(since, &tz).map_err(|_| {
        ServiceError::Invalid("since must be a date of format \"Y-m-d H:i:s\".".into())
    })?;
    let count = outbox::redeliver_failed(&app.store, user_id, id, since).await?;
    app.wake.notify_waiters();
    Ok(count)
}
