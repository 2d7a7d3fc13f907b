//! liftguard storage: the registry (gyms, athletes, sensors, API keys) and the records the
//! pipeline produces (reps, lumbar kinematics), on TimescaleDB, plain PostgreSQL or SQLite.
//!
//! Backends, chosen by URL scheme (`postgres://`/`postgresql://` or `sqlite:`):
//! - **TimescaleDB** when the `timescaledb` extension is available to the PostgreSQL
//!   server at the first [`Store::migrate`]: `reps` and `kinematics` are hypertables.
//! - **PostgreSQL** otherwise: the same tables, RANGE-partitioned by month (partitions
//!   created on demand before writes) with a DEFAULT partition.
//! - **SQLite** for the embedded deployment (WAL mode).
//!
//! Invariants:
//! - One logical schema, one behaviour: the same input is accepted or rejected the same
//!   way and the same queries return identical results on every backend (floats
//!   round-trip exactly as the proto's f32/f64, times as µs integers, ids sorted bytewise).
//! - Writes are idempotent upserts on natural keys: reps `(athlete_id, start_us)`,
//!   kinematics points `(athlete_id, t_us)`. Replaying identical records changes nothing
//!   (and counts 0); a record with different values for an existing key replaces it.
//!   Each upsert call is one transaction.
//! - Bounded: pages are at most [`MAX_PAGE_LIMIT`] reps, traces and full dumps have hard
//!   caps ([`MAX_TRACE_POINTS`], [`MAX_ALL_REPS`]), write statements stay below ~48 KB.
//! - Secrets are stored only as SHA-256 hashes.
//! - No business rules beyond keys and scoping: the store checks what storage needs
//!   (ids, finite numbers, representable times), nothing about biomechanics.

pub mod access;
pub mod alerts;
mod analytics_rows;
mod bulk;
mod checkpoint;
mod common;
mod distributions;
mod error;
mod macros;
mod pg;
mod pgcopy;
mod policies;
mod registry;
pub mod rollups;
mod schema;
mod sqlite;
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use liftguard_model::{AthleteId, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, AthleteProfile, Gym, KinematicsChunk, RepRecord, Sensor};

pub use access::{
    AuditPage, AuditRecord, GrantFilter, IssuedToken, MAX_SCOPED_ATHLETES, Scope, TokenCheck,
    TokenSubject, pseudonym,
};
pub use alerts::{
    AlertListener, AlertQuery, AlertWrite, ClaimedDelivery, DeliveryOutcome, DeliveryState,
    NewWebhook, StoredAlert, Webhook,
};
pub use analytics_rows::{RepFacts, RiskFacts, ScopedRepQuery};
pub use checkpoint::Checkpoint;
pub use common::{
    MAX_ALL_REPS, MAX_KINEMATICS_RATE_HZ, MAX_PAGE_LIMIT, MAX_POINTS_PER_CHUNK, MAX_TIME_US,
    MAX_TRACE_POINTS, RepCursor,
};
pub use distributions::ScoreBuckets;
pub use error::StoreError;
pub use policies::{
    CompressionPolicy, Policies, PolicyReport, RetentionPolicy, RetentionReport, RollupPolicy,
};
pub use rollups::{AthleteDay, ExerciseWeek, GymWeek, RepTotals, RollupRefresh};
pub use schema::known_versions;

/// Which database (and flavour) a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// PostgreSQL with TimescaleDB: hypertables.
    Timescale,
    /// PostgreSQL without TimescaleDB: monthly RANGE partitions.
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Timescale => "timescale",
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Backend::Timescale => 0,
            Backend::Postgres => 1,
            Backend::Sqlite => 2,
        }
    }

    fn from_u8(v: u8) -> Backend {
        match v {
            0 => Backend::Timescale,
            1 => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connection settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Pool size (at least 1). Use 1 for the pglite TimescaleDB test server. Ignored for
    /// in-memory SQLite, which always uses exactly one connection.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 8 }
    }
}

/// A newly issued API key. `secret` is shown once; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    pub key_id: String,
    /// `lg_<key_id>_<64 hex chars>` (32 random bytes from the OS CSPRNG).
    pub secret: String,
}

/// Who wears a sensor, with what the biomechanics needs to know about them.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorBinding {
    pub gym_id: GymId,
    pub athlete_id: AthleteId,
    pub placement: Placement,
    pub profile: AthleteProfile,
}

/// Whose reps a query asks for (always within the caller's [`Scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepTarget {
    Athlete(AthleteId),
    Gym(GymId),
}

/// A page request over reps, ordered by `(start_us, athlete_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepQuery {
    pub target: RepTarget,
    /// `[from_us, to_us)` on `start_us`.
    pub from_us: i64,
    pub to_us: i64,
    /// Only reps with an extensor-moment event.
    pub events_only: bool,
    /// 1..=[`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Continue after this cursor (from a previous page's `next`).
    pub after: Option<RepCursor>,
}

/// One page of reps; `next` is `None` when there is nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct RepPage {
    pub reps: Vec<RepRecord>,
    pub next: Option<RepCursor>,
}

/// Internal scope, with "everything" for reports.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QScope<'a> {
    Athlete(&'a str),
    Gym(&'a str),
    All,
}

enum Db {
    Pg(pg::Pg),
    Sqlite(sqlite::Lite),
}

struct Inner {
    db: Db,
    backend: AtomicU8,
}

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Dispatches a call to the backend implementation.
macro_rules! dispatch {
    ($self:ident, $db:ident => $call:expr) => {
        match &$self.inner.db {
            Db::Pg($db) => $call,
            Db::Sqlite($db) => $call,
        }
    };
}

impl Store {
    /// Connects to `postgres://user[:password]@host:port/db[?sslmode=disable]`
    /// (`postgresql://` too) or `sqlite://path?mode=rwc` / `sqlite::memory:`.
    /// A malformed URL or unknown scheme is `InvalidArgument`; an unreachable server
    /// `Unavailable`.
    pub async fn connect(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        let (db, backend) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pg = pg::Pg::connect(url, opts.max_connections).await?;
            let backend = pg.detect_backend().await?;
            (Db::Pg(pg), backend)
        } else if url.starts_with("sqlite:") {
            (
                Db::Sqlite(sqlite::Lite::connect(url, opts.max_connections).await?),
                Backend::Sqlite,
            )
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StoreError::BadUrl(format!(
                "unsupported scheme {scheme:?}; use postgres://, postgresql:// or sqlite:"
            )));
        };
        tracing::info!(backend = backend.as_str(), "store connected");
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                backend: AtomicU8::new(backend.to_u8()),
            }),
        })
    }

    /// Creates or upgrades the schema; idempotent, safe to run concurrently from several
    /// processes. On PostgreSQL the first run decides the flavour: TimescaleDB when the
    /// extension is available (and can be created), plain partitioned tables otherwise.
    pub async fn migrate(&self) -> Result<Backend, StoreError> {
        let backend = dispatch!(self, db => db.migrate().await)?;
        self.inner.backend.store(backend.to_u8(), Ordering::Relaxed);
        Ok(backend)
    }

    /// The backend. For PostgreSQL before the first `migrate`, the flavour migrate would
    /// pick (TimescaleDB when available).
    pub fn backend(&self) -> Backend {
        Backend::from_u8(self.inner.backend.load(Ordering::Relaxed))
    }

    /// The PostgreSQL pool, for diagnostics and tests (`None` on SQLite).
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.inner.db {
            Db::Pg(pg) => Some(&pg.pool),
            Db::Sqlite(_) => None,
        }
    }

    /// The SQLite pool, for diagnostics and tests (`None` on PostgreSQL).
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.db {
            Db::Pg(_) => None,
            Db::Sqlite(l) => Some(&l.pool),
        }
    }

    /// On SQLite, waits for the write gate (see `sqlite::Lite::write_gate`); `None` on
    /// PostgreSQL, which has row locks and no single writer.
    pub(crate) async fn lite_write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.inner.db {
            Db::Pg(_) => None,
            Db::Sqlite(l) => Some(l.write_gate.lock().await),
        }
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        dispatch!(self, db => db.pool.close().await)
    }

    // ---- registry ----

    /// Creates a gym (`gym_id == slug`, `[a-z0-9-]{3,64}`). Returns the gym and whether this
    /// call created it; an existing gym is returned unchanged.
    pub async fn create_gym(&self, slug: &str, name: &str) -> Result<(Gym, bool), StoreError> {
        dispatch!(self, db => db.create_gym(slug, name).await)
    }

    /// Every gym, ordered by id.
    pub async fn list_gyms(&self) -> Result<Vec<Gym>, StoreError> {
        dispatch!(self, db => db.list_gyms().await)
    }

    /// Issues a key for an existing gym (`NotFound` otherwise). Only the secret's SHA-256
    /// is stored.
    pub async fn issue_api_key(&self, gym: &GymId, label: &str) -> Result<IssuedKey, StoreError> {
        dispatch!(self, db => db.issue_api_key(gym, label).await)
    }

    /// Revokes a key of the gym: `Ok(true)` when revoked now, `Ok(false)` when it was
    /// already revoked, `NotFound` when the gym has no such key.
    pub async fn revoke_api_key(&self, gym: &GymId, key_id: &str) -> Result<bool, StoreError> {
        dispatch!(self, db => db.revoke_api_key(gym, key_id).await)
    }

    /// The gym of a valid, unrevoked key; `None` for anything else.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<GymId>, StoreError> {
        if !secret.starts_with("lg_") || secret.len() > 128 {
            return Ok(None);
        }
        let hash = common::sha256_hex(secret);
        dispatch!(self, db => db.authenticate_hash(&hash).await)
    }

    /// Enrolls (or updates) an athlete, idempotent on `(gym, external_ref)`. The athlete id
    /// (`a-` + 16 hex) is generated on first enrollment and kept; `a.athlete_id` is ignored.
    /// `NotFound` for an unknown gym.
    pub async fn enroll_athlete(&self, gym: &GymId, a: &Athlete) -> Result<Athlete, StoreError> {
        dispatch!(self, db => db.enroll_athlete(gym, a).await)
    }

    /// [`Store::enroll_athlete`] under a chosen id (tests and benchmarks that compare
    /// backends need the same ids everywhere).
    pub(crate) async fn enroll_athlete_as(
        &self,
        gym: &GymId,
        a: &Athlete,
        new_id: &str,
    ) -> Result<Athlete, StoreError> {
        dispatch!(self, db => db.enroll_athlete_as(gym, a, new_id).await)
    }

    pub async fn get_athlete(&self, id: &AthleteId) -> Result<Option<Athlete>, StoreError> {
        dispatch!(self, db => db.get_athlete(id).await)
    }

    /// The gym's athletes within `scope`, ordered by `external_ref`; `NotFound` for an
    /// unknown gym. Identities are as stored: presenting them (pseudonyms) is the caller's.
    pub async fn list_athletes(
        &self,
        scope: &Scope,
        gym: &GymId,
    ) -> Result<Vec<Athlete>, StoreError> {
        dispatch!(self, db => db.list_athletes(scope, gym).await)
    }

    /// Registers (or rebinds) a sensor, idempotent on `sensor`. `NotFound` if the athlete is
    /// not in the gym; `PermissionDenied` if another gym owns the sensor.
    pub async fn register_sensor(
        &self,
        gym: &GymId,
        sensor: &SensorId,
        athlete: &AthleteId,
        p: Placement,
    ) -> Result<Sensor, StoreError> {
        dispatch!(self, db => db.register_sensor(gym, sensor, athlete, p).await)
    }

    /// The gym's sensors within `scope` (by the athlete wearing them), ordered by id;
    /// `NotFound` for an unknown gym.
    pub async fn list_sensors(
        &self,
        scope: &Scope,
        gym: &GymId,
    ) -> Result<Vec<Sensor>, StoreError> {
        dispatch!(self, db => db.list_sensors(scope, gym).await)
    }

    pub async fn sensor_binding(
        &self,
        sensor: &SensorId,
    ) -> Result<Option<SensorBinding>, StoreError> {
        dispatch!(self, db => db.sensor_binding(sensor).await)
    }

    // ---- records ----

    /// Upserts reps on `(athlete_id, start_us)` in one transaction. Returns the number of
    /// rows inserted or changed (0 for a replay). Duplicated keys within the call collapse
    /// to the last record. `InvalidArgument` (naming the field and record index) before
    /// anything is written when a record cannot be stored.
    pub async fn upsert_reps(&self, reps: &[RepRecord]) -> Result<u64, StoreError> {
        let rows = common::prepare_reps(reps)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let n = match &self.inner.db {
            Db::Pg(pg) => pg.upsert_reps(&rows, self.backend()).await?,
            Db::Sqlite(l) => {
                let _gate = l.write_gate.lock().await;
                l.upsert_reps(&rows).await?
            }
        };
        tracing::debug!(records = reps.len(), changed = n, "reps upserted");
        Ok(n)
    }

    /// Upserts one row per kinematics point, at
    /// `t = first_time_us + round(i * 1e6 / rate_hz)` µs, keyed `(athlete_id, t)`, in one
    /// transaction. Returns the number of points inserted or changed.
    pub async fn upsert_kinematics(&self, chunks: &[KinematicsChunk]) -> Result<u64, StoreError> {
        let points = common::expand_kinematics(chunks)?;
        if points.is_empty() {
            return Ok(0);
        }
        let n = match &self.inner.db {
            Db::Pg(pg) => pg.upsert_kinematics(&points, self.backend()).await?,
            Db::Sqlite(l) => {
                let _gate = l.write_gate.lock().await;
                l.upsert_kinematics(&points).await?
            }
        };
        tracing::debug!(
            chunks = chunks.len(),
            points = points.len(),
            changed = n,
            "kinematics upserted"
        );
        Ok(n)
    }

    /// One page of the reps of `q.target` within `scope` (applied in the SQL), in
    /// `(start_us, athlete_id)` order. Following `next` until it is `None` visits every
    /// matching rep exactly once (as of each page's read).
    pub async fn list_reps(&self, scope: &Scope, q: &RepQuery) -> Result<RepPage, StoreError> {
        if !(1..=MAX_PAGE_LIMIT).contains(&q.limit) {
            return Err(StoreError::invalid(
                "limit",
                format!("{} is outside 1..={MAX_PAGE_LIMIT}", q.limit),
            ));
        }
        if q.from_us > q.to_us {
            return Err(StoreError::invalid(
                "range",
                format!("from_us {} is after to_us {}", q.from_us, q.to_us),
            ));
        }
        let target = match &q.target {
            RepTarget::Athlete(a) => QScope::Athlete(a.as_str()),
            RepTarget::Gym(g) => QScope::Gym(g.as_str()),
        };
        self.page(
            scope,
            target,
            q.from_us,
            q.to_us,
            q.events_only,
            q.limit,
            q.after.as_ref(),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        access: &Scope,
        scope: QScope<'_>,
        from_us: i64,
        to_us: i64,
        events_only: bool,
        limit: u32,
        after: Option<&RepCursor>,
    ) -> Result<RepPage, StoreError> {
        let (from, to) = (
            common::clamp_query_time(from_us),
            common::clamp_query_time(to_us),
        );
        if from >= to {
            return Ok(RepPage {
                reps: Vec::new(),
                next: None,
            });
        }
        // Rows sort after ("", from) exactly when start >= from, since ids are non-empty.
        let start = RepCursor {
            start_us: from,
            athlete_id: String::new(),
        };
        let after = after.unwrap_or(&start);
        let fetch = i64::from(limit) + 1;
        let mut reps = dispatch!(self, db => db.list_reps(access, scope, from, to, events_only, fetch, after).await)?;
        let next = if reps.len() > limit as usize {
            reps.truncate(limit as usize);
            reps.last().map(RepCursor::after)
        } else {
            None
        };
        Ok(RepPage { reps, next })
    }

    /// The athlete's lumbar flexion points `(t_us, degrees)` in `[from_us, to_us)`, in time
    /// order, within `scope` (applied in the SQL: an athlete outside it has no points).
    /// `OutOfRange` when the range holds more than [`MAX_TRACE_POINTS`].
    pub async fn lumbar_trace(
        &self,
        scope: &Scope,
        athlete: &AthleteId,
        from_us: i64,
        to_us: i64,
    ) -> Result<Vec<(i64, f32)>, StoreError> {
        if from_us > to_us {
            return Err(StoreError::invalid(
                "range",
                format!("from_us {from_us} is after to_us {to_us}"),
            ));
        }
        let (from, to) = (
            common::clamp_query_time(from_us),
            common::clamp_query_time(to_us),
        );
        if from >= to {
            return Ok(Vec::new());
        }
        let limit = MAX_TRACE_POINTS as i64 + 1;
        let points =
            dispatch!(self, db => db.lumbar_trace(scope, athlete.as_str(), from, to, limit).await)?;
        if points.len() > MAX_TRACE_POINTS {
            return Err(StoreError::ResultTooLarge {
                what: "lumbar trace",
                limit: MAX_TRACE_POINTS,
            });
        }
        Ok(points)
    }

    /// Every rep within `scope` (e.g. [`Scope::all`], [`Scope::gym`]), in
    /// `(start_us, athlete_id)` order, for reports. Read in pages of [`MAX_PAGE_LIMIT`];
    /// `OutOfRange` beyond [`MAX_ALL_REPS`].
    pub async fn all_reps(&self, scope: &Scope) -> Result<Vec<RepRecord>, StoreError> {
        let mut out = Vec::new();
        let mut after: Option<RepCursor> = None;
        loop {
            let page = self
                .page(
                    scope,
                    QScope::All,
                    0,
                    MAX_TIME_US + 1,
                    false,
                    MAX_PAGE_LIMIT,
                    after.as_ref(),
                )
                .await?;
            out.extend(page.reps);
            if out.len() > MAX_ALL_REPS {
                return Err(StoreError::ResultTooLarge {
                    what: "all reps",
                    limit: MAX_ALL_REPS,
                });
            }
            match page.next {
                Some(c) => after = Some(c),
                None => return Ok(out),
            }
        }
    }
}
