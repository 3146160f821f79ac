//! The RaspiSMS HTTP API (`/api/...`), as the real RaspiSMS behaves (see the README for the
//! deliberate differences).

mod credentials;
mod envelope;
mod form;
mod list;
mod phones;
mod render;
mod request;
mod resources;
mod scheduled;
mod stats;
mod webhooks;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use self::envelope::{ApiError, Outcome, verb_status};
use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/list/{entry_type}", get(list::first))
        .route("/api/list/{entry_type}/{page}", get(list::numbered))
        .route("/api/list/{entry_type}/after/{id}", get(list::after))
        .route("/api/list/{entry_type}/before/{id}", get(list::before))
        .route("/api/usage", get(stats::usage))
        .route("/api/stats/sms-status", get(stats::sms_status))
        .route("/api/invalid_number", get(stats::invalid_numbers_first))
        .route(
            "/api/invalid_number/{page}",
            get(stats::invalid_numbers_page),
        )
        .route("/api/send-sms", get(scheduled::send_sms))
        .route("/api/scheduled", post(scheduled::create))
        .route("/api/scheduled/{id}", delete(scheduled::delete))
        .route("/api/scheduled/{id}/recipients", get(scheduled::recipients))
        .route("/api/ovh-credentials", post(credentials::create_ovh))
        .route("/api/phone", post(phones::create))
        .route(
            "/api/phone/{id}",
            post(phones::update).delete(phones::delete),
        )
        .route("/api/phone/{id}/status", post(phones::check_status))
        .route("/api/phone/{id}/status/force", post(phones::force_status))
        .route("/api/webhook/{id}/deliveries", get(webhooks::deliveries))
        .route("/api/webhook/{id}/attempts", get(webhooks::attempts))
        .route(
            "/api/webhook/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        .route(
            "/api/webhook/{id}/redeliver",
            post(webhooks::redeliver_failed),
        )
        .route("/api/{resource}", post(resources::create))
        .route(
            "/api/{resource}/{id}",
            post(resources::update).delete(resources::delete),
        )
        .method_not_allowed_fallback(wrong_verb)
        .fallback(unknown_path)
        .layer(middleware::from_fn(statuses))
}

/// Sets the verb-dependent statuses of RaspiSMS's answers.
async fn statuses(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let mut response = next.run(req).await;
    if let Some(outcome) = response.extensions().get::<Outcome>().copied() {
        *response.status_mut() = verb_status(&method, outcome);
    }
    response
}

/// RaspiSMS answers a wrong verb with an HTML 500 page; Pigeon with a JSON 405.
async fn wrong_verb(req: Request) -> Response {
    let mut e = ApiError::invalid(format!(
        "the {} method is not allowed on {}.",
        req.method(),
        req.uri().path()
    ));
    e.status = Some(StatusCode::METHOD_NOT_ALLOWED);
    e.into_response()
}

async fn unknown_path(req: Request) -> Response {
    let mut e = ApiError::invalid(format!("no endpoint at {}.", req.uri().path()));
    e.status = Some(StatusCode::NOT_FOUND);
    e.into_response()
}
