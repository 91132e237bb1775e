//! Real servers started in-process on `127.0.0.1:0`, stopped through their shutdown future.

use crate::{ADMIN_TOKEN, Admin, NODE_TOKEN, RUNNER_TOKEN};
use std::sync::Arc;
use std::time::Duration;
use switchboard_control_plane::Config;
use switchboard_data_plane::routing::RoutingSlot;
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
        Self::start_on(database_url, "127.0.0.1:0").await
    }

    /// Starts on a given gRPC address (to bring a stopped control plane back where its
    /// data planes look for it).
    pub async fn start_on(database_url: &str, grpc_addr: &str) -> anyhow::Result<Self> {
        let grpc = TcpListener::bind(grpc_addr).await?;
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
        let listeners = switchboard_control_plane::Listeners { http, grpc };
        let task = tokio::spawn(switchboard_control_plane::run(config, listeners, async {
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

/// A running data plane.
#[derive(Debug)]
pub struct DataPlane {
    pub node_id: String,
    pub http_url: String,
    pub grpc_url: String,
    pub slot: Arc<RoutingSlot>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), switchboard_data_plane::Error>>>,
}

impl DataPlane {
    /// Starts a data plane following `control_plane` with its state in `state_dir` and the
    /// in-process execution store. It is not waited for: tests wait for the version they
    /// expect.
    pub async fn start(
        control_plane: &str,
        node_id: &str,
        state_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        Self::start_with_store(control_plane, node_id, state_dir, "memory", "sbtest").await
    }

    /// Starts a data plane whose execution store is `redis_url` (or `memory`) with keys
    /// under `prefix`.
    pub async fn start_with_store(
        control_plane: &str,
        node_id: &str,
        state_dir: &std::path::Path,
        redis_url: &str,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        Self::start_with(control_plane, node_id, state_dir, redis_url, prefix, |_| {}).await
    }

    /// Like [`Self::start_with_store`], with `tweak` applied to the configuration (the Meta
    /// app secret and verify token are [`crate::META_APP_SECRET`] and
    /// [`crate::META_VERIFY_TOKEN`]).
    pub async fn start_with(
        control_plane: &str,
        node_id: &str,
        state_dir: &std::path::Path,
        redis_url: &str,
        prefix: &str,
        tweak: impl FnOnce(&mut switchboard_data_plane::Config),
    ) -> anyhow::Result<Self> {
        let http = TcpListener::bind("127.0.0.1:0").await?;
        let grpc = TcpListener::bind("127.0.0.1:0").await?;
        let http_url = format!("http://{}", http.local_addr()?);
        let grpc_url = format!("http://{}", grpc.local_addr()?);
        let mut config = switchboard_data_plane::Config {
            control_plane: control_plane.to_owned(),
            node_id: Some(node_id.to_owned()),
            node_token: NODE_TOKEN.to_owned(),
            http_listen: http.local_addr()?,
            state_dir: state_dir.to_owned(),
            redis_url: redis_url.to_owned(),
            redis_key_prefix: prefix.to_owned(),
            grpc_listen: grpc.local_addr()?,
            meta_app_secret: Some(crate::META_APP_SECRET.to_owned()),
            meta_verify_token: Some(crate::META_VERIFY_TOKEN.to_owned()),
            runner_token: RUNNER_TOKEN.to_owned(),
            graph_api_base: "http://127.0.0.1:9/unused".to_owned(),
            conversation_inactivity: Duration::from_secs(24 * 3600),
            waiting_timeout: Duration::from_secs(24 * 3600),
            execution_retention: Duration::from_secs(7 * 24 * 3600),
            decision_retention: Duration::from_secs(7 * 24 * 3600),
            decision_cap: 10_000,
            trust_forwarded_for: false,
            advertise_grpc: None,
        };
        tweak(&mut config);
        let slot = Arc::new(RoutingSlot::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(switchboard_data_plane::run(
            config,
            switchboard_data_plane::Listeners { http, grpc },
            slot.clone(),
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            node_id: node_id.to_owned(),
            http_url,
            grpc_url,
            slot,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Waits (up to 30 s) until the node has applied `version` or later.
    pub async fn wait_version(&self, version: i64) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(30), self.slot.wait_for_version(version))
            .await
            .map_err(|_| {
                let held = self.slot.table().map(|t| t.version());
                anyhow::anyhow!(
                    "{} did not reach version {version} (holds {held:?})",
                    self.node_id
                )
            })
    }

    /// `GET /readyz`: status code and body.
    pub async fn readyz(&self) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = reqwest::get(format!("{}/readyz", self.http_url)).await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

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

impl Drop for DataPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
