//! `GET /api/usage/`, `GET /api/stats/sms-status/`, `GET /api/invalid_number/[{page}/]`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde_json::{Map, Value, json};

use super::envelope::{ApiError, Reply};
use super::render::sended_status;
use super::request::{RaspiRequest, parse_id};
use crate::app::AppState;
use crate::services::stats;

pub async fn usage(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let counts = stats::usage(
        &app,
        user.id,
        req.query_text("start"),
        req.query_text("end"),
        req.query_text("tag"),
    )
    .await?;
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let volumes: Map<String, Value> = counts
        .into_iter()
        .map(|(phone, n)| (phone.to_string(), json!(n)))
        .collect();
    Ok(Reply::new(
        json!({ "total": total, "phones_volumes": volumes }),
    ))
}

pub async fn sms_status(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let (Some(start), Some(end)) = (req.query_text("start"), req.query_text("end")) else {
        return Err(ApiError::missing("start and end date are required."));
    };
    let phone = match req.query_text("id_phone").map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(parse_id("id_phone", id)?),
    };
    // Several internal states show as one RaspiSMS status, so counts are merged after mapping.
    let mut merged: BTreeMap<(String, i64, &str), i64> = BTreeMap::new();
    for row in stats::by_day(&app, user.id, start, end, phone).await? {
        *merged
            .entry((row.day, row.phone_id, sended_status(&row.status)))
            .or_default() += row.count;
    }
    let rows: Vec<Value> = merged
        .into_iter()
        .map(|((day, phone, status), nb)| json!({ "at_ymd": day, "id_phone": phone, "status": status, "nb": nb }))
        .collect();
    Ok(Reply::new(rows))
}

pub async fn invalid_numbers_first(
    State(app): State<AppState>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    invalid_numbers(app, req, Some(0)).await
}

pub async fn invalid_numbers_page(
    State(app): State<AppState>,
    Path(page): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    invalid_numbers(app, req, page.parse::<i64>().ok().filter(|p| *p >= 0)).await
}

/// Destinations of the caller's messages with high failure rates (RaspiSMS lists every
/// user's; Pigeon only the caller's).
async fn invalid_numbers(
    app: AppState,
    req: RaspiRequest,
    page: Option<i64>,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let page = page.ok_or_else(|| ApiError::invalid("page must be a positive integer."))?;
    let names = ["volume", "percent_failed", "percent_unknown"];
    let given: Vec<Option<&str>> = names.iter().map(|n| req.query_text(n)).collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&given)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::missing(missing.join(", ")));
    }
    let number = |i: usize| -> Result<f64, ApiError> {
        given[i]
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ApiError::invalid(format!("{} must be a positive number.", names[i])))
    };
    let (volume, failed, unknown) = (number(0)?, number(1)?, number(2)?);
    let rows =
        stats::invalid_numbers(&app, user.id, volume.ceil() as i64, failed, unknown, page).await?;
    let round = |n: i64, total: i64| ((n as f64 / total.max(1) as f64) * 100.0).round() / 100.0;
    let response: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "destination": r.destination,
                "total_sms_sent": r.total,
                "failed_percentage": round(r.failed, r.total),
                "unknown_percentage": round(r.unknown, r.total),
            })
        })
        .collect();
    // The links repeat the filters, but not the API key.
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            names
                .iter()
                .zip(&given)
                .map(|(n, v)| (*n, v.unwrap_or_default())),
        )
        .finish();
    let link = |p: i64| format!("{}/api/invalid_number/{p}/?{query}", app.public_base);
    let next = (response.len() as i64 == pigeon_store::PAGE_SIZE).then(|| link(page + 1));
    let prev = (page > 0).then(|| link(page - 1));
    Ok(Reply {
        response: Value::Array(response),
        next,
        prev,
    })
}
