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
    /// Sign a Meta-shaped webhook, post it to a data plane and print its answer and the
    /// routing decisions it made (DESIGN §14). What is not given comes from the credentials
    /// `switchboard dev` keeps.
    #[command(subcommand)]
    Simulate(Simulate),
}

/// Where a simulated webhook goes, and how it is signed and explained.
#[derive(Args, Debug)]
pub struct SimulateTarget {
    /// The data plane's HTTP address.
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_PLANE",
        default_value = "http://127.0.0.1:8081"
    )]
    pub data_plane: String,
    /// Meta app secret the data plane checks signatures with (its `--meta-app-secret`);
    /// default: the one in `--dev-dir`.
    #[arg(long, env = "SWITCHBOARD_META_APP_SECRET", hide_env_values = true)]
    pub app_secret: Option<String>,
    /// An API key of the number's project, to read the routing decisions; default: the one
    /// in `--dev-dir`. Without one only the data plane's answer is printed.
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[command(flatten)]
    pub grpc: DataPlaneGrpc,
    /// Where `switchboard dev` keeps its credentials.
    #[arg(long, default_value = ".switchboard-dev")]
    pub dev_dir: std::path::PathBuf,
}

/// A message's type, as Meta names it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedType {
    Text,
    /// A quick-reply button of a template (`button`).
    Button,
    /// A reply button of an interactive message (`interactive` / `button_reply`).
    Interactive,
    /// An interactive list row (`interactive` / `list_reply`).
    List,
    Image,
    Video,
    Document,
    Audio,
    Sticker,
}

/// An outbound message's status, as Meta names it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

#[derive(Subcommand, Debug)]
pub enum Simulate {
    /// A customer's message (or `--count` of them in one webhook) to a business number.
    Message {
        #[command(flatten)]
        target: SimulateTarget,
        /// The business number (Meta's phone_number_id); default: the demo number of
        /// `switchboard dev`.
        #[arg(long, default_value = crate::dev::DEMO_PHONE_NUMBER_ID)]
        phone_number_id: String,
        /// The customer's WhatsApp number (`wa_id`), with or without `+`.
        #[arg(long, default_value = "+16505551234")]
        from: String,
        #[arg(long = "type", value_enum, default_value_t = SimulatedType::Text)]
        kind: SimulatedType,
        /// The text: body of a text, label of a button or reply, caption of a media.
        #[arg(long, default_value = "Hello")]
        text: String,
        /// A button's payload or a reply's id (default: derived from `--text`).
        #[arg(long)]
        payload: Option<String>,
        /// The message's id (`wamid…`); send the same id twice to see a redelivery.
        /// Default: a fresh one.
        #[arg(long)]
        message_id: Option<String>,
        /// The customer's profile name.
        #[arg(long, default_value = "Test Customer")]
        name: String,
        /// The customer's business-scoped user id (BSUID, e.g. `US.1349120865530274`).
        #[arg(long)]
        user_id: Option<String>,
        /// The customer's WhatsApp username.
        #[arg(long)]
        username: Option<String>,
        /// Messages in the webhook (a batch, ids suffixed `.1`, `.2`, …), 1-100.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// A status (sent, delivered, read, failed) of a message the business sent.
    Status {
        #[command(flatten)]
        target: SimulateTarget,
        /// The business number (Meta's phone_number_id); default: the demo number.
        #[arg(long, default_value = crate::dev::DEMO_PHONE_NUMBER_ID)]
        phone_number_id: String,
        #[arg(long, value_enum)]
        status: SimulatedStatus,
        /// The id (`wamid…`) of the outbound message the status is about.
        #[arg(long)]
        message_id: String,
        /// The customer the message went to (`recipient_id`), with or without `+`.
        #[arg(long, default_value = "+16505551234")]
        recipient: String,
        /// Meta's error code of a failed message.
        #[arg(long, default_value_t = 131049)]
        error_code: u32,
    },
    /// A webhook body from a file (`-`: standard input), sent as it is unless
    /// `--phone-number-id` rewrites the number of every change.
    File {
        #[command(flatten)]
        target: SimulateTarget,
        path: std::path::PathBuf,
        #[arg(long)]
        phone_number_id: Option<String>,
    },
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
