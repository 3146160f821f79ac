//! Devices (the Astandes API's phones): each is a phone of the `agent` adapter, with the
//! owner-facing fields of the Astandes device object, paired through a 7-digit code.

use sqlx::AssertSqlSafe;

use crate::{Result, Store, Ts, found};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Device {
    pub id: i64,
    pub user_id: i64,
    pub phone_id: i64,
    pub firstname: String,
    pub lastname: String,
    pub number: String,
    pub email: String,
    pub description: String,
    pub notification: String,
    pub secret_sealed: String,
    pub attached: bool,
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The fields an owner sets; `None` keeps the stored value on update.
#[derive(Debug, Clone, Default)]
pub struct DeviceFields {
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub number: Option<String>,
    pub email: Option<String>,
    pub description: Option<String>,
    pub notification: Option<String>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, phone_id, firstname, lastname, number, email, description, notification, \
             secret_sealed, attached, last_seen_at, created_at, updated_at FROM devices",
            $tail
        )
    };
}

/// Creates a device and the `agent` phone behind it, in one transaction. The phone stays
/// `unavailable` (never picked by routing) until its agent is connected.
pub async fn create(
    store: &Store,
    user_id: i64,
    f: &DeviceFields,
    adapter_data_sealed: &str,
    secret_sealed: &str,
) -> Result<i64> {
    let now = Ts::now().0;
    let mut tx = store.w().begin().await?;
    // The phone's name must be unique per user; the device id is not known yet, so a random
    // suffix stands in until it is.
    let placeholder = format!(
        "device {now}-{}",
        pigeon_core::secret::random_hex(8).unwrap_or_default()
    );
    let phone_id: i64 = sqlx::query_scalar(
        "INSERT INTO phones (user_id, name, adapter, adapter_data_sealed, status, created_at, updated_at) \
         VALUES ($1, $2, 'agent', $3, 'unavailable', $4, $4) RETURNING id",
    )
    .bind(user_id)
    .bind(&placeholder)
    .bind(adapter_data_sealed)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO devices (user_id, phone_id, firstname, lastname, number, email, description, notification, \
         secret_sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(user_id)
    .bind(phone_id)
    .bind(f.firstname.as_deref().unwrap_or_default())
    .bind(f.lastname.as_deref().unwrap_or_default())
    .bind(f.number.as_deref().unwrap_or_default())
    .bind(f.email.as_deref().unwrap_or_default())
    .bind(f.description.as_deref().unwrap_or_default())
    .bind(f.notification.as_deref().unwrap_or_default())
    .bind(secret_sealed)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE phones SET name = $1 WHERE id = $2")
        .bind(format!("device {id:024x}"))
        .bind(phone_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn update(store: &Store, user_id: i64, id: i64, f: &DeviceFields) -> Result<()> {
    let done = sqlx::query(
        "UPDATE devices SET firstname = COALESCE($1, firstname), lastname = COALESCE($2, lastname), \
         number = COALESCE($3, number), email = COALESCE($4, email), description = COALESCE($5, description), \
         notification = COALESCE($6, notification), updated_at = $7 WHERE id = $8 AND user_id = $9",
    )
    .bind(f.firstname.as_deref())
    .bind(f.lastname.as_deref())
    .bind(f.number.as_deref())
    .bind(f.email.as_deref())
    .bind(f.description.as_deref())
    .bind(f.notification.as_deref())
    .bind(Ts::now().0)
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

/// Deletes a device with its phone. Its messages not sent yet are canceled (Astandes 505,
/// "deleted") rather than left to be routed to another of the account's phones; the others
/// keep their history, without a phone.
pub async fn delete(store: &Store, user_id: i64, id: i64) -> Result<()> {
    let now = Ts::now().0;
    let mut tx = store.w().begin().await?;
    let phone: Option<i64> =
        sqlx::query_scalar("SELECT phone_id FROM devices WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(phone) = phone else {
        return found(0);
    };
    let canceled: Vec<i64> = sqlx::query_scalar(
        "UPDATE messages SET status = 'canceled', updated_at = $1 WHERE phone_id = $2 \
         AND (status = 'scheduled' OR status = 'queued') RETURNING id",
    )
    .bind(now)
    .bind(phone)
    .fetch_all(&mut *tx)
    .await?;
    for message in canceled {
        sqlx::query("INSERT INTO message_history (message_id, status, detail, at) VALUES ($1, 'canceled', $2, $3)")
            .bind(message)
            .bind("its device was deleted")
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM phones WHERE id = $1")
        .bind(phone)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get(store: &Store, user_id: i64, id: i64) -> Result<Option<Device>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// The devices behind the given phones.
pub async fn by_phones(store: &Store, user_id: i64, phone_ids: &[i64]) -> Result<Vec<Device>> {
    if phone_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{} WHERE user_id = $1 AND phone_id IN ({})",
        select!(""),
        crate::placeholders(2, phone_ids.len())
    );
    let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(user_id);
    for id in phone_ids {
        q = q.bind(id);
    }
    Ok(q.fetch_all(store.r()).await?)
}

/// The Astandes list filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub skip: i64,
    pub limit: i64,
    pub created: (Option<Ts>, Option<Ts>),
    pub updated: (Option<Ts>, Option<Ts>),
    pub attached: Option<bool>,
    /// A column and whether it sorts descending.
    pub sort: (&'static str, bool),
}

/// One page of the user's devices and how many match in all.
pub async fn list(store: &Store, user_id: i64, f: &Filter) -> Result<(Vec<Device>, i64)> {
    let filter = " WHERE user_id = $1 AND ($2 IS NULL OR created_at >= $2) AND ($3 IS NULL OR created_at <= $3) \
                  AND ($4 IS NULL OR updated_at >= $4) AND ($5 IS NULL OR updated_at <= $5) \
                  AND ($6 IS NULL OR attached = $6)";
    let order = format!(
        " ORDER BY {} {}, id LIMIT $7 OFFSET $8",
        f.sort.0,
        if f.sort.1 { "DESC" } else { "ASC" }
    );
    let rows: Vec<Device> =
        sqlx::query_as(AssertSqlSafe(format!("{}{filter}{order}", select!(""))))
            .bind(user_id)
            .bind(f.created.0.map(|t| t.0))
            .bind(f.created.1.map(|t| t.0))
            .bind(f.updated.0.map(|t| t.0))
            .bind(f.updated.1.map(|t| t.0))
            .bind(f.attached)
            .bind(f.limit)
            .bind(f.skip)
            .fetch_all(store.r())
            .await?;
    let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM devices{filter}"
    )))
    .bind(user_id)
    .bind(f.created.0.map(|t| t.0))
    .bind(f.created.1.map(|t| t.0))
    .bind(f.updated.0.map(|t| t.0))
    .bind(f.updated.1.map(|t| t.0))
    .bind(f.attached)
    .fetch_one(store.r())
    .await?;
    Ok((rows, total))
}

/// The user's attached devices whose agent is connected (their phone is available): the
/// candidates of `{"distribute": "random"}`.
pub async fn online(store: &Store, user_id: i64) -> Result<Vec<Device>> {
    Ok(sqlx::query_as(select!(
        " WHERE user_id = $1 AND attached = 1 \
         AND phone_id IN (SELECT id FROM phones WHERE status = 'available') ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(store.r())
    .await?)
}

/// Stores a pairing code (its digest) valid until `expires`.
pub async fn add_code(
    store: &Store,
    device_id: i64,
    code_digest: &str,
    created: Ts,
    expires: Ts,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO pairing_codes (device_id, code_digest, expires_at, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(device_id)
    .bind(code_digest)
    .bind(expires.0)
    .bind(created.0)
    .fetch_one(store.w())
    .await?)
}

/// Redeems an unused, unexpired code: the device becomes attached with a new token (its
/// digest), and the code is spent. `None` when no such code.
pub async fn redeem(
    store: &Store,
    code_digest: &str,
    token_digest: &str,
    now: Ts,
) -> Result<Option<Device>> {
    let mut tx = store.w().begin().await?;
    let device_id: Option<i64> = sqlx::query_scalar(
        "UPDATE pairing_codes SET used_at = $1 WHERE id = (SELECT id FROM pairing_codes \
         WHERE code_digest = $2 AND used_at IS NULL AND expires_at > $1 ORDER BY id DESC LIMIT 1) RETURNING device_id",
    )
    .bind(now.0)
    .bind(code_digest)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(device_id) = device_id else {
        return Ok(None);
    };
    sqlx::query("UPDATE devices SET attached = 1, token_digest = $1, last_seen_at = $2, updated_at = $2 WHERE id = $3")
        .bind(token_digest)
        .bind(now.0)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
    let device: Device = sqlx::query_as(select!(" WHERE id = $1"))
        .bind(device_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(device))
}

/// The device a token belongs to.
pub async fn by_token(store: &Store, token_digest: &str) -> Result<Option<Device>> {
    Ok(sqlx::query_as(select!(" WHERE token_digest = $1"))
        .bind(token_digest)
        .fetch_optional(store.r())
        .await?)
}

/// Records that a device spoke, and whether its phone can take jobs (connected) or not.
pub async fn seen(store: &Store, device: &Device, connected: Option<bool>, now: Ts) -> Result<()> {
    let mut tx = store.w().begin().await?;
    sqlx::query("UPDATE devices SET last_seen_at = $1 WHERE id = $2")
        .bind(now.0)
        .bind(device.id)
        .execute(&mut *tx)
        .await?;
    if let Some(connected) = connected {
        sqlx::query(
            "UPDATE phones SET status = $1, updated_at = $2 WHERE id = $3 AND status <> 'disabled'",
        )
        .bind(if connected {
            "available"
        } else {
            "unavailable"
        })
        .bind(now.0)
        .bind(device.phone_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
