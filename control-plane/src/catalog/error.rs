//! Errors of catalog operations. They name the field at fault; the gRPC edge
//! (`crate::admin`) turns them into `tonic::Status`.

use sea_orm::{DbErr, SqlErr};

/// A catalog operation that did not happen. Nothing was written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad id, empty name, unknown type, …).
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A referenced entity does not exist, or belongs to another project.
    #[error("{field}: {message}")]
    NotFound { field: String, message: String },
    /// A uniqueness rule of the catalog would be broken.
    #[error("{0}")]
    Conflict(String),
    /// Another trigger holds the slot a trigger would take (DESIGN §3): which one, so the
    /// caller can show it or take its place.
    #[error("{slot}: trigger {} of workflow {}", holder.trigger_id, holder.workflow_id)]
    SlotTaken { slot: String, holder: Holder },
    /// The entity is in a state that forbids the change (e.g. a number still in use).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database failed; details are logged, never shown to clients.
    #[error("database error: {0}")]
    Database(DbErr),
}

/// The trigger holding a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub trigger_id: String,
    pub workflow_id: String,
}

/// Result of catalog operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::NotFound {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<DbErr> for Error {
    /// Constraint violations are the database enforcing a catalog rule that a concurrent
    /// writer raced past the application's checks; they are conflicts, not failures.
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(detail)) => {
                Self::Conflict(format!("conflicts with an existing entry ({detail})"))
            }
            Some(SqlErr::ForeignKeyConstraintViolation(detail)) => {
                Self::FailedPrecondition(format!("still referenced ({detail})"))
            }
            _ => Self::Database(err),
        }
    }
}
