//! Accounts: email, password hash, role, status and the API key (digest for lookup, sealed copy
//! for the signatures keyed with it).

use crate::{Result, Store, Ts, found};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub admin: bool,
    pub status: String,
    pub api_key_sealed: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub password_hash: &'a str,
    pub admin: bool,
    pub api_key_digest: &'a str,
    pub api_key_sealed: &'a str,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, email, password_hash, admin, status, api_key_sealed, created_at, updated_at FROM users",
            $tail
        )
    };
}

pub async fn create(store: &Store, user: &NewUser<'_>) -> Result<i64> {
    let now = Ts::now().0;
    let id = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, admin, api_key_digest, api_key_sealed, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
    )
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.admin)
    .bind(user.api_key_digest)
    .bind(user.api_key_sealed)
    .bind(now)
    .fetch_one(store.w())
    .await?;
    Ok(id)
}

pub async fn count(store: &Store) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(store.r())
        .await?)
}

pub async fn by_api_key_digest(store: &Store, digest: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as(select!(" WHERE api_key_digest = $1"))
        .bind(digest)
        .fetch_optional(store.r())
        .await?)
}

pub async fn get(store: &Store, id: i64) -> Result<Option<User>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.r())
        .await?)
}

pub async fn by_email(store: &Store, email: &str) -> Result<Option<User>> {
    Ok(sqlx::query_as(select!(" WHERE email = $1"))
        .bind(email)
        .fetch_optional(store.r())
        .await?)
}

pub async fn list(store: &Store) -> Result<Vec<User>> {
    Ok(sqlx::query_as(select!(" ORDER BY id"))
        .fetch_all(store.r())
        .await?)
}

pub async fn set_status(store: &Store, email: &str, status: &str) -> Result<()> {
    let done = sqlx::query("UPDATE users SET status = $1, updated_at = $2 WHERE email = $3")
        .bind(status)
        .bind(Ts::now().0)
        .bind(email)
        .execute(store.w())
        .await?;
    found(done.rows_affected())
}

pub async fn set_api_key(store: &Store, email: &str, digest: &str, sealed: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE users SET api_key_digest = $1, api_key_sealed = $2, updated_at = $3 WHERE email = $4",
    )
    .bind(digest)
    .bind(sealed)
    .bind(Ts::now().0)
    .bind(email)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, testing};

    #[tokio::test]
    async fn create_lookup_suspend_rotate() {
        let (_dir, store) = testing::store().await;
        let id = testing::user(&store, "a@example.com").await;
        assert_eq!(count(&store).await.expect("count"), 1);
        let u = by_api_key_digest(&store, "a@example.com")
            .await
            .expect("q")
            .expect("user");
        assert_eq!(u.id, id);
        assert!(u.is_active());
        set_status(&store, "a@example.com", "suspended")
            .await
            .expect("suspend");
        assert!(
            !by_email(&store, "a@example.com")
                .await
                .expect("q")
                .expect("u")
                .is_active()
        );
        set_api_key(&store, "a@example.com", "new", "sealed2")
            .await
            .expect("rotate");
        assert!(
            by_api_key_digest(&store, "a@example.com")
                .await
                .expect("q")
                .is_none()
        );
        assert!(matches!(
            set_status(&store, "nobody@x", "active").await,
            Err(StoreError::NotFound)
        ));
        let dup = create(
            &store,
            &NewUser {
                email: "a@example.com",
                password_hash: "x",
                admin: false,
                api_key_digest: "d2",
                api_key_sealed: "s",
            },
        )
        .await;
        assert!(matches!(dup, Err(StoreError::Conflict)));
    }
}
