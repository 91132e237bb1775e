//! API keys: the secret is shown once; the catalog keeps only its SHA-256 and a prefix.

use super::{Actor, Catalog, Change, Error, Result, Routing, new_id, now, validate};
use crate::db::api_key;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};

/// Every secret starts with this, so leaked keys are easy to scan for.
const SECRET_PREFIX: &str = "sbk_";
/// How much of the secret `list` shows.
const VISIBLE_CHARS: usize = 12;

/// Hex SHA-256 of an API key secret, as stored and as routed by the data plane.
fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Catalog {
    /// Creates a key and returns it with its secret, which is not stored.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        project_id: &str,
        name: &str,
        burst_limit: Option<u32>,
    ) -> Result<(api_key::Model, String)> {
        let name = validate::name("name", name)?;
        if burst_limit == Some(0) {
            return Err(Error::invalid(
                "burst_limit",
                "must be at least 1 per second",
            ));
        }
        let secret = format!("{SECRET_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let write = self.write(Routing::Changes).await?;
        let project = self.project(&write.txn, "project_id", project_id).await?;
        let model = api_key::ActiveModel {
            id: Set(new_id()),
            project_id: Set(project.id.clone()),
            name: Set(name),
            prefix: Set(secret[..VISIBLE_CHARS].to_owned()),
            secret_sha256: Set(hash_secret(&secret)),
            burst_limit: Set(burst_limit.map(i64::from)),
            revoked_at: Set(None),
            created_at: Set(now()),
        }
        .insert(&write.txn)
        .await?;
        let change = Change::of(
            "api_key.create",
            "api_key",
            &model.id,
            Some(&project.id),
            None::<&()>,
            Some(&model),
        );
        write.commit(actor, change).await?;
        Ok((model, secret))
    }

    pub async fn list_api_keys(&self, project_id: &str) -> Result<Vec<api_key::Model>> {
        let project = self.project(&self.db, "project_id", project_id).await?;
        Ok(api_key::Entity::find()
            .filter(api_key::Column::ProjectId.eq(project.id))
            .order_by_asc(api_key::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Marks a key revoked; revoking a revoked key changes nothing.
    pub async fn revoke_api_key(&self, actor: &Actor, key_id: &str) -> Result<api_key::Model> {
        let key_id = validate::id("api_key_id", key_id)?;
        let write = self.write(Routing::Changes).await?;
        let before = api_key::Entity::find_by_id(key_id.clone())
            .one(&write.txn)
            .await?
            .ok_or_else(|| Error::not_found("api_key_id", format!("api key {key_id} not found")))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let mut model = before.clone().into_active_model();
        model.revoked_at = Set(Some(now()));
        let after = model.update(&write.txn).await?;
        let change = Change::of(
            "api_key.revoke",
            "api_key",
            &after.id,
            Some(&after.project_id),
            Some(&before),
            Some(&after),
        );
        write.commit(actor, change).await?;
        Ok(after)
    }
}
