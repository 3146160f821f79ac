//! Calls a phone reported (inbound call alerts).

use crate::group::insert_id;
use crate::outbox::{self, NewDelivery};
use crate::{Result, Store, Ts};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Call {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: Option<i64>,
    pub uid: String,
    pub start_at: i64,
    pub end_at: Option<i64>,
    pub direction: String,
    pub origin: Option<String>,
    pub destination: Option<String>,
}

pub struct NewCall<'a> {
    pub user_id: i64,
    pub phone_id: i64,
    pub uid: &'a str,
    pub start: Ts,
    pub end: Option<Ts>,
    pub origin: &'a str,
}

/// Stores an inbound call with the webhook deliveries it causes (rendered from its id).
pub async fn create_inbound(
    store: &Store,
    c: &NewCall<'_>,
    deliveries: impl Fn(i64) -> Vec<NewDelivery> + Send + 'static,
) -> Result<i64> {
    let (phone_id, uid, start, end, origin) = (
        c.phone_id,
        c.uid.to_string(),
        c.start.0,
        c.end.map(|e| e.0),
        c.origin.to_string(),
    );
    let user_id = c.user_id;
    store
        .grouped(move |conn| {
            let now = Ts::now().0;
            let id = insert_id(
                conn,
                "INSERT INTO calls (user_id, phone_id, uid, start_at, end_at, direction, origin, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'inbound', $6, $7, $7)",
                &[&user_id, &phone_id, &uid, &start, &end, &origin, &now],
            )?;
            outbox::insert(conn, &deliveries(id), now)?;
            Ok(id)
        })
        .await
}

/// Sets the end of the phone's call `uid`; `false` when there is no such call.
pub async fn end(store: &Store, user_id: i64, phone_id: i64, uid: &str, end: Ts) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE calls SET end_at = $1, updated_at = $2 WHERE user_id = $3 AND phone_id = $4 AND uid = $5",
    )
    .bind(end.0)
    .bind(Ts::now().0)
    .bind(user_id)
    .bind(phone_id)
    .bind(uid)
    .execute(store.w())
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn list(store: &Store, user_id: i64) -> Result<Vec<Call>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, phone_id, uid, start_at, end_at, direction, origin, destination FROM calls \
         WHERE user_id = $1 ORDER BY id",
    )
    .bind(user_id)
    .fetch_all(store.r())
    .await?)
}
