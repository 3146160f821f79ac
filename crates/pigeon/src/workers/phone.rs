//! One sender per phone, so a slow phone only ever delays its own messages: it claims up to
//! its channel's concurrency, sends, records, and polls the phone for inbound SMS if the
//! channel is polled. The supervisor starts a worker per phone of each active account, and
//! restarts it when the phone changes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pigeon_channels::{Channel, Context};
use pigeon_core::time::Ts;
use pigeon_store::phones::{self, Phone};
use pigeon_store::{queue, users};
use serde_json::{Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppState};
use crate::services::{ServiceError, inbound, sending};

/// The running phone workers: phone id → (the phone's `updated_at` it runs with, its stop).
#[derive(Default)]
pub struct Supervisor {
    running: HashMap<i64, (i64, CancellationToken)>,
}

impl Supervisor {
    /// Starts workers for new or changed phones and stops those of deleted phones (or of
    /// suspended accounts).
    pub async fn sync(
        &mut self,
        app: &AppState,
        tracker: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<(), ServiceError> {
        let phones = phones::all_active(&app.store).await?;
        let current: HashMap<i64, i64> = phones.iter().map(|p| (p.id, p.updated_at)).collect();
        self.running.retain(|id, (updated, token)| {
            let keep = current.get(id) == Some(updated);
            if !keep {
                token.cancel();
            }
            keep
        });
        for phone in phones {
            // Device agents connect to the server; the device protocol drives their phones.
            let is_agent = pigeon_channels::find(&phone.adapter).is_some_and(|a| a.name == "agent");
            if is_agent || self.running.contains_key(&phone.id) {
                continue;
            }
            let channel = match open(app, &phone).await {
                Ok(channel) => Arc::new(channel),
                Err(e) => {
                    tracing::error!(phone = phone.id, error = %e, "phone cannot be opened; its messages wait");
                    self.running
                        .insert(phone.id, (phone.updated_at, CancellationToken::new()));
                    continue;
                }
            };
            let token = stop.child_token();
            self.running
                .insert(phone.id, (phone.updated_at, token.clone()));
            tracker.spawn(run(app.clone(), phone, channel, token));
        }
        Ok(())
    }

    pub fn stop_all(&mut self) {
        for (_, (_, token)) in self.running.drain() {
            token.cancel();
        }
    }
}

/// Opens a phone's channel with its (unsealed) adapter data.
pub async fn open(app: &App, phone: &Phone) -> Result<Channel, ServiceError> {
    let data: Map<String, Value> =
        serde_json::from_str(&app.key.open(&phone.adapter_data_sealed)?).unwrap_or_default();
    let user = users::get(&app.store, phone.user_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let api_key = app.key.open(&user.api_key_sealed)?;
    let adapter = pigeon_channels::find(&phone.adapter).map_or(phone.adapter.as_str(), |a| a.name);
    let callback = format!(
        "{}/callback/status/{adapter}/{}?api_key={api_key}",
        app.public_base, phone.id
    );
    let ctx = Context {
        phone_id: phone.id,
        data_dir: app
            .config
            .data_dir
            .join("channels")
            .join(phone.id.to_string()),
        status_callback_url: callback,
        events: app.events.clone(),
        http: app.outbound.clone(),
    };
    Channel::open(&phone.adapter, &data, ctx).map_err(|e| ServiceError::Invalid(e.to_string()))
}

/// A phone's worker loop; on stop it finishes the sends under way before returning.
async fn run(app: AppState, phone: Phone, channel: Arc<Channel>, stop: CancellationToken) {
    let tick = Duration::from_millis(app.config.tick_ms.max(10));
    let read_every = Duration::from_secs(app.config.read_interval_secs.max(1));
    let mut last_read: Option<Instant> = None;
    let mut inflight = JoinSet::new();
    let phone = Arc::new(phone);
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Listening from before the claim: messages routed during it are not missed.
        let routed = app.routed.notified();
        tokio::pin!(routed);
        routed.as_mut().enable();
        // A claim costs a commit: when sends are quick, waiting for a quarter of the slots
        // keeps claims large instead of one message each.
        let free = channel.concurrency().saturating_sub(inflight.len());
        if free > 0 && (inflight.is_empty() || free * 4 >= channel.concurrency()) {
            match claim(&app, phone.id, free).await {
                Ok(claimed) => {
                    for m in claimed {
                        let (app, channel, phone) = (app.clone(), channel.clone(), phone.clone());
                        inflight.spawn(async move {
                            if let Err(e) = sending::send(&app, &channel, &phone, &m).await {
                                tracing::error!(message = m.id, error = %e, "send not recorded; its lease will return it to the queue");
                            }
                        });
                    }
                }
                Err(e) => tracing::error!(phone = phone.id, error = %e, "claim failed"),
            }
        }
        if last_read.is_none_or(|at| at.elapsed() >= read_every) {
            last_read = Some(Instant::now());
            read(&app, &phone, &channel).await;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {
                while inflight.try_join_next().is_some() {}
            }
            _ = routed => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
    while inflight.join_next().await.is_some() {}
}

async fn claim(app: &App, phone_id: i64, free: usize) -> Result<Vec<queue::Queued>, ServiceError> {
    let now = Ts::now();
    let lease_until = Ts(now.0 + app.config.lease_secs * 1000);
    Ok(queue::claim(&app.store, phone_id, now, lease_until, free as i64).await?)
}

async fn read(app: &App, phone: &Phone, channel: &Channel) {
    match channel.read().await {
        Ok(messages) => {
            for sms in messages {
                if let Err(e) = inbound::receive(app, phone.id, &sms).await {
                    tracing::error!(phone = phone.id, error = %e, "inbound SMS not stored");
                }
            }
        }
        Err(e) => tracing::warn!(phone = phone.id, error = %e, "reading the phone failed"),
    }
}
