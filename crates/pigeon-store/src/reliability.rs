//! The phone reliability check: failure and no-news rates of each phone over a period.

use crate::group::execute;
use crate::outbox::{self, NewDelivery};
use crate::{Result, Store, Ts};

/// Sent messages of a phone between `from` and `to`, after its last alert of `kind`
/// (`failed` or `unknown`): (total, unreliable).
pub async fn counts(
    store: &Store,
    phone_id: i64,
    kind: &str,
    from: Ts,
    to: Ts,
) -> Result<(i64, i64)> {
    let (total, unreliable): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(CASE WHEN ($2 = 'failed' AND status IN ('failed', 'undelivered', 'expired')) \
                                  OR ($2 = 'unknown' AND status = 'sent') THEN 1 ELSE 0 END) \
         FROM messages WHERE phone_id = $1 AND direction = 'outbound' \
           AND status IN ('sent', 'delivered', 'undelivered', 'failed', 'expired') \
           AND at >= $3 AND at <= $4 \
           AND at > COALESCE((SELECT MAX(created_at) FROM phone_reliability_history \
                              WHERE phone_id = $1 AND type = $2), 0)",
    )
    .bind(phone_id)
    .bind(kind)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(store.r())
    .await?;
    Ok((total, unreliable.unwrap_or(0)))
}

/// Records an alert, with the webhook deliveries it causes.
pub async fn record_alert(
    store: &Store,
    user_id: i64,
    phone_id: i64,
    kind: &str,
    at: Ts,
    deliveries: &[NewDelivery],
) -> Result<()> {
    let (kind, deliveries) = (kind.to_string(), deliveries.to_vec());
    store
        .grouped(move |conn| {
            execute(
                conn,
                "INSERT INTO phone_reliability_history (user_id, phone_id, type, created_at) VALUES ($1, $2, $3, $4)",
                &[&user_id, &phone_id, &kind, &at.0],
            )?;
            outbox::insert(conn, &deliveries, at.0)
        })
        .await
}
