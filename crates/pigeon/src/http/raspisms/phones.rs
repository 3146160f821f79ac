//! Phones: `POST /api/phone/`, `POST /api/phone/{id}/`, `POST /api/phone/{id}/status/`,
//! `POST /api/phone/{id}/status/force/`, `DELETE /api/phone/{id}/`.

use axum::extract::{Path, State};

use super::envelope::{ApiError, Code, Reply};
use super::form::{Field, Params};
use super::request::{RaspiRequest, object_param, parse_id, text_param};
use crate::app::AppState;
use crate::services::ServiceError;
use crate::services::phones::{self, PhoneInput};

pub async fn create(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let input = phone_input(&req.body)?;
    let id = phones::create(&app, user.id, input)
        .await
        .map_err(|e| ApiError::from_service(e, Code::CannotCreate))?;
    Ok(Reply::new(id))
}

pub async fn update(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = phone_id(&id)?;
    let input = phone_input(&req.body)?;
    phones::update(&app, user.id, id, input)
        .await
        .map_err(update_error)?;
    Ok(Reply::new(true))
}

pub async fn check_status(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let status = phones::check_status(&app, user.id, phone_id(&id)?)
        .await
        .map_err(update_error)?;
    Ok(Reply::new(status))
}

/// RaspiSMS reads the new status from `status` (its docblock says `new_status`; both work).
pub async fn force_status(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = phone_id(&id)?;
    let status = req
        .body_text("status")
        .or_else(|| req.body_text("new_status"))
        .unwrap_or_default()
        .to_string();
    phones::force_status(&app, user.id, id, &status)
        .await
        .map_err(update_error)?;
    Ok(Reply::new(status))
}

pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = parse_id("id", &id).map_err(|_| ApiError::new(Code::CannotDelete, ""))?;
    phones::delete(&app, user.id, id)
        .await
        .map_err(|e| ApiError::from_service(e, Code::CannotDelete))?;
    Ok(Reply::new(true))
}

fn phone_id(id: &str) -> Result<i64, ApiError> {
    parse_id("id", id).map_err(|_| ApiError::new(Code::CannotUpdate, "No phone with this id."))
}

fn update_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::NotFound => ApiError::new(Code::CannotUpdate, "No phone with this id."),
        other => ApiError::from_service(other, Code::CannotUpdate),
    }
}

fn phone_input(body: &Params) -> Result<PhoneInput, ApiError> {
    let text = |name: &str| text_param(body, name);
    let priority = match text("priority")?.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<i64>()
                .map_err(|_| ApiError::invalid("priority must be an integer."))?,
        ),
    };
    Ok(PhoneInput {
        name: text("name")?,
        adapter: text("adapter")?,
        adapter_data: object_param(body, "adapter_data")?,
        priority,
        limits: limits(body.get("limits"))?,
    })
}

/// `limits[i][volume]=…&limits[i][startpoint]=…`.
fn limits(field: Option<&Field>) -> Result<Option<Vec<(i64, String)>>, ApiError> {
    let Some(field) = field else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("limits must be a list of volume and startpoint.");
    if let Field::Text(t) = field {
        return if t.is_empty() {
            Ok(Some(Vec::new()))
        } else {
            Err(bad())
        };
    }
    field
        .values()
        .into_iter()
        .map(|limit| {
            let volume = limit
                .get("volume")
                .and_then(Field::as_text)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(bad)?;
            let start = limit
                .get("startpoint")
                .and_then(Field::as_text)
                .ok_or_else(bad)?;
            Ok((volume, start.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
