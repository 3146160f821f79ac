//! Credentials of the API dialects that have their own (OVH's application and consumer keys).

use crate::{Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OvhCredentials {
    pub id: i64,
    pub user_id: i64,
    pub application_key: String,
    pub application_secret_sealed: String,
    pub consumer_key_digest: String,
    pub consumer_key_sealed: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewOvhCredentials {
    pub user_id: i64,
    pub application_key: String,
    pub application_secret_sealed: String,
    pub consumer_key_digest: String,
    pub consumer_key_sealed: String,
}

pub async fn create_ovh(store: &Store, c: &NewOvhCredentials) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO ovh_credentials (user_id, application_key, application_secret_sealed, consumer_key_digest, \
         consumer_key_sealed, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(c.user_id)
    .bind(&c.application_key)
    .bind(&c.application_secret_sealed)
    .bind(&c.consumer_key_digest)
    .bind(&c.consumer_key_sealed)
    .bind(Ts::now().0)
    .fetch_one(store.w())
    .await?)
}

/// The credentials of an application key.
pub async fn ovh_by_application(
    store: &Store,
    application_key: &str,
) -> Result<Option<OvhCredentials>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, application_key, application_secret_sealed, consumer_key_digest, consumer_key_sealed, \
         created_at FROM ovh_credentials WHERE application_key = $1",
    )
    .bind(application_key)
    .fetch_optional(store.r())
    .await?)
}
