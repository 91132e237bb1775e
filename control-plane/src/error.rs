//! Why the control plane could not start, or stopped with an error. Catalog operations have
//! their own error (`catalog::Error`); this is the service's.

use switchboard_proto::service::TaskFailed;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error("metrics recorder: {0}")]
    Metrics(String),
    #[error("routing: {0}")]
    Routing(String),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}
