//! `switchboard`: the operator CLI, a gRPC client of the control plane (DESIGN §2).
//! Exit codes: 0 success, 1 the server refused (its message on stderr), 2 usage errors.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("switchboard: cannot start runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
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
