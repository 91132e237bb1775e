//! Routing decisions through the platform API (DESIGN §13): the list, newest first, and one
//! decision, each of the caller's project only; and the decisions of refusals taken here,
//! before the store is asked (the store records the others with their effect).

use super::{ApiError, Caller, Kind, Platform, paging};
use crate::store::decisions::{Decision, DecisionQuery, Draft, Outcome, reason};
use uuid::Uuid;

/// The raw filters of `GET /platform/v1/routing_decisions` (empty values are absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecisionParams<'a> {
    pub phone_number_id: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub workflow_id: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub after: Option<&'a str>,
    /// Numbered pages are refused (a capped, trimmed list has no stable page numbers).
    pub page: Option<&'a str>,
    pub per_page: Option<&'a str>,
}

fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.is_empty())
}

/// `field` as a UUID; a 422 naming it otherwise.
fn uuid_field(field: &'static str, value: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    present(value)
        .map(|v| {
            Uuid::parse_str(v).map_err(|_| {
                ApiError::field("invalid_id", field, format!("{field} must be a UUID"))
            })
        })
        .transpose()
}

/// The longest message or number id a filter takes (Meta's are far shorter).
const ID_MAX: usize = 256;

fn text_field(field: &'static str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    match present(value) {
        Some(v) if v.len() > ID_MAX => Err(ApiError::field(
            "invalid_id",
            field,
            format!("{field} must be at most {ID_MAX} characters"),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

impl DecisionParams<'_> {
    /// The query of `project_id`, checked.
    pub fn query(&self, project_id: Uuid) -> Result<DecisionQuery, ApiError> {
        for (name, value) in [("page", self.page), ("per_page", self.per_page)] {
            if present(value).is_some() {
                return Err(ApiError::field(
                    "invalid_paging",
                    name,
                    "routing decisions are listed newest first with limit and after",
                ));
            }
        }
        let outcome = present(self.outcome)
            .map(|o| {
                Outcome::parse(o).ok_or_else(|| {
                    let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
                    ApiError::field(
                        "invalid_outcome",
                        "outcome",
                        format!("outcome must be one of {}", names.join(", ")),
                    )
                })
            })
            .transpose()?;
        let after = present(self.after)
            .map(|a| {
                Uuid::parse_str(a).map_err(|_| {
                    ApiError::field(
                        "invalid_cursor",
                        "after",
                        "after must be a cursor from a previous page",
                    )
                })
            })
            .transpose()?;
        Ok(DecisionQuery {
            project_id,
            phone_number_id: text_field("phone_number_id", self.phone_number_id)?,
            conversation_id: uuid_field("conversation_id", self.conversation_id)?,
            message_id: text_field("message_id", self.message_id)?,
            workflow_id: uuid_field("workflow_id", self.workflow_id)?,
            outcome,
            limit: paging::limit(self.limit)?,
            after,
        })
    }
}

/// A page of decisions and the cursor of the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecisionList {
    pub decisions: Vec<Decision>,
    pub after: Option<Uuid>,
}

impl Platform {
    /// The project a caller acts for.
    pub fn project_for(&self, caller: Caller<'_>) -> Result<Uuid, ApiError> {
        Ok(Self::scope(&*self.table()?, caller)?.0)
    }

    /// Decisions of the caller's project, newest first.
    pub async fn routing_decisions(
        &self,
        caller: Caller<'_>,
        params: &DecisionParams<'_>,
    ) -> Result<DecisionList, ApiError> {
        let query = params.query(self.project_for(caller)?)?;
        let page = self.store.decisions(&query).await?;
        Ok(DecisionList {
            decisions: page.decisions,
            after: page.after,
        })
    }

    /// One decision of the caller's project (another project's is not found).
    pub async fn routing_decision(
        &self,
        caller: Caller<'_>,
        id: &str,
    ) -> Result<Decision, ApiError> {
        let project_id = self.project_for(caller)?;
        let not_found = || {
            ApiError::new(
                Kind::NotFound,
                "routing_decision_not_found",
                "routing decision not found",
            )
        };
        let id = Uuid::parse_str(id).map_err(|_| not_found())?;
        self.store
            .decision(project_id, id)
            .await?
            .ok_or_else(not_found)
    }

    /// Records the decision of `err`, a refusal taken before the store was asked, and
    /// answers `err`. Errors that decide nothing (the store unavailable) record nothing.
    pub(super) async fn refused(&self, draft: &Draft, err: ApiError) -> ApiError {
        self.refused_as(draft.decide(Outcome::Refused, None), err)
            .await
    }

    /// [`Platform::refused`] with the decision's other fields filled by the caller.
    pub(super) async fn refused_as(&self, decision: Decision, err: ApiError) -> ApiError {
        if let Some(decision) = refusal(decision, &err)
            && let Err(failure) = self.store.record_decision(&decision).await
        {
            // The caller still hears why it was refused; only the record is missing.
            tracing::warn!(error = %failure, code = err.code, "routing decision not recorded");
        }
        err
    }
}

/// `decision` (a refusal) with the reason and detail of `err`, unless `err` decides nothing.
fn refusal(mut decision: Decision, err: &ApiError) -> Option<Decision> {
    let reason = match (err.kind, err.code) {
        (Kind::Unavailable | Kind::Internal | Kind::Unauthorized, _) => return None,
        (_, "workflow_not_found") => reason::WORKFLOW_NOT_FOUND,
        (_, "workflow_inactive") => reason::WORKFLOW_DRAFT,
        (_, "trigger_inactive") => reason::TRIGGER_INACTIVE,
        (_, "no_trigger") => reason::NO_TRIGGER,
        (_, "execution_not_found") => reason::EXECUTION_NOT_FOUND,
        _ => {
            decision.detail = Some(err.field.clone().unwrap_or_else(|| err.code.to_owned()));
            reason::INVALID_REQUEST
        }
    };
    decision.outcome = Outcome::Refused;
    decision.reason = Some(reason.to_owned());
    Some(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::decisions::Source;

    #[test]
    fn refusals_name_their_reason_and_invalid_requests_their_field() {
        let draft = Draft::new(Uuid::nil(), Source::Api, 0);
        let refused = |err: ApiError| refusal(draft.decide(Outcome::Refused, None), &err);
        let d = refused(ApiError::workflow_not_found()).expect("a decision");
        assert_eq!(d.reason.as_deref(), Some(reason::WORKFLOW_NOT_FOUND));
        let d = refused(ApiError::field(
            "invalid_type",
            "workflow_execution.phone_number",
            "x",
        ))
        .expect("a decision");
        assert_eq!(d.reason.as_deref(), Some(reason::INVALID_REQUEST));
        assert_eq!(d.detail.as_deref(), Some("workflow_execution.phone_number"));
        let unavailable = ApiError::new(Kind::Unavailable, "unavailable", "x");
        assert_eq!(refused(unavailable), None);
    }

    #[test]
    fn filters_are_checked_and_named() {
        let err = DecisionParams {
            outcome: Some("maybe"),
            ..Default::default()
        }
        .query(Uuid::nil())
        .expect_err("an unknown outcome");
        assert_eq!(err.field.as_deref(), Some("outcome"));
        let err = DecisionParams {
            conversation_id: Some("x"),
            ..Default::default()
        }
        .query(Uuid::nil())
        .expect_err("not a UUID");
        assert_eq!(err.field.as_deref(), Some("conversation_id"));
        let err = DecisionParams {
            page: Some("2"),
            ..Default::default()
        }
        .query(Uuid::nil())
        .expect_err("numbered pages");
        assert_eq!(err.field.as_deref(), Some("page"));
        let q = DecisionParams {
            outcome: Some("refused"),
            limit: Some("5"),
            ..Default::default()
        }
        .query(Uuid::nil())
        .expect("valid");
        assert_eq!((q.outcome, q.limit), (Some(Outcome::Refused), 5));
    }
}
