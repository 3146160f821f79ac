//! Usage and delivery statistics over sent messages.

use std::collections::BTreeMap;

use pigeon_core::time::{self, Ts};
use pigeon_store::{phones, stats};

use super::{Result, ServiceError, accounts};
use crate::app::App;

/// Messages sent per phone of the user (`(phone id, count)`), filtered by time and tag.
pub async fn usage(
    app: &App,
    user_id: i64,
    start: Option<&str>,
    end: Option<&str>,
    tag: Option<&str>,
) -> Result<Vec<(i64, i64)>> {
    let tz = accounts::settings(app, user_id).await?.time_zone();
    let parse = |name: &str, value: Option<&str>| -> Result<Option<Ts>> {
        value
            .map(|v| {
                time::parse_local(v, &tz).map_err(|_| {
                    ServiceError::Invalid(format!(
                        "{name} must be a date of format \"Y-m-d H:i:s\"."
                    ))
                })
            })
            .transpose()
    };
    let start = parse("start", start)?;
    let end = parse("end", end)?;
    Ok(stats::usage(&app.store, user_id, start, end, tag).await?)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayStatus {
    pub day: String,
    pub phone_id: i64,
    pub status: String,
    pub count: i64,
}

/// Sent messages per day (in the account's time zone), phone and status.
pub async fn by_day(
    app: &App,
    user_id: i64,
    start: &str,
    end: &str,
    phone_id: Option<i64>,
) -> Result<Vec<DayStatus>> {
    let tz = accounts::settings(app, user_id).await?.time_zone();
    let now = Ts::now();
    let start = time::parse_lenient(start, &tz, now)
        .map_err(|_| ServiceError::Invalid("start must be a valid date.".into()))?;
    let end = time::parse_lenient(end, &tz, now)
        .map_err(|_| ServiceError::Invalid("end must be a valid date.".into()))?;
    if let Some(id) = phone_id
        && phones::get(&app.store, user_id, id).await?.is_none()
    {
        return Err(ServiceError::Invalid(format!(
            "phone with id {id} does not exists."
        )));
    }
    let mut days: BTreeMap<(String, i64, String), i64> = BTreeMap::new();
    for b in stats::status_buckets(&app.store, user_id, start, end, phone_id).await? {
        *days
            .entry((time::format_day(Ts(b.bucket), &tz), b.phone_id, b.status))
            .or_default() += b.count;
    }
    Ok(days
        .into_iter()
        .map(|((day, phone_id, status), count)| DayStatus {
            day,
            phone_id,
            status,
            count,
        })
        .collect())
}

/// Destinations that keep failing; ratios are given in percent, as RaspiSMS takes them.
pub async fn invalid_numbers(
    app: &App,
    user_id: i64,
    volume: i64,
    percent_failed: f64,
    percent_unknown: f64,
    page: i64,
) -> Result<Vec<stats::DestinationHealth>> {
    Ok(stats::invalid_numbers(
        &app.store,
        user_id,
        volume,
        percent_failed / 100.0,
        percent_unknown / 100.0,
        page,
    )
    .await?)
}
