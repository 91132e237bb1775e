//! Routing decisions in Redis (see [`crate::store::decisions`]): one sorted set per project
//! (`d:<project>`, in its shard) of members `"<id> <JSON>"`, all of score 0, so that they
//! sort by id — UUIDv7, by time — and a page is one `ZREVRANGEBYLEX`. The scripts that
//! route write them (`scripts/decision.lua`, the block [`RedisStore::decision_block`]
//! builds); [`Decisions::record_decision`] writes the refusals taken before any script.

use super::RedisStore;
use crate::store::decisions::{Decision, DecisionPage, DecisionQuery, Draft, Fired};
use crate::store::keys::first_id_at;
use crate::store::{Decisions, NewExecution, StoreError};
use crate::time::now_ms;
use serde::Serialize;
use uuid::Uuid;

/// Set members read per round trip while listing.
const BATCH: usize = 200;
/// Round trips one list call may spend skipping filtered-out decisions before it returns a
/// short page with a cursor.
const ROUNDS: usize = 10;

/// The fields an execution gives the decision that started it (those the draft does not
/// hold already: a JSON object names each field once).
#[derive(Serialize)]
struct Concerns {
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_id: Option<Uuid>,
    execution_id: Uuid,
}

/// `value`'s JSON object with its braces taken off: members to append to another object.
fn members(value: &impl Serialize) -> Result<String, StoreError> {
    let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(json
        .strip_prefix('{')
        .and_then(|j| j.strip_suffix('}'))
        .unwrap_or_default()
        .to_owned())
}

impl RedisStore {
    /// The trailing arguments of a script that records `draft` (`decision_at` in
    /// `scripts/decision.lua`), naming the executions it may start by role.
    /// Without a draft the script records nothing.
    pub(super) fn decision_block(
        &self,
        draft: Option<&Draft>,
        executions: &[(&str, &NewExecution)],
    ) -> Result<Vec<String>, StoreError> {
        let limits = self.decision_limits;
        let mut args = Vec::with_capacity(6 + 3 * executions.len());
        match draft {
            Some(draft) => {
                let mut head =
                    serde_json::to_string(draft).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                head.pop(); // its closing brace: the script appends the outcome
                args.extend([
                    draft.id.to_string(),
                    head,
                    limits.cap.to_string(),
                    limits.retention_ms.to_string(),
                    first_id_at(draft.at.saturating_sub(limits.retention_ms)).to_string(),
                ]);
            }
            None => args.extend(["", "", "0", "0", ""].map(str::to_owned)),
        }
        args.push(executions.len().to_string());
        for (role, e) in executions {
            let trigger_id = e.origin.as_ref().and_then(|o| o.trigger_id);
            let fired: Option<Fired> = e.origin.as_ref().and_then(|o| o.fired(e.workflow_id, e.id));
            args.push((*role).to_owned());
            args.push(match fired {
                Some(fired) => {
                    serde_json::to_string(&fired).map_err(|e| StoreError::Corrupt(e.to_string()))?
                }
                None => String::new(),
            });
            args.push(members(&Concerns {
                trigger_id: trigger_id.filter(|_| draft.and_then(|d| d.trigger_id).is_none()),
                workflow_id: Some(e.workflow_id)
                    .filter(|_| draft.and_then(|d| d.workflow_id).is_none()),
                execution_id: e.id,
            })?);
        }
        Ok(args)
    }

    /// The commands that record a decision known in full (a transaction's part).
    pub(super) fn add_decision(
        &self,
        pipe: &mut redis::Pipeline,
        decision: &Decision,
    ) -> Result<(), StoreError> {
        let limits = self.decision_limits;
        let key = self.keys.decisions(&decision.project_id);
        let json =
            serde_json::to_string(decision).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        pipe.zadd(&key, format!("{} {json}", decision.id), 0)
            .cmd("ZREMRANGEBYRANK")
            .arg(&key)
            .arg(0)
            .arg(-(limits.cap as i64) - 1)
            .pexpire(&key, limits.retention_ms);
        Ok(())
    }
}

/// A set member: the id, a space, the JSON.
fn parse(member: &str) -> Result<Decision, StoreError> {
    let json = member.split_once(' ').map_or(member, |(_, json)| json);
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("decision: {e}")))
}

#[async_trait::async_trait]
impl Decisions for RedisStore {
    async fn record_decision(&self, decision: &Decision) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_decision(&mut pipe, decision)?;
        let mut connection = self.connection();
        pipe.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    async fn decisions(&self, query: &DecisionQuery) -> Result<DecisionPage, StoreError> {
        let key = self.keys.decisions(&query.project_id);
        // Members from this bound up are within the retention.
        let oldest = format!(
            "[{}",
            first_id_at(now_ms().saturating_sub(self.decision_limits.retention_ms))
        );
        let mut connection = self.connection();
        let mut page = DecisionPage::default();
        let mut cursor = query.after;
        for _ in 0..ROUNDS {
            // Below "<cursor>": every member of an older id (a member is "<id> …").
            let max = cursor.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
            let batch: Vec<String> = redis::cmd("ZREVRANGEBYLEX")
                .arg(&key)
                .arg(max)
                .arg(&oldest)
                .arg("LIMIT")
                .arg(0)
                .arg(BATCH)
                .query_async(&mut connection)
                .await?;
            let full = batch.len() == BATCH;
            for member in &batch {
                let decision = parse(member)?;
                cursor = Some(decision.id);
                if !query.matches(&decision) {
                    continue;
                }
                if page.decisions.len() == query.limit {
                    page.after = page.decisions.last().map(|d| d.id);
                    return Ok(page);
                }
                page.decisions.push(decision);
            }
            if !full {
                return Ok(page);
            }
        }
        page.after = cursor;
        Ok(page)
    }

    async fn decision(&self, project_id: Uuid, id: Uuid) -> Result<Option<Decision>, StoreError> {
        let mut connection = self.connection();
        // Members "<id> …" lie between "<id> " and "<id>!" (the byte after the space).
        let found: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(self.keys.decisions(&project_id))
            .arg(format!("[{id} "))
            .arg(format!("({id}!"))
            .query_async(&mut connection)
            .await?;
        found
            .first()
            .map(|m| parse(m))
            .transpose()
            .map(|d| d.filter(|d| d.project_id == project_id))
    }
}
