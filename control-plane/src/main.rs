//! `control-plane [serve]` and `control-plane migrate`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard_control_plane::{
    Config, Listeners, MigrateConfig, db, migrate, run, shutdown_signal,
};
use tokio::net::TcpListener;

/// Compiling a large catalog allocates and frees a lot at once; mimalloc does that faster
/// than the system allocator and gives the memory back.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "control-plane", version, about = "Switchboard control plane")]
struct Cli {
    /// Log format: `text` or `json`.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text", global = true,
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the admin API (the default).
    Serve(Config),
    /// Apply pending migrations and exit.
    Migrate(MigrateConfig),
}

fn main() -> std::process::ExitCode {
    // `serve` is the default subcommand.
    let mut args: Vec<String> = std::env::args().collect();
    let first = args.get(1).map(String::as_str);
    if !matches!(
        first,
        Some("serve" | "migrate" | "help" | "-h" | "--help" | "-V" | "--version")
    ) {
        args.insert(1, "serve".to_owned());
    }
    let cli = Cli::parse_from(args);
    init_tracing(&cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("control-plane: cannot start runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main_async(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("control-plane: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn main_async(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate(config) => {
            let db = db::connect(&config.database_url)
                .await
                .context("--database-url: cannot connect")?;
            let applied = migrate(&db).await?;
            if applied.is_empty() {
                println!("schema is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Serve(config) => {
            let grpc = TcpListener::bind(config.grpc_listen)
                .await
                .with_context(|| format!("--grpc-listen: cannot bind {}", config.grpc_listen))?;
            let http = TcpListener::bind(config.http_listen)
                .await
                .with_context(|| format!("--http-listen: cannot bind {}", config.http_listen))?;
            run(config, Listeners { http, grpc }, shutdown_signal()).await?;
            Ok(())
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Logs go to stderr; stdout is for command output (`migrate`).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
