//! Switchboard data plane: will hold the routing table in memory and serve webhooks, the
//! API trigger and the Executions service. (Routing and execution issues fill this in.)
#![forbid(unsafe_code)]

/// Version reported to the control plane in the routing hello.
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
