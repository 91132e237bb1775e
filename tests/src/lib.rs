//! Test harness for Switchboard's end-to-end tests: fresh databases (PostgreSQL and SQLite)
//! per test, real servers started in-process on port 0, and clients for them.
#![forbid(unsafe_code)]

pub mod admin;
pub mod bench;
pub mod bulk;
pub mod console;
pub mod db;
pub mod graph;
pub mod platform;
pub mod redis;
pub mod runner;
pub mod servers;
pub mod stack;
pub mod whatsapp;

pub use admin::Admin;
pub use db::{Backend, TestDb};
pub use redis::{RedisProxy, TestRedis};
pub use servers::{ControlPlane, DataPlane};

/// Admin token every test control plane is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";
/// Node token every test control plane is started with.
pub const NODE_TOKEN: &str = "test-node-token";
/// Runner token every test data plane is started with.
pub const RUNNER_TOKEN: &str = "test-runner-token";
/// The Meta app secret and verify token of test data planes.
pub const META_APP_SECRET: &str = "test-meta-app-secret";
pub const META_VERIFY_TOKEN: &str = "test-meta-verify-token";

/// Path of a workspace binary (`switchboard`, `control-plane`, `data-plane`) next to the test
/// executable; `scripts/test` builds them before the tests run.
pub fn binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .ok_or_else(|| anyhow::anyhow!("unexpected test binary location {}", exe.display()))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        path.display()
    );
    Ok(path)
}

/// Runs `test` against each database in turn: `both_databases!(name)` makes
/// `name::postgres` and `name::sqlite` tests from `async fn name(Backend)`.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() -> anyhow::Result<()> {
                super::$name($crate::Backend::Postgres).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() -> anyhow::Result<()> {
                super::$name($crate::Backend::Sqlite).await
            }
        }
    )+};
}
