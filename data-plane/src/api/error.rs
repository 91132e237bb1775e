//! Errors of the platform API, independent of the transport: a kind (mapped to an HTTP
//! status in `http::platform` and to a gRPC code in `grpc`), the snake_case code and message
//! of DESIGN §5's error body, and the field at fault.

use crate::store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    PayloadTooLarge,
    Unprocessable,
    Unauthorized,
    NotFound,
    Conflict,
    RateLimited,
    Unavailable,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: Kind,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 422 naming `field`.
    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Unprocessable,
            code,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            Kind::Unauthorized,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key> or X-API-Key: <key>)",
        )
    }

    pub fn not_ready() -> Self {
        Self::new(
            Kind::Unavailable,
            "unavailable",
            "no routing table loaded yet; retry shortly",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            "payload_too_large",
            format!("the body is over {} KiB", limit / 1024),
        )
    }

    pub fn workflow_not_found() -> Self {
        Self::new(Kind::NotFound, "workflow_not_found", "workflow not found")
    }

    pub fn execution_not_found() -> Self {
        Self::new(Kind::NotFound, "execution_not_found", "execution not found")
    }

    pub fn invalid_json(err: &serde_json::Error) -> Self {
        Self::new(
            Kind::BadRequest,
            "invalid_json",
            format!("the body is not valid JSON: {err}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "execution store unavailable");
                ApiError::new(
                    Kind::Unavailable,
                    "unavailable",
                    "the execution store is unavailable; nothing was recorded, retry shortly",
                )
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "execution store returned a malformed record");
                ApiError::new(Kind::Internal, "internal", "internal error")
            }
        }
    }
}
