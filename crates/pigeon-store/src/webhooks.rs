//! Webhooks: a URL that receives one type of event, with a secret for signing.

use crate::{Page, Result, Store, Ts, found};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub url: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub secret_sealed: String,
    pub failing_since: Option<i64>,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, url, type, secret_sealed, failing_since, disabled_at, created_at, updated_at \
             FROM webhooks",
            $tail
        )
    };
}

pub async fn create(
    store: &Store,
    user_id: i64,
    url: &str,
    kind: &str,
    secret_sealed: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO webhooks (user_id, url, type, secret_sealed, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(url)
    .bind(kind)
    .bind(secret_sealed)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?)
}

/// Updates the given fields; `enable` re-enables a disabled webhook (and forgets its failures).
pub async fn update(
    store: &Store,
    user_id: i64,
    id: i64,
    url: Option<&str>,
    kind: Option<&str>,
    enable: bool,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE webhooks SET url = COALESCE($1, url), type = COALESCE($2, type), updated_at = $3, \
         disabled_at = CASE WHEN $6 THEN NULL ELSE disabled_at END, \
         failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END \
         WHERE id = $4 AND user_id = $5",
    )
    .bind(url)
    .bind(kind)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .bind(enable)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned("webhooks", user_id, id).await
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<Webhook>> {
    store
        .page(select!(" WHERE user_id = $1"), user_id, page)
        .await
}

pub async fn get(store: &Store, user_id: i64, id: i64) -> Result<Option<Webhook>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// A webhook whoever owns it (for the delivery worker, which acts for the owner).
pub async fn get_any(store: &Store, id: i64) -> Result<Option<Webhook>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.r())
        .await?)
}

/// The user's enabled webhooks of one type: where an event of that type goes.
pub async fn subscribed(store: &Store, user_id: i64, kind: &str) -> Result<Vec<Webhook>> {
    Ok(sqlx::query_as(select!(
        " WHERE user_id = $1 AND type = $2 AND disabled_at IS NULL ORDER BY id"
    ))
    .bind(user_id)
    .bind(kind)
    .fetch_all(store.r())
    .await?)
}
