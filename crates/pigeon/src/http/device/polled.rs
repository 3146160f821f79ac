//! The long-poll fallback of the device protocol, for networks where a WebSocket does not get
//! through: the same [`Link`], carried by plain requests.
//!
//! - `GET /device/v1/jobs?wait=25&capacity=N` → `{"jobs": [job, …]}`, answered as soon as there
//!   is a job, or empty after `wait` seconds (at most 30). Each poll also says the device is there.
//! - `POST /device/v1/events` with an array of the frames a WebSocket agent would send (`ack`,
//!   `inbound`, `heartbeat`) → `{"ok": true}`.
//!
//! A device that stops polling for `device_silence_secs` is offline: its unsent jobs go to
//! another device, as when a WebSocket closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pigeon_store::devices::Device;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::link::Link;
use super::{device_of, error};
use crate::agent::protocol::FromAgent;
use crate::app::{App, AppState};

/// The links of devices that poll, by device id.
#[derive(Default)]
pub struct Polled(Mutex<HashMap<i64, Arc<Mutex<Link>>>>);

impl std::fmt::Debug for Polled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Polled")
    }
}

impl Polled {
    async fn link(&self, app: &App, device: Device) -> Result<Arc<Mutex<Link>>, Response> {
        let mut links = self.0.lock().await;
        if let Some(link) = links.get(&device.id) {
            return Ok(link.clone());
        }
        let id = device.id;
        let link = Link::open(app, device).await.map_err(|e| {
            tracing::error!(error = %e, "device could not be marked connected");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })?;
        let link = Arc::new(Mutex::new(link));
        links.insert(id, link.clone());
        Ok(link)
    }

    /// Closes the links of devices that stopped polling.
    pub async fn sweep(&self, app: &App) {
        let silent: Vec<Arc<Mutex<Link>>> = {
            let mut links = self.0.lock().await;
            let mut silent = Vec::new();
            let mut kept = HashMap::new();
            for (id, link) in links.drain() {
                if link.lock().await.silent(app) {
                    silent.push(link);
                } else {
                    kept.insert(id, link);
                }
            }
            *links = kept;
            silent
        };
        for link in silent {
            match Arc::try_unwrap(link) {
                Ok(link) => link.into_inner().close(app).await,
                // A request is using it right now: the next sweep closes it.
                Err(busy) => {
                    let id = busy.lock().await.device.id;
                    self.0.lock().await.insert(id, busy);
                }
            }
        }
    }
}

pub async fn jobs(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let device = match device_of(&app, &headers).await {
        Ok(device) => device,
        Err(refused) => return refused,
    };
    let link = match app.polled.link(&app, device).await {
        Ok(link) => link,
        Err(refused) => return refused,
    };
    let number = |name: &str| query.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    let wait = Duration::from_secs(number("wait").unwrap_or(25).min(30));
    let tick = Duration::from_millis(app.config.tick_ms.clamp(10, 1000));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let jobs = {
            let mut link = link.lock().await;
            if let Some(capacity) = number("capacity") {
                link.set_capacity(capacity as usize);
            }
            // A poll says the device is there, as a heartbeat would.
            if let Err(e) = link.handle(&app, FromAgent::Heartbeat).await {
                tracing::error!(error = %e, "poll not recorded");
            }
            match link.jobs(&app).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "jobs not claimed");
                    Vec::new()
                }
            }
        };
        if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            return axum::Json(json!({ "jobs": jobs })).into_response();
        }
        tokio::select! {
            _ = app.routed.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

pub async fn events(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let device = match device_of(&app, &headers).await {
        Ok(device) => device,
        Err(refused) => return refused,
    };
    let frames: Vec<FromAgent> = match serde_json::from_slice::<Value>(&body).map(|v| match v {
        Value::Array(_) => serde_json::from_value(v),
        one => serde_json::from_value(one).map(|f| vec![f]),
    }) {
        Ok(Ok(frames)) => frames,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a frame or an array of frames",
            );
        }
    };
    let link = match app.polled.link(&app, device).await {
        Ok(link) => link,
        Err(refused) => return refused,
    };
    let mut link = link.lock().await;
    for frame in frames {
        if let Err(e) = link.handle(&app, frame).await {
            tracing::error!(error = %e, "device event not recorded");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    axum::Json(json!({ "ok": true })).into_response()
}
