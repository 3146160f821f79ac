//! Sender names an account may send as.

use crate::{Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Sender {
    pub id: i64,
    pub user_id: i64,
    pub sender: String,
    pub description: String,
    pub reason: String,
    pub created_at: i64,
}

const SELECT: &str = "SELECT id, user_id, sender, description, reason, created_at FROM senders";

pub async fn all(store: &Store, user_id: i64) -> Result<Vec<Sender>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE user_id = $1 ORDER BY id"
    )))
    .bind(user_id)
    .fetch_all(store.r())
    .await?)
}

pub async fn get(store: &Store, user_id: i64, sender: &str) -> Result<Option<Sender>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE user_id = $1 AND sender = $2"
    )))
    .bind(user_id)
    .bind(sender)
    .fetch_optional(store.r())
    .await?)
}

/// Adds a sender; a name the account already has is a conflict.
pub async fn create(
    store: &Store,
    user_id: i64,
    sender: &str,
    description: &str,
    reason: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO senders (user_id, sender, description, reason, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(sender)
    .bind(description)
    .bind(reason)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?)
}
