//! The WebSocket carrying one device's [`Link`].

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use pigeon_store::devices::Device;

use super::link::Link;
use crate::agent::protocol::{FromAgent, ToAgent};
use crate::app::AppState;

pub async fn run(app: AppState, device: Device, mut socket: WebSocket) {
    let mut link = match Link::open(&app, device).await {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(error = %e, "device could not be marked connected");
            return;
        }
    };
    if let Err(e) = serve(&app, &mut link, &mut socket).await {
        tracing::info!(device = link.device.id, error = %e, "device connection ended");
    }
    link.close(&app).await;
}

async fn serve(app: &AppState, link: &mut Link, socket: &mut WebSocket) -> Result<(), String> {
    send(socket, &link.welcome()).await?;
    let tick = Duration::from_millis(app.config.tick_ms.clamp(10, 1000));
    loop {
        if link.silent(app) {
            return Err("silent for too long".into());
        }
        for job in link.jobs(app).await.map_err(|e| e.to_string())? {
            send(socket, &job).await?;
        }
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None => return Ok(()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                };
                match serde_json::from_str::<FromAgent>(&text) {
                    Ok(frame) => link.handle(app, frame).await.map_err(|e| e.to_string())?,
                    Err(e) => tracing::info!(device = link.device.id, error = %e, "unreadable frame ignored"),
                }
            }
            _ = app.routed.notified() => {}
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
