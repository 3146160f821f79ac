//! Media files of MMS, served at `/media/<user id>/<name>` (the links appended to the text of
//! an MMS sent through a channel that cannot send MMS). Names carry 128 random bits, so a link
//! cannot be guessed; RaspiSMS serves them publicly too.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{user}/{name}", get(file))
}

async fn file(State(app): State<AppState>, Path((user, name)): Path<(String, String)>) -> Response {
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !s.starts_with('.')
    };
    if !safe(&user) || !safe(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = app.config.data_dir.join("media").join(&user).join(&name);
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&name))], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}
