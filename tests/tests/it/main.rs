//! End-to-end tests: real control planes on port 0 against fresh PostgreSQL and SQLite
//! databases, driven over gRPC and through the real `switchboard` binary.

mod api_trigger;
mod catalog;
mod cli;
mod console;
mod dev;
mod routing;
mod runners;
mod sends;
mod server;
mod store;
mod test_runs;
mod webhooks;
