//! Bearer-token authentication and authorisation shared by the gRPC services.
//!
//! Every call carries `authorization: Bearer <token>`. The token is the operator token
//! (configured on the server, may do everything), a gym API key (`lg_…`, stored hashed by
//! `liftguard-store`: the gym's service role for ingest, and its administration), or —
//! on user-facing services only ([`authenticate_user`]) — an access token (`lgt_…`) with a
//! role: gym admin, coach, clinician or athlete ([`Principal`]).
//!
//! What a principal may *read* is a [`Scope`] ([`scope`]): the operator everything, gym
//! keys / admins / coaches their gym, an athlete themselves, a clinician what its active
//! consent grants cover (resolved from the database on every call, so a revocation takes
//! effect on the next call). The `check_*` helpers answer "may act on X" with precise
//! `PERMISSION_DENIED` statuses naming the caller and what was refused.
//!
//! Invariants:
//! - The operator token is compared in constant time: both sides are hashed with SHA-256
//!   and the fixed-length digests are compared without early exit, so neither the
//!   content nor the length of the configured token leaks through timing.
//! - An empty configured operator token disables operator access (it never matches).
//! - Ingest ([`authenticate`]) never accepts access tokens: they are for reading, not for
//!   writing samples.
//! - Missing, malformed, unknown, expired or revoked credentials are `UNAUTHENTICATED`
//!   with the precise reason (expired and revoked tokens name their token id); a store
//!   failure is reported with the store's own error kind (e.g. `UNAVAILABLE`), never as
//!   `UNAUTHENTICATED`, so clients do not discard a valid key during an outage.
//! - Error messages never echo the presented token.

use liftguard_model::{AthleteId, ErrorKind, GymId};
use liftguard_store::{Scope, Store, TokenCheck, TokenSubject};
use sha2::{Digest, Sha256};
use tonic::{Status, metadata::MetadataMap};

use crate::status;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The operator token: every gym, every action.
    Operator,
    /// A gym API key: the service role of its gym (ingest) and that gym's administration.
    Gym(GymId),
    /// A gym admin token: reads and administers its gym (enrollment, tokens, consent).
    GymAdmin { gym: GymId, token_id: String },
    /// A coach token: reads its gym's data; administers nothing.
    Coach { gym: GymId, token_id: String },
    /// A clinician token: reads what active consent grants cover (resolved per call).
    Clinician {
        clinician_id: String,
        token_id: String,
    },
    /// An athlete token: their own data, alerts and consent grants only.
    Athlete {
        gym: GymId,
        athlete: AthleteId,
        token_id: String,
    },
}

fn denied(msg: String) -> Status {
    status(ErrorKind::PermissionDenied, msg)
}

impl Principal {
    /// `Ok` when the principal may read gym-wide data of `gym` (operator; the gym's key,
    /// admin and coach); `PERMISSION_DENIED` naming the caller and the gym otherwise.
    /// Clinicians are always denied here: what they may read depends on consent grants,
    /// resolved into a `Scope` in the store.
    pub fn check_gym(&self, gym: &GymId) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Gym(own)
            | Principal::GymAdmin { gym: own, .. }
            | Principal::Coach { gym: own, .. }
                if own == gym =>
            {
                Ok(())
            }
            Principal::Athlete {
                gym: own, athlete, ..
            } if own == gym => Err(denied(format!(
                "{} may read only athlete `{athlete}`'s own data, not all of gym `{gym}`",
                self.describe()
            ))),
            Principal::Clinician { .. } => Err(denied(format!(
                "{} has no gym-wide access to gym `{gym}` outside its consent grants",
                self.describe()
            ))),
            _ => Err(denied(format!(
                "{} may not access gym `{gym}`",
                self.describe()
            ))),
        }
    }

    /// `Ok` when the principal may administer `gym` (enroll, register sensors, issue keys
    /// and tokens, grant consent for the gym, read its audit log): operator, the gym's
    /// API key, the gym's admin. `what` names the refused action.
    pub fn check_gym_admin(&self, gym: &GymId, what: &str) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Gym(own) | Principal::GymAdmin { gym: own, .. } if own == gym => Ok(()),
            Principal::Gym(own) | Principal::GymAdmin { gym: own, .. } => Err(denied(format!(
                "{what} for gym `{gym}`: {} belongs to gym `{own}`",
                self.describe()
            ))),
            _ => Err(denied(format!(
                "{what} for gym `{gym}` requires a gym admin token or the gym's API key; {} may not",
                self.describe()
            ))),
        }
    }

    /// `Ok` when the principal may read the data of `athlete` of `gym` without consent:
    /// operator, the gym's key/admin/coach, the athlete themselves. Clinicians are
    /// denied here (their access is a `Scope` question).
    pub fn check_athlete(&self, gym: &GymId, athlete: &AthleteId) -> Result<(), Status> {
        match self {
            Principal::Athlete {
                gym: own_gym,
                athlete: own,
                ..
            } => {
                if own == athlete && own_gym == gym {
                    Ok(())
                } else {
                    Err(denied(format!(
                        "{} may read only its own data, not athlete `{athlete}` of gym `{gym}`",
                        self.describe()
                    )))
                }
            }
            Principal::Clinician { .. } => Err(denied(format!(
                "{} has no consent grant covering athlete `{athlete}` of gym `{gym}`",
                self.describe()
            ))),
            _ => self.check_gym(gym).map_err(|_| {
                denied(format!(
                    "{} may not access athlete `{athlete}` of gym `{gym}`",
                    self.describe()
                ))
            }),
        }
    }

    /// `Ok` when a read addressed to `gym` is allowed under `scope` (the principal's
    /// resolved [`scope`]): the gym is at least partly visible. The rows returned are then
    /// limited by the scope in the query itself (an athlete reading its gym sees itself
    /// only). Otherwise `PERMISSION_DENIED` naming the caller and the gym.
    pub fn check_read_gym(&self, scope: &Scope, gym: &GymId) -> Result<(), Status> {
        match self {
            Principal::Clinician { .. } if scope.covers_gym(gym) => Ok(()),
            Principal::Clinician { .. } => Err(denied(format!(
                "{} has no active consent grant covering gym `{gym}`",
                self.describe()
            ))),
            Principal::Athlete { gym: own, .. } if own == gym => Ok(()),
            Principal::Athlete { .. } => Err(denied(format!(
                "{} may not read gym `{gym}`",
                self.describe()
            ))),
            _ => self.check_gym(gym),
        }
    }

    /// `Ok` when `athlete` of `gym` is visible under `scope`; otherwise
    /// `PERMISSION_DENIED` naming the caller and the athlete (as the caller named it).
    pub fn check_read_athlete(
        &self,
        scope: &Scope,
        gym: &GymId,
        athlete: &AthleteId,
    ) -> Result<(), Status> {
        if scope.covers_athlete(gym, athlete) {
            return Ok(());
        }
        match self {
            Principal::Clinician { .. } => Err(denied(format!(
                "{} has no active consent grant covering athlete `{athlete}` of gym `{gym}`",
                self.describe()
            ))),
            _ => match self.check_athlete(gym, athlete) {
                Err(e) => Err(e),
                Ok(()) => Err(denied(format!(
                    "{} may not access athlete `{athlete}` of gym `{gym}`",
                    self.describe()
                ))),
            },
        }
    }

    /// `Ok` for the operator; `PERMISSION_DENIED` naming `what` and the caller otherwise.
    pub fn require_operator(&self, what: &str) -> Result<(), Status> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Gym(own) => Err(denied(format!(
                "{what} requires the operator token; the API key of gym `{own}` may not"
            ))),
            _ => Err(denied(format!(
                "{what} requires the operator token; {} may not",
                self.describe()
            ))),
        }
    }

    /// The caller's gym: `None` for the operator and clinicians.
    pub fn gym(&self) -> Option<&GymId> {
        match self {
            Principal::Operator | Principal::Clinician { .. } => None,
            Principal::Gym(g)
            | Principal::GymAdmin { gym: g, .. }
            | Principal::Coach { gym: g, .. }
            | Principal::Athlete { gym: g, .. } => Some(g),
        }
    }

    /// The athlete of an athlete token (`None` for every other principal).
    pub fn athlete(&self) -> Option<&AthleteId> {
        match self {
            Principal::Athlete { athlete, .. } => Some(athlete),
            _ => None,
        }
    }

    /// The access token behind the principal (`None` for the operator and gym keys).
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Principal::Operator | Principal::Gym(_) => None,
            Principal::GymAdmin { token_id, .. }
            | Principal::Coach { token_id, .. }
            | Principal::Clinician { token_id, .. }
            | Principal::Athlete { token_id, .. } => Some(token_id),
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator)
    }

    /// The role name: `operator`, `gym_key`, `gym_admin`, `coach`, `clinician`, `athlete`
    /// (the token roles are the stored role names).
    pub fn role(&self) -> &'static str {
        match self {
            Principal::Operator => "operator",
            Principal::Gym(_) => "gym_key",
            Principal::GymAdmin { .. } => "gym_admin",
            Principal::Coach { .. } => "coach",
            Principal::Clinician { .. } => "clinician",
            Principal::Athlete { .. } => "athlete",
        }
    }

    /// A short label for logs and metrics: `operator`, the gym id of a gym key, the token
    /// id of a token.
    pub fn label(&self) -> &str {
        match self {
            Principal::Operator => "operator",
            Principal::Gym(g) => g.as_str(),
            Principal::GymAdmin { token_id, .. }
            | Principal::Coach { token_id, .. }
            | Principal::Clinician { token_id, .. }
            | Principal::Athlete { token_id, .. } => token_id,
        }
    }

    /// The stable name of the caller for the audit log: `operator`, `gym-key:<gym>`,
    /// `gym-admin:<gym>`, `coach:<gym>`, `clinician:<id>`, `athlete:<id>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".into(),
            Principal::Gym(g) => format!("gym-key:{g}"),
            Principal::GymAdmin { gym, .. } => format!("gym-admin:{gym}"),
            Principal::Coach { gym, .. } => format!("coach:{gym}"),
            Principal::Clinician { clinician_id, .. } => format!("clinician:{clinician_id}"),
            Principal::Athlete { athlete, .. } => format!("athlete:{athlete}"),
        }
    }

    /// The principal of a valid access token.
    pub fn from_token(token_id: &str, subject: TokenSubject) -> Principal {
        let token_id = token_id.to_owned();
        match subject {
            TokenSubject::GymAdmin(gym) => Principal::GymAdmin { gym, token_id },
            TokenSubject::Coach(gym) => Principal::Coach { gym, token_id },
            TokenSubject::Clinician(clinician_id) => Principal::Clinician {
                clinician_id,
                token_id,
            },
            TokenSubject::Athlete(gym, athlete) => Principal::Athlete {
                gym,
                athlete,
                token_id,
            },
        }
    }

    /// The caller in words, for error messages (never contains a secret).
    pub fn describe(&self) -> String {
        match self {
            Principal::Operator => "the operator".into(),
            Principal::Gym(g) => format!("the API key of gym `{g}`"),
            Principal::GymAdmin { gym, token_id } => {
                format!("gym admin token `{token_id}` of gym `{gym}`")
            }
            Principal::Coach { gym, token_id } => {
                format!("coach token `{token_id}` of gym `{gym}`")
            }
            Principal::Clinician {
                clinician_id,
                token_id,
            } => format!("clinician `{clinician_id}` (token `{token_id}`)"),
            Principal::Athlete {
                gym,
                athlete,
                token_id,
            } => format!("athlete `{athlete}` of gym `{gym}` (token `{token_id}`)"),
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

fn store_unavailable(e: liftguard_store::StoreError) -> Status {
    tracing::warn!(error = %e, "authentication lookup failed");
    status(e.kind(), format!("authentication is unavailable: {e}"))
}

fn micros_rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{us} µs"))
}

/// Authenticates a call to a *service* endpoint (ingest): the operator token (when
/// configured and non-empty) or a gym API key known to the store and not revoked.
/// Access tokens are refused with a message saying so.
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
    if token.starts_with("lgt_") {
        return Err(status(
            ErrorKind::Unauthenticated,
            "access tokens (`lgt_…`) are not accepted here; use the gym's API key",
        ));
    }
    match store.authenticate(token).await {
        Ok(Some(gym)) => Ok(Principal::Gym(gym)),
        Ok(None) => Err(status(
            ErrorKind::Unauthenticated,
            "unknown or revoked API key",
        )),
        Err(e) => Err(store_unavailable(e)),
    }
}

/// Authenticates a call to a *user-facing* endpoint (registry, query, access, alerts,
/// analytics): the operator token, a gym API key, or a valid access token. An expired or
/// revoked token is `UNAUTHENTICATED` naming the token and when; a store failure keeps
/// its kind (`UNAVAILABLE`).
pub async fn authenticate_user(
    meta: &MetadataMap,
    store: &Store,
    operator_token: Option<&str>,
) -> Result<Principal, Status> {
    let token = bearer_token(meta)?;
    if !token.starts_with("lgt_") {
        return authenticate(meta, store, operator_token).await;
    }
    match store.check_token(token).await {
        Ok(TokenCheck::Valid(t, subject)) => Ok(Principal::from_token(&t.token_id, subject)),
        Ok(TokenCheck::Expired(t)) => Err(status(
            ErrorKind::Unauthenticated,
            format!(
                "access token `{}` expired at {}",
                t.token_id,
                micros_rfc3339(t.expires_us)
            ),
        )),
        Ok(TokenCheck::Revoked(t)) => Err(status(
            ErrorKind::Unauthenticated,
            format!(
                "access token `{}` was revoked at {}",
                t.token_id,
                micros_rfc3339(t.revoked_us)
            ),
        )),
        Ok(TokenCheck::Unknown) => Err(status(ErrorKind::Unauthenticated, "unknown access token")),
        Err(e) => Err(store_unavailable(e)),
    }
}

/// What the principal may read, resolved now: the operator everything; a gym key, gym
/// admin or coach their gym; an athlete themselves; a clinician what its active consent
/// grants cover ([`Store::clinician_scope`]). Store failures keep their kind.
pub async fn scope(p: &Principal, store: &Store) -> Result<Scope, Status> {
    match p {
        Principal::Operator => Ok(Scope::all()),
        Principal::Gym(g)
        | Principal::GymAdmin { gym: g, .. }
        | Principal::Coach { gym: g, .. } => Ok(Scope::gym(g.clone())),
        Principal::Athlete { gym, athlete, .. } => Ok(Scope::athlete(gym.clone(), athlete.clone())),
        Principal::Clinician { clinician_id, .. } => {
            store.clinician_scope(clinician_id).await.map_err(|e| {
                tracing::warn!(error = %e, clinician = clinician_id, "scope lookup failed");
                status(e.kind(), format!("consent grants are unavailable: {e}"))
            })
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

    #[tokio::test]
    async fn access_tokens_authenticate_with_precise_reasons() {
        use liftguard_store::StoreOptions;
        let store = Store::connect("sqlite::memory:", StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.create_gym("gym-a", "A").await.unwrap();
        let gym = GymId::parse("gym-a").unwrap();
        let athlete = store
            .enroll_athlete(
                &gym,
                &liftguard_proto::v1::Athlete {
                    external_ref: "m1".into(),
                    height_m: 1.8,
                    mass_kg: 80.0,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let aid = AthleteId::parse(athlete.athlete_id.as_str()).unwrap();
        let far = chrono::Utc::now().timestamp_micros() + 3_600_000_000;
        let t = store
            .issue_token(
                &TokenSubject::Athlete(gym.clone(), aid.clone()),
                "phone",
                far,
                "operator",
            )
            .await
            .unwrap();
        assert!(t.secret.starts_with(&format!("lgt_{}_", t.token.token_id)));
        let m = meta(&format!("Bearer {}", t.secret));
        let p = authenticate_user(&m, &store, None).await.unwrap();
        assert_eq!(
            p,
            Principal::Athlete {
                gym: gym.clone(),
                athlete: aid.clone(),
                token_id: t.token.token_id.clone()
            }
        );
        assert_eq!(p.athlete(), Some(&aid));
        assert_eq!(
            scope(&p, &store).await.unwrap(),
            Scope::athlete(gym.clone(), aid.clone())
        );
        // the service path (ingest) refuses access tokens
        let e = authenticate(&m, &store, None).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(e.message().contains("access tokens"), "{e:?}");
        assert!(!e.message().contains(&t.secret));
        // unknown
        let e = authenticate_user(&meta("Bearer lgt_t-0_00"), &store, None)
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unauthenticated, "unknown access token")
        );
        // expired (moved into the past behind the store's back)
        let pool = store.sqlite_pool().unwrap();
        sqlx_update_expiry(pool, &t.token.token_id).await;
        let e = authenticate_user(&m, &store, None).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
        assert!(e.message().contains("expired at"), "{e:?}");
        assert!(e.message().contains(&t.token.token_id));
        // revoked wins over expired
        assert!(store.revoke_token(&t.token.token_id).await.unwrap());
        let e = authenticate_user(&m, &store, None).await.unwrap_err();
        assert!(e.message().contains("was revoked at"), "{e:?}");
        // a clinician sees what its grants cover, resolved per call
        store.create_clinician(Some("dr-x"), "Dr X").await.unwrap();
        let ct = store
            .issue_token(&TokenSubject::Clinician("dr-x".into()), "", far, "operator")
            .await
            .unwrap();
        let p = authenticate_user(&meta(&format!("Bearer {}", ct.secret)), &store, None)
            .await
            .unwrap();
        assert_eq!(scope(&p, &store).await.unwrap(), Scope::none());
        let g = store
            .grant_consent("dr-x", &gym, Some(&aid), false, "athlete")
            .await
            .unwrap();
        let s = scope(&p, &store).await.unwrap();
        assert_eq!(
            (s.gyms, s.athletes, s.identity),
            (Some(vec![gym.clone()]), Some(vec![aid.clone()]), false)
        );
        store.revoke_consent(&g.grant_id, "athlete").await.unwrap();
        assert_eq!(scope(&p, &store).await.unwrap(), Scope::none());
        let denied = p.check_read_gym(&Scope::none(), &gym).unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert!(
            denied
                .message()
                .contains("no active consent grant covering gym `gym-a`")
        );
        assert!(denied.message().contains(&ct.token.token_id));
    }

    async fn sqlx_update_expiry(pool: &sqlx::SqlitePool, token_id: &str) {
        sqlx::query("UPDATE access_tokens SET expires_us = 1 WHERE token_id = $1")
            .bind(token_id)
            .execute(pool)
            .await
            .unwrap();
    }

    #[test]
    fn roles_and_reads_are_checked_precisely() {
        let a = GymId::parse("gym-a").unwrap();
        let b = GymId::parse("gym-b").unwrap();
        let a1 = AthleteId::parse("a-1").unwrap();
        let a2 = AthleteId::parse("a-2").unwrap();
        let coach = Principal::Coach {
            gym: a.clone(),
            token_id: "t-c".into(),
        };
        assert!(coach.check_gym(&a).is_ok());
        let e = coach.check_gym_admin(&a, "EnrollAthlete").unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("EnrollAthlete") && e.message().contains("t-c"));
        let admin = Principal::GymAdmin {
            gym: a.clone(),
            token_id: "t-a".into(),
        };
        assert!(admin.check_gym_admin(&a, "x").is_ok());
        assert!(
            admin
                .check_gym_admin(&b, "x")
                .unwrap_err()
                .message()
                .contains("`gym-b`")
        );
        let ath = Principal::Athlete {
            gym: a.clone(),
            athlete: a1.clone(),
            token_id: "t-1".into(),
        };
        assert!(ath.check_athlete(&a, &a1).is_ok());
        let e = ath.check_athlete(&a, &a2).unwrap_err();
        assert!(e.message().contains("`a-2`"), "{e:?}");
        assert!(ath.check_gym(&a).is_err());
        let own = Scope::athlete(a.clone(), a1.clone());
        assert!(ath.check_read_gym(&own, &a).is_ok());
        assert!(
            ath.check_read_gym(&own, &b)
                .unwrap_err()
                .message()
                .contains("`gym-b`")
        );
        assert!(ath.check_read_athlete(&own, &a, &a2).is_err());
        assert_eq!(ath.role(), "athlete");
        assert_eq!(ath.actor(), "athlete:a-1");
        assert_eq!(Principal::Gym(a.clone()).actor(), "gym-key:gym-a");
    }
}
