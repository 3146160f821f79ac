//! The device protocol's door (`/device/v1/...`), used by `pigeon agent` and the Android app:
//! pairing with the 7-digit code of `POST /api/v1/attach`, then one WebSocket per device
//! (`GET /device/v1/ws`) carrying jobs and acknowledgements (see [`crate::agent::protocol`]).
//!
//! `POST /device/v1/pair` `{"code": "1234567"}` → 201 `{"token": "pgd_…", "device": {…}}`.
//! The token is shown only then (stored as a digest). Wrong codes count against the client and
//! against everyone: past the limits the answer is 429 with `Retry-After`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pigeon_core::secret::sha256_hex;
use serde_json::{Value, json};

use crate::app::AppState;
use pigeon_store::devices::Device;

mod link;
pub mod polled;
mod session;
use crate::services::devices::{self, PairError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device/v1/pair", post(pair))
        .route("/device/v1/ws", get(connect))
        .route("/device/v1/jobs", get(polled::jobs))
        .route("/device/v1/events", post(polled::events))
}

/// The device of `Authorization: Bearer <token>`; 401 otherwise.
async fn device_of(app: &AppState, headers: &HeaderMap) -> Result<Device, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim);
    let device = match token {
        Some(token) => pigeon_store::devices::by_token(&app.store, &sha256_hex(token))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    device.ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "invalid device token: pair the device again",
        )
    })
}

/// Upgrades to the device's WebSocket; the token from pairing goes in
/// `Authorization: Bearer <token>`.
async fn connect(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    match device_of(&app, &headers).await {
        Ok(device) => upgrade.on_upgrade(move |socket| session::run(app, device, socket)),
        Err(refused) => refused,
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn pair(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let code = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => match o.get("code") {
            Some(Value::String(code)) => code.clone(),
            Some(Value::Number(n)) => format!("{n:0>7}"),
            _ => return error(StatusCode::BAD_REQUEST, "code is required"),
        },
        _ => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
    };
    match devices::pair(&app, &code, client.ip()).await {
        Ok(paired) => {
            let device = crate::formats::astandes::device(&paired.device);
            (
                StatusCode::CREATED,
                axum::Json(json!({ "token": paired.token, "device": device })),
            )
                .into_response()
        }
        Err(PairError::Throttled(wait)) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed pairing attempts",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            response
        }
        Err(PairError::Unknown) => error(StatusCode::UNAUTHORIZED, "invalid, used or expired code"),
        Err(PairError::Malformed) => error(StatusCode::BAD_REQUEST, "the code is 7 digits"),
        Err(PairError::Service(e)) => {
            tracing::error!(error = %e, "pairing failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}
