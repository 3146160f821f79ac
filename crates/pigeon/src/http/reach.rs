//! The Reach messaging API (`/rest/messaging/v1/...`, reference `provider-apis.md` §1), so that
//! Reach's official clients work with only their base URL changed: `ApiUser`/`ApiKey` headers,
//! form or JSON bodies, the id always as `messageId` (query or form), MessageItem answers, list
//! pages with exactly six keys, `{errorCode, errorMessage, errorDetails}` errors, 204 on delete,
//! and a per-key rate limit answered with 429 and `Retry-After`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use pigeon_core::numbers::parse_e164;
use pigeon_core::time::Ts;
use pigeon_store::messages::{Item, ItemFilter};
use pigeon_store::users::User;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::formats::reach::{self as render, parse_message_id};
use crate::services::messaging::{self, NewMessage};
use crate::services::{ServiceError, accounts};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rest/messaging/v1/create", post(create))
        .route("/rest/messaging/v1/fetch", get(fetch))
        .route("/rest/messaging/v1/list", get(list))
        .route("/rest/messaging/v1/update", post(update))
        .route("/rest/messaging/v1/unschedule", post(unschedule))
        .route("/rest/messaging/v1/delete", delete(remove))
}

/// An error answer: Reach's body, its `errorCode` being 20000 plus the HTTP status.
pub struct ApiError {
    status: StatusCode,
    message: String,
    details: Value,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errorCode": 20000 + self.status.as_u16(),
            "errorMessage": self.message,
            "errorDetails": self.details,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "message not found"),
            ServiceError::Invalid(m) | ServiceError::Missing(m) | ServiceError::Conflict(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, m)
            }
            ServiceError::State(m) => ApiError::new(StatusCode::CONFLICT, m),
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "reach request failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, message)
}

/// The account of the `ApiUser` (its email) and `ApiKey` headers, within its request allowance.
pub struct Applet(User);

impl FromRequestParts<AppState> for Applet {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication failed: send the ApiUser and ApiKey headers",
            )
        };
        let (Some(api_user), Some(api_key)) = (header("apiuser"), header("apikey")) else {
            return Err(unauthorized());
        };
        let user = accounts::by_api_key(app, api_key)
            .await?
            .filter(|u| u.email.eq_ignore_ascii_case(api_user))
            .ok_or_else(unauthorized)?;
        if !user.is_active() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this account is suspended",
            ));
        }
        if let Err(wait) = app.reach_rate.check(user.id) {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests: slow down and retry after the delay in Retry-After",
            );
            e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
            return Err(e);
        }
        Ok(Applet(user))
    }
}

/// The request's parameters: the query, then a form or JSON body (JSON values as text).
pub struct Params(HashMap<String, String>);

impl FromRequest<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &AppState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(|_| bad("the body is too large"))?;
        params(&parts.headers, parts.uri.query(), &body).map(Params)
    }
}

fn params(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<HashMap<String, String>, ApiError> {
    let mut out: HashMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(bad("the body must be a JSON object"));
        };
        for (k, v) in fields {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    out.insert(k, s);
                }
                other => {
                    out.insert(k, other.to_string());
                }
            }
        }
    } else {
        out.extend(form_urlencoded::parse(body).into_owned());
    }
    Ok(out)
}

fn message_id(p: &HashMap<String, String>) -> Result<i64, ApiError> {
    let raw = p
        .get("messageId")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| bad("messageId is required"))?;
    parse_message_id(raw).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "message not found")
            .with_details(json!({ "messageId": raw }))
    })
}

fn number<T: std::str::FromStr>(
    p: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    p.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| bad(format!("{name} must be a number")))
        })
        .transpose()
}

/// An ISO 8601 date-time (UTC or with an offset), or a date (its midnight, UTC). A value sent
/// percent-encoded twice (the document's own curl example does) is decoded once more.
fn instant(p: &HashMap<String, String>, name: &str) -> Result<Option<Ts>, ApiError> {
    let Some(raw) = p.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let decoded: String = form_urlencoded::parse(format!("v={raw}").as_bytes())
        .map(|(_, v)| v.into_owned())
        .next()
        .unwrap_or_default();
    let parsed = decoded
        .parse::<jiff::Timestamp>()
        .map(Ts::from_timestamp)
        .or_else(|_| {
            decoded
                .parse::<jiff::civil::Date>()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
                .map(|z| Ts::from_timestamp(z.timestamp()))
        });
    parsed
        .map(Some)
        .map_err(|_| bad(format!("{name} must be an ISO 8601 date-time")))
}

async fn answer(app: &App, user: &User, m: &Item) -> Result<Value, ApiError> {
    let pricing = accounts::settings(app, user.id).await?.pricing();
    Ok(render::item(m, &pricing))
}

async fn create(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    let text = |name: &str| p.get(name).cloned();
    let input = NewMessage {
        dest: text("dest"),
        src: text("src"),
        body: text("body"),
        bulk: text("bulkIdentifier"),
        scheduled: instant(&p, "scheduledTime")?,
        callback: text("statusCallback").filter(|u| !u.trim().is_empty()),
        max_price: number(&p, "maxPrice")?,
        validity_secs: number(&p, "validityPeriod")?,
    };
    let m = messaging::create(&app, user.id, &input).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(answer(&app, &user, &m).await?),
    )
        .into_response())
}

async fn fetch(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    let m = messaging::get(&app, user.id, message_id(&p)?)
        .await
        .map_err(|e| not_found_of(e, &p))?;
    Ok(axum::Json(answer(&app, &user, &m).await?).into_response())
}

/// A missing message's error names the id asked for.
fn not_found_of(e: ServiceError, p: &HashMap<String, String>) -> ApiError {
    let id = p.get("messageId").cloned().unwrap_or_default();
    match e {
        ServiceError::NotFound => ApiError::from(e).with_details(json!({ "messageId": id })),
        other => other.into(),
    }
}

/// Newest first, 0-based pages; the page object has exactly the six keys the clients accept.
async fn list(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    let page: i64 = number(&p, "page")?.unwrap_or(0);
    let page_size: i64 = number(&p, "pageSize")?.unwrap_or(20);
    if page < 0 || !(1..=1000).contains(&page_size) {
        return Err(bad(
            "page must be 0 or more and pageSize between 1 and 1000",
        ));
    }
    let number_of = |name: &str| {
        p.get(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| parse_e164(v).unwrap_or_else(|_| v.trim().to_string()))
    };
    let day = instant(&p, "sentAt")?;
    let filter = ItemFilter {
        destination: number_of("dest"),
        origin: number_of("src"),
        tag: p.get("bulkIdentifier").filter(|v| !v.is_empty()).cloned(),
        at: (
            day.or(instant(&p, "sentAfter")?),
            day.map(|d| Ts(d.0 + 24 * 3600 * 1000))
                .or(instant(&p, "sentBefore")?),
        ),
        offset: page.saturating_mul(page_size),
        limit: page_size,
        ..ItemFilter::default()
    };
    let (rows, total) = messaging::list(&app, user.id, &filter).await?;
    let pricing = accounts::settings(&app, user.id).await?.pricing();
    let total_pages = (total + page_size - 1) / page_size;
    let body = json!({
        "page": page,
        "pageSize": page_size,
        "totalMessages": total,
        "totalPages": total_pages,
        "outOfPageRange": page > 0 && page >= total_pages,
        "messages": rows.iter().map(|m| render::item(m, &pricing)).collect::<Vec<_>>(),
    });
    Ok(axum::Json(body).into_response())
}

async fn update(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    let id = message_id(&p)?;
    let text = p.get("body").ok_or_else(|| bad("body is required"))?;
    let m = messaging::update(&app, user.id, id, text)
        .await
        .map_err(|e| not_found_of(e, &p))?;
    Ok(axum::Json(answer(&app, &user, &m).await?).into_response())
}

async fn unschedule(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    let m = messaging::unschedule(&app, user.id, message_id(&p)?)
        .await
        .map_err(|e| not_found_of(e, &p))?;
    Ok(axum::Json(answer(&app, &user, &m).await?).into_response())
}

async fn remove(
    State(app): State<AppState>,
    Applet(user): Applet,
    Params(p): Params,
) -> Result<Response, ApiError> {
    messaging::delete(&app, user.id, message_id(&p)?)
        .await
        .map_err(|e| not_found_of(e, &p))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
