//! The STOP list: numbers that asked a user not to message them again.

use std::collections::HashSet;

use crate::{Result, Store, Ts};

pub async fn numbers(store: &Store, user_id: i64) -> Result<HashSet<String>> {
    let rows: Vec<String> = sqlx::query_scalar("SELECT number FROM stop_list WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(store.r())
        .await?;
    Ok(rows.into_iter().collect())
}

/// A number on the list, and since when.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Entry {
    pub number: String,
    pub created_at: i64,
}

/// The list, oldest first.
pub async fn entries(store: &Store, user_id: i64) -> Result<Vec<Entry>> {
    Ok(
        sqlx::query_as("SELECT number, created_at FROM stop_list WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(store.r())
            .await?,
    )
}

/// Adds a number; `false` when it was already there.
pub async fn add(store: &Store, user_id: i64, number: &str) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO stop_list (user_id, number, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, number) DO NOTHING",
    )
    .bind(user_id)
    .bind(number)
    .bind(Ts::now().0)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes a number (it opted back in); `false` when it was not there.
pub async fn remove(store: &Store, user_id: i64, number: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM stop_list WHERE user_id = $1 AND number = $2")
        .bind(user_id)
        .bind(number)
        .execute(store.w())
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[tokio::test]
    async fn a_number_is_on_its_owner_s_list_only() {
        let (_dir, store) = testing::store().await;
        let alice = testing::user(&store, "alice@example.com").await;
        let bob = testing::user(&store, "bob@example.com").await;
        assert!(add(&store, alice, "+33612345678").await.expect("add"));
        let listed = |user| numbers(&store, user);
        assert_eq!(
            listed(alice).await.expect("alice"),
            HashSet::from(["+33612345678".to_string()])
        );
        assert!(listed(bob).await.expect("bob").is_empty());
    }
}
