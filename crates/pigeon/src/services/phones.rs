//! Phones: creation and update with adapter validation, status checks, limits.

use pigeon_core::time::{self, Ts};
use pigeon_store::phones::{self, Limit, Pending, Phone, PhoneFields};
use serde_json::{Map, Value};

use super::{Result, ServiceError, accounts, check_len, conflict_as};
use crate::app::App;

/// What a client gives to create or update a phone; `None` means "not given".
#[derive(Debug, Default)]
pub struct PhoneInput {
    pub name: Option<String>,
    pub adapter: Option<String>,
    pub adapter_data: Option<Map<String, Value>>,
    pub priority: Option<i64>,
    pub limits: Option<Vec<(i64, String)>>,
}

pub const STATUSES: [&str; 5] = [
    "available",
    "unavailable",
    "no_credit",
    "limit_reached",
    "disabled",
];
const NAME_TAKEN: &str = "This name is already used for another phone.";

pub async fn create(app: &App, user_id: i64, input: PhoneInput) -> Result<i64> {
    let name = input.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(ServiceError::Missing("You must specify phone name.".into()));
    }
    let adapter = input.adapter.as_deref().unwrap_or_default();
    if adapter.is_empty() {
        return Err(ServiceError::Missing(
            "You must specify adapter name.".into(),
        ));
    }
    let data = input.adapter_data.clone().unwrap_or_default();
    let fields = validated(app, name, adapter, &data, &input)?;
    phones::create(&app.store, user_id, &fields)
        .await
        .map_err(conflict_as(NAME_TAKEN))
}

pub async fn update(app: &App, user_id: i64, id: i64, input: PhoneInput) -> Result<()> {
    let current = phones::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or(&current.name)
        .to_string();
    let adapter = input
        .adapter
        .clone()
        .unwrap_or_else(|| current.adapter.clone());
    // Given adapter data replaces the stored object, it is not merged (as RaspiSMS does).
    let data = match &input.adapter_data {
        Some(d) => d.clone(),
        None => stored_data(app, &current)?,
    };
    let mut fields = validated(app, &name, &adapter, &data, &input)?;
    if input.adapter_data.is_none() && input.adapter.is_none() {
        fields.adapter_data_sealed = None;
    }
    phones::update(&app.store, user_id, id, &fields)
        .await
        .map_err(conflict_as(NAME_TAKEN))
}

fn validated(
    app: &App,
    name: &str,
    adapter: &str,
    data: &Map<String, Value>,
    input: &PhoneInput,
) -> Result<PhoneFields> {
    if name.is_empty() {
        return Err(ServiceError::Missing("You must specify phone name.".into()));
    }
    check_len("name", name, 150)?;
    if pigeon_channels::find(adapter).is_some_and(|a| a.name == "agent") {
        return Err(ServiceError::Invalid(
            "adapter. Agent phones are created as devices, through POST /api/v1/device.".into(),
        ));
    }
    let found = pigeon_channels::find(adapter).ok_or_else(|| {
        ServiceError::Invalid(format!("adapter. Adapter \"{adapter}\" does not exists."))
    })?;
    for field in found.fields.iter().filter(|f| f.required) {
        let present = data
            .get(field.name)
            .is_some_and(|v| v.as_str().is_none_or(|s| !s.is_empty()));
        if !present {
            return Err(ServiceError::Missing(format!(
                "You must specify param {} ({}) for this phone.",
                field.name, field.description
            )));
        }
    }
    let limits = match &input.limits {
        Some(limits) => Some(validated_limits(limits)?),
        None => None,
    };
    let sealed = app.key.seal(&Value::Object(data.clone()).to_string())?;
    Ok(PhoneFields {
        name: Some(name.to_string()),
        adapter: Some(found.name.to_string()),
        adapter_data_sealed: Some(sealed),
        priority: input.priority.map(|p| p.max(0)),
        limits,
    })
}

/// Volumes are clamped to at least 1; a start point Pigeon cannot read is an error (RaspiSMS
/// drops such a limit silently, leaving the phone unlimited).
fn validated_limits(limits: &[(i64, String)]) -> Result<Vec<(i64, String)>> {
    limits
        .iter()
        .map(|(volume, start)| {
            time::window_start(start, Ts::now(), &jiff::tz::TimeZone::UTC).map_err(|_| {
                ServiceError::Invalid(format!(
                    "limits : startpoint \"{start}\" is not a relative date such as \"today\", \"-24 hours\" or \"this week midnight\"."
                ))
            })?;
            Ok(((*volume).max(1), start.trim().to_string()))
        })
        .collect()
}

fn stored_data(app: &App, phone: &Phone) -> Result<Map<String, Value>> {
    let text = app.key.open(&phone.adapter_data_sealed)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Ok(Map::new()),
    }
}

/// Re-checks a phone: `limit_reached` when the `phone_limit` setting is on and a limit is used
/// up, otherwise what its adapter reports (`available` for every adapter so far).
pub async fn check_status(app: &App, user_id: i64, id: i64) -> Result<String> {
    let phone = phones::get(&app.store, user_id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if phone.status == "disabled" {
        return Err(ServiceError::State(
            "Phone have been manually disabled, you need to re-enable it manually.".into(),
        ));
    }
    let settings = accounts::settings(app, user_id).await?;
    // Messages still on their way are not sent yet: the re-check is about what was sent.
    let used_up = remaining_volume(app, &phone, &settings, Pending::Before(0))
        .await?
        .is_some_and(|r| r <= 0);
    let status = if settings.is_on("phone_limit") && used_up {
        "limit_reached"
    } else {
        "available"
    };
    phones::set_status(&app.store, user_id, id, status).await?;
    Ok(status.to_string())
}

/// Sends left before the phone's tightest limit, counting `pending` messages too; `None`
/// when it has no limit.
pub async fn remaining_volume(
    app: &App,
    phone: &Phone,
    settings: &accounts::Settings,
    pending: Pending,
) -> Result<Option<i64>> {
    let tz = settings.time_zone();
    let mut remaining: Option<i64> = None;
    for Limit {
        volume, startpoint, ..
    } in phones::limits(&app.store, &[phone.id]).await?
    {
        let Ok(since) = time::window_start(&startpoint, Ts::now(), &tz) else {
            continue;
        };
        let left = volume - phones::used_volume(&app.store, phone.id, since, pending).await?;
        remaining = Some(remaining.map_or(left, |r| r.min(left)));
    }
    Ok(remaining)
}

/// Manually sets a phone `available` or `disabled`.
pub async fn force_status(app: &App, user_id: i64, id: i64, status: &str) -> Result<()> {
    if !matches!(status, "available" | "disabled") {
        return Err(ServiceError::Invalid(
            "status must be one of : available, disabled.".into(),
        ));
    }
    Ok(phones::set_status(&app.store, user_id, id, status).await?)
}

pub async fn delete(app: &App, user_id: i64, id: i64) -> Result<()> {
    phones::delete(&app.store, user_id, id).await?;
    // Its id may be given to the next phone, of another owner; a device behind it goes too.
    app.recent_phone_owners.clear();
    app.recent_devices.clear();
    Ok(())
}
