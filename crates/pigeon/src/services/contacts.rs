//! Contacts and conditional groups.

use pigeon_core::condition::Condition;
use pigeon_core::numbers::parse_e164;
use pigeon_store::{conditional_groups, contacts};
use serde_json::Value;

use super::{Result, ServiceError, conflict_as, optional_name, required_name};
use crate::app::App;

const MAX_DATA_BYTES: usize = 65_536;

/// A contact's fields; `None` means "not given" (kept on update).
#[derive(Debug, Default)]
pub struct ContactInput {
    pub name: Option<String>,
    pub number: Option<String>,
    /// A JSON object.
    pub data: Option<Value>,
}

struct Checked {
    name: Option<String>,
    number: Option<String>,
    data: Option<String>,
}

fn check(input: ContactInput) -> Result<Checked> {
    let name = optional_name(input.name.as_deref(), 100)?.map(str::to_string);
    let number = match input.number {
        Some(raw) => Some(parse_e164(&raw).map_err(|_| {
            ServiceError::Invalid(format!(
                "number : \"{raw}\" is not a valid international phone number."
            ))
        })?),
        None => None,
    };
    let data = match input.data {
        Some(Value::Object(map)) => {
            let text = Value::Object(map).to_string();
            if text.len() > MAX_DATA_BYTES {
                return Err(ServiceError::Invalid(format!(
                    "data must be less than {MAX_DATA_BYTES} bytes."
                )));
            }
            Some(text)
        }
        Some(_) => return Err(ServiceError::Invalid("data must be a JSON object.".into())),
        None => None,
    };
    Ok(Checked { name, number, data })
}

pub async fn create(app: &App, user_id: i64, input: ContactInput) -> Result<i64> {
    if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ServiceError::Missing("name".into()));
    }
    if input.number.is_none() {
        return Err(ServiceError::Missing("number".into()));
    }
    let c = check(input)?;
    contacts::create(
        &app.store,
        user_id,
        c.name.as_deref().unwrap_or_default(),
        c.number.as_deref().unwrap_or_default(),
        c.data.as_deref().unwrap_or("{}"),
    )
    .await
    .map_err(conflict_as(
        "name : This name is already used for another contact.",
    ))
}

pub async fn update(app: &App, user_id: i64, id: i64, input: ContactInput) -> Result<()> {
    let c = check(input)?;
    contacts::update(
        &app.store,
        user_id,
        id,
        c.name.as_deref(),
        c.number.as_deref(),
        c.data.as_deref(),
    )
    .await
    .map_err(conflict_as(
        "name : This name is already used for another contact.",
    ))
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    Ok(contacts::delete(&app.store, user_id, id).await?)
}

fn check_condition(condition: &str) -> Result<()> {
    Condition::parse(condition)
        .map(|_| ())
        .map_err(|e| ServiceError::Invalid(format!("condition : {e}")))
}

pub async fn create_conditional_group(
    app: &App,
    user_id: i64,
    name: Option<&str>,
    condition: Option<&str>,
) -> Result<i64> {
    let name = required_name(name, 100)?;
    let condition = condition
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| ServiceError::Missing("condition".into()))?;
    check_condition(condition)?;
    conditional_groups::create(&app.store, user_id, name, condition)
        .await
        .map_err(conflict_as(
            "name : This name is already used for another conditional group.",
        ))
}

pub async fn update_conditional_group(
    app: &App,
    user_id: i64,
    id: i64,
    name: Option<&str>,
    condition: Option<&str>,
) -> Result<()> {
    let name = optional_name(name, 100)?;
    if let Some(condition) = condition {
        check_condition(condition)?;
    }
    conditional_groups::update(&app.store, user_id, id, name, condition)
        .await
        .map_err(conflict_as(
            "name : This name is already used for another conditional group.",
        ))
}

pub async fn delete_conditional_group(app: &App, user_id: i64, id: i64) -> Result<()> {
    Ok(conditional_groups::delete(&app.store, user_id, id).await?)
}
