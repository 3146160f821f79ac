//! The HTTP front doors. Each door parses, calls services and renders its own envelope.

pub mod astandes;
pub mod callbacks;
pub mod device;
pub mod media;
pub mod raspisms;
pub mod reach;

use axum::Router;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use crate::app::AppState;

/// Upper bound of a request body (multipart uploads of MMS media included).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Every route of every door. A trailing slash is optional everywhere, as in RaspiSMS.
pub fn router(app: AppState) -> NormalizePath<Router> {
    let router = Router::new()
        .merge(raspisms::router())
        .merge(callbacks::router())
        .merge(astandes::router())
        .merge(reach::router())
        .merge(device::router())
        .merge(media::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}
