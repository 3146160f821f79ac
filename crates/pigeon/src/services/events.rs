//! Webhook events in RaspiSMS's format (its webhooks document, reference §2): a form POST with
//! `webhook_timestamp`, `webhook_type`, `webhook_random_id`, `webhook_signature` (HMAC-SHA256
//! of the random id, keyed with the owner's API key) and `body`, the event as a JSON string.
//! Rendered when the event happens, written to the outbox in the same transaction as its cause.

use pigeon_core::secret;
use pigeon_core::signature;
use pigeon_core::time::Ts;
use pigeon_store::outbox::{self, NewDelivery};
use pigeon_store::webhooks;
use serde_json::Value;

use super::{Result, accounts};
use crate::app::App;

pub const FORM: &str = "application/x-www-form-urlencoded";

/// RaspiSMS's `sended` statuses for Pigeon's outbound states (one table, tested in the door).
pub fn raspisms_status(status: &str) -> &'static str {
    match status {
        "delivered" => "delivered",
        "failed" | "undelivered" | "expired" => "failed",
        _ => "unknown",
    }
}

/// Where one user's events of one type go, and what signs them.
#[derive(Debug, Clone)]
pub struct Targets {
    user_id: i64,
    kind: &'static str,
    api_key: String,
    /// (webhook id, URL, sealed signing secret)
    hooks: Vec<(i64, String, String)>,
    /// Formats the account's dates (`Y-m-d H:i:s` in its time zone).
    pub dates: jiff::tz::TimeZone,
}

/// The webhooks a user's event of `kind` goes to: none when the `webhook` setting is off.
/// Kept for a moment (see [`crate::services::Recent`]); changes to webhooks, settings and keys
/// forget it.
pub async fn targets(app: &App, user_id: i64, kind: &'static str) -> Result<Targets> {
    app.recent_targets
        .get_or_load((user_id, kind), read_targets(app, user_id, kind))
        .await
}

async fn read_targets(app: &App, user_id: i64, kind: &'static str) -> Result<Targets> {
    let settings = accounts::settings(app, user_id).await?;
    let hooks = if settings.is_on("webhook") {
        webhooks::subscribed(&app.store, user_id, kind)
            .await?
            .into_iter()
            .map(|w| (w.id, w.url, w.secret_sealed))
            .collect()
    } else {
        Vec::new()
    };
    let api_key = if hooks.is_empty() {
        String::new()
    } else {
        accounts::api_key(app, user_id).await?
    };
    Ok(Targets {
        user_id,
        kind,
        api_key,
        hooks,
        dates: settings.time_zone(),
    })
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    pub fn at(&self, ms: i64) -> String {
        pigeon_core::time::format_local(Ts(ms), &self.dates)
    }

    /// One delivery per webhook, each with its own random id and signature, as RaspiSMS does.
    pub fn render(&self, body: &Value) -> Vec<NewDelivery> {
        let now = Ts::now().0 / 1000;
        let body = body.to_string();
        self.hooks
            .iter()
            .filter_map(|(webhook_id, url, secret_sealed)| {
                let random_id = format!("{now}-{}", secret::random_hex(16).ok()?);
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("webhook_timestamp", &now.to_string())
                    .append_pair("webhook_type", self.kind)
                    .append_pair("webhook_random_id", &random_id)
                    .append_pair(
                        "webhook_signature",
                        &signature::raspisms(&random_id, &self.api_key),
                    )
                    .append_pair("body", &body)
                    .finish();
                Some(NewDelivery {
                    user_id: self.user_id,
                    webhook_id: Some(*webhook_id),
                    endpoint: outbox::endpoint_of_webhook(*webhook_id),
                    secret_sealed: secret_sealed.clone(),
                    kind: self.kind.to_string(),
                    url: url.clone(),
                    content_type: FORM.to_string(),
                    body: form,
                    event_id: random_id,
                    headers: None,
                    method: "POST",
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::raspisms_status;

    #[test]
    fn raspisms_statuses() {
        for (internal, shown) in [
            ("queued", "unknown"),
            ("sending", "unknown"),
            ("sent", "unknown"),
            ("delivered", "delivered"),
            ("failed", "failed"),
            ("undelivered", "failed"),
            ("expired", "failed"),
        ] {
            assert_eq!(raspisms_status(internal), shown, "{internal}");
        }
    }
}
