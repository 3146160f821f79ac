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
    pub created_at: i64,
    pub updated_at: i64,
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

pub async fn update(
    store: &Store,
    user_id: i64,
    id: i64,
    url: Option<&str>,
    kind: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE webhooks SET url = COALESCE($1, url), type = COALESCE($2, type), updated_at = $3 \
         WHERE id = $4 AND user_id = $5",
    )
    .bind(url)
    .bind(kind)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned("webhooks", user_id, id).await
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<Webhook>> {
    store
        .page(
            "SELECT id, user_id, url, type, secret_sealed, created_at, updated_at FROM webhooks WHERE user_id = $1",
            user_id,
            page,
        )
        .await
}
