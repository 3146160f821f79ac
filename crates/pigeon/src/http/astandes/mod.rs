//! The Astandes device API (`/api/v1/...`): devices, 7-digit pairing codes and messages, in the
//! shapes of the Astandes document (24-hex `_id`s, embedded device objects, ISO dates with
//! milliseconds, status codes and their history). Decisions for its gaps follow
//! `reference/android-gateways.md` §7 (see the README).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pigeon_core::time::Ts;
use pigeon_store::devices::{DeviceFields, Filter};
use pigeon_store::users::User;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

use crate::app::{App, AppState};
use crate::formats::astandes::{self as render, device, id_of, iso};
use crate::services::devices::{self, MessageInput, Through};
use crate::services::{ServiceError, accounts};

/// An id from the path or the body, as one of Pigeon's.
fn parse_id(text: &str) -> Result<i64, ApiError> {
    render::parse_id(text).ok_or_else(|| bad(format!("`{}` is not an id", text.trim())))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth", get(auth))
        .route("/api/v1/device", post(create_device).get(list_devices))
        .route(
            "/api/v1/device/{id}",
            get(get_device)
                .put(update_device)
                .patch(update_device)
                .delete(delete_device),
        )
        .route("/api/v1/device/{id}/secret", get(device_secret))
        .route("/api/v1/attach", post(attach))
        .route("/api/v1/message", post(create_message).get(list_messages))
        .route("/api/v1/message/bulk", post(bulk))
        .route(
            "/api/v1/message/{id}",
            get(get_message).delete(delete_message),
        )
}

/// An error answer: `{"error": "..."}` with its HTTP status.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => ApiError(StatusCode::NOT_FOUND, "not found".into()),
            ServiceError::Invalid(m) | ServiceError::Missing(m) | ServiceError::Conflict(m) => {
                ApiError(StatusCode::BAD_REQUEST, m)
            }
            ServiceError::State(m) => ApiError(StatusCode::CONFLICT, m),
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "astandes request failed");
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        }
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// The account of `Authorization: tokenv1 <key>`, read leniently: the scheme in any case, any
/// whitespace around it.
pub struct Account(User);

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "invalid or missing token (Authorization: tokenv1 <key>)".into(),
            )
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let mut words = header.split_whitespace();
        let key = match (words.next(), words.next(), words.next()) {
            (Some(scheme), Some(key), None) if scheme.eq_ignore_ascii_case("tokenv1") => key,
            _ => return Err(unauthorized()),
        };
        let user = accounts::by_api_key(app, key)
            .await?
            .ok_or_else(unauthorized)?;
        if !user.is_active() {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "this account is suspended".into(),
            ));
        }
        Ok(Account(user))
    }
}

/// The body as a JSON object (curl's `-d` sends it as a form; the content is JSON all the same).
fn object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad("the body must be a JSON object")),
    }
}

fn text_field(body: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(format!("{name} must be a string"))),
    }
}

fn int_field(body: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("{name} must be an integer"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(format!("{name} must be an integer"))),
        Some(_) => Err(bad(format!("{name} must be an integer"))),
    }
}

fn device_fields(body: &Map<String, Value>) -> Result<DeviceFields, ApiError> {
    Ok(DeviceFields {
        firstname: text_field(body, "firstname")?,
        lastname: text_field(body, "lastname")?,
        number: text_field(body, "phone")?,
        email: text_field(body, "email")?,
        description: text_field(body, "description")?,
        notification: text_field(body, "notification")?,
    })
}

async fn auth(State(app): State<AppState>, Account(user): Account) -> Result<Response, ApiError> {
    let _ = app;
    Ok(
        axum::Json(json!({ "ok": true, "_id": id_of(user.id), "email": user.email }))
            .into_response(),
    )
}

async fn create_device(
    State(app): State<AppState>,
    Account(user): Account,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = devices::create(&app, user.id, &device_fields(&object(&body)?)?).await?;
    Ok((StatusCode::CREATED, axum::Json(device(&d))).into_response())
}

/// Beyond the document: the secret that signs the Standard Webhooks headers of this device's
/// notifications (and its messages'), for receivers that verify them.
async fn device_secret(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = devices::get(&app, user.id, parse_id(&id)?).await?;
    let secret = app.key.open(&d.secret_sealed).map_err(ServiceError::from)?;
    Ok(axum::Json(json!({ "secret": secret })).into_response())
}

async fn get_device(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = devices::get(&app, user.id, parse_id(&id)?).await?;
    Ok(axum::Json(device(&d)).into_response())
}

async fn update_device(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = devices::update(
        &app,
        user.id,
        parse_id(&id)?,
        &device_fields(&object(&body)?)?,
    )
    .await?;
    Ok(axum::Json(device(&d)).into_response())
}

async fn delete_device(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let d = devices::get(&app, user.id, id).await?;
    devices::delete(&app, user.id, id).await?;
    Ok(axum::Json(device(&d)).into_response())
}

/// The list query: `skip`, `limit`, date ranges, `attached`, `sort` (a field, `-` for
/// descending).
fn filter(
    q: &HashMap<String, String>,
    sortable: &[(&str, &'static str)],
) -> Result<(Filter, String), ApiError> {
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        q.get(name).map_or(Ok(default), |v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("{name} must be an integer")))
        })
    };
    let date = |name: &str| -> Result<Option<Ts>, ApiError> {
        q.get(name)
            .map(|v| {
                v.trim()
                    .parse::<jiff::Timestamp>()
                    .map(Ts::from_timestamp)
                    .map_err(|_| bad(format!("{name} must be an ISO date")))
            })
            .transpose()
    };
    let sort = q
        .get("sort")
        .map(String::as_str)
        .unwrap_or("-updated")
        .trim()
        .to_string();
    let (field, descending) = match sort.strip_prefix('-') {
        Some(field) => (field, true),
        None => (sort.as_str(), false),
    };
    let column = sortable
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, column)| *column)
        .ok_or_else(|| {
            bad(format!(
                "sort must be one of: {}",
                sortable
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let attached = match q.get("attached").map(|v| v.trim().to_ascii_lowercase()) {
        None => None,
        Some(v) if v == "true" || v == "1" => Some(true),
        Some(v) if v == "false" || v == "0" => Some(false),
        Some(_) => return Err(bad("attached must be true or false")),
    };
    let f = Filter {
        skip: number("skip", 0)?.max(0),
        limit: number("limit", 100)?.clamp(1, 1000),
        created: (date("created_start")?, date("created_stop")?),
        updated: (date("updated_start")?, date("updated_stop")?),
        attached,
        sort: (column, descending),
    };
    Ok((f, sort))
}

fn envelope(f: &Filter, sort: &str, total: i64, result: Vec<Value>) -> Response {
    axum::Json(json!({
        "skip": f.skip,
        "limit": f.limit,
        "sort": sort,
        "total": total,
        "length": result.len(),
        "result": result,
    }))
    .into_response()
}

const DEVICE_SORT: &[(&str, &str)] = &[
    ("updated", "updated_at"),
    ("created", "created_at"),
    ("_id", "id"),
    ("attached", "attached"),
    ("firstname", "firstname"),
];
/// Messages do not sort by `status`: it is a code computed from the state, not a column.
const MESSAGE_SORT: &[(&str, &str)] = &[
    ("updated", "updated_at"),
    ("created", "created_at"),
    ("_id", "id"),
];

async fn list_devices(
    State(app): State<AppState>,
    Account(user): Account,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (f, sort) = filter(&q, DEVICE_SORT)?;
    let (rows, total) = devices::list(&app, user.id, &f).await?;
    Ok(envelope(
        &f,
        &sort,
        total,
        rows.iter().map(device).collect(),
    ))
}

async fn attach(
    State(app): State<AppState>,
    Account(user): Account,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = object(&body)?;
    let id = text_field(&body, "device")?.ok_or_else(|| bad("device is required"))?;
    let (d, code_id, code, created, expires) =
        devices::attach(&app, user.id, parse_id(&id)?).await?;
    let answer = json!({
        "expires": iso(expires.0),
        "created": iso(created.0),
        "code": code,
        "device": device(&d),
        "_id": id_of(code_id),
    });
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// `device` is an id, or `{"distribute": "random"}`.
fn message_input(body: &Map<String, Value>) -> Result<MessageInput, ApiError> {
    let through = match body.get("device") {
        Some(Value::String(id)) => Through::Device(parse_id(id)?),
        Some(Value::Object(o)) if o.get("distribute").and_then(Value::as_str) == Some("random") => {
            Through::Random
        }
        Some(_) => {
            return Err(bad(
                "device must be a device id or {\"distribute\":\"random\"}",
            ));
        }
        None => return Err(bad("device is required")),
    };
    Ok(MessageInput {
        through,
        // The document types `phone` as an integer: a number is international without its `+`.
        phone: match body.get("phone") {
            Some(Value::Number(n)) => format!("+{n}"),
            _ => text_field(body, "phone")?.ok_or_else(|| bad("phone is required"))?,
        },
        text: text_field(body, "text")?.ok_or_else(|| bad("text is required"))?,
        ttl_secs: int_field(body, "ttl")?,
        identifier: text_field(body, "identifier")?,
        maxtries: int_field(body, "maxtries")?,
        notification: text_field(body, "notification")?,
    })
}

async fn shown(app: &App, user: i64, id: i64) -> Result<Value, ApiError> {
    Ok(render::messages(app, user, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound)?)
}

async fn create_message(
    State(app): State<AppState>,
    Account(user): Account,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = message_input(&object(&body)?)?;
    let queued = devices::send(&app, user.id, &input).await?;
    Ok((StatusCode::CREATED, axum::Json(render::queued(&queued))).into_response())
}

/// Every message is checked before any is queued, so a bad one refuses the whole batch.
async fn bulk(
    State(app): State<AppState>,
    Account(user): Account,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = object(&body)?;
    let Some(Value::Array(items)) = body.get("messages") else {
        return Err(bad("messages must be an array"));
    };
    let inputs = items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(o) => message_input(o)
                .map_err(|ApiError(s, m)| ApiError(s, format!("messages[{i}]: {m}"))),
            _ => Err(bad(format!("messages[{i}] must be an object"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let queued = devices::send_all(&app, user.id, &inputs).await?;
    let shown = queued.iter().map(render::queued).collect();
    Ok((StatusCode::CREATED, axum::Json(Value::Array(shown))).into_response())
}

async fn list_messages(
    State(app): State<AppState>,
    Account(user): Account,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (f, sort) = filter(&q, MESSAGE_SORT)?;
    // Debug (sandbox) messages are not supported: a `debug=true` filter finds none.
    if q.get("debug")
        .is_some_and(|d| d.eq_ignore_ascii_case("true") || d == "1")
    {
        return Ok(envelope(&f, &sort, 0, Vec::new()));
    }
    let (rows, total) = pigeon_store::messages::device_messages(&app.store, user.id, &f)
        .await
        .map_err(ServiceError::from)?;
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    Ok(envelope(
        &f,
        &sort,
        total,
        render::messages(&app, user.id, &ids).await?,
    ))
}

async fn get_message(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(axum::Json(shown(&app, user.id, parse_id(&id)?).await?).into_response())
}

/// Deleting a message not handed to its device yet cancels it (505, "mensagem apagada").
async fn delete_message(
    State(app): State<AppState>,
    Account(user): Account,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    shown(&app, user.id, id).await?;
    devices::cancel(&app, user.id, id).await?;
    Ok(axum::Json(shown(&app, user.id, id).await?).into_response())
}
