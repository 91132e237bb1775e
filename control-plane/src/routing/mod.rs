//! Routing tables: compiled from the catalog (`compiler`, `incremental`) into an encoded
//! table (`encoded`: every entry as it travels to the data planes), kept current per replica
//! (`publisher`) and streamed to data-plane nodes (`distribution`), a large change while it
//! still compiles (`streaming`).

pub mod compiler;
pub mod distribution;
pub mod encoded;
pub mod incremental;
mod pg_copy;
pub mod publisher;
pub mod streaming;
