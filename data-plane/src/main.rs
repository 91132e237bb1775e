//! `data-plane`: parse flags, init tracing and metrics, run until SIGINT/SIGTERM.

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;
use switchboard_data_plane::{Config, Listeners, routing::RoutingSlot, run};

/// mimalloc returns freed memory to the system more readily than the default allocator,
/// which keeps RSS close to the live routing table after large snapshots.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "data-plane", version, about = "Switchboard data plane")]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(flatten)]
    config: Config,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("data-plane: cannot start runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(cli.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("data-plane: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_async(config: Config) -> anyhow::Result<()> {
    let recorder =
        switchboard_data_plane::metrics_recorder().context("building the metrics recorder")?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
    let http = tokio::net::TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("--http-listen: cannot bind {}", config.http_listen))?;
    let grpc = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("--grpc-listen: cannot bind {}", config.grpc_listen))?;
    run(
        config,
        Listeners { http, grpc },
        Arc::new(RoutingSlot::default()),
        Some(handle),
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
