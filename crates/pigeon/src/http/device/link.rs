//! One device's link to the server, whatever carries it (the WebSocket, or the long-poll
//! fallback): jobs out, acknowledgements in. The device's phone is `available` while linked;
//! queued messages of that phone are claimed (with a lease) up to the device's capacity,
//! checked and charged as any send, and handed out as jobs. 203 records the send (never sent
//! again after it), 205 the delivery, an error status fails or retries the message; a job still
//! unacknowledged when the link ends is retried, on another connected device of the account
//! when there is one, and the messages still queued on the device go there too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pigeon_channels::{Inbound, Report, SendError, Sent};
use pigeon_core::time::Ts;
use pigeon_store::devices::{self, Device};
use pigeon_store::phones::{self, Phone};
use pigeon_store::queue::{self, Queued};
use pigeon_store::reports::ReportTarget;

use crate::agent::protocol::{FromAgent, ToAgent, transient};
use crate::app::App;
use crate::formats::astandes::{id_of, parse_id};
use crate::services::sending::{self, Ready};
use crate::services::{ServiceError, inbound, notifications};

/// A job handed out and not yet sent.
struct Pending {
    message: Queued,
    ready: Ready,
}

pub struct Link {
    pub device: Device,
    pending: HashMap<i64, Pending>,
    /// The device's phone as `jobs` last read it (`None`: gone): acknowledgements are recorded
    /// against it, rather than each reading it again (a busy device acknowledges every job two
    /// or three times).
    phone: Option<Phone>,
    capacity: usize,
    last_heard: Instant,
    /// When `last_seen_at` was last written.
    last_recorded: Instant,
}

/// How often a talking device's `last_seen_at` is written: each write is a durable commit of
/// its own, and a busy device sends a frame for every acknowledgement.
const SEEN_EVERY: Duration = Duration::from_secs(1);

impl Link {
    /// Marks the device connected.
    pub async fn open(app: &App, device: Device) -> Result<Link, ServiceError> {
        devices::seen(&app.store, &device, Some(true), Ts::now()).await?;
        tracing::info!(device = device.id, "device connected");
        Ok(Link {
            device,
            pending: HashMap::new(),
            phone: None,
            capacity: 1,
            last_heard: Instant::now(),
            last_recorded: Instant::now(),
        })
    }

    pub fn welcome(&self) -> ToAgent {
        ToAgent::Welcome {
            device: id_of(self.device.id),
        }
    }

    /// Whether the device said nothing for too long.
    pub fn silent(&self, app: &App) -> bool {
        self.last_heard.elapsed() > Duration::from_secs(app.config.device_silence_secs)
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.clamp(1, 64);
    }

    /// Claims queued messages of the device's phone up to its spare capacity, as jobs.
    pub async fn jobs(&mut self, app: &App) -> Result<Vec<ToAgent>, ServiceError> {
        let free = self.capacity.saturating_sub(self.pending.len());
        if free == 0 {
            return Ok(Vec::new());
        }
        // The owner may have disabled the phone meanwhile; sends are checked against it now.
        self.phone = phones::get_any(&app.store, self.device.phone_id).await?;
        let phone = match &self.phone {
            Some(phone) if phone.status == "available" => phone.clone(),
            _ => return Ok(Vec::new()),
        };
        let now = Ts::now();
        let lease_until = Ts(now.0 + app.config.lease_secs * 1000);
        let mut jobs = Vec::new();
        for message in queue::claim(&app.store, phone.id, now, lease_until, free as i64).await? {
            let Some(ready) = sending::prepare(app, agent(), &phone, &message).await? else {
                continue;
            };
            jobs.push(ToAgent::Job {
                job: id_of(message.id),
                to: ready.outgoing.destination.clone(),
                text: ready.outgoing.text.clone(),
                attempt: message.tries,
            });
            self.pending.insert(message.id, Pending { message, ready });
        }
        Ok(jobs)
    }

    /// One frame from the device.
    pub async fn handle(&mut self, app: &App, frame: FromAgent) -> Result<(), ServiceError> {
        self.last_heard = Instant::now();
        if self.last_recorded.elapsed() >= SEEN_EVERY {
            self.last_recorded = self.last_heard;
            devices::seen(&app.store, &self.device, None, Ts::now()).await?;
        }
        match frame {
            FromAgent::Hello { capacity, .. } => self.set_capacity(capacity.unwrap_or(1)),
            FromAgent::Heartbeat => {}
            FromAgent::Ack {
                job,
                status,
                code,
                detail,
            } => self.ack(app, &job, status, code, detail).await?,
            FromAgent::Inbound { from, text, at } => {
                let at = at
                    .and_then(|a| a.parse::<jiff::Timestamp>().ok())
                    .map_or_else(Ts::now, Ts::from_timestamp);
                inbound::receive(
                    app,
                    self.device.phone_id,
                    &Inbound {
                        origin: from,
                        text,
                        at,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    /// 203 records the send, 205 the delivery, an error fails or retries the message (its raw
    /// code kept); 202 (received by the phone) and 302 (sending) go to its history.
    async fn ack(
        &mut self,
        app: &App,
        job: &str,
        status: u16,
        code: Option<String>,
        detail: Option<String>,
    ) -> Result<(), ServiceError> {
        let Some(id) = parse_id(job) else {
            return Ok(());
        };
        match status {
            202 | 302 => {
                let Some(pending) = self.pending.get(&id) else {
                    return Ok(());
                };
                let stage = if status == 202 {
                    "device_received"
                } else {
                    "sending"
                };
                let notice = if pending.message.notified {
                    notifications::prepare(app, self.device.user_id, id).await?
                } else {
                    None
                };
                let deliveries = notice.map(|n| n.render(stage, false)).unwrap_or_default();
                queue::note(&app.store, id, stage, &deliveries).await?;
            }
            203 => {
                if let (Some(done), Some(phone)) = (self.pending.remove(&id), &self.phone) {
                    let sent = Sent {
                        provider_id: job.to_string(),
                    };
                    sending::finish(app, agent(), phone, &done.message, done.ready, Ok(sent))
                        .await?;
                }
            }
            // Reports need only the phone's id: they may come on a link that has not claimed
            // yet (a long-poll link opened by the events of a device that was away).
            205 => {
                let phone = ReportTarget::Phone(self.device.phone_id);
                inbound::report(app, phone, job, Report::Delivered).await?;
            }
            500..=511 => {
                let raw = code.unwrap_or_default();
                let error = format!(
                    "{status}: {} (device code {raw})",
                    detail.unwrap_or_default()
                );
                let Some(done) = self.pending.remove(&id) else {
                    // An error after 203: the network did not deliver it.
                    let phone = ReportTarget::Phone(self.device.phone_id);
                    inbound::report(app, phone, job, Report::Undelivered).await?;
                    return Ok(());
                };
                let Some(phone) = &self.phone else {
                    return Ok(());
                };
                // Kept before the failure is recorded, so its notification shows the code.
                queue::set_error_code(&app.store, id, &status.to_string()).await?;
                let error = if transient(status) {
                    SendError::Transient(error)
                } else {
                    SendError::Permanent(error)
                };
                sending::finish(app, agent(), phone, &done.message, done.ready, Err(error)).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the link: unsent jobs go back to the queue (to another device if possible), the
    /// device is marked disconnected and its queued messages handed over.
    pub async fn close(mut self, app: &App) {
        // Marked offline first, so that the jobs given back are not routed to it again and no
        // one sees them queued while it still looks available.
        if let Err(e) = devices::seen(&app.store, &self.device, Some(false), Ts::now()).await {
            tracing::error!(device = self.device.id, error = %e, "device could not be marked disconnected");
        }
        if let Ok(Some(phone)) = phones::get_any(&app.store, self.device.phone_id).await {
            for (_, job) in self.pending.drain() {
                let error = SendError::Transient("the device disconnected before sending".into());
                if let Err(e) =
                    sending::finish(app, agent(), &phone, &job.message, job.ready, Err(error)).await
                {
                    tracing::error!(message = job.message.id, error = %e, "unsent job not returned to the queue");
                }
            }
        }
        if let Err(e) = hand_over(app, &self.device).await {
            tracing::error!(device = self.device.id, error = %e, "queued messages not handed to another device");
        }
        tracing::info!(device = self.device.id, "device disconnected");
        app.queued();
    }
}

/// The messages still queued on a device that went away go to another connected device of the
/// account, if there is one (otherwise they wait for it until their TTL).
async fn hand_over(app: &App, device: &Device) -> Result<(), ServiceError> {
    let others: Vec<Device> = devices::online(&app.store, device.user_id)
        .await?
        .into_iter()
        .filter(|d| d.id != device.id)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let index = ((rand::random::<f64>() * others.len() as f64) as usize).min(others.len() - 1);
    if let Some(other) = others.get(index) {
        queue::move_queued(&app.store, device.phone_id, other.phone_id).await?;
    }
    Ok(())
}

fn agent() -> &'static pigeon_channels::Adapter {
    &pigeon_channels::registry::AGENT
}
