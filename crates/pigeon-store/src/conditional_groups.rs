//! Conditional groups: a name and an expression over contact data, validated by the services.

use crate::{Page, Result, Store, Ts, found};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConditionalGroup {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub expression: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, name, expression, created_at, updated_at FROM conditional_groups",
            $tail
        )
    };
}

pub async fn create(store: &Store, user_id: i64, name: &str, expression: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO conditional_groups (user_id, name, expression, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(expression)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?)
}

pub async fn update(
    store: &Store,
    user_id: i64,
    id: i64,
    name: Option<&str>,
    expression: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE conditional_groups SET name = COALESCE($1, name), expression = COALESCE($2, expression), \
         updated_at = $3 WHERE id = $4 AND user_id = $5",
    )
    .bind(name)
    .bind(expression)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned("conditional_groups", user_id, id).await
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<ConditionalGroup>> {
    store
        .page(select!(" WHERE user_id = $1"), user_id, page)
        .await
}

/// The user's conditional groups among `ids`; ids of other users are ignored.
pub async fn by_ids(store: &Store, user_id: i64, ids: &[i64]) -> Result<Vec<ConditionalGroup>> {
    store
        .by_ids(select!(" WHERE user_id = $1"), user_id, ids)
        .await
}
