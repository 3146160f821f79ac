//! The webhook outbox: deliveries written in the transaction of the change that caused them
//! (so nothing committed is forgotten, and nothing is sent that was not committed), claimed
//! with a lease by the delivery worker, retried, and recorded attempt by attempt.

use rusqlite::Connection;

use crate::group::{execute, rows};
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

macro_rules! delivery_columns {
    () => {
        "id, user_id, webhook_id, endpoint, secret_sealed, kind, url, content_type, body, event_id, \
         headers, method, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at"
    };
}

macro_rules! select {
    ($tail:literal) => {
        concat!("SELECT ", delivery_columns!(), " FROM deliveries", $tail)
    };
}

impl Delivery {
    /// A row of [`delivery_columns`], in their order.
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
        Ok(Delivery {
            id: r.get(0)?,
            user_id: r.get(1)?,
            webhook_id: r.get(2)?,
            endpoint: r.get(3)?,
            secret_sealed: r.get(4)?,
            kind: r.get(5)?,
            url: r.get(6)?,
            content_type: r.get(7)?,
            body: r.get(8)?,
            event_id: r.get(9)?,
            headers: r.get(10)?,
            method: r.get(11)?,
            status: r.get(12)?,
            attempts: r.get(13)?,
            next_attempt_at: r.get(14)?,
            last_status: r.get(15)?,
            last_error: r.get(16)?,
            created_at: r.get(17)?,
            updated_at: r.get(18)?,
        })
    }
}

/// Writes deliveries inside the caller's transaction.
pub(crate) fn insert(conn: &Connection, deliveries: &[NewDelivery], now: i64) -> Result<()> {
    for d in deliveries {
        execute(
            conn,
            "INSERT INTO deliveries (user_id, webhook_id, endpoint, secret_sealed, kind, url, content_type, body, \
             event_id, headers, method, status, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $9, $10, $3, $4, $5, $6, $7, $11, $12, 'pending', $8, $8, $8)",
            &[
                &d.user_id,
                &d.webhook_id,
                &d.kind,
                &d.url,
                &d.content_type,
                &d.body,
                &d.event_id,
                &now,
                &d.endpoint,
                &d.secret_sealed,
                &d.headers,
                &d.method,
            ],
        )?;
    }
    Ok(())
}

/// Writes deliveries on their own (events that change nothing else).
pub async fn enqueue(store: &Store, deliveries: &[NewDelivery]) -> Result<()> {
    let deliveries = deliveries.to_vec();
    store
        .grouped(move |conn| insert(conn, &deliveries, Ts::now().0))
        .await
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

/// Endpoints with deliveries due now (deliveries of disabled webhooks wait). The endpoints with
/// pending deliveries are found by skipping along the index from one to the next, so a long
/// backlog of deliveries due costs no more than a short one (a disabled webhook's backlog is
/// still read through).
pub async fn due_endpoints(store: &Store, now: Ts) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE pending(endpoint) AS ( \
           SELECT (SELECT MIN(endpoint) FROM deliveries WHERE status = 'pending') \
           UNION ALL SELECT (SELECT MIN(endpoint) FROM deliveries WHERE status = 'pending' AND endpoint > p.endpoint) \
           FROM pending p WHERE p.endpoint IS NOT NULL) \
         SELECT p.endpoint FROM pending p WHERE p.endpoint IS NOT NULL AND EXISTS ( \
           SELECT 1 FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
           WHERE d.status = 'pending' AND d.endpoint = p.endpoint AND d.next_attempt_at <= $1 \
           AND w.disabled_at IS NULL)",
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
    let endpoint = endpoint.to_string();
    let sql = concat!(
        "UPDATE deliveries SET status = 'sending', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
         WHERE id IN (SELECT d.id FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.endpoint = $3 AND d.status = 'pending' AND d.next_attempt_at <= $2 AND w.disabled_at IS NULL \
         ORDER BY d.next_attempt_at, d.id LIMIT $4) RETURNING ",
        delivery_columns!()
    );
    let mut claimed = store
        .grouped(move |conn| {
            rows(
                conn,
                sql,
                &[&lease_until.0, &now.0, &endpoint, &limit],
                Delivery::read,
            )
        })
        .await?;
    claimed.sort_by_key(|d| d.id);
    Ok(claimed)
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
        .grouped(move |conn| record_in(conn, &delivery, &a, disable_after_ms))
        .await
}

fn record_in(
    conn: &Connection,
    delivery: &Delivery,
    a: &Attempt,
    disable_after_ms: i64,
) -> Result<bool> {
    let now = Ts::now().0;
    execute(
        conn,
        "INSERT INTO delivery_attempts (delivery_id, at, status_code, duration_ms, response_body, error) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &delivery.id,
            &a.at.0,
            &a.status_code,
            &a.duration_ms,
            &a.response_body,
            &a.error,
        ],
    )?;
    let (status, next) = match a.outcome {
        Outcome::Succeeded => ("succeeded", delivery.next_attempt_at),
        Outcome::Retry(at) => ("pending", at.0),
        Outcome::Failed => ("failed", delivery.next_attempt_at),
    };
    execute(
        conn,
        "UPDATE deliveries SET status = $1, next_attempt_at = $2, lease_until = NULL, last_status = $3, \
         last_error = $4, updated_at = $5 WHERE id = $6 AND status = 'sending'",
        &[&status, &next, &a.status_code, &a.error, &now, &delivery.id],
    )?;
    if a.outcome == Outcome::Succeeded {
        execute(
            conn,
            "UPDATE webhooks SET failing_since = NULL WHERE id = $1",
            &[&delivery.webhook_id],
        )?;
        return Ok(false);
    }
    execute(
        conn,
        "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
        &[&a.at.0, &delivery.webhook_id],
    )?;
    let disabled = execute(
        conn,
        "UPDATE webhooks SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL \
         AND failing_since <= $3",
        &[&now, &delivery.webhook_id, &(now - disable_after_ms)],
    )?;
    Ok(disabled > 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn delivery(user_id: i64, webhook_id: Option<i64>, endpoint: &str) -> NewDelivery {
        NewDelivery {
            user_id,
            webhook_id,
            endpoint: endpoint.into(),
            secret_sealed: String::new(),
            kind: "test".into(),
            url: "http://127.0.0.1:9/".into(),
            content_type: "application/json".into(),
            body: "{}".into(),
            event_id: "evt".into(),
            headers: None,
            method: "POST",
        }
    }

    /// Endpoints with a delivery due are found however many pending deliveries there are;
    /// one whose deliveries are all later, done, or of a disabled webhook is not.
    #[tokio::test]
    async fn due_endpoints_are_those_with_a_delivery_due_now() {
        let (_dir, store) = testing::store().await;
        let user = testing::user(&store, "a@x").await;
        let live = crate::webhooks::create(&store, user, "http://127.0.0.1:9/", "t", "s")
            .await
            .expect("webhook");
        let off = crate::webhooks::create(&store, user, "http://127.0.0.1:9/", "t", "s")
            .await
            .expect("webhook");
        let (live_ep, off_ep) = (endpoint_of_webhook(live), endpoint_of_webhook(off));
        let at = |t: i64, ds: Vec<NewDelivery>| {
            store.grouped(move |conn: &Connection| insert(conn, &ds, t))
        };
        at(100, vec![delivery(user, Some(live), &live_ep); 50])
            .await
            .expect("live");
        at(100, vec![delivery(user, Some(off), &off_ep)])
            .await
            .expect("off");
        at(100, vec![delivery(user, None, "url:b.example")])
            .await
            .expect("url b");
        at(500, vec![delivery(user, None, "url:c.example")])
            .await
            .expect("url c, later");
        at(100, vec![delivery(user, None, "url:d.example")])
            .await
            .expect("url d");
        sqlx::query("UPDATE deliveries SET status = 'succeeded' WHERE endpoint = 'url:d.example'")
            .execute(store.w())
            .await
            .expect("done");
        sqlx::query("UPDATE webhooks SET disabled_at = 1 WHERE id = $1")
            .bind(off)
            .execute(store.w())
            .await
            .expect("disable");

        let due = |at| {
            let store = store.clone();
            async move {
                let mut due = due_endpoints(&store, Ts(at)).await.expect("due");
                due.sort();
                due
            }
        };
        assert_eq!(
            due(200).await,
            vec!["url:b.example".to_string(), live_ep.clone()]
        );
        assert_eq!(
            due(500).await,
            vec!["url:b.example".to_string(), "url:c.example".into(), live_ep]
        );
    }
}
