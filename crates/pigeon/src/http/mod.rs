//! The HTTP front doors. Each door parses, calls services and renders its own envelope.

pub mod astandes;
pub mod callbacks;
pub mod device;
pub mod media;
pub mod ovh;
pub mod raspisms;
pub mod reach;

use axum::Router;
use axum::extract::Request;
use tower::Layer;
use tower::util::MapRequest;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use crate::app::AppState;

/// Upper bound of a request body (multipart uploads of MMS media included).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The request target (path and query) exactly as the client sent it, before the trailing
/// slash is trimmed: OVH's signatures cover it byte for byte.
#[derive(Debug, Clone)]
pub struct RawTarget(pub String);

fn keep_raw_target(mut req: Request) -> Request {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    req.extensions_mut().insert(RawTarget(target));
    req
}

/// Every route of every door. A trailing slash is optional everywhere, as in RaspiSMS.
pub fn router(app: AppState) -> MapRequest<NormalizePath<Router>, fn(Request) -> Request> {
    let router = Router::new()
        .merge(raspisms::router())
        .merge(callbacks::router())
        .merge(astandes::router())
        .merge(reach::router())
        .merge(ovh::router())
        .merge(device::router())
        .merge(media::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app);
    let normalized = NormalizePathLayer::trim_trailing_slash().layer(router);
    MapRequest::new(normalized, keep_raw_target as fn(Request) -> Request)
}
