//! RaspiSMS's response envelope `{error, message, response, next, prev}`, its error codes and
//! message prefixes, and its HTTP statuses (which depend on the verb).

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::services::ServiceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidCredentials = 1,
    InvalidParameter = 2,
    MissingParameter = 4,
    CannotCreate = 8,
    SuspendedUser = 16,
    CannotDelete = 32,
    CannotUpdate = 128,
}

impl Code {
    fn prefix(self) -> &'static str {
        match self {
            Code::InvalidCredentials => {
                "Invalid API Key. Please provide a valid API key as GET or POST parameter \"api_key\" or a HTTP \"X-Api-Key\"."
            }
            Code::InvalidParameter => "You have specified an invalid parameter : ",
            Code::MissingParameter => "One require parameter is missing : ",
            Code::CannotCreate => "Cannot create a new entry.",
            Code::SuspendedUser => "This user account is currently suspended.",
            Code::CannotDelete => "Cannot delete this entry.",
            Code::CannotUpdate => "Cannot update this entry : ",
        }
    }
}

/// An error answer. Its HTTP status follows RaspiSMS: 401 and 403 for credentials, otherwise
/// 404 for GET and 400 for other verbs (set by [`verb_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub detail: String,
    /// 405 for a wrong verb, 404 for an unknown path; the verb rule otherwise.
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            detail: detail.into(),
            status: None,
        }
    }

    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidParameter, detail)
    }

    pub fn missing(detail: impl Into<String>) -> ApiError {
        ApiError::new(Code::MissingParameter, detail)
    }

    /// Maps a service error, using `fallback` (cannot create / update / delete) for what the
    /// caller did not get wrong.
    pub fn from_service(e: ServiceError, fallback: Code) -> ApiError {
        match e {
            ServiceError::Invalid(d) | ServiceError::Conflict(d) => ApiError::invalid(d),
            ServiceError::Missing(d) => ApiError::missing(d),
            ServiceError::NotFound => ApiError::new(fallback, not_found_detail(fallback)),
            ServiceError::State(d) => ApiError::new(fallback, d),
            ServiceError::Internal(d) => {
                tracing::error!(error = %d, "raspisms request failed");
                ApiError::new(fallback, "")
            }
        }
    }

    pub fn message(&self) -> String {
        let prefix = self.code.prefix();
        match self.code {
            Code::InvalidParameter | Code::MissingParameter | Code::CannotUpdate => {
                format!("{prefix}{}", self.detail)
            }
            _ if self.detail.is_empty() => prefix.to_string(),
            _ => format!("{prefix} : {}", self.detail),
        }
    }
}

fn not_found_detail(code: Code) -> &'static str {
    match code {
        Code::CannotUpdate => "No entry with this id.",
        _ => "",
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::from_service(e, Code::InvalidParameter)
    }
}

/// Marks a response whose status [`verb_status`] decides.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Success,
    Failure,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.code as i64,
            "message": self.message(),
            "response": null,
            "next": null,
            "prev": null,
        });
        let status = match (self.status, self.code) {
            (Some(status), _) => status,
            (None, Code::InvalidCredentials) => StatusCode::UNAUTHORIZED,
            (None, Code::SuspendedUser) => StatusCode::FORBIDDEN,
            (None, _) => {
                return json_response(StatusCode::BAD_REQUEST, &body, Some(Outcome::Failure));
            }
        };
        json_response(status, &body, None)
    }
}

/// A success answer: `response` plus optional pagination links.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub response: Value,
    pub next: Option<String>,
    pub prev: Option<String>,
}

impl Reply {
    pub fn new(response: impl Into<Value>) -> Reply {
        Reply {
            response: response.into(),
            next: None,
            prev: None,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let body = json!({
            "error": 0,
            "message": null,
            "response": self.response,
            "next": self.next,
            "prev": self.prev,
        });
        json_response(StatusCode::OK, &body, Some(Outcome::Success))
    }
}

fn json_response(status: StatusCode, body: &Value, outcome: Option<Outcome>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(outcome) = outcome {
        response.extensions_mut().insert(outcome);
    }
    response
}

/// RaspiSMS's automatic statuses: success is 200 for GET, 201 for POST, 204 for DELETE;
/// failure is 404 for GET and 400 otherwise.
pub fn verb_status(method: &Method, outcome: Outcome) -> StatusCode {
    match (outcome, method.as_str()) {
        (Outcome::Success, "POST" | "PUT" | "PATCH") => StatusCode::CREATED,
        (Outcome::Success, "DELETE") => StatusCode::NO_CONTENT,
        (Outcome::Success, _) => StatusCode::OK,
        (Outcome::Failure, "GET" | "HEAD") => StatusCode::NOT_FOUND,
        (Outcome::Failure, _) => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_exact_prefixes() {
        assert_eq!(
            ApiError::invalid("at must be a date.").message(),
            "You have specified an invalid parameter : at must be a date."
        );
        assert_eq!(
            ApiError::missing("text").message(),
            "One require parameter is missing : text"
        );
        assert_eq!(
            ApiError::new(Code::CannotDelete, "").message(),
            "Cannot delete this entry."
        );
        assert_eq!(
            ApiError::new(Code::CannotCreate, "disk full").message(),
            "Cannot create a new entry. : disk full"
        );
        assert_eq!(
            ApiError::new(Code::CannotUpdate, "No phone with this id.").message(),
            "Cannot update this entry : No phone with this id."
        );
    }

    #[test]
    fn statuses_follow_the_verb() {
        assert_eq!(
            verb_status(&Method::GET, Outcome::Failure),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            verb_status(&Method::POST, Outcome::Failure),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            verb_status(&Method::POST, Outcome::Success),
            StatusCode::CREATED
        );
        assert_eq!(
            verb_status(&Method::DELETE, Outcome::Success),
            StatusCode::NO_CONTENT
        );
        assert_eq!(verb_status(&Method::GET, Outcome::Success), StatusCode::OK);
    }
}
