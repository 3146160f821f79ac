//! Named groups with members: contact groups (of contacts) and phone groups (of phones). Both
//! have the same shape, so one module serves both through a [`Kind`].

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use crate::{Page, Result, Store, Ts, found, placeholders};

/// The tables behind one kind of group.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    groups: &'static str,
    links: &'static str,
    group_column: &'static str,
    member_column: &'static str,
    members: &'static str,
    select_page: &'static str,
}

pub const CONTACT_GROUPS: Kind = Kind {
    groups: "contact_groups",
    links: "group_contacts",
    group_column: "group_id",
    member_column: "contact_id",
    members: "contacts",
    select_page: "SELECT id, user_id, name, created_at, updated_at FROM contact_groups WHERE user_id = $1",
};

pub const PHONE_GROUPS: Kind = Kind {
    groups: "phone_groups",
    links: "phone_group_phones",
    group_column: "phone_group_id",
    member_column: "phone_id",
    members: "phones",
    select_page: "SELECT id, user_id, name, created_at, updated_at FROM phone_groups WHERE user_id = $1",
};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Group {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Creates a group; member ids that are not the user's are ignored.
pub async fn create(
    store: &Store,
    kind: Kind,
    user_id: i64,
    name: &str,
    members: &[i64],
) -> Result<i64> {
    let mut tx = store.w().begin().await?;
    let sql = format!(
        "INSERT INTO {} (user_id, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        kind.groups
    );
    let id: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(user_id)
        .bind(name)
        .bind(Ts::now().0)
        .fetch_one(&mut *tx)
        .await?;
    link(&mut tx, kind, user_id, id, members).await?;
    tx.commit().await?;
    Ok(id)
}

/// Renames and/or replaces the members (`None` keeps them).
pub async fn update(
    store: &Store,
    kind: Kind,
    user_id: i64,
    id: i64,
    name: Option<&str>,
    members: Option<&[i64]>,
) -> Result<()> {
    let mut tx = store.w().begin().await?;
    let sql = format!(
        "UPDATE {} SET name = COALESCE($1, name), updated_at = $2 WHERE id = $3 AND user_id = $4",
        kind.groups
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(name)
        .bind(Ts::now().0)
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    found(done.rows_affected())?;
    if let Some(members) = members {
        let sql = format!(
            "DELETE FROM {} WHERE {} = $1",
            kind.links, kind.group_column
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        link(&mut tx, kind, user_id, id, members).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn link(
    tx: &mut sqlx::SqliteConnection,
    kind: Kind,
    user_id: i64,
    group_id: i64,
    members: &[i64],
) -> Result<()> {
    let sql = format!(
        "INSERT INTO {links} ({g}, {m}) SELECT $1, id FROM {members} WHERE id = $2 AND user_id = $3 \
         ON CONFLICT DO NOTHING",
        links = kind.links,
        g = kind.group_column,
        m = kind.member_column,
        members = kind.members
    );
    for member in members {
        sqlx::query(AssertSqlSafe(sql.clone()))
            .bind(group_id)
            .bind(member)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

pub async fn delete(store: &Store, kind: Kind, user_id: i64, id: i64) -> Result<()> {
    store.delete_owned(kind.groups, user_id, id).await
}

pub async fn get(store: &Store, kind: Kind, user_id: i64, id: i64) -> Result<Option<Group>> {
    let sql = format!("{} AND id = $2", kind.select_page);
    Ok(sqlx::query_as(AssertSqlSafe(sql))
        .bind(user_id)
        .bind(id)
        .fetch_optional(store.r())
        .await?)
}

/// The user's groups among `ids`, ordered by id; ids of other users are ignored.
pub async fn by_ids(store: &Store, kind: Kind, user_id: i64, ids: &[i64]) -> Result<Vec<Group>> {
    store.by_ids(kind.select_page, user_id, ids).await
}

pub async fn page(store: &Store, kind: Kind, user_id: i64, page: Page) -> Result<Vec<Group>> {
    store.page(kind.select_page, user_id, page).await
}

/// The member ids of each of the given groups (ordered by member id).
pub async fn members(
    store: &Store,
    kind: Kind,
    group_ids: &[i64],
) -> Result<BTreeMap<i64, Vec<i64>>> {
    let mut out: BTreeMap<i64, Vec<i64>> = group_ids.iter().map(|g| (*g, Vec::new())).collect();
    if group_ids.is_empty() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT {g}, {m} FROM {links} WHERE {g} IN ({list}) ORDER BY {m}",
        g = kind.group_column,
        m = kind.member_column,
        links = kind.links,
        list = placeholders(1, group_ids.len())
    );
    let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
    for id in group_ids {
        q = q.bind(id);
    }
    for (group, member) in q.fetch_all(store.r()).await? {
        out.entry(group).or_default().push(member);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, contacts, testing};

    #[tokio::test]
    async fn members_are_the_owners_only() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let c1 = contacts::create(&store, a, "c1", "+33612345678", "{}")
            .await
            .expect("c1");
        let foreign = contacts::create(&store, b, "c2", "+33612345679", "{}")
            .await
            .expect("c2");
        let g = create(&store, CONTACT_GROUPS, a, "g", &[c1, foreign, c1])
            .await
            .expect("group");
        assert_eq!(
            members(&store, CONTACT_GROUPS, &[g]).await.expect("m")[&g],
            vec![c1]
        );
        assert!(
            get(&store, CONTACT_GROUPS, b, g)
                .await
                .expect("get")
                .is_none()
        );
        assert!(matches!(
            delete(&store, CONTACT_GROUPS, b, g).await,
            Err(StoreError::NotFound)
        ));
        update(&store, CONTACT_GROUPS, a, g, Some("renamed"), Some(&[]))
            .await
            .expect("update");
        assert!(members(&store, CONTACT_GROUPS, &[g]).await.expect("m")[&g].is_empty());
        assert_eq!(
            get(&store, CONTACT_GROUPS, a, g)
                .await
                .expect("g")
                .expect("g")
                .name,
            "renamed"
        );
        assert!(matches!(
            create(&store, CONTACT_GROUPS, a, "renamed", &[]).await,
            Err(StoreError::Conflict)
        ));
        let pg = create(&store, PHONE_GROUPS, a, "renamed", &[])
            .await
            .expect("phone group");
        assert_eq!(
            page(&store, PHONE_GROUPS, a, Page::Number(0))
                .await
                .expect("p")[0]
                .id,
            pg
        );
    }
}
