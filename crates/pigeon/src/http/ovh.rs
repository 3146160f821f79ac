//! The OVH SMS API (`/1.0/...`, reference `provider-apis.md` §2), so that code written for OVH
//! works with only its endpoint changed: requests signed with `X-Ovh-*` headers over the raw
//! request target and body, errors `{message, errorCode}`, an `X-Ovh-QueryId` on every answer,
//! success always 200, collections as arrays of ids.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::tz::TimeZone;
use pigeon_core::secret::random_hex;
use pigeon_core::text;
use pigeon_core::time::Ts;
use pigeon_store::messages::{Item, ItemFilter};
use pigeon_store::users::User;
use serde_json::{Map, Value, json};

use super::RawTarget;
use crate::app::{App, AppState};
use crate::formats::ovh as render;
use crate::services::ovh::{self as service, JobInput, Refused, Signed};
use crate::services::{ServiceError, accounts};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/1.0/auth/time", get(time))
        .route("/1.0/sms", get(services))
        .route("/1.0/sms/estimate", post(estimate))
        .route("/1.0/sms/{sn}", get(account).put(update_account))
        .route("/1.0/sms/{sn}/jobs", get(jobs).post(send))
        .route("/1.0/sms/{sn}/jobs/{id}", get(job).delete(cancel_job))
        .route("/1.0/sms/{sn}/outgoing", get(outgoing))
        .route(
            "/1.0/sms/{sn}/outgoing/{id}",
            get(outgoing_one).delete(delete_outgoing),
        )
        .route("/1.0/sms/{sn}/incoming", get(incoming))
        .route(
            "/1.0/sms/{sn}/incoming/{id}",
            get(incoming_one).delete(delete_incoming),
        )
        .route("/1.0/sms/{sn}/blacklists", get(blacklists))
        .route(
            "/1.0/sms/{sn}/blacklists/{number}",
            get(blacklist_one).delete(unblacklist),
        )
        .route("/1.0/sms/{sn}/senders", get(senders).post(create_sender))
        .route("/1.0/sms/{sn}/senders/{sender}", get(sender))
        .route("/1.0/sms/{sn}/virtualNumbers", get(virtual_numbers))
        .route(
            "/1.0/sms/{sn}/virtualNumbers/{number}/jobs",
            post(send_from_number),
        )
        .layer(axum::middleware::map_response(query_id))
}

/// Every answer carries a query id, which OVH's clients show with their errors.
async fn query_id(mut response: Response) -> Response {
    let id = format!("EU.ext-pigeon.{}", random_hex(8).unwrap_or_default());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-ovh-queryid", value);
    }
    response
}

/// An error answer: `{"message", "errorCode"?}`.
pub struct OvhError {
    status: StatusCode,
    message: String,
    code: Option<&'static str>,
}

impl OvhError {
    fn new(status: StatusCode, message: impl Into<String>) -> OvhError {
        OvhError {
            status,
            message: message.into(),
            code: None,
        }
    }
}

impl IntoResponse for OvhError {
    fn into_response(self) -> Response {
        let mut body = json!({ "message": self.message });
        if let Some(code) = self.code {
            body["errorCode"] = json!(code);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ServiceError> for OvhError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound => {
                OvhError::new(StatusCode::NOT_FOUND, "The requested object does not exist")
            }
            ServiceError::Invalid(m) | ServiceError::Missing(m) => {
                OvhError::new(StatusCode::BAD_REQUEST, m)
            }
            ServiceError::State(m) | ServiceError::Conflict(m) => {
                OvhError::new(StatusCode::CONFLICT, m)
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "ovh request failed");
                OvhError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
            }
        }
    }
}

impl From<Refused> for OvhError {
    fn from(r: Refused) -> Self {
        let forbidden = |message: &str, code| OvhError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            code: Some(code),
        };
        match r {
            Refused::NotGranted => forbidden("This call has not been granted", "NOT_GRANTED_CALL"),
            Refused::InvalidKey => forbidden("Invalid application key", "INVALID_KEY"),
            Refused::InvalidCredential(m) => forbidden(m, "INVALID_CREDENTIAL"),
            Refused::Suspended => forbidden("This account is suspended", "FORBIDDEN"),
            Refused::OutOfTime => OvhError::new(StatusCode::BAD_REQUEST, "Query out of time"),
        }
    }
}

/// A 404 naming what was asked for.
fn missing(what: impl std::fmt::Display) -> impl Fn(ServiceError) -> OvhError {
    move |e| match e {
        ServiceError::NotFound => OvhError::new(
            StatusCode::NOT_FOUND,
            format!("The requested object ({what}) does not exist"),
        ),
        other => other.into(),
    }
}

fn bad(message: impl Into<String>) -> OvhError {
    OvhError::new(StatusCode::BAD_REQUEST, message)
}

/// An authenticated call: its account, query parameters and JSON body (`{}` when empty).
pub struct Call {
    user: User,
    query: HashMap<String, String>,
    body: Map<String, Value>,
}

impl FromRequest<AppState> for Call {
    type Rejection = OvhError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, OvhError> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(|_| bad("The body is too large"))?;
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target = parts
            .extensions
            .get::<RawTarget>()
            .map(|t| t.0.clone())
            .unwrap_or_else(|| parts.uri.to_string());
        let signed = Signed {
            application_key: header("x-ovh-application"),
            consumer_key: header("x-ovh-consumer"),
            timestamp: header("x-ovh-timestamp"),
            signature: header("x-ovh-signature"),
            method: parts.method.as_str(),
            target: &target,
            body: &body,
        };
        let user = service::authenticate(app, &signed).await?;
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice(&body) {
                Ok(Value::Object(fields)) => fields,
                _ => return Err(bad("Invalid JSON body: an object is expected")),
            }
        };
        let query = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
        Ok(Call { user, query, body })
    }
}

impl Call {
    /// The account's, if `sn` names its service.
    fn service(&self, sn: &str) -> Result<(), OvhError> {
        if sn == service::service_name(&self.user) {
            Ok(())
        } else {
            Err(missing(format!("serviceName = {sn}"))(
                ServiceError::NotFound,
            ))
        }
    }

    fn text(&self, name: &str) -> Result<Option<String>, OvhError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(bad(format!(
                "Invalid type for {name}: a string is expected"
            ))),
        }
    }

    fn flag(&self, name: &str) -> Result<bool, OvhError> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(_) => Err(bad(format!(
                "Invalid type for {name}: a boolean is expected"
            ))),
        }
    }

    fn number(&self, name: &str) -> Result<Option<i64>, OvhError> {
        let parsed = match self.body.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid type for {name}: an integer is expected")))
    }

    async fn zone(&self, app: &App) -> Result<TimeZone, OvhError> {
        Ok(accounts::settings(app, self.user.id).await?.time_zone())
    }
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn parse_id(id: &str) -> Result<i64, OvhError> {
    id.trim()
        .parse()
        .map_err(|_| bad(format!("Invalid id {id}: an integer is expected")))
}

async fn time() -> Response {
    ok(json!(Ts::now().0 / 1000))
}

async fn services(call: Call) -> Response {
    ok(json!([service::service_name(&call.user)]))
}

async fn account(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let a = service::account(&app, &call.user).await?;
    Ok(ok(json!({
        "name": a.name,
        "description": a.description,
        "status": "enable",
        "channel": "both",
        "creditsLeft": a.credits_left,
        "callBack": a.callback,
        "stopCallBack": a.stop_callback,
    })))
}

async fn update_account(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let fields = [
        ("callBack", call.text("callBack")?),
        ("stopCallBack", call.text("stopCallBack")?),
        ("description", call.text("description")?),
    ];
    service::update_account(&app, &call.user, &fields).await?;
    Ok(ok(Value::Null))
}

/// The job fields of a body; a virtual number's job has no sender and no STOP mention.
fn job_input(call: &Call, phone_id: Option<i64>) -> Result<JobInput, OvhError> {
    let receivers = match call.body.get("receivers") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| match r {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(bad("Invalid type for receivers: strings are expected")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(bad("Invalid type for receivers: an array is expected")),
    };
    let virtual_number = phone_id.is_some();
    Ok(JobInput {
        message: call.text("message")?.unwrap_or_default(),
        receivers,
        sender: if virtual_number {
            None
        } else {
            call.text("sender")?.filter(|s| !s.trim().is_empty())
        },
        no_stop_clause: virtual_number || call.flag("noStopClause")?,
        differed_minutes: call.number("differedPeriod")?,
        validity_minutes: call.number("validityPeriod")?,
        tag: call.text("tag")?,
        flash: call.text("class")?.as_deref() == Some("flash"),
        phone_id,
    })
}

async fn sending_report(app: &App, call: &Call, input: &JobInput) -> Result<Response, OvhError> {
    let r = service::send(app, &call.user, input).await?;
    Ok(ok(json!({
        "totalCreditsRemoved": r.credits,
        "invalidReceivers": r.invalid,
        "ids": r.ids,
        "validReceivers": r.valid,
        "tag": r.tag,
    })))
}

async fn send(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    sending_report(&app, &call, &job_input(&call, None)?).await
}

async fn send_from_number(
    State(app): State<AppState>,
    Path((sn, number)): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let phone = service::virtual_number(&app, call.user.id, &number)
        .await
        .map_err(missing(format!("number = {number}")))?;
    sending_report(&app, &call, &job_input(&call, Some(phone))?).await
}

/// The ids of the account's messages `filter` selects, newest first.
async fn id_list(app: &App, call: &Call, filter: ItemFilter) -> Result<Response, OvhError> {
    let items = service::ids(app, call.user.id, filter).await?;
    Ok(ok(json!(items.iter().map(|m| m.id).collect::<Vec<_>>())))
}

async fn jobs(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let filter = ItemFilter {
        direction: Some("outbound"),
        statuses: service::PENDING,
        ..ItemFilter::default()
    };
    id_list(&app, &call, filter).await
}

/// One of the account's messages, in a direction and one of `statuses`, rendered.
async fn one(
    app: &App,
    call: &Call,
    (sn, id): (String, String),
    (direction, statuses): (&str, &[&str]),
    render: fn(&Item, &TimeZone) -> Value,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let m = service::message(app, call.user.id, parse_id(&id)?, direction, statuses)
        .await
        .map_err(missing(format!("id = {id}")))?;
    Ok(ok(render(&m, &call.zone(app).await?)))
}

/// Deletes one of the account's messages past its sending.
async fn delete_one(
    app: &App,
    call: &Call,
    (sn, id): (String, String),
    direction: &str,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    service::delete_message(app, call.user.id, parse_id(&id)?, direction)
        .await
        .map_err(missing(format!("id = {id}")))?;
    Ok(ok(Value::Null))
}

async fn job(
    State(app): State<AppState>,
    Path(path): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    one(
        &app,
        &call,
        path,
        ("outbound", service::PENDING),
        render::job,
    )
    .await
}

async fn cancel_job(
    State(app): State<AppState>,
    Path((sn, id)): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    service::cancel_job(&app, call.user.id, parse_id(&id)?)
        .await
        .map_err(missing(format!("id = {id}")))?;
    Ok(ok(Value::Null))
}

/// `creationDatetime.from` / `.to`: ISO 8601.
fn created(call: &Call) -> Result<(Option<Ts>, Option<Ts>), OvhError> {
    let at = |name: &str| {
        call.query
            .get(name)
            .map(|v| {
                v.trim()
                    .parse::<jiff::Timestamp>()
                    .map(Ts::from_timestamp)
                    .map_err(|_| bad(format!("Invalid value for {name}: a date-time is expected")))
            })
            .transpose()
    };
    Ok((at("creationDatetime.from")?, at("creationDatetime.to")?))
}

/// The query filters of the outgoing list that are computed, not stored.
fn computed_filters(call: &Call) -> Result<impl Fn(&Item) -> bool + use<>, OvhError> {
    let code = |name: &str| {
        call.query
            .get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("Invalid value for {name}")))
            })
            .transpose()
    };
    let (ptt, receipt, differed) = (
        code("ptt")?,
        code("deliveryReceipt")?,
        code("differedDelivery")?,
    );
    let message_id = call.query.get("messageID").cloned();
    let batch = call.query.get("batchID").cloned();
    Ok(move |m: &Item| {
        ptt.is_none_or(|p| p == render::ptt(&m.status))
            && receipt.is_none_or(|r| r == render::delivery_receipt(&m.status))
            && differed.is_none_or(|d| d == ((m.at - m.created_at) / 60_000).max(0))
            && message_id.as_ref().is_none_or(|id| *id == m.id.to_string())
            // Pigeon has no batches: a batch filter matches nothing.
            && batch.is_none()
    })
}

async fn outgoing(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let filter = ItemFilter {
        direction: Some("outbound"),
        statuses: service::OUTGOING,
        destination: call.query.get("receiver").cloned(),
        origin: call.query.get("sender").cloned(),
        tag: call.query.get("tag").cloned(),
        created: created(&call)?,
        ..ItemFilter::default()
    };
    let keep = computed_filters(&call)?;
    let items = service::ids(&app, call.user.id, filter).await?;
    Ok(ok(json!(
        items
            .iter()
            .filter(|m| keep(m))
            .map(|m| m.id)
            .collect::<Vec<_>>()
    )))
}

async fn outgoing_one(
    State(app): State<AppState>,
    Path(path): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    let kind = ("outbound", service::OUTGOING);
    one(&app, &call, path, kind, render::outgoing).await
}

async fn delete_outgoing(
    State(app): State<AppState>,
    Path(path): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    delete_one(&app, &call, path, "outbound").await
}

async fn incoming(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let filter = ItemFilter {
        direction: Some("inbound"),
        origin: call.query.get("sender").cloned(),
        tag: call.query.get("tag").cloned(),
        created: created(&call)?,
        ..ItemFilter::default()
    };
    id_list(&app, &call, filter).await
}

async fn incoming_one(
    State(app): State<AppState>,
    Path(path): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    one(&app, &call, path, ("inbound", &[]), render::incoming).await
}

async fn delete_incoming(
    State(app): State<AppState>,
    Path(path): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    delete_one(&app, &call, path, "inbound").await
}

async fn blacklists(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let list = service::blacklist(&app, call.user.id).await?;
    Ok(ok(json!(
        list.iter().map(|e| &e.number).collect::<Vec<_>>()
    )))
}

async fn blacklist_one(
    State(app): State<AppState>,
    Path((sn, number)): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let e = service::blacklisted(&app, call.user.id, &number)
        .await
        .map_err(missing(format!("number = {number}")))?;
    Ok(ok(json!({
        "number": e.number,
        "dateCreation": render::date(e.created_at, &call.zone(&app).await?),
        "batchID": null,
        "smsOutgoingID": null,
    })))
}

async fn unblacklist(
    State(app): State<AppState>,
    Path((sn, number)): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    service::unblacklist(&app, call.user.id, &number)
        .await
        .map_err(missing(format!("number = {number}")))?;
    Ok(ok(Value::Null))
}

async fn senders(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let all = service::senders_of(&app, call.user.id).await?;
    Ok(ok(json!(all.iter().map(|s| &s.sender).collect::<Vec<_>>())))
}

async fn create_sender(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let name = call
        .text("sender")?
        .ok_or_else(|| bad("sender is mandatory"))?;
    let description = call.text("description")?.unwrap_or_default();
    let reason = call.text("reason")?.unwrap_or_default();
    service::create_sender(&app, call.user.id, &name, &description, &reason).await?;
    Ok(ok(Value::Null))
}

async fn sender(
    State(app): State<AppState>,
    Path((sn, name)): Path<(String, String)>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let s = service::sender(&app, call.user.id, &name)
        .await
        .map_err(missing(format!("sender = {name}")))?;
    let kind = if s.sender.starts_with('+') || s.sender.chars().all(|c| c.is_ascii_digit()) {
        "numeric"
    } else {
        "alpha"
    };
    Ok(ok(json!({
        "sender": s.sender,
        "description": s.description,
        "status": "enable",
        "type": kind,
        "referer": "custom",
        "comment": null,
    })))
}

async fn virtual_numbers(
    State(app): State<AppState>,
    Path(sn): Path<String>,
    call: Call,
) -> Result<Response, OvhError> {
    call.service(&sn)?;
    let numbers = service::virtual_numbers(&app, call.user.id).await?;
    Ok(ok(json!(
        numbers.iter().map(|(_, n)| n).collect::<Vec<_>>()
    )))
}

/// The length and parts of a message as sent, the STOP mention counted unless
/// `noStopClause`.
async fn estimate(State(app): State<AppState>, call: Call) -> Result<Response, OvhError> {
    let message = call
        .text("message")?
        .ok_or_else(|| bad("message is mandatory"))?;
    let clause = accounts::settings(&app, call.user.id).await?;
    let sent = service::with_stop_clause(
        &message,
        call.flag("noStopClause")?,
        clause.get("ovh_stop_clause"),
    );
    let a = text::analyse(&sent);
    let unicode = a.encoding.as_str() == "ucs2";
    Ok(ok(json!({
        "characters": sent.chars().count(),
        "charactersClass": if unicode { "unicode" } else { "7bits" },
        "maxCharactersPerPart": match (unicode, a.segments > 1) {
            (false, false) => 160,
            (false, true) => 153,
            (true, false) => 70,
            (true, true) => 67,
        },
        "parts": a.segments,
    })))
}
