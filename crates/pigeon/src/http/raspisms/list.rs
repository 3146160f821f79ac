//! `GET /api/list/{entry_type}/[{page}/ | after/{id}/ | before/{id}/]`: 25 rows, oldest first,
//! with `next` / `prev` cursor links built from the public URL (without the API key).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use pigeon_store::groups::{self, CONTACT_GROUPS, PHONE_GROUPS};
use pigeon_store::{
    PAGE_SIZE, Page, campaigns, conditional_groups, contacts, media, messages, phones, webhooks,
};
use serde_json::{Value, json};

use super::envelope::{ApiError, Code, Reply};
use super::render::{self, Dates};
use super::request::RaspiRequest;
use crate::app::{App, AppState};
use crate::services::{ServiceError, accounts};

const ENTRY_TYPES: [&str; 10] = [
    "sended",
    "received",
    "scheduled",
    "contact",
    "group",
    "conditional_group",
    "phone",
    "phone_group",
    "media",
    "webhook",
];

pub async fn first(
    State(app): State<AppState>,
    Path(kind): Path<String>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    list(&app, user.id, &kind, Page::Number(0)).await
}

pub async fn numbered(
    State(app): State<AppState>,
    Path((kind, page)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let page = page
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ApiError::invalid("page must be a positive integer."))?;
    list(&app, user.id, &kind, Page::Number(page)).await
}

pub async fn after(
    State(app): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    list(&app, user.id, &kind, Page::After(cursor("after", &id)?)).await
}

pub async fn before(
    State(app): State<AppState>,
    Path((kind, id)): Path<(String, String)>,
    req: RaspiRequest,
) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    list(&app, user.id, &kind, Page::Before(cursor("before", &id)?)).await
}

/// A cursor id; 0 is allowed (`after/0/` starts from the beginning).
fn cursor(name: &str, id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::invalid(format!("{name} must be an integer id.")))
}

async fn list(app: &App, user: i64, kind: &str, page: Page) -> Result<Reply, ApiError> {
    if !ENTRY_TYPES.contains(&kind) {
        return Err(ApiError::invalid(format!(
            "entry_type must be one of : {}.",
            ENTRY_TYPES.join(", ")
        )));
    }
    let dates = Dates(accounts::settings(app, user).await?.time_zone());
    let rows = entries(app, user, kind, page, &dates)
        .await
        .map_err(|e| ApiError::from_service(e, Code::InvalidParameter))?;
    let link =
        |cursor: &str, id: i64| format!("{}/api/list/{kind}/{cursor}/{id}/", app.public_base);
    let page_link = |n: i64| format!("{}/api/list/{kind}/{n}/", app.public_base);
    Ok(paged(rows, page, link, page_link))
}

/// A list answer with RaspiSMS's links: `next` (`after` the last row) when a full page came
/// back or after a `before` page, `prev` (`before` the first row) after the first page and on
/// cursor pages; an empty numbered page points back to the page before it.
pub(super) fn paged(
    rows: Vec<Value>,
    page: Page,
    link: impl Fn(&str, i64) -> String,
    page_link: impl Fn(i64) -> String,
) -> Reply {
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    let next = match (ids.last(), page) {
        (Some(last), Page::Before(_)) => Some(link("after", *last)),
        (Some(last), _) if ids.len() as i64 == PAGE_SIZE => Some(link("after", *last)),
        _ => None,
    };
    let prev = match (ids.first(), page) {
        (Some(first), Page::Number(n)) if n > 0 => Some(link("before", *first)),
        (None, Page::Number(n)) if n > 0 => Some(page_link(n - 1)),
        (Some(first), Page::After(_) | Page::Before(_)) => Some(link("before", *first)),
        _ => None,
    };
    Reply {
        response: Value::Array(rows),
        next,
        prev,
    }
}

type Rows = Result<Vec<Value>, ServiceError>;

async fn entries(app: &App, user: i64, kind: &str, page: Page, d: &Dates) -> Rows {
    let store = &app.store;
    Ok(match kind {
        "sended" => {
            with_medias(
                app,
                messages::page_sent(store, user, page).await?,
                render::sended,
                d,
            )
            .await?
        }
        "received" => {
            with_medias(
                app,
                messages::page_received(store, user, page).await?,
                render::received,
                d,
            )
            .await?
        }
        "scheduled" => scheduled(app, user, page, d).await?,
        "contact" => contacts::page(store, user, page)
            .await?
            .iter()
            .map(|c| render::contact(c, d))
            .collect(),
        "group" => contact_groups(app, user, page, d).await?,
        "conditional_group" => conditional_groups::page(store, user, page)
            .await?
            .iter()
            .map(|g| render::conditional_group(g, d))
            .collect(),
        "phone" => {
            let rows = phones::page(store, user, page).await?;
            let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
            let limits = phones::limits(store, &ids).await?;
            rows.iter()
                .map(|p| {
                    let own: Vec<_> = limits.iter().filter(|l| l.phone_id == p.id).collect();
                    render::phone(p, &own, d)
                })
                .collect()
        }
        "phone_group" => phone_groups(app, user, page, d).await?,
        "media" => media::page(store, user, page)
            .await?
            .iter()
            .map(|m| render::media(m, d))
            .collect(),
        _ => webhooks::page(store, user, page)
            .await?
            .iter()
            .map(|w| render::webhook(w, d))
            .collect(),
    })
}

/// Messages with their `medias` (`{id, id_user, path}`).
async fn with_medias(
    app: &App,
    rows: Vec<messages::Message>,
    render: fn(&messages::Message, &Dates) -> Value,
    d: &Dates,
) -> Rows {
    let ids: Vec<i64> = rows.iter().map(|m| m.id).collect();
    let links = messages::media(&app.store, &ids).await?;
    let by_id = media_by_id(app, links.values().flatten().copied().collect()).await?;
    Ok(rows
        .iter()
        .map(|m| {
            let mut row = render(m, d);
            row["medias"] = pick(links.get(&m.id), &by_id);
            row
        })
        .collect())
}

async fn media_by_id(app: &App, ids: Vec<i64>) -> Result<BTreeMap<i64, Value>, ServiceError> {
    Ok(media::by_ids(&app.store, &ids)
        .await?
        .into_iter()
        .map(|m| {
            (
                m.id,
                json!({"id": m.id, "id_user": m.user_id, "path": m.path}),
            )
        })
        .collect())
}

/// The rendered rows of `ids`, in order, skipping ids no longer there.
fn pick(ids: Option<&Vec<i64>>, by_id: &BTreeMap<i64, Value>) -> Value {
    ids.into_iter()
        .flatten()
        .filter_map(|id| by_id.get(id).cloned())
        .collect()
}

/// Pending campaigns with their `numbers`, `contacts`, `groups`, `conditional_groups` and
/// `medias`.
async fn scheduled(app: &App, user: i64, page: Page, d: &Dates) -> Rows {
    let store = &app.store;
    let rows = campaigns::page_pending(store, user, page).await?;
    let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
    let links = campaigns::links(store, &ids).await?;
    let all = |m: &BTreeMap<i64, Vec<i64>>| -> Vec<i64> { m.values().flatten().copied().collect() };
    let contacts: BTreeMap<i64, Value> = contacts::by_ids(store, user, &all(&links.contacts))
        .await?
        .iter()
        .map(|c| (c.id, render::contact(c, d)))
        .collect();
    let groups: BTreeMap<i64, Value> =
        groups::by_ids(store, CONTACT_GROUPS, user, &all(&links.groups))
            .await?
            .iter()
            .map(|g| (g.id, render::group(g, d)))
            .collect();
    let conditional: BTreeMap<i64, Value> =
        conditional_groups::by_ids(store, user, &all(&links.conditional_groups))
            .await?
            .iter()
            .map(|g| (g.id, render::conditional_group(g, d)))
            .collect();
    let medias = media_by_id(app, all(&links.media)).await?;
    Ok(rows
        .iter()
        .map(|c| {
            let mut row = render::campaign(c, d);
            row["numbers"] = links
                .numbers
                .get(&c.id)
                .into_iter()
                .flatten()
                .map(|n| render::campaign_number(n, d))
                .collect();
            row["contacts"] = pick(links.contacts.get(&c.id), &contacts);
            row["groups"] = pick(links.groups.get(&c.id), &groups);
            row["conditional_groups"] = pick(links.conditional_groups.get(&c.id), &conditional);
            row["medias"] = pick(links.media.get(&c.id), &medias);
            row
        })
        .collect())
}

/// Groups with their `contacts` and `nb_contact`.
async fn contact_groups(app: &App, user: i64, page: Page, d: &Dates) -> Rows {
    let rows = groups::page(&app.store, CONTACT_GROUPS, user, page).await?;
    let members = groups::members(
        &app.store,
        CONTACT_GROUPS,
        &rows.iter().map(|g| g.id).collect::<Vec<_>>(),
    )
    .await?;
    let ids: Vec<i64> = members.values().flatten().copied().collect();
    let by_id: BTreeMap<i64, Value> = contacts::by_ids(&app.store, user, &ids)
        .await?
        .iter()
        .map(|c| (c.id, render::contact(c, d)))
        .collect();
    Ok(with_members(
        rows,
        &members,
        &by_id,
        "contacts",
        "nb_contact",
        d,
    ))
}

/// Phone groups with their `phones` and `nb_phone`.
async fn phone_groups(app: &App, user: i64, page: Page, d: &Dates) -> Rows {
    let rows = groups::page(&app.store, PHONE_GROUPS, user, page).await?;
    let members = groups::members(
        &app.store,
        PHONE_GROUPS,
        &rows.iter().map(|g| g.id).collect::<Vec<_>>(),
    )
    .await?;
    let phones = phones::all(&app.store, user).await?;
    let limits =
        phones::limits(&app.store, &phones.iter().map(|p| p.id).collect::<Vec<_>>()).await?;
    let by_id: BTreeMap<i64, Value> = phones
        .iter()
        .map(|p| {
            let own: Vec<_> = limits.iter().filter(|l| l.phone_id == p.id).collect();
            (p.id, render::phone(p, &own, d))
        })
        .collect();
    Ok(with_members(
        rows, &members, &by_id, "phones", "nb_phone", d,
    ))
}

fn with_members(
    rows: Vec<groups::Group>,
    members: &BTreeMap<i64, Vec<i64>>,
    by_id: &BTreeMap<i64, Value>,
    list_key: &str,
    count_key: &str,
    d: &Dates,
) -> Vec<Value> {
    rows.iter()
        .map(|g| {
            let list = pick(members.get(&g.id), by_id);
            let mut row = render::group(g, d);
            row[count_key] = json!(list.as_array().map_or(0, Vec::len));
            row[list_key] = list;
            row
        })
        .collect()
}
