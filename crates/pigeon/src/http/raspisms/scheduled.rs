//! Scheduled SMS: `POST /api/scheduled/`, `DELETE /api/scheduled/{id}/`, `GET /api/send-sms/`,
//! and Pigeon's preview `GET /api/scheduled/{id}/recipients/`.

use axum::extract::{Path, State};
use pigeon_core::recipients::Outcome;
use pigeon_core::settings::php_truthy;
use serde_json::{Value, json};

use super::envelope::{ApiError, Code, Reply};
use super::form::{Field, Params};
use super::request::{RaspiRequest, id_list, parse_id, text_param};
use crate::app::AppState;
use crate::services::ServiceError;
use crate::services::campaigns::{self, CampaignInput, NumberInput};

pub async fn create(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let body = &req.body;
    let mms = body.text("mms").is_some_and(php_truthy);
    let input = CampaignInput {
        text: text_param(body, "text")?,
        at: text_param(body, "at")?,
        numbers: numbers(body)?,
        contacts: id_list(body, "contacts")?,
        groups: id_list(body, "groups")?,
        conditional_groups: id_list(body, "conditional_groups")?,
        id_phone: optional_id(body, "id_phone")?,
        id_phone_group: optional_id(body, "id_phone_group")?,
        flash: body.text("flash").is_some_and(php_truthy),
        mms,
        tag: text_param(body, "tag")?,
        media: req.files_named("medias").cloned().collect(),
        numbers_csv: req
            .files_named("numbers_csv")
            .next()
            .map(|f| f.bytes.clone()),
    };
    let id = campaigns::create(&app, user.id, input)
        .await
        .map_err(|e| ApiError::from_service(e, Code::CannotCreate))?;
    Ok(Reply::new(id))
}

/// An id that may be absent or empty (RaspiSMS then picks a phone itself).
fn optional_id(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match text_param(params, name)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => parse_id(name, id).map(Some),
    }
}

/// `numbers=+33…`, `numbers[]=+33…`, or `numbers[i][number]=…&numbers[i][data]=<JSON>`.
fn numbers(params: &Params) -> Result<Vec<NumberInput>, ApiError> {
    let Some(field) = params.get("numbers") else {
        return Ok(Vec::new());
    };
    field
        .values()
        .into_iter()
        .map(|v| match v {
            Field::Text(number) => Ok(NumberInput {
                number: number.clone(),
                data: None,
            }),
            Field::Map(_) => Ok(NumberInput {
                number: v
                    .get("number")
                    .and_then(Field::as_text)
                    .unwrap_or_default()
                    .to_string(),
                data: match v.get("data") {
                    None => None,
                    Some(Field::Text(d)) => Some(d.clone()),
                    Some(Field::Map(_)) => {
                        return Err(ApiError::invalid(
                            "number data must be a valid json or leave not set.",
                        ));
                    }
                },
            }),
        })
        .collect()
}

pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = parse_id("id", &id).map_err(|_| ApiError::new(Code::CannotDelete, ""))?;
    campaigns::delete(&app, user.id, id)
        .await
        .map_err(|e| ApiError::from_service(e, Code::CannotDelete))?;
    Ok(Reply::new(true))
}

/// The simplest send: `GET /api/send-sms/?to=+33…&text=…[&id_phone=…]`.
pub async fn send_sms(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let to = req
        .query_text("to")
        .and_then(|t| pigeon_core::numbers::parse_e164(t).ok());
    let text = req.query_text("text").filter(|t| php_truthy(t));
    let missing: Vec<&str> = [("to", to.is_none()), ("text", text.is_none())]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::missing(missing.join(" ")));
    }
    let input = CampaignInput {
        text: text.map(str::to_string),
        numbers: to
            .into_iter()
            .map(|number| NumberInput { number, data: None })
            .collect(),
        id_phone: optional_id(&req.query, "id_phone")?,
        ..Default::default()
    };
    // RaspiSMS answers every refusal of this endpoint's create with error 8.
    let id = campaigns::create(&app, user.id, input)
        .await
        .map_err(|e| match e {
            ServiceError::Invalid(detail) => ApiError::new(Code::CannotCreate, detail),
            other => ApiError::from_service(other, Code::CannotCreate),
        })?;
    Ok(Reply::new(id))
}

/// Who a scheduled SMS will reach and with which text, before it is sent.
pub async fn recipients(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = parse_id("id", &id)?;
    let (_, resolved) = campaigns::recipients(&app, user.id, id)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound => ApiError::invalid(format!("no scheduled sms with id {id}.")),
            other => other.into(),
        })?;
    let rows: Vec<Value> = resolved
        .iter()
        .map(|r| {
            let (status, text, reason) = match &r.outcome {
                Outcome::Send(text) => ("send", Some(text.as_str()), None),
                Outcome::Stopped => (
                    "skipped",
                    None,
                    Some("the number is on the STOP list".to_string()),
                ),
                Outcome::Empty => (
                    "skipped",
                    None,
                    Some("the text is empty for this recipient".to_string()),
                ),
                Outcome::TemplateError(e) => {
                    ("skipped", None, Some(format!("the template failed: {e}")))
                }
            };
            json!({
                "number": r.target.number,
                "contact": r.target.metas.get("name").map(|_| &r.target.metas),
                "status": status,
                "text": text,
                "reason": reason,
            })
        })
        .collect();
    Ok(Reply::new(rows))
}
