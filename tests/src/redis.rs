//! The real Redis of the test run (`SWITCHBOARD_TEST_REDIS_URL`, set by scripts/test;
//! default `redis://127.0.0.1:6379`): each test gets its own key prefix and deletes its keys
//! when done, so other users of the server are not disturbed. [`RedisProxy`] puts a TCP
//! forwarder in front of it that a test can cut and restore, to see Redis go away and come
//! back without touching the shared server.

use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn redis_url() -> String {
    std::env::var("SWITCHBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A unique key prefix on the test Redis; its keys are deleted on drop.
#[derive(Debug)]
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        Self {
            url: redis_url(),
            prefix: format!("sbtest-{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// Every key under the prefix, sorted (`KEYS` answers in hash-table order, which
    /// changes when Redis rehashes).
    pub fn keys(&self) -> anyhow::Result<Vec<String>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut connection = client.get_connection()?;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut connection)?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// Every key under the prefix with its serialized value (`DUMP`), to assert that
    /// nothing was written: a new key, a changed field or a stream entry all show.
    pub fn contents(&self) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut connection = client.get_connection()?;
        let mut contents = std::collections::BTreeMap::new();
        for key in self.keys()? {
            let value: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(&mut connection)?;
            if let Some(value) = value {
                contents.insert(key, value);
            }
        }
        Ok(contents)
    }
}

/// Deletes every key starting with `prefix` (SCAN + UNLINK, 1000 at a time); returns how
/// many. For benchmarks, whose key counts are too large for `KEYS`.
pub async fn delete_prefix(redis_url: &str, prefix: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(redis_url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            deleted += keys.len();
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Ok(keys) = self.keys()
            && !keys.is_empty()
            && let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut connection) = client.get_connection()
        {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// A TCP forwarder to the test Redis on a fixed local port; [`cut`](Self::cut) closes the
/// port and every forwarded connection, [`restore`](Self::restore) reopens the same port.
#[derive(Debug)]
pub struct RedisProxy {
    pub url: String,
    addr: std::net::SocketAddr,
    upstream: String,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
}

impl RedisProxy {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = redis_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let mut proxy = Self {
            url: format!("redis://{addr}"),
            addr,
            upstream,
            running: None,
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let upstream: Arc<str> = self.upstream.as_str().into();
        let task = tokio::spawn(async move {
            let mut connections = Vec::new();
            let mut stop_rx = stopped.clone();
            loop {
                tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => break,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { break };
                        let upstream = upstream.clone();
                        let mut stopped = stopped.clone();
                        connections.push(tokio::spawn(async move {
                            let Ok(server) = TcpStream::connect(&*upstream).await else { return };
                            let (mut client, mut server) = (client, server);
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = stopped.wait_for(|s| *s) => {}
                            }
                        }));
                    }
                }
            }
            for connection in connections {
                let _ = connection.await;
            }
        });
        self.running = Some((stop, task));
    }

    /// Redis goes away: the port closes and open connections drop.
    pub async fn cut(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Redis comes back on the same address.
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }
}
