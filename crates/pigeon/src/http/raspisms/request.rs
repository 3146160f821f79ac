//! One RaspiSMS request: query and body parameters (form-urlencoded or multipart, with files),
//! and the API-key authentication RaspiSMS runs before every endpoint.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{HeaderMap, header};
use pigeon_store::users::User;

use super::envelope::{ApiError, Code};
use serde_json::{Map, Value};

use super::form::{Field, Params};
use crate::app::App;
use crate::services::accounts;
use crate::services::campaigns::Upload;

pub struct RaspiRequest {
    pub query: Params,
    pub body: Params,
    /// Uploaded files with the raw field name they came under (`medias[]`, `numbers_csv`).
    pub files: Vec<(String, Upload)>,
    headers: HeaderMap,
}

impl<S: Send + Sync> FromRequest<S> for RaspiRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = Params::parse_urlencoded(req.uri().query().unwrap_or_default().as_bytes());
        let headers = req.headers().clone();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (body, files) = if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, state)
                .await
                .map_err(|_| ApiError::invalid("the multipart body is malformed."))?;
            read_multipart(multipart).await?
        } else {
            let bytes = Bytes::from_request(req, state)
                .await
                .map_err(|_| ApiError::invalid("the request body is too large or unreadable."))?;
            (Params::parse_urlencoded(&bytes), Vec::new())
        };
        Ok(RaspiRequest {
            query,
            body,
            files,
            headers,
        })
    }
}

async fn read_multipart(
    mut multipart: Multipart,
) -> Result<(Params, Vec<(String, Upload)>), ApiError> {
    let malformed = |_| ApiError::invalid("the multipart body is malformed.");
    let mut params = Params::default();
    let mut files = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        let name = field.name().unwrap_or_default().to_string();
        match field.file_name().map(str::to_string) {
            Some(filename) => {
                let bytes = field.bytes().await.map_err(malformed)?;
                files.push((
                    name,
                    Upload {
                        filename,
                        bytes: bytes.to_vec(),
                    },
                ));
            }
            None => params.insert(&name, field.text().await.map_err(malformed)?),
        }
    }
    Ok((params, files))
}

impl RaspiRequest {
    /// RaspiSMS's order: `api_key` in the query, then in the body, then `X-Api-Key`.
    fn api_key(&self) -> Option<&str> {
        self.query
            .text("api_key")
            .or_else(|| self.body.text("api_key"))
            .or_else(|| self.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
    }

    /// The caller's account: 401 (error 1) for a missing or unknown key, 403 (error 16) when
    /// the account is suspended.
    pub async fn authenticate(&self, app: &App) -> Result<User, ApiError> {
        let invalid = || ApiError::new(Code::InvalidCredentials, "");
        let key = self.api_key().ok_or_else(invalid)?;
        let user = accounts::by_api_key(app, key)
            .await
            .map_err(|e| ApiError::from_service(e, Code::InvalidCredentials))?
            .ok_or_else(invalid)?;
        if !user.is_active() {
            return Err(ApiError::new(Code::SuspendedUser, ""));
        }
        Ok(user)
    }

    pub fn body_text(&self, name: &str) -> Option<&str> {
        self.body.text(name)
    }

    pub fn query_text(&self, name: &str) -> Option<&str> {
        self.query.text(name)
    }

    /// Files uploaded under `name` or `name[...]`.
    pub fn files_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Upload> + 'a {
        self.files
            .iter()
            .filter(move |(field, _)| {
                field == name || field.strip_prefix(name).is_some_and(|r| r.starts_with('['))
            })
            .map(|(_, upload)| upload)
    }
}

/// Parses an id taken from the path or a parameter.
pub fn parse_id(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid(format!("{name} must be an integer id.")))
}

/// Ids given as one value or a list (`contacts=11`, `contacts[]=11&contacts[]=12`).
pub fn id_list(params: &Params, name: &str) -> Result<Vec<i64>, ApiError> {
    let Some(field) = params.get(name) else {
        return Ok(Vec::new());
    };
    field
        .values()
        .into_iter()
        .map(|v| {
            v.as_text()
                .ok_or_else(|| ApiError::invalid(format!("{name} must be ids.")))
        })
        .map(|t| t.and_then(|t| parse_id(name, t)))
        .collect()
}

/// A parameter that must be one text when given.
pub fn text_param(params: &Params, name: &str) -> Result<Option<String>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(Field::Text(t)) => Ok(Some(t.clone())),
        Some(Field::Map(_)) => Err(ApiError::invalid(format!("{name} must be a string."))),
    }
}

/// An object given as JSON text (`data={"a":"1"}`) or as fields (`data[a]=1`); empty is `{}`.
pub fn object_param(params: &Params, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
    let bad = || {
        ApiError::invalid(format!(
            "{name} must be a JSON object or {name}[key]=value fields."
        ))
    };
    match params.get(name) {
        None => Ok(None),
        Some(Field::Text(t)) if t.trim().is_empty() => Ok(Some(Map::new())),
        Some(Field::Text(t)) => match serde_json::from_str(t) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            _ => Err(bad()),
        },
        Some(Field::Map(entries)) => entries
            .iter()
            .map(|(k, v)| {
                v.as_text()
                    .map(|t| (k.clone(), Value::String(t.to_string())))
                    .ok_or_else(bad)
            })
            .collect::<Result<Map<_, _>, _>>()
            .map(Some),
    }
}
