//! Configuration of the `control-plane` binary: one struct, every flag also read from
//! `SWITCHBOARD_<FLAG>`.

use std::net::SocketAddr;

/// Flags of `control-plane serve`.
#[derive(Clone, clap::Args)]
pub struct Config {
    /// Catalog database: `postgres://…` in production, `sqlite://FILE?mode=rwc` embedded.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://switchboard.db?mode=rwc"
    )]
    pub database_url: String,
    /// Address of the admin API and routing distribution (gRPC).
    #[arg(
        long,
        env = "SWITCHBOARD_GRPC_LISTEN",
        default_value = "127.0.0.1:50051"
    )]
    pub grpc_listen: SocketAddr,
    /// Address of `/healthz` and `/metrics` (HTTP).
    #[arg(
        long,
        env = "SWITCHBOARD_HTTP_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub http_listen: SocketAddr,
    /// Token operators and internal services send as `authorization: Bearer <token>`.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    pub admin_token: String,
    /// Token data planes send as `x-switchboard-node-token`.
    #[arg(long, env = "SWITCHBOARD_NODE_TOKEN", hide_env_values = true, value_parser = secret)]
    pub node_token: String,
}

/// Flags of `control-plane migrate`.
#[derive(Clone, Debug, clap::Args)]
pub struct MigrateConfig {
    /// Catalog database to migrate.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://switchboard.db?mode=rwc"
    )]
    pub database_url: String,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("grpc_listen", &self.grpc_listen)
            .field("http_listen", &self.http_listen)
            .field("admin_token", &"<redacted>")
            .field("node_token", &"<redacted>")
            .finish()
    }
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Tokens must have some substance.
fn secret(value: &str) -> Result<String, String> {
    if value.trim().len() < 8 {
        Err("must be at least 8 characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://sb:hunter2@db:5432/sb"),
            "postgres://sb:***@db:5432/sb"
        );
        assert_eq!(
            redact_url("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }
}
