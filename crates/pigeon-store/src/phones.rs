//! Phones: a user's sending/receiving channels, with their limits.

use crate::{Page, Result, Store, Ts, found, placeholders};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Phone {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub adapter: String,
    /// Sealed with the server key; never leaves the services.
    pub adapter_data_sealed: String,
    pub priority: i64,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Limit {
    pub phone_id: i64,
    pub volume: i64,
    pub startpoint: String,
}

/// The fields of a phone; on update, `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct PhoneFields {
    pub name: Option<String>,
    pub adapter: Option<String>,
    pub adapter_data_sealed: Option<String>,
    pub priority: Option<i64>,
    /// `Some` replaces every limit.
    pub limits: Option<Vec<(i64, String)>>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, name, adapter, adapter_data_sealed, priority, status, created_at, updated_at FROM phones",
            $tail
        )
    };
}

pub async fn create(store: &Store, user_id: i64, f: &PhoneFields) -> Result<i64> {
    let now = Ts::now().0;
    let mut tx = store.w().begin().await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO phones (user_id, name, adapter, adapter_data_sealed, priority, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(user_id)
    .bind(f.name.as_deref().unwrap_or_default())
    .bind(f.adapter.as_deref().unwrap_or_default())
    .bind(f.adapter_data_sealed.as_deref().unwrap_or_default())
    .bind(f.priority.unwrap_or(0))
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    replace_limits(&mut tx, id, f.limits.as_deref().unwrap_or_default()).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn update(store: &Store, user_id: i64, id: i64, f: &PhoneFields) -> Result<()> {
    let mut tx = store.w().begin().await?;
    let done = sqlx::query(
        "UPDATE phones SET name = COALESCE($1, name), adapter = COALESCE($2, adapter), \
         adapter_data_sealed = COALESCE($3, adapter_data_sealed), priority = COALESCE($4, priority), \
         updated_at = $5 WHERE id = $6 AND user_id = $7",
    )
    .bind(f.name.as_deref())
    .bind(f.adapter.as_deref())
    .bind(f.adapter_data_sealed.as_deref())
    .bind(f.priority)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    found(done.rows_affected())?;
    if let Some(limits) = &f.limits {
        replace_limits(&mut tx, id, limits).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn replace_limits(
    tx: &mut sqlx::SqliteConnection,
    phone_id: i64,
    limits: &[(i64, String)],
) -> Result<()> {
    sqlx::query("DELETE FROM phone_limits WHERE phone_id = $1")
        .bind(phone_id)
        .execute(&mut *tx)
        .await?;
    for (volume, startpoint) in limits {
        sqlx::query("INSERT INTO phone_limits (phone_id, volume, startpoint) VALUES ($1, $2, $3)")
            .bind(phone_id)
            .bind(volume)
            .bind(startpoint)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub async fn get(store: &Store, user_id: i64, id: i64) -> Result<Option<Phone>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// A phone whoever owns it (for channels and workers, which act for the owner).
pub async fn get_any(store: &Store, id: i64) -> Result<Option<Phone>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.r())
        .await?)
}

pub async fn by_name(store: &Store, user_id: i64, name: &str) -> Result<Option<Phone>> {
    Ok(sqlx::query_as(select!(" WHERE user_id = $1 AND name = $2"))
        .bind(user_id)
        .bind(name)
        .fetch_optional(store.r())
        .await?)
}

pub async fn all(store: &Store, user_id: i64) -> Result<Vec<Phone>> {
    Ok(sqlx::query_as(select!(" WHERE user_id = $1 ORDER BY id"))
        .bind(user_id)
        .fetch_all(store.r())
        .await?)
}

/// Every phone of every active account: the phones the sender runs.
pub async fn all_active(store: &Store) -> Result<Vec<Phone>> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.user_id, p.name, p.adapter, p.adapter_data_sealed, p.priority, p.status, p.created_at, \
         p.updated_at FROM phones p JOIN users u ON u.id = p.user_id WHERE u.status = 'active' ORDER BY p.id",
    )
    .fetch_all(store.r())
    .await?)
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<Phone>> {
    store
        .page(select!(" WHERE user_id = $1"), user_id, page)
        .await
}

pub async fn set_status(store: &Store, user_id: i64, id: i64, status: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE phones SET status = $1, updated_at = $2 WHERE id = $3 AND user_id = $4",
    )
    .bind(status)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned("phones", user_id, id).await
}

/// The limits of the given phones, in insertion order.
pub async fn limits(store: &Store, phone_ids: &[i64]) -> Result<Vec<Limit>> {
    if phone_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT phone_id, volume, startpoint FROM phone_limits WHERE phone_id IN ({}) ORDER BY id",
        placeholders(1, phone_ids.len())
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in phone_ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(store.r()).await?)
}

/// Which messages still on their way count against a phone's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Every queued or in-flight message of the phone (when routing more to it).
    All,
    /// In-flight messages older than this one (when sending it: the older ones go first).
    Before(i64),
}

/// Messages a phone has sent since `since`, plus the pending ones that will use its volume.
pub async fn used_volume(store: &Store, phone_id: i64, since: Ts, pending: Pending) -> Result<i64> {
    let (all, before) = match pending {
        Pending::All => (true, 0),
        Pending::Before(id) => (false, id),
    };
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE phone_id = $1 AND direction = 'outbound' AND ( \
           (status IN ('sent', 'delivered', 'undelivered') AND at >= $2) \
           OR ($3 AND status IN ('queued', 'sending')) \
           OR (status = 'sending' AND id < $4))",
    )
    .bind(phone_id)
    .bind(since.0)
    .bind(all)
    .bind(before)
    .fetch_one(store.r())
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, testing};

    fn fields(name: &str) -> PhoneFields {
        PhoneFields {
            name: Some(name.into()),
            adapter: Some("test".into()),
            adapter_data_sealed: Some("s".into()),
            priority: Some(1),
            limits: Some(vec![(10, "today".into())]),
        }
    }

    #[tokio::test]
    async fn crud_is_scoped_to_owner() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let id = create(&store, a, &fields("p1")).await.expect("create");
        assert!(matches!(
            create(&store, a, &fields("p1")).await,
            Err(StoreError::Conflict)
        ));
        create(&store, b, &fields("p1"))
            .await
            .expect("same name, other user");
        assert!(get(&store, b, id).await.expect("get").is_none());
        assert!(matches!(
            delete(&store, b, id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            update(&store, b, id, &PhoneFields::default()).await,
            Err(StoreError::NotFound)
        ));
        let upd = PhoneFields {
            priority: Some(5),
            limits: Some(vec![]),
            ..Default::default()
        };
        update(&store, a, id, &upd).await.expect("update");
        let p = get(&store, a, id).await.expect("get").expect("phone");
        assert_eq!((p.priority, p.name.as_str()), (5, "p1"));
        assert!(limits(&store, &[id]).await.expect("limits").is_empty());
        delete(&store, a, id).await.expect("delete");
        assert!(get(&store, a, id).await.expect("get").is_none());
    }
}
