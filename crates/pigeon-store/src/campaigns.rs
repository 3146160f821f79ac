//! Campaigns (RaspiSMS "scheduled"): a text, a time and recipients (numbers, contacts, groups,
//! conditional groups), sent through a phone or a phone group, with media. A campaign stays
//! after dispatch as the origin of its messages.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rusqlite::Connection;

use crate::group::{execute, insert_id, rows};

use crate::{Page, Result, Store, Ts, found, json_ids};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Campaign {
    pub id: i64,
    pub user_id: i64,
    pub text: String,
    pub at: i64,
    pub phone_id: Option<i64>,
    pub phone_group_id: Option<i64>,
    pub flash: bool,
    pub mms: bool,
    pub tag: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CampaignNumber {
    pub id: i64,
    pub campaign_id: i64,
    pub number: String,
    /// A JSON value, as text (`[]` when none was given, as RaspiSMS stores it).
    pub data: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Campaign {
    /// A row of `SELECT id, user_id, text, at, phone_id, phone_group_id, flash, mms, tag,
    /// status, created_at, updated_at` on a rusqlite connection.
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<Campaign> {
        Ok(Campaign {
            id: r.get(0)?,
            user_id: r.get(1)?,
            text: r.get(2)?,
            at: r.get(3)?,
            phone_id: r.get(4)?,
            phone_group_id: r.get(5)?,
            flash: r.get(6)?,
            mms: r.get(7)?,
            tag: r.get(8)?,
            status: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
        })
    }
}

impl CampaignNumber {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<CampaignNumber> {
        Ok(CampaignNumber {
            id: r.get(0)?,
            campaign_id: r.get(1)?,
            number: r.get(2)?,
            data: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewCampaign {
    pub text: String,
    pub at: Ts,
    pub phone_id: Option<i64>,
    pub phone_group_id: Option<i64>,
    pub flash: bool,
    pub mms: bool,
    pub tag: Option<String>,
    /// (number, data as JSON text)
    pub numbers: Vec<(String, String)>,
    pub contacts: Vec<i64>,
    pub groups: Vec<i64>,
    pub conditional_groups: Vec<i64>,
    pub media: Vec<i64>,
}

/// The recipients and media a campaign links to, per campaign id.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub numbers: BTreeMap<i64, Vec<CampaignNumber>>,
    pub contacts: BTreeMap<i64, Vec<i64>>,
    pub groups: BTreeMap<i64, Vec<i64>>,
    pub conditional_groups: BTreeMap<i64, Vec<i64>>,
    pub media: BTreeMap<i64, Vec<i64>>,
}

macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT id, user_id, text, at, phone_id, phone_group_id, flash, mms, tag, status, created_at, updated_at \
             FROM campaigns",
            $tail
        )
    };
}

/// (link table, column, owned table) for each kind of linked id; ids not owned are ignored.
const LINKS: [(&str, &str, &str); 4] = [
    ("campaign_contacts", "contact_id", "contacts"),
    ("campaign_groups", "group_id", "contact_groups"),
    (
        "campaign_conditional_groups",
        "conditional_group_id",
        "conditional_groups",
    ),
    ("campaign_media", "media_id", "media"),
];

/// The ids the campaigns of the JSON array `$1` link to, as (kind: the index in [`LINKS`],
/// campaign, id), read in one statement rather than one per kind: a scheduler pass reads them.
static LINKED: LazyLock<String> = LazyLock::new(|| {
    let kinds: Vec<String> = LINKS
        .iter()
        .enumerate()
        .map(|(kind, (table, column, _))| {
            format!(
                "SELECT {kind}, campaign_id, {column} FROM {table} \
                 WHERE campaign_id IN (SELECT value FROM json_each($1))"
            )
        })
        .collect();
    format!("{} ORDER BY 1, 3", kinds.join(" UNION ALL "))
});

/// Stores a campaign with all its links, atomically, in the next group commit.
pub async fn create(store: &Store, user_id: i64, c: &NewCampaign) -> Result<i64> {
    let c = c.clone();
    store.grouped(move |conn| insert(conn, user_id, &c)).await
}

fn insert(conn: &Connection, user_id: i64, c: &NewCampaign) -> Result<i64> {
    let now = Ts::now().0;
    let id = insert_id(
        conn,
        "INSERT INTO campaigns (user_id, text, at, phone_id, phone_group_id, flash, mms, tag, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        &[
            &user_id,
            &c.text,
            &c.at.0,
            &c.phone_id,
            &c.phone_group_id,
            &c.flash,
            &c.mms,
            &c.tag,
            &now,
        ],
    )?;
    for (number, data) in &c.numbers {
        execute(
            conn,
            "INSERT INTO campaign_numbers (campaign_id, number, data, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
            &[&id, number, data, &now],
        )?;
    }
    let lists = [&c.contacts, &c.groups, &c.conditional_groups, &c.media];
    for ((table, column, owned), ids) in LINKS.iter().zip(lists) {
        let sql = format!(
            "INSERT INTO {table} (campaign_id, {column}) SELECT $1, id FROM {owned} \
             WHERE id = $2 AND user_id = $3 ON CONFLICT DO NOTHING"
        );
        for linked in ids {
            execute(conn, &sql, &[&id, linked, &user_id])?;
        }
    }
    Ok(id)
}

pub async fn get(store: &Store, user_id: i64, id: i64) -> Result<Option<Campaign>> {
    Ok(sqlx::query_as(select!(" WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(store.r())
        .await?)
}

/// Campaigns still waiting to be sent.
pub async fn page_pending(store: &Store, user_id: i64, page: Page) -> Result<Vec<Campaign>> {
    store
        .page(
            select!(" WHERE user_id = $1 AND status = 'scheduled'"),
            user_id,
            page,
        )
        .await
}

/// Deletes a campaign of the user that has not been dispatched yet.
pub async fn delete_pending(store: &Store, user_id: i64, id: i64) -> Result<()> {
    let done = sqlx::query(
        "DELETE FROM campaigns WHERE id = $1 AND user_id = $2 AND status = 'scheduled'",
    )
    .bind(id)
    .bind(user_id)
    .execute(store.w())
    .await?;
    found(done.rows_affected())
}

/// What the given campaigns link to. A scheduler pass reads this for all its due campaigns, on
/// the direct reading thread; the ids go as one JSON array, so that the statements stay
/// prepared from pass to pass.
pub async fn links(store: &Store, ids: &[i64]) -> Result<Links> {
    let mut out = Links::default();
    if ids.is_empty() {
        return Ok(out);
    }
    let ids = json_ids(ids);
    let (numbers, linked) = store
        .read_direct(move |conn| {
            let numbers = rows(
                conn,
                "SELECT id, campaign_id, number, data, created_at, updated_at FROM campaign_numbers \
                 WHERE campaign_id IN (SELECT value FROM json_each($1)) ORDER BY id",
                &[&ids],
                CampaignNumber::read,
            )?;
            let linked = rows(conn, LINKED.as_str(), &[&ids], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?;
            Ok((numbers, linked))
        })
        .await?;
    for n in numbers {
        out.numbers.entry(n.campaign_id).or_default().push(n);
    }
    let targets = [
        &mut out.contacts,
        &mut out.groups,
        &mut out.conditional_groups,
        &mut out.media,
    ];
    for (kind, campaign, linked) in linked {
        targets[kind as usize]
            .entry(campaign)
            .or_default()
            .push(linked);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreError, conditional_groups, contacts, groups, media, testing};

    #[tokio::test]
    async fn links_of_several_campaigns_stay_with_their_campaign() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let contact = contacts::create(&store, a, "c", "+33612345678", "{}")
            .await
            .expect("c");
        let group = groups::create(&store, groups::CONTACT_GROUPS, a, "g", &[contact])
            .await
            .expect("group");
        let conditional = conditional_groups::create(&store, a, "cg", "true")
            .await
            .expect("conditional group");
        let picture = media::create(&store, a, "p.png").await.expect("media");
        let mut ids = Vec::new();
        for n in 0..3 {
            let c = NewCampaign {
                text: "hi".into(),
                numbers: vec![(format!("+3360000000{n}"), "[]".into())],
                contacts: if n == 1 { vec![contact] } else { Vec::new() },
                groups: if n == 2 { vec![group] } else { Vec::new() },
                conditional_groups: vec![conditional],
                media: if n == 1 { vec![picture] } else { Vec::new() },
                ..Default::default()
            };
            ids.push(create(&store, a, &c).await.expect("create"));
        }
        let l = links(&store, &[ids[2], ids[1]]).await.expect("links");
        assert_eq!(l.numbers[&ids[2]][0].number, "+33600000002");
        assert_eq!(l.numbers[&ids[1]][0].number, "+33600000001");
        assert!(!l.numbers.contains_key(&ids[0]));
        // Each kind of link lands in its own map, with its own campaign.
        assert_eq!(l.contacts, BTreeMap::from([(ids[1], vec![contact])]));
        assert_eq!(l.groups, BTreeMap::from([(ids[2], vec![group])]));
        assert_eq!(
            l.conditional_groups,
            BTreeMap::from([(ids[1], vec![conditional]), (ids[2], vec![conditional])])
        );
        assert_eq!(l.media, BTreeMap::from([(ids[1], vec![picture])]));
    }

    #[tokio::test]
    async fn create_with_links_and_delete_pending() {
        let (_dir, store) = testing::store().await;
        let a = testing::user(&store, "a@x").await;
        let b = testing::user(&store, "b@x").await;
        let mine = contacts::create(&store, a, "c", "+33612345678", "{}")
            .await
            .expect("c");
        let theirs = contacts::create(&store, b, "c", "+33612345679", "{}")
            .await
            .expect("c");
        let c = NewCampaign {
            text: "hi".into(),
            at: Ts(1),
            numbers: vec![("+33600000000".into(), "[]".into())],
            contacts: vec![mine, theirs],
            ..Default::default()
        };
        let id = create(&store, a, &c).await.expect("create");
        let l = links(&store, &[id]).await.expect("links");
        assert_eq!(l.contacts[&id], vec![mine]);
        assert_eq!(l.numbers[&id][0].number, "+33600000000");
        assert_eq!(
            page_pending(&store, a, Page::Number(0))
                .await
                .expect("p")
                .len(),
            1
        );
        assert!(
            page_pending(&store, b, Page::Number(0))
                .await
                .expect("p")
                .is_empty()
        );
        assert!(matches!(
            delete_pending(&store, b, id).await,
            Err(StoreError::NotFound)
        ));
        delete_pending(&store, a, id).await.expect("delete");
        assert!(get(&store, a, id).await.expect("get").is_none());
    }
}
