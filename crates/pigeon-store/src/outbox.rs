//! The webhook outbox: deliveries written in the transaction of the change that caused them
//! (so nothing committed is forgotten, and nothing is sent that was not committed), claimed
//! with a lease by the delivery worker, retried, and recorded attempt by attempt.

use sqlx::SqliteConnection;

use crate::{Page, Result, Store, Ts, found};

/// A delivery to write: the request, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub user_id: i64,
    /// `None` for a notification URL given with a message or a device.
    pub webhook_id: Option<i64>,
    /// What concurrency is bounded per (see [`endpoint_of_webhook`], [`endpoint_of_url`]).
    pub endpoint: String,
    /// The Standard Webhooks secret, sealed; empty for a delivery signed only its dialect's way.
    pub secret_sealed: String,
    pub kind: String,
    pub url: String,
    pub content_type: String,
    pub body: String,
    pub event_id: String,
    /// Extra request headers, as a JSON object (a dialect's own signature).
    pub headers: Option<String>,
    /// `POST`, or `GET` for a callback whose parameters are all in its URL.
    pub method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub user_id: i64,
    pub webhook_id: Option<i64>,
    pub endpoint: String,
    pub secret_sealed: String,
    pub kind: String,
    pub url: String,
    pub content_type: String,
    pub body: String,
    pub event_id: String,
    pub headers: Option<String>,
    pub method: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: i64,
    pub delivery_id: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, webhook_id, endpoint, secret_sealed, kind, url, content_type, body, event_id, \
             headers, method, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at FROM deliveries",
            $tail
        )
    };
}

/// Writes deliveries inside the caller's transaction.
pub(crate) async fn insert(
    tx: &mut SqliteConnection,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<()> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO deliveries (user_id, webhook_id, endpoint, secret_sealed, kind, url, content_type, body, \
             event_id, headers, method, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $9, $10, $3, $4, $5, $6, $7, $11, $12, 'pending', $8, $8, $8)",
        )
        .bind(d.user_id)
        .bind(d.webhook_id)
        .bind(&d.kind)
        .bind(&d.url)
        .bind(&d.content_type)
        .bind(&d.body)
        .bind(&d.event_id)
        .bind(now)
        .bind(&d.endpoint)
        .bind(&d.secret_sealed)
        .bind(d.headers.as_deref())
        .bind(d.method)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Writes deliveries on their own (events that change nothing else).
pub async fn enqueue(store: &Store, deliveries: &[NewDelivery]) -> Result<()> {
    let mut tx = store.w().begin().await?;
    insert(&mut tx, deliveries, Ts::now().0).await?;
    tx.commit().await?;
    Ok(())
}

pub fn endpoint_of_webhook(id: i64) -> String {
    format!("webhook:{id}")
}

/// Notification URLs are bounded per host, so one slow receiver holds only its own slots.
pub fn endpoint_of_url(url: &str) -> String {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(url);
    format!("url:{}", host.to_ascii_lowercase())
}

/// Endpoints with deliveries due now (deliveries of disabled webhooks wait).
pub async fn due_endpoints(store: &Store, now: Ts) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT d.endpoint FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND w.disabled_at IS NULL",
    )
    .bind(now.0)
    .fetch_all(store.r())
    .await?)
}

/// Claims up to `limit` due deliveries of one endpoint, oldest first.
pub async fn claim(
    store: &Store,
    endpoint: &str,
    now: Ts,
    lease_until: Ts,
    limit: i64,
) -> Result<Vec<Delivery>> {
    let mut rows: Vec<Delivery> = sqlx::query_as(concat!(
        "UPDATE deliveries SET status = 'sending', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
         WHERE id IN (SELECT d.id FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.endpoint = $3 AND d.status = 'pending' AND d.next_attempt_at <= $2 AND w.disabled_at IS NULL \
         ORDER BY d.next_attempt_at, d.id LIMIT $4) RETURNING ",
        "id, user_id, webhook_id, endpoint, secret_sealed, kind, url, content_type, body, event_id, headers, method, status, \
         attempts, next_attempt_at, last_status, last_error, created_at, updated_at"
    ))
    .bind(lease_until.0)
    .bind(now.0)
    .bind(endpoint)
    .bind(limit)
    .fetch_all(store.w())
    .await?;
    rows.sort_by_key(|d| d.id);
    Ok(rows)
}

/// What one attempt ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Retry(Ts),
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Ts,
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub outcome: Outcome,
}

/// Records an attempt and its outcome; a failure starts (or continues) the webhook's failing
/// streak, and past `disable_after` of failures without a success the webhook is disabled.
/// Returns whether the webhook was disabled by this attempt.
pub async fn record(
    store: &Store,
    delivery: &Delivery,
    a: Attempt,
    disable_after_ms: i64,
) -> Result<bool> {
    let delivery = delivery.clone();
    store
        .grouped(move |tx| {
            Box::pin(async move { record_in(tx, &delivery, &a, disable_after_ms).await })
        })
        .await
}

async fn record_in(
    tx: &mut SqliteConnection,
    delivery: &Delivery,
    a: &Attempt,
    disable_after_ms: i64,
) -> Result<bool> {
    let now = Ts::now().0;
    sqlx::query(
        "INSERT INTO delivery_attempts (delivery_id, at, status_code, duration_ms, response_body, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(delivery.id)
    .bind(a.at.0)
    .bind(a.status_code)
    .bind(a.duration_ms)
    .bind(a.response_body.as_deref())
    .bind(a.error.as_deref())
    .execute(&mut *tx)
    .await?;
    let (status, next) = match a.outcome {
        Outcome::Succeeded => ("succeeded", delivery.next_attempt_at),
        Outcome::Retry(at) => ("pending", at.0),
        Outcome::Failed => ("failed", delivery.next_attempt_at),
    };
    sqlx::query(
        "UPDATE deliveries SET status = $1, next_attempt_at = $2, lease_until = NULL, last_status = $3, \
         last_error = $4, updated_at = $5 WHERE id = $6 AND status = 'sending'",
    )
    .bind(status)
    .bind(next)
    .bind(a.status_code)
    .bind(a.error.as_deref())
    .bind(now)
    .bind(delivery.id)
    .execute(&mut *tx)
    .await?;
    let disabled = if a.outcome == Outcome::Succeeded {
        sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = $1")
            .bind(delivery.webhook_id)
            .execute(&mut *tx)
            .await?;
        false
    } else {
        sqlx::query(
            "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
        )
        .bind(a.at.0)
        .bind(delivery.webhook_id)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE webhooks SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL \
             AND failing_since <= $3",
        )
        .bind(now)
        .bind(delivery.webhook_id)
        .bind(now - disable_after_ms)
        .execute(&mut *tx)
        .await?;
        done.rows_affected() > 0
    };
    Ok(disabled)
}

/// Deliveries whose lease ran out (the server stopped mid-attempt) are due again.
pub async fn reap(store: &Store, now: Ts) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', lease_until = NULL, next_attempt_at = $1, updated_at = $1 \
         WHERE status = 'sending' AND lease_until < $2",
    )
    .bind(Ts::now().0)
    .bind(now.0)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected())
}

/// One page of a webhook's deliveries (the user's only), oldest first.
pub async fn page(
    store: &Store,
    user_id: i64,
    webhook_id: i64,
    page: Page,
) -> Result<Vec<Delivery>> {
    store
        .page_with(
            select!(" WHERE user_id = $1 AND webhook_id = $4"),
            user_id,
            page,
            webhook_id,
        )
        .await
}

/// One page of a webhook's attempts (the user's only), oldest first.
pub async fn attempts(
    store: &Store,
    user_id: i64,
    webhook_id: i64,
    page: Page,
) -> Result<Vec<AttemptRow>> {
    store
        .page_with(
            "SELECT a.id, a.delivery_id, a.at, a.status_code, a.duration_ms, a.response_body, a.error \
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE d.user_id = $1 AND d.webhook_id = $4",
            user_id,
            page,
            webhook_id,
        )
        .await
}

/// Sends one delivery of the user's webhook again, whatever became of it.
pub async fn redeliver(
    store: &Store,
    user_id: i64,
    webhook_id: i64,
    delivery_id: i64,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, lease_until = NULL, updated_at = $1 \
         WHERE id = $2 AND user_id = $3 AND webhook_id = $4 AND status <> 'sending'",
    )
    .bind(Ts::now().0)
    .bind(delivery_id)
    .bind(user_id)
    .bind(webhook_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

/// Sends again every failed delivery of a webhook created since `since`; how many.
pub async fn redeliver_failed(
    store: &Store,
    user_id: i64,
    webhook_id: i64,
    since: Ts,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
         WHERE user_id = $2 AND webhook_id = $3 AND status = 'failed' AND created_at >= $4",
    )
    .bind(Ts::now().0)
    .bind(user_id)
    .bind(webhook_id)
    .bind(since.0)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected())
}
