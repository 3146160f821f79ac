//! `POST /api/ovh-credentials/` (Pigeon): a new application key, its secret and a consumer key
//! for the caller's account, for the OVH SMS API (`/1.0`); shown only in this answer.

use axum::extract::State;
use serde_json::json;

use super::envelope::{ApiError, Reply};
use super::request::RaspiRequest;
use crate::app::AppState;
use crate::services::ovh;

pub async fn create_ovh(State(app): State<AppState>, req: RaspiRequest) -> Result<Reply, ApiError> {
    let user = req.authenticate(&app).await?;
    let c = ovh::create_credentials(&app, user.id).await?;
    Ok(Reply::new(json!({
        "application_key": c.application_key,
        "application_secret": c.application_secret,
        "consumer_key": c.consumer_key,
    })))
}
