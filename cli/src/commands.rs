//! Each operator command: one `TriggerAdmin` call and its printed result.

use crate::args::{self, Command, Output};
use crate::output::{Show, table};
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::trigger_admin_client::TriggerAdminClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The control plane refused or could not be reached (exit 1).
    Refused(String),
    /// The command line or an input file is wrong (exit 2).
    Usage(String),
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        Failure::Refused(format!(
            "{}: {}",
            code_name(status.code()),
            status.message()
        ))
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        InvalidArgument => "invalid argument",
        NotFound => "not found",
        AlreadyExists => "conflict",
        FailedPrecondition => "failed precondition",
        Unauthenticated => "unauthenticated",
        PermissionDenied => "permission denied",
        Unavailable => "control plane unavailable",
        _ => "error",
    }
}

/// An error and its sources, on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub type Client = TriggerAdminClient<InterceptedService<Channel, Auth>>;

/// Adds the admin token and the operator's name to every call.
#[derive(Clone)]
pub struct Auth {
    bearer: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    actor: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        if let Some(actor) = &self.actor {
            request
                .metadata_mut()
                .insert("x-switchboard-actor", actor.clone());
        }
        Ok(request)
    }
}

/// Connects an admin client to `url`, sending `token` as the bearer token.
pub async fn connect(url: &str, token: Option<&str>) -> Result<Client, Failure> {
    let bearer = match token {
        Some(token) => Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| Failure::Usage("--admin-token: not a valid header value".into()))?,
        ),
        None => None,
    };
    let actor = std::env::var("USER").ok().and_then(|u| u.parse().ok());
    let endpoint = Channel::from_shared(url.to_owned())
        .map_err(|e| Failure::Usage(format!("--control-plane: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| {
        Failure::Refused(format!(
            "cannot reach the control plane at {url}: {}",
            error_chain(&e)
        ))
    })?;
    Ok(TriggerAdminClient::with_interceptor(
        channel,
        Auth { bearer, actor },
    ))
}

/// What a command prints.
pub(crate) enum Printed {
    One(Value, Vec<String>, &'static [&'static str]),
    Many(Value, Vec<Vec<String>>, &'static [&'static str]),
    Deleted(String),
    Secret(Value, Vec<String>, &'static [&'static str], String),
}

fn one<T: Show>(item: &T) -> Printed {
    Printed::One(item.json(), item.row(), T::HEADERS)
}

pub(crate) fn many<T: Show>(items: &[T]) -> Printed {
    Printed::Many(
        Value::Array(items.iter().map(Show::json).collect()),
        items.iter().map(Show::row).collect(),
        T::HEADERS,
    )
}

/// Runs the command and prints its result to stdout.
pub async fn run(cli: args::Cli) -> Result<(), Failure> {
    let output = cli.output;
    // Read local input before touching the network, so usage errors stay usage errors.
    let replace_specs = match &cli.command {
        Command::Triggers(args::Triggers::Replace { file, .. }) => Some(read_specs(file)?),
        _ => None,
    };
    let mut c = connect(&cli.control_plane, cli.admin_token.as_deref()).await?;
    let printed = match cli.command {
        Command::Projects(args::Projects::Create { name }) => one(&c
            .create_project(pb::CreateProjectRequest { name })
            .await?
            .into_inner()),
        Command::Projects(args::Projects::List) => many(
            &c.list_projects(pb::ListProjectsRequest {})
                .await?
                .into_inner()
                .projects,
        ),
        Command::Customers(args::Customers::Create { project, name }) => one(&c
            .create_customer(pb::CreateCustomerRequest {
                project_id: project,
                name,
            })
            .await?
            .into_inner()),
        Command::Customers(args::Customers::List { project }) => many(
            &c.list_customers(pb::ListCustomersRequest {
                project_id: project,
            })
            .await?
            .into_inner()
            .customers,
        ),
        Command::Numbers(args::Numbers::Create {
            project,
            customer,
            phone_number_id,
            display_phone_number,
            default,
            access_token,
        }) => one(&c
            .create_number(pb::CreateNumberRequest {
                project_id: project,
                customer_id: customer,
                phone_number_id,
                display_phone_number,
                is_default: default,
                access_token,
            })
            .await?
            .into_inner()),
        Command::Numbers(args::Numbers::List { project }) => many(
            &c.list_numbers(pb::ListNumbersRequest {
                project_id: project,
            })
            .await?
            .into_inner()
            .numbers,
        ),
        Command::Numbers(args::Numbers::Delete { config_id }) => Printed::Deleted(
            c.delete_number(pb::DeleteNumberRequest {
                whatsapp_config_id: config_id,
            })
            .await?
            .into_inner()
            .id,
        ),
        Command::Workflows(args::Workflows::Create {
            project,
            name,
            status,
        }) => one(&c
            .create_workflow(pb::CreateWorkflowRequest {
                project_id: project,
                name,
                status: status.as_str().to_owned(),
            })
            .await?
            .into_inner()),
        Command::Workflows(args::Workflows::List { project }) => many(
            &c.list_workflows(pb::ListWorkflowsRequest {
                project_id: project,
            })
            .await?
            .into_inner()
            .workflows,
        ),
        Command::Workflows(args::Workflows::SetStatus { workflow, status }) => one(&c
            .set_workflow_status(pb::SetWorkflowStatusRequest {
                workflow_id: workflow,
                status: status.as_str().to_owned(),
            })
            .await?
            .into_inner()),
        Command::Workflows(args::Workflows::Delete { workflow }) => Printed::Deleted(
            c.delete_workflow(pb::DeleteWorkflowRequest {
                workflow_id: workflow,
            })
            .await?
            .into_inner()
            .id,
        ),
        Command::Triggers(args::Triggers::Create(t)) => one(&c
            .create_trigger(pb::CreateTriggerRequest {
                workflow_id: t.workflow,
                spec: Some(pb::TriggerSpec {
                    r#type: t.trigger_type.as_str().to_owned(),
                    phone_number_id: t.phone_number_id,
                    event_type: t.event,
                    inactive: t.inactive,
                }),
            })
            .await?
            .into_inner()),
        Command::Triggers(args::Triggers::List { workflow, project }) => many(
            &c.list_triggers(pb::ListTriggersRequest {
                workflow_id: workflow,
                project_id: project,
            })
            .await?
            .into_inner()
            .triggers,
        ),
        Command::Triggers(args::Triggers::Get { trigger }) => one(&c
            .get_trigger(pb::GetTriggerRequest {
                trigger_id: trigger,
            })
            .await?
            .into_inner()),
        Command::Triggers(args::Triggers::Activate { trigger }) => one(&c
            .activate_trigger(pb::ActivateTriggerRequest {
                trigger_id: trigger,
            })
            .await?
            .into_inner()),
        Command::Triggers(args::Triggers::Deactivate { trigger }) => one(&c
            .deactivate_trigger(pb::DeactivateTriggerRequest {
                trigger_id: trigger,
            })
            .await?
            .into_inner()),
        Command::Triggers(args::Triggers::Delete { trigger }) => Printed::Deleted(
            c.delete_trigger(pb::DeleteTriggerRequest {
                trigger_id: trigger,
            })
            .await?
            .into_inner()
            .id,
        ),
        Command::Triggers(args::Triggers::Replace { workflow, .. }) => many(
            &c.replace_triggers(pb::ReplaceTriggersRequest {
                workflow_id: workflow,
                triggers: replace_specs.unwrap_or_default(),
            })
            .await?
            .into_inner()
            .triggers,
        ),
        Command::ApiKeys(args::ApiKeys::Create {
            project,
            name,
            burst_limit,
        }) => {
            let created = c
                .create_api_key(pb::CreateApiKeyRequest {
                    project_id: project,
                    name,
                    burst_limit,
                })
                .await?
                .into_inner();
            let key = created.api_key.unwrap_or_default();
            let mut value = key.json();
            value["secret"] = json!(created.secret);
            Printed::Secret(value, key.row(), pb::ApiKey::HEADERS, created.secret)
        }
        Command::ApiKeys(args::ApiKeys::List { project }) => many(
            &c.list_api_keys(pb::ListApiKeysRequest {
                project_id: project,
            })
            .await?
            .into_inner()
            .api_keys,
        ),
        Command::ApiKeys(args::ApiKeys::Revoke { key }) => one(&c
            .revoke_api_key(pb::RevokeApiKeyRequest { api_key_id: key })
            .await?
            .into_inner()),
        Command::Dev(_) | Command::Decisions(_) | Command::Simulate(_) => {
            return Err(Failure::Usage("not an admin call".into()));
        }
        Command::Nodes(args::Nodes::List) => many(
            &c.list_nodes(pb::ListNodesRequest {})
                .await?
                .into_inner()
                .nodes,
        ),
        Command::Audit(args::Audit::List { project, limit }) => many(
            &c.list_audit_events(pb::ListAuditEventsRequest {
                project_id: project,
                limit,
            })
            .await?
            .into_inner()
            .events,
        ),
    };
    print(output, printed);
    Ok(())
}

pub(crate) fn print(output: Output, printed: Printed) {
    match (output, printed) {
        (Output::Json, Printed::One(value, ..) | Printed::Many(value, ..))
        | (Output::Json, Printed::Secret(value, ..)) => println!("{value}"),
        (Output::Json, Printed::Deleted(id)) => println!("{}", json!({"id": id, "deleted": true})),
        (Output::Table, Printed::One(_, row, headers)) => println!("{}", table(headers, &[row])),
        (Output::Table, Printed::Many(_, rows, headers)) => println!("{}", table(headers, &rows)),
        (Output::Table, Printed::Deleted(id)) => println!("deleted {id}"),
        (Output::Table, Printed::Secret(_, row, headers, secret)) => {
            println!("{}", table(headers, &[row]));
            println!("\nsecret: {secret}\n(shown once: store it now; only its SHA-256 is kept)");
        }
    }
}

/// One entry of a `triggers replace` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTrigger {
    #[serde(rename = "type")]
    trigger_type: String,
    #[serde(default)]
    phone_number_id: Option<String>,
    #[serde(default, alias = "event_type")]
    event: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

fn read_specs(path: &std::path::Path) -> Result<Vec<pb::TriggerSpec>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--file {}: {e}", path.display())))?;
    let entries: Vec<FileTrigger> = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("--file {}: {e}", path.display())))?;
    Ok(entries
        .into_iter()
        .map(|t| pb::TriggerSpec {
            r#type: t.trigger_type,
            phone_number_id: t.phone_number_id,
            event_type: t.event,
            inactive: !t.active,
        })
        .collect())
}
