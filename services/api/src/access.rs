//! Access control in the api role: the `liftguard.v1.Access` gRPC service (tokens,
//! clinicians, consent grants, the audit log, WhoAmI) and the pieces every other handler
//! uses to authorise a read — the [`Caller`] (principal + resolved scope), athlete
//! resolution (real ids or pseudonyms), and the audit trail.
//!
//! Invariants:
//! - Every call that authenticated is audited ([`ApiService::finish`]): one row with the
//!   actor, role, token, addressed gym, action, scope parameters, and the result count or
//!   the refusal. If the audit row cannot be written, a successful result is withheld
//!   (UNAVAILABLE): nothing is read without a trace.
//! - A caller's scope is resolved from the database on every call (consent revocations
//!   apply to the next call) and passed into the store's SQL; handlers never filter rows
//!   after the query.
//! - A caller without identity (a clinician whose grants lack it) never receives or may
//!   name a real athlete id: results carry pseudonyms, requests must use pseudonyms, page
//!   tokens encode pseudonyms. Pseudonymised results need the configured
//!   `pseudonym_secret`; without it they are refused (FAILED_PRECONDITION), never sent
//!   with a guessable key.
//! - Secrets of tokens are returned once by IssueToken and never listed.

use std::collections::HashMap;
use std::fmt::Write as _;

use liftguard_model::{AthleteId, ErrorKind, GymId};
use liftguard_proto::v1::{
    AccessToken, ConsentGrant, CreateClinicianRequest, CreateClinicianResponse,
    GrantConsentRequest, IssueTokenRequest, IssueTokenResponse, ListCliniciansRequest,
    ListCliniciansResponse, ListGrantsRequest, ListGrantsResponse, ListTokensRequest,
    ListTokensResponse, QueryAuditLogRequest, QueryAuditLogResponse, RevokeConsentRequest,
    RevokeConsentResponse, RevokeTokenRequest, RevokeTokenResponse, Role, WhoAmIRequest,
    WhoAmIResponse, access_server::Access,
};
use liftguard_runtime::{
    auth::{self, Principal},
    status,
};
use liftguard_store::{AuditRecord, GrantFilter, RepCursor, Scope, TokenSubject};
use tonic::{Request, Response, Status};

use crate::{ApiService, code_label, store_status, validate};

/// An authenticated caller and what it may read, resolved for this call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub scope: Scope,
}

/// The audit row a handler fills while it works; [`ApiService::finish`] writes it.
#[derive(Debug, Clone)]
pub struct Audit {
    action: &'static str,
    gym: Option<GymId>,
    params: String,
    count: Option<i64>,
}

impl Audit {
    pub fn new(action: &'static str) -> Self {
        Audit {
            action,
            gym: None,
            params: String::new(),
            count: None,
        }
    }

    /// The gym whose data the call addresses.
    pub fn gym(&mut self, gym: &GymId) {
        self.gym = Some(gym.clone());
    }

    /// Adds `key=value` to the recorded parameters.
    pub fn param(&mut self, key: &str, value: impl std::fmt::Display) {
        if !self.params.is_empty() {
            self.params.push(' ');
        }
        let _ = write!(self.params, "{key}={value}");
    }

    /// The number of rows returned.
    pub fn count(&mut self, n: usize) {
        self.count = Some(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

fn denied(msg: String) -> Status {
    status(ErrorKind::PermissionDenied, msg)
}

/// Default and largest page of QueryAuditLog.
const AUDIT_DEFAULT_LIMIT: u32 = 1000;

impl ApiService {
    /// The deployment's pseudonym key, when configured (non-empty `pseudonym_secret`).
    pub fn pseudonym_secret(&self) -> Option<&[u8]> {
        self.inner
            .cfg
            .pseudonym_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(str::as_bytes)
    }

    /// The key to present results to `scope` with: any for identity scopes (unused),
    /// the configured secret otherwise (FAILED_PRECONDITION when there is none).
    pub fn presentation_key(&self, scope: &Scope) -> Result<&[u8], Status> {
        if scope.identity {
            return Ok(b"");
        }
        self.pseudonym_secret().ok_or_else(|| {
            status(
                ErrorKind::FailedPrecondition,
                "pseudonymised results need the server's `[api] pseudonym_secret`, which is not \
                 configured; ask the operator",
            )
        })
    }

    /// Authenticates the call and resolves the caller's scope now.
    pub async fn caller(&self, p: Principal) -> Result<Caller, Status> {
        let scope = auth::scope(&p, &self.inner.store).await?;
        Ok(Caller {
            principal: p,
            scope,
        })
    }

    /// Writes the audit row of a call and returns its result. When the row cannot be
    /// written, a success becomes UNAVAILABLE (the data is withheld); a refusal stays.
    pub async fn finish<T>(
        &self,
        p: &Principal,
        a: Audit,
        r: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        let (st, detail, count) = match &r {
            Ok(_) => ("OK", String::new(), a.count),
            Err(s) => (code_label(s.code()), s.message().to_owned(), None),
        };
        let rec = AuditRecord {
            actor: p.actor(),
            role: p.role().to_owned(),
            token_id: p.token_id().map(str::to_owned),
            gym: a.gym,
            action: a.action.to_owned(),
            params: a.params,
            status: st.to_owned(),
            result_count: count,
            detail,
        };
        match self.inner.store.record_audit(&rec).await {
            Ok(_) => r,
            Err(e) => {
                self.inner.metrics.audit_failures.inc();
                tracing::error!(error = %e, action = rec.action, actor = rec.actor, "audit row not written");
                match r {
                    Ok(_) => Err(status(
                        ErrorKind::Unavailable,
                        format!("the audit log is unavailable, so the result is withheld: {e}"),
                    )),
                    Err(s) => Err(s),
                }
            }
        }
    }

    /// The pseudonyms of every athlete the scope covers → (gym, real id).
    async fn pseudonym_map(
        &self,
        c: &Caller,
    ) -> Result<HashMap<String, (GymId, AthleteId)>, Status> {
        let key = self.presentation_key(&c.scope)?;
        let all = self
            .inner
            .store
            .athlete_ids_in_scope(&c.scope)
            .await
            .map_err(store_status)?;
        Ok(all
            .into_iter()
            .map(|(g, a)| (liftguard_store::pseudonym(key, a.as_str()), (g, a)))
            .collect())
    }

    /// The athlete a request names, checked against the caller's scope: real ids for
    /// callers with identity (NOT_FOUND when it does not exist, PERMISSION_DENIED when
    /// it is outside the scope), pseudonyms only for callers without.
    pub async fn resolve_athlete(
        &self,
        c: &Caller,
        field: &str,
        raw: &str,
    ) -> Result<(GymId, AthleteId), Status> {
        let id = validate::athlete_id(field, raw)?;
        if c.scope.is_empty()
            && let Principal::Clinician { .. } = &c.principal
        {
            return Err(denied(format!(
                "{} has no active consent grant covering athlete `{raw}`",
                c.principal.describe()
            )));
        }
        if !c.scope.identity {
            if !raw.starts_with("p-") {
                return Err(denied(format!(
                    "{} sees pseudonymised athletes only (its consent grants do not include \
                     identity): name athletes by pseudonym in `{field}`",
                    c.principal.describe()
                )));
            }
            return self.pseudonym_map(c).await?.remove(raw).ok_or_else(|| {
                denied(format!(
                    "{} has no active consent grant covering athlete `{raw}`",
                    c.principal.describe()
                ))
            });
        }
        let athlete = self
            .inner
            .store
            .get_athlete(&id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                status(
                    ErrorKind::NotFound,
                    format!("athlete `{id}` does not exist"),
                )
            })?;
        let gym = GymId::parse(athlete.gym_id.as_str()).map_err(|e| {
            status(
                ErrorKind::Internal,
                format!("stored athlete has a bad gym id: {e}"),
            )
        })?;
        c.principal.check_read_athlete(&c.scope, &gym, &id)?;
        Ok((gym, id))
    }

    /// Encodes a reps page cursor for the caller (pseudonym inside without identity).
    pub(crate) fn encode_cursor(&self, c: &Caller, cur: &RepCursor) -> Result<String, Status> {
        if c.scope.identity {
            return Ok(cur.encode());
        }
        let key = self.presentation_key(&c.scope)?;
        let p = liftguard_store::pseudonym(key, cur.athlete_id());
        let pid = AthleteId::parse(p)
            .map_err(|e| status(ErrorKind::Internal, format!("bad pseudonym: {e}")))?;
        Ok(RepCursor::new(cur.start_us(), &pid).encode())
    }

    /// Decodes a page token from [`ApiService::encode_cursor`].
    pub(crate) async fn decode_cursor(
        &self,
        c: &Caller,
        token: &str,
    ) -> Result<Option<RepCursor>, Status> {
        if token.is_empty() {
            return Ok(None);
        }
        let bad = || validate::invalid("page_token", "not a token returned by ListReps/ListEvents");
        let cur = RepCursor::decode(token).map_err(|_| bad())?;
        if c.scope.identity {
            return Ok(Some(cur));
        }
        let map = self.pseudonym_map(c).await?;
        let (_, real) = map.get(cur.athlete_id()).ok_or_else(|| {
            validate::invalid(
                "page_token",
                "its athlete is no longer covered by your consent grants; start again",
            )
        })?;
        Ok(Some(RepCursor::new(cur.start_us(), real)))
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::GymAdmin => "ROLE_GYM_ADMIN",
        Role::Coach => "ROLE_COACH",
        Role::Clinician => "ROLE_CLINICIAN",
        Role::Athlete => "ROLE_ATHLETE",
        Role::Unspecified => "ROLE_UNSPECIFIED",
    }
}

fn must_be_empty(field: &str, v: &str, role: Role) -> Result<(), Status> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(validate::invalid(
            field,
            format!("must be empty for {}", role_name(role)),
        ))
    }
}

fn clinician_id(field: &str, s: &str) -> Result<String, Status> {
    let s = validate::text(field, s, 64, true)?;
    AthleteId::parse(s)
        .map_err(|e| validate::invalid(field, e.to_string().replace("athlete_id", "id")))?;
    Ok(s.to_owned())
}

/// `Ok` for the principals that administer some gym (operator, gym keys, gym admins).
fn gym_staff_admin(p: &Principal, what: &str) -> Result<(), Status> {
    match p {
        Principal::Operator | Principal::Gym(_) | Principal::GymAdmin { .. } => Ok(()),
        _ => Err(denied(format!(
            "{what} requires the operator, a gym admin token or a gym API key; {} may not",
            p.describe()
        ))),
    }
}

/// Runs an Access handler body: authenticate, audit, metrics.
macro_rules! access_call {
    ($self:ident, $request:ident, $method:literal, $action:literal, |$p:ident, $a:ident, $req:ident| $body:block) => {{
        let started = std::time::Instant::now();
        let r = async {
            let $p = $self.principal($request.metadata()).await?;
            let mut audit = Audit::new($action);
            let $req = $request.into_inner();
            let r: Result<_, Status> = {
                let $a = &mut audit;
                let $p = &$p;
                async { $body }.await
            };
            $self.finish(&$p, audit, r).await
        }
        .await;
        $self.observe($method, started, &r);
        r
    }};
}

#[tonic::async_trait]
impl Access for ApiService {
    async fn issue_token(
        &self,
        request: Request<IssueTokenRequest>,
    ) -> Result<Response<IssueTokenResponse>, Status> {
        access_call!(
            self,
            request,
            "IssueToken",
            "Access.IssueToken",
            |p, a, req| {
                let role = Role::try_from(req.role)
                .ok()
                .filter(|r| *r != Role::Unspecified)
                .ok_or_else(|| {
                    validate::invalid(
                        "role",
                        format!(
                            "{} is not ROLE_GYM_ADMIN (1), ROLE_COACH (2), ROLE_CLINICIAN (3) or ROLE_ATHLETE (4)",
                            req.role
                        ),
                    )
                })?;
                a.param("role", role_name(role));
                let label = validate::text("label", &req.label, 100, false)?;
                let subject = match role {
                    Role::GymAdmin | Role::Coach => {
                        let gym = validate::gym_id("gym_id", &req.gym_id)?;
                        must_be_empty("athlete_id", &req.athlete_id, role)?;
                        must_be_empty("clinician_id", &req.clinician_id, role)?;
                        a.gym(&gym);
                        if role == Role::GymAdmin {
                            p.require_operator("issuing a gym admin token")?;
                            TokenSubject::GymAdmin(gym)
                        } else {
                            p.check_gym_admin(&gym, "issuing a coach token")?;
                            TokenSubject::Coach(gym)
                        }
                    }
                    Role::Athlete => {
                        let gym = validate::gym_id("gym_id", &req.gym_id)?;
                        let athlete = validate::athlete_id("athlete_id", &req.athlete_id)?;
                        must_be_empty("clinician_id", &req.clinician_id, role)?;
                        a.gym(&gym);
                        a.param("athlete_id", &athlete);
                        p.check_gym_admin(&gym, "issuing an athlete token")?;
                        TokenSubject::Athlete(gym, athlete)
                    }
                    Role::Clinician | Role::Unspecified => {
                        let c = clinician_id("clinician_id", &req.clinician_id)?;
                        must_be_empty("gym_id", &req.gym_id, role)?;
                        must_be_empty("athlete_id", &req.athlete_id, role)?;
                        a.param("clinician_id", &c);
                        p.require_operator("issuing a clinician token")?;
                        TokenSubject::Clinician(c)
                    }
                };
                let cfg = &self.inner.cfg;
                let ttl_s = match req.ttl_s {
                    0 => cfg.token_default_ttl_s,
                    t if t <= cfg.token_max_ttl_s => t,
                    t => {
                        return Err(validate::invalid(
                            "ttl_s",
                            format!("{t} is above the maximum of {} s", cfg.token_max_ttl_s),
                        ));
                    }
                };
                let ttl_us = i64::try_from(ttl_s.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                    .unwrap_or_default();
                let issued = self
                    .inner
                    .store
                    .issue_token(&subject, label, now.saturating_add(ttl_us), &p.actor())
                    .await
                    .map_err(store_status)?;
                a.param("token_id", &issued.token.token_id);
                Ok(Response::new(IssueTokenResponse {
                    token: Some(issued.token),
                    secret: issued.secret,
                }))
            }
        )
    }

    async fn revoke_token(
        &self,
        request: Request<RevokeTokenRequest>,
    ) -> Result<Response<RevokeTokenResponse>, Status> {
        access_call!(
            self,
            request,
            "RevokeToken",
            "Access.RevokeToken",
            |p, a, req| {
                let token_id = validate::text("token_id", &req.token_id, 64, true)?;
                a.param("token_id", token_id);
                let store = &self.inner.store;
                let t = store
                    .get_token(token_id)
                    .await
                    .map_err(store_status)?
                    .ok_or_else(|| {
                        status(
                            ErrorKind::NotFound,
                            format!("access token `{token_id}` does not exist"),
                        )
                    })?;
                let subject = TokenSubject::of_token(&t).map_err(store_status)?;
                if let Some(g) = subject.gym() {
                    a.gym(g);
                }
                let own = p.token_id() == Some(token_id);
                if !own && !p.is_operator() {
                    match &subject {
                        TokenSubject::Coach(g) | TokenSubject::Athlete(g, _) => {
                            p.check_gym_admin(g, &format!("revoking token `{token_id}`"))?
                        }
                        TokenSubject::GymAdmin(_) | TokenSubject::Clinician(_) => {
                            return Err(denied(format!(
                                "revoking {} token `{token_id}` requires the operator (or the token itself); {} may not",
                                subject.role_name(),
                                p.describe()
                            )));
                        }
                    }
                }
                let revoked = store.revoke_token(token_id).await.map_err(store_status)?;
                Ok(Response::new(RevokeTokenResponse { revoked }))
            }
        )
    }

    async fn list_tokens(
        &self,
        request: Request<ListTokensRequest>,
    ) -> Result<Response<ListTokensResponse>, Status> {
        access_call!(
            self,
            request,
            "ListTokens",
            "Access.ListTokens",
            |p, a, req| {
                let gym = if req.gym_id.is_empty() {
                    match p {
                        Principal::Operator => None,
                        _ => match p.gym() {
                            Some(g) => Some(g.clone()),
                            None => {
                                return Err(denied(format!(
                                    "listing tokens requires the operator, a gym admin token or a gym API key; {} may not",
                                    p.describe()
                                )));
                            }
                        },
                    }
                } else {
                    Some(validate::gym_id("gym_id", &req.gym_id)?)
                };
                let clinician = if req.clinician_id.is_empty() {
                    None
                } else {
                    Some(clinician_id("clinician_id", &req.clinician_id)?)
                };
                if let Some(g) = &gym {
                    a.gym(g);
                    p.check_gym_admin(g, "listing tokens")?;
                }
                if let Some(c) = &clinician {
                    a.param("clinician_id", c);
                    p.require_operator("listing a clinician's tokens")?;
                }
                if gym.is_none() && clinician.is_none() {
                    p.require_operator("listing every token")?;
                }
                a.param("include_revoked", req.include_revoked);
                let tokens: Vec<AccessToken> = self
                    .inner
                    .store
                    .list_tokens(gym.as_ref(), clinician.as_deref(), req.include_revoked)
                    .await
                    .map_err(store_status)?;
                a.count(tokens.len());
                Ok(Response::new(ListTokensResponse { tokens }))
            }
        )
    }

    async fn create_clinician(
        &self,
        request: Request<CreateClinicianRequest>,
    ) -> Result<Response<CreateClinicianResponse>, Status> {
        access_call!(
            self,
            request,
            "CreateClinician",
            "Access.CreateClinician",
            |p, a, req| {
                let id = if req.clinician_id.is_empty() {
                    None
                } else {
                    Some(validate::slug("clinician_id", &req.clinician_id)?.into_string())
                };
                let name = validate::text("name", &req.name, validate::MAX_TEXT, true)?;
                if let Some(id) = &id {
                    a.param("clinician_id", id);
                }
                p.require_operator("CreateClinician")?;
                let (c, created) = self
                    .inner
                    .store
                    .create_clinician(id.as_deref(), name)
                    .await
                    .map_err(store_status)?;
                a.param("created", created);
                Ok(Response::new(CreateClinicianResponse {
                    clinician: Some(c),
                    created,
                }))
            }
        )
    }

    async fn list_clinicians(
        &self,
        request: Request<ListCliniciansRequest>,
    ) -> Result<Response<ListCliniciansResponse>, Status> {
        access_call!(
            self,
            request,
            "ListClinicians",
            "Access.ListClinicians",
            |p, a, _req| {
                gym_staff_admin(p, "ListClinicians")?;
                let clinicians = self
                    .inner
                    .store
                    .list_clinicians()
                    .await
                    .map_err(store_status)?;
                a.count(clinicians.len());
                Ok(Response::new(ListCliniciansResponse { clinicians }))
            }
        )
    }

    async fn grant_consent(
        &self,
        request: Request<GrantConsentRequest>,
    ) -> Result<Response<ConsentGrant>, Status> {
        access_call!(
            self,
            request,
            "GrantConsent",
            "Access.GrantConsent",
            |p, a, req| {
                let clinician = clinician_id("clinician_id", &req.clinician_id)?;
                let gym = validate::gym_id("gym_id", &req.gym_id)?;
                let athlete = if req.athlete_id.is_empty() {
                    None
                } else {
                    Some(validate::athlete_id("athlete_id", &req.athlete_id)?)
                };
                a.gym(&gym);
                a.param("clinician_id", &clinician);
                a.param(
                    "athlete_id",
                    athlete.as_ref().map(AthleteId::as_str).unwrap_or("*"),
                );
                a.param("include_identity", req.include_identity);
                match p {
                    Principal::Operator => {}
                    Principal::Athlete {
                        gym: own,
                        athlete: me,
                        ..
                    } => match &athlete {
                        Some(at) if at == me && *own == gym => {}
                        Some(at) => {
                            return Err(denied(format!(
                                "{} may grant consent only for itself, not for athlete `{at}` of gym `{gym}`",
                                p.describe()
                            )));
                        }
                        None => {
                            return Err(denied(format!(
                                "whole-gym consent for gym `{gym}` is granted by the gym's admin; {} may grant consent for itself only",
                                p.describe()
                            )));
                        }
                    },
                    Principal::Gym(_) | Principal::GymAdmin { .. } => match &athlete {
                        None => p.check_gym_admin(&gym, "granting whole-gym consent")?,
                        Some(at) => {
                            return Err(denied(format!(
                                "consent for athlete `{at}` is given by the athlete (with an athlete token); {} may grant whole-gym consent only",
                                p.describe()
                            )));
                        }
                    },
                    Principal::Coach { .. } | Principal::Clinician { .. } => {
                        return Err(denied(format!(
                            "granting consent for gym `{gym}` requires the operator, the gym's admin (whole gym) or the athlete (themselves); {} may not",
                            p.describe()
                        )));
                    }
                }
                let g = self
                    .inner
                    .store
                    .grant_consent(
                        &clinician,
                        &gym,
                        athlete.as_ref(),
                        req.include_identity,
                        &p.actor(),
                    )
                    .await
                    .map_err(store_status)?;
                a.param("grant_id", &g.grant_id);
                Ok(Response::new(g))
            }
        )
    }

    async fn revoke_consent(
        &self,
        request: Request<RevokeConsentRequest>,
    ) -> Result<Response<RevokeConsentResponse>, Status> {
        access_call!(
            self,
            request,
            "RevokeConsent",
            "Access.RevokeConsent",
            |p, a, req| {
                let grant_id = validate::text("grant_id", &req.grant_id, 64, true)?;
                a.param("grant_id", grant_id);
                let store = &self.inner.store;
                let g = store
                    .get_grant(grant_id)
                    .await
                    .map_err(store_status)?
                    .ok_or_else(|| {
                        status(
                            ErrorKind::NotFound,
                            format!("consent grant `{grant_id}` does not exist"),
                        )
                    })?;
                let gym = GymId::parse(g.gym_id.as_str())
                    .map_err(|e| status(ErrorKind::Internal, format!("stored grant: {e}")))?;
                a.gym(&gym);
                match p {
                    Principal::Operator => {}
                    Principal::Athlete {
                        athlete, gym: own, ..
                    } => {
                        if g.athlete_id.is_empty() {
                            return Err(denied(format!(
                                "grant `{grant_id}` covers the whole gym `{gym}`; it is revoked by the gym's admin, not by {}",
                                p.describe()
                            )));
                        }
                        if g.athlete_id != athlete.as_str() || *own != gym {
                            return Err(denied(format!(
                                "{} may revoke only its own grants; grant `{grant_id}` is for another athlete",
                                p.describe()
                            )));
                        }
                    }
                    _ => {
                        p.check_gym_admin(&gym, &format!("revoking consent grant `{grant_id}`"))?
                    }
                }
                let revoked = store
                    .revoke_consent(grant_id, &p.actor())
                    .await
                    .map_err(store_status)?;
                Ok(Response::new(RevokeConsentResponse { revoked }))
            }
        )
    }

    async fn list_grants(
        &self,
        request: Request<ListGrantsRequest>,
    ) -> Result<Response<ListGrantsResponse>, Status> {
        access_call!(
            self,
            request,
            "ListGrants",
            "Access.ListGrants",
            |p, a, req| {
                let mut f = GrantFilter {
                    include_revoked: req.include_revoked,
                    ..GrantFilter::default()
                };
                if !req.gym_id.is_empty() {
                    f.gym = Some(validate::gym_id("gym_id", &req.gym_id)?);
                }
                if !req.athlete_id.is_empty() {
                    f.athlete = Some(validate::athlete_id("athlete_id", &req.athlete_id)?);
                }
                if !req.clinician_id.is_empty() {
                    f.clinician = Some(clinician_id("clinician_id", &req.clinician_id)?);
                }
                if let Some(g) = &f.gym {
                    a.gym(g);
                }
                a.param(
                    "athlete_id",
                    f.athlete.as_ref().map(AthleteId::as_str).unwrap_or("*"),
                );
                a.param("clinician_id", f.clinician.as_deref().unwrap_or("*"));
                let mut present: Option<Scope> = None;
                match p {
                    Principal::Operator => {}
                    Principal::Gym(own) | Principal::GymAdmin { gym: own, .. } => match &f.gym {
                        Some(g) => p.check_gym_admin(g, "listing consent grants")?,
                        None => {
                            a.gym(own);
                            f.gym = Some(own.clone());
                        }
                    },
                    Principal::Athlete { gym, athlete, .. } => {
                        if let Some(g) = &f.gym {
                            p.check_athlete(g, athlete)?;
                        }
                        if let Some(at) = &f.athlete {
                            p.check_athlete(gym, at)?;
                        }
                        a.gym(gym);
                        f.gym = Some(gym.clone());
                        f.athlete = None;
                        f.covering_athlete = Some(athlete.clone());
                    }
                    Principal::Clinician { clinician_id, .. } => {
                        if let Some(c) = &f.clinician
                            && c != clinician_id
                        {
                            return Err(denied(format!(
                                "{} may list only its own grants, not those of clinician `{c}`",
                                p.describe()
                            )));
                        }
                        if f.athlete.is_some() {
                            return Err(denied(format!(
                                "{} may not filter grants by athlete id; list them all",
                                p.describe()
                            )));
                        }
                        f.clinician = Some(clinician_id.clone());
                        present = Some(auth::scope(p, &self.inner.store).await?);
                    }
                    Principal::Coach { .. } => {
                        return Err(denied(format!(
                            "listing consent grants requires the operator, a gym admin token, a gym \
                         API key, or the athlete or clinician concerned; {} may not",
                            p.describe()
                        )));
                    }
                }
                let mut grants = self
                    .inner
                    .store
                    .list_grants(&f)
                    .await
                    .map_err(store_status)?;
                if let Some(scope) = present {
                    let key = self.presentation_key(&scope)?;
                    for g in &mut grants {
                        if !g.athlete_id.is_empty() {
                            g.athlete_id = scope.present(key, &g.athlete_id);
                        }
                    }
                }
                a.count(grants.len());
                Ok(Response::new(ListGrantsResponse { grants }))
            }
        )
    }

    async fn query_audit_log(
        &self,
        request: Request<QueryAuditLogRequest>,
    ) -> Result<Response<QueryAuditLogResponse>, Status> {
        access_call!(
            self,
            request,
            "QueryAuditLog",
            "Access.QueryAuditLog",
            |p, a, req| {
                let gym = if req.gym_id.is_empty() {
                    match p {
                        Principal::Operator => None,
                        Principal::Gym(g) | Principal::GymAdmin { gym: g, .. } => Some(g.clone()),
                        _ => {
                            return Err(denied(format!(
                                "reading the audit log requires the operator or a gym admin; {} may not",
                                p.describe()
                            )));
                        }
                    }
                } else {
                    Some(validate::gym_id("gym_id", &req.gym_id)?)
                };
                let (from_us, to_us) = validate::range("range", req.range, false)?;
                let limit = validate::limit(
                    "limit",
                    req.limit,
                    AUDIT_DEFAULT_LIMIT,
                    liftguard_store::MAX_PAGE_LIMIT,
                )?;
                let before = if req.page_token.is_empty() {
                    None
                } else {
                    Some(
                        req.page_token
                            .strip_prefix("b")
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or_else(|| {
                                validate::invalid(
                                    "page_token",
                                    "not a token returned by QueryAuditLog",
                                )
                            })?,
                    )
                };
                if let Some(g) = &gym {
                    a.gym(g);
                    p.check_gym_admin(g, "reading the audit log")?;
                }
                let page = self
                    .inner
                    .store
                    .query_audit(gym.as_ref(), from_us, to_us, limit, before)
                    .await
                    .map_err(store_status)?;
                a.count(page.entries.len());
                Ok(Response::new(QueryAuditLogResponse {
                    entries: page.entries,
                    next_page_token: page
                        .next_before
                        .map(|b| format!("b{b}"))
                        .unwrap_or_default(),
                }))
            }
        )
    }

    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        access_call!(self, request, "WhoAmI", "Access.WhoAmI", |p, a, _req| {
            let c = self.caller(p.clone()).await?;
            let key = self.presentation_key(&c.scope)?;
            let expires_us = match p.token_id() {
                Some(t) => self
                    .inner
                    .store
                    .get_token(t)
                    .await
                    .map_err(store_status)?
                    .map(|t| t.expires_us)
                    .unwrap_or_default(),
                None => 0,
            };
            let athlete_ids: Vec<String> = c
                .scope
                .athletes
                .iter()
                .flatten()
                .map(|at| c.scope.present(key, at.as_str()))
                .collect();
            a.count(athlete_ids.len());
            Ok(Response::new(WhoAmIResponse {
                role: p.role().to_owned(),
                actor: p.actor(),
                token_id: p.token_id().unwrap_or_default().to_owned(),
                gym_id: p.gym().map(|g| g.as_str().to_owned()).unwrap_or_default(),
                athlete_id: p
                    .athlete()
                    .map(|at| at.as_str().to_owned())
                    .unwrap_or_default(),
                clinician_id: match p {
                    Principal::Clinician { clinician_id, .. } => clinician_id.clone(),
                    _ => String::new(),
                },
                expires_us,
                all_gyms: c.scope.gyms.is_none(),
                gym_ids: c
                    .scope
                    .gyms
                    .iter()
                    .flatten()
                    .map(|g| g.as_str().to_owned())
                    .collect(),
                all_athletes: c.scope.athletes.is_none(),
                athlete_ids,
                identity: c.scope.identity,
            }))
        })
    }
}
