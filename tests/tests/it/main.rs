//! End-to-end tests: real control planes on port 0 against fresh PostgreSQL and SQLite
//! databases, driven over gRPC, through the real `switchboard` binary, and in a real
//! browser (the console).

mod api_conversations;
mod api_trigger;
mod browser;
mod catalog;
mod cli;
mod console;
mod decisions;
mod dev;
mod paging;
mod routing;
mod runners;
mod sends;
mod server;
mod store;
mod test_runs;
mod usernames;
mod webhooks;
