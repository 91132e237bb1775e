//! The conversation endpoints of the platform API (DESIGN §5): read a conversation, list
//! them, end one; and the stored status of an outbound message. Scoped to the key's
//! project like everything else: another project's conversation is not found.

use super::paging::{Listed, NumberedPage, Paging, RawPaging};
use super::{ApiError, Kind, Platform, phone};
use crate::store::conversations::ConversationStatus;
use crate::store::{Conversation, ConversationQuery, MessageState};
use crate::whatsapp::lifecycle::EndError;
use serde_json::Value;
use uuid::Uuid;

/// Raw query parameters of the conversation list.
#[derive(Debug, Default)]
pub struct ListParams<'a> {
    pub phone_number_id: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub status: Option<&'a str>,
    pub paging: RawPaging<'a>,
}

fn conversation_not_found() -> ApiError {
    ApiError::new(
        Kind::NotFound,
        "conversation_not_found",
        "conversation not found",
    )
}

/// A page cursor: `<last activity ms>_<conversation id>`.
pub fn cursor((at, id): (i64, Uuid)) -> String {
    format!("{at}_{id}")
}

fn parse_cursor(raw: &str) -> Option<(i64, Uuid)> {
    let (at, id) = raw.split_once('_')?;
    Some((at.parse().ok()?, Uuid::parse_str(id).ok()?))
}

impl From<EndError> for ApiError {
    fn from(err: EndError) -> Self {
        match err {
            EndError::NotReady => ApiError::not_ready(),
            EndError::Store(err) => err.into(),
        }
    }
}

impl Platform {
    /// `GET /platform/v1/whatsapp/conversations/{id}`.
    pub async fn conversation(
        &self,
        api_key: Option<&str>,
        id: &str,
    ) -> Result<Conversation, ApiError> {
        let project_id = self.project_of(api_key)?;
        self.conversation_of(project_id, id).await
    }

    /// A conversation of `project_id`, by the id a caller gave.
    pub async fn conversation_of(
        &self,
        project_id: Uuid,
        id: &str,
    ) -> Result<Conversation, ApiError> {
        let id = Uuid::parse_str(id).map_err(|_| conversation_not_found())?;
        self.store
            .conversation(id)
            .await?
            .filter(|c| c.project_id == project_id)
            .ok_or_else(conversation_not_found)
    }

    /// `GET /platform/v1/whatsapp/conversations`.
    pub async fn conversations(
        &self,
        api_key: Option<&str>,
        params: &ListParams<'_>,
    ) -> Result<Listed<Conversation, (i64, Uuid)>, ApiError> {
        let table = self.table()?;
        let project_id = Self::authenticate(&table, api_key)?.project_id;
        if let Some(pnid) = params.phone_number_id
            && table
                .number(pnid)
                .is_none_or(|n| n.project_id != project_id)
        {
            return Err(ApiError::new(
                Kind::NotFound,
                "phone_number_not_found",
                "phone_number_id is not a number of this project",
            ));
        }
        let phone_number = params
            .phone_number
            .map(|p| {
                phone::normalize(p).ok_or_else(|| {
                    ApiError::field(
                        "invalid_phone_number",
                        "phone_number",
                        "phone_number must be + and 7-15 digits",
                    )
                })
            })
            .transpose()?;
        let status = params
            .status
            .map(|s| {
                ConversationStatus::parse(s).ok_or_else(|| {
                    ApiError::field("invalid_status", "status", "status must be active or ended")
                })
            })
            .transpose()?;
        let (limit, after, page) = match params.paging.parse()? {
            Paging::Cursor { limit, after } => {
                let after = after
                    .map(|a| {
                        parse_cursor(a).ok_or_else(|| {
                            ApiError::field(
                                "invalid_cursor",
                                "after",
                                "after must be a cursor from a previous page",
                            )
                        })
                    })
                    .transpose()?;
                (limit, after, None)
            }
            Paging::Numbered { page, per_page } => (per_page, None, Some(page)),
        };
        let query = ConversationQuery {
            project_id,
            phone_number_id: params.phone_number_id.map(str::to_owned),
            phone_number,
            status,
            limit,
            after,
        };
        match page {
            None => {
                let page = self.store.conversations(&query).await?;
                Ok(Listed::Cursor {
                    rows: page.conversations,
                    after: page.after,
                })
            }
            Some(page) => {
                let numbered = self.store.numbered_conversations(&query, page).await?;
                Ok(Listed::Numbered(NumberedPage {
                    rows: numbered.rows,
                    page,
                    per_page: limit,
                    total_count: numbered.total,
                }))
            }
        }
    }

    /// `PATCH /platform/v1/whatsapp/conversations/{id}`: ends it (once; ending an ended
    /// conversation changes nothing and fires nothing).
    pub async fn update_conversation(
        &self,
        api_key: Option<&str>,
        id: &str,
        body: &[u8],
    ) -> Result<Conversation, ApiError> {
        let project_id = self.project_of(api_key)?;
        let conversation = self.conversation_of(project_id, id).await?;
        let body: Value = serde_json::from_slice(body).map_err(|e| ApiError::invalid_json(&e))?;
        let inner = body
            .get("whatsapp_conversation")
            .ok_or_else(|| {
                ApiError::field(
                    "missing_field",
                    "whatsapp_conversation",
                    "whatsapp_conversation is required",
                )
            })?
            .as_object()
            .ok_or_else(|| {
                ApiError::field(
                    "invalid_type",
                    "whatsapp_conversation",
                    "whatsapp_conversation must be an object",
                )
            })?;
        match inner.get("status") {
            Some(Value::String(s)) if s == "ended" => {}
            None => {
                return Err(ApiError::field(
                    "missing_field",
                    "whatsapp_conversation.status",
                    "whatsapp_conversation.status is required",
                ));
            }
            Some(_) => {
                return Err(ApiError::field(
                    "invalid_status",
                    "whatsapp_conversation.status",
                    "a conversation can only be set to ended",
                ));
            }
        }
        self.lifecycle.end(&conversation).await?;
        self.conversation_of(project_id, id).await
    }

    /// `GET /platform/v1/whatsapp/messages/{wamid}`: the stored status of an outbound
    /// message of the key's project.
    pub async fn message(&self, api_key: Option<&str>, id: &str) -> Result<MessageState, ApiError> {
        let project_id = self.project_of(api_key)?;
        let not_found = || ApiError::new(Kind::NotFound, "message_not_found", "message not found");
        self.store
            .message_state(&project_id, id)
            .await?
            .filter(|m| m.project_id == project_id)
            .ok_or_else(not_found)
    }
}
