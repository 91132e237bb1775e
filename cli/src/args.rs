//! The command line of `switchboard` (DESIGN §2).

use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard_proto::wire;

#[derive(Parser, Debug)]
#[command(name = "switchboard", version, about = "Switchboard operator CLI")]
pub struct Cli {
    /// Control plane gRPC address.
    #[arg(
        long,
        env = "SWITCHBOARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    pub control_plane: String,
    /// Admin token, sent as `authorization: Bearer <token>`.
    #[arg(
        long,
        env = "SWITCHBOARD_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a local Switchboard (control plane, SQLite) with a seeded demo project.
    Dev(Dev),
    /// Projects (tenants).
    #[command(subcommand)]
    Projects(Projects),
    /// Customers of a project.
    #[command(subcommand)]
    Customers(Customers),
    /// WhatsApp business numbers.
    #[command(subcommand)]
    Numbers(Numbers),
    /// Workflows.
    #[command(subcommand)]
    Workflows(Workflows),
    /// Triggers: when a workflow starts.
    #[command(subcommand)]
    Triggers(Triggers),
    /// API keys of a project.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeys),
    /// Data-plane nodes.
    #[command(subcommand)]
    Nodes(Nodes),
    /// The audit log.
    #[command(subcommand)]
    Audit(Audit),
    /// Why workflows did or did not start: routing decisions and unrouted updates, read
    /// from a data plane (DESIGN §13).
    #[command(subcommand)]
    Decisions(Decisions),
}

/// Where a data plane's `Executions` gRPC service is.
#[derive(Args, Debug)]
pub struct DataPlaneGrpc {
    /// A data plane's gRPC address.
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_PLANE_GRPC",
        default_value = "http://127.0.0.1:50052"
    )]
    pub data_plane_grpc: String,
}

#[derive(Subcommand, Debug)]
pub enum Decisions {
    /// A project's routing decisions, newest first (the project of the API key).
    List {
        #[command(flatten)]
        data_plane: DataPlaneGrpc,
        /// An API key of the project.
        #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
        api_key: String,
        #[arg(long)]
        phone_number_id: Option<String>,
        #[arg(long)]
        conversation: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        /// started, delivered, handoff, inbox, duplicate, ignored or refused.
        #[arg(long)]
        outcome: Option<String>,
        /// 1-100 (default 20).
        #[arg(long)]
        limit: Option<u32>,
        /// The cursor printed after the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Webhook updates of no project that this data plane received, newest first.
    Unrouted {
        #[command(flatten)]
        data_plane: DataPlaneGrpc,
        /// The nodes' token (`--node-token` of the data plane).
        #[arg(long, env = "SWITCHBOARD_NODE_TOKEN", hide_env_values = true)]
        node_token: String,
        /// object, field, malformed, status or number.
        #[arg(long)]
        reason: Option<String>,
        /// 1-1000 (default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum Projects {
    Create {
        #[arg(long)]
        name: String,
    },
    List,
}

#[derive(Subcommand, Debug)]
pub enum Customers {
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
    },
    List {
        #[arg(long)]
        project: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Numbers {
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        customer: Option<String>,
        /// Meta's phone_number_id.
        #[arg(long)]
        phone_number_id: String,
        /// E.164 display number, e.g. +15550000000.
        #[arg(long)]
        display_phone_number: String,
        /// Make it the project's default number.
        #[arg(long)]
        default: bool,
        /// Graph API access token (write-only; never shown again).
        #[arg(long, env = "SWITCHBOARD_NUMBER_ACCESS_TOKEN", hide_env_values = true)]
        access_token: Option<String>,
    },
    List {
        #[arg(long)]
        project: String,
    },
    Delete {
        /// The number's whatsapp_config_id.
        config_id: i64,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum WorkflowStatus {
    Active,
    Draft,
}

impl WorkflowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draft => "draft",
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Workflows {
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t = WorkflowStatus::Draft)]
        status: WorkflowStatus,
    },
    List {
        #[arg(long)]
        project: String,
    },
    SetStatus {
        workflow: String,
        #[arg(value_enum)]
        status: WorkflowStatus,
    },
    Delete {
        workflow: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
#[value(rename_all = "snake_case")]
pub enum TriggerType {
    InboundMessage,
    WhatsappEvent,
    ApiCall,
}

impl TriggerType {
    /// The wire name (`switchboard_proto::wire::TriggerType`).
    pub fn as_str(self) -> &'static str {
        let wire = match self {
            Self::InboundMessage => wire::TriggerType::InboundMessage,
            Self::WhatsappEvent => wire::TriggerType::WhatsappEvent,
            Self::ApiCall => wire::TriggerType::ApiCall,
        };
        wire.as_str()
    }
}

#[derive(Subcommand, Debug)]
pub enum Triggers {
    Create(CreateTrigger),
    List {
        #[arg(long, conflicts_with = "project")]
        workflow: Option<String>,
        #[arg(long)]
        project: Option<String>,
    },
    Get {
        trigger: String,
    },
    Activate {
        trigger: String,
    },
    Deactivate {
        trigger: String,
    },
    Delete {
        trigger: String,
    },
    /// Replace every trigger of a workflow with those in a JSON file, all or nothing.
    Replace {
        #[arg(long)]
        workflow: String,
        /// JSON array of `{"type", "phone_number_id"?, "event"?, "active"?}`.
        #[arg(long)]
        file: std::path::PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct CreateTrigger {
    #[arg(long)]
    pub workflow: String,
    #[arg(long = "type", value_enum)]
    pub trigger_type: TriggerType,
    /// Event type of a whatsapp_event trigger, e.g. whatsapp.message.received.
    #[arg(long)]
    pub event: Option<String>,
    #[arg(long)]
    pub phone_number_id: Option<String>,
    /// Create the trigger inactive.
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Subcommand, Debug)]
pub enum ApiKeys {
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        /// Executions per second per workflow for this key.
        #[arg(long)]
        burst_limit: Option<u32>,
    },
    List {
        #[arg(long)]
        project: String,
    },
    Revoke {
        key: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum Nodes {
    List,
}

#[derive(Subcommand, Debug)]
pub enum Audit {
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
}

#[derive(Args, Debug)]
pub struct Dev {
    /// Catalog database of the dev instance.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://.switchboard-dev/catalog.db?mode=rwc"
    )]
    pub database_url: String,
    /// Execution store: `memory` (in-process) or a Redis URL.
    #[arg(long, env = "SWITCHBOARD_REDIS_URL", default_value = "memory")]
    pub redis_url: String,
    /// Directory holding the dev database and generated credentials.
    #[arg(long, default_value = ".switchboard-dev")]
    pub dir: std::path::PathBuf,
}
