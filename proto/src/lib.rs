//! Generated gRPC code for `switchboard.v1`: the bottom of the workspace, shared by the
//! control plane, the data plane and the CLI.
#![forbid(unsafe_code)]

/// The `switchboard.v1` package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("switchboard.v1");
}

/// Encoded `FileDescriptorSet` of every switchboard proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("switchboard_descriptor");
