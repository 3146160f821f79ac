//! Contacts: a name (unique per user), an E.164 number and a JSON object of data.

use crate::{Page, Result, Store, Ts, found};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub number: String,
    /// A JSON object, as text.
    pub data: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, name, number, data, created_at, updated_at FROM contacts",
            $tail
        )
    };
}

pub async fn create(
    store: &Store,
    user_id: i64,
    name: &str,
    number: &str,
    data: &str,
) -> Result<i64> {
    let id = sqlx::query_scalar(
        "INSERT INTO contacts (user_id, name, number, data, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(number)
    .bind(data)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?;
    Ok(id)
}

/// Updates the given fields (`None` keeps the stored value).
pub async fn update(
    store: &Store,
    user_id: i64,
    id: i64,
    name: Option<&str>,
    number: Option<&str>,
    data: Option<&str>,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE contacts SET name = COALESCE($1, name), number = COALESCE($2, number), \
         data = COALESCE($3, data), updated_at = $4 WHERE id = $5 AND user_id = $6",
    )
    .bind(name)
    .bind(number)
    .bind(data)
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned("contacts", user_id, id).await
}

pub async fn get(store: &Store, user_id: i64, id: i64) -> Result<Option<Contact>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

pub async fn page(store: &Store, user_id: i64, page: Page) -> Result<Vec<Contact>> {
    store
        .page(select!(" WHERE user_id = $1"), user_id, page)
        .await
}

/// Every contact of the user, for conditional-group evaluation.
pub async fn all(store: &Store, user_id: i64) -> Result<Vec<Contact>> {
    Ok(sqlx::query_as(select!(" WHERE user_id = $1 ORDER BY id"))
        .bind(user_id)
        .fetch_all(store.r())
        .await?)
}

/// The user's contacts among `ids`, ordered by id; ids of other users are ignored.
pub async fn by_ids(store: &Store, user_id: i64, ids: &[i64]) -> Result<Vec<Contact>> {
    store
        .by_ids(select!(" WHERE user_id = $1"), user_id, ids)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, testing};

    #[tokio::test]
    async fn crud_and_scoping() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let id = create(&store, a, "Jane", "+33612345679", "{}")
            .await
            .expect("create");
        assert!(matches!(
            create(&store, a, "Jane", "+33612345678", "{}").await,
            Err(StoreError::Conflict)
        ));
        assert!(get(&store, b, id).await.expect("get").is_none());
        assert!(by_ids(&store, b, &[id]).await.expect("ids").is_empty());
        assert!(matches!(
            update(&store, b, id, Some("X"), None, None).await,
            Err(StoreError::NotFound)
        ));
        update(&store, a, id, None, Some("+33612345670"), None)
            .await
            .expect("update");
        assert_eq!(
            get(&store, a, id).await.expect("g").expect("c").number,
            "+33612345670"
        );
        assert!(matches!(
            delete(&store, b, id).await,
            Err(StoreError::NotFound)
        ));
        delete(&store, a, id).await.expect("delete");
        assert!(all(&store, a).await.expect("all").is_empty());
    }

    #[tokio::test]
    async fn pages_are_oldest_first_in_every_mode() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let mut ids = Vec::new();
        for i in 0..30 {
            ids.push(
                create(&store, a, &format!("c{i}"), "+33612345678", "{}")
                    .await
                    .expect("c"),
            );
        }
        let p0: Vec<i64> = page(&store, a, Page::Number(0))
            .await
            .expect("p")
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(p0, ids[..25]);
        let p1 = page(&store, a, Page::Number(1)).await.expect("p");
        assert_eq!(p1.len(), 5);
        let after: Vec<i64> = page(&store, a, Page::After(ids[24]))
            .await
            .expect("p")
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(after, ids[25..]);
        let before: Vec<i64> = page(&store, a, Page::Before(ids[29]))
            .await
            .expect("p")
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(before, ids[4..29]);
    }
}
