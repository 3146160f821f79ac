//! What RaspiSMS users ask for and RaspiSMS lacks: create / update / delete of contacts,
//! groups, conditional groups, phone groups and webhooks, in the same envelope.
//! `POST /api/{type}/` creates (→ id), `POST /api/{type}/{id}/` updates (→ true),
//! `DELETE /api/{type}/{id}/` deletes (→ true).

use axum::extract::{Path, State};
use pigeon_core::settings::php_truthy;
use pigeon_store::groups::{CONTACT_GROUPS, Kind, PHONE_GROUPS};
use serde_json::{Value, json};

use super::envelope::{ApiError, Code, Reply};
use super::form::Params;
use super::request::{RaspiRequest, id_list, object_param, parse_id, text_param};
use crate::app::{App, AppState};
use crate::services::{ServiceError, contacts, groups, webhooks};

/// The resources this module serves, as they appear in the path.
#[derive(Debug, Clone, Copy)]
enum Resource {
    Contact,
    Group,
    ConditionalGroup,
    PhoneGroup,
    Webhook,
}

impl Resource {
    fn from_path(name: &str) -> Option<Resource> {
        Some(match name {
            "contact" => Resource::Contact,
            "group" => Resource::Group,
            "conditional_group" => Resource::ConditionalGroup,
            "phone_group" => Resource::PhoneGroup,
            "webhook" => Resource::Webhook,
            _ => return None,
        })
    }
}

fn resource(name: &str) -> Result<Resource, ApiError> {
    Resource::from_path(name)
        .ok_or_else(|| ApiError::invalid(format!("unknown resource type {name}.")))
}

pub async fn create(
    State(app): State<AppState>,
    Path(kind): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let id = save(&app, user.id, resource(&kind)?, None, &req.body)
        .await?
        .map_err(|e| ApiError::from_service(e, Code::CannotCreate))?;
    Ok(Reply::new(id))
}

pub async fn update(
    State(app): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let kind = resource(&kind)?;
    let id = parse_id("id", &id)
        .map_err(|_| ApiError::new(Code::CannotUpdate, "No entry with this id."))?;
    save(&app, user.id, kind, Some(id), &req.body)
        .await?
        .map_err(|e| ApiError::from_service(e, Code::CannotUpdate))?;
    Ok(Reply::new(true))
}

pub async fn delete(
    State(app): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let kind = resource(&kind)?;
    let id = parse_id("id", &id).map_err(|_| ApiError::new(Code::CannotDelete, ""))?;
    let done = match kind {
        Resource::Contact => contacts::delete(&app, user.id, id).await,
        Resource::Group => groups::delete(&app, CONTACT_GROUPS, user.id, id).await,
        Resource::PhoneGroup => groups::delete(&app, PHONE_GROUPS, user.id, id).await,
        Resource::ConditionalGroup => contacts::delete_conditional_group(&app, user.id, id).await,
        Resource::Webhook => webhooks::delete(&app, user.id, id).await,
    };
    done.map_err(|e| ApiError::from_service(e, Code::CannotDelete))?;
    Ok(Reply::new(true))
}

/// Creates (`id` = None, → the new id) or updates; parameter errors come out first, service
/// errors second so the caller picks the code.
async fn save(
    app: &App,
    user: i64,
    kind: Resource,
    id: Option<i64>,
    body: &Params,
) -> Result<Result<Value, ServiceError>, ApiError> {
    let name = text_param(body, "name")?;
    let name = name.as_deref();
    Ok(match (kind, id) {
        (Resource::Contact, _) => {
            let input = contacts::ContactInput {
                name: name.map(str::to_string),
                number: text_param(body, "number")?,
                data: object_param(body, "data")?.map(Value::Object),
            };
            match id {
                None => contacts::create(app, user, input).await,
                Some(id) => contacts::update(app, user, id, input).await.map(|_| id),
            }
        }
        (Resource::Group | Resource::PhoneGroup, _) => {
            let (group_kind, members) = members(kind, body)?;
            match id {
                None => {
                    groups::create(
                        app,
                        group_kind,
                        user,
                        name,
                        members.as_deref().unwrap_or_default(),
                    )
                    .await
                }
                Some(id) => groups::update(app, group_kind, user, id, name, members.as_deref())
                    .await
                    .map(|_| id),
            }
        }
        (Resource::ConditionalGroup, None) => {
            contacts::create_conditional_group(
                app,
                user,
                name,
                text_param(body, "condition")?.as_deref(),
            )
            .await
        }
        (Resource::ConditionalGroup, Some(id)) => {
            let condition = text_param(body, "condition")?;
            contacts::update_conditional_group(app, user, id, name, condition.as_deref())
                .await
                .map(|_| id)
        }
        // The signing secret is shown once, at creation.
        (Resource::Webhook, None) => {
            let (url, kind) = (text_param(body, "url")?, text_param(body, "type")?);
            return Ok(webhooks::create(app, user, url.as_deref(), kind.as_deref())
                .await
                .map(|(id, secret)| json!({ "id": id, "secret": secret })));
        }
        (Resource::Webhook, Some(id)) => {
            let (url, kind) = (text_param(body, "url")?, text_param(body, "type")?);
            let enable = text_param(body, "enabled")?.is_some_and(|v| php_truthy(&v));
            webhooks::update(app, user, id, url.as_deref(), kind.as_deref(), enable)
                .await
                .map(|_| id)
        }
    }
    .map(Value::from))
}

fn members(kind: Resource, body: &Params) -> Result<(Kind, Option<Vec<i64>>), ApiError> {
    let (group_kind, field) = match kind {
        Resource::PhoneGroup => (PHONE_GROUPS, "phones"),
        _ => (CONTACT_GROUPS, "contacts"),
    };
    let list = if body.contains(field) {
        Some(id_list(body, field)?)
    } else {
        None
    };
    Ok((group_kind, list))
}
