//! The device protocol's door (`/device/v1/...`), used by `pigeon agent` and the Android app:
//! pairing with the 7-digit code of `POST /api/v1/attach`.
//!
//! `POST /device/v1/pair` `{"code": "1234567"}` → 201 `{"token": "pgd_…", "device": {…}}`.
//! The token is shown only then (stored as a digest). Wrong codes count against the client and
//! against everyone: past the limits the answer is 429 with `Retry-After`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::services::devices::{self, PairError};

pub fn router() -> Router<AppState> {
    Router::new().route("/device/v1/pair", post(pair))
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
            let device = super::astandes::device_json(&paired.device);
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
