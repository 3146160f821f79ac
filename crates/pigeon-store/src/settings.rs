//! Per-user settings: only values that differ from the defaults are stored.

use std::collections::HashMap;

use crate::{Result, Store};

pub async fn all(store: &Store, user_id: i64) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, value FROM settings WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(store.r())
            .await?;
    Ok(rows.into_iter().collect())
}

pub async fn set(store: &Store, user_id: i64, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (user_id, name, value) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value",
    )
    .bind(user_id)
    .bind(name)
    .bind(value)
    .execute(store.w())
    .await?;
    Ok(())
}
