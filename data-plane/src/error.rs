//! Why the data plane could not start, or stopped with an error. Request errors are
//! [`crate::api::ApiError`] and the modules' own; this is the service's.

use switchboard_proto::service::TaskFailed;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("--redis-url: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}
