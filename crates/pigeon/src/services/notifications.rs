//! Notifications of the messages an API created with a callback URL, in that API's shape, and
//! of inbound SMS to a device's URL. They go through the webhook engine and are written in the
//! transaction of the change, as every event is.
//!
//! - Astandes: the whole message object, as JSON, on every status change, and each inbound SMS
//!   (status 204); signed with the device's secret (Standard Webhooks headers).
//! - Reach: a form of the MessageItem's fields on `queued`, `sent`, `failed`, `canceled`,
//!   `delivered` and `undelivered`, signed with `X-Reach-Signature` (the account's API key).

use pigeon_core::settings::Pricing;
use pigeon_core::time::Ts;
use pigeon_core::{secret, signature};
use pigeon_store::devices::{self, Device};
use pigeon_store::messages::{self, Detailed, Item};
use pigeon_store::outbox::{NewDelivery, endpoint_of_url};
use pigeon_store::queue::Single;
use serde_json::json;

use super::{Result, accounts, events};
use crate::app::App;
use crate::formats::{astandes, ovh, reach};

const JSON: &str = "application/json";

/// What a message's notification is rendered from, read before its change.
#[derive(Debug, Clone)]
pub enum Prepared {
    Astandes(AstandesBase),
    Reach(ReachBase),
    Ovh(OvhBase),
}

/// An OVH job's callback: the account's `callBack` when the job was created.
#[derive(Debug, Clone)]
pub struct OvhBase {
    user_id: i64,
    id: i64,
    url: String,
}

#[derive(Debug, Clone)]
pub struct AstandesBase {
    message: Detailed,
    device: Device,
    history: Vec<(String, i64)>,
}

#[derive(Debug, Clone)]
pub struct ReachBase {
    item: Item,
    api_key: String,
    pricing: Pricing,
}

/// The notification base of a message that asked for notifications; `None` otherwise.
pub async fn prepare(app: &App, user_id: i64, message_id: i64) -> Result<Option<Prepared>> {
    let Some(item) = messages::item(&app.store, user_id, message_id).await? else {
        return Ok(None);
    };
    if item.callback_url.as_deref().is_none_or(str::is_empty) {
        return Ok(None);
    }
    Ok(match item.api.as_deref() {
        Some("astandes") => prepare_astandes(app, user_id, message_id)
            .await?
            .map(Prepared::Astandes),
        Some("reach") => Some(Prepared::Reach(ReachBase {
            api_key: accounts::api_key(app, user_id).await?,
            pricing: accounts::settings(app, user_id).await?.pricing(),
            item,
        })),
        Some("ovh") => Some(Prepared::Ovh(OvhBase {
            user_id,
            id: message_id,
            url: item.callback_url.unwrap_or_default(),
        })),
        _ => None,
    })
}

async fn prepare_astandes(
    app: &App,
    user_id: i64,
    message_id: i64,
) -> Result<Option<AstandesBase>> {
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
    Ok(Some(AstandesBase {
        message,
        device,
        history,
    }))
}

impl Prepared {
    pub fn message_id(&self) -> i64 {
        match self {
            Prepared::Astandes(a) => a.message.id,
            Prepared::Reach(r) => r.item.id,
            Prepared::Ovh(o) => o.id,
        }
    }

    /// The notification of the message once in `status` (with `tried`: back in the queue after
    /// a failed attempt).
    pub fn render(&self, status: &str, tried: bool) -> Vec<NewDelivery> {
        match self {
            Prepared::Astandes(a) => a.render(status, tried),
            Prepared::Reach(r) => r.render(status),
            Prepared::Ovh(o) => ovh::callback_dlr(status, tried)
                .map(|dlr| {
                    let id = o.id.to_string();
                    let params = [("id", id.as_str()), ("dlr", &dlr.to_string())];
                    get_callback(o.user_id, "ovh_status", &o.url, &params)
                })
                .unwrap_or_default(),
        }
    }
}

/// A callback whose parameters travel in its URL's query (after the URL's own), as OVH's do.
fn get_callback(user_id: i64, kind: &str, url: &str, params: &[(&str, &str)]) -> Vec<NewDelivery> {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    let request = Request {
        method: "GET",
        content_type: "",
        body: String::new(),
        secret_sealed: String::new(),
        headers: None,
    };
    to_url(user_id, kind, format!("{url}{separator}{query}"), request)
}

/// What differs between the notifications of the dialects.
struct Request {
    method: &'static str,
    content_type: &'static str,
    body: String,
    /// The Standard Webhooks secret; empty for a dialect that signs its own way.
    secret_sealed: String,
    headers: Option<String>,
}

/// One delivery to a notification URL (not a webhook's), with a fresh event id.
fn to_url(user_id: i64, kind: &str, url: String, r: Request) -> Vec<NewDelivery> {
    let Ok(random) = secret::random_hex(16) else {
        return Vec::new();
    };
    vec![NewDelivery {
        user_id,
        webhook_id: None,
        endpoint: endpoint_of_url(&url),
        secret_sealed: r.secret_sealed,
        kind: kind.to_string(),
        url,
        content_type: r.content_type.to_string(),
        body: r.body,
        event_id: format!("{}-{random}", Ts::now().0 / 1000),
        headers: r.headers,
        method: r.method,
    }]
}

/// The account's OVH `stopCallBack` for a STOP that arrived (`number`, `message`, `id` of the
/// incoming SMS), if it has one.
pub async fn ovh_stop(
    app: &App,
    user_id: i64,
) -> Result<Option<impl Fn(i64, &str, &str) -> Vec<NewDelivery> + Send + use<>>> {
    let url = accounts::settings(app, user_id)
        .await?
        .get("ovh_stop_callback")
        .to_string();
    if url.is_empty() {
        return Ok(None);
    }
    Ok(Some(move |id: i64, number: &str, message: &str| {
        let id = id.to_string();
        let params = [
            ("number", number),
            ("message", message),
            ("id", id.as_str()),
        ];
        get_callback(user_id, "ovh_stop", &url, &params)
    }))
}

/// The `queued` callback of a Reach message queued at once, rendered from its id and creation
/// time as it is stored; `None` if it asked for no callbacks or does not start queued.
pub async fn reach_queued(
    app: &App,
    m: &Single,
) -> Result<Option<impl Fn(i64, i64) -> Vec<NewDelivery> + use<>>> {
    if m.status() != "queued" || m.callback_url.as_deref().is_none_or(str::is_empty) {
        return Ok(None);
    }
    let base = ReachBase {
        api_key: accounts::api_key(app, m.user_id).await?,
        pricing: accounts::settings(app, m.user_id).await?.pricing(),
        item: Item {
            id: 0,
            user_id: m.user_id,
            phone_id: m.phone_id,
            direction: "outbound".into(),
            origin: m.origin.clone(),
            destination: Some(m.destination.clone()),
            text: m.text.clone(),
            segments: m.segments,
            status: "queued".into(),
            tag: m.tag.clone(),
            api: Some(m.api.into()),
            callback_url: m.callback_url.clone(),
            error_code: None,
            error_text: None,
            at: 0,
            sent_at: None,
            delivered_at: None,
            created_at: 0,
            updated_at: 0,
        },
    };
    Ok(Some(move |id: i64, now: i64| {
        let mut base = base.clone();
        base.item.id = id;
        (base.item.at, base.item.created_at, base.item.updated_at) = (now, now, now);
        base.render("queued")
    }))
}

/// The statuses Reach calls back on.
const REACH_CALLBACKS: &[&str] = &[
    "queued",
    "sent",
    "failed",
    "canceled",
    "delivered",
    "undelivered",
];

impl ReachBase {
    fn render(&self, status: &str) -> Vec<NewDelivery> {
        if !REACH_CALLBACKS.contains(&reach::status(status)) {
            return Vec::new();
        }
        let url = self.item.callback_url.clone().unwrap_or_default();
        let form = reach::callback_form(&self.item, status, &self.pricing, Ts::now().0);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let signed = signature::reach(&self.api_key, &url, &pairs);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let request = Request {
            method: "POST",
            content_type: events::FORM,
            body,
            // Reach's own signature only: its receivers know nothing of Standard Webhooks.
            secret_sealed: String::new(),
            headers: Some(json!({ "X-Reach-Signature": signed }).to_string()),
        };
        to_url(self.item.user_id, "reach_status", url, request)
    }
}

impl AstandesBase {
    fn render(&self, status: &str, tried: bool) -> Vec<NewDelivery> {
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
) -> Result<Option<impl Fn(i64, &str, &str, i64) -> Vec<NewDelivery> + Send + use<>>> {
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
    let request = Request {
        method: "POST",
        content_type: JSON,
        body: body.to_string(),
        secret_sealed: device.secret_sealed.clone(),
        headers: None,
    };
    to_url(device.user_id, kind, url.to_string(), request)
}
