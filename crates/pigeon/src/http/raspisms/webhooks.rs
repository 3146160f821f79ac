//! Pigeon's webhook delivery endpoints, in RaspiSMS's envelope: every delivery and attempt is
//! listable, and deliveries can be sent again.
//!
//! - `GET /api/webhook/{id}/deliveries/[?page=N | ?after=ID | ?before=ID]`
//! - `GET /api/webhook/{id}/attempts/[?page=N | ?after=ID | ?before=ID]`
//! - `POST /api/webhook/{id}/deliveries/{delivery}/redeliver/`
//! - `POST /api/webhook/{id}/redeliver/` with `since` (`Y-m-d H:i:s`): every failed delivery

use axum::extract::{Path, State};
use pigeon_store::Page;
use serde_json::{Value, json};

use super::envelope::{ApiError, Code, Reply};
use super::list::paged;
use super::render::Dates;
use super::request::{RaspiRequest, parse_id};
use crate::app::{App, AppState};
use crate::services::{ServiceError, accounts, webhooks};

fn not_found(e: ServiceError) -> ApiError {
    match e {
        ServiceError::NotFound => ApiError::invalid("no webhook or delivery with this id."),
        other => other.into(),
    }
}

/// The page asked for in the query (`page`, `after` or `before`; the first page otherwise).
fn page(req: &RaspiRequest) -> Result<Page, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        req.query_text(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| ApiError::invalid(format!("{name} must be a positive integer.")))
            })
            .transpose()
    };
    Ok(
        match (number("after")?, number("before")?, number("page")?) {
            (Some(id), _, _) => Page::After(id),
            (None, Some(id), _) => Page::Before(id),
            (None, None, n) => Page::Number(n.unwrap_or(0)),
        },
    )
}

/// A list answer with RaspiSMS's links, as query parameters of `path`.
fn listed(app: &App, path: &str, rows: Vec<Value>, page: Page) -> Reply {
    let link = |cursor: &str, id: i64| format!("{}{path}?{cursor}={id}", app.public_base);
    let page_link = |n: i64| format!("{}{path}?page={n}", app.public_base);
    paged(rows, page, link, page_link)
}

/// What both list endpoints read first: the caller, the webhook id, the page and the
/// caller's time zone for dates.
struct ListRequest {
    user_id: i64,
    id: i64,
    page: Page,
    dates: Dates,
}

async fn list_request(app: &App, id: &str, req: &RaspiRequest) -> Result<ListRequest, ApiError> {
    let user = req.authenticate(app).await?;
    Ok(ListRequest {
        id: parse_id("id", id)?,
        page: page(req)?,
        dates: Dates(accounts::settings(app, user.id).await?.time_zone()),
        user_id: user.id,
    })
}

pub async fn deliveries(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let ListRequest {
        user_id,
        id,
        page,
        dates: d,
    } = list_request(&app, &id, &req).await?;
    let rows = webhooks::deliveries(&app, user_id, id, page)
        .await
        .map_err(not_found)?;
    let rows = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "id_webhook": r.webhook_id,
                "type": r.kind,
                "url": r.url,
                "event_id": r.event_id,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt_at": (r.status == "pending").then(|| d.at(r.next_attempt_at)),
                "last_status_code": r.last_status,
                "last_error": r.last_error,
                "body": r.body,
                "created_at": d.at(r.created_at),
                "updated_at": d.at(r.updated_at),
            })
        })
        .collect();
    Ok(listed(
        &app,
        &format!("/api/webhook/{id}/deliveries/"),
        rows,
        page,
    ))
}

pub async fn attempts(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let ListRequest {
        user_id,
        id,
        page,
        dates: d,
    } = list_request(&app, &id, &req).await?;
    let rows = webhooks::attempts(&app, user_id, id, page)
        .await
        .map_err(not_found)?;
    let rows = rows
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "id_delivery": a.delivery_id,
                "at": d.at(a.at),
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "response_body": a.response_body,
                "error": a.error,
            })
        })
        .collect();
    Ok(listed(
        &app,
        &format!("/api/webhook/{id}/attempts/"),
        rows,
        page,
    ))
}

pub async fn redeliver(
    State(app): State<AppState>,
    Path((id, delivery)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let (id, delivery) = (parse_id("id", &id)?, parse_id("delivery", &delivery)?);
    webhooks::redeliver(&app, user.id, id, delivery)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => {
                ApiError::new(Code::CannotUpdate, "No delivery with this id.")
            }
            other => other.into(),
        })?;
    Ok(Reply::new(true))
}

pub async fn redeliver_failed(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = parse_id("id", &id)?;
    let count = webhooks::redeliver_failed(&app, user.id, id, req.body_text("since"))
        .await
        .map_err(not_found)?;
    Ok(Reply::new(count))
}
