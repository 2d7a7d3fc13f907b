//! Bulk writes on PostgreSQL: the record upsert path and plain binary `COPY` (the write
//! ceiling the benchmarks compare against, and test data loading).
//!
//! Invariants:
//! - Every upsert call is one transaction and idempotent: replaying rows changes nothing
//!   (and counts 0); a row with new values for an existing key replaces it.
//! - On the WASM server (pglite: 64 KB protocol messages, no `COPY FROM STDIN`) statements
//!   stay below `STATEMENT_BUDGET_BYTES`; on a real server they carry up to
//!   [`BIG_MAX_ROWS`] rows (a few MB), so a sink batch is a handful of round trips.
//! - Reps are always written by multi-row upsert statements (faster than `COPY` per batch
//!   for their wide rows). Kinematics on plain PostgreSQL: a batch whose time span holds no
//!   stored point for any of its athletes (the normal case: first delivery; one index probe
//!   per athlete decides) is written with `COPY` inside a savepoint, at `COPY` speed; if a
//!   concurrent writer got there first, the unique violation aborts the `COPY` (nothing
//!   written) and the batch is upserted instead, as is any batch that overlaps stored
//!   points (replays). Either way the table ends up exactly as the upsert alone would
//!   leave it.
//! - `COPY` without upsert ([`Pg::copy_reps`], [`Pg::copy_kinematics`]) fails on an
//!   existing key: it is for empty tables and measurements only.
//! - Rows are validated and partitions exist (plain PostgreSQL) before anything is sent.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use liftguard_proto::v1::{KinematicsChunk, RepRecord};
use sqlx::{Acquire as _, PgConnection};

use crate::common::{
    KinPoint, MAX_ROWS_PER_STATEMENT, STATEMENT_BUDGET_BYTES, chunk_by_bytes, expand_kinematics,
    kin_est_bytes, now_us, prepare_reps, rep_est_bytes,
};
use crate::pg::{KIN_UPSERT, Pg, REP_UPSERT, Table, bind_reps};
use crate::pgcopy::{COPY_HEADER, COPY_TRAILER, CopyBuf, KIN_COPY_COLUMNS};
use crate::rollups::{PG_MARK, pending_keys};
use crate::schema::col_list;
use crate::{Backend, StoreError};

/// Rows per statement on a real server.
const BIG_MAX_ROWS: usize = 10_000;
/// Parameter bytes per statement on a real server.
const BIG_BUDGET_BYTES: usize = 8 << 20;

static REP_COPY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "COPY reps ({}, stored_at) FROM STDIN (FORMAT binary)",
        col_list(|c| c.0.to_owned())
    )
});
static KIN_COPY: LazyLock<String> =
    LazyLock::new(|| format!("COPY kinematics ({KIN_COPY_COLUMNS}) FROM STDIN (FORMAT binary)"));

/// Whether any row exists in the time span a batch covers per athlete (one index range
/// probe per athlete, stopping at the first hit): a batch that probes empty goes to `COPY`
/// (only a concurrent writer can still make it conflict), one that does not is upserted
/// without a `COPY` attempt that would fail (and log a unique violation on the server).
const KIN_PROBE: &str = "SELECT EXISTS (SELECT 1 FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) \
     AS k(a, lo, hi) CROSS JOIN LATERAL (SELECT 1 FROM kinematics r WHERE r.athlete_id = k.a \
     AND r.time >= k.lo AND r.time <= k.hi LIMIT 1) AS x)";

async fn any_stored<'a>(
    conn: &mut PgConnection,
    probe: &'static str,
    keys: impl Iterator<Item = (&'a str, i64)>,
) -> Result<bool, StoreError> {
    let mut spans: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (a, t) in keys {
        let e = spans.entry(a).or_insert((t, t));
        e.0 = e.0.min(t);
        e.1 = e.1.max(t);
    }
    let mut athletes = Vec::with_capacity(spans.len());
    let mut lo = Vec::with_capacity(spans.len());
    let mut hi = Vec::with_capacity(spans.len());
    for (a, (l, h)) in spans {
        athletes.push(a);
        lo.push(ts(l)?);
        hi.push(ts(h)?);
    }
    Ok(sqlx::query_scalar(probe)
        .bind(athletes)
        .bind(lo)
        .bind(hi)
        .fetch_one(conn)
        .await?)
}

fn ts(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::invalid("time", format!("{us} µs is not representable")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

impl Pg {
    /// (rows, bytes) per statement for this server.
    fn limits(&self) -> (usize, usize) {
        if self.wasm {
            (MAX_ROWS_PER_STATEMENT, STATEMENT_BUDGET_BYTES)
        } else {
            (BIG_MAX_ROWS, BIG_BUDGET_BYTES)
        }
    }

    fn copy_first(&self, backend: Backend) -> bool {
        backend == Backend::Postgres
            && !self.wasm
            && self.copy_first.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The upsert path of `Store::upsert_reps`.
    pub(crate) async fn write_reps(
        &self,
        reps: &[&RepRecord],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        if backend == Backend::Postgres {
            self.ensure_partitions(Table::Reps, reps.iter().map(|r| r.start_us))
                .await?;
        }
        // Statements only: for rep rows (wide, ~40 columns) a multi-row upsert is faster
        // than the index probe + savepoint + `COPY` that pays off for kinematics (measured
        // with `benches/bulk_write.rs`: 76,762 against 44,381 rows/s; a `COPY` per batch
        // alone does 57,853).
        let stored = ts(now_us())?;
        let mut tx = self.pool.begin().await?;
        let (rows, bytes) = self.limits();
        let mut n = 0;
        for chunk in chunk_by_bytes(reps, rows, bytes, rep_est_bytes) {
            let q = bind_reps(sqlx::query(*REP_UPSERT), chunk)?.bind(stored);
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        if n > 0 && backend == Backend::Postgres {
            // Mark the rollup buckets of these reps for the next refresh (rollups.rs);
            // TimescaleDB's continuous aggregates track their own invalidations.
            let keys = pending_keys(reps);
            let days = keys
                .iter()
                .map(|(d, _)| ts(*d))
                .collect::<Result<Vec<_>, _>>()?;
            let athletes: Vec<&str> = keys.iter().map(|(_, a)| *a).collect();
            sqlx::query(PG_MARK)
                .bind(days)
                .bind(athletes)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The upsert path of `Store::upsert_kinematics`.
    pub(crate) async fn write_kinematics(
        &self,
        points: &[KinPoint<'_>],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        if backend == Backend::Postgres {
            self.ensure_partitions(Table::Kinematics, points.iter().map(|p| p.t_us))
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let copied = if self.copy_first(backend)
            && !any_stored(
                &mut tx,
                KIN_PROBE,
                points.iter().map(|p| (p.athlete_id, p.t_us)),
            )
            .await?
        {
            let mut sp = tx.begin().await?;
            match copy_kin_into(&mut sp, points).await {
                Ok(n) => {
                    sp.commit().await?;
                    Some(n)
                }
                Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                    sp.rollback().await?;
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let n = match copied {
            Some(n) => n,
            None => {
                let (rows, bytes) = self.limits();
                let mut n = 0;
                for chunk in chunk_by_bytes(points, rows, bytes, kin_est_bytes) {
                    let times = chunk
                        .iter()
                        .map(|p| ts(p.t_us))
                        .collect::<Result<Vec<_>, _>>()?;
                    let q = sqlx::query(KIN_UPSERT)
                        .bind(chunk.iter().map(|p| p.gym_id).collect::<Vec<_>>())
                        .bind(chunk.iter().map(|p| p.athlete_id).collect::<Vec<_>>())
                        .bind(times)
                        .bind(chunk.iter().map(|p| p.lumbar).collect::<Vec<_>>())
                        .bind(chunk.iter().map(|p| p.trunk).collect::<Vec<_>>())
                        .bind(chunk.iter().map(|p| p.pelvis).collect::<Vec<_>>());
                    n += q.execute(&mut *tx).await?.rows_affected();
                }
                n
            }
        };
        tx.commit().await?;
        Ok(n)
    }

    /// `COPY reps FROM STDIN (FORMAT binary)` of `reps`, in one transaction.
    pub(crate) async fn copy_reps(
        &self,
        reps: &[RepRecord],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        let rows = prepare_reps(reps)?;
        if backend == Backend::Postgres {
            self.ensure_partitions(Table::Reps, rows.iter().map(|r| r.start_us))
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let n = copy_reps_into(&mut tx, &rows, now_us()).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// `COPY kinematics FROM STDIN (FORMAT binary)` of the chunks' points, in one transaction.
    pub(crate) async fn copy_kinematics(
        &self,
        chunks: &[KinematicsChunk],
        backend: Backend,
    ) -> Result<u64, StoreError> {
        let points = expand_kinematics(chunks)?;
        if backend == Backend::Postgres {
            self.ensure_partitions(Table::Kinematics, points.iter().map(|p| p.t_us))
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        let n = copy_kin_into(&mut tx, &points).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Rows per `COPY` data message (keeps the client buffer at a few MB).
const COPY_ROWS_PER_SEND: usize = 10_000;

async fn copy_reps_into(
    conn: &mut PgConnection,
    reps: &[&RepRecord],
    stored_us: i64,
) -> Result<u64, StoreError> {
    let mut copy = conn.copy_in_raw(&REP_COPY).await?;
    copy.send(&COPY_HEADER[..]).await?;
    let mut buf = CopyBuf::with_capacity(COPY_ROWS_PER_SEND.min(reps.len()) * 400);
    for chunk in reps.chunks(COPY_ROWS_PER_SEND) {
        buf.buf.clear();
        for r in chunk {
            buf.rep(r, stored_us);
        }
        copy.send(buf.buf.as_slice()).await?;
    }
    copy.send(&COPY_TRAILER[..]).await?;
    Ok(copy.finish().await?)
}

async fn copy_kin_into(
    conn: &mut PgConnection,
    points: &[KinPoint<'_>],
) -> Result<u64, StoreError> {
    let mut copy = conn.copy_in_raw(&KIN_COPY).await?;
    copy.send(&COPY_HEADER[..]).await?;
    let per_send = COPY_ROWS_PER_SEND * 4;
    let mut buf = CopyBuf::with_capacity(per_send.min(points.len()) * 64);
    for chunk in points.chunks(per_send) {
        buf.buf.clear();
        for p in chunk {
            buf.kin(p);
        }
        copy.send(buf.buf.as_slice()).await?;
    }
    copy.send(&COPY_TRAILER[..]).await?;
    Ok(copy.finish().await?)
}
