//! Media files (MMS attachments), stored under the data dir; rows keep the relative path.

use crate::{Page, Result, Store, Ts, placeholders};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Media {
    pub id: i64,
    pub user_id: i64,
    pub path: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, path, created_at, updated_at FROM media",
            $tail
        )
    };
}

pub async fn create(store: &Store, user_id: i64, path: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO media (user_id, path, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(user_id)
    .bind(path)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?)
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<Media>> {
    store
        .page(select!(" WHERE user_id = $1"), user_id, page)
        .await
}

pub async fn by_ids(store: &Store, ids: &[i64]) -> Result<Vec<Media>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{} WHERE id IN ({}) ORDER BY id",
        select!(""),
        placeholders(1, ids.len())
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(store.r()).await?)
}
