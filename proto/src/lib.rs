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

/// Trigger types; the strings are also `system.trigger_type` (DESIGN §3).
pub const TRIGGER_TYPES: [&str; 3] = ["inbound_message", "whatsapp_event", "api_call"];

/// Event types a `whatsapp_event` trigger can observe (DESIGN §3).
pub const EVENT_TYPES: [&str; 7] = [
    "whatsapp.message.received",
    "whatsapp.message.sent",
    "whatsapp.message.delivered",
    "whatsapp.message.read",
    "whatsapp.message.failed",
    "whatsapp.conversation.created",
    "whatsapp.conversation.ended",
];
