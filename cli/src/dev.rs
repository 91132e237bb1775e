//! `switchboard dev`: a local Switchboard for newcomers. Runs the control plane and one data
//! plane in-process on the default ports with a SQLite catalog under `./.switchboard-dev/`,
//! seeds a demo project on first start, and prints everything needed to try it. A second
//! start reuses the data and the credentials stored next to it.

use crate::args::Dev;
use crate::commands::{Client, Failure, connect, error_chain};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use switchboard_proto::v1 as pb;
use switchboard_proto::wire::TriggerType;

/// Meta phone_number_id and display number of the demo number (DESIGN §2).
pub(crate) const DEMO_PHONE_NUMBER_ID: &str = "123456789012345";
const DEMO_DISPLAY_NUMBER: &str = "+15550000000";
const GRPC_LISTEN: &str = "127.0.0.1:50051";
const HTTP_LISTEN: &str = "127.0.0.1:8080";
const DATA_PLANE_LISTEN: &str = "127.0.0.1:8081";
const DATA_PLANE_GRPC_LISTEN: &str = "127.0.0.1:50052";

/// Generated once per dev directory; dev only (the file is created with mode 0600).
#[derive(Serialize, Deserialize, Default)]
struct Credentials {
    admin_token: String,
    node_token: String,
    meta_app_secret: String,
    meta_verify_token: String,
    #[serde(default = "token")]
    runner_token: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    workflow_id: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

/// What other commands (`simulate`) take from a dev directory: its app secret and API key,
/// when `switchboard dev` has run there. `Ok(None)` when it has not.
pub(crate) fn stored_credentials(dir: &Path) -> Result<Option<(String, Option<String>)>, Failure> {
    let path = dir.join("credentials.json");
    if !path.exists() {
        return Ok(None);
    }
    let credentials = load_or_create(&path)?;
    Ok(Some((credentials.meta_app_secret, credentials.api_key)))
}

fn token() -> String {
    hex::encode(rand::random::<[u8; 24]>())
}

fn load_or_create(path: &Path) -> Result<Credentials, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Failure::Usage(format!("{}: {e} (delete it to start over)", path.display()))
        }),
        Err(_) => Ok(Credentials {
            admin_token: token(),
            node_token: token(),
            meta_app_secret: token(),
            meta_verify_token: token(),
            runner_token: token(),
            ..Default::default()
        }),
    }
}

fn save(path: &Path, credentials: &Credentials) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(credentials)
        .map_err(|e| Failure::Refused(format!("cannot encode credentials: {e}")))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| restrict(&tmp))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| Failure::Refused(format!("cannot write {}: {e}", path.display())))
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

pub async fn run(args: Dev) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| Failure::Refused(format!("--dir {}: {e}", args.dir.display())))?;
    let path = args.dir.join("credentials.json");
    let mut credentials = load_or_create(&path)?;
    save(&path, &credentials)?;

    let bind = |addr: &'static str| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::Refused(format!("cannot listen on {addr}: {e}")))
    };
    let grpc = bind(GRPC_LISTEN).await?;
    let http = bind(HTTP_LISTEN).await?;
    let config = switchboard_control_plane::Config {
        database_url: args.database_url.clone(),
        grpc_listen: grpc
            .local_addr()
            .map_err(|e| Failure::Refused(e.to_string()))?,
        http_listen: http
            .local_addr()
            .map_err(|e| Failure::Refused(e.to_string()))?,
        admin_token: credentials.admin_token.clone(),
        node_token: credentials.node_token.clone(),
    };
    let data_plane_http = bind(DATA_PLANE_LISTEN).await?;
    let data_plane_grpc = bind(DATA_PLANE_GRPC_LISTEN).await?;
    // One Ctrl-C stops both planes.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        switchboard_control_plane::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics =
        switchboard_control_plane::metrics_handle().map_err(|e| Failure::Refused(e.to_string()))?;
    let control_plane = tokio::spawn(switchboard_control_plane::run(
        config,
        switchboard_control_plane::Listeners { http, grpc },
        stopped(stop_rx.clone()),
    ));

    let url = format!("http://{GRPC_LISTEN}");
    let mut client = wait_ready(&url, &credentials.admin_token).await?;
    if credentials.workflow_id.is_none() {
        seed(&mut client, &mut credentials).await?;
        save(&path, &credentials)?;
    }
    let local =
        |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| Failure::Refused(e.to_string()));
    let data_plane_config = switchboard_data_plane::Config {
        control_plane: url.clone(),
        node_id: Some("dev".into()),
        node_token: credentials.node_token.clone(),
        http_listen: local(&data_plane_http)?,
        state_dir: args.dir.join("dp-state"),
        redis_url: args.redis_url.clone(),
        redis_key_prefix: "sbdev".into(),
        grpc_listen: local(&data_plane_grpc)?,
        meta_app_secret: Some(credentials.meta_app_secret.clone()),
        meta_verify_token: Some(credentials.meta_verify_token.clone()),
        runner_token: credentials.runner_token.clone(),
        graph_api_base: "https://graph.facebook.com/v24.0".into(),
        conversation_inactivity: Duration::from_secs(24 * 3600),
        waiting_timeout: Duration::from_secs(24 * 3600),
        execution_retention: Duration::from_secs(7 * 24 * 3600),
        decision_retention: Duration::from_secs(7 * 24 * 3600),
        decision_cap: 10_000,
        trust_forwarded_for: false,
        advertise_grpc: None,
    };
    let data_plane = tokio::spawn(switchboard_data_plane::run(
        data_plane_config,
        switchboard_data_plane::Listeners {
            http: data_plane_http,
            grpc: data_plane_grpc,
        },
        std::sync::Arc::new(switchboard_data_plane::routing::RoutingSlot::default()),
        Some(metrics),
        stopped(stop_rx),
    ));
    print_welcome(&credentials, &args.redis_url);

    let (cp, dp) = tokio::join!(control_plane, data_plane);
    let failed = |plane: &str, e: &dyn std::error::Error| {
        Failure::Refused(format!("{plane}: {}", error_chain(e)))
    };
    match dp {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed("data plane", &e)),
        Err(e) => return Err(failed("data plane task", &e)),
    }
    match cp {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed("control plane", &e)),
        Err(e) => Err(failed("control plane task", &e)),
    }
}

async fn wait_ready(url: &str, admin_token: &str) -> Result<Client, Failure> {
    let mut last = String::new();
    for _ in 0..300 {
        match connect(url, Some(admin_token)).await {
            Ok(mut client) => match client
                .get_routing_version(pb::GetRoutingVersionRequest {})
                .await
            {
                Ok(_) => return Ok(client),
                Err(status) => last = status.message().to_owned(),
            },
            Err(Failure::Refused(m) | Failure::Usage(m)) => last = m,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Failure::Refused(format!(
        "control plane did not become ready: {last}"
    )))
}

/// Creates the demo of DESIGN §2: project, default number, active workflow with an active
/// API trigger, and an API key.
async fn seed(client: &mut Client, credentials: &mut Credentials) -> Result<(), Failure> {
    let project = client
        .create_project(pb::CreateProjectRequest {
            name: "demo".into(),
        })
        .await?
        .into_inner();
    client
        .create_number(pb::CreateNumberRequest {
            project_id: project.id.clone(),
            customer_id: None,
            phone_number_id: DEMO_PHONE_NUMBER_ID.into(),
            display_phone_number: DEMO_DISPLAY_NUMBER.into(),
            is_default: true,
            access_token: None,
        })
        .await?;
    let workflow = client
        .create_workflow(pb::CreateWorkflowRequest {
            project_id: project.id.clone(),
            name: "demo".into(),
            status: "active".into(),
        })
        .await?
        .into_inner();
    client
        .create_trigger(pb::CreateTriggerRequest {
            workflow_id: workflow.id.clone(),
            spec: Some(pb::TriggerSpec {
                r#type: TriggerType::ApiCall.as_str().into(),
                ..Default::default()
            }),
        })
        .await?;
    let key = client
        .create_api_key(pb::CreateApiKeyRequest {
            project_id: project.id.clone(),
            name: "demo".into(),
            burst_limit: None,
        })
        .await?
        .into_inner();
    credentials.project_id = Some(project.id);
    credentials.workflow_id = Some(workflow.id);
    credentials.api_key = Some(key.secret);
    Ok(())
}

fn print_welcome(c: &Credentials, store: &str) {
    let project = c.project_id.as_deref().unwrap_or_default();
    let workflow = c.workflow_id.as_deref().unwrap_or_default();
    let api_key = c.api_key.as_deref().unwrap_or("-");
    let store = if store == "memory" {
        "in-process memory (executions are lost on restart; --redis-url to keep them)"
    } else {
        "Redis"
    };
    println!(
        "\nSwitchboard dev is running (Ctrl-C to stop).\n\
         \n  control plane gRPC   http://{GRPC_LISTEN}\
         \n  web console          http://{HTTP_LISTEN}/console/ (log in with the admin token below)\
         \n  control plane HTTP   http://{HTTP_LISTEN}/healthz, /metrics\
         \n  data plane HTTP      http://{DATA_PLANE_LISTEN} (platform API, /readyz, /healthz, /metrics)\
         \n  data plane gRPC      http://{DATA_PLANE_GRPC_LISTEN} (Executions)\
         \n  execution store      {store}\
         \n\n  admin token          {}\
         \n  node token           {}\
         \n  runner token         {}\
         \n  API key              {api_key}\
         \n  Meta app secret      {}\
         \n  Meta verify token    {}\
         \n\n  demo project         {project}\
         \n  demo workflow        {workflow} (active, API trigger)\
         \n  demo number          {DEMO_PHONE_NUMBER_ID} ({DEMO_DISPLAY_NUMBER}, project default)\
         \n\nStart the demo workflow:\
         \n  curl -s -X POST http://{DATA_PLANE_LISTEN}/platform/v1/workflows/{workflow}/executions \\\
         \n    -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\
         \n    -d '{{\"workflow_execution\": {{\"phone_number\": \"+1234567890\", \"variables\": {{\"name\": \"Ada\"}}}}}}'\
         \n\nThen read the execution with the tracking_id it answers:\
         \n  curl -s http://{DATA_PLANE_LISTEN}/platform/v1/workflow_executions/TRACKING_ID \\\
         \n    -H 'Authorization: Bearer {api_key}'\
         \n\nSend a signed WhatsApp message to the demo number and see what it started:\
         \n  cargo run --release --bin switchboard -- simulate message --text Hi\
         \n\nTry the catalog from another terminal:\
         \n  export SWITCHBOARD_ADMIN_TOKEN={}\
         \n  cargo run --release --bin switchboard -- triggers list --project {project}\
         \n  cargo run --release --bin switchboard -- audit list\
         \n  cargo run --release --bin switchboard -- nodes list\n",
        c.admin_token,
        c.node_token,
        c.runner_token,
        c.meta_app_secret,
        c.meta_verify_token,
        c.admin_token,
    );
}
