//! The bottom of the workspace, shared by the control plane, the data plane and the CLI:
//! the generated gRPC code of `switchboard.v1`, the rules for what travels between the
//! planes ([`wire`]), and what both services need to run ([`service`]).
#![forbid(unsafe_code)]

/// The `switchboard.v1` package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("switchboard.v1");
}

/// Encoded `FileDescriptorSet` of every switchboard proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("switchboard_descriptor");

pub mod service;
pub mod wire;
