//! The phone reliability check (RaspiSMS §5.7): a phone whose sent messages mostly failed, or
//! mostly got no news, over a period raises an alert, and may be disabled.

use pigeon_core::time::Ts;
use pigeon_store::{phones, reliability};

use super::{Result, accounts, events};
use crate::app::App;
use serde_json::json;

/// An alert raised by a check.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub user_id: i64,
    pub phone_id: i64,
    /// `failed` or `unknown`.
    pub kind: &'static str,
    /// Minutes.
    pub period: i64,
    pub total: i64,
    pub unreliable: i64,
    pub rate: f64,
    pub disabled: bool,
}

/// Checks every phone of every active account, per its owner's settings.
pub async fn check(app: &App) -> Result<Vec<Alert>> {
    let now = Ts::now();
    let mut alerts = Vec::new();
    for phone in phones::all_active(&app.store).await? {
        if phone.status == "disabled" {
            continue;
        }
        let settings = accounts::settings(app, phone.user_id).await?;
        for kind in ["failed", "unknown"] {
            let setting = |suffix: &str| {
                settings
                    .get(&format!("phone_reliability_{kind}{suffix}"))
                    .to_string()
            };
            if !settings.is_on(&format!("phone_reliability_{kind}")) {
                continue;
            }
            let number = |suffix: &str| setting(suffix).trim().parse::<f64>().unwrap_or(0.0);
            let (period, grace) = (number("_period") as i64, number("_grace_period") as i64);
            let from = now.minus_millis(period * 60_000);
            let to = now.minus_millis(grace * 60_000);
            let (total, unreliable) =
                reliability::counts(&app.store, phone.id, kind, from, to).await?;
            let rate = if total > 0 {
                unreliable as f64 / total as f64
            } else {
                0.0
            };
            if total == 0
                || (total as f64) < number("_volume")
                || rate < number("_rate_limit") / 100.0
            {
                continue;
            }
            let hooks = events::targets(app, phone.user_id, "phone_reliability").await?;
            let deliveries = hooks.render(&json!({
                "reliability_type": kind,
                "id_phone": phone.id,
                "period": period,
                "total": total,
                "unreliable": unreliable,
                "rate": rate,
            }));
            reliability::record_alert(&app.store, phone.user_id, phone.id, kind, now, &deliveries)
                .await?;
            let disabled = settings.is_on(&format!("phone_reliability_{kind}_auto_disable"));
            if disabled {
                phones::set_status(&app.store, phone.user_id, phone.id, "disabled").await?;
            }
            tracing::warn!(
                phone = phone.id,
                kind,
                total,
                unreliable,
                "phone reliability alert"
            );
            alerts.push(Alert {
                user_id: phone.user_id,
                phone_id: phone.id,
                kind,
                period,
                total,
                unreliable,
                rate,
                disabled,
            });
        }
    }
    Ok(alerts)
}
