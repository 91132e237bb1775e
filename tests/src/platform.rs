//! A tenant ready for the platform API (project, default number, active workflow with an
//! active API trigger, API key) and an HTTP client for a data plane's platform endpoints.

use crate::Admin;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// Meta ids of test numbers are 15 digits; each tenant gets fresh ones.
pub fn meta_id() -> String {
    format!("1{:014}", rand_u64() % 100_000_000_000_000)
}

fn rand_u64() -> u64 {
    let id = uuid::Uuid::now_v7();
    let bytes = id.as_bytes();
    u64::from_be_bytes([
        bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15],
    ])
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub project_id: String,
    pub workflow_id: String,
    pub api_trigger_id: String,
    /// The default number: Meta id and config id.
    pub phone_number_id: String,
    pub whatsapp_config_id: i64,
    pub key_id: String,
    pub key: String,
}

impl Tenant {
    pub async fn seed(
        admin: &mut Admin,
        name: &str,
        burst_limit: Option<u32>,
    ) -> anyhow::Result<Self> {
        let project = admin.project(name).await?;
        let phone_number_id = meta_id();
        let number = admin.number(&project.id, &phone_number_id, true).await?;
        let workflow = admin.workflow(&project.id, name, "active").await?;
        let trigger = admin
            .trigger(&workflow.id, crate::admin::spec("api_call", None, None))
            .await?;
        let (key_id, key) = admin.api_key(&project.id, burst_limit).await?;
        Ok(Self {
            project_id: project.id,
            workflow_id: workflow.id,
            api_trigger_id: trigger.id,
            phone_number_id,
            whatsapp_config_id: number.whatsapp_config_id,
            key_id,
            key,
        })
    }
}

/// A response: status, headers and JSON body (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// `error.field` of an error body.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or_default()
    }
}

/// The platform API of one data plane.
#[derive(Clone, Debug)]
pub struct Platform {
    pub base: String,
    http: reqwest::Client,
}

impl Platform {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Reply> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `POST …/executions` with a raw body and a Bearer key.
    pub fn start_raw(
        &self,
        workflow_id: &str,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::RequestBuilder {
        self.http
            .post(format!(
                "{}/platform/v1/workflows/{workflow_id}/executions",
                self.base
            ))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
    }

    pub async fn start(&self, workflow_id: &str, key: &str, body: &Value) -> anyhow::Result<Reply> {
        self.send(self.start_raw(workflow_id, key, body.to_string()))
            .await
    }

    pub async fn execution(&self, id: &str, key: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .get(format!(
                    "{}/platform/v1/workflow_executions/{id}",
                    self.base
                ))
                .header("x-api-key", key),
        )
        .await
    }

    pub async fn list(&self, workflow_id: &str, key: &str, query: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .get(format!(
                    "{}/platform/v1/workflows/{workflow_id}/executions?{query}",
                    self.base
                ))
                .bearer_auth(key),
        )
        .await
    }

    pub async fn set_status(&self, id: &str, key: &str, status: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .patch(format!(
                    "{}/platform/v1/workflow_executions/{id}",
                    self.base
                ))
                .bearer_auth(key)
                .json(&serde_json::json!({ "status": status })),
        )
        .await
    }

    /// `GET {base}{path}` with the key.
    pub async fn get(&self, path: &str, key: &str) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(key),
        )
        .await
    }

    /// `PATCH {base}{path}` with the key and a JSON body.
    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .patch(format!("{}{path}", self.base))
                .bearer_auth(key)
                .json(body),
        )
        .await
    }

    /// `POST {base}{path}` with the key and a raw body.
    pub async fn post(
        &self,
        path: &str,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<Reply> {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }
}
