//! Bearer-token authentication shared by the gRPC services.
//!
//! Every call carries `authorization: Bearer <token>`. The token is either the operator
//! token (configured on the server, may do everything) or a gym API key (stored hashed by
//! `liftguard-store`, may act on its own gym only).
//!
//! Invariants:
//! - The operator token is compared in constant time: both sides are hashed with SHA-256
//!   and the fixed-length digests are compared without early exit, so neither the
//!   content nor the length of the configured token leaks through timing.
//! - An empty configured operator token disables operator access (it never matches).
//! - Missing, malformed, unknown or revoked credentials are `UNAUTHENTICATED`; a store
//!   failure is reported with the store's own error kind (e.g. `UNAVAILABLE`), never as
//!   `UNAUTHENTICATED`, so clients do not discard a valid key during an outage.
//! - Error messages never echo the presented token.

use liftguard_model::{ErrorKind, GymId};
use liftguard_store::Store;
use sha2::{Digest, Sha256};
use tonic::{Status, metadata::MetadataMap};

use crate::status;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator token: every gym.
    Operator,
    /// A gym API key: its own gym only.
    Gym(GymId),
}

impl Principal {
    /// `Ok` when the principal may act on `gym`; `PERMISSION_DENIED` naming both gyms
    /// otherwise.
    pub fn check_gym(&self, gym: &GymId) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Gym(own) if own == gym => Ok(()),
            Principal::Gym(own) => Err(status(
                ErrorKind::PermissionDenied,
                format!("the API key of gym `{own}` may not access gym `{gym}`"),
            )),
        }
    }

    /// `Ok` for the operator; `PERMISSION_DENIED` naming `what` for a gym key.
    pub fn require_operator(&self, what: &str) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Gym(own) => Err(status(
                ErrorKind::PermissionDenied,
                format!("{what} requires the operator token; the API key of gym `{own}` may not"),
            )),
        }
    }

    /// The caller's gym, `None` for the operator.
    pub fn gym(&self) -> Option<&GymId> {
        match self {
            Principal::Operator => None,
            Principal::Gym(g) => Some(g),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator)
    }

    /// A short label for logs and metrics (`operator` or the gym id).
    pub fn label(&self) -> &str {
        match self {
            Principal::Operator => "operator",
            Principal::Gym(g) => g.as_str(),
        }
    }
}

/// Extracts the token of `authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(meta: &MetadataMap) -> Result<&str, Status> {
    let value = meta.get("authorization").ok_or_else(|| {
        status(
            ErrorKind::Unauthenticated,
            "missing `authorization` metadata (expected `authorization: Bearer <token>`)",
        )
    })?;
    let value = value.to_str().map_err(|_| {
        status(
            ErrorKind::Unauthenticated,
            "`authorization` metadata is not printable ASCII",
        )
    })?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(|| {
        status(
            ErrorKind::Unauthenticated,
            "`authorization` metadata must be `Bearer <token>`",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(status(
            ErrorKind::Unauthenticated,
            "`authorization` metadata must use the Bearer scheme",
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(status(
            ErrorKind::Unauthenticated,
            "empty bearer token in `authorization` metadata",
        ));
    }
    Ok(token)
}

/// Constant-time equality of two secrets of any length: compares their SHA-256 digests
/// without early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    let mut diff = 0u8;
    for (x, y) in da.iter().zip(db.iter()) {
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Authenticates a call: the operator token (when configured and non-empty) or a gym API
/// key known to the store and not revoked.
pub async fn authenticate(
    meta: &MetadataMap,
    store: &Store,
    operator_token: Option<&str>,
) -> Result<Principal, Status> {
    let token = bearer_token(meta)?;
    if let Some(op) = operator_token.filter(|t| !t.is_empty())
        && constant_time_eq(token.as_bytes(), op.as_bytes())
    {
        return Ok(Principal::Operator);
    }
    match store.authenticate(token).await {
        Ok(Some(gym)) => Ok(Principal::Gym(gym)),
        Ok(None) => Err(status(
            ErrorKind::Unauthenticated,
            "unknown or revoked API key",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "authentication lookup failed");
            Err(status(
                e.kind(),
                format!("authentication is unavailable: {e}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn meta(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", v.parse().unwrap());
        m
    }

    #[test]
    fn bearer_token_parses_and_rejects_precisely() {
        assert_eq!(bearer_token(&meta("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&meta("bearer  abc ")).unwrap(), "abc");
        let missing = bearer_token(&MetadataMap::new()).unwrap_err();
        assert_eq!(missing.code(), Code::Unauthenticated);
        assert!(missing.message().contains("missing"));
        let basic = bearer_token(&meta("Basic abc")).unwrap_err();
        assert_eq!(basic.code(), Code::Unauthenticated);
        assert!(basic.message().contains("Bearer scheme"));
        assert_eq!(
            bearer_token(&meta("Bearer")).unwrap_err().code(),
            Code::Unauthenticated
        );
        assert_eq!(
            bearer_token(&meta("Bearer   ")).unwrap_err().code(),
            Code::Unauthenticated
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokem"));
        assert!(!constant_time_eq(b"secret-token", b"secret-token-longer"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[tokio::test]
    async fn authenticate_against_a_real_store() {
        use liftguard_store::StoreOptions;
        let store = Store::connect("sqlite::memory:", StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.create_gym("gym-a", "A").await.unwrap();
        let gym = GymId::parse("gym-a").unwrap();
        let key = store.issue_api_key(&gym, "t").await.unwrap();

        let op = Some("op-secret");
        let m = meta("Bearer op-secret");
        assert_eq!(
            authenticate(&m, &store, op).await.unwrap(),
            Principal::Operator
        );
        // without a configured operator token the same bearer is just an unknown key
        let e = authenticate(&m, &store, None).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(!e.message().contains("op-secret"), "never echo the token");
        // an empty configured token never matches anything
        let e = authenticate(&meta("Bearer x"), &store, Some(""))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);

        let m = meta(&format!("Bearer {}", key.secret));
        assert_eq!(
            authenticate(&m, &store, op).await.unwrap(),
            Principal::Gym(gym.clone())
        );
        assert!(store.revoke_api_key(&gym, &key.key_id).await.unwrap());
        let e = authenticate(&m, &store, op).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert_eq!(e.message(), "unknown or revoked API key");
    }

    #[test]
    fn check_gym_allows_own_gym_and_operator_only() {
        let a = GymId::parse("gym-a").unwrap();
        let b = GymId::parse("gym-b").unwrap();
        assert!(Principal::Operator.check_gym(&a).is_ok());
        assert!(Principal::Gym(a.clone()).check_gym(&a).is_ok());
        let denied = Principal::Gym(a.clone()).check_gym(&b).unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(denied.message().contains("`gym-a`") && denied.message().contains("`gym-b`"));
        assert!(Principal::Operator.require_operator("CreateGym").is_ok());
        let denied = Principal::Gym(a).require_operator("CreateGym").unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(denied.message().contains("CreateGym"));
    }
}
