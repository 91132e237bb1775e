//! Real servers started in-process on `127.0.0.1:0`, stopped through their shutdown future.

use crate::{ADMIN_TOKEN, Admin, NODE_TOKEN};
use std::time::Duration;
use switchboard_control_plane::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    pub grpc_url: String,
    pub http_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), switchboard_control_plane::Error>>>,
}

impl ControlPlane {
    /// Starts a control plane on `database_url` and waits until its gRPC health check
    /// answers SERVING.
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let grpc_addr = grpc.local_addr()?;
        let http_addr = http.local_addr()?;
        let config = Config {
            database_url: database_url.to_owned(),
            grpc_listen: grpc_addr,
            http_listen: http_addr,
            admin_token: ADMIN_TOKEN.to_owned(),
            node_token: NODE_TOKEN.to_owned(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(switchboard_control_plane::run(config, grpc, http, async {
            let _ = stopped.await;
        }));
        let cp = Self {
            grpc_url: format!("http://{grpc_addr}"),
            http_url: format!("http://{http_addr}"),
            stop: Some(stop),
            task: Some(task),
        };
        cp.wait_ready().await?;
        Ok(cp)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let channel = tonic::transport::Channel::from_shared(self.grpc_url.clone())?;
            if let Ok(channel) = channel.connect().await {
                let mut health = HealthClient::new(channel);
                let reply = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if reply.is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32) {
                    return Ok(());
                }
            }
            if self.task.as_ref().is_some_and(JoinHandle::is_finished) {
                anyhow::bail!("control plane exited during start-up");
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "control plane not ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An admin client with the right token.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        Admin::connect(&self.grpc_url, Some(ADMIN_TOKEN)).await
    }

    /// Stops the control plane gracefully and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
