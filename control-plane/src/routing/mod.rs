//! Routing tables: compiled from the catalog (`compiler`) into an encoded table (`table`),
//! kept current per replica (`publisher`) and streamed to data-plane nodes
//! (`distribution`).

pub mod compiler;
pub mod distribution;
pub mod incremental;
mod pg_copy;
pub mod publisher;
pub mod table;
