//! Quotas (RaspiSMS §5.7): credits for a period, consumed per segment on successful sends,
//! renewed when the period ends if the quota renews itself.

use jiff::Span;
use pigeon_core::time::Ts;
use pigeon_store::quotas::{self, Quota};
use pigeon_store::users;

use super::{Result, ServiceError};
use crate::app::App;

/// What an administrator sets.
#[derive(Debug, Clone)]
pub struct QuotaInput {
    pub credit: i64,
    pub additional: i64,
    /// ISO 8601 duration of a period (`P1M`, `P7D`).
    pub interval: String,
    pub auto_renew: bool,
    pub report_unused: bool,
    pub report_unused_additional: bool,
}

/// A period's length: a positive duration (a zero one would renew forever).
fn span(interval: &str) -> Result<Span> {
    interval
        .parse::<Span>()
        .ok()
        .filter(|span| span.is_positive())
        .ok_or_else(|| {
            ServiceError::Invalid(format!(
                "`{interval}` is not a positive ISO 8601 duration such as P1M or P7D"
            ))
        })
}

fn after(start: Ts, span: Span) -> Result<Ts> {
    let end = start
        .to_timestamp()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
    Ok(Ts::from_timestamp(end.timestamp()))
}

/// Gives an account a quota starting now.
pub async fn set(app: &App, email: &str, q: &QuotaInput) -> Result<()> {
    if q.credit < 0 || q.additional < 0 {
        return Err(ServiceError::Invalid("credits cannot be negative".into()));
    }
    let user = users::by_email(&app.store, email)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let start = Ts::now();
    let quota = Quota {
        id: 0,
        user_id: user.id,
        credit: q.credit,
        additional: q.additional,
        consumed: 0,
        report_unused: q.report_unused,
        report_unused_additional: q.report_unused_additional,
        auto_renew: q.auto_renew,
        renew_interval: q.interval.clone(),
        start_date: start.0,
        expiration_date: after(start, span(&q.interval)?)?.0,
        alerted_level: false,
        alerted_reached: false,
    };
    quotas::set(&app.store, &quota).await?;
    app.recent_quotas.forget(&user.id);
    Ok(())
}

/// Whether the account has a quota (in force or not).
pub async fn exists(app: &App, user_id: i64) -> Result<bool> {
    let read = async { quotas::get(&app.store, user_id).await.map(|q| q.is_some()) };
    Ok(app.recent_quotas.get_or_load(user_id, read).await?)
}

/// Starts the next period of every quota that ended and renews itself; unused credits carry
/// over as additional credits when the quota says so.
pub async fn renew_due(app: &App) -> Result<usize> {
    let now = Ts::now();
    let mut renewed = 0;
    for q in quotas::due_renewals(&app.store, now).await? {
        let Ok(period) = span(&q.renew_interval) else {
            tracing::warn!(
                quota = q.id,
                "quota renew interval is not a duration; not renewed"
            );
            continue;
        };
        let mut start = Ts(q.expiration_date);
        let mut end = after(start, period)?;
        while end <= now {
            start = end;
            end = after(start, period)?;
        }
        let unused_credit = (q.credit - q.consumed).max(0);
        let unused_additional = (q.additional - (q.consumed - q.credit).max(0)).max(0);
        let carried = if q.report_unused { unused_credit } else { 0 }
            + if q.report_unused_additional {
                unused_additional
            } else {
                0
            };
        if quotas::renew(&app.store, &q, start, end, carried).await? {
            renewed += 1;
        }
    }
    Ok(renewed)
}
