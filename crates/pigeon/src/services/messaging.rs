//! The messaging API's use cases (Reach, reference `provider-apis.md` §1): one message per
//! request, sent through whichever phone the router picks, scheduled within Reach's window,
//! priced with the account's settings, and called back on its status changes.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pigeon_core::numbers::{parse_e164, parse_sender};
use pigeon_core::text;
use pigeon_core::time::Ts;
use pigeon_store::messages::{self, Item, ItemFilter};
use pigeon_store::queue::{self, Single};

use super::{Result, ServiceError, accounts, notifications, webhooks};
use crate::app::App;

/// A message may be scheduled from 15 minutes to 5 days ahead.
pub const SCHEDULE_MIN: Duration = Duration::from_secs(15 * 60);
pub const SCHEDULE_MAX: Duration = Duration::from_secs(5 * 24 * 3600);
/// How long a message may wait in the queue, in seconds: at most, and by default, 4 hours.
pub const VALIDITY_MAX_SECS: i64 = 14_400;
pub const MAX_SEGMENTS: usize = 10;
/// The statuses after which nothing more happens to a message: it may be deleted.
const FINAL: &[&str] = &[
    "delivered",
    "undelivered",
    "failed",
    "expired",
    "canceled",
    "received",
];

/// A message to create, as the client gave it.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub dest: Option<String>,
    pub src: Option<String>,
    pub body: Option<String>,
    pub bulk: Option<String>,
    pub scheduled: Option<Ts>,
    pub callback: Option<String>,
    pub max_price: Option<f64>,
    pub validity_secs: Option<i64>,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str> {
    value
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ServiceError::Missing(format!("{name} is required")))
}

/// A body of at most 10 segments: its encoding and segment count.
fn segments_of(body: &str) -> Result<(&'static str, i64)> {
    let analysis = text::analyse(body);
    if analysis.segments > MAX_SEGMENTS {
        return Err(invalid(format!(
            "body is {} segments long; at most {MAX_SEGMENTS} are allowed",
            analysis.segments
        )));
    }
    Ok((analysis.encoding.as_str(), analysis.segments as i64))
}

/// `statusCallback`: an http(s) URL whose host has no underscore (Reach's rule).
fn check_callback(url: &str) -> Result<()> {
    webhooks::check_url(url)
        .map_err(|_| invalid("statusCallback must be an http:// or https:// URL"))?;
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default())
        .unwrap_or_default();
    if host.contains('_') {
        return Err(invalid(
            "statusCallback's host name must not contain underscores",
        ));
    }
    Ok(())
}

fn check_schedule(at: Ts, now: Ts) -> Result<()> {
    let ahead = at.0 - now.0;
    if ahead < SCHEDULE_MIN.as_millis() as i64 || ahead > SCHEDULE_MAX.as_millis() as i64 {
        return Err(invalid(
            "scheduledTime must be at least 15 minutes and at most 5 days ahead",
        ));
    }
    Ok(())
}

/// Checks and stores a message: queued for the router, scheduled, or failed at once when its
/// price is above `maxPrice` or its recipient answered STOP; returns it as stored.
pub async fn create(app: &App, user_id: i64, m: &NewMessage) -> Result<Item> {
    let dest = parse_e164(required(&m.dest, "dest")?)
        .map_err(|_| invalid("dest must be an E.164 phone number"))?;
    let src = parse_sender(required(&m.src, "src")?)
        .map_err(|_| invalid("src must be an E.164 phone number or an alphanumeric sender ID of at most 11 characters"))?;
    let body = required(&m.body, "body")?;
    let (encoding, segments) = segments_of(body)?;
    let now = Ts::now();
    if let Some(at) = m.scheduled {
        check_schedule(at, now)?;
    }
    if let Some(url) = &m.callback {
        check_callback(url)?;
    }
    let validity = m.validity_secs.unwrap_or(VALIDITY_MAX_SECS);
    if !(1..=VALIDITY_MAX_SECS).contains(&validity) {
        return Err(invalid(format!(
            "validityPeriod must be between 1 and {VALIDITY_MAX_SECS} seconds"
        )));
    }
    if let Some(bulk) = &m.bulk {
        super::check_len("bulkIdentifier", bulk, 100)?;
    }
    let settings = accounts::settings(app, user_id).await?;
    let price = settings.pricing().of(segments);
    let refused = match m.max_price {
        Some(max) if !max.is_finite() || max < 0.0 => {
            return Err(invalid("maxPrice must be a number, 0 or more"));
        }
        Some(max) if price > max => Some((
            "30010",
            format!("the price {price} is above maxPrice {max}"),
        )),
        _ => None,
    };
    let stopped =
        settings.is_on("smsstop") && accounts::stop_list(app, user_id).await?.contains(&dest);
    let refused = refused.or(stopped.then(|| ("21610", "the recipient answered STOP".to_string())));
    let start = m.scheduled.unwrap_or(now);
    let single = Single {
        user_id,
        api: "reach",
        phone_id: None,
        phone_fixed: false,
        flash: false,
        origin: Some(src),
        destination: dest,
        text: body.to_string(),
        encoding,
        segments,
        max_tries: app.config.max_tries.max(1),
        valid_until: Ts(start.0 + validity * 1000),
        client_ref: None,
        callback_url: m.callback.clone(),
        tag: m.bulk.clone().filter(|b| !b.is_empty()),
        scheduled: m.scheduled,
        error: refused.map(|(code, text)| (code.to_string(), text)),
    };
    let queued = notifications::reach_queued(app, &single).await?;
    let stored = queue::enqueue_all(
        &app.store,
        std::slice::from_ref(&single),
        move |_, id, now| {
            queued
                .as_ref()
                .map(|render| render(id, now))
                .unwrap_or_default()
        },
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| ServiceError::Internal("message not stored".into()))?;
    // Without a phone yet: the router wakes the senders once it has given it one.
    app.wake.notify_waiters();
    Ok(single.item(stored))
}

pub async fn get(app: &App, user_id: i64, id: i64) -> Result<Item> {
    messages::item(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

pub async fn list(app: &App, user_id: i64, filter: &ItemFilter) -> Result<(Vec<Item>, i64)> {
    Ok(messages::items(&app.store, user_id, filter).await?)
}

/// Rewrites a message's body (Reach's redaction). One not sent yet will go with its new body,
/// which must then be a sendable one.
pub async fn update(app: &App, user_id: i64, id: i64, body: &str) -> Result<Item> {
    let m = get(app, user_id, id).await?;
    let unsent = matches!(m.status.as_str(), "scheduled" | "queued");
    if unsent && body.trim().is_empty() {
        return Err(invalid(
            "the body of a message not sent yet cannot be empty",
        ));
    }
    let (encoding, segments) = if unsent {
        segments_of(body)?
    } else {
        (text::analyse(body).encoding.as_str(), m.segments)
    };
    messages::rewrite(&app.store, user_id, id, body, encoding, segments).await?;
    get(app, user_id, id).await
}

/// Cancels a message not handed to a phone yet.
pub async fn unschedule(app: &App, user_id: i64, id: i64) -> Result<Item> {
    get(app, user_id, id).await?;
    let deliveries = notifications::prepare(app, user_id, id)
        .await?
        .map(|n| n.render("canceled", false))
        .unwrap_or_default();
    if !queue::cancel(
        &app.store,
        user_id,
        id,
        "unscheduled through the API",
        &deliveries,
    )
    .await?
    {
        return Err(ServiceError::State(
            "the message is already being sent and cannot be unscheduled".into(),
        ));
    }
    get(app, user_id, id).await
}

/// Deletes a message whose story is over.
pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    get(app, user_id, id).await?;
    if messages::delete_final(&app.store, user_id, id, FINAL).await? {
        Ok(())
    } else {
        Err(ServiceError::State(
            "the message is in progress; it can be deleted once delivered, undelivered, failed or canceled".into(),
        ))
    }
}

/// Requests per second allowed per account, with a burst; each account has its own bucket.
#[derive(Debug)]
pub struct RateLimit(Option<DefaultKeyedRateLimiter<i64>>);

impl RateLimit {
    /// No limit when `per_second` is 0.
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit(NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        }))
    }

    /// Takes one request of `account`'s allowance, or says how long until one is free.
    pub fn check(&self, account: i64) -> std::result::Result<(), Duration> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter
            .check_key(&account)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}
