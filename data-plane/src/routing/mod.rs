//! Routing on the data plane: the table (`table`), the slot readers load it from (`slot`),
//! its copy on disk (`snapshot_file`) and the stream that keeps it current (`sync`).

pub mod slot;
pub mod snapshot_file;
pub mod sync;
pub mod table;

pub use slot::{RoutingSlot, Source};
pub use table::{ApiKey, EventType, Number, RoutingTable, Workflow};
