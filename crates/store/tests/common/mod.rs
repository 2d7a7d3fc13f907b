//! The behaviour suite, run against every backend by `postgres.rs`, `timescale.rs` and
//! `sqlite.rs`; deterministic data (fixed seeds).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashSet;

pub mod alerts;

use liftguard_model::{AthleteId, ErrorKind, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, ExtensorEvidence, KinematicsChunk, RepRecord};
use liftguard_store::{Backend, RepCursor, RepQuery, RepTarget, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2024-03-30T00:00:00Z: data starting here spans the March/April/May month boundaries.
pub const T0: i64 = 1_711_756_800_000_000;
pub const HOUR: i64 = 3_600_000_000;
pub const DAY: i64 = 24 * HOUR;

pub fn gym(s: &str) -> GymId {
    GymId::parse(s).unwrap()
}

pub fn athlete_input(ext: &str, name: &str) -> Athlete {
    Athlete {
        external_ref: ext.into(),
        display_name: name.into(),
        height_m: 1.80,
        mass_kg: 82.5,
        capacity_deadlift_kg: 180.0,
        capacity_squat_kg: 150.0,
        capacity_swing_kg: 32.0,
        birth_year: 1990,
        sex: "f".into(),
        training_age_years: 7,
        sport: "weightlifting".into(),
        ..Default::default()
    }
}

/// A rep with every field set to a seeded value.
pub fn rep(rng: &mut StdRng, gym: &str, athlete: &str, start_us: i64) -> RepRecord {
    let event = rng.random_bool(0.3);
    RepRecord {
        rep_id: format!("{athlete}-{start_us}"),
        gym_id: gym.into(),
        athlete_id: athlete.into(),
        set_id: format!("set-{}", start_us / HOUR),
        rep_index: rng.random_range(1..20),
        exercise: rng.random_range(1..5),
        exercise_inferred: rng.random_bool(0.5),
        load_kg: rng.random_range(20.0..220.0),
        start_us,
        end_us: start_us + 3_000_000,
        bottom_us: start_us + 1_200_000,
        concentric_start_us: start_us + 1_400_000,
        eccentric_s: rng.random_range(0.5..2.0),
        concentric_s: rng.random_range(0.5..2.0),
        peak_lumbar_flexion_deg: rng.random_range(5.0..60.0),
        peak_trunk_inclination_deg: rng.random_range(20.0..90.0),
        ldi: rng.random_range(0.0..1.0),
        peak_load_moment_nm: rng.random_range(100.0..400.0),
        extensor_event: event,
        evidence: event.then(|| ExtensorEvidence {
            peak_lumbar_ext_velocity_dps: rng.random_range(50.0..200.0),
            lumbar_share_duration_ms: rng.random_range(50.0..400.0),
            max_lumbar_share: rng.random_range(0.5..1.0),
            ldi: rng.random_range(0.5..1.0),
            onset_lag_ms: rng.random_range(-120.0..20.0),
            bottom_lumbar_flexion_deg: rng.random_range(20.0..60.0),
            peak_load_moment_nm: rng.random_range(200.0..400.0),
            top_hyperextension_deg: rng.random_range(-10.0..0.0),
        }),
        fatigue_score: rng.random_range(0.0..100.0),
        fatigue_dose: rng.random_range(0.0..100.0),
        fatigue_observed: rng.random_range(0.0..100.0),
        stability_deficit: rng.random_range(0.0..5.0),
        damage: rng.random_range(0.0..1e-3),
        cumulative_damage: rng.random_range(0.0..0.5),
        session_id: format!("sess-{}", start_us / DAY),
        clock_skew_flagged: rng.random_bool(0.05),
        source_received_us: 0,
        model_version: rng.random_range(1..4),
    }
}

/// `n` reps per athlete, 37 minutes apart starting at `t0`; several athletes share start
/// times (ties broken by athlete id).
pub fn reps_for(seed: u64, gym: &str, athletes: &[&str], n: usize, t0: i64) -> Vec<RepRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for i in 0..n {
        for a in athletes {
            out.push(rep(&mut rng, gym, a, t0 + i as i64 * 37 * 60_000_000));
        }
    }
    out
}

pub fn kin_chunk(
    seed: u64,
    gym: &str,
    athlete: &str,
    first: i64,
    rate: f32,
    n: usize,
) -> KinematicsChunk {
    let mut rng = StdRng::seed_from_u64(seed);
    KinematicsChunk {
        gym_id: gym.into(),
        athlete_id: athlete.into(),
        first_time_us: first,
        rate_hz: rate,
        lumbar_flexion_deg: (0..n).map(|_| rng.random_range(-10.0..60.0)).collect(),
        trunk_inclination_deg: (0..n).map(|_| rng.random_range(0.0..90.0)).collect(),
        pelvis_inclination_deg: (0..n).map(|_| rng.random_range(0.0..40.0)).collect(),
    }
}

pub fn kind(e: StoreError) -> ErrorKind {
    e.kind()
}

/// `SELECT count(*) FROM <table>` on any backend (table names are test constants).
pub async fn count(store: &Store, table: &'static str) -> i64 {
    let sql = match table {
        "reps" => "SELECT count(*) FROM reps",
        "kinematics" => "SELECT count(*) FROM kinematics",
        "liftguard_schema_migrations" => "SELECT count(*) FROM liftguard_schema_migrations",
        "gyms" => "SELECT count(*) FROM gyms",
        other => panic!("no count for {other}"),
    };
    if let Some(pool) = store.pg_pool() {
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
    } else {
        sqlx::query_scalar(sql)
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap()
    }
}

/// Follows `next` to the end; asserts pages are non-empty and within the limit.
pub async fn all_pages(store: &Store, mut q: RepQuery) -> Vec<RepRecord> {
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .list_reps(&liftguard_store::Scope::all(), &q)
            .await
            .unwrap();
        pages += 1;
        assert!(page.reps.len() <= q.limit as usize);
        match page.next {
            Some(c) => {
                assert_eq!(
                    page.reps.len(),
                    q.limit as usize,
                    "only full pages have a next"
                );
                // The token survives a round trip through its string form.
                q.after = Some(RepCursor::decode(&c.encode()).unwrap());
                out.extend(page.reps);
            }
            None => {
                out.extend(page.reps);
                break;
            }
        }
        assert!(pages < 10_000);
    }
    out
}

pub fn keys(reps: &[RepRecord]) -> Vec<(i64, String)> {
    reps.iter()
        .map(|r| (r.start_us, r.athlete_id.clone()))
        .collect()
}

pub fn sorted(mut reps: Vec<RepRecord>) -> Vec<RepRecord> {
    reps.sort_by(|a, b| (a.start_us, &a.athlete_id).cmp(&(b.start_us, &b.athlete_id)));
    reps
}

// ---------------------------------------------------------------------------------------
// The behaviours.
// ---------------------------------------------------------------------------------------

pub async fn migrations_are_idempotent(store: &Store, expected: Backend) {
    assert_eq!(store.migrate().await.unwrap(), expected);
    assert_eq!(store.migrate().await.unwrap(), expected);
    assert_eq!(store.backend(), expected);
    assert_eq!(
        count(store, "liftguard_schema_migrations").await as usize,
        liftguard_store::known_versions().len()
    );
    // The schema works after the second run.
    store.create_gym("mig-gym", "Migrations").await.unwrap();
    assert_eq!(count(store, "gyms").await, 1);
    assert_eq!(store.migrate().await.unwrap(), expected);
    assert_eq!(count(store, "gyms").await, 1);
}

pub async fn registry_round_trip(store: &Store) {
    let (g, created) = store.create_gym("iron-house", "Iron House").await.unwrap();
    assert!(created);
    assert_eq!(
        (g.gym_id.as_str(), g.slug.as_str(), g.name.as_str()),
        ("iron-house", "iron-house", "Iron House")
    );
    assert!(g.created_us > T0);
    let (again, created) = store.create_gym("iron-house", "Other name").await.unwrap();
    assert!(!created);
    assert_eq!(again, g, "an existing gym is returned unchanged");
    store
        .create_gym("barbell-club", "Barbell Club")
        .await
        .unwrap();
    let gyms = store.list_gyms().await.unwrap();
    assert_eq!(
        gyms.iter().map(|g| g.gym_id.as_str()).collect::<Vec<_>>(),
        ["barbell-club", "iron-house"]
    );
    assert_eq!(
        kind(store.create_gym("Bad Slug", "x").await.unwrap_err()),
        ErrorKind::InvalidArgument
    );

    let ih = gym("iron-house");
    let a = store
        .enroll_athlete(&ih, &athlete_input("m-002", "Ana"))
        .await
        .unwrap();
    assert!(
        a.athlete_id.starts_with("a-") && a.athlete_id.len() == 18,
        "{}",
        a.athlete_id
    );
    assert_eq!(a.gym_id, "iron-house");
    let expected = Athlete {
        athlete_id: a.athlete_id.clone(),
        gym_id: "iron-house".into(),
        ..athlete_input("m-002", "Ana")
    };
    assert_eq!(a, expected);
    // Enrolling again updates the data and keeps the id.
    let mut changed = athlete_input("m-002", "Ana B.");
    changed.mass_kg = 80.25;
    changed.capacity_deadlift_kg = 190.5;
    let a2 = store.enroll_athlete(&ih, &changed).await.unwrap();
    assert_eq!(a2.athlete_id, a.athlete_id);
    assert_eq!(
        (
            a2.display_name.as_str(),
            a2.mass_kg,
            a2.capacity_deadlift_kg
        ),
        ("Ana B.", 80.25, 190.5)
    );
    let b = store
        .enroll_athlete(&ih, &athlete_input("m-001", "Ben"))
        .await
        .unwrap();
    assert_ne!(b.athlete_id, a.athlete_id);
    let aid = AthleteId::parse(a.athlete_id.clone()).unwrap();
    assert_eq!(store.get_athlete(&aid).await.unwrap(), Some(a2.clone()));
    assert_eq!(
        store
            .get_athlete(&AthleteId::parse("a-nobody").unwrap())
            .await
            .unwrap(),
        None
    );
    let listed = store
        .list_athletes(&liftguard_store::Scope::all(), &ih)
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![b.clone(), a2.clone()],
        "ordered by external_ref"
    );
    assert!(
        store
            .list_athletes(&liftguard_store::Scope::all(), &gym("barbell-club"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        kind(
            store
                .list_athletes(&liftguard_store::Scope::all(), &gym("no-such-gym"))
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .enroll_athlete(&gym("no-such-gym"), &athlete_input("x", "X"))
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .enroll_athlete(&ih, &athlete_input("", "No ref"))
                .await
                .unwrap_err()
        ),
        ErrorKind::InvalidArgument
    );
    let mut nan = athlete_input("m-9", "NaN");
    nan.height_m = f32::NAN;
    assert_eq!(
        kind(store.enroll_athlete(&ih, &nan).await.unwrap_err()),
        ErrorKind::InvalidArgument
    );

    // Sensors.
    let s1 = SensorId::parse("aa:bb:cc:00:00:01").unwrap();
    let s2 = SensorId::parse("aa:bb:cc:00:00:02").unwrap();
    let sensor = store
        .register_sensor(&ih, &s1, &aid, Placement::Thoracolumbar)
        .await
        .unwrap();
    assert_eq!(
        (
            sensor.sensor_id.as_str(),
            sensor.gym_id.as_str(),
            sensor.athlete_id.as_str(),
            sensor.placement
        ),
        (
            s1.as_str(),
            "iron-house",
            aid.as_str(),
            Placement::Thoracolumbar.to_proto()
        )
    );
    // Idempotent, and the owning gym may rebind.
    assert_eq!(
        store
            .register_sensor(&ih, &s1, &aid, Placement::Thoracolumbar)
            .await
            .unwrap(),
        sensor
    );
    let bid = AthleteId::parse(b.athlete_id.clone()).unwrap();
    store
        .register_sensor(&ih, &s2, &aid, Placement::Thoracolumbar)
        .await
        .unwrap();
    let rebound = store
        .register_sensor(&ih, &s2, &bid, Placement::Sacrum)
        .await
        .unwrap();
    assert_eq!(
        (rebound.athlete_id.as_str(), rebound.placement),
        (bid.as_str(), Placement::Sacrum.to_proto())
    );
    let sensors = store
        .list_sensors(&liftguard_store::Scope::all(), &ih)
        .await
        .unwrap();
    assert_eq!(
        sensors
            .iter()
            .map(|s| s.sensor_id.as_str())
            .collect::<Vec<_>>(),
        [s1.as_str(), s2.as_str()]
    );
    let binding = store.sensor_binding(&s1).await.unwrap().unwrap();
    assert_eq!(
        (
            binding.gym_id.as_str(),
            binding.athlete_id.as_str(),
            binding.placement
        ),
        ("iron-house", aid.as_str(), Placement::Thoracolumbar)
    );
    assert_eq!(
        (
            binding.profile.height_m,
            binding.profile.mass_kg,
            binding.profile.capacity_deadlift_kg,
            binding.profile.capacity_squat_kg,
            binding.profile.capacity_swing_kg
        ),
        (1.80, 80.25, 190.5, 150.0, 32.0)
    );
    assert_eq!(
        store
            .sensor_binding(&SensorId::parse("unknown").unwrap())
            .await
            .unwrap(),
        None
    );
    // An athlete of another gym (or none) cannot be bound.
    assert_eq!(
        kind(
            store
                .register_sensor(
                    &gym("barbell-club"),
                    &SensorId::parse("bb-1").unwrap(),
                    &aid,
                    Placement::Sacrum
                )
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
}

pub async fn api_keys_authenticate_and_revoke(store: &Store) {
    let g1 = gym("key-gym-one");
    let g2 = gym("key-gym-two");
    store.create_gym(g1.as_str(), "One").await.unwrap();
    store.create_gym(g2.as_str(), "Two").await.unwrap();
    let k1 = store.issue_api_key(&g1, "front desk").await.unwrap();
    let k2 = store.issue_api_key(&g1, "gateway").await.unwrap();
    let k3 = store.issue_api_key(&g2, "").await.unwrap();
    let prefix = format!("lg_{}_", k1.key_id);
    assert!(k1.secret.starts_with(&prefix), "{}", k1.secret);
    let random = &k1.secret[prefix.len()..];
    assert_eq!(random.len(), 64);
    assert!(random.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(k1.secret, k2.secret);
    // Only the hash is stored.
    let secrets_in_db: i64 = if let Some(pool) = store.pg_pool() {
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE secret_sha256 = $1 OR label = $1")
            .bind(&k1.secret)
            .fetch_one(pool)
            .await
            .unwrap()
    } else {
        sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE secret_sha256 = $1 OR label = $1")
            .bind(&k1.secret)
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap()
    };
    assert_eq!(secrets_in_db, 0);

    assert_eq!(
        store.authenticate(&k1.secret).await.unwrap(),
        Some(g1.clone())
    );
    assert_eq!(
        store.authenticate(&k2.secret).await.unwrap(),
        Some(g1.clone())
    );
    assert_eq!(
        store.authenticate(&k3.secret).await.unwrap(),
        Some(g2.clone())
    );
    let mut tampered = k1.secret.clone();
    tampered.pop();
    tampered.push(if k1.secret.ends_with('0') { '1' } else { '0' });
    assert_eq!(store.authenticate(&tampered).await.unwrap(), None);
    assert_eq!(store.authenticate("").await.unwrap(), None);
    assert_eq!(store.authenticate("Bearer nonsense").await.unwrap(), None);

    // Another gym cannot revoke the key; unknown keys are NotFound.
    assert_eq!(
        kind(store.revoke_api_key(&g2, &k1.key_id).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .revoke_api_key(&g1, "k-0000000000000000")
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert!(store.revoke_api_key(&g1, &k1.key_id).await.unwrap());
    assert!(
        !store.revoke_api_key(&g1, &k1.key_id).await.unwrap(),
        "already revoked"
    );
    assert_eq!(store.authenticate(&k1.secret).await.unwrap(), None);
    assert_eq!(
        store.authenticate(&k2.secret).await.unwrap(),
        Some(g1.clone()),
        "other keys unaffected"
    );
    assert_eq!(
        kind(
            store
                .issue_api_key(&gym("no-such-gym"), "x")
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
}

pub async fn sensor_of_another_gym_is_rejected(store: &Store) {
    let g1 = gym("owner-gym");
    let g2 = gym("thief-gym");
    store.create_gym(g1.as_str(), "Owner").await.unwrap();
    store.create_gym(g2.as_str(), "Thief").await.unwrap();
    let a1 = store
        .enroll_athlete(&g1, &athlete_input("o-1", "Owner athlete"))
        .await
        .unwrap();
    let a2 = store
        .enroll_athlete(&g2, &athlete_input("t-1", "Thief athlete"))
        .await
        .unwrap();
    let a1 = AthleteId::parse(a1.athlete_id).unwrap();
    let a2 = AthleteId::parse(a2.athlete_id).unwrap();
    let s = SensorId::parse("imu-42").unwrap();
    store
        .register_sensor(&g1, &s, &a1, Placement::Sacrum)
        .await
        .unwrap();
    let err = store
        .register_sensor(&g2, &s, &a2, Placement::Sacrum)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let binding = store.sensor_binding(&s).await.unwrap().unwrap();
    assert_eq!(
        (binding.gym_id, binding.athlete_id),
        (g1.clone(), a1.clone()),
        "binding unchanged"
    );
    assert!(
        store
            .list_sensors(&liftguard_store::Scope::all(), &g2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_sensors(&liftguard_store::Scope::all(), &g1)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn upserts_are_idempotent(store: &Store) {
    let athletes = ["a-0000000000000001", "a-0000000000000002"];
    let reps = reps_for(7, "gym-up", &athletes, 30, T0);
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 60);
    assert_eq!(count(store, "reps").await, 60);
    let before = store
        .all_reps(&liftguard_store::Scope::all())
        .await
        .unwrap();
    assert_eq!(before, sorted(reps.clone()), "every field round-trips");
    // A replay changes nothing.
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 0);
    assert_eq!(count(store, "reps").await, 60);
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap(),
        before
    );
    // A corrected record replaces the stored one; others are untouched.
    let mut fixed = reps[5].clone();
    fixed.fatigue_score += 1.5;
    fixed.extensor_event = !fixed.extensor_event;
    fixed.evidence = match fixed.evidence {
        Some(_) => None,
        None => Some(ExtensorEvidence {
            ldi: 0.75,
            onset_lag_ms: -40.0,
            ..Default::default()
        }),
    };
    let mut fixed2 = reps[6].clone();
    fixed2.damage = 0.125;
    assert_eq!(
        store
            .upsert_reps(&[fixed.clone(), fixed2.clone(), reps[7].clone()])
            .await
            .unwrap(),
        2
    );
    assert_eq!(count(store, "reps").await, 60);
    let mut expected = reps.clone();
    expected[5] = fixed.clone();
    expected[6] = fixed2;
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap(),
        sorted(expected.clone())
    );
    // Duplicated keys within one call collapse to the last record.
    let mut last = reps[8].clone();
    last.load_kg = 99.5;
    assert_eq!(
        store
            .upsert_reps(&[reps[8].clone(), last.clone()])
            .await
            .unwrap(),
        1
    );
    expected[8] = last;
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap(),
        sorted(expected)
    );
    // A bad record is rejected before anything is written, naming field and index.
    let mut bad = reps_for(8, "gym-up", &athletes, 2, T0 + 400 * DAY);
    bad[3].ldi = f32::INFINITY;
    let err = store.upsert_reps(&bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        matches!(&err, StoreError::InvalidArgument { field, index: Some(3), .. } if field == "ldi"),
        "{err}"
    );
    bad[3].ldi = 0.5;
    bad[1].start_us = -5;
    assert_eq!(
        store.upsert_reps(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    bad[1].start_us = T0;
    bad[1].session_id = "nul\0".into();
    assert_eq!(
        store.upsert_reps(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    bad[1].session_id = "ok".into();
    bad[1].athlete_id = "not an id".into();
    assert_eq!(
        store.upsert_reps(&bad).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(count(store, "reps").await, 60);
    assert_eq!(store.upsert_reps(&[]).await.unwrap(), 0);

    // Kinematics: one row per point, replays change nothing, corrections replace.
    let c1 = kin_chunk(1, "gym-up", athletes[0], T0, 25.0, 100);
    let c2 = kin_chunk(2, "gym-up", athletes[1], T0, 30.0, 90);
    assert_eq!(
        store
            .upsert_kinematics(&[c1.clone(), c2.clone()])
            .await
            .unwrap(),
        190
    );
    assert_eq!(count(store, "kinematics").await, 190);
    assert_eq!(
        store
            .upsert_kinematics(&[c1.clone(), c2.clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(count(store, "kinematics").await, 190);
    let a0 = AthleteId::parse(athletes[0]).unwrap();
    let trace = store
        .lumbar_trace(&liftguard_store::Scope::all(), &a0, 0, i64::MAX)
        .await
        .unwrap();
    let want: Vec<(i64, f32)> = c1
        .lumbar_flexion_deg
        .iter()
        .enumerate()
        .map(|(i, v)| (T0 + i as i64 * 40_000, *v))
        .collect();
    assert_eq!(trace, want);
    // 30 Hz: offsets round to the nearest µs.
    let a1 = AthleteId::parse(athletes[1]).unwrap();
    let t1: Vec<i64> = store
        .lumbar_trace(&liftguard_store::Scope::all(), &a1, 0, i64::MAX)
        .await
        .unwrap()
        .iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(&t1[..4], &[T0, T0 + 33_333, T0 + 66_667, T0 + 100_000]);
    // An overlapping, corrected chunk: 10 points replace, 10 new ones are added.
    let mut c3 = kin_chunk(3, "gym-up", athletes[0], T0 + 90 * 40_000, 25.0, 20);
    c3.trunk_inclination_deg.clear();
    assert_eq!(
        store
            .upsert_kinematics(std::slice::from_ref(&c3))
            .await
            .unwrap(),
        20
    );
    assert_eq!(count(store, "kinematics").await, 200);
    let trace = store
        .lumbar_trace(&liftguard_store::Scope::all(), &a0, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(trace.len(), 110);
    assert_eq!(trace[95], (T0 + 95 * 40_000, c3.lumbar_flexion_deg[5]));
    assert_eq!(trace[..90], want[..90]);
    let mut bad = c1.clone();
    bad.pelvis_inclination_deg.pop();
    let err = store
        .upsert_kinematics(&[c2.clone(), bad])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidArgument { field, index: Some(1), .. } if field == "pelvis_inclination_deg"),
        "{err}"
    );
}

pub async fn pagination_visits_every_row_once(store: &Store) {
    let athletes = [
        "a-00000000000000aa",
        "a-00000000000000bb",
        "a-00000000000000cc",
    ];
    let mut reps = reps_for(11, "gym-page", &athletes, 70, T0);
    reps.extend(reps_for(12, "gym-other", &["a-00000000000000dd"], 20, T0));
    store.upsert_reps(&reps).await.unwrap();
    let gym_reps: Vec<RepRecord> = sorted(
        reps.iter()
            .filter(|r| r.gym_id == "gym-page")
            .cloned()
            .collect(),
    );
    assert_eq!(gym_reps.len(), 210);
    for limit in [1, 7, 210, 10_000] {
        let q = RepQuery {
            target: RepTarget::Gym(gym("gym-page")),
            from_us: 0,
            to_us: i64::MAX,
            events_only: false,
            limit,
            after: None,
        };
        let got = all_pages(store, q).await;
        assert_eq!(got, gym_reps, "limit {limit}");
    }
    let unique: HashSet<(i64, String)> = keys(&gym_reps).into_iter().collect();
    assert_eq!(unique.len(), 210);
    // Athlete scope and events only.
    let q = RepQuery {
        target: RepTarget::Athlete(AthleteId::parse(athletes[1]).unwrap()),
        from_us: 0,
        to_us: i64::MAX,
        events_only: true,
        limit: 4,
        after: None,
    };
    let got = all_pages(store, q).await;
    let want: Vec<RepRecord> = gym_reps
        .iter()
        .filter(|r| r.athlete_id == athletes[1] && r.extensor_event)
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    // all_reps by gym and over all gyms.
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::gym(gym("gym-page")))
            .await
            .unwrap(),
        gym_reps
    );
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::all())
            .await
            .unwrap(),
        sorted(reps.clone())
    );
    // Rows written behind the cursor are not revisited; rows ahead are found.
    let q = RepQuery {
        target: RepTarget::Gym(gym("gym-page")),
        from_us: 0,
        to_us: i64::MAX,
        events_only: false,
        limit: 100,
        after: None,
    };
    let first = store
        .list_reps(&liftguard_store::Scope::all(), &q)
        .await
        .unwrap();
    let late = reps_for(13, "gym-page", &["a-00000000000000ee"], 1, T0 + 365 * DAY);
    store.upsert_reps(&late).await.unwrap();
    let rest = all_pages(
        store,
        RepQuery {
            after: first.next.clone(),
            ..q.clone()
        },
    )
    .await;
    assert_eq!(first.reps.len() + rest.len(), 211);
    assert_eq!(rest.last(), late.last());
    // Bad requests.
    for limit in [0, 10_001] {
        let e = store
            .list_reps(
                &liftguard_store::Scope::all(),
                &RepQuery { limit, ..q.clone() },
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
    let e = store
        .list_reps(
            &liftguard_store::Scope::all(),
            &RepQuery {
                from_us: 10,
                to_us: 5,
                ..q.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        RepCursor::decode("garbage").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

pub async fn time_ranges_are_half_open(store: &Store) {
    let a = "a-0000000000000abc";
    let reps = reps_for(21, "gym-range", &[a], 10, T0); // starts T0 + k * 37 min
    store.upsert_reps(&reps).await.unwrap();
    let step = 37 * 60_000_000;
    let q = |from_us: i64, to_us: i64| RepQuery {
        target: RepTarget::Athlete(AthleteId::parse(a).unwrap()),
        from_us,
        to_us,
        events_only: false,
        limit: 100,
        after: None,
    };
    let starts = |v: Vec<RepRecord>| {
        v.iter()
            .map(|r| (r.start_us - T0) / step)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        starts(all_pages(store, q(T0 + 2 * step, T0 + 5 * step)).await),
        [2, 3, 4]
    );
    assert_eq!(
        starts(all_pages(store, q(T0 + 2 * step + 1, T0 + 5 * step + 1)).await),
        [3, 4, 5]
    );
    assert!(
        all_pages(store, q(T0 + 3 * step, T0 + 3 * step))
            .await
            .is_empty()
    );
    assert_eq!(all_pages(store, q(i64::MIN, i64::MAX)).await.len(), 10);
    assert!(all_pages(store, q(i64::MIN, 0)).await.is_empty());

    let chunk = kin_chunk(22, "gym-range", a, T0, 25.0, 50); // every 40 ms
    store
        .upsert_kinematics(std::slice::from_ref(&chunk))
        .await
        .unwrap();
    let aid = AthleteId::parse(a).unwrap();
    let tr = store
        .lumbar_trace(
            &liftguard_store::Scope::all(),
            &aid,
            T0 + 40_000,
            T0 + 200_000,
        )
        .await
        .unwrap();
    assert_eq!(
        tr.iter().map(|p| p.0).collect::<Vec<_>>(),
        [T0 + 40_000, T0 + 80_000, T0 + 120_000, T0 + 160_000]
    );
    assert_eq!(tr[0].1, chunk.lumbar_flexion_deg[1]);
    assert!(
        store
            .lumbar_trace(&liftguard_store::Scope::all(), &aid, T0 + 1, T0 + 40_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lumbar_trace(
                &liftguard_store::Scope::all(),
                &AthleteId::parse("a-other").unwrap(),
                0,
                i64::MAX
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .lumbar_trace(&liftguard_store::Scope::all(), &aid, 5, 4)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}

/// Writes bigger than one statement (chunking across the ~48 KB budget) in one call.
pub async fn large_batches_are_chunked(store: &Store) {
    let athletes: Vec<String> = (0..6).map(|i| format!("a-00000000000010{i:02}")).collect();
    let refs: Vec<&str> = athletes.iter().map(String::as_str).collect();
    let reps = reps_for(31, "gym-big", &refs, 200, T0); // 1200 reps
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 1200);
    assert_eq!(store.upsert_reps(&reps).await.unwrap(), 0);
    assert_eq!(
        store
            .all_reps(&liftguard_store::Scope::gym(gym("gym-big")))
            .await
            .unwrap(),
        sorted(reps)
    );
    let chunks: Vec<KinematicsChunk> = refs
        .iter()
        .enumerate()
        .map(|(i, a)| kin_chunk(40 + i as u64, "gym-big", a, T0, 25.0, 2000))
        .collect();
    assert_eq!(store.upsert_kinematics(&chunks).await.unwrap(), 12_000);
    assert_eq!(count(store, "kinematics").await, 12_000);
    assert_eq!(store.upsert_kinematics(&chunks).await.unwrap(), 0);
}

/// The dataset of the cross-backend comparison: registry, reps across three months,
/// kinematics; returns what every backend must answer identically.
pub async fn load_reference_data(store: &Store) -> Snapshot {
    store.create_gym("ref-gym", "Reference").await.unwrap();
    store.create_gym("ref-two", "Second").await.unwrap();
    let g = gym("ref-gym");
    let mut athletes = Vec::new();
    for (ext, name) in [("r-3", "Cy"), ("r-1", "Ada"), ("r-2", "Bo")] {
        athletes.push(
            store
                .enroll_athlete(&g, &athlete_input(ext, name))
                .await
                .unwrap(),
        );
    }
    // Fixed athlete ids for the records, so all backends hold the same keys.
    let ids = [
        "a-1000000000000001",
        "a-1000000000000002",
        "a-1000000000000003",
    ];
    let mut reps = reps_for(51, "ref-gym", &ids, 120, T0 - 10 * DAY); // ~3 days... spread below
    for (i, r) in reps.iter_mut().enumerate() {
        // Spread over ~60 days (three calendar months) with shared timestamps.
        r.start_us = T0 - 10 * DAY + (i as i64 / 3) * 12 * HOUR + (i as i64 % 2) * 1_000;
        r.end_us = r.start_us + 2_000_000;
    }
    reps.extend(reps_for(52, "ref-two", &["a-2000000000000001"], 50, T0));
    store.upsert_reps(&reps).await.unwrap();
    let chunks: Vec<KinematicsChunk> = (0..3)
        .map(|i| {
            kin_chunk(
                60 + i,
                "ref-gym",
                ids[i as usize],
                T0 + i as i64 * 31 * DAY,
                25.0,
                500,
            )
        })
        .collect();
    store.upsert_kinematics(&chunks).await.unwrap();
    snapshot(store, &ids).await
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub gyms: Vec<(String, String, String)>,
    pub athletes: Vec<Athlete>,
    pub all: Vec<RepRecord>,
    pub by_gym_pages: Vec<Vec<(i64, String)>>,
    pub events_window: Vec<RepRecord>,
    pub traces: Vec<Vec<(i64, f32)>>,
}

pub async fn snapshot(store: &Store, ids: &[&str]) -> Snapshot {
    let gyms = store
        .list_gyms()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.gym_id, g.slug, g.name))
        .collect();
    let athletes = store
        .list_athletes(&liftguard_store::Scope::all(), &gym("ref-gym"))
        .await
        .unwrap()
        .into_iter()
        .map(|a| Athlete {
            athlete_id: String::new(),
            ..a
        })
        .collect();
    let all = store
        .all_reps(&liftguard_store::Scope::all())
        .await
        .unwrap();
    let mut by_gym_pages = Vec::new();
    let mut q = RepQuery {
        target: RepTarget::Gym(gym("ref-gym")),
        from_us: T0,
        to_us: T0 + 40 * DAY,
        events_only: false,
        limit: 13,
        after: None,
    };
    loop {
        let p = store
            .list_reps(&liftguard_store::Scope::all(), &q)
            .await
            .unwrap();
        by_gym_pages.push(keys(&p.reps));
        match p.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    let events_window = all_pages(
        store,
        RepQuery {
            target: RepTarget::Athlete(AthleteId::parse(ids[1]).unwrap()),
            from_us: T0 - 5 * DAY,
            to_us: T0 + 20 * DAY,
            events_only: true,
            limit: 5,
            after: None,
        },
    )
    .await;
    let mut traces = Vec::new();
    for id in ids {
        let a = AthleteId::parse(*id).unwrap();
        traces.push(
            store
                .lumbar_trace(
                    &liftguard_store::Scope::all(),
                    &a,
                    T0 + 1_000_000,
                    T0 + 70 * DAY,
                )
                .await
                .unwrap(),
        );
    }
    Snapshot {
        gyms,
        athletes,
        all,
        by_gym_pages,
        events_window,
        traces,
    }
}

/// Runs a behaviour by name against `store` (used by the per-backend test files).
#[macro_export]
macro_rules! behaviour_tests {
    ($setup:path, $backend:expr) => {
        #[tokio::test]
        async fn migrations_are_idempotent() {
            let (store, _guard) = $setup().await;
            common::migrations_are_idempotent(&store, $backend).await;
        }
        #[tokio::test]
        async fn registry_round_trip() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::registry_round_trip(&store).await;
        }
        #[tokio::test]
        async fn api_keys_authenticate_and_revoke() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::api_keys_authenticate_and_revoke(&store).await;
        }
        #[tokio::test]
        async fn sensor_of_another_gym_is_rejected() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::sensor_of_another_gym_is_rejected(&store).await;
        }
        #[tokio::test]
        async fn upserts_are_idempotent() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::upserts_are_idempotent(&store).await;
        }
        #[tokio::test]
        async fn pagination_visits_every_row_once() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::pagination_visits_every_row_once(&store).await;
        }
        #[tokio::test]
        async fn time_ranges_are_half_open() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::time_ranges_are_half_open(&store).await;
        }
        #[tokio::test]
        async fn large_batches_are_chunked() {
            let (store, _guard) = $setup().await;
            store.migrate().await.unwrap();
            common::large_batches_are_chunked(&store).await;
        }
    };
}
