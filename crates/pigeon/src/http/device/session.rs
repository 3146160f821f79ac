//! One device's connection: jobs out, acknowledgements in. The device's phone is `available`
//! while connected; queued messages of that phone are claimed (with a lease) up to the
//! device's capacity, checked and charged as any send, and pushed as jobs. 203 records the
//! send (never sent again after it), 205 the delivery, an error status fails or retries the
//! message; a job still unacknowledged when the connection ends is retried, on another
//! attached device of the account when there is one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use pigeon_channels::{Inbound, Report, SendError, Sent};
use pigeon_core::time::Ts;
use pigeon_store::devices::{self, Device};
use pigeon_store::phones::{self, Phone};
use pigeon_store::queue::{self, Queued, ReportTarget};

use crate::agent::protocol::{FromAgent, SILENCE_SECS, ToAgent, transient};
use crate::app::{App, AppState};
use crate::formats::astandes::{id_of, parse_id};
use crate::services::sending::{self, Ready};
use crate::services::{ServiceError, inbound};

/// A job pushed and not yet sent.
struct Pending {
    message: Queued,
    ready: Ready,
}

pub async fn run(app: AppState, device: Device, mut socket: WebSocket) {
    if let Err(e) = devices::seen(&app.store, &device, Some(true), Ts::now()).await {
        tracing::error!(device = device.id, error = %e, "device could not be marked connected");
        return;
    }
    // Read after marking it connected: the checks before each send look at its status.
    let Ok(Some(phone)) = phones::get_any(&app.store, device.phone_id).await else {
        return;
    };
    tracing::info!(device = device.id, "device connected");
    let mut pending: HashMap<i64, Pending> = HashMap::new();
    let outcome = serve(&app, &device, &phone, &mut socket, &mut pending).await;
    if let Err(e) = outcome {
        tracing::info!(device = device.id, error = %e, "device connection ended");
    }
    // Whatever was pushed and not sent goes back to the queue, to another device if possible.
    for (_, job) in pending.drain() {
        let error = SendError::Transient("the device disconnected before sending".into());
        let adapter = agent_adapter();
        if let Err(e) =
            sending::finish(&app, adapter, &phone, &job.message, job.ready, Err(error)).await
        {
            tracing::error!(message = job.message.id, error = %e, "unsent job not returned to the queue");
        }
    }
    if let Err(e) = devices::seen(&app.store, &device, Some(false), Ts::now()).await {
        tracing::error!(device = device.id, error = %e, "device could not be marked disconnected");
    }
    if let Err(e) = hand_over(&app, &device).await {
        tracing::error!(device = device.id, error = %e, "queued messages not handed to another device");
    }
    app.wake.notify_waiters();
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
    let index = (rand::random::<f64>() * others.len() as f64) as usize;
    if let Some(other) = others.get(index.min(others.len() - 1)) {
        queue::move_queued(&app.store, device.phone_id, other.phone_id).await?;
    }
    Ok(())
}

fn agent_adapter() -> &'static pigeon_channels::Adapter {
    &pigeon_channels::registry::AGENT
}

async fn serve(
    app: &App,
    device: &Device,
    phone: &Phone,
    socket: &mut WebSocket,
    pending: &mut HashMap<i64, Pending>,
) -> Result<(), String> {
    send(
        socket,
        &ToAgent::Welcome {
            device: id_of(device.id),
        },
    )
    .await?;
    let mut capacity = 1usize;
    let mut last_heard = Instant::now();
    let tick = Duration::from_millis(app.config.tick_ms.clamp(10, 1000));
    loop {
        if last_heard.elapsed() > Duration::from_secs(SILENCE_SECS) {
            return Err("silent for too long".into());
        }
        push_jobs(app, phone, socket, pending, capacity).await?;
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                };
                last_heard = Instant::now();
                devices::seen(&app.store, device, None, Ts::now()).await.map_err(|e| e.to_string())?;
                match serde_json::from_str::<FromAgent>(&text) {
                    Ok(FromAgent::Hello { capacity: c, .. }) => capacity = c.unwrap_or(1).clamp(1, 64),
                    Ok(FromAgent::Heartbeat) => {}
                    Ok(FromAgent::Ack { job, status, code, detail }) => {
                        ack(app, phone, pending, &job, status, code, detail).await.map_err(|e| e.to_string())?;
                    }
                    Ok(FromAgent::Inbound { from, text, at }) => {
                        let at = at.and_then(|a| a.parse::<jiff::Timestamp>().ok()).map_or_else(Ts::now, Ts::from_timestamp);
                        let sms = Inbound { origin: from, text, at };
                        inbound::receive(app, phone.id, &sms).await.map_err(|e| e.to_string())?;
                    }
                    Err(e) => tracing::info!(device = device.id, error = %e, "unreadable frame ignored"),
                }
            }
            _ = app.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn send(socket: &mut WebSocket, frame: &ToAgent) -> Result<(), String> {
    let text = serde_json::to_string(frame).map_err(|e| e.to_string())?;
    socket
        .send(Message::Text(text.into()))
        .await
        .map_err(|e| e.to_string())
}

/// Claims queued messages of the device's phone up to its spare capacity and pushes them.
async fn push_jobs(
    app: &App,
    phone: &Phone,
    socket: &mut WebSocket,
    pending: &mut HashMap<i64, Pending>,
    capacity: usize,
) -> Result<(), String> {
    let free = capacity.saturating_sub(pending.len());
    if free == 0 {
        return Ok(());
    }
    // The owner may have disabled the phone meanwhile; sends are checked against its status now.
    let phone = match phones::get_any(&app.store, phone.id)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(current) if current.status == "available" => current,
        _ => return Ok(()),
    };
    let phone = &phone;
    let now = Ts::now();
    let lease_until = Ts(now.0 + app.config.lease_secs * 1000);
    let claimed = queue::claim(&app.store, phone.id, now, lease_until, free as i64)
        .await
        .map_err(|e| e.to_string())?;
    for message in claimed {
        let Some(ready) = sending::prepare(app, agent_adapter(), phone, &message)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        let job = ToAgent::Job {
            job: id_of(message.id),
            to: ready.outgoing.destination.clone(),
            text: ready.outgoing.text.clone(),
            attempt: message.tries,
        };
        pending.insert(message.id, Pending { message, ready });
        send(socket, &job).await?;
    }
    Ok(())
}

/// One acknowledgement: 203 records the send, 205 the delivery, an error fails or retries the
/// message (its raw code kept); 202 and 302 only show the device is working on it.
async fn ack(
    app: &App,
    phone: &Phone,
    pending: &mut HashMap<i64, Pending>,
    job: &str,
    status: u16,
    code: Option<String>,
    detail: Option<String>,
) -> Result<(), ServiceError> {
    let Some(id) = parse_id(job) else {
        return Ok(());
    };
    match status {
        203 => {
            if let Some(done) = pending.remove(&id) {
                let sent = Sent {
                    provider_id: job.to_string(),
                };
                sending::finish(
                    app,
                    agent_adapter(),
                    phone,
                    &done.message,
                    done.ready,
                    Ok(sent),
                )
                .await?;
            }
        }
        205 => {
            inbound::report(app, ReportTarget::Phone(phone.id), job, Report::Delivered).await?;
        }
        500..=511 => {
            let raw = code.unwrap_or_default();
            let error = format!(
                "{status}: {} (device code {raw})",
                detail.unwrap_or_default()
            );
            if let Some(done) = pending.remove(&id) {
                // Kept before the failure is recorded, so its notification shows the code.
                queue::set_error_code(&app.store, id, &status.to_string()).await?;
                let error = if transient(status) {
                    SendError::Transient(error)
                } else {
                    SendError::Permanent(error)
                };
                sending::finish(
                    app,
                    agent_adapter(),
                    phone,
                    &done.message,
                    done.ready,
                    Err(error),
                )
                .await?;
            } else {
                // An error after 203: the network did not deliver it.
                inbound::report(app, ReportTarget::Phone(phone.id), job, Report::Undelivered)
                    .await?;
            }
        }
        _ => {}
    }
    Ok(())
}
