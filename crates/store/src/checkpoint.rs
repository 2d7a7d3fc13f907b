//! Processor checkpoints: the per-athlete state the stream processor restores after a
//! crash, a rebalance or an eviction.
//!
//! The store treats the state as opaque bytes. The processor puts the input offsets the
//! state reflects inside those bytes, so state and offsets are written atomically by one
//! row upsert.
//!
//! Invariants:
//! - Fencing: a checkpoint replaces the stored one only if its `steps` (input records
//!   applied, monotonic per athlete) is at least the stored one's. A processor that lost
//!   its partition in a rebalance and writes late can never move an athlete's state back.
//! - Each row is written whole by one statement, so a crash leaves each row either old or
//!   new, never torn. On PostgreSQL one call is one transaction; on SQLite it is several
//!   small ones (one writer: the sink must not wait behind a whole checkpoint). Either is
//!   safe because every state carries its own offsets: the processor commits input
//!   offsets only after the call returns.

use crate::{Store, StoreError};

/// One athlete's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub athlete_id: String,
    pub gym_id: String,
    /// Input records applied to this state (monotonic).
    pub steps: i64,
    pub state: Vec<u8>,
}

/// States per SQLite transaction (~30 KB each: a few ms of writing).
const LITE_CHUNK: usize = 8;

/// Rows per upsert statement (keeps statements well under the pglite 64 KB limit is not a
/// goal here: states are ~30 KB each, pglite stores them one by one).
const CHUNK: usize = 64;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

impl Store {
    /// Writes checkpoints (fenced by `steps`). Returns how many rows were written; a row
    /// refused by the fence is not an error (a newer state is already stored).
    pub async fn save_checkpoints(&self, rows: &[Checkpoint]) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut written = 0;
        if let Some(pool) = self.pg_pool() {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(CHUNK) {
                let ids: Vec<&str> = chunk.iter().map(|c| c.athlete_id.as_str()).collect();
                let gyms: Vec<&str> = chunk.iter().map(|c| c.gym_id.as_str()).collect();
                let steps: Vec<i64> = chunk.iter().map(|c| c.steps).collect();
                let states: Vec<&[u8]> = chunk.iter().map(|c| c.state.as_slice()).collect();
                let r = sqlx::query(
                    "INSERT INTO processor_state (athlete_id, gym_id, steps, state, updated_at)
                     SELECT a, g, s, b, now()
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bytea[]) AS t(a, g, s, b)
                     ON CONFLICT (athlete_id) DO UPDATE
                     SET gym_id = EXCLUDED.gym_id, steps = EXCLUDED.steps,
                         state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
                     WHERE processor_state.steps <= EXCLUDED.steps",
                )
                .bind(&ids)
                .bind(&gyms)
                .bind(&steps)
                .bind(&states)
                .execute(&mut *tx)
                .await?;
                written += r.rows_affected();
            }
            tx.commit().await?;
        } else if let Some(pool) = self.sqlite_pool() {
            // Small transactions through the write gate: the sink's writes interleave
            // instead of waiting for the whole checkpoint (SQLite has one writer).
            for chunk in rows.chunks(LITE_CHUNK) {
                let _gate = self.lite_write_gate().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let now = now_us();
                for c in chunk {
                    let r = sqlx::query(
                        "INSERT INTO processor_state (athlete_id, gym_id, steps, state, updated_us)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (athlete_id) DO UPDATE
                     SET gym_id = excluded.gym_id, steps = excluded.steps,
                         state = excluded.state, updated_us = excluded.updated_us
                     WHERE processor_state.steps <= excluded.steps",
                    )
                    .bind(&c.athlete_id)
                    .bind(&c.gym_id)
                    .bind(c.steps)
                    .bind(&c.state)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    written += r.rows_affected();
                }
                tx.commit().await?;
            }
        }
        Ok(written)
    }

    /// The stored checkpoint of an athlete, if any.
    pub async fn load_checkpoint(
        &self,
        athlete_id: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        type Row = (String, String, i64, Vec<u8>);
        let row: Option<Row> = if let Some(pool) = self.pg_pool() {
            sqlx::query_as(
                "SELECT athlete_id, gym_id, steps, state FROM processor_state WHERE athlete_id = $1",
            )
            .bind(athlete_id)
            .fetch_optional(pool)
            .await?
        } else if let Some(pool) = self.sqlite_pool() {
            sqlx::query_as(
                "SELECT athlete_id, gym_id, steps, state FROM processor_state WHERE athlete_id = ?1",
            )
            .bind(athlete_id)
            .fetch_optional(pool)
            .await?
        } else {
            None
        };
        Ok(row.map(|(athlete_id, gym_id, steps, state)| Checkpoint {
            athlete_id,
            gym_id,
            steps,
            state,
        }))
    }

    /// How many athletes have a checkpoint (diagnostics, tests).
    pub async fn checkpoint_count(&self) -> Result<i64, StoreError> {
        let n: (i64,) = if let Some(pool) = self.pg_pool() {
            sqlx::query_as("SELECT count(*) FROM processor_state")
                .fetch_one(pool)
                .await?
        } else if let Some(pool) = self.sqlite_pool() {
            sqlx::query_as("SELECT count(*) FROM processor_state")
                .fetch_one(pool)
                .await?
        } else {
            (0,)
        };
        Ok(n.0)
    }
}
