//! Configuration of the `data-plane` binary: one struct, every flag also read from
//! `SWITCHBOARD_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, clap::Args)]
pub struct Config {
    /// Control plane gRPC address (routing distribution).
    #[arg(
        long,
        env = "SWITCHBOARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051"
    )]
    pub control_plane: String,
    /// This node's id; default: hostname plus a random suffix.
    #[arg(long, env = "SWITCHBOARD_NODE_ID")]
    pub node_id: Option<String>,
    /// Token sent to the control plane as `x-switchboard-node-token`.
    #[arg(long, env = "SWITCHBOARD_NODE_TOKEN", hide_env_values = true, value_parser = secret)]
    pub node_token: String,
    /// Address of the platform API, webhooks, `/healthz`, `/readyz` and `/metrics`.
    #[arg(
        long,
        env = "SWITCHBOARD_HTTP_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    pub http_listen: SocketAddr,
    /// Where the last good routing snapshot is kept.
    #[arg(
        long,
        env = "SWITCHBOARD_STATE_DIR",
        default_value = "./switchboard-dp-state"
    )]
    pub state_dir: PathBuf,
    /// Redis URL of the execution store; `memory` selects the in-process store (dev only).
    #[arg(
        long,
        env = "SWITCHBOARD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Every Redis key starts with it (several deployments can share one Redis).
    #[arg(long, env = "SWITCHBOARD_REDIS_KEY_PREFIX", default_value = "sb", value_parser = key_prefix)]
    pub redis_key_prefix: String,
    /// Address of the `Executions` gRPC service.
    #[arg(
        long,
        env = "SWITCHBOARD_GRPC_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub grpc_listen: SocketAddr,
    /// Where the control plane reaches this node's `Executions` service (its console's Flow
    /// Test), e.g. `http://10.0.0.5:50052`. Default: `http://` and the bound
    /// `--grpc-listen` address, this host's name in place of an unspecified IP.
    #[arg(long, env = "SWITCHBOARD_ADVERTISE_GRPC", value_parser = advertised)]
    pub advertise_grpc: Option<String>,
    /// The Meta app secret: webhook POSTs are refused without it.
    #[arg(long, env = "SWITCHBOARD_META_APP_SECRET", hide_env_values = true, value_parser = secret)]
    pub meta_app_secret: Option<String>,
    /// Token Meta echoes in the webhook GET handshake.
    #[arg(long, env = "SWITCHBOARD_META_VERIFY_TOKEN", hide_env_values = true, value_parser = secret)]
    pub meta_verify_token: Option<String>,
    /// Workflow runners send `authorization: Bearer <token>` to the `Executions` service.
    #[arg(long, env = "SWITCHBOARD_RUNNER_TOKEN", hide_env_values = true, value_parser = secret)]
    pub runner_token: String,
    /// Base URL of Meta's Graph API (tests point it at a local fake).
    #[arg(
        long,
        env = "SWITCHBOARD_GRAPH_API_BASE",
        default_value = "https://graph.facebook.com/v24.0"
    )]
    pub graph_api_base: String,
    /// A conversation with no message for this long ends.
    #[arg(long, env = "SWITCHBOARD_CONVERSATION_INACTIVITY", default_value = "24h", value_parser = duration)]
    pub conversation_inactivity: Duration,
    /// An execution waiting longer than this fails with reason `waiting_timeout`.
    #[arg(long, env = "SWITCHBOARD_WAITING_TIMEOUT", default_value = "24h", value_parser = duration)]
    pub waiting_timeout: Duration,
    /// How long an execution record is kept after it is created.
    #[arg(long, env = "SWITCHBOARD_EXECUTION_RETENTION", default_value = "7d", value_parser = duration)]
    pub execution_retention: Duration,
    /// How long routing decisions are kept (DESIGN §13).
    #[arg(long, env = "SWITCHBOARD_DECISION_RETENTION", default_value = "7d", value_parser = duration)]
    pub decision_retention: Duration,
    /// Most routing decisions kept per project; the oldest go first.
    #[arg(long, env = "SWITCHBOARD_DECISION_CAP", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub decision_cap: u32,
    /// Take `metadata.request_ip` from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long, env = "SWITCHBOARD_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("control_plane", &self.control_plane)
            .field("node_id", &self.node_id)
            .field("node_token", &"<redacted>")
            .field("http_listen", &self.http_listen)
            .field("state_dir", &self.state_dir)
            .field("redis_url", &redacted_url(&self.redis_url))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("grpc_listen", &self.grpc_listen)
            .field("advertise_grpc", &self.advertise_grpc)
            .field(
                "meta_app_secret",
                &self.meta_app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "meta_verify_token",
                &self.meta_verify_token.as_ref().map(|_| "<redacted>"),
            )
            .field("runner_token", &"<redacted>")
            .field("graph_api_base", &self.graph_api_base)
            .field("conversation_inactivity", &self.conversation_inactivity)
            .field("waiting_timeout", &self.waiting_timeout)
            .field("execution_retention", &self.execution_retention)
            .field("decision_retention", &self.decision_retention)
            .field("decision_cap", &self.decision_cap)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .finish()
    }
}

fn advertised(value: &str) -> Result<String, String> {
    let value = value.trim().trim_end_matches('/');
    let valid = (value.starts_with("http://") || value.starts_with("https://"))
        && value.len() <= 256
        && value.parse::<tonic::transport::Uri>().is_ok();
    if valid {
        Ok(value.to_owned())
    } else {
        Err("must be an http:// or https:// URL of at most 256 characters".to_owned())
    }
}

/// The address to advertise for a gRPC listener bound to `bound` (see `--advertise-grpc`).
pub fn advertised_grpc(config: &Config, bound: SocketAddr) -> String {
    if let Some(url) = &config.advertise_grpc {
        return url.clone();
    }
    if bound.ip().is_unspecified() {
        let host = hostname().unwrap_or_else(|| "localhost".to_owned());
        return format!("http://{host}:{}", bound.port());
    }
    format!("http://{bound}")
}

fn secret(value: &str) -> Result<String, String> {
    if value.trim().len() < 8 {
        Err("must be at least 8 characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// A Redis URL without its password, for logs.
pub fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://<redacted>{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn key_prefix(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be 1-64 characters of letters, digits, `_`, `-`, `.`, `:` (no braces: they make Redis Cluster hash tags)".to_owned())
    }
}

fn duration(value: &str) -> Result<Duration, String> {
    let parsed =
        humantime::parse_duration(value).map_err(|e| format!("{e} (e.g. 30s, 24h, 7d)"))?;
    if parsed < Duration::from_secs(1) {
        Err("must be at least 1s".to_owned())
    } else {
        Ok(parsed)
    }
}

/// `hostname-xxxxxx`.
/// This machine's host name, if it has one.
fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

pub fn default_node_id() -> String {
    let host = hostname().unwrap_or_else(|| "data-plane".to_owned());
    format!("{host}-{}", hex::encode(rand::random::<[u8; 3]>()))
}
