//! Astandes notifications: the whole message object, as JSON, to the message's `notification`
//! URL on every status change, and each inbound SMS (status 204) to its device's URL. They go
//! through the webhook engine, signed with the device's secret (Standard Webhooks headers), and
//! are written in the transaction of the change, as every event is.

use pigeon_core::secret;
use pigeon_core::time::Ts;
use pigeon_store::devices::{self, Device};
use pigeon_store::messages::{self, Detailed};
use pigeon_store::outbox::{NewDelivery, endpoint_of_url};

use super::Result;
use crate::app::App;
use crate::formats::astandes;

const JSON: &str = "application/json";

/// What a message's notification is rendered from, read before its change.
#[derive(Debug, Clone)]
pub struct Prepared {
    message: Detailed,
    device: Device,
    history: Vec<(String, i64)>,
}

/// The notification base of a device message that asked for notifications; `None` otherwise.
pub async fn prepare(app: &App, user_id: i64, message_id: i64) -> Result<Option<Prepared>> {
    let Some(message) = messages::device_message(&app.store, user_id, message_id).await? else {
        return Ok(None);
    };
    if message.callback_url.as_deref().is_none_or(str::is_empty) {
        return Ok(None);
    }
    let Some(phone) = message.phone_id else {
        return Ok(None);
    };
    let Some(device) = devices::by_phones(&app.store, user_id, &[phone])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let history = messages::histories(&app.store, &[message_id])
        .await?
        .into_iter()
        .map(|h| (h.status, h.at))
        .collect();
    Ok(Some(Prepared {
        message,
        device,
        history,
    }))
}

impl Prepared {
    pub fn message_id(&self) -> i64 {
        self.message.id
    }

    /// The notification of the message once in `status` (with `tried`: back in the queue after
    /// a failed attempt).
    pub fn render(&self, status: &str, tried: bool) -> Vec<NewDelivery> {
        let now = Ts::now().0;
        let mut message = self.message.clone();
        message.status = status.to_string();
        message.tries = message.tries.max(i64::from(tried));
        message.updated_at = now;
        let mut history = self.history.clone();
        history.push((status.to_string(), now));
        let body = astandes::message(&message, Some(&self.device), &history);
        let url = self.message.callback_url.clone().unwrap_or_default();
        delivery(&self.device, "astandes_status", &url, &body)
    }
}

/// Renders the notifications of several messages in `status` (expiry sweeps).
pub async fn prepare_all(app: &App, ids: &[(i64, i64)]) -> Result<Vec<(i64, Prepared)>> {
    let mut out = Vec::new();
    for (user_id, id) in ids {
        if let Some(prepared) = prepare(app, *user_id, *id).await? {
            out.push((*id, prepared));
        }
    }
    Ok(out)
}

/// The notification of an inbound SMS to its device's URL (status 204), if the phone is a
/// device with a notification URL.
pub async fn inbound(
    app: &App,
    user_id: i64,
    phone_id: i64,
) -> Result<Option<impl Fn(i64, &str, &str, i64) -> Vec<NewDelivery>>> {
    let Some(device) = devices::by_phones(&app.store, user_id, &[phone_id])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    if device.notification.is_empty() {
        return Ok(None);
    }
    Ok(Some(move |id: i64, origin: &str, text: &str, at: i64| {
        let message = Detailed {
            id,
            user_id,
            phone_id: Some(phone_id),
            direction: "inbound".into(),
            origin: Some(origin.to_string()),
            destination: None,
            text: text.to_string(),
            status: "received".into(),
            client_ref: None,
            callback_url: None,
            valid_until: None,
            max_tries: 1,
            tries: 0,
            error_code: None,
            created_at: at,
            updated_at: at,
        };
        let body = astandes::message(&message, Some(&device), &[("received".to_string(), at)]);
        delivery(&device, "astandes_inbound", &device.notification, &body)
    }))
}

fn delivery(device: &Device, kind: &str, url: &str, body: &serde_json::Value) -> Vec<NewDelivery> {
    let Ok(random) = secret::random_hex(16) else {
        return Vec::new();
    };
    vec![NewDelivery {
        user_id: device.user_id,
        webhook_id: None,
        endpoint: endpoint_of_url(url),
        secret_sealed: device.secret_sealed.clone(),
        kind: kind.to_string(),
        url: url.to_string(),
        content_type: JSON.to_string(),
        body: body.to_string(),
        event_id: format!("{}-{random}", Ts::now().0 / 1000),
    }]
}
