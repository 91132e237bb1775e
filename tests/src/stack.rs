//! The usual end-to-end setup: a control plane on a fresh SQLite catalog, one data plane on
//! the test Redis (its own key prefix) or on the in-process memory store, one seeded tenant,
//! and clients for the platform API and Meta's webhook.

use crate::platform::{Platform, Tenant};
use crate::whatsapp::Meta;
use crate::{Admin, Backend, ControlPlane, DataPlane, TestDb, TestRedis};

/// Runs `test` against each execution store in turn: `both_stores!(name)` makes
/// `name::redis` and `name::memory` tests from `async fn name(redis: bool)`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() -> anyhow::Result<()> {
                super::$name(true).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() -> anyhow::Result<()> {
                super::$name(false).await
            }
        }
    )+};
}

#[derive(Debug)]
pub struct Stack {
    _db: TestDb,
    _state: tempfile::TempDir,
    /// `None` on the memory store.
    pub redis: Option<TestRedis>,
    pub cp: ControlPlane,
    pub dp: DataPlane,
    pub admin: Admin,
    pub tenant: Tenant,
    pub api: Platform,
    pub meta: Meta,
}

impl Stack {
    pub async fn start(redis: bool) -> anyhow::Result<Self> {
        Self::start_with(redis, |_| {}).await
    }

    /// With `tweak` applied to the data plane's configuration.
    pub async fn start_with(
        redis: bool,
        tweak: impl FnOnce(&mut switchboard_data_plane::Config),
    ) -> anyhow::Result<Self> {
        let db = TestDb::fresh(Backend::Sqlite).await?;
        let cp = ControlPlane::start(&db.url).await?;
        let mut admin = cp.admin().await?;
        let tenant = Tenant::seed(&mut admin, "acme", None).await?;
        let redis = redis.then(TestRedis::new);
        let state = tempfile::tempdir()?;
        let (url, prefix) = match &redis {
            Some(r) => (r.url.clone(), r.prefix.clone()),
            None => ("memory".to_owned(), "unused".to_owned()),
        };
        let dp =
            DataPlane::start_with(&cp.grpc_url, "dp-1", state.path(), &url, &prefix, tweak).await?;
        dp.wait_version(admin.routing_version().await?).await?;
        let api = Platform::new(&dp.http_url);
        let meta = Meta::new(&dp.http_url);
        Ok(Self {
            _db: db,
            _state: state,
            redis,
            cp,
            dp,
            admin,
            tenant,
            api,
            meta,
        })
    }

    /// Waits until the data plane holds the catalog's current version.
    pub async fn sync(&mut self) -> anyhow::Result<()> {
        let version = self.admin.routing_version().await?;
        self.dp.wait_version(version).await
    }

    /// A new active workflow of the tenant with one trigger, synced to the data plane;
    /// returns (workflow id, trigger id).
    pub async fn workflow(
        &mut self,
        name: &str,
        kind: &str,
        number: Option<&str>,
        event: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        let workflow = self
            .admin
            .workflow(&self.tenant.project_id, name, "active")
            .await?;
        let trigger = self
            .admin
            .trigger(&workflow.id, crate::admin::spec(kind, number, event))
            .await?;
        self.sync().await?;
        Ok((workflow.id, trigger.id))
    }

    /// `GET` of an execution of the tenant, which must exist.
    pub async fn execution(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self.api.execution(id, &self.tenant.key).await?;
        anyhow::ensure!(reply.status == 200, "execution {id}: {:?}", reply.body);
        Ok(reply.body)
    }

    /// Every execution of a workflow (up to 100), newest first.
    pub async fn executions(&self, workflow_id: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let reply = self
            .api
            .list(workflow_id, &self.tenant.key, "limit=100")
            .await?;
        anyhow::ensure!(reply.status == 200, "list: {:?}", reply.body);
        Ok(reply.body["data"].as_array().cloned().unwrap_or_default())
    }

    /// The tenant's default number's Meta id.
    pub fn pnid(&self) -> &str {
        &self.tenant.phone_number_id
    }

    /// A webhook POST signed like Meta's, which must be answered 200; its answer.
    pub async fn post(&self, body: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self.meta.post(body).await?;
        anyhow::ensure!(
            reply.status == 200,
            "webhook answered {}: {:?}",
            reply.status,
            reply.body
        );
        Ok(reply.body)
    }

    /// `GET` of a conversation of the tenant, which must exist.
    pub async fn conversation(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self
            .api
            .get(
                &format!("/platform/v1/whatsapp/conversations/{id}"),
                &self.tenant.key,
            )
            .await?;
        anyhow::ensure!(reply.status == 200, "conversation {id}: {:?}", reply.body);
        Ok(reply.body)
    }

    /// The conversation list with `query`.
    pub async fn conversations(&self, query: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self
            .api
            .get(
                &format!("/platform/v1/whatsapp/conversations?{query}"),
                &self.tenant.key,
            )
            .await?;
        anyhow::ensure!(reply.status == 200, "conversations: {:?}", reply.body);
        Ok(reply.body)
    }

    /// Moves an execution of the tenant to `ended`.
    pub async fn end(&self, execution_id: &str) -> anyhow::Result<()> {
        let reply = self
            .api
            .set_status(execution_id, &self.tenant.key, "ended")
            .await?;
        anyhow::ensure!(reply.status == 200, "end: {:?}", reply.body);
        Ok(())
    }
}
