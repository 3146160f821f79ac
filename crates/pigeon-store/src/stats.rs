//! Counts over sent messages: usage per phone, statuses over time, numbers that keep failing.
//! Only outbound messages that went through a send attempt count (RaspiSMS's "sended").

use crate::{PAGE_SIZE, Result, Store, Ts};

/// Width of the time buckets the status counts are grouped in; callers fold them into days of
/// the account's time zone (15 minutes divides every real UTC offset).
pub const BUCKET_MS: i64 = 15 * 60 * 1000;

/// Messages sent by each of the user's phones (every phone listed, zero included), between
/// `start` and `end` when given, with a tag matching the SQL `LIKE` pattern when given.
pub async fn usage(
    store: &Store,
    user_id: i64,
    start: Option<Ts>,
    end: Option<Ts>,
    tag_like: Option<&str>,
) -> Result<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT p.id, (SELECT COUNT(*) FROM messages m WHERE m.phone_id = p.id AND m.direction = 'outbound' \
           AND m.status IN ('sent', 'delivered', 'undelivered', 'failed', 'expired') \
           AND ($2 IS NULL OR m.at >= $2) AND ($3 IS NULL OR m.at <= $3) AND ($4 IS NULL OR m.tag LIKE $4)) \
         FROM phones p WHERE p.user_id = $1 ORDER BY p.id",
    )
    .bind(user_id)
    .bind(start.map(|t| t.0))
    .bind(end.map(|t| t.0))
    .bind(tag_like)
    .fetch_all(store.r())
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatusBucket {
    /// Start of the bucket, epoch ms.
    pub bucket: i64,
    pub phone_id: i64,
    pub status: String,
    pub count: i64,
}

/// Sent messages between `start` and `end` grouped by [`BUCKET_MS`] bucket, phone and status.
pub async fn status_buckets(
    store: &Store,
    user_id: i64,
    start: Ts,
    end: Ts,
    phone_id: Option<i64>,
) -> Result<Vec<StatusBucket>> {
    Ok(sqlx::query_as(
        "SELECT (at / $5) * $5 AS bucket, phone_id, status, COUNT(*) AS count FROM messages \
         WHERE user_id = $1 AND direction = 'outbound' AND phone_id IS NOT NULL \
           AND status IN ('sent', 'delivered', 'undelivered', 'failed', 'expired') \
           AND at >= $2 AND at <= $3 AND ($4 IS NULL OR phone_id = $4) \
         GROUP BY bucket, phone_id, status ORDER BY bucket, phone_id, status",
    )
    .bind(user_id)
    .bind(start.0)
    .bind(end.0)
    .bind(phone_id)
    .bind(BUCKET_MS)
    .fetch_all(store.r())
    .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DestinationHealth {
    pub destination: String,
    pub total: i64,
    pub failed: i64,
    pub unknown: i64,
}

/// Destinations of the user with at least `volume` sends, of which at least `failed_ratio`
/// failed and at least `unknown_ratio` never got a final report; one page of 25.
pub async fn invalid_numbers(
    store: &Store,
    user_id: i64,
    volume: i64,
    failed_ratio: f64,
    unknown_ratio: f64,
    page: i64,
) -> Result<Vec<DestinationHealth>> {
    Ok(sqlx::query_as(
        "SELECT destination, total, failed, unknown FROM ( \
           SELECT destination, COUNT(*) AS total, \
             SUM(CASE WHEN status IN ('failed', 'undelivered', 'expired') THEN 1 ELSE 0 END) AS failed, \
             SUM(CASE WHEN status = 'sent' THEN 1 ELSE 0 END) AS unknown \
           FROM messages WHERE user_id = $1 AND direction = 'outbound' AND destination IS NOT NULL \
             AND status IN ('sent', 'delivered', 'undelivered', 'failed', 'expired') \
           GROUP BY destination) AS d \
         WHERE total >= $2 AND failed >= $3 * total AND unknown >= $4 * total \
         ORDER BY destination LIMIT $5 OFFSET $6",
    )
    .bind(user_id)
    .bind(volume)
    .bind(failed_ratio)
    .bind(unknown_ratio)
    .bind(PAGE_SIZE)
    .bind(page.max(0) * PAGE_SIZE)
    .fetch_all(store.r())
    .await?)
}
