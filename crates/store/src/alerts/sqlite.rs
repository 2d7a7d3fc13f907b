//! SQLite statements of the alerts module. Writers are serialised by `BEGIN IMMEDIATE`;
//! scope sets are bound as one JSON array each (`IN (SELECT value FROM json_each(?))`).

use std::collections::{BTreeSet, HashMap};

use liftguard_proto::v1::{AlertRecord, FlareUpReport, RiskRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use super::{
    AlertQuery, AlertRow, AlertWrite, ClaimedDelivery, DeliveryOutcome, DeliveryState,
    MAX_ALERTS_PER_STATEMENT, RiskRow, StoredAlert, Webhook, chunks_by_budget, decode_drivers,
    decode_evidence, decode_strings, encode_strings, status_of, u32_of,
};
use crate::{Scope, StoreError};

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
            "time_us, ",
            $p,
            "title, ",
            $p,
            "recommendation, ",
            $p,
            "evidence, ",
            $p,
            "rep_ids, ",
            $p,
            "model_version, ",
            $p,
            "acknowledged_us, ",
            $p,
            "acknowledged_by, ",
            $p,
            "source_received_us"
        )
    };
}

fn alert_from_row(row: &SqliteRow, o: usize) -> Result<StoredAlert, StoreError> {
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
            time_us: row.try_get(o + 8)?,
            title: row.try_get(o + 9)?,
            recommendation: row.try_get(o + 10)?,
            evidence: decode_evidence(&evidence)?,
            rep_ids: decode_strings("alerts", &rep_ids)?,
            model_version: u32_of("alerts", "model_version", row.try_get(o + 13)?)?,
            source_received_us: row.try_get::<Option<i64>, _>(o + 16)?.unwrap_or(0),
        },
        acknowledged_at_us: row.try_get(o + 14)?,
        acknowledged_by: row.try_get(o + 15)?,
    })
}

const ALERT_INSERT_HEAD: &str = "INSERT INTO alerts (cursor, alert_id, gym_id, athlete_id, \
     session_id, set_id, kind, severity, time_us, title, recommendation, evidence, rep_ids, \
     model_version, source_received_us, stored_us) ";

const ALERT_CONFLICT: &str = " ON CONFLICT (alert_id, time_us) DO UPDATE SET \
     gym_id = excluded.gym_id, athlete_id = excluded.athlete_id, \
     session_id = excluded.session_id, set_id = excluded.set_id, kind = excluded.kind, \
     severity = excluded.severity, title = excluded.title, \
     recommendation = excluded.recommendation, evidence = excluded.evidence, \
     rep_ids = excluded.rep_ids, model_version = excluded.model_version, \
     stored_us = excluded.stored_us \
     WHERE (alerts.gym_id, alerts.athlete_id, alerts.session_id, alerts.set_id, alerts.kind, \
     alerts.severity, alerts.title, alerts.recommendation, alerts.evidence, alerts.rep_ids, \
     alerts.model_version) IS NOT (excluded.gym_id, excluded.athlete_id, excluded.session_id, \
     excluded.set_id, excluded.kind, excluded.severity, excluded.title, \
     excluded.recommendation, excluded.evidence, excluded.rep_ids, excluded.model_version)";

pub(crate) async fn upsert_alerts(
    pool: &SqlitePool,
    rows: &mut [AlertRow<'_>],
) -> Result<AlertWrite, StoreError> {
    let stored = crate::common::now_us();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let last: i64 = sqlx::query_scalar("SELECT last FROM alert_cursor WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.a.alert_id.clone()).collect();
    let existing: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT alert_id, cursor FROM alerts WHERE alert_id IN (SELECT value FROM json_each($1))",
    )
    .bind(encode_strings(&ids))
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
        let mut qb = QueryBuilder::<Sqlite>::new(ALERT_INSERT_HEAD);
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.cursor)
                .push_bind(r.a.alert_id.clone())
                .push_bind(r.a.gym_id.clone())
                .push_bind(r.a.athlete_id.clone())
                .push_bind(r.a.session_id.clone())
                .push_bind(r.a.set_id.clone())
                .push_bind(r.a.kind)
                .push_bind(r.a.severity)
                .push_bind(r.a.time_us)
                .push_bind(r.a.title.clone())
                .push_bind(r.a.recommendation.clone())
                .push_bind(r.evidence.clone())
                .push_bind(r.rep_ids.clone())
                .push_bind(i64::from(r.a.model_version))
                .push_bind((r.a.source_received_us != 0).then_some(r.a.source_received_us))
                .push_bind(stored);
        });
        qb.push(ALERT_CONFLICT);
        affected += qb.build().execute(&mut *tx).await?.rows_affected();
    }
    let inserted = fresh.len() as u64;
    let mut deliveries = 0;
    if next > last {
        sqlx::query("UPDATE alert_cursor SET last = $1 WHERE id = 1")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        deliveries = insert_outbox(&mut tx, rows, &fresh, stored).await?;
    }
    tx.commit().await?;
    Ok(AlertWrite {
        inserted,
        updated: affected.saturating_sub(inserted),
        deliveries,
        last_cursor: next,
    })
}

async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[AlertRow<'_>],
    fresh: &[usize],
    now: i64,
) -> Result<u64, StoreError> {
    let gyms: Vec<String> = fresh
        .iter()
        .map(|&i| rows[i].a.gym_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let hooks: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT webhook_id, gym_id, min_severity FROM webhooks WHERE deleted_us IS NULL \
         AND gym_id IN (SELECT value FROM json_each($1)) ORDER BY webhook_id",
    )
    .bind(encode_strings(&gyms))
    .fetch_all(&mut **tx)
    .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let mut out: Vec<(&str, &AlertRecord)> = Vec::new();
    for &i in fresh {
        let a = rows[i].a;
        for (wid, g, min) in &hooks {
            if *g == a.gym_id && a.severity >= *min {
                out.push((wid, a));
            }
        }
    }
    let mut n = 0;
    for chunk in out.chunks(500) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO webhook_deliveries (webhook_id, alert_id, alert_us, gym_id, attempts, \
             next_attempt_us, created_us) ",
        );
        qb.push_values(chunk, |mut b, (wid, a)| {
            b.push_bind(wid.to_string())
                .push_bind(a.alert_id.clone())
                .push_bind(a.time_us)
                .push_bind(a.gym_id.clone())
                .push_bind(0_i64)
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (webhook_id, alert_id) DO NOTHING");
        n += qb.build().execute(&mut **tx).await?.rows_affected();
    }
    Ok(n)
}

fn push_scope(qb: &mut QueryBuilder<Sqlite>, scope: &Scope) {
    if let Some(g) = scope.gym_strs() {
        qb.push(" AND gym_id IN (SELECT value FROM json_each(");
        qb.push_bind(encode_strings(&g));
        qb.push("))");
    }
    if let Some(a) = scope.athlete_strs() {
        qb.push(" AND athlete_id IN (SELECT value FROM json_each(");
        qb.push_bind(encode_strings(&a));
        qb.push("))");
    }
}

pub(crate) async fn list_alerts(
    pool: &SqlitePool,
    scope: &Scope,
    q: &AlertQuery,
) -> Result<Vec<StoredAlert>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        alert_select!(""),
        " FROM alerts WHERE cursor > "
    ));
    qb.push_bind(q.after_cursor);
    push_scope(&mut qb, scope);
    if q.unacknowledged_only {
        qb.push(" AND acknowledged_us IS NULL");
    }
    if q.from_us > 0 || q.to_us <= crate::common::MAX_TIME_US {
        qb.push(" AND time_us >= ");
        qb.push_bind(q.from_us);
        qb.push(" AND time_us < ");
        qb.push_bind(q.to_us);
    }
    qb.push(" ORDER BY cursor LIMIT ");
    qb.push_bind(i64::from(q.limit));
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(|r| alert_from_row(r, 0)).collect()
}

pub(crate) async fn get_alert(
    pool: &SqlitePool,
    alert_id: &str,
) -> Result<Option<StoredAlert>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        alert_select!(""),
        " FROM alerts WHERE alert_id = $1 ORDER BY cursor LIMIT 1"
    ))
    .bind(alert_id.to_owned())
    .fetch_optional(pool)
    .await?;
    row.map(|r| alert_from_row(&r, 0)).transpose()
}

pub(crate) async fn acknowledge(
    pool: &SqlitePool,
    alert_id: &str,
    by: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "UPDATE alerts SET acknowledged_us = $2, acknowledged_by = $3 \
         WHERE alert_id = $1 AND acknowledged_us IS NULL",
    )
    .bind(alert_id.to_owned())
    .bind(now)
    .bind(by.to_owned())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n > 0)
}

const RISK_INSERT_HEAD: &str = "INSERT INTO risk_scores (risk_id, gym_id, athlete_id, day, \
     time_us, probability, drivers, alert, model_version, stored_us) ";

const RISK_CONFLICT: &str = " ON CONFLICT (athlete_id, day) DO UPDATE SET \
     risk_id = excluded.risk_id, gym_id = excluded.gym_id, time_us = excluded.time_us, \
     probability = excluded.probability, drivers = excluded.drivers, alert = excluded.alert, \
     model_version = excluded.model_version, stored_us = excluded.stored_us \
     WHERE excluded.time_us >= risk_scores.time_us AND (risk_scores.risk_id, \
     risk_scores.gym_id, risk_scores.time_us, risk_scores.probability, risk_scores.drivers, \
     risk_scores.alert, risk_scores.model_version) IS NOT (excluded.risk_id, excluded.gym_id, \
     excluded.time_us, excluded.probability, excluded.drivers, excluded.alert, \
     excluded.model_version)";

pub(crate) async fn upsert_risk(
    pool: &SqlitePool,
    rows: &[RiskRow<'_>],
) -> Result<u64, StoreError> {
    let stored = crate::common::now_us();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut n = 0;
    for chunk in chunks_by_budget(rows, MAX_ALERTS_PER_STATEMENT * 5, RiskRow::est_bytes) {
        let mut qb = QueryBuilder::<Sqlite>::new(RISK_INSERT_HEAD);
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.r.risk_id.clone())
                .push_bind(r.r.gym_id.clone())
                .push_bind(r.r.athlete_id.clone())
                .push_bind(r.r.day.clone())
                .push_bind(r.r.time_us)
                .push_bind(r.r.probability)
                .push_bind(r.drivers.clone())
                .push_bind(r.r.alert)
                .push_bind(i64::from(r.r.model_version))
                .push_bind(stored);
        });
        qb.push(RISK_CONFLICT);
        n += qb.build().execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(n)
}

pub(crate) async fn risk_scores(
    pool: &SqlitePool,
    scope: &Scope,
    from_day: &str,
    to_day: &str,
) -> Result<Vec<RiskRecord>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT risk_id, gym_id, athlete_id, day, time_us, probability, drivers, alert, \
         model_version FROM risk_scores WHERE day >= ",
    );
    qb.push_bind(from_day.to_owned());
    qb.push(" AND day <= ");
    qb.push_bind(to_day.to_owned());
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
                time_us: row.try_get(4)?,
                probability: row.try_get(5)?,
                drivers: decode_drivers(&drivers)?,
                alert: row.try_get(7)?,
                model_version: u32_of("risk_scores", "model_version", row.try_get(8)?)?,
            })
        })
        .collect()
}

fn flareup_from_row(row: &SqliteRow) -> Result<FlareUpReport, StoreError> {
    Ok(FlareUpReport {
        report_id: row.try_get(0)?,
        gym_id: row.try_get(1)?,
        athlete_id: row.try_get(2)?,
        onset_time_us: row.try_get(3)?,
        pain: u32_of("flareup_reports", "pain", row.try_get(4)?)?,
        note: row.try_get(5)?,
        reported_at_us: row.try_get(6)?,
    })
}

pub(crate) async fn upsert_flareup(
    pool: &SqlitePool,
    r: &FlareUpReport,
) -> Result<FlareUpReport, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT INTO flareup_reports (report_id, gym_id, athlete_id, onset_us, pain, note, \
         reported_us) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (report_id) DO UPDATE SET pain = excluded.pain, note = excluded.note, \
         reported_us = excluded.reported_us \
         WHERE (flareup_reports.pain, flareup_reports.note) IS NOT (excluded.pain, excluded.note)",
    )
    .bind(r.report_id.clone())
    .bind(r.gym_id.clone())
    .bind(r.athlete_id.clone())
    .bind(r.onset_time_us)
    .bind(i64::from(r.pain))
    .bind(r.note.clone())
    .bind(r.reported_at_us)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(
        "SELECT report_id, gym_id, athlete_id, onset_us, pain, note, reported_us \
         FROM flareup_reports WHERE report_id = $1",
    )
    .bind(r.report_id.clone())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    flareup_from_row(&row)
}

pub(crate) async fn flareups(
    pool: &SqlitePool,
    scope: &Scope,
    from: i64,
    to: i64,
) -> Result<Vec<FlareUpReport>, StoreError> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "SELECT report_id, gym_id, athlete_id, onset_us, pain, note, reported_us \
         FROM flareup_reports WHERE onset_us >= ",
    );
    qb.push_bind(from);
    qb.push(" AND onset_us < ");
    qb.push_bind(to);
    push_scope(&mut qb, scope);
    qb.push(" ORDER BY onset_us, athlete_id");
    let rows = qb.build().fetch_all(pool).await?;
    rows.iter().map(flareup_from_row).collect()
}

pub(crate) async fn create_webhook(
    pool: &SqlitePool,
    w: &Webhook,
    secret: &str,
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let gym: Option<i64> = sqlx::query_scalar("SELECT 1 FROM gyms WHERE gym_id = $1")
        .bind(w.gym_id.clone())
        .fetch_optional(&mut *tx)
        .await?;
    if gym.is_none() {
        return Err(StoreError::NotFound(format!("gym {}", w.gym_id)));
    }
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, gym_id, url, secret, description, min_severity, \
         created_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(w.webhook_id.clone())
    .bind(w.gym_id.clone())
    .bind(w.url.clone())
    .bind(secret.to_owned())
    .bind(w.description.clone())
    .bind(w.min_severity)
    .bind(w.created_us)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_webhooks(
    pool: &SqlitePool,
    gym: &str,
) -> Result<Vec<Webhook>, StoreError> {
    let rows = sqlx::query(
        "SELECT w.webhook_id, w.gym_id, w.url, w.description, w.min_severity, w.created_us, \
         COALESCE(SUM(CASE WHEN d.delivered_us IS NOT NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN d.alert_id IS NOT NULL AND d.delivered_us IS NULL \
             AND d.failed_us IS NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN d.failed_us IS NOT NULL THEN 1 ELSE 0 END), 0) \
         FROM webhooks w LEFT JOIN webhook_deliveries d ON d.webhook_id = w.webhook_id \
         WHERE w.gym_id = $1 AND w.deleted_us IS NULL \
         GROUP BY w.webhook_id, w.gym_id, w.url, w.description, w.min_severity, w.created_us \
         ORDER BY w.webhook_id",
    )
    .bind(gym.to_owned())
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
                created_us: r.try_get(5)?,
                delivered: n(6)?,
                pending: n(7)?,
                failed: n(8)?,
            })
        })
        .collect()
}

pub(crate) async fn delete_webhook(
    pool: &SqlitePool,
    gym: &str,
    webhook_id: &str,
    now: i64,
) -> Result<Option<bool>, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let deleted: Option<Option<i64>> =
        sqlx::query_scalar("SELECT deleted_us FROM webhooks WHERE webhook_id = $1 AND gym_id = $2")
            .bind(webhook_id.to_owned())
            .bind(gym.to_owned())
            .fetch_optional(&mut *tx)
            .await?;
    let r = match deleted {
        None => None,
        Some(Some(_)) => Some(false),
        Some(None) => {
            sqlx::query("UPDATE webhooks SET deleted_us = $2 WHERE webhook_id = $1")
                .bind(webhook_id.to_owned())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE webhook_deliveries SET failed_us = $2, last_error = 'webhook deleted' \
                 WHERE webhook_id = $1 AND delivered_us IS NULL AND failed_us IS NULL",
            )
            .bind(webhook_id.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Some(true)
        }
    };
    tx.commit().await?;
    Ok(r)
}

pub(crate) async fn claim(
    pool: &SqlitePool,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<super::pg::Claimed, StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let keys: Vec<(String, String, i64)> = sqlx::query_as(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_us = $3 \
         WHERE rowid IN (SELECT rowid FROM webhook_deliveries \
             WHERE delivered_us IS NULL AND failed_us IS NULL AND next_attempt_us <= $1 \
             ORDER BY next_attempt_us, webhook_id, alert_id LIMIT $2) \
         RETURNING webhook_id, alert_id, attempts",
    )
    .bind(now)
    .bind(limit)
    .bind(lease_until)
    .fetch_all(&mut *tx)
    .await?;
    let mut out = Vec::with_capacity(keys.len());
    let mut orphans = Vec::new();
    for (wid, aid, attempts) in keys {
        let attempt = u32_of("webhook_deliveries", "attempts", attempts)?;
        let row = sqlx::query(concat!(
            "SELECT w.url, w.secret, ",
            alert_select!("a."),
            " FROM webhooks w LEFT JOIN alerts a ON a.alert_id = $2 WHERE w.webhook_id = $1"
        ))
        .bind(wid.clone())
        .bind(aid.clone())
        .fetch_optional(&mut *tx)
        .await?;
        match row {
            Some(r) if r.try_get::<Option<i64>, _>(2)?.is_some() => out.push(ClaimedDelivery {
                webhook_id: wid,
                url: r.try_get(0)?,
                secret: r.try_get(1)?,
                attempt,
                alert: alert_from_row(&r, 2)?,
            }),
            _ => orphans.push((wid, aid, attempt)),
        }
    }
    tx.commit().await?;
    out.sort_by(|a, b| (a.alert.cursor, &a.webhook_id).cmp(&(b.alert.cursor, &b.webhook_id)));
    Ok((out, orphans))
}

pub(crate) async fn finish(
    pool: &SqlitePool,
    webhook_id: &str,
    alert_id: &str,
    attempt: u32,
    outcome: &DeliveryOutcome,
    error: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let (wid, aid, err) = (
        webhook_id.to_owned(),
        alert_id.to_owned(),
        error.map(str::to_owned),
    );
    let q = match outcome {
        DeliveryOutcome::Delivered { status } => sqlx::query(
            "UPDATE webhook_deliveries SET delivered_us = $3, last_status = $4, last_error = NULL \
             WHERE webhook_id = $1 AND alert_id = $2 AND delivered_us IS NULL",
        )
        .bind(wid)
        .bind(aid)
        .bind(now)
        .bind(i64::from(*status)),
        DeliveryOutcome::Retry {
            status,
            next_attempt_us,
            ..
        } => sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_us = $3, last_status = $4, \
             last_error = $5 WHERE webhook_id = $1 AND alert_id = $2 AND attempts = $6 \
             AND delivered_us IS NULL AND failed_us IS NULL",
        )
        .bind(wid)
        .bind(aid)
        .bind(*next_attempt_us)
        .bind(status.map(i64::from))
        .bind(err)
        .bind(i64::from(attempt)),
        DeliveryOutcome::Failed { status, .. } => sqlx::query(
            "UPDATE webhook_deliveries SET failed_us = $3, last_status = $4, last_error = $5 \
             WHERE webhook_id = $1 AND alert_id = $2 AND attempts = $6 \
             AND delivered_us IS NULL AND failed_us IS NULL",
        )
        .bind(wid)
        .bind(aid)
        .bind(now)
        .bind(status.map(i64::from))
        .bind(err)
        .bind(i64::from(attempt)),
    };
    Ok(q.execute(pool).await?.rows_affected() > 0)
}

pub(crate) async fn delivery_states(
    pool: &SqlitePool,
    gym: &str,
) -> Result<Vec<DeliveryState>, StoreError> {
    let rows = sqlx::query(
        "SELECT webhook_id, alert_id, attempts, last_status, last_error, \
         delivered_us IS NOT NULL, failed_us IS NOT NULL FROM webhook_deliveries \
         WHERE gym_id = $1 ORDER BY webhook_id, alert_id",
    )
    .bind(gym.to_owned())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DeliveryState {
                webhook_id: r.try_get(0)?,
                alert_id: r.try_get(1)?,
                attempts: u32_of("webhook_deliveries", "attempts", r.try_get(2)?)?,
                last_status: status_of(
                    "webhook_deliveries",
                    r.try_get::<Option<i64>, _>(3)?
                        .map(|s| i32::try_from(s).unwrap_or(-1)),
                )?,
                last_error: r.try_get(4)?,
                delivered: r.try_get(5)?,
                failed: r.try_get(6)?,
            })
        })
        .collect()
}
