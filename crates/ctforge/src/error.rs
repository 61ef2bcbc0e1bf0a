//! The one mapping from failures to HTTP responses.
//!
//! Handlers return `Result<_, AppError>`; [`AppError`]'s `IntoResponse` picks the status in one
//! place, logs the cause chain once, and never leaks internals to the client.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::storage::StoreError;

/// A request failure, with the message shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is invalid; `fields` names each offending field.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Per-field messages.
        fields: Vec<(String, String)>,
    },
    /// No session or token.
    #[error("authentication required")]
    Unauthorized,
    /// Authenticated but not allowed (CSRF, permissions).
    #[error("{0}")]
    Forbidden(String),
    /// The thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Conflicts with current state (name taken, another action running).
    #[error("{0}")]
    Conflict(String),
    /// A dependency (Proxmox, SSH, Redis) is unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; details are logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// An input error without per-field details.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("record".to_owned()),
            StoreError::Conflict(what) => Self::Conflict(format!("already exists ({what})")),
            other => Self::Internal(other.into()),
        }
    }
}

/// The JSON error document every failed API request answers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// The HTTP status.
    pub status: u16,
    /// Per-field problems of invalid input.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

impl ErrorBody {
    /// The document of `error` answered with `status`.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            status: status.as_u16(),
            fields: BTreeMap::new(),
        }
    }
}

/// The user-facing message of an error answer, kept in the response's extensions so browser
/// routes can render it as a page (`web::errors`).
#[derive(Clone, Debug)]
pub struct ErrorMessage(pub String);

impl AppError {
    /// The JSON error document, answered with `status`.
    pub fn body_with(&self, status: StatusCode) -> ErrorBody {
        let mut body = ErrorBody::new(status, self.to_string());
        if let Self::Invalid { fields, .. } = self {
            body.fields = fields.iter().cloned().collect();
        }
        body
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut response = (status, Json(self.body_with(status))).into_response();
        response
            .extensions_mut()
            .insert(ErrorMessage(self.to_string()));
        response
    }
}
