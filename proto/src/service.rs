//! What both services share to run: the listeners the caller binds ([`Listeners`]), and
//! their long-running tasks — servers and background loops — supervised by name
//! ([`Tasks`]): when one ends before the service is told to stop, with an error or without,
//! every other task is told to stop and the service ends saying which task it was.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The sockets a service serves on, bound by the caller (`127.0.0.1:0` in tests).
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub grpc: TcpListener,
}

/// A task that ended before the service was told to stop, or ended with an error.
#[derive(Debug, thiserror::Error)]
#[error("{task}: {error}")]
pub struct TaskFailed {
    pub task: &'static str,
    pub error: String,
}

/// The named tasks of one service.
#[derive(Debug)]
pub struct Tasks {
    running: JoinSet<Result<(), String>>,
    names: HashMap<tokio::task::Id, &'static str>,
    stop: watch::Sender<bool>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            running: JoinSet::new(),
            names: HashMap::new(),
            stop: watch::Sender::new(false),
        }
    }
}

impl Tasks {
    /// Becomes `true` when the tasks are to stop: give one to every task.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Completes when the tasks are to stop.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop_signal();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }

    /// Runs `task` under `name`. It is expected to run until [`Tasks::stop_signal`] says
    /// stop; ending earlier stops the service.
    pub fn spawn<E: Display>(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let handle = self
            .running
            .spawn(async move { task.await.map_err(|e| e.to_string()) });
        self.names.insert(handle.id(), name);
    }

    /// Waits until `shutdown` completes or a task ends, then tells every task to stop and
    /// waits for all of them. The first task that failed or ended early is the error.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), TaskFailed> {
        tokio::pin!(shutdown);
        let mut stopping = false;
        let mut failed = None;
        loop {
            let ended = tokio::select! {
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    self.stop.send_replace(true);
                    continue;
                }
                ended = self.running.join_next_with_id() => ended,
            };
            let (id, result) = match ended {
                None => break,
                Some(Ok(ended)) => ended,
                Some(Err(err)) => (err.id(), Err(format!("panicked: {err}"))),
            };
            let task = self.names.get(&id).copied().unwrap_or("a task");
            let error = match result {
                Err(error) => error,
                Ok(()) if stopping => continue,
                Ok(()) => "stopped by itself".to_owned(),
            };
            tracing::error!(task, %error, "a task of the service failed; stopping the service");
            failed.get_or_insert(TaskFailed { task, error });
            stopping = true;
            self.stop.send_replace(true);
        }
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn until_stopped(mut stop: watch::Receiver<bool>) -> Result<(), String> {
        let _ = stop.wait_for(|s| *s).await;
        Ok(())
    }

    #[tokio::test]
    async fn shutdown_stops_every_task() {
        let mut tasks = Tasks::default();
        for name in ["a", "b"] {
            tasks.spawn(name, until_stopped(tasks.stop_signal()));
        }
        let result = tasks
            .run(tokio::time::sleep(Duration::from_millis(10)))
            .await;
        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn a_failing_task_stops_the_others_and_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("server", until_stopped(tasks.stop_signal()));
        tasks.spawn("sweeper", async { Err::<(), _>("store gone") });
        let failed = tasks.run(std::future::pending()).await.err();
        let failed = failed.map(|f| (f.task, f.error));
        assert_eq!(failed, Some(("sweeper", "store gone".to_owned())));
    }

    #[tokio::test]
    async fn a_panicking_task_is_named() {
        let mut tasks = Tasks::default();
        tasks.spawn("server", until_stopped(tasks.stop_signal()));
        tasks.spawn("publisher", async {
            if true {
                panic!("boom");
            }
            Ok::<(), String>(())
        });
        let failed = tasks.run(std::future::pending()).await.err();
        assert_eq!(failed.map(|f| f.task), Some("publisher"));
    }

    #[tokio::test]
    async fn a_task_ending_early_stops_the_service() {
        let mut tasks = Tasks::default();
        tasks.spawn("server", until_stopped(tasks.stop_signal()));
        tasks.spawn("follower", async { Ok::<(), String>(()) });
        let failed = tasks.run(std::future::pending()).await.err();
        assert_eq!(failed.map(|f| f.task), Some("follower"));
    }
}
