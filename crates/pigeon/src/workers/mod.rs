//! The workers `pigeon serve` runs beside the HTTP API: the scheduler (due campaigns become
//! messages), the router (messages get a phone), one sender per phone, the events consumer
//! (delivery reports and inbound SMS from channels) and maintenance (leases, expiry, quotas,
//! reliability). Each step is a function tests can call; the loops only repeat them.

pub mod phone;
pub mod webhooks;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pigeon_channels::Event;
use pigeon_core::time::Ts;
use pigeon_store::queue;
use pigeon_store::reports::ReportTarget;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppState};
use crate::services::{ServiceError, inbound, notifications, quotas, reliability, sending};

/// Starts every worker; they stop when `stop` is cancelled, finishing the sends under way.
pub fn start(app: AppState, stop: CancellationToken) -> TaskTracker {
    let tracker = TaskTracker::new();
    if let Some(events) = app.take_events() {
        tracker.spawn(events_loop(app.clone(), events, stop.clone()));
    }
    tracker.spawn(webhooks::run(app.clone(), stop.clone()));
    tracker.spawn(main_loop(app, stop, tracker.clone()));
    tracker
}

/// Scheduler, router, maintenance, and the supervision of phone workers.
async fn main_loop(app: AppState, stop: CancellationToken, tracker: TaskTracker) {
    let tick = Duration::from_millis(app.config.tick_ms.max(10));
    let mut phones = phone::Supervisor::default();
    let mut last_reliability = Instant::now();
    // One server owns an SQLite database: whatever was being sent when it last stopped was
    // cut off, so it goes back to the queue now rather than when its lease runs out.
    if let Err(e) = queue::reap(&app.store, Ts(i64::MAX)).await {
        tracing::error!(error = %e, "interrupted sends could not be requeued");
    }
    let mut last_maintenance: Option<Instant> = None;
    let mut last_housekeeping: Option<Instant> = None;
    loop {
        // Listening from before the pass: work that comes during it is not missed.
        let woken = app.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if last_maintenance.is_none_or(|at| at.elapsed() >= tick) {
            last_maintenance = Some(Instant::now());
            maintain(&app).await;
        }
        let busy = match advance(&app).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::error!(error = %e, "worker step failed");
                false
            }
        };
        // Devices and phones change rarely: while passes follow one another under load, once
        // per tick is soon enough (a read of every phone per pass was a tenth of a pass's reads).
        if !busy || last_housekeeping.is_none_or(|at| at.elapsed() >= tick) {
            last_housekeeping = Some(Instant::now());
            app.polled.sweep(&app).await;
            if let Err(e) = phones.sync(&app, &tracker, &stop).await {
                tracing::error!(error = %e, "phone workers could not be synchronised");
            }
        }
        if last_reliability.elapsed() >= Duration::from_secs(app.config.reliability_interval_secs) {
            last_reliability = Instant::now();
            if let Err(e) = reliability::check(&app).await {
                tracing::error!(error = %e, "reliability check failed");
            }
        }
        // A pass that found work looks again soon: more may be due than one pass takes.
        if busy && !stop.is_cancelled() {
            tokio::time::sleep(PASS_GAP).await;
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = woken => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
    phones.stop_all();
}

/// Between two busy passes: without it the scheduler would pass for every campaign accepted
/// under load, paying a pass's reads for each; with it a pass takes what came meanwhile.
const PASS_GAP: Duration = Duration::from_millis(2);

/// Leases run out, scheduled messages due, validity passed, quotas renewed: none is urgent,
/// so the loop runs this once per tick, not on every pass. Leases, releases and renewals run
/// together (their writes share a group commit), expiry after them, so that a message they
/// requeue past its validity expires with its notification. One failing stops no other.
async fn maintain(app: &App) {
    let now = Ts::now();
    let (reaped, released, renewed) = tokio::join!(
        queue::reap(&app.store, now),
        release_due(app, now),
        quotas::renew_due(app),
    );
    let expired = expire_due(app, now).await;
    for (what, failed) in [
        ("expired leases", reaped.err().map(ServiceError::from)),
        ("scheduled releases", released.err()),
        ("quota renewals", renewed.err()),
        ("validity expiry", expired.err()),
    ] {
        if let Some(e) = failed {
            tracing::error!(error = %e, "queue maintenance failed: {what}");
        }
    }
}

/// The router and the scheduler: whether they routed or dispatched anything. Messages waiting
/// for a phone are routed before the new ones of due campaigns take what phones are left.
pub async fn advance(app: &App) -> Result<bool, ServiceError> {
    let mut router = sending::Router::default();
    let routed = sending::route_unassigned(app, &mut router).await?;
    let dispatched = sending::dispatch_due(app, &mut router).await?;
    // Dispatched messages of a campaign with a chosen phone are that sender's at once.
    if dispatched + routed > 0 {
        app.queued();
    }
    Ok(dispatched + routed > 0)
}

/// Scheduled messages whose time has come join the queue, with their notifications.
async fn release_due(app: &App, now: Ts) -> Result<u64, ServiceError> {
    let releasing = queue::releasing_notified(&app.store, now).await?;
    let notify = rendered(app, &releasing, "queued").await?;
    Ok(queue::release(&app.store, now, &notify).await?)
}

/// Queued messages past their validity expire, with their notifications.
async fn expire_due(app: &App, now: Ts) -> Result<u64, ServiceError> {
    let expiring = queue::expiring_notified(&app.store, now).await?;
    let notify = rendered(app, &expiring, "expired").await?;
    Ok(queue::expire(&app.store, now, &notify).await?)
}

/// The notifications of messages (user, id) moving to `status` together, by message.
async fn rendered(
    app: &App,
    messages: &[(i64, i64)],
    status: &str,
) -> Result<HashMap<i64, Vec<pigeon_store::outbox::NewDelivery>>, ServiceError> {
    Ok(notifications::prepare_all(app, messages)
        .await?
        .into_iter()
        .map(|(id, prepared)| (id, prepared.render(status, false)))
        .collect())
}

/// Delivery reports and inbound SMS from channels. A report can overtake the record of its own
/// send (the provider answered before the sender wrote `sent`), so an unmatched report is
/// tried again a few times. The events waiting are taken together: reports of different
/// messages are applied concurrently, so their writes share group commits, and those of one
/// message in the order they came.
async fn events_loop(
    app: AppState,
    mut events: tokio::sync::mpsc::Receiver<Event>,
    stop: CancellationToken,
) {
    let mut pending: HashMap<MessageKey, Unmatched> = HashMap::new();
    loop {
        let first = tokio::select! {
            _ = stop.cancelled() => break,
            e = events.recv() => match e { Some(e) => e, None => break },
            _ = tokio::time::sleep(Duration::from_millis(200)), if !pending.is_empty() => {
                retry_reports(&app, &mut pending).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < EVENTS_PER_BATCH {
            match events.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        apply_events(&app, batch, &mut pending).await;
    }
}

/// A reported message: (phone, provider id).
type MessageKey = (i64, String);
/// One message's reports, in the order they came.
type Reports = Vec<(pigeon_channels::Report, pigeon_channels::Ack)>;

/// Events taken from the channels at once, at most.
const EVENTS_PER_BATCH: usize = 512;

async fn apply_events(app: &App, batch: Vec<Event>, pending: &mut HashMap<MessageKey, Unmatched>) {
    let mut reports: Vec<(MessageKey, Reports)> = Vec::new();
    let mut by_message: HashMap<MessageKey, usize> = HashMap::new();
    for event in batch {
        match event {
            Event::Status {
                phone_id,
                provider_id,
                report,
                ack,
            } => {
                let key = (phone_id, provider_id);
                let slot = *by_message.entry(key.clone()).or_insert_with(|| {
                    reports.push((key, Vec::new()));
                    reports.len() - 1
                });
                reports[slot].1.push((report, ack));
            }
            Event::Inbound { phone_id, sms } => {
                if let Err(e) = inbound::receive(app, phone_id, &sms).await {
                    tracing::error!(error = %e, phone = phone_id, "inbound SMS not stored");
                }
            }
        }
    }
    let unmatched = futures_util::future::join_all(
        reports
            .into_iter()
            .map(|(key, reports)| apply_reports(app, key, reports)),
    )
    .await;
    pending.extend(unmatched.into_iter().flatten());
}

/// One message's reports, in order; the last that matched nothing yet, to try again.
async fn apply_reports(
    app: &App,
    key: MessageKey,
    reports: Reports,
) -> Option<(MessageKey, Unmatched)> {
    let mut unmatched = None;
    for (report, ack) in reports {
        let target = ReportTarget::Phone(key.0);
        match inbound::report(app, target, &key.1, report).await {
            Ok(Some(_)) => ack.done(),
            Ok(None) => {
                let entry = Unmatched {
                    report,
                    tries: 0,
                    ack,
                };
                unmatched = Some((key.clone(), entry));
            }
            // Not acknowledged: the channel may send it again.
            Err(e) => tracing::error!(error = %e, "delivery report not applied"),
        }
    }
    unmatched
}

const REPORT_RETRIES: u32 = 25;

/// A report that matched no message yet.
struct Unmatched {
    report: pigeon_channels::Report,
    tries: u32,
    ack: pigeon_channels::Ack,
}

async fn retry_reports(app: &App, pending: &mut HashMap<MessageKey, Unmatched>) {
    let keys: Vec<_> = pending.keys().cloned().collect();
    for key in keys {
        let Some(entry) = pending.get_mut(&key) else {
            continue;
        };
        entry.tries += 1;
        let target = ReportTarget::Phone(key.0);
        let done = match inbound::report(app, target, &key.1, entry.report).await {
            Ok(Some(_)) => true,
            // A late or duplicated report (the message moved on already) is done with too.
            Ok(None) => entry.tries >= REPORT_RETRIES,
            Err(e) => {
                tracing::error!(error = %e, "delivery report not applied");
                entry.tries >= REPORT_RETRIES
            }
        };
        if done && let Some(entry) = pending.remove(&key) {
            entry.ack.done();
        }
    }
}
