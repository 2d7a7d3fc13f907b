//! Access control in the store: scopes (what a caller may read, applied inside every
//! query's SQL, never by filtering results afterwards), pseudonyms, access tokens with
//! roles, clinicians, consent grants and the audit log (migration v5 `access`).
//!
//! Invariants:
//! - A [`Scope`] is built from an authenticated principal only (see `liftguard-runtime`'s
//!   auth module); queries take a `&Scope` and put its gym and athlete sets into their
//!   WHERE clause.
//! - `gyms` and `athletes` intersect: a row is visible when its gym is in `gyms` (or
//!   `gyms` is `None`) AND its athlete is in `athletes` (or `athletes` is `None`). An empty
//!   list sees nothing.
//! - `identity == false` means athlete ids leave the store pseudonymised with
//!   [`pseudonym`] (keyed HMAC-SHA256: stable for one deployment secret, not reversible
//!   without it, different between deployments).
//! - Token secrets (`lgt_<token_id>_<64 hex>`, 32 bytes from the OS CSPRNG) are returned
//!   once; only their SHA-256 is stored. Every token expires (`expires` is NOT NULL) and
//!   can be revoked; a token's role fixes which of gym / athlete / clinician it is bound
//!   to (a CHECK constraint), and the binding references existing rows.
//! - At most one active consent grant per (clinician, gym, athlete-or-whole-gym) (a
//!   partial unique index); revoking keeps the row (`revoked`), so the history stays.
//! - A clinician's scope is computed from the active grants at call time, so a
//!   revocation takes effect on the next call. Mixed identity settings resolve to the
//!   least revealing (`identity` only when every active grant includes it).
//! - The audit log is append-only from the store's API (no update or delete function).

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::{
    AccessToken, Athlete, AuditEntry, Clinician, ConsentGrant, RepRecord, Role,
};
use sha2::Sha256;
use sqlx::{Postgres, QueryBuilder, Sqlite};

use crate::common::{check_text, now_us, random_hex, sha256_hex};
use crate::{Store, StoreError};

/// What a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Gyms whose data is visible; `None` = every gym (operator only).
    pub gyms: Option<Vec<GymId>>,
    /// Athletes whose data is visible (within `gyms`); `None` = every athlete of those gyms.
    pub athletes: Option<Vec<AthleteId>>,
    /// Real athlete ids may be shown; otherwise results carry pseudonyms.
    pub identity: bool,
}

impl Scope {
    /// Everything, with identities (the operator).
    pub fn all() -> Self {
        Self {
            gyms: None,
            athletes: None,
            identity: true,
        }
    }

    /// One gym, every athlete, with identities (that gym's admin).
    pub fn gym(gym: GymId) -> Self {
        Self {
            gyms: Some(vec![gym]),
            athletes: None,
            identity: true,
        }
    }

    /// One athlete of one gym, with identity (the athlete themselves).
    pub fn athlete(gym: GymId, athlete: AthleteId) -> Self {
        Self {
            gyms: Some(vec![gym]),
            athletes: Some(vec![athlete]),
            identity: true,
        }
    }

    /// Nothing at all (e.g. a clinician without any active consent grant).
    pub fn none() -> Self {
        Self {
            gyms: Some(Vec::new()),
            athletes: Some(Vec::new()),
            identity: false,
        }
    }

    /// True when the scope can see no row at all.
    pub fn is_empty(&self) -> bool {
        matches!(&self.gyms, Some(g) if g.is_empty())
            || matches!(&self.athletes, Some(a) if a.is_empty())
    }

    /// Whether the gym is (at least partly) visible.
    pub fn covers_gym(&self, gym: &GymId) -> bool {
        self.gyms.as_ref().is_none_or(|g| g.contains(gym)) && !self.is_empty()
    }

    /// Whether every athlete of the gym is visible (a gym-wide read is allowed).
    pub fn covers_whole_gym(&self, gym: &GymId) -> bool {
        self.athletes.is_none() && self.gyms.as_ref().is_none_or(|g| g.contains(gym))
    }

    /// Whether the athlete of `gym` is visible.
    pub fn covers_athlete(&self, gym: &GymId, athlete: &AthleteId) -> bool {
        self.gyms.as_ref().is_none_or(|g| g.contains(gym))
            && self.athletes.as_ref().is_none_or(|a| a.contains(athlete))
    }

    /// The id to show for `athlete`: itself with identity, its [`pseudonym`] otherwise.
    pub fn present(&self, secret: &[u8], athlete: &str) -> String {
        if self.identity {
            athlete.to_owned()
        } else {
            pseudonym(secret, athlete)
        }
    }

    /// `text` with every occurrence of `athlete` replaced by its presentation (record ids
    /// derived from the athlete id: rep, set, session and alert ids).
    pub fn present_in(&self, secret: &[u8], athlete: &str, text: &str) -> String {
        if self.identity || athlete.is_empty() || !text.contains(athlete) {
            text.to_owned()
        } else {
            text.replace(athlete, &pseudonym(secret, athlete))
        }
    }

    /// A rep as this scope may see it: without identity, the athlete id and every id
    /// derived from it (rep, set, session) carry the pseudonym.
    pub fn present_rep(&self, secret: &[u8], mut r: RepRecord) -> RepRecord {
        if self.identity {
            return r;
        }
        let real = std::mem::take(&mut r.athlete_id);
        for s in [&mut r.rep_id, &mut r.session_id, &mut r.set_id] {
            *s = self.present_in(secret, &real, s);
        }
        r.athlete_id = pseudonym(secret, &real);
        r
    }

    /// An athlete as this scope may see them: without identity, the pseudonym and no
    /// name or external reference (cohort fields stay: population analytics need them).
    pub fn present_athlete(&self, secret: &[u8], mut a: Athlete) -> Athlete {
        if !self.identity {
            a.athlete_id = pseudonym(secret, &a.athlete_id);
            a.display_name.clear();
            a.external_ref.clear();
        }
        a
    }

    /// The gym list as strings, for binding (`None` = no gym condition).
    pub(crate) fn gym_strs(&self) -> Option<Vec<String>> {
        self.gyms
            .as_ref()
            .map(|g| g.iter().map(|g| g.as_str().to_owned()).collect())
    }

    /// The athlete list as strings, for binding (`None` = no athlete condition).
    pub(crate) fn athlete_strs(&self) -> Option<Vec<String>> {
        self.athletes
            .as_ref()
            .map(|a| a.iter().map(|a| a.as_str().to_owned()).collect())
    }
}

/// Length of a pseudonym's hex part: 64 bits of the HMAC (collisions among a fleet of a
/// million athletes have probability ~3e-8).
const PSEUDONYM_HEX: usize = 16;

/// The pseudonym of `athlete` under the deployment's `secret`: `p-` + the first 16 hex
/// digits of HMAC-SHA256(secret, athlete). Stable for one secret, a valid athlete id
/// itself (so a clinician can pass it back in requests), never equal to an enrolled id
/// (those start with `a-`).
pub fn pseudonym(secret: &[u8], athlete: &str) -> String {
    // HMAC accepts keys of any length (an empty key is still a key; configuration
    // should provide at least 32 random bytes).
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        // Unreachable for HMAC (every key length is valid); hash without a key rather
        // than panic.
        Err(_) => return format!("p-{}", &crate::common::sha256_hex(athlete)[..PSEUDONYM_HEX]),
    };
    mac.update(athlete.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(2 + PSEUDONYM_HEX);
    out.push_str("p-");
    out.push_str(&hex::encode(&digest[..PSEUDONYM_HEX / 2]));
    out
}

// ---------------------------------------------------------------------------------------
// Scope in SQL

/// How a backend spells "column is one of these values" with a single bound parameter:
/// PostgreSQL `col = ANY($n::text[])`, SQLite `col IN (SELECT value FROM json_each(?))`
/// (one parameter whatever the list length, so SQLite's parameter limit never applies).
pub(crate) trait ScopeSql: sqlx::Database + Sized {
    fn push_in(qb: &mut QueryBuilder<Self>, col: &str, vals: Vec<String>);
}

impl ScopeSql for Postgres {
    fn push_in(qb: &mut QueryBuilder<Self>, col: &str, vals: Vec<String>) {
        qb.push(col)
            .push(" = ANY(")
            .push_bind(vals)
            .push("::text[])");
    }
}

impl ScopeSql for Sqlite {
    fn push_in(qb: &mut QueryBuilder<Self>, col: &str, vals: Vec<String>) {
        // Ids are validated model ids ([A-Za-z0-9:_.-]), so they need no JSON escaping.
        let json = format!(
            "[{}]",
            vals.iter()
                .map(|v| format!("\"{v}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        qb.push(col)
            .push(" IN (SELECT value FROM json_each(")
            .push_bind(json)
            .push("))");
    }
}

/// Appends `(<gym condition> AND <athlete condition>)` for `scope` (`(1=1)` for
/// everything).
pub(crate) fn push_scope<DB: ScopeSql>(
    qb: &mut QueryBuilder<DB>,
    scope: &Scope,
    gym_col: &str,
    athlete_col: &str,
) {
    qb.push("(1=1");
    if let Some(g) = scope.gym_strs() {
        qb.push(" AND ");
        DB::push_in(qb, gym_col, g);
    }
    if let Some(a) = scope.athlete_strs() {
        qb.push(" AND ");
        DB::push_in(qb, athlete_col, a);
    }
    qb.push(")");
}

// ---------------------------------------------------------------------------------------
// Types

/// Lifetime limits of tokens are the caller's policy; the store only requires one.
/// What a token is bound to; the variant is its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    GymAdmin(GymId),
    Coach(GymId),
    Clinician(String),
    Athlete(GymId, AthleteId),
}

impl TokenSubject {
    /// The stored role name.
    pub fn role_name(&self) -> &'static str {
        match self {
            TokenSubject::GymAdmin(_) => "gym_admin",
            TokenSubject::Coach(_) => "coach",
            TokenSubject::Clinician(_) => "clinician",
            TokenSubject::Athlete(..) => "athlete",
        }
    }

    pub fn role(&self) -> Role {
        match self {
            TokenSubject::GymAdmin(_) => Role::GymAdmin,
            TokenSubject::Coach(_) => Role::Coach,
            TokenSubject::Clinician(_) => Role::Clinician,
            TokenSubject::Athlete(..) => Role::Athlete,
        }
    }

    pub fn gym(&self) -> Option<&GymId> {
        match self {
            TokenSubject::GymAdmin(g) | TokenSubject::Coach(g) | TokenSubject::Athlete(g, _) => {
                Some(g)
            }
            TokenSubject::Clinician(_) => None,
        }
    }

    /// Rebuilds the subject of a stored token (`CorruptRow` when the row is inconsistent).
    pub fn of_token(t: &AccessToken) -> Result<TokenSubject, StoreError> {
        let corrupt = |r: String| StoreError::corrupt("access_tokens", r);
        let gym =
            || GymId::parse(t.gym_id.as_str()).map_err(|e| corrupt(format!("{}: {e}", t.token_id)));
        match Role::try_from(t.role) {
            Ok(Role::GymAdmin) => Ok(TokenSubject::GymAdmin(gym()?)),
            Ok(Role::Coach) => Ok(TokenSubject::Coach(gym()?)),
            Ok(Role::Clinician) if !t.clinician_id.is_empty() => {
                Ok(TokenSubject::Clinician(t.clinician_id.clone()))
            }
            Ok(Role::Athlete) => Ok(TokenSubject::Athlete(
                gym()?,
                AthleteId::parse(t.athlete_id.as_str())
                    .map_err(|e| corrupt(format!("{}: {e}", t.token_id)))?,
            )),
            _ => Err(corrupt(format!("{}: role {}", t.token_id, t.role))),
        }
    }
}

pub(crate) fn role_from_name(s: &str) -> Result<Role, StoreError> {
    match s {
        "gym_admin" => Ok(Role::GymAdmin),
        "coach" => Ok(Role::Coach),
        "clinician" => Ok(Role::Clinician),
        "athlete" => Ok(Role::Athlete),
        other => Err(StoreError::corrupt(
            "access_tokens",
            format!("role {other:?}"),
        )),
    }
}

/// A newly issued access token; `secret` is shown once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: AccessToken,
    /// `lgt_<token_id>_<64 hex chars>`.
    pub secret: String,
}

/// The outcome of presenting a token secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(AccessToken, TokenSubject),
    /// Known, but `expires_us <= now`.
    Expired(AccessToken),
    Revoked(AccessToken),
    /// Not a token this store issued (or malformed).
    Unknown,
}

/// Which grants [`Store::list_grants`] returns; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantFilter {
    pub gym: Option<GymId>,
    /// Grants covering this athlete: their own grants and whole-gym grants of `gym`
    /// (set `gym` to the athlete's gym).
    pub covering_athlete: Option<AthleteId>,
    /// Only grants naming exactly this athlete (no whole-gym grants).
    pub athlete: Option<AthleteId>,
    pub clinician: Option<String>,
    pub include_revoked: bool,
}

/// One audit log row to append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub actor: String,
    pub role: String,
    pub token_id: Option<String>,
    /// The gym whose data the call addressed.
    pub gym: Option<GymId>,
    pub action: String,
    pub params: String,
    /// `OK` or the gRPC code name.
    pub status: String,
    pub result_count: Option<i64>,
    pub detail: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Continue with entries older than this id.
    pub next_before: Option<i64>,
}

/// Longest audit `params`/`detail` stored, in characters (longer text is cut, never refused).
const MAX_AUDIT_TEXT: usize = 2_000;
/// Most athletes one [`Store::athlete_ids_in_scope`] call returns.
pub const MAX_SCOPED_ATHLETES: usize = 200_000;

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_AUDIT_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Clinician ids chosen by the operator: `[a-z0-9-]{3,64}` (like gym slugs).
fn check_clinician_id(id: &str) -> Result<(), StoreError> {
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=64).contains(&id.len()) || !ok {
        return Err(StoreError::invalid(
            "clinician_id",
            format!("{id:?} must match [a-z0-9-]{{3,64}}"),
        ));
    }
    Ok(())
}

/// Times of rows decoded in µs, whatever the backend's column type.
pub(crate) trait TimeUs {
    fn us(self) -> i64;
}

impl TimeUs for i64 {
    fn us(self) -> i64 {
        self
    }
}

impl TimeUs for chrono::DateTime<chrono::Utc> {
    fn us(self) -> i64 {
        self.timestamp_micros()
    }
}

// ---------------------------------------------------------------------------------------
// Store API

macro_rules! dispatch_access {
    ($self:ident, $db:ident => $call:expr) => {
        match &$self.inner.db {
            crate::Db::Pg($db) => $call,
            crate::Db::Sqlite($db) => $call,
        }
    };
}

impl Store {
    /// Issues an access token for an existing subject (`NotFound` naming the missing gym,
    /// athlete or clinician otherwise) that expires at `expires_us`. `issued_by` is the
    /// issuer's actor label. Only the secret's SHA-256 is stored.
    pub async fn issue_token(
        &self,
        subject: &TokenSubject,
        label: &str,
        expires_us: i64,
        issued_by: &str,
    ) -> Result<IssuedToken, StoreError> {
        check_text("label", label)?;
        check_text("issued_by", issued_by)?;
        crate::common::check_time("expires_us", expires_us)?;
        let now = now_us();
        if expires_us <= now {
            return Err(StoreError::invalid(
                "expires_us",
                format!("{expires_us} is not in the future"),
            ));
        }
        if let TokenSubject::Clinician(c) = subject {
            check_text("clinician_id", c)?;
        }
        let token_id = format!("t-{}", random_hex(8)?);
        let secret = format!("lgt_{token_id}_{}", random_hex(32)?);
        let token = AccessToken {
            token_id,
            role: subject.role() as i32,
            gym_id: subject
                .gym()
                .map(|g| g.as_str().to_owned())
                .unwrap_or_default(),
            athlete_id: match subject {
                TokenSubject::Athlete(_, a) => a.as_str().to_owned(),
                _ => String::new(),
            },
            clinician_id: match subject {
                TokenSubject::Clinician(c) => c.clone(),
                _ => String::new(),
            },
            label: label.to_owned(),
            issued_by: issued_by.to_owned(),
            created_us: now,
            expires_us,
            revoked_us: 0,
        };
        dispatch_access!(self, db => db.insert_token(subject, &token, &sha256_hex(&secret)).await)?;
        tracing::info!(
            token_id = token.token_id,
            role = subject.role_name(),
            issued_by,
            "access token issued"
        );
        Ok(IssuedToken { token, secret })
    }

    /// Revokes a token: `Ok(true)` when revoked now, `Ok(false)` when it already was,
    /// `NotFound` when there is no such token.
    pub async fn revoke_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let revoked = dispatch_access!(self, db => db.revoke_token(token_id).await)?;
        if revoked {
            tracing::info!(token_id, "access token revoked");
        }
        Ok(revoked)
    }

    pub async fn get_token(&self, token_id: &str) -> Result<Option<AccessToken>, StoreError> {
        dispatch_access!(self, db => db.get_token(token_id).await)
    }

    /// Tokens (never secrets) of a gym and/or a clinician, or all, ordered by id.
    pub async fn list_tokens(
        &self,
        gym: Option<&GymId>,
        clinician: Option<&str>,
        include_revoked: bool,
    ) -> Result<Vec<AccessToken>, StoreError> {
        dispatch_access!(self, db => db.list_tokens(gym, clinician, include_revoked).await)
    }

    /// What a presented secret is. Anything not shaped like a token secret is `Unknown`
    /// without a database round trip.
    pub async fn check_token(&self, secret: &str) -> Result<TokenCheck, StoreError> {
        if !secret.starts_with("lgt_") || secret.len() > 128 {
            return Ok(TokenCheck::Unknown);
        }
        let Some(token) =
            dispatch_access!(self, db => db.token_by_hash(&sha256_hex(secret)).await)?
        else {
            return Ok(TokenCheck::Unknown);
        };
        if token.revoked_us != 0 {
            return Ok(TokenCheck::Revoked(token));
        }
        if token.expires_us <= now_us() {
            return Ok(TokenCheck::Expired(token));
        }
        let subject = TokenSubject::of_token(&token)?;
        Ok(TokenCheck::Valid(token, subject))
    }

    /// Creates a clinician, idempotent on the id (`None` = generated `c-` + 16 hex).
    /// Returns the clinician and whether this call created it.
    pub async fn create_clinician(
        &self,
        clinician_id: Option<&str>,
        name: &str,
    ) -> Result<(Clinician, bool), StoreError> {
        check_text("name", name)?;
        let id = match clinician_id {
            Some(id) => {
                check_clinician_id(id)?;
                id.to_owned()
            }
            None => format!("c-{}", random_hex(8)?),
        };
        let (c, created) =
            dispatch_access!(self, db => db.create_clinician(&id, name, now_us()).await)?;
        if created {
            tracing::info!(clinician = c.clinician_id, "clinician created");
        }
        Ok((c, created))
    }

    pub async fn get_clinician(&self, clinician_id: &str) -> Result<Option<Clinician>, StoreError> {
        dispatch_access!(self, db => db.get_clinician(clinician_id).await)
    }

    /// Every clinician, ordered by id.
    pub async fn list_clinicians(&self) -> Result<Vec<Clinician>, StoreError> {
        dispatch_access!(self, db => db.list_clinicians().await)
    }

    /// Grants `clinician` access to `athlete` of `gym` (or to the whole gym when `None`).
    /// Idempotent: an active grant with the same key and identity flag is returned
    /// unchanged; one with another identity flag is revoked and replaced (so the history
    /// shows the change). `NotFound` for an unknown clinician, gym or athlete of the gym.
    pub async fn grant_consent(
        &self,
        clinician: &str,
        gym: &GymId,
        athlete: Option<&AthleteId>,
        include_identity: bool,
        granted_by: &str,
    ) -> Result<ConsentGrant, StoreError> {
        check_text("clinician_id", clinician)?;
        check_text("granted_by", granted_by)?;
        let grant_id = format!("g-{}", random_hex(8)?);
        let g = dispatch_access!(self, db => db.grant_consent(&grant_id, clinician, gym, athlete, include_identity, granted_by, now_us()).await)?;
        tracing::info!(grant = g.grant_id, clinician, gym = %gym, athlete = g.athlete_id, include_identity, granted_by, "consent granted");
        Ok(g)
    }

    /// Revokes a grant: `Ok(true)` now, `Ok(false)` already revoked, `NotFound` unknown.
    pub async fn revoke_consent(
        &self,
        grant_id: &str,
        revoked_by: &str,
    ) -> Result<bool, StoreError> {
        check_text("revoked_by", revoked_by)?;
        let r =
            dispatch_access!(self, db => db.revoke_consent(grant_id, revoked_by, now_us()).await)?;
        if r {
            tracing::info!(grant = grant_id, revoked_by, "consent revoked");
        }
        Ok(r)
    }

    pub async fn get_grant(&self, grant_id: &str) -> Result<Option<ConsentGrant>, StoreError> {
        dispatch_access!(self, db => db.get_grant(grant_id).await)
    }

    /// Grants matching `f`, ordered by grant time then id.
    pub async fn list_grants(&self, f: &GrantFilter) -> Result<Vec<ConsentGrant>, StoreError> {
        dispatch_access!(self, db => db.list_grants(f).await)
    }

    /// The scope of a clinician, from the active grants at this moment: the gyms with a
    /// grant; every athlete of a gym with a whole-gym grant; granted athletes otherwise.
    /// [`Scope::none`] without grants.
    pub async fn clinician_scope(&self, clinician: &str) -> Result<Scope, StoreError> {
        let grants = self
            .list_grants(&GrantFilter {
                clinician: Some(clinician.to_owned()),
                ..GrantFilter::default()
            })
            .await?;
        if grants.is_empty() {
            return Ok(Scope::none());
        }
        let corrupt =
            |e: liftguard_model::IdError| StoreError::corrupt("consent_grants", e.to_string());
        let identity = grants.iter().all(|g| g.include_identity);
        let mut gyms = BTreeSet::new();
        let mut whole = BTreeSet::new();
        let mut athletes = BTreeSet::new();
        for g in &grants {
            let gym = GymId::parse(g.gym_id.as_str()).map_err(corrupt)?;
            if g.athlete_id.is_empty() {
                whole.insert(gym.clone());
            } else {
                athletes.insert(AthleteId::parse(g.athlete_id.as_str()).map_err(corrupt)?);
            }
            gyms.insert(gym);
        }
        let gyms: Vec<GymId> = gyms.into_iter().collect();
        if whole.len() == gyms.len() {
            return Ok(Scope {
                gyms: Some(gyms),
                athletes: None,
                identity,
            });
        }
        // Some gyms are covered only athlete by athlete: list the whole-gym grants'
        // athletes explicitly (as of now) so the scope stays one intersection.
        if !whole.is_empty() {
            let whole_scope = Scope {
                gyms: Some(whole.into_iter().collect()),
                athletes: None,
                identity,
            };
            for (_, a) in self.athlete_ids_in_scope(&whole_scope).await? {
                athletes.insert(a);
            }
        }
        Ok(Scope {
            gyms: Some(gyms),
            athletes: Some(athletes.into_iter().collect()),
            identity,
        })
    }

    /// The enrolled athletes a scope covers, as (gym, athlete), ordered by athlete id.
    /// `OutOfRange` beyond [`MAX_SCOPED_ATHLETES`].
    pub async fn athlete_ids_in_scope(
        &self,
        scope: &Scope,
    ) -> Result<Vec<(GymId, AthleteId)>, StoreError> {
        let limit = MAX_SCOPED_ATHLETES as i64 + 1;
        let rows = dispatch_access!(self, db => db.athlete_ids_in_scope(scope, limit).await)?;
        if rows.len() > MAX_SCOPED_ATHLETES {
            return Err(StoreError::ResultTooLarge {
                what: "scoped athletes",
                limit: MAX_SCOPED_ATHLETES,
            });
        }
        let corrupt = |e: liftguard_model::IdError| StoreError::corrupt("athletes", e.to_string());
        rows.into_iter()
            .map(|(g, a)| {
                Ok((
                    GymId::parse(g).map_err(corrupt)?,
                    AthleteId::parse(a).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    /// Appends an audit row; returns its id. Long `params`/`detail` are cut, not refused.
    pub async fn record_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let r = AuditRecord {
            params: cut(&r.params).replace('\0', ""),
            detail: cut(&r.detail).replace('\0', ""),
            ..r.clone()
        };
        for (f, v) in [
            ("actor", &r.actor),
            ("role", &r.role),
            ("action", &r.action),
            ("status", &r.status),
        ] {
            check_text(f, v)?;
        }
        dispatch_access!(self, db => db.record_audit(&r, now_us()).await)
    }

    /// Audit rows, newest first: of `gym` (or every row when `None`), with times in
    /// `[from_us, to_us)`, older than `before` (a previous page's `next_before`).
    pub async fn query_audit(
        &self,
        gym: Option<&GymId>,
        from_us: i64,
        to_us: i64,
        limit: u32,
        before: Option<i64>,
    ) -> Result<AuditPage, StoreError> {
        if !(1..=crate::MAX_PAGE_LIMIT).contains(&limit) {
            return Err(StoreError::invalid(
                "limit",
                format!("{limit} is outside 1..={}", crate::MAX_PAGE_LIMIT),
            ));
        }
        let (from, to) = (
            crate::common::clamp_query_time(from_us),
            crate::common::clamp_query_time(to_us),
        );
        if from >= to {
            return Ok(AuditPage {
                entries: Vec::new(),
                next_before: None,
            });
        }
        let fetch = i64::from(limit) + 1;
        let mut entries =
            dispatch_access!(self, db => db.query_audit(gym, from, to, fetch, before).await)?;
        let next_before = if entries.len() > limit as usize {
            entries.truncate(limit as usize);
            entries.last().map(|e| e.audit_id)
        } else {
            None
        };
        Ok(AuditPage {
            entries,
            next_before,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Backend implementations

/// The access statements of one backend. `$db` is the sqlx database, `$t` the time
/// column type, `$s` the time column suffix (`_at` / `_us`), `$begin` the statement
/// opening a write transaction.
macro_rules! access_impl {
    ($ty:ident, $db:ty, $t:ty, $s:literal, $begin:literal) => {
        impl $ty {
            pub(crate) async fn insert_token(
                &self,
                subject: &crate::access::TokenSubject,
                t: &liftguard_proto::v1::AccessToken,
                hash: &str,
            ) -> Result<(), StoreError> {
                use crate::access::TokenSubject as S;
                match subject {
                    S::GymAdmin(g) | S::Coach(g) => self.require_gym(g).await?,
                    S::Athlete(g, a) => {
                        let found = sqlx::query("SELECT 1 FROM athletes WHERE gym_id = $1 AND athlete_id = $2")
                            .bind(g.as_str())
                            .bind(a.as_str())
                            .fetch_optional(&self.pool)
                            .await?;
                        if found.is_none() {
                            return Err(StoreError::NotFound(format!("athlete {a} in gym {g}")));
                        }
                    }
                    S::Clinician(c) => {
                        if self.get_clinician(c).await?.is_none() {
                            return Err(StoreError::NotFound(format!("clinician {c}")));
                        }
                    }
                }
                let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
                sqlx::query(concat!(
                    "INSERT INTO access_tokens (token_id, role, gym_id, athlete_id, clinician_id, label, \
                     secret_sha256, issued_by, created", $s, ", expires", $s, ") \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(&t.token_id)
                .bind(subject.role_name())
                .bind(opt(&t.gym_id))
                .bind(opt(&t.athlete_id))
                .bind(opt(&t.clinician_id))
                .bind(&t.label)
                .bind(hash)
                .bind(&t.issued_by)
                .bind(Self::db_time(t.created_us)?)
                .bind(Self::db_time(t.expires_us)?)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            fn token_from_row(row: &Row) -> Result<liftguard_proto::v1::AccessToken, StoreError> {
                let role: String = row.try_get("role")?;
                let revoked: Option<$t> = row.try_get(concat!("revoked", $s))?;
                Ok(liftguard_proto::v1::AccessToken {
                    token_id: row.try_get("token_id")?,
                    role: crate::access::role_from_name(&role)? as i32,
                    gym_id: row.try_get::<Option<String>, _>("gym_id")?.unwrap_or_default(),
                    athlete_id: row.try_get::<Option<String>, _>("athlete_id")?.unwrap_or_default(),
                    clinician_id: row.try_get::<Option<String>, _>("clinician_id")?.unwrap_or_default(),
                    label: row.try_get("label")?,
                    issued_by: row.try_get("issued_by")?,
                    created_us: crate::access::TimeUs::us(row.try_get::<$t, _>(concat!("created", $s))?),
                    expires_us: crate::access::TimeUs::us(row.try_get::<$t, _>(concat!("expires", $s))?),
                    revoked_us: revoked.map(crate::access::TimeUs::us).unwrap_or(0),
                })
            }

            pub(crate) async fn get_token(
                &self,
                token_id: &str,
            ) -> Result<Option<liftguard_proto::v1::AccessToken>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT token_id, role, gym_id, athlete_id, clinician_id, label, issued_by, created", $s,
                    ", expires", $s, ", revoked", $s, " FROM access_tokens WHERE token_id = $1"
                ))
                .bind(token_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            pub(crate) async fn token_by_hash(
                &self,
                hash: &str,
            ) -> Result<Option<liftguard_proto::v1::AccessToken>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT token_id, role, gym_id, athlete_id, clinician_id, label, issued_by, created", $s,
                    ", expires", $s, ", revoked", $s, " FROM access_tokens WHERE secret_sha256 = $1"
                ))
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            pub(crate) async fn revoke_token(&self, token_id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(concat!(
                    "UPDATE access_tokens SET revoked", $s, " = $2 WHERE token_id = $1 AND revoked", $s, " IS NULL"
                ))
                .bind(token_id)
                .bind(Self::db_time(crate::common::now_us())?)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                match self.get_token(token_id).await? {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound(format!("access token {token_id}"))),
                }
            }

            pub(crate) async fn list_tokens(
                &self,
                gym: Option<&GymId>,
                clinician: Option<&str>,
                include_revoked: bool,
            ) -> Result<Vec<liftguard_proto::v1::AccessToken>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT token_id, role, gym_id, athlete_id, clinician_id, label, issued_by, created", $s,
                    ", expires", $s, ", revoked", $s, " FROM access_tokens WHERE 1=1"
                ));
                if let Some(g) = gym {
                    qb.push(" AND gym_id = ").push_bind(g.as_str().to_owned());
                }
                if let Some(c) = clinician {
                    qb.push(" AND clinician_id = ").push_bind(c.to_owned());
                }
                if !include_revoked {
                    qb.push(concat!(" AND revoked", $s, " IS NULL"));
                }
                qb.push(" ORDER BY token_id");
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::token_from_row).collect()
            }

            fn clinician_from_row(row: &Row) -> Result<liftguard_proto::v1::Clinician, StoreError> {
                Ok(liftguard_proto::v1::Clinician {
                    clinician_id: row.try_get("clinician_id")?,
                    name: row.try_get("name")?,
                    created_us: crate::access::TimeUs::us(row.try_get::<$t, _>(concat!("created", $s))?),
                })
            }

            pub(crate) async fn create_clinician(
                &self,
                id: &str,
                name: &str,
                now: i64,
            ) -> Result<(liftguard_proto::v1::Clinician, bool), StoreError> {
                let inserted = sqlx::query(concat!(
                    "INSERT INTO clinicians (clinician_id, name, created", $s, ") VALUES ($1, $2, $3) \
                     ON CONFLICT (clinician_id) DO NOTHING"
                ))
                .bind(id)
                .bind(name)
                .bind(Self::db_time(now)?)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    > 0;
                let c = self
                    .get_clinician(id)
                    .await?
                    .ok_or_else(|| StoreError::corrupt("clinicians", format!("{id} vanished")))?;
                Ok((c, inserted))
            }

            pub(crate) async fn get_clinician(
                &self,
                id: &str,
            ) -> Result<Option<liftguard_proto::v1::Clinician>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT clinician_id, name, created", $s, " FROM clinicians WHERE clinician_id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::clinician_from_row).transpose()
            }

            pub(crate) async fn list_clinicians(
                &self,
            ) -> Result<Vec<liftguard_proto::v1::Clinician>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT clinician_id, name, created", $s, " FROM clinicians ORDER BY clinician_id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::clinician_from_row).collect()
            }

            fn grant_from_row(row: &Row) -> Result<liftguard_proto::v1::ConsentGrant, StoreError> {
                let revoked: Option<$t> = row.try_get(concat!("revoked", $s))?;
                Ok(liftguard_proto::v1::ConsentGrant {
                    grant_id: row.try_get("grant_id")?,
                    clinician_id: row.try_get("clinician_id")?,
                    gym_id: row.try_get("gym_id")?,
                    athlete_id: row.try_get::<Option<String>, _>("athlete_id")?.unwrap_or_default(),
                    include_identity: row.try_get("include_identity")?,
                    granted_by: row.try_get("granted_by")?,
                    granted_us: crate::access::TimeUs::us(row.try_get::<$t, _>(concat!("granted", $s))?),
                    revoked_us: revoked.map(crate::access::TimeUs::us).unwrap_or(0),
                    revoked_by: row.try_get::<Option<String>, _>("revoked_by")?.unwrap_or_default(),
                })
            }

            #[allow(clippy::too_many_arguments)]
            pub(crate) async fn grant_consent(
                &self,
                grant_id: &str,
                clinician: &str,
                gym: &GymId,
                athlete: Option<&AthleteId>,
                include_identity: bool,
                by: &str,
                now: i64,
            ) -> Result<liftguard_proto::v1::ConsentGrant, StoreError> {
                if self.get_clinician(clinician).await?.is_none() {
                    return Err(StoreError::NotFound(format!("clinician {clinician}")));
                }
                self.require_gym(gym).await?;
                if let Some(a) = athlete {
                    let found = sqlx::query("SELECT 1 FROM athletes WHERE gym_id = $1 AND athlete_id = $2")
                        .bind(gym.as_str())
                        .bind(a.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound(format!("athlete {a} in gym {gym}")));
                    }
                }
                let athlete_key = athlete.map(|a| a.as_str().to_owned()).unwrap_or_default();
                let mut tx = self.pool.begin_with($begin).await?;
                let existing = sqlx::query(concat!(
                    "SELECT grant_id, clinician_id, gym_id, athlete_id, include_identity, granted_by, granted", $s,
                    ", revoked", $s, ", revoked_by FROM consent_grants WHERE clinician_id = $1 AND gym_id = $2 \
                     AND COALESCE(athlete_id, '') = $3 AND revoked", $s, " IS NULL"
                ))
                .bind(clinician)
                .bind(gym.as_str())
                .bind(&athlete_key)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    let g = Self::grant_from_row(&row)?;
                    if g.include_identity == include_identity {
                        tx.commit().await?;
                        return Ok(g);
                    }
                    sqlx::query(concat!(
                        "UPDATE consent_grants SET revoked", $s, " = $2, revoked_by = $3 WHERE grant_id = $1"
                    ))
                    .bind(&g.grant_id)
                    .bind(Self::db_time(now)?)
                    .bind(by)
                    .execute(&mut *tx)
                    .await?;
                }
                let row = sqlx::query(concat!(
                    "INSERT INTO consent_grants (grant_id, clinician_id, gym_id, athlete_id, include_identity, \
                     granted_by, granted", $s, ") VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING grant_id, \
                     clinician_id, gym_id, athlete_id, include_identity, granted_by, granted", $s, ", revoked", $s,
                    ", revoked_by"
                ))
                .bind(grant_id)
                .bind(clinician)
                .bind(gym.as_str())
                .bind(athlete.map(|a| a.as_str().to_owned()))
                .bind(include_identity)
                .bind(by)
                .bind(Self::db_time(now)?)
                .fetch_one(&mut *tx)
                .await?;
                let g = Self::grant_from_row(&row)?;
                tx.commit().await?;
                Ok(g)
            }

            pub(crate) async fn revoke_consent(
                &self,
                grant_id: &str,
                by: &str,
                now: i64,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(concat!(
                    "UPDATE consent_grants SET revoked", $s, " = $2, revoked_by = $3 WHERE grant_id = $1 AND revoked",
                    $s, " IS NULL"
                ))
                .bind(grant_id)
                .bind(Self::db_time(now)?)
                .bind(by)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                match self.get_grant(grant_id).await? {
                    Some(_) => Ok(false),
                    None => Err(StoreError::NotFound(format!("consent grant {grant_id}"))),
                }
            }

            pub(crate) async fn get_grant(
                &self,
                grant_id: &str,
            ) -> Result<Option<liftguard_proto::v1::ConsentGrant>, StoreError> {
                let row = sqlx::query(concat!(
                    "SELECT grant_id, clinician_id, gym_id, athlete_id, include_identity, granted_by, granted", $s,
                    ", revoked", $s, ", revoked_by FROM consent_grants WHERE grant_id = $1"
                ))
                .bind(grant_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(Self::grant_from_row).transpose()
            }

            pub(crate) async fn list_grants(
                &self,
                f: &crate::access::GrantFilter,
            ) -> Result<Vec<liftguard_proto::v1::ConsentGrant>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT grant_id, clinician_id, gym_id, athlete_id, include_identity, granted_by, granted", $s,
                    ", revoked", $s, ", revoked_by FROM consent_grants WHERE 1=1"
                ));
                if let Some(g) = &f.gym {
                    qb.push(" AND gym_id = ").push_bind(g.as_str().to_owned());
                }
                if let Some(a) = &f.athlete {
                    qb.push(" AND athlete_id = ").push_bind(a.as_str().to_owned());
                }
                if let Some(a) = &f.covering_athlete {
                    qb.push(" AND (athlete_id IS NULL OR athlete_id = ")
                        .push_bind(a.as_str().to_owned())
                        .push(")");
                }
                if let Some(c) = &f.clinician {
                    qb.push(" AND clinician_id = ").push_bind(c.clone());
                }
                if !f.include_revoked {
                    qb.push(concat!(" AND revoked", $s, " IS NULL"));
                }
                qb.push(concat!(" ORDER BY granted", $s, ", grant_id"));
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::grant_from_row).collect()
            }

            pub(crate) async fn athlete_ids_in_scope(
                &self,
                scope: &crate::access::Scope,
                limit: i64,
            ) -> Result<Vec<(String, String)>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT gym_id, athlete_id FROM athletes WHERE ");
                crate::access::push_scope(&mut qb, scope, "gym_id", "athlete_id");
                qb.push(" ORDER BY athlete_id LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
                    .collect()
            }

            pub(crate) async fn record_audit(
                &self,
                r: &crate::access::AuditRecord,
                now: i64,
            ) -> Result<i64, StoreError> {
                let id: i64 = sqlx::query_scalar(concat!(
                    "INSERT INTO audit_log (logged", $s, ", actor, role, token_id, gym_id, action, params, status, \
                     result_count, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING audit_id"
                ))
                .bind(Self::db_time(now)?)
                .bind(&r.actor)
                .bind(&r.role)
                .bind(r.token_id.clone())
                .bind(r.gym.as_ref().map(|g| g.as_str().to_owned()))
                .bind(&r.action)
                .bind(&r.params)
                .bind(&r.status)
                .bind(r.result_count)
                .bind(&r.detail)
                .fetch_one(&self.pool)
                .await?;
                Ok(id)
            }

            pub(crate) async fn query_audit(
                &self,
                gym: Option<&GymId>,
                from_us: i64,
                to_us: i64,
                limit: i64,
                before: Option<i64>,
            ) -> Result<Vec<liftguard_proto::v1::AuditEntry>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT audit_id, logged", $s, ", actor, role, token_id, gym_id, action, params, status, \
                     result_count, detail FROM audit_log WHERE logged", $s, " >= "
                ));
                qb.push_bind(Self::db_time(from_us)?)
                    .push(concat!(" AND logged", $s, " < "))
                    .push_bind(Self::db_time(to_us)?);
                if let Some(g) = gym {
                    qb.push(" AND gym_id = ").push_bind(g.as_str().to_owned());
                }
                if let Some(b) = before {
                    qb.push(" AND audit_id < ").push_bind(b);
                }
                qb.push(" ORDER BY audit_id DESC LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok(liftguard_proto::v1::AuditEntry {
                            audit_id: row.try_get("audit_id")?,
                            time_us: crate::access::TimeUs::us(row.try_get::<$t, _>(concat!("logged", $s))?),
                            actor: row.try_get("actor")?,
                            role: row.try_get("role")?,
                            token_id: row.try_get::<Option<String>, _>("token_id")?.unwrap_or_default(),
                            gym_id: row.try_get::<Option<String>, _>("gym_id")?.unwrap_or_default(),
                            action: row.try_get("action")?,
                            params: row.try_get("params")?,
                            status: row.try_get("status")?,
                            result_count: row.try_get::<Option<i64>, _>("result_count")?.unwrap_or(-1),
                            detail: row.try_get("detail")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use access_impl;

// ---------------------------------------------------------------------------------------
// Migration v5

/// Migration v5 `access` on PostgreSQL (both flavours: these tables are small and
/// relational, never hypertables).
pub(crate) const PG_ACCESS: &[&str] = &[
    r#"CREATE TABLE clinicians (
    clinician_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
)"#,
    r#"CREATE TABLE access_tokens (
    token_id TEXT COLLATE "C" PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('gym_admin', 'coach', 'clinician', 'athlete')),
    gym_id TEXT COLLATE "C" REFERENCES gyms (gym_id),
    athlete_id TEXT COLLATE "C",
    clinician_id TEXT COLLATE "C" REFERENCES clinicians (clinician_id),
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    issued_by TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id),
    CHECK (
        (role = 'clinician' AND clinician_id IS NOT NULL AND gym_id IS NULL AND athlete_id IS NULL)
        OR (role = 'athlete' AND clinician_id IS NULL AND gym_id IS NOT NULL AND athlete_id IS NOT NULL)
        OR (role IN ('gym_admin', 'coach') AND clinician_id IS NULL AND gym_id IS NOT NULL AND athlete_id IS NULL)
    )
)"#,
    "CREATE INDEX access_tokens_gym_idx ON access_tokens (gym_id)",
    "CREATE INDEX access_tokens_clinician_idx ON access_tokens (clinician_id)",
    r#"CREATE TABLE consent_grants (
    grant_id TEXT COLLATE "C" PRIMARY KEY,
    clinician_id TEXT COLLATE "C" NOT NULL REFERENCES clinicians (clinician_id),
    gym_id TEXT COLLATE "C" NOT NULL REFERENCES gyms (gym_id),
    athlete_id TEXT COLLATE "C",
    include_identity BOOLEAN NOT NULL,
    granted_by TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    revoked_by TEXT,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id)
)"#,
    "CREATE UNIQUE INDEX consent_grants_active_key ON consent_grants \
     (clinician_id, gym_id, (COALESCE(athlete_id, ''))) WHERE revoked_at IS NULL",
    "CREATE INDEX consent_grants_gym_idx ON consent_grants (gym_id, athlete_id)",
    r#"CREATE TABLE audit_log (
    audit_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT,
    gym_id TEXT COLLATE "C",
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    result_count BIGINT,
    detail TEXT NOT NULL
)"#,
    "CREATE INDEX audit_log_gym_idx ON audit_log (gym_id, audit_id)",
    "CREATE INDEX audit_log_time_idx ON audit_log (logged_at)",
];

/// Migration v5 `access` on SQLite.
pub(crate) const SQLITE_ACCESS: &[&str] = &[
    "CREATE TABLE clinicians (
    clinician_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_us INTEGER NOT NULL
) STRICT",
    "CREATE TABLE access_tokens (
    token_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('gym_admin', 'coach', 'clinician', 'athlete')),
    gym_id TEXT REFERENCES gyms (gym_id),
    athlete_id TEXT,
    clinician_id TEXT REFERENCES clinicians (clinician_id),
    label TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    issued_by TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    expires_us INTEGER NOT NULL,
    revoked_us INTEGER,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id),
    CHECK (
        (role = 'clinician' AND clinician_id IS NOT NULL AND gym_id IS NULL AND athlete_id IS NULL)
        OR (role = 'athlete' AND clinician_id IS NULL AND gym_id IS NOT NULL AND athlete_id IS NOT NULL)
        OR (role IN ('gym_admin', 'coach') AND clinician_id IS NULL AND gym_id IS NOT NULL AND athlete_id IS NULL)
    )
) STRICT",
    "CREATE INDEX access_tokens_gym_idx ON access_tokens (gym_id)",
    "CREATE INDEX access_tokens_clinician_idx ON access_tokens (clinician_id)",
    "CREATE TABLE consent_grants (
    grant_id TEXT PRIMARY KEY,
    clinician_id TEXT NOT NULL REFERENCES clinicians (clinician_id),
    gym_id TEXT NOT NULL REFERENCES gyms (gym_id),
    athlete_id TEXT,
    include_identity INTEGER NOT NULL,
    granted_by TEXT NOT NULL,
    granted_us INTEGER NOT NULL,
    revoked_us INTEGER,
    revoked_by TEXT,
    FOREIGN KEY (gym_id, athlete_id) REFERENCES athletes (gym_id, athlete_id)
) STRICT",
    "CREATE UNIQUE INDEX consent_grants_active_key ON consent_grants \
     (clinician_id, gym_id, COALESCE(athlete_id, '')) WHERE revoked_us IS NULL",
    "CREATE INDEX consent_grants_gym_idx ON consent_grants (gym_id, athlete_id)",
    "CREATE TABLE audit_log (
    audit_id INTEGER PRIMARY KEY AUTOINCREMENT,
    logged_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    token_id TEXT,
    gym_id TEXT,
    action TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    result_count INTEGER,
    detail TEXT NOT NULL
) STRICT",
    "CREATE INDEX audit_log_gym_idx ON audit_log (gym_id, audit_id)",
    "CREATE INDEX audit_log_time_idx ON audit_log (logged_us)",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_valid_ids() {
        let a = pseudonym(b"secret-1", "a-0123456789abcdef");
        assert_eq!(a, pseudonym(b"secret-1", "a-0123456789abcdef"));
        assert_ne!(a, pseudonym(b"secret-2", "a-0123456789abcdef"));
        assert_ne!(a, pseudonym(b"secret-1", "a-0123456789abcdee"));
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("p-"));
        assert!(AthleteId::parse(a).is_ok());
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            pseudonym(b"Jefe", "what do ya want for nothing?"),
            "p-5bdcc146bf60754e"
        );
    }

    #[test]
    fn scope_coverage() {
        let g = |s: &str| GymId::parse(s).unwrap();
        let a = |s: &str| AthleteId::parse(s).unwrap();
        assert!(Scope::all().covers_whole_gym(&g("gym-a")));
        assert!(Scope::gym(g("gym-a")).covers_athlete(&g("gym-a"), &a("a1")));
        assert!(!Scope::gym(g("gym-a")).covers_athlete(&g("gym-b"), &a("a1")));
        let s = Scope::athlete(g("gym-a"), a("a1"));
        assert!(s.covers_athlete(&g("gym-a"), &a("a1")));
        assert!(!s.covers_athlete(&g("gym-a"), &a("a2")));
        assert!(!s.covers_whole_gym(&g("gym-a")));
        assert!(s.covers_gym(&g("gym-a")));
        assert!(Scope::none().is_empty());
        assert!(!Scope::none().covers_gym(&g("gym-a")));
        assert_eq!(s.present(b"k", "a1"), "a1");
        assert_eq!(Scope::none().present(b"k", "a1"), pseudonym(b"k", "a1"));
    }
}
