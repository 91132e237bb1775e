//! `switchboard`: the operator CLI, a gRPC client of the control plane (DESIGN §2), and of
//! data planes for what each keeps (`decisions`) and what they answer Meta (`simulate`).
//! Exit codes: 0 success, 1 the server refused (its message on stderr), 2 usage errors.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod decisions;
mod dev;
mod output;
mod simulate;

use clap::Parser;
use std::process::ExitCode;

/// `switchboard dev` runs a control plane and a data plane in this process: the same
/// allocator as their own binaries.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let dev = matches!(cli.command, args::Command::Dev(_));
    let runtime = if dev {
        init_tracing();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("switchboard: cannot start runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            args::Command::Dev(dev) => dev::run(dev).await,
            args::Command::Decisions(command) => decisions::run(command, cli.output).await,
            args::Command::Simulate(command) => simulate::run(command, cli.output).await,
            _ => commands::run(cli).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Refused(message)) => {
            eprintln!("switchboard: {message}");
            ExitCode::from(1)
        }
        Err(commands::Failure::Usage(message)) => {
            eprintln!("switchboard: {message}");
            ExitCode::from(2)
        }
    }
}

/// Logs of `dev` go to stderr, so the welcome text on stdout stays readable.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
