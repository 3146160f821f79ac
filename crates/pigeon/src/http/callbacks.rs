//! Provider callbacks (RaspiSMS §1.3): delivery reports, inbound SMS, inbound calls and call
//! ends, on any verb. Authenticated by the owner's API key (query, form field or `X-Api-Key`);
//! otherwise RaspiSMS always answers 200 with an empty body, whatever happened, and so does
//! Pigeon (the outcome goes to the log), so a provider never retries a report forever.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use pigeon_channels::{Adapter, Inbound};
use pigeon_core::time::{self, Ts};
use pigeon_store::phones::{self, Phone};
use pigeon_store::reports::ReportTarget;
use pigeon_store::users::User;
use serde_json::json;

use crate::app::{App, AppState};
use crate::services::{accounts, inbound};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/callback/status/{adapter}", any(status))
        .route("/callback/status/{adapter}/{id_phone}", any(phone_status))
        .route("/callback/reception/{adapter}/{id_phone}", any(reception))
        .route("/callback/inbound_call/{id_phone}", any(inbound_call))
        .route("/callback/end_call/{id_phone}", any(end_call))
}

/// A callback request of an authenticated account: its flat parameters (query then form body),
/// headers and raw body.
struct Callback {
    user: User,
    params: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// The request target (path and query) as it arrived.
    target: String,
    is_form: bool,
}

impl FromRequest<AppState> for Callback {
    type Rejection = Response;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE.into_response())?;
        let mut params: Vec<(String, String)> =
            form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let is_form = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            params.extend(form_urlencoded::parse(&body).into_owned());
        }
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect();
        let user = authenticate(app, &params, &headers).await?;
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        Ok(Callback {
            user,
            params,
            headers,
            body,
            target,
            is_form,
        })
    }
}

impl Callback {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The key in `api_key` (query or form) or `X-Api-Key`; RaspiSMS's own 401 body otherwise.
async fn authenticate(
    app: &App,
    params: &[(String, String)],
    headers: &[(String, String)],
) -> Result<User, Response> {
    let key = params
        .iter()
        .find(|(k, _)| k == "api_key")
        .or_else(|| headers.iter().find(|(k, _)| k == "x-api-key"))
        .map(|(_, v)| v.as_str());
    let user = match key {
        Some(key) => accounts::by_api_key(app, key).await.ok().flatten(),
        None => None,
    };
    user.filter(User::is_active).ok_or_else(|| {
        let body = json!({"error": "Invalid API key. You must provide a valid GET or POST api_key param."});
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    })
}

fn done() -> Response {
    StatusCode::OK.into_response()
}

fn adapter(name: &str) -> Option<&'static Adapter> {
    pigeon_channels::find(name)
}

/// The user's phone `id`, if it exists.
async fn phone(app: &App, user: &User, id: &str) -> Option<Phone> {
    let id = id.parse::<i64>().ok()?;
    phones::get(&app.store, user.id, id).await.ok().flatten()
}

async fn status(State(app): State<AppState>, Path(name): Path<String>, cb: Callback) -> Response {
    let user = &cb.user;
    let Some(adapter) = adapter(&name) else {
        tracing::info!(adapter = %name, "status callback for an unknown adapter");
        return done();
    };
    if pigeon_channels::signs_status_callbacks(adapter) {
        tracing::warn!(
            adapter = adapter.name,
            "signed status callback without its phone"
        );
        return StatusCode::FORBIDDEN.into_response();
    }
    match pigeon_channels::parse_status_callback(adapter, &cb.params) {
        Some((provider_id, report)) => {
            let target = ReportTarget::UserAdapter(user.id, adapter.name);
            match inbound::report(&app, target, &provider_id, report).await {
                Ok(moved) => tracing::info!(
                    adapter = adapter.name,
                    changed = moved.is_some(),
                    "delivery report"
                ),
                Err(e) => tracing::error!(error = %e, "delivery report not applied"),
            }
        }
        None => tracing::info!(adapter = adapter.name, "status callback not understood"),
    }
    done()
}

/// A delivery report for one phone (the URL Pigeon gives its channels): checked against the
/// phone's provider signature where the provider signs, then matched among that phone's sends.
async fn phone_status(
    State(app): State<AppState>,
    Path((name, id_phone)): Path<(String, String)>,
    cb: Callback,
) -> Response {
    let (Some(adapter), Some(phone)) = (adapter(&name), phone(&app, &cb.user, &id_phone).await)
    else {
        tracing::info!(adapter = %name, "status callback for an unknown adapter or phone");
        return done();
    };
    if pigeon_channels::find(&phone.adapter).is_none_or(|a| a.name != adapter.name) {
        tracing::info!(
            adapter = adapter.name,
            phone = phone.id,
            "status callback for another adapter"
        );
        return done();
    }
    let data = app
        .key
        .open(&phone.adapter_data_sealed)
        .ok()
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default();
    let form: Vec<(String, String)> = if cb.is_form {
        form_urlencoded::parse(&cb.body).into_owned().collect()
    } else {
        Vec::new()
    };
    let url = format!("{}{}", app.public_base, cb.target);
    if let Err(e) =
        pigeon_channels::verify_status_callback(adapter, &data, &url, &cb.headers, &form)
    {
        tracing::warn!(adapter = adapter.name, phone = phone.id, error = %e, "status callback refused");
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some((provider_id, report)) = pigeon_channels::parse_status_callback(adapter, &cb.params)
    else {
        tracing::info!(adapter = adapter.name, "status callback not understood");
        return done();
    };
    match inbound::report(&app, ReportTarget::Phone(phone.id), &provider_id, report).await {
        Ok(moved) => tracing::info!(
            adapter = adapter.name,
            changed = moved.is_some(),
            "delivery report"
        ),
        Err(e) => tracing::error!(error = %e, "delivery report not applied"),
    }
    done()
}

async fn reception(
    State(app): State<AppState>,
    Path((name, id_phone)): Path<(String, String)>,
    cb: Callback,
) -> Response {
    let user = &cb.user;
    let (Some(adapter), Some(phone)) = (adapter(&name), phone(&app, user, &id_phone).await) else {
        tracing::info!(adapter = %name, "reception callback for an unknown adapter or phone");
        return done();
    };
    let same_adapter =
        pigeon_channels::find(&phone.adapter).is_some_and(|a| a.name == adapter.name);
    if !same_adapter || !adapter.capabilities.reception {
        tracing::info!(
            adapter = adapter.name,
            phone = phone.id,
            "reception callback refused for this phone"
        );
        return done();
    }
    match pigeon_channels::parse_reception_callback(adapter, &cb.headers, &cb.params, &cb.body) {
        Ok(sms) => {
            if let Err(e) = receive(&app, &phone, &sms).await {
                tracing::error!(error = %e, "inbound SMS not stored");
            }
        }
        Err(e) => {
            tracing::info!(adapter = adapter.name, error = %e, "reception callback not understood")
        }
    }
    done()
}

async fn receive(
    app: &App,
    phone: &Phone,
    sms: &Inbound,
) -> Result<(), crate::services::ServiceError> {
    inbound::receive(app, phone.id, sms).await.map(|_| ())
}

/// RaspiSMS requires `uid`, `start` and `origin` (dates strictly `Y-m-d H:i:s`), `end` optional.
async fn inbound_call(
    State(app): State<AppState>,
    Path(id_phone): Path<String>,
    cb: Callback,
) -> Response {
    let user = &cb.user;
    let Some(phone) = phone(&app, user, &id_phone).await else {
        return done();
    };
    if !pigeon_channels::find(&phone.adapter).is_some_and(|a| a.capabilities.inbound_calls) {
        return done();
    }
    let tz = accounts::settings(&app, user.id)
        .await
        .map(|s| s.time_zone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let date = |name: &str| cb.param(name).and_then(|v| time::parse_local(v, &tz).ok());
    let (Some(uid), Some(start), Some(origin)) =
        (cb.param("uid"), date("start"), cb.param("origin"))
    else {
        tracing::info!(
            phone = phone.id,
            "inbound call callback without uid, start or origin"
        );
        return done();
    };
    if let Err(e) = inbound::call(&app, &phone, uid, start, date("end"), origin).await {
        tracing::error!(error = %e, "inbound call not stored");
    }
    done()
}

async fn end_call(
    State(app): State<AppState>,
    Path(id_phone): Path<String>,
    cb: Callback,
) -> Response {
    let user = &cb.user;
    let Some(phone) = phone(&app, user, &id_phone).await else {
        return done();
    };
    let tz = accounts::settings(&app, user.id)
        .await
        .map(|s| s.time_zone())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let end = cb
        .param("end")
        .and_then(|v| time::parse_local(v, &tz).ok())
        .unwrap_or_else(Ts::now);
    if let Some(uid) = cb.param("uid")
        && let Err(e) = inbound::end_call(&app, &phone, uid, end).await
    {
        tracing::info!(error = %e, phone = phone.id, "end of call not recorded");
    }
    done()
}
