//! Contact groups and phone groups.

use pigeon_store::groups::{self, Kind};

use super::{Result, conflict_as, optional_name, required_name};
use crate::app::App;

const NAME_TAKEN: &str = "name : This name is already used for another group.";

pub async fn create(
    app: &App,
    kind: Kind,
    user_id: i64,
    name: Option<&str>,
    members: &[i64],
) -> Result<i64> {
    let name = required_name(name, 100)?;
    groups::create(&app.store, kind, user_id, name, members)
        .await
        .map_err(conflict_as(NAME_TAKEN))
}

pub async fn update(
    app: &App,
    kind: Kind,
    user_id: i64,
    id: i64,
    name: Option<&str>,
    members: Option<&[i64]>,
) -> Result<()> {
    let name = optional_name(name, 100)?;
    groups::update(&app.store, kind, user_id, id, name, members)
        .await
        .map_err(conflict_as(NAME_TAKEN))
}

pub async fn delete(app: &App, kind: Kind, user_id: i64, id: i64) -> Result<()> {
    Ok(groups::delete(&app.store, kind, user_id, id).await?)
}
