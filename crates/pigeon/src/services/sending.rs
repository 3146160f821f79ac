//! Sending: due campaigns become messages, messages are routed to phones, and one claimed
//! message is sent through its phone's channel with RaspiSMS's checks (quota, phone status,
//! limits) and Pigeon's retries and failover.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pigeon_channels::{Adapter, Channel, Outgoing, SendError};
use pigeon_core::recipients::Outcome;
use pigeon_core::retry;
use pigeon_core::routing::{self, Candidate, Preferences};
use pigeon_core::text;
use pigeon_core::time::Ts;
use pigeon_store::campaigns::{self, Campaign, Links};
use pigeon_store::groups::{self, PHONE_GROUPS};
use pigeon_store::media;
use pigeon_store::outbox::NewDelivery;
use pigeon_store::phones::{self, Pending, Phone};
use pigeon_store::queue::{self, Attempt, Dispatch, NewOutbound, Queued};
use pigeon_store::quotas::{self, Quota};
use serde_json::json;

use super::accounts::{self, Settings};
use super::{
    Result, campaigns as campaign_service, events, notifications, phones as phone_service,
    quotas as quota_service,
};
use crate::app::App;

/// Dispatches the campaigns that are due, together so that their writes share group commits;
/// returns how many messages were queued. Their messages get a phone from `router` as they are
/// written, so that routing costs no write of its own; those it finds none for wait unassigned.
pub async fn dispatch_due(app: &App, router: &mut Router) -> Result<usize> {
    let due = queue::due_campaigns(&app.store, Ts::now(), 200).await?;
    if due.is_empty() {
        return Ok(0);
    }
    // Read once for all of them: their links, and their owners' STOP lists.
    let ids: Vec<i64> = due.iter().map(|c| c.id).collect();
    let links = campaigns::links(&app.store, &ids).await?;
    let mut stop_lists = HashMap::new();
    for c in &due {
        if let Entry::Vacant(slot) = stop_lists.entry(c.user_id) {
            slot.insert(accounts::stop_list(app, c.user_id).await?);
        }
    }
    let mut dispatches = futures_util::future::try_join_all(
        due.iter()
            .map(|c| dispatch_of(app, c, &links, &stop_lists[&c.user_id])),
    )
    .await?;
    for (d, messages) in &mut dispatches {
        // Behind older messages waiting for a phone, new ones wait too rather than overtake.
        if d.phone_fixed || router.behind {
            continue;
        }
        for m in messages.iter_mut() {
            m.phone_id = router.pick(app, d.user_id, d.phone_group_id, d.mms).await?;
        }
    }
    let dispatches = std::sync::Arc::new(dispatches);
    let written = queue::dispatch_all(&app.store, dispatches.clone()).await?;
    Ok(dispatches
        .iter()
        .zip(written)
        .filter(|(_, written)| *written)
        .map(|((_, messages), _)| messages.len())
        .sum())
}

/// A campaign's dispatch: one message per recipient that gets a text. Recipients on the STOP
/// list or whose template failed are skipped.
async fn dispatch_of(
    app: &App,
    campaign: &Campaign,
    links: &Links,
    stop_list: &HashSet<String>,
) -> Result<(Dispatch, Vec<NewOutbound>)> {
    let recipients = campaign_service::resolve(app, campaign, links, stop_list).await?;
    let media = links.media.get(&campaign.id).cloned().unwrap_or_default();
    let messages: Vec<NewOutbound> = recipients
        .into_iter()
        .filter_map(|r| match r.outcome {
            Outcome::Send(text) => Some((r.target.number, text)),
            _ => None,
        })
        .map(|(destination, text)| {
            let analysis = text::analyse(&text);
            NewOutbound {
                destination,
                text,
                encoding: analysis.encoding.as_str(),
                segments: analysis.segments as i64,
                phone_id: campaign.phone_id,
                media: media.clone(),
            }
        })
        .collect();
    let start = Ts(campaign.at.max(Ts::now().0));
    let dispatch = Dispatch {
        campaign_id: campaign.id,
        user_id: campaign.user_id,
        phone_group_id: campaign.phone_group_id,
        phone_fixed: campaign.phone_id.is_some(),
        flash: campaign.flash,
        mms: campaign.mms,
        tag: campaign.tag.clone(),
        max_tries: app.config.max_tries.max(1),
        valid_until: Ts(start.0 + app.config.validity_secs * 1000),
    };
    Ok((dispatch, messages))
}

/// Picks phones for messages during one pass of the scheduler (RaspiSMS §5.5): each account's
/// pool of phones is read once, and the volume a pick spends counts against later picks of the
/// pass, so that one pass does not overfill a phone.
#[derive(Default)]
pub struct Router {
    pools: HashMap<(i64, Option<i64>), (Settings, Vec<Candidate>)>,
    /// Messages waiting for a phone were left for a later pass.
    behind: bool,
}

impl Router {
    /// A phone for a message of `user_id` restricted to `group`, if one is available.
    async fn pick(
        &mut self,
        app: &App,
        user_id: i64,
        group: Option<i64>,
        mms: bool,
    ) -> Result<Option<i64>> {
        let (settings, pool) = match self.pools.entry((user_id, group)) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let settings = accounts::settings(app, user_id).await?;
                let pool = candidates(app, user_id, group, &settings).await?;
                slot.insert((settings, pool))
            }
        };
        let picked = routing::pick(pool, preferences(settings, mms), rand::random::<f64>());
        if let Some(c) = pool.iter_mut().find(|c| Some(c.id) == picked) {
            c.remaining = c.remaining.map(|r| r - 1);
        }
        Ok(picked)
    }
}

/// The phones a user's message may go through, as routing candidates.
async fn candidates(
    app: &App,
    user_id: i64,
    group: Option<i64>,
    settings: &Settings,
) -> Result<Vec<Candidate>> {
    let mut phones = phones::all(&app.store, user_id).await?;
    if let Some(group) = group {
        let members = groups::members(&app.store, PHONE_GROUPS, &[group])
            .await?
            .remove(&group)
            .unwrap_or_default();
        phones.retain(|p| members.contains(&p.id));
    }
    let mut out = Vec::with_capacity(phones.len());
    for phone in phones {
        let remaining = if settings.is_on("phone_limit") {
            phone_service::remaining_volume(app, &phone, settings, Pending::All).await?
        } else {
            None
        };
        out.push(Candidate {
            id: phone.id,
            available: phone.status == "available",
            mms: pigeon_channels::find(&phone.adapter).is_some_and(|a| a.capabilities.mms_sending),
            remaining,
            priority: phone.priority,
        });
    }
    Ok(out)
}

fn preferences(settings: &Settings, mms: bool) -> Preferences {
    Preferences {
        mms,
        limits: settings.is_on("phone_limit"),
        priority: settings.is_on("phone_priority"),
    }
}

/// Gives queued messages without a phone one (RaspiSMS §5.5); those for which no phone is
/// available wait. Returns how many were routed.
pub async fn route_unassigned(app: &App, router: &mut Router) -> Result<usize> {
    let waiting = queue::unassigned(&app.store, ROUTED_PER_PASS).await?;
    router.behind = waiting.len() as i64 == ROUTED_PER_PASS;
    let mut assignments = Vec::new();
    for m in waiting {
        if let Some(phone) = router.pick(app, m.user_id, m.phone_group_id, m.mms).await? {
            assignments.push((m.id, Some(phone)));
        }
    }
    let routed = assignments.len();
    if routed > 0 {
        queue::assign(&app.store, assignments).await?;
    }
    Ok(routed)
}

/// Messages waiting for a phone that one pass of the router takes, at most.
const ROUTED_PER_PASS: i64 = 500;

/// Sends one claimed message through `phone`'s channel and records the outcome.
pub async fn send(app: &App, channel: &Channel, phone: &Phone, m: &Queued) -> Result<()> {
    let adapter = channel.adapter();
    if let Some(ready) = prepare(app, adapter, phone, m).await? {
        let result = channel.send(&ready.outgoing).await;
        finish(app, adapter, phone, m, ready, result).await?;
    }
    Ok(())
}

/// A claimed message that passed the checks, with its credits taken, ready for its channel.
pub struct Ready {
    pub outgoing: Outgoing,
    settings: Settings,
    credits: i64,
    reserved: bool,
}

/// The checks before a send (RaspiSMS §5.2: phone status, limits, quota); a message they
/// refuse is recorded (failed, or back to routing) and `None` comes back.
pub async fn prepare(
    app: &App,
    adapter: &Adapter,
    phone: &Phone,
    m: &Queued,
) -> Result<Option<Ready>> {
    let settings = accounts::settings(app, m.user_id).await?;
    let outgoing = outgoing(app, adapter, m).await?;
    let refused = match refusal(app, phone, m, &settings).await? {
        Some(Refusal::Fail(reason)) => Decision::Failed(reason),
        Some(Refusal::Reroute(reason)) => Decision::Reroute(reason),
        // An account without a quota has no credits to take: no write before its sends.
        None if !quota_service::exists(app, m.user_id).await? => {
            return Ok(Some(Ready {
                outgoing,
                settings,
                credits: 0,
                reserved: false,
            }));
        }
        None => {
            // Credits are taken before the send, in one statement, so concurrent sends cannot
            // overspend; they are given back if the send fails. Links appended to an MMS count.
            let credits = text::analyse(&outgoing.text).segments as i64;
            let reservation = quotas::reserve(&app.store, m.user_id, credits, Ts::now()).await?;
            let reserved = reservation.reserved;
            // Credits were taken only from a quota in force; otherwise look whether one is.
            let in_force = reservation
                .quota
                .filter(|q| reserved || q.remaining(Ts::now()).is_some());
            let limited = in_force.is_some();
            if let Some(quota) = in_force {
                quota_alerts(app, m.user_id, &settings, &quota).await?;
            }
            if reserved || !limited {
                return Ok(Some(Ready {
                    outgoing,
                    settings,
                    credits,
                    reserved,
                }));
            }
            Decision::Failed("Not enough credit to send message.".into())
        }
    };
    record(app, adapter, phone, m, &outgoing, refused).await?;
    Ok(None)
}

/// Records what the channel answered for a prepared message (credits given back if it failed;
/// a transient failure retried, on another phone of the pool if there is one).
pub async fn finish(
    app: &App,
    adapter: &Adapter,
    phone: &Phone,
    m: &Queued,
    ready: Ready,
    result: std::result::Result<pigeon_channels::Sent, SendError>,
) -> Result<()> {
    if result.is_err() && ready.reserved {
        quotas::refund(&app.store, m.user_id, ready.credits).await?;
    }
    let decision = match result {
        Ok(sent) => Decision::Sent(sent.provider_id),
        Err(SendError::Permanent(e)) => Decision::Failed(e),
        Err(SendError::Transient(e)) => retry_or_fail(app, phone, m, &ready.settings, e).await?,
    };
    record(app, adapter, phone, m, &ready.outgoing, decision).await
}

async fn record(
    app: &App,
    adapter: &Adapter,
    phone: &Phone,
    m: &Queued,
    outgoing: &Outgoing,
    decision: Decision,
) -> Result<()> {
    let recorded = match &decision {
        Decision::Sent(provider_id) => Attempt::Sent {
            provider_id: provider_id.clone(),
            adapter: adapter.name,
        },
        Decision::Retry {
            at,
            phone_id,
            error,
        } => Attempt::Retry {
            at: *at,
            phone_id: *phone_id,
            error: error.clone(),
            attempted: true,
        },
        Decision::Reroute(error) => Attempt::Retry {
            at: Ts::now(),
            phone_id: None,
            error: error.clone(),
            attempted: false,
        },
        Decision::Failed(error) => Attempt::Failed {
            error: error.clone(),
        },
    };
    let mut deliveries = match &decision {
        Decision::Reroute(_) => Vec::new(),
        Decision::Sent(_) => send_sms_event(app, phone, m, outgoing, "unknown").await?,
        _ => send_sms_event(app, phone, m, outgoing, "failed").await?,
    };
    let notified = match &decision {
        Decision::Reroute(_) => None,
        Decision::Sent(_) => Some(("sent", false)),
        Decision::Retry { .. } => Some(("queued", true)),
        Decision::Failed(_) => Some(("failed", false)),
    };
    if let Some((status, tried)) = notified
        && m.notified
        && let Some(prepared) = notifications::prepare(app, m.user_id, m.id).await?
    {
        deliveries.extend(prepared.render(status, tried));
    }
    if !queue::record(&app.store, m.id, recorded, deliveries).await? {
        tracing::warn!(
            message = m.id,
            "send finished after its lease was lost; result not recorded"
        );
    }
    match &decision {
        Decision::Reroute(_) => app.wake.notify_waiters(),
        // Failover to another phone: its sender takes it at once.
        Decision::Retry {
            phone_id: Some(_), ..
        } => app.routed.notify_waiters(),
        _ => {}
    }
    Ok(())
}

/// RaspiSMS's `send_sms` event, fired after every send attempt (success or failure), with the
/// phone's id in `origin` as RaspiSMS does, and the `tag` its documentation promises.
async fn send_sms_event(
    app: &App,
    phone: &Phone,
    m: &Queued,
    sent: &Outgoing,
    status: &str,
) -> Result<Vec<NewDelivery>> {
    let hooks = events::targets(app, m.user_id, "send_sms").await?;
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let ids = pigeon_store::messages::media(&app.store, &[m.id])
        .await?
        .remove(&m.id)
        .unwrap_or_default();
    let medias: Vec<_> = media::by_ids(&app.store, &ids)
        .await?
        .iter()
        .map(|f| json!({"id": f.id, "id_user": f.user_id, "path": f.path}))
        .collect();
    Ok(hooks.render(&json!({
        "id": m.id,
        "at": hooks.at(Ts::now().0),
        "status": status,
        "text": sent.text,
        "destination": sent.destination,
        "origin": phone.id,
        "mms": m.mms,
        "medias": medias,
        "originating_scheduled": m.campaign_id,
        "tag": m.tag,
    })))
}

/// `quota_level` once consumption passes the account's `alert_quota_limit_close` share, and
/// `quota_reached` once every credit is used (with `alert_quota_limit_reached`), each at most
/// once per quota period. RaspiSMS declares both and never fires them.
async fn quota_alerts(app: &App, user_id: i64, settings: &Settings, q: &Quota) -> Result<()> {
    let total = q.credit + q.additional;
    let close = settings
        .get("alert_quota_limit_close")
        .trim()
        .parse::<f64>()
        .unwrap_or(0.9);
    let which =
        if q.consumed >= total && settings.is_on("alert_quota_limit_reached") && !q.alerted_reached
        {
            Some((quotas::Alert::Reached, "quota_reached"))
        } else if total > 0 && q.consumed as f64 / total as f64 >= close && !q.alerted_level {
            Some((quotas::Alert::Level, "quota_level"))
        } else {
            None
        };
    let Some((alert, kind)) = which else {
        return Ok(());
    };
    let hooks = events::targets(app, user_id, kind).await?;
    let deliveries = hooks.render(&json!({
        "id_user": user_id,
        "credit": q.credit,
        "additional": q.additional,
        "consumed": q.consumed,
        "remaining": (total - q.consumed).max(0),
        "level": if total > 0 { q.consumed as f64 / total as f64 } else { 1.0 },
        "expiration_date": hooks.at(q.expiration_date),
    }));
    quotas::alert(&app.store, user_id, alert, &deliveries).await?;
    Ok(())
}

enum Decision {
    Sent(String),
    Retry {
        at: Ts,
        phone_id: Option<i64>,
        error: String,
    },
    /// The phone cannot take it now (not available, limit reached): route it again, without
    /// counting a try.
    Reroute(String),
    Failed(String),
}

enum Refusal {
    Fail(String),
    Reroute(String),
}

/// RaspiSMS's checks of the phone before a send (§5.2), made gentler where a phone is only
/// temporarily unusable and the message may go through another one.
async fn refusal(
    app: &App,
    phone: &Phone,
    m: &Queued,
    settings: &Settings,
) -> Result<Option<Refusal>> {
    let refuse = |reason: String| {
        if m.phone_fixed {
            Refusal::Fail(reason)
        } else {
            Refusal::Reroute(reason)
        }
    };
    if phone.status != "available" {
        return Ok(Some(refuse(format!(
            "Invalid phone status : {}",
            phone.status
        ))));
    }
    if settings.is_on("phone_limit")
        && phone_service::remaining_volume(app, phone, settings, Pending::Before(m.id))
            .await?
            .is_some_and(|r| r <= 0)
    {
        return Ok(Some(refuse("Phone limit reached.".to_string())));
    }
    Ok(None)
}

/// A transient failure: try again (on another phone of the pool if there is one) while tries
/// remain, else fail.
async fn retry_or_fail(
    app: &App,
    phone: &Phone,
    m: &Queued,
    settings: &Settings,
    error: String,
) -> Result<Decision> {
    if m.tries >= m.max_tries {
        return Ok(Decision::Failed(error));
    }
    if !m.phone_fixed {
        let mut pool = candidates(app, m.user_id, m.phone_group_id, settings).await?;
        pool.retain(|c| c.id != phone.id);
        // A device's message goes to another of the account's devices, not to a provider.
        if is_agent(&phone.adapter) {
            let devices: std::collections::HashSet<i64> = phones::all(&app.store, m.user_id)
                .await?
                .iter()
                .filter(|p| is_agent(&p.adapter))
                .map(|p| p.id)
                .collect();
            pool.retain(|c| devices.contains(&c.id));
        }
        if let Some(other) =
            routing::pick(&pool, preferences(settings, m.mms), rand::random::<f64>())
        {
            return Ok(Decision::Retry {
                at: Ts::now(),
                phone_id: Some(other),
                error,
            });
        }
    }
    let schedule: Vec<Duration> = app
        .config
        .retry_ms
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    let wait = retry::delay(
        &schedule,
        m.tries.max(1) as u32,
        0.2,
        rand::random::<f64>(),
        Duration::ZERO,
    );
    let at = Ts(Ts::now().0 + wait.as_millis() as i64);
    Ok(Decision::Retry {
        at,
        phone_id: Some(phone.id),
        error,
    })
}

fn is_agent(adapter: &str) -> bool {
    pigeon_channels::find(adapter).is_some_and(|a| a.name == "agent")
}

/// The message as the channel gets it: media links appended when it cannot send MMS.
async fn outgoing(app: &App, adapter: &Adapter, m: &Queued) -> Result<Outgoing> {
    let mut media_urls = Vec::new();
    if m.mms {
        let ids = pigeon_store::messages::media(&app.store, &[m.id])
            .await?
            .remove(&m.id)
            .unwrap_or_default();
        media_urls = media::by_ids(&app.store, &ids)
            .await?
            .iter()
            .map(|f| format!("{}/media/{}", app.public_base, f.path))
            .collect();
    }
    let mut text = m.text.clone();
    if !media_urls.is_empty() && !adapter.capabilities.mms_sending {
        text = format!("{text}\n{}", media_urls.join(" - "));
    }
    Ok(Outgoing {
        message_id: m.id,
        destination: m.destination.clone().unwrap_or_default(),
        ucs2: m.encoding == "ucs2" || !text::is_gsm7(&text),
        text,
        flash: m.flash,
        media_urls,
        idempotency_key: format!("pigeon-{}", m.id),
        attempt: m.tries.clamp(1, i64::from(u32::MAX)) as u32,
        sender: m.origin.clone(),
    })
}
