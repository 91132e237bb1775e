//! WhatsApp on the data plane (DESIGN §7): Meta's webhook and the life of conversations.
//! Transport-independent: the HTTP edge is `http::webhook`; the conversation endpoints of
//! the platform API are `api::conversations`.
//!
//! A POST goes through [`intake`]: its [`signature`] is checked over the raw bytes, its
//! [`payload`] parsed into updates, each update [`planning`] turned into what the store
//! needs (table lookups, the executions it may start with their [`context`]s), and the
//! plans applied by the store as one ordered pipeline in which each update is atomic and
//! idempotent; where a message goes is decided by the store, by the rules of
//! `store::rules`. [`lifecycle`] ends conversations: after inactivity (the sweep) or on
//! request. Updates that match no project are kept by [`unrouted`].

pub mod context;
pub mod intake;
pub mod lifecycle;
pub mod payload;
pub(crate) mod planning;
pub mod signature;
pub mod unrouted;

pub use intake::{IngestError, Report, WEBHOOK_BODY_LIMIT};
pub use lifecycle::Lifecycle;

use crate::routing::RoutingSlot;
use crate::store::Store;
use std::sync::Arc;

/// Meta's webhook: its secrets, and what ingesting needs.
#[derive(Clone)]
pub struct WhatsApp {
    slot: Arc<RoutingSlot>,
    store: Store,
    app_secret: Option<Arc<str>>,
    verify_token: Option<Arc<str>>,
    counters: Arc<intake::Counters>,
    unrouted: Arc<unrouted::Unrouted>,
}

impl std::fmt::Debug for WhatsApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhatsApp").finish_non_exhaustive()
    }
}

impl WhatsApp {
    pub fn new(
        slot: Arc<RoutingSlot>,
        store: Store,
        app_secret: Option<String>,
        verify_token: Option<String>,
    ) -> Self {
        Self {
            slot,
            store,
            app_secret: app_secret.filter(|s| !s.is_empty()).map(Into::into),
            verify_token: verify_token.filter(|s| !s.is_empty()).map(Into::into),
            counters: Arc::new(intake::Counters::new()),
            unrouted: Arc::new(unrouted::Unrouted::new()),
        }
    }

    /// The node's record of updates that matched no project.
    pub fn unrouted(&self) -> Arc<unrouted::Unrouted> {
        self.unrouted.clone()
    }

    /// The GET handshake: the challenge when mode and token match, else `None` (403).
    pub fn verify<'c>(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'c str>,
    ) -> Option<&'c str> {
        let expected = self.verify_token.as_deref()?;
        let matches = token.is_some_and(|t| {
            subtle::ConstantTimeEq::ct_eq(t.as_bytes(), expected.as_bytes()).into()
        });
        (mode == Some("subscribe") && matches)
            .then_some(challenge)
            .flatten()
    }
}
