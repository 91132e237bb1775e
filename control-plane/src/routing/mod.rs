//! Routing tables: compiled from the catalog (`compiler`, `incremental`) into an encoded
//! table (`table`), kept current per replica (`publisher`) and streamed to data-plane nodes
//! (`distribution`), a large change while it still compiles (`streaming`).

pub mod compiler;
pub mod distribution;
pub mod incremental;
mod pg_copy;
pub mod publisher;
pub mod streaming;
pub mod table;
