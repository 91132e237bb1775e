//! Bearer-token authentication of gRPC calls, compared in constant time.

use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` on every request; anything else is
/// `UNAUTHENTICATED`. The token itself is never logged.
#[derive(Clone)]
pub struct BearerAuth {
    token: Arc<[u8]>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

impl BearerAuth {
    pub fn new(token: &str) -> Self {
        Self {
            token: Arc::from(token.as_bytes()),
        }
    }

    fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        bool::from(presented.ct_eq(&self.token))
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if self.accepts(header) {
            Ok(request)
        } else {
            tracing::warn!("admin call refused: missing or wrong bearer token");
            Err(Status::unauthenticated("missing or invalid admin token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let auth = BearerAuth::new("s3cret");
        assert!(auth.accepts(Some(b"Bearer s3cret")));
        assert!(!auth.accepts(Some(b"Bearer s3cre")));
        assert!(!auth.accepts(Some(b"Bearer s3crett")));
        assert!(!auth.accepts(Some(b"s3cret")));
        assert!(!auth.accepts(None));
    }
}
