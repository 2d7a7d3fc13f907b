//! PostgreSQL (both flavours) statements of the alerts module. Batch writes bind arrays
//! and `UNNEST` them, like the reps upsert; reads build their WHERE clause from the
//! [`Scope`] with bound parameters only.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use liftguard_proto::v1::{AlertRecord, FlareUpReport, RiskRecord};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row as _};

use super::{
    AlertQuery, AlertRow, AlertWrite, ClaimedDelivery, DeliveryOutcome, DeliveryState,
    MAX_ALERTS_PER_STATEMENT, RiskRow, StoredAlert, Webhook, chunks_by_budget, decode_drivers,
    decode_evidence, decode_strings, status_of, u32_of,
};
use crate::{Scope, StoreError};

/// The channel `upsert_alerts` notifies (payload: the last cursor) when it inserted.
pub(crate) const ALERTS_CHANNEL: &str = "liftguard_alerts";

fn ts(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StoreError::invalid("time", format!("{us} µs is not representable")))
}

fn us(row: &PgRow, i: usize) -> Result<i64, StoreError> {
    Ok(row.try_get::<DateTime<Utc>, _>(i)?.timestamp_micros())
}

fn opt_us(row: &PgRow, i: usize) -> Result<Option<i64>, StoreError> {
    Ok(row
        .try_get::<Option<DateTime<Utc>>, _>(i)?
        .map(|t| t.timestamp_micros()))
}

/// Alert columns in the order [`alert_from_row`] reads them; `{p}` is a table alias
/// prefix (`a.` or empty).
macro_rules! alert_select {
    ($p:literal) => {
        concat!(
            $p,
            "cursor, ",
            $p,
            "alert_id, ",
            $p,
            "gym_id, ",
            $p,
            "athlete_id, ",
            $p,
            "session_id, ",
            $p,
            "set_id, ",
            $p,
            "kind, ",
            $p,
            "severity, ",
            $p,
            "time, ",
            $p,
            "title, ",
            $p,
            "recommendation, ",
            $p,
            "evidence::text, ",
            $p,
            "rep_ids::text, ",
            $p,
            "model_version, ",
            $p,
            "acknowledged_at, ",
            $p,
            "acknowledged_by, ",
            $p,
            "source_received_at"
        )
    };
}

/// Decodes the 17 columns of [`alert_select`] starting at `o`.
fn alert_from_row(row: &PgRow, o: usize) -> Result<StoredAlert, StoreError> {
    let evidence: String = row.try_get(o + 11)?;
    let rep_ids: String = row.try_get(o + 12)?;
    Ok(StoredAlert {
        cursor: row.try_get(o)?,
        alert: AlertRecord {
            alert_id: row.try_get(o + 1)?,
            gym_id: row.try_get(o + 2)?,
            athlete_id: row.try_get(o + 3)?,
            session_id: row.try_get(o + 4)?,
            set_id: row.try_get(o + 5)?,
            kind: row.try_get(o + 6)?,
            severity: row.try_get(o + 7)?,
            time_us: us(row, o + 8)?,
            title: row.try_get(o + 9)?,
            recommendation: row.try_get(o + 10)?,
            evidence: decode_evidence(&evidence)?,
            rep_ids: decode_strings("alerts", &rep_ids)?,
            model_version: u32_of("alerts", "model_version", row.try_get(o + 13)?)?,
            source_received_us: opt_us(row, o + 16)?.unwrap_or(0),
        },
        acknowledged_at_us: opt_us(row, o + 14)?,
        acknowledged_by: row.try_get(o + 15)?,
    })
}

const ALERT_UPSERT: &str = "INSERT INTO alerts (cursor, alert_id, gym_id, athlete_id, session_id, \
     set_id, kind, severity, time, title, recommendation, evidence, rep_ids, model_version, \
     source_received_at, stored_at) \
     SELECT c, id, g, a, s, st, k, sev, t, ti, r, ev::jsonb, reps::jsonb, mv, rx, $16 \
     FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::int4[], $8::int4[], $9::timestamptz[], $10::text[], $11::text[], $12::text[], \
     $13::text[], $14::int8[], $15::timestamptz[]) \
     AS u(c, id, g, a, s, st, k, sev, t, ti, r, ev, reps, mv, rx) \
     ON CONFLICT (alert_id, time) DO UPDATE SET gym_id = EXCLUDED.gym_id, \
     athlete_id = EXCLUDED.athlete_id, session_id = EXCLUDED.session_id, \
     set_id = EXCLUDED.set_id, kind = EXCLUDED.kind, severity = EXCLUDED.severity, \
     title = EXCLUDED.title, recommendation = EXCLUDED.recommendation, \
     evidence = EXCLUDED.evidence, rep_ids = EXCLUDED.rep_ids, \
     model_version = EXCLUDED.model_version, stored_at = EXCLUDED.stored_at \
     WHERE (alerts.gym_id, alerts.athlete_id, alerts.session_id, alerts.set_id, alerts.kind, \
     alerts.severity, alerts.title, alerts.recommendation, alerts.evidence, alerts.rep_ids, \
     alerts.model_version) IS DISTINCT FROM (EXCLUDED.gym_id, EXCLUDED.athlete_id, \
     EXCLUDED.session_id, EXCLUDED.set_id, EXCLUDED.kind, EXCLUDED.severity, EXCLUDED.title, \
     EXCLUDED.recommendation, EXCLUDED.evidence, EXCLUDED.rep_ids, EXCLUDED.model_version)";

pub(crate) async fn upsert_alerts(
    pool: &PgPool,
    rows: &mut [AlertRow<'_>],
) -> Result<AlertWrite, StoreError> {
    let stored = ts(crate::common::now_us())?;
    let mut tx = pool.begin().await?;
    // The row lock serialises cursor assignment until commit (module docs: cursors become
    // visible in cursor order).
    let last: i64 = sqlx::query_scalar("SELECT last FROM alert_cursor WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let ids: Vec<&str> = rows.iter().map(|r| r.a.alert_id.as_str()).collect();
    let existing: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT alert_id, cursor FROM alerts WHERE alert_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut next = last;
    let mut fresh = Vec::new();
    for (i, r) in rows.iter_mut().enumerate() {
        match existing.get(&r.a.alert_id) {
            Some(&c) => r.cursor = c,
            None => {
                next += 1;
                r.cursor = next;
                fresh.push(i);
            }
        }
    }
    let mut affected = 0;
    for chunk in chunks_by_budget(rows, MAX_ALERTS_PER_STATEMENT, AlertRow::est_bytes) {
        let times = chunk
            .iter()
            .map(|r| ts(r.a.time_us))
            .collect::<Result<Vec<_>, _>>()?;
        let received = chunk
            .iter()
            .map(|r| match r.a.source_received_us {
                0 => Ok(None),
                t => ts(t).map(Some),
            })
            .collect::<Result<Vec<_>, _>>()?;
        affected += sqlx::query(ALERT_UPSERT)
            .bind(chunk.iter().map(|r| r.cursor).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.alert_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.gym_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.athlete_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.session_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.set_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.a.kind).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.a.severity).collect::<Vec<_>>())
            .bind(times)
            .bind(chunk.iter().map(|r| r.a.title.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| r.a.recommendation.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.evidence.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.rep_ids.as_str()).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| i64::from(r.a.model_version))
                    .collect::<Vec<_>>(),
            )
            .bind(received)
            .bind(stored)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    let inserted = fresh.len() as u64;
    let mut deliveries = 0;
    if next > last {
        sqlx::query("UPDATE alert_cursor SET last = $1 WHERE id = 1")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        deliveries = insert_outbox(&mut tx, rows, &fresh, stored).await?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(ALERTS_CHANNEL)
            .bind(next.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(AlertWrite {
        inserted,
        updated: affected.saturating_sub(inserted),
        deliveries,
        last_cursor: next,
    })
}

/// Outbox rows for the newly inserted alerts `rows[fresh]`, for their gyms' webhooks.
async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[AlertRow<'_>],
    fresh: &[usize],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let gyms: Vec<&str> = fresh
        .iter()
        .map(|&i| rows[i].a.gym_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let hooks: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT webhook_id, gym_id, min_severity FROM webhooks \
         WHERE deleted_at IS NULL AND gym_id = ANY($1) ORDER BY webhook_id",
    )
    .bind(&gyms)
    .fetch_all(&mut **tx)
    .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let mut out: Vec<(&str, &str, i64, &str)> = Vec::new();
    for &i in fresh {
        let a = rows[i].a;
        for (wid, g, min) in &hooks {
            if *g == a.gym_id && a.severity >= *min {
                out.push((wid, &a.alert_id, a.time_us, &a.gym_id));
            }
        }
    }
    let mut n = 0;
    for chunk in out.chunks(500) {
        let times = chunk
            .iter()
            .map(|d| ts(d.2))
            .collect::<Result<Vec<_>, _>>()?;
        n += sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, alert_id, alert_time, gym_id, attempts, \
             next_attempt_at, created_at) \
             SELECT w, a, t, g, 0, $5, $5 FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], \
             $4::text[]) AS u(w, a, t, g) ON CONFLICT (webhook_id, alert_id) DO NOTHING",
        )
        .bind(chunk.iter().map(|d| d.0).collect::<Vec<_>>())
        .bind(chunk.iter().map(|d| d.1).collect::<Vec<_>>())
        .bind(times)
        .bind(chunk.iter().map(|d| d.3).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(n)
}

/// Appends ` AND gym_id = ANY(..) AND athlete_id = ANY(..)` for the scope.
fn push_scope(qb: &mut QueryBuilder<Postgres>, scope: &Scope) {
    if let Some(g) = scope.gym_strs() {
        qb.push(" AND gym_id = ANY(");
        qb.push_bind(g);
        qb.push(")");
    }
    if let Some(a) = scope.athlete_strs() {
        qb.push(" AND athlete_id = ANY(");
        qb.push_bind(a);
        qb.push(")");
    }
}

pub(crate) async fn list_alerts(
    pool: &PgPool,
    scope: &Scope,
    q: &AlertQuery,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new(concat!(
        "SELECT ",
        alert_select!(""),
        " FROM alerts WHERE cursor > "
    ));
    qb.push_bind(q.after_cursor);
    push_scope(&mut qb, scope);
    if q.unacknowledged_only {
        qb.push(" AND acknowledged_at IS NULL");
    }
    if q.from_us > 0 || q.to_us <= crate::common::MAX_TIME_US {
        qb.push(" AND time >= ");
        qb.push_bind(ts(q.from_us)?);
        qb.push(" AND time < ");
        qb.push_bind(ts(q.to_us)?);
    }
    qb.push(" ORDER BY cursor LIMIT ");
    qb.push_bind(i64::from(q.limit));
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(|r| alert_from_row(r, 0)).collect()
}

pub(crate) async fn get_alert(
    pool: &PgPool,
    alert_id: &str,
) -> Result<Option<StoredAlert>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        alert_select!(""),
        " FROM alerts WHERE alert_id = $1 ORDER BY cursor LIMIT 1"
    ))
    .bind(alert_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| alert_from_row(&r, 0)).transpose()
}

pub(crate) async fn acknowledge(
    pool: &PgPool,
    alert_id: &str,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE alerts SET acknowledged_at = $2, acknowledged_by = $3 \
         WHERE alert_id = $1 AND acknowledged_at IS NULL",
    )
    .bind(alert_id)
    .bind(ts(now)?)
    .bind(by)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n > 0)
}

const RISK_UPSERT: &str = "INSERT INTO risk_scores (risk_id, gym_id, athlete_id, day, time, \
     probability, drivers, alert, model_version, stored_at) \
     SELECT r, g, a, d::date, t, p, dr::jsonb, al, mv, $10 FROM UNNEST($1::text[], $2::text[], \
     $3::text[], $4::text[], $5::timestamptz[], $6::float8[], $7::text[], $8::bool[], \
     $9::int8[]) AS u(r, g, a, d, t, p, dr, al, mv) \
     ON CONFLICT (athlete_id, day) DO UPDATE SET risk_id = EXCLUDED.risk_id, \
     gym_id = EXCLUDED.gym_id, time = EXCLUDED.time, probability = EXCLUDED.probability, \
     drivers = EXCLUDED.drivers, alert = EXCLUDED.alert, \
     model_version = EXCLUDED.model_version, stored_at = EXCLUDED.stored_at \
     WHERE EXCLUDED.time >= risk_scores.time AND (risk_scores.risk_id, risk_scores.gym_id, \
     risk_scores.time, risk_scores.probability, risk_scores.drivers, risk_scores.alert, \
     risk_scores.model_version) IS DISTINCT FROM (EXCLUDED.risk_id, EXCLUDED.gym_id, \
     EXCLUDED.time, EXCLUDED.probability, EXCLUDED.drivers, EXCLUDED.alert, \
     EXCLUDED.model_version)";

pub(crate) async fn upsert_risk(pool: &PgPool, rows: &[RiskRow<'_>]) -> Result<u64, StoreError> {
    let stored = ts(crate::common::now_us())?;
    let mut tx = pool.begin().await?;
    let mut n = 0;
    for chunk in chunks_by_budget(rows, MAX_ALERTS_PER_STATEMENT * 5, RiskRow::est_bytes) {
        let times = chunk
            .iter()
            .map(|r| ts(r.r.time_us))
            .collect::<Result<Vec<_>, _>>()?;
        n += sqlx::query(RISK_UPSERT)
            .bind(
                chunk
                    .iter()
                    .map(|r| r.r.risk_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.r.gym_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|r| r.r.athlete_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|r| r.r.day.as_str()).collect::<Vec<_>>())
            .bind(times)
            .bind(chunk.iter().map(|r| r.r.probability).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.drivers.as_str()).collect::<Vec<_>>())
            .bind(chunk.iter().map(|r| r.r.alert).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|r| i64::from(r.r.model_version))
                    .collect::<Vec<_>>(),
            )
            .bind(stored)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

pub(crate) async fn risk_scores(
    pool: &PgPool,
    scope: &Scope,
    from_day: &str,
    to_day: &str,
) -> Result<Vec<RiskRecord>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT risk_id, gym_id, athlete_id, to_char(day, 'YYYY-MM-DD'), time, probability, \
         drivers::text, alert, model_version FROM risk_scores WHERE day >= ",
    );
    qb.push_bind(from_day);
    qb.push("::date AND day <= ");
    qb.push_bind(to_day);
    qb.push("::date");
    push_scope(&mut qb, scope);
    qb.push(" ORDER BY athlete_id, day");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let drivers: String = row.try_get(6)?;
            Ok(RiskRecord {
                risk_id: row.try_get(0)?,
                gym_id: row.try_get(1)?,
                athlete_id: row.try_get(2)?,
                day: row.try_get(3)?,
                time_us: us(row, 4)?,
                probability: row.try_get(5)?,
                drivers: decode_drivers(&drivers)?,
                alert: row.try_get(7)?,
                model_version: u32_of("risk_scores", "model_version", row.try_get(8)?)?,
            })
        })
        .collect()
}

fn flareup_from_row(row: &PgRow) -> Result<FlareUpReport, StoreError> {
    Ok(FlareUpReport {
        report_id: row.try_get(0)?,
        gym_id: row.try_get(1)?,
        athlete_id: row.try_get(2)?,
        onset_time_us: us(row, 3)?,
        pain: u32_of(
            "flareup_reports",
            "pain",
            i64::from(row.try_get::<i32, _>(4)?),
        )?,
        note: row.try_get(5)?,
        reported_at_us: us(row, 6)?,
    })
}

pub(crate) async fn upsert_flareup(
    pool: &PgPool,
    r: &FlareUpReport,
) -> Result<FlareUpReport, StoreError> {
    let pain = i32::try_from(r.pain).map_err(|_| StoreError::invalid("pain", "too large"))?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO flareup_reports (report_id, gym_id, athlete_id, onset_time, pain, note, \
         reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (report_id) DO UPDATE SET pain = EXCLUDED.pain, note = EXCLUDED.note, \
         reported_at = EXCLUDED.reported_at \
         WHERE (flareup_reports.pain, flareup_reports.note) IS DISTINCT FROM \
         (EXCLUDED.pain, EXCLUDED.note)",
    )
    .bind(&r.report_id)
    .bind(&r.gym_id)
    .bind(&r.athlete_id)
    .bind(ts(r.onset_time_us)?)
    .bind(pain)
    .bind(&r.note)
    .bind(ts(r.reported_at_us)?)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT report_id, gym_id, athlete_id, onset_time, pain, note, reported_at \
         FROM flareup_reports WHERE report_id = $1",
    )
    .bind(&r.report_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    flareup_from_row(&row)
}

pub(crate) async fn flareups(
    pool: &PgPool,
    scope: &Scope,
    from: i64,
    to: i64,
) -> Result<Vec<FlareUpReport>, StoreError> {
    let mut qb = QueryBuilder::<Postgres>::new(
        "SELECT report_id, gym_id, athlete_id, onset_time, pain, note, reported_at \
         FROM flareup_reports WHERE onset_time >= ",
    );
    qb.push_bind(ts(from)?);
    qb.push(" AND onset_time < ");
    qb.push_bind(ts(to)?);
    push_scope(&mut qb, scope);
    qb.push(" ORDER BY onset_time, athlete_id");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(flareup_from_row).collect()
}

pub(crate) async fn create_webhook(
    pool: &PgPool,
    w: &Webhook,
    secret: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let gym: Option<i32> = sqlx::query_scalar("SELECT 1 FROM gyms WHERE gym_id = $1")
        .bind(&w.gym_id)
        .fetch_optional(&mut *tx)
        .await?;
    if gym.is_none() {
        return Err(StoreError::NotFound(format!("gym {}", w.gym_id)));
    }
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, gym_id, url, secret, description, min_severity, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&w.webhook_id)
    .bind(&w.gym_id)
    .bind(&w.url)
    .bind(secret)
    .bind(&w.description)
    .bind(w.min_severity)
    .bind(ts(w.created_us)?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_webhooks(pool: &PgPool, gym: &str) -> Result<Vec<Webhook>, StoreError> {
    let rows = sqlx::query(
        "SELECT w.webhook_id, w.gym_id, w.url, w.description, w.min_severity, w.created_at, \
         COALESCE(SUM(CASE WHEN d.delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0)::int8, \
         COALESCE(SUM(CASE WHEN d.alert_id IS NOT NULL AND d.delivered_at IS NULL \
             AND d.failed_at IS NULL THEN 1 ELSE 0 END), 0)::int8, \
         COALESCE(SUM(CASE WHEN d.failed_at IS NOT NULL THEN 1 ELSE 0 END), 0)::int8 \
         FROM webhooks w LEFT JOIN webhook_deliveries d ON d.webhook_id = w.webhook_id \
         WHERE w.gym_id = $1 AND w.deleted_at IS NULL \
         GROUP BY w.webhook_id, w.gym_id, w.url, w.description, w.min_severity, w.created_at \
         ORDER BY w.webhook_id",
    )
    .bind(gym)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let n = |i: usize| -> Result<u64, StoreError> {
                Ok(u64::try_from(r.try_get::<i64, _>(i)?).unwrap_or(0))
            };
            Ok(Webhook {
                webhook_id: r.try_get(0)?,
                gym_id: r.try_get(1)?,
                url: r.try_get(2)?,
                description: r.try_get(3)?,
                min_severity: r.try_get(4)?,
                created_us: us(r, 5)?,
                delivered: n(6)?,
                pending: n(7)?,
                failed: n(8)?,
            })
        })
        .collect()
}

pub(crate) async fn delete_webhook(
    pool: &PgPool,
    gym: &str,
    webhook_id: &str,
    now: i64,
) -> Result<Option<bool>, StoreError> {
    let now = ts(now)?;
    let mut tx = pool.begin().await?;
    let deleted: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(
        "SELECT deleted_at FROM webhooks WHERE webhook_id = $1 AND gym_id = $2 FOR UPDATE",
    )
    .bind(webhook_id)
    .bind(gym)
    .fetch_optional(&mut *tx)
    .await?;
    let r = match deleted {
        None => None,
        Some(Some(_)) => Some(false),
        Some(None) => {
            sqlx::query("UPDATE webhooks SET deleted_at = $2 WHERE webhook_id = $1")
                .bind(webhook_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE webhook_deliveries SET failed_at = $2, last_error = 'webhook deleted' \
                 WHERE webhook_id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
            )
            .bind(webhook_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Some(true)
        }
    };
    tx.commit().await?;
    Ok(r)
}

/// Claimed deliveries, and the `(webhook, alert, attempt)` of claimed rows whose alert is
/// gone.
pub(crate) type Claimed = (Vec<ClaimedDelivery>, Vec<(String, String, u32)>);

pub(crate) async fn claim(
    pool: &PgPool,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Claimed, StoreError> {
    let mut tx = pool.begin().await?;
    let keys: Vec<(String, String, i32)> = sqlx::query_as(
        "WITH due AS (SELECT webhook_id, alert_id FROM webhook_deliveries \
             WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, webhook_id, alert_id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = $3 \
         FROM due WHERE d.webhook_id = due.webhook_id AND d.alert_id = due.alert_id \
         RETURNING d.webhook_id, d.alert_id, d.attempts",
    )
    .bind(ts(now)?)
    .bind(limit)
    .bind(ts(lease_until)?)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::with_capacity(keys.len());
    let mut orphans = Vec::new();
    if !keys.is_empty() {
        let rows = sqlx::query(concat!(
            "SELECT c.wid, c.aid, w.url, w.secret, ",
            alert_select!("a."),
            " FROM UNNEST($1::text[], $2::text[]) AS c(wid, aid) \
              JOIN webhooks w ON w.webhook_id = c.wid \
              LEFT JOIN alerts a ON a.alert_id = c.aid"
        ))
        .bind(keys.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind(keys.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        let mut found: HashMap<(String, String), PgRow> = HashMap::new();
        for r in rows {
            found.insert((r.try_get(0)?, r.try_get(1)?), r);
        }
        for (wid, aid, attempts) in keys {
            let attempt = u32_of("webhook_deliveries", "attempts", i64::from(attempts))?;
            match found.get(&(wid.clone(), aid.clone())) {
                Some(r) if r.try_get::<Option<i64>, _>(4)?.is_some() => {
                    out.push(ClaimedDelivery {
                        webhook_id: wid,
                        url: r.try_get(2)?,
                        secret: r.try_get(3)?,
                        attempt,
                        alert: alert_from_row(r, 4)?,
                    });
                }
                _ => orphans.push((wid, aid, attempt)),
            }
        }
    }
    tx.commit().await?;
    out.sort_by(|a, b| (a.alert.cursor, &a.webhook_id).cmp(&(b.alert.cursor, &b.webhook_id)));
    Ok((out, orphans))
}

pub(crate) async fn finish(
    pool: &PgPool,
    webhook_id: &str,
    alert_id: &str,
    attempt: u32,
    outcome: &DeliveryOutcome,
    error: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let now = ts(now)?;
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    let q = match outcome {
        DeliveryOutcome::Delivered { status } => sqlx::query(
            "UPDATE webhook_deliveries SET delivered_at = $3, last_status = $4, last_error = NULL \
             WHERE webhook_id = $1 AND alert_id = $2 AND delivered_at IS NULL",
        )
        .bind(webhook_id)
        .bind(alert_id)
        .bind(now)
        .bind(i32::from(*status)),
        DeliveryOutcome::Retry {
            status,
            next_attempt_us,
            ..
        } => sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3, last_status = $4, \
             last_error = $5 WHERE webhook_id = $1 AND alert_id = $2 AND attempts = $6 \
             AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(webhook_id)
        .bind(alert_id)
        .bind(ts(*next_attempt_us)?)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(attempt),
        DeliveryOutcome::Failed { status, .. } => sqlx::query(
            "UPDATE webhook_deliveries SET failed_at = $3, last_status = $4, last_error = $5 \
             WHERE webhook_id = $1 AND alert_id = $2 AND attempts = $6 \
             AND delivered_at IS NULL AND failed_at IS NULL",
        )
        .bind(webhook_id)
        .bind(alert_id)
        .bind(now)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(attempt),
    };
    Ok(q.execute(pool).await?.rows_affected() > 0)
}

pub(crate) async fn delivery_states(
    pool: &PgPool,
    gym: &str,
) -> Result<Vec<DeliveryState>, StoreError> {
    let rows = sqlx::query(
        "SELECT webhook_id, alert_id, attempts, last_status, last_error, \
         delivered_at IS NOT NULL, failed_at IS NOT NULL FROM webhook_deliveries \
         WHERE gym_id = $1 ORDER BY webhook_id, alert_id",
    )
    .bind(gym)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryState {
                webhook_id: r.try_get(0)?,
                alert_id: r.try_get(1)?,
                attempts: u32_of(
                    "webhook_deliveries",
                    "attempts",
                    i64::from(r.try_get::<i32, _>(2)?),
                )?,
                last_status: status_of("webhook_deliveries", r.try_get(3)?)?,
                last_error: r.try_get(4)?,
                delivered: r.try_get(5)?,
                failed: r.try_get(6)?,
            })
        })
        .collect()
}

/// A connection listening on [`ALERTS_CHANNEL`].
pub(crate) async fn listener(pool: &PgPool) -> Result<sqlx::postgres::PgListener, StoreError> {
    let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
    l.listen(ALERTS_CHANNEL).await?;
    Ok(l)
}
