//! Compiles `switchboard/v1/*.proto` with the vendored `protoc`, so a fresh machine needs no
//! system protoc.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "switchboard/v1/admin.proto",
        "switchboard/v1/routing.proto",
        "switchboard/v1/executions.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // Snapshot chunks are encoded once and shared by every send: `Bytes`, not `Vec<u8>`.
    config.bytes([".switchboard.v1.SnapshotChunk.entries"]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("switchboard_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
