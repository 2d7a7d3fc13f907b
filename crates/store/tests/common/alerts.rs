//! The alerts behaviour suite (alerts, cursors, acknowledgements, risk, flare-up reports,
//! webhooks and their outbox), run on every backend by `alerts.rs`, and the reference
//! data of the cross-backend comparison.

use std::collections::HashMap;

use liftguard_model::{AthleteId, ErrorKind};
use liftguard_proto::v1::{
    AlertKind, AlertRecord, Evidence, FlareUpReport, RiskDriver, RiskRecord, Severity,
};
use liftguard_store::Store;
use liftguard_store::alerts::flareup_report_id;
use liftguard_store::{
    AlertQuery, DeliveryOutcome, DeliveryState, Scope, StoreError, StoredAlert, Webhook,
};

use super::{DAY, T0, gym};

/// The wall clock in µs (outbox rows are due from when they were created).
pub fn wall_now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn athlete(s: &str) -> AthleteId {
    AthleteId::parse(s).unwrap()
}

/// A deterministic alert of `athlete` at `time_us`.
pub fn alert(g: &str, a: &str, kind: AlertKind, time_us: i64, severity: Severity) -> AlertRecord {
    AlertRecord {
        alert_id: format!("{a}-{}-{time_us}", kind as i32),
        gym_id: g.into(),
        athlete_id: a.into(),
        session_id: format!("{a}-s{}", time_us / DAY),
        set_id: if kind == AlertKind::SessionEventShare {
            String::new()
        } else {
            format!("set-{}", time_us / 600_000_000)
        },
        kind: kind as i32,
        severity: severity as i32,
        time_us,
        title: format!("{} for {a}", kind.as_str_name()),
        recommendation: "Deload 20 % and regress the hinge; film the next set.".into(),
        evidence: vec![
            Evidence {
                name: "events_in_set".into(),
                value: 3.0,
                threshold: 2.0,
                unit: "count".into(),
            },
            Evidence {
                name: "peak_lumbar_ext_velocity".into(),
                value: 0.1 + 0.2 + time_us as f64 * 1e-12,
                threshold: 120.5,
                unit: "deg/s".into(),
            },
        ],
        rep_ids: vec![
            format!("{a}-{}", time_us - 5_000_000),
            format!("{a}-{time_us}"),
        ],
        model_version: 2,
        source_received_us: time_us + 500_000,
    }
}

pub fn risk(g: &str, a: &str, day: &str, time_us: i64, p: f64) -> RiskRecord {
    RiskRecord {
        risk_id: format!("{a}-{day}"),
        gym_id: g.into(),
        athlete_id: a.into(),
        day: day.into(),
        time_us,
        probability: p,
        drivers: vec![
            RiskDriver {
                feature: "acute_chronic_damage".into(),
                value: 1.37,
                contribution: 0.61 + p,
                explanation: "this week's damage is 1.4x the 4-week average".into(),
            },
            RiskDriver {
                feature: "extensor_event_rate".into(),
                value: 0.125,
                contribution: -0.05,
                explanation: String::new(),
            },
        ],
        alert: p > 0.5,
        model_version: 1,
    }
}

pub fn flareup(g: &str, a: &str, onset: i64, pain: u32, note: &str) -> FlareUpReport {
    FlareUpReport {
        report_id: flareup_report_id(a, onset),
        gym_id: g.into(),
        athlete_id: a.into(),
        onset_time_us: onset,
        pain,
        note: note.into(),
        reported_at_us: onset + 3_600_000_000,
    }
}

pub async fn all_alerts(store: &Store, scope: &Scope) -> Vec<StoredAlert> {
    let mut out: Vec<StoredAlert> = Vec::new();
    loop {
        let after = out.last().map(|a| a.cursor).unwrap_or(0);
        let page = store
            .list_alerts(scope, &AlertQuery::after(after, 3))
            .await
            .unwrap();
        if page.is_empty() {
            return out;
        }
        assert!(page.windows(2).all(|w| w[0].cursor < w[1].cursor));
        out.extend(page);
    }
}

fn by_cursor(v: &[StoredAlert]) -> Vec<(i64, String)> {
    v.iter()
        .map(|a| (a.cursor, a.alert.alert_id.clone()))
        .collect()
}

/// Every behaviour of the alerts module, on a migrated, empty store.
pub async fn alerts_behaviour(store: &Store) {
    use AlertKind::*;
    use Severity::*;
    assert_eq!(store.last_alert_cursor().await.unwrap(), 0);
    store.create_gym("gym-al", "Alerts").await.unwrap();
    store.create_gym("gym-other", "Other").await.unwrap();
    let g = gym("gym-al");
    let all_hook = store
        .create_webhook(&g, "https://coach.example.com/hook", "all", 0)
        .await
        .unwrap();
    assert!(all_hook.secret.starts_with("whsec_") && all_hook.secret.len() == 70);
    let warn_hook = store
        .create_webhook(&g, "http://127.0.0.1:9/x", "warnings", Warning as i32)
        .await
        .unwrap();
    let other_hook = store
        .create_webhook(&gym("gym-other"), "https://other.example.com", "other", 0)
        .await
        .unwrap();
    let e = store
        .create_webhook(&gym("no-such-gym"), "https://x.example.com", "", 0)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store
        .create_webhook(&g, "ftp://x.example.com", "", 0)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::InvalidArgument { field, .. } if field == "url"),
        "{e}"
    );

    // New alerts get cursors 1.. in (time, id) order, whatever the input order; the outbox
    // gets one row per (matching webhook, alert).
    let (a1, a2) = ("a-00000000000000a1", "a-00000000000000a2");
    let batch = vec![
        alert("gym-al", a2, Fatigue, T0 + 20, Critical),
        alert("gym-al", a1, ExtensorEvents, T0 + 10, Warning),
        alert("gym-al", a1, Stability, T0 + 30, Info),
        alert("gym-al", a2, ExtensorEvents, T0 + 10, Warning),
        alert("gym-other", "a-00000000000000b1", Fatigue, T0 + 5, Info),
    ];
    let w = store.upsert_alerts(&batch).await.unwrap();
    assert_eq!(
        (w.inserted, w.updated, w.deliveries, w.last_cursor),
        (5, 0, 4 + 3 + 1, 5)
    );
    let everything = all_alerts(store, &Scope::all()).await;
    assert_eq!(
        by_cursor(&everything),
        vec![
            (1, batch[4].alert_id.clone()),
            (2, batch[1].alert_id.clone()),
            (3, batch[3].alert_id.clone()),
            (4, batch[0].alert_id.clone()),
            (5, batch[2].alert_id.clone()),
        ]
    );
    assert_eq!(everything[3].alert, batch[0], "every field round-trips");
    assert_eq!(everything[3].acknowledged_at_us, None);

    // Replays change nothing: no new cursor, no duplicate, no outbox row.
    let again = store.upsert_alerts(&batch).await.unwrap();
    assert_eq!(
        (
            again.inserted,
            again.updated,
            again.deliveries,
            again.last_cursor
        ),
        (0, 0, 0, 5)
    );
    assert_eq!(all_alerts(store, &Scope::all()).await, everything);
    // ... even when only the receive time differs (replays re-receive): the first is kept.
    let mut rereceived = batch[0].clone();
    rereceived.source_received_us += 7_000_000;
    let again = store.upsert_alerts(&[rereceived]).await.unwrap();
    assert_eq!((again.inserted, again.updated), (0, 0));
    assert_eq!(all_alerts(store, &Scope::all()).await, everything);

    // A correction keeps its cursor; new alerts continue the sequence; duplicates within a
    // call collapse to the last.
    let mut fixed = batch[1].clone();
    fixed.title = "corrected".into();
    fixed.evidence.pop();
    let late = alert("gym-al", a1, SessionEventShare, T0 - DAY, Critical);
    let newest = alert("gym-al", a2, FlareUpRisk, T0 + DAY, Warning);
    let w = store
        .upsert_alerts(&[
            batch[1].clone(),
            fixed.clone(),
            newest.clone(),
            late.clone(),
        ])
        .await
        .unwrap();
    assert_eq!((w.inserted, w.updated, w.last_cursor), (2, 1, 7));
    assert_eq!(w.deliveries, 4);
    let now_all = all_alerts(store, &Scope::all()).await;
    assert_eq!(now_all.len(), 7);
    assert_eq!(now_all[1].alert, fixed);
    assert_eq!(now_all[1].cursor, 2);
    assert_eq!(
        (now_all[5].cursor, now_all[5].alert.alert_id.as_str()),
        (6, late.alert_id.as_str()),
        "a late alert (older time) still gets the next cursor"
    );
    assert_eq!(now_all[6].alert, newest);
    assert_eq!(store.last_alert_cursor().await.unwrap(), 7);

    // Scopes, paging, filters.
    let gym_scope = Scope::gym(g.clone());
    assert_eq!(all_alerts(store, &gym_scope).await.len(), 6);
    let a1_scope = Scope::athlete(g.clone(), athlete(a1));
    let mine = all_alerts(store, &a1_scope).await;
    assert_eq!(
        mine.iter().map(|a| a.cursor).collect::<Vec<_>>(),
        vec![2, 5, 6]
    );
    let wrong_gym = Scope::athlete(gym("gym-other"), athlete(a1));
    assert!(all_alerts(store, &wrong_gym).await.is_empty());
    assert!(all_alerts(store, &Scope::none()).await.is_empty());
    let page = store
        .list_alerts(&gym_scope, &AlertQuery::after(4, 1))
        .await
        .unwrap();
    assert_eq!(by_cursor(&page), vec![(5, batch[2].alert_id.clone())]);
    let windowed = store
        .list_alerts(
            &gym_scope,
            &AlertQuery {
                from_us: T0 + 10,
                to_us: T0 + 30,
                ..AlertQuery::after(0, 100)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        windowed.iter().map(|a| a.cursor).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let pseudonymous = Scope {
        identity: false,
        ..Scope::all()
    };
    let e = store
        .list_alerts(&pseudonymous, &AlertQuery::after(0, 10))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    for limit in [0, 1001] {
        let e = store
            .list_alerts(&gym_scope, &AlertQuery::after(0, limit))
            .await
            .unwrap_err();
        assert!(matches!(&e, StoreError::InvalidArgument { field, .. } if field == "limit"));
    }

    // Acknowledgement: first one wins, survives re-upserts, filters.
    let (acked, newly) = store
        .acknowledge_alert(&batch[1].alert_id, "coach-1")
        .await
        .unwrap();
    assert!(newly);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("coach-1"));
    let at = acked.acknowledged_at_us.unwrap();
    let (again, newly) = store
        .acknowledge_alert(&batch[1].alert_id, "someone-else")
        .await
        .unwrap();
    assert!(!newly);
    assert_eq!(again.acknowledged_by.as_deref(), Some("coach-1"));
    assert_eq!(again.acknowledged_at_us, Some(at));
    store.upsert_alerts(&[batch[1].clone()]).await.unwrap();
    let got = store.get_alert(&batch[1].alert_id).await.unwrap().unwrap();
    assert_eq!(got.acknowledged_at_us, Some(at));
    assert_eq!(got.alert, batch[1], "the re-upsert restored the content");
    let unacked = store
        .list_alerts(
            &a1_scope,
            &AlertQuery {
                unacknowledged_only: true,
                ..AlertQuery::after(0, 10)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        unacked.iter().map(|a| a.cursor).collect::<Vec<_>>(),
        vec![5, 6]
    );
    let e = store.acknowledge_alert("a-1-1-123", "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(store.get_alert("a-1-1-123").await.unwrap().is_none());
    assert_eq!(
        store.get_alert("bad id").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // Invalid input is rejected before anything is written, naming field and record.
    let mut bad = alert("gym-al", a1, Fatigue, T0 + 99, Info);
    bad.evidence[1].threshold = f64::INFINITY;
    let e = store
        .upsert_alerts(&[alert("gym-al", a1, Fatigue, T0 + 98, Info), bad])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::InvalidArgument { field, index: Some(1), .. } if field == "evidence[1].threshold"),
        "{e}"
    );
    let mut bad = alert("gym-al", a1, Fatigue, T0 + 99, Info);
    bad.alert_id = "whatever".into();
    assert_eq!(
        store.upsert_alerts(&[bad]).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(store.last_alert_cursor().await.unwrap(), 7);
    let empty = store.upsert_alerts(&[]).await.unwrap();
    assert_eq!((empty.inserted, empty.last_cursor), (0, 7));

    // Risk: one row per athlete and day, monotone in time.
    let d1 = risk("gym-al", a1, "2024-03-30", T0 + 100, 0.2);
    let d2 = risk("gym-al", a1, "2024-03-31", T0 + DAY, 0.7);
    let other = risk("gym-al", a2, "2024-03-31", T0 + DAY, 0.1);
    assert_eq!(
        store
            .upsert_risk(&[d1.clone(), d2.clone(), other.clone()])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store.upsert_risk(std::slice::from_ref(&d1)).await.unwrap(),
        0
    );
    let mut older = d1.clone();
    older.time_us -= 50;
    older.probability = 0.9;
    assert_eq!(
        store.upsert_risk(&[older]).await.unwrap(),
        0,
        "older is ignored"
    );
    let mut newer = d1.clone();
    newer.time_us += 50;
    newer.probability = 0.3;
    assert_eq!(store.upsert_risk(&[newer.clone()]).await.unwrap(), 1);
    let got = store
        .risk_scores(
            &Scope::athlete(g.clone(), athlete(a1)),
            "2024-03-01",
            "2024-04-30",
        )
        .await
        .unwrap();
    assert_eq!(got, vec![newer.clone(), d2.clone()]);
    let got = store
        .risk_scores(&gym_scope, "2024-03-31", "2024-03-31")
        .await
        .unwrap();
    assert_eq!(got, vec![d2.clone(), other.clone()]);
    let e = store
        .risk_scores(&gym_scope, "2024-04-01", "2024-03-31")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = store
        .risk_scores(&gym_scope, "2023-01-01", "2024-03-31")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at most 366"), "{e}");
    let mut bad = d1.clone();
    bad.probability = f64::NAN;
    let e = store.upsert_risk(&[d1.clone(), bad]).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::InvalidArgument { field, index: Some(1), .. } if field == "probability"),
        "{e}"
    );

    // Flare-up reports: idempotent per (athlete, onset).
    let f = flareup("gym-al", a1, T0 + 2 * DAY, 6, "lower back, after deadlifts");
    assert_eq!(store.upsert_flareup(&f).await.unwrap(), f);
    let mut resent = f.clone();
    resent.reported_at_us += 1_000;
    assert_eq!(
        store.upsert_flareup(&resent).await.unwrap(),
        f,
        "an identical resend keeps the first report"
    );
    let mut worse = resent.clone();
    worse.pain = 8;
    assert_eq!(store.upsert_flareup(&worse).await.unwrap(), worse);
    let f2 = flareup("gym-al", a2, T0 + DAY, 2, "");
    store.upsert_flareup(&f2).await.unwrap();
    assert_eq!(
        store
            .flareup_reports(&gym_scope, 0, i64::MAX)
            .await
            .unwrap(),
        vec![f2.clone(), worse.clone()]
    );
    assert_eq!(
        store
            .flareup_reports(&a1_scope, T0, T0 + 2 * DAY)
            .await
            .unwrap(),
        vec![]
    );
    let mut bad = f.clone();
    bad.pain = 11;
    assert_eq!(
        store.upsert_flareup(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let mut bad = f.clone();
    bad.report_id = "x".into();
    let e = store.upsert_flareup(&bad).await.unwrap_err();
    assert!(matches!(&e, StoreError::InvalidArgument { field, .. } if field == "report_id"));

    // Webhooks: listings never carry secrets; counts; delete.
    let hooks = store.list_webhooks(&g).await.unwrap();
    assert_eq!(hooks.len(), 2);
    let by_id: HashMap<&str, &Webhook> = hooks.iter().map(|h| (h.webhook_id.as_str(), h)).collect();
    let all_row = by_id[all_hook.webhook.webhook_id.as_str()];
    assert_eq!(
        (all_row.pending, all_row.delivered, all_row.failed),
        (6, 0, 0)
    );
    assert_eq!(all_row.url, "https://coach.example.com/hook");
    assert_eq!(by_id[warn_hook.webhook.webhook_id.as_str()].pending, 5);

    // Claims: leased, fenced by attempt, delivered never again.
    // Outbox rows are due from their creation (wall clock).
    let now = wall_now() + 1_000_000;
    let claimed = store.claim_deliveries(now, now + 1_000, 100).await.unwrap();
    assert_eq!(claimed.len(), 12, "every pending row of every gym");
    assert!(claimed.iter().all(|c| c.attempt == 1));
    assert!(
        claimed
            .windows(2)
            .all(|w| w[0].alert.cursor <= w[1].alert.cursor)
    );
    let first = claimed
        .iter()
        .find(|c| c.webhook_id == all_hook.webhook.webhook_id)
        .unwrap();
    assert_eq!(first.secret, all_hook.secret);
    assert_eq!(first.url, all_hook.webhook.url);
    assert_eq!(
        first.delivery_id(),
        format!("{}/{}", first.webhook_id, first.alert.alert.alert_id)
    );
    assert!(
        store
            .claim_deliveries(now + 999, now + 2_000, 100)
            .await
            .unwrap()
            .is_empty(),
        "leased rows are not claimed twice"
    );
    let (mut ok, mut retry, mut fail) = (0, 0, 0);
    for (i, c) in claimed.iter().enumerate() {
        let id = &c.alert.alert.alert_id;
        let outcome = match i % 3 {
            0 => {
                ok += 1;
                DeliveryOutcome::Delivered { status: 204 }
            }
            1 => {
                retry += 1;
                DeliveryOutcome::Retry {
                    status: Some(503),
                    error: "HTTP 503\0 busy".into(),
                    next_attempt_us: now + 500,
                }
            }
            _ => {
                fail += 1;
                DeliveryOutcome::Failed {
                    status: None,
                    error: "connection refused".into(),
                }
            }
        };
        assert!(
            store
                .finish_delivery(&c.webhook_id, id, c.attempt, &outcome)
                .await
                .unwrap()
        );
    }
    let again = store
        .claim_deliveries(now + 500, now + 5_000, 100)
        .await
        .unwrap();
    assert_eq!(again.len(), retry, "only the retries are due");
    assert!(again.iter().all(|c| c.attempt == 2));
    // A stale report (attempt 1) does not override the newer claim.
    let c = &again[0];
    assert!(
        !store
            .finish_delivery(
                &c.webhook_id,
                &c.alert.alert.alert_id,
                1,
                &DeliveryOutcome::Failed {
                    status: None,
                    error: "late".into()
                }
            )
            .await
            .unwrap()
    );
    for c in &again {
        store
            .finish_delivery(
                &c.webhook_id,
                &c.alert.alert.alert_id,
                c.attempt,
                &DeliveryOutcome::Delivered { status: 200 },
            )
            .await
            .unwrap();
    }
    assert!(
        store
            .claim_deliveries(now + 100 * DAY, now + 101 * DAY, 100)
            .await
            .unwrap()
            .is_empty(),
        "delivered and failed rows are never claimed again"
    );
    let states = store.delivery_states(&g).await.unwrap();
    let other_states = store.delivery_states(&gym("gym-other")).await.unwrap();
    assert_eq!(states.len() + other_states.len(), 12);
    let delivered = states
        .iter()
        .chain(&other_states)
        .filter(|s| s.delivered)
        .count();
    let failed = states
        .iter()
        .chain(&other_states)
        .filter(|s| s.failed)
        .count();
    assert_eq!((delivered, failed), (ok + retry, fail));
    let retried: Vec<&DeliveryState> = states
        .iter()
        .chain(&other_states)
        .filter(|s| s.attempts == 2)
        .collect();
    assert_eq!(retried.len(), retry);
    assert!(
        retried
            .iter()
            .all(|s| s.last_status == Some(200) && s.last_error.is_none())
    );
    let failed_row = states
        .iter()
        .chain(&other_states)
        .find(|s| s.failed)
        .unwrap();
    assert_eq!(failed_row.last_error.as_deref(), Some("connection refused"));

    // Deleting a webhook: pending deliveries abandoned, no new ones, gone from listings.
    let fresh = alert("gym-al", a1, Fatigue, T0 + 3 * DAY, Critical);
    let w = store
        .upsert_alerts(std::slice::from_ref(&fresh))
        .await
        .unwrap();
    assert_eq!(w.deliveries, 2);
    assert!(
        store
            .delete_webhook(&g, &warn_hook.webhook.webhook_id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_webhook(&g, &warn_hook.webhook.webhook_id)
            .await
            .unwrap()
    );
    let e = store
        .delete_webhook(&g, &other_hook.webhook.webhook_id)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "another gym's webhook");
    let w = store
        .upsert_alerts(&[alert("gym-al", a2, Fatigue, T0 + 3 * DAY, Critical)])
        .await
        .unwrap();
    assert_eq!(w.deliveries, 1);
    let hooks = store.list_webhooks(&g).await.unwrap();
    assert_eq!(hooks.len(), 1);
    let claimed = store
        .claim_deliveries(now + 200 * DAY, now + 201 * DAY, 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|c| c.webhook_id == all_hook.webhook.webhook_id)
    );
    assert_eq!(store.pending_deliveries().await.unwrap(), 2);

    // An unknown receive time (0) round-trips as 0.
    let mut unknown = alert(
        "gym-other",
        "a-00000000000000b1",
        Fatigue,
        T0 - 2 * DAY,
        Info,
    );
    unknown.source_received_us = 0;
    store
        .upsert_alerts(std::slice::from_ref(&unknown))
        .await
        .unwrap();
    let got = store.get_alert(&unknown.alert_id).await.unwrap().unwrap();
    assert_eq!(got.alert, unknown);
}

/// What every backend must answer identically after [`load_alert_reference`].
#[derive(Debug, PartialEq)]
pub struct AlertSnapshot {
    pub alerts: Vec<(i64, AlertRecord, Option<String>, bool)>,
    pub gym_page: Vec<i64>,
    pub risk: Vec<RiskRecord>,
    pub flareups: Vec<FlareUpReport>,
    pub hooks: Vec<(String, String, i32, u64, u64, u64)>,
    pub deliveries: Vec<(String, String, u32, Option<u16>, bool, bool)>,
}

/// Deterministic alerts, risk, reports and webhooks (ids of webhooks are random: compared
/// through their descriptions).
pub async fn load_alert_reference(store: &Store) -> AlertSnapshot {
    use AlertKind::*;
    use Severity::*;
    let g = gym("ref-gym");
    let hooks = [
        store
            .create_webhook(&g, "https://a.example.com", "hook-all", 0)
            .await
            .unwrap(),
        store
            .create_webhook(
                &g,
                "https://c.example.com",
                "hook-critical",
                Critical as i32,
            )
            .await
            .unwrap(),
    ];
    let ids = [
        "a-1000000000000001",
        "a-1000000000000002",
        "a-1000000000000003",
    ];
    let kinds = [
        ExtensorEvents,
        Fatigue,
        Stability,
        SessionEventShare,
        FlareUpRisk,
    ];
    let sevs = [Info, Warning, Critical];
    let mut batches: Vec<Vec<AlertRecord>> = Vec::new();
    for b in 0..4_i64 {
        let mut v = Vec::new();
        for i in 0..15_i64 {
            let a = ids[(i % 3) as usize];
            let t = T0 + ((i * 7 + b * 3) % 20) * 3_600_000_000 + b;
            v.push(alert(
                "ref-gym",
                a,
                kinds[((i + b) % 5) as usize],
                t,
                sevs[((i * b) % 3) as usize],
            ));
        }
        // Replays of the previous batch's alerts, one of them corrected.
        if let Some(prev) = batches.last() {
            v.extend(prev.iter().take(4).cloned());
            let mut fixed = prev[5].clone();
            fixed.recommendation = "Rest two days.".into();
            v.push(fixed);
        }
        batches.push(v);
    }
    for b in &batches {
        store.upsert_alerts(b).await.unwrap();
    }
    let everything = all_alerts(store, &Scope::all()).await;
    store
        .acknowledge_alert(&everything[3].alert.alert_id, "coach")
        .await
        .unwrap();
    store
        .acknowledge_alert(&everything[10].alert.alert_id, ids[1])
        .await
        .unwrap();
    let days = ["2024-03-29", "2024-03-30", "2024-03-31", "2024-04-01"];
    let mut risks = Vec::new();
    for (k, day) in days.iter().enumerate() {
        for (j, a) in ids.iter().enumerate() {
            let p = ((k * 3 + j) as f64 * 0.071).fract();
            risks.push(risk("ref-gym", a, day, T0 + (k as i64) * DAY, p));
        }
    }
    store.upsert_risk(&risks).await.unwrap();
    store.upsert_risk(&risks[2..5]).await.unwrap();
    for (i, a) in ids.iter().enumerate() {
        store
            .upsert_flareup(&flareup(
                "ref-gym",
                a,
                T0 + i as i64 * DAY,
                i as u32 * 3,
                "sore",
            ))
            .await
            .unwrap();
    }
    let now = wall_now() + 1_000_000;
    let claimed = store.claim_deliveries(now, now + 10, 1_000).await.unwrap();
    assert!(claimed.len() > 40);
    for c in &claimed {
        // Decided by the alert, not by the (random) webhook id.
        let outcome = if c.alert.cursor % 2 == 0 {
            DeliveryOutcome::Delivered { status: 200 }
        } else {
            DeliveryOutcome::Retry {
                status: Some(500),
                error: "HTTP 500".into(),
                next_attempt_us: now + 5,
            }
        };
        store
            .finish_delivery(&c.webhook_id, &c.alert.alert.alert_id, c.attempt, &outcome)
            .await
            .unwrap();
    }
    alert_snapshot(store, &hooks.map(|h| h.webhook)).await
}

pub async fn alert_snapshot(store: &Store, hooks: &[Webhook]) -> AlertSnapshot {
    let g = gym("ref-gym");
    let names: HashMap<String, String> = hooks
        .iter()
        .map(|h| (h.webhook_id.clone(), h.description.clone()))
        .collect();
    let alerts = all_alerts(store, &Scope::all())
        .await
        .into_iter()
        .map(|a| {
            (
                a.cursor,
                a.alert,
                a.acknowledged_by,
                a.acknowledged_at_us.is_some(),
            )
        })
        .collect();
    let gym_page = store
        .list_alerts(
            &Scope::athlete(g.clone(), athlete("a-1000000000000002")),
            &AlertQuery {
                unacknowledged_only: true,
                from_us: T0 + 3_600_000_000,
                to_us: T0 + 15 * 3_600_000_000,
                ..AlertQuery::after(4, 50)
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.cursor)
        .collect();
    let risk = store
        .risk_scores(&Scope::gym(g.clone()), "2024-03-30", "2024-04-01")
        .await
        .unwrap();
    let flareups = store
        .flareup_reports(&Scope::gym(g.clone()), 0, i64::MAX)
        .await
        .unwrap();
    let mut hook_rows: Vec<(String, String, i32, u64, u64, u64)> = store
        .list_webhooks(&g)
        .await
        .unwrap()
        .into_iter()
        .map(|h| {
            (
                h.description,
                h.url,
                h.min_severity,
                h.delivered,
                h.pending,
                h.failed,
            )
        })
        .collect();
    hook_rows.sort();
    let mut deliveries: Vec<(String, String, u32, Option<u16>, bool, bool)> = store
        .delivery_states(&g)
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                names[&d.webhook_id].clone(),
                d.alert_id,
                d.attempts,
                d.last_status,
                d.delivered,
                d.failed,
            )
        })
        .collect();
    deliveries.sort();
    AlertSnapshot {
        alerts,
        gym_page,
        risk,
        flareups,
        hooks: hook_rows,
        deliveries,
    }
}
