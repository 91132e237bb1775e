//! Configuration of the `data-plane` binary: one struct, every flag also read from
//! `SWITCHBOARD_<FLAG>`.

use std::net::SocketAddr;
use std::path::PathBuf;

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
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("control_plane", &self.control_plane)
            .field("node_id", &self.node_id)
            .field("node_token", &"<redacted>")
            .field("http_listen", &self.http_listen)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

fn secret(value: &str) -> Result<String, String> {
    if value.trim().len() < 8 {
        Err("must be at least 8 characters".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// `hostname-xxxxxx`.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "data-plane".to_owned());
    format!("{host}-{}", hex::encode(rand::random::<[u8; 3]>()))
}
