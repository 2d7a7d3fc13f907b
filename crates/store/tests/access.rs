//! Access control in the store (migration v5): tokens, clinicians, consent grants,
//! clinician scopes, the audit log, and scopes applied inside the query functions — the
//! same suite on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use liftguard_model::{AthleteId, ErrorKind, GymId, Placement, SensorId};
use liftguard_proto::v1::{Athlete, KinematicsChunk, RepRecord};
use liftguard_store::{
    AuditRecord, GrantFilter, RepQuery, RepTarget, Scope, Store, StoreOptions, TokenCheck,
    TokenSubject, testing::PgTestDb,
};

const T0: i64 = 1_700_000_000_000_000;

fn gym(s: &str) -> GymId {
    GymId::parse(s).unwrap()
}

fn aid(s: &str) -> AthleteId {
    AthleteId::parse(s).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn rep(g: &str, a: &str, start_us: i64) -> RepRecord {
    RepRecord {
        rep_id: format!("{a}-{start_us}"),
        gym_id: g.into(),
        athlete_id: a.into(),
        set_id: format!("{a}-s"),
        rep_index: 1,
        exercise: 1,
        start_us,
        end_us: start_us + 1_000_000,
        bottom_us: start_us + 500_000,
        concentric_start_us: start_us + 500_000,
        session_id: format!("{a}-sess"),
        model_version: 1,
        ..Default::default()
    }
}

/// gym-a with two athletes, gym-b with one; reps, kinematics and sensors for each.
async fn fixture(store: &Store) -> [String; 3] {
    store.migrate().await.unwrap();
    store.create_gym("gym-a", "A").await.unwrap();
    store.create_gym("gym-b", "B").await.unwrap();
    let mut ids = Vec::new();
    for (g, ext) in [("gym-a", "m1"), ("gym-a", "m2"), ("gym-b", "m3")] {
        let a = store
            .enroll_athlete(
                &gym(g),
                &Athlete {
                    external_ref: ext.into(),
                    height_m: 1.8,
                    mass_kg: 80.0,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .athlete_id;
        store
            .upsert_reps(&[rep(g, &a, T0), rep(g, &a, T0 + 10_000_000)])
            .await
            .unwrap();
        store
            .upsert_kinematics(&[KinematicsChunk {
                gym_id: g.into(),
                athlete_id: a.clone(),
                first_time_us: T0,
                rate_hz: 25.0,
                lumbar_flexion_deg: vec![1.0; 10],
                ..Default::default()
            }])
            .await
            .unwrap();
        store
            .register_sensor(
                &gym(g),
                &SensorId::parse(format!("S-{ext}")).unwrap(),
                &aid(&a),
                Placement::Sacrum,
            )
            .await
            .unwrap();
        ids.push(a);
    }
    ids.try_into().unwrap()
}

async fn tokens(store: &Store, [a1, _, _]: &[String; 3]) {
    let far = now() + 3_600_000_000;
    // Unknown subjects are NOT_FOUND, naming what is missing.
    let e = store
        .issue_token(&TokenSubject::Coach(gym("gym-x")), "", far, "op")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = store
        .issue_token(&TokenSubject::Athlete(gym("gym-b"), aid(a1)), "", far, "op")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("gym-b"), "{e}");
    let e = store
        .issue_token(&TokenSubject::Clinician("nobody".into()), "", far, "op")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store
        .issue_token(&TokenSubject::Coach(gym("gym-a")), "", now() - 1, "op")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);

    let t = store
        .issue_token(
            &TokenSubject::Coach(gym("gym-a")),
            "tablet",
            far,
            "gym-admin:gym-a",
        )
        .await
        .unwrap();
    assert_eq!(t.secret.len(), "lgt_".len() + 18 + 1 + 64);
    match store.check_token(&t.secret).await.unwrap() {
        TokenCheck::Valid(tok, subject) => {
            assert_eq!(tok, t.token);
            assert_eq!(subject, TokenSubject::Coach(gym("gym-a")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.check_token("lgt_t-nope_00").await.unwrap(),
        TokenCheck::Unknown
    );
    assert_eq!(
        store.check_token("lg_k").await.unwrap(),
        TokenCheck::Unknown
    );
    let listed = store
        .list_tokens(Some(&gym("gym-a")), None, false)
        .await
        .unwrap();
    assert_eq!(listed, vec![t.token.clone()]);
    assert!(
        store
            .list_tokens(Some(&gym("gym-b")), None, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.revoke_token(&t.token.token_id).await.unwrap());
    assert!(!store.revoke_token(&t.token.token_id).await.unwrap());
    assert_eq!(
        store.revoke_token("t-none").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(matches!(
        store.check_token(&t.secret).await.unwrap(),
        TokenCheck::Revoked(r) if r.revoked_us > 0
    ));
    assert!(
        store
            .list_tokens(Some(&gym("gym-a")), None, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_tokens(Some(&gym("gym-a")), None, true)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn grants_and_scopes(store: &Store, [a1, a2, b1]: &[String; 3]) {
    let (c, created) = store.create_clinician(Some("dr-a"), "Dr A").await.unwrap();
    assert!(created);
    let (again, created) = store.create_clinician(Some("dr-a"), "Other").await.unwrap();
    assert!(!created);
    assert_eq!(again, c);
    let (generated, _) = store.create_clinician(None, "Generated").await.unwrap();
    assert!(generated.clinician_id.starts_with("c-"));
    assert_eq!(
        store
            .create_clinician(Some("Bad Id"), "x")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );

    assert_eq!(store.clinician_scope("dr-a").await.unwrap(), Scope::none());
    // whole gym-a with identity
    let whole = store
        .grant_consent("dr-a", &gym("gym-a"), None, true, "gym-admin:gym-a")
        .await
        .unwrap();
    assert_eq!(
        store.clinician_scope("dr-a").await.unwrap(),
        Scope {
            gyms: Some(vec![gym("gym-a")]),
            athletes: None,
            identity: true
        }
    );
    // idempotent
    let same = store
        .grant_consent("dr-a", &gym("gym-a"), None, true, "x")
        .await
        .unwrap();
    assert_eq!(same, whole);
    // plus b1 of gym-b without identity: explicit athletes, least revealing identity
    let b = store
        .grant_consent("dr-a", &gym("gym-b"), Some(&aid(b1)), false, "athlete")
        .await
        .unwrap();
    let s = store.clinician_scope("dr-a").await.unwrap();
    let mut want = vec![aid(a1), aid(a2), aid(b1)];
    want.sort();
    assert_eq!(s.gyms, Some(vec![gym("gym-a"), gym("gym-b")]));
    assert_eq!(s.athletes, Some(want));
    assert!(!s.identity);
    // changing the identity flag replaces the grant (history kept)
    let b2 = store
        .grant_consent("dr-a", &gym("gym-b"), Some(&aid(b1)), true, "athlete")
        .await
        .unwrap();
    assert_ne!(b2.grant_id, b.grant_id);
    assert!(
        store
            .get_grant(&b.grant_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_us
            > 0
    );
    assert!(store.clinician_scope("dr-a").await.unwrap().identity);
    // an athlete of another gym cannot be granted under this gym
    assert_eq!(
        store
            .grant_consent("dr-a", &gym("gym-a"), Some(&aid(b1)), true, "x")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // filters
    let f = |g: GrantFilter| async move { store.list_grants(&g).await.unwrap() };
    assert_eq!(
        f(GrantFilter {
            clinician: Some("dr-a".into()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        f(GrantFilter {
            clinician: Some("dr-a".into()),
            include_revoked: true,
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    let covering = f(GrantFilter {
        gym: Some(gym("gym-a")),
        covering_athlete: Some(aid(a1)),
        ..Default::default()
    })
    .await;
    assert_eq!(covering, vec![whole.clone()]);
    // revocation is immediate
    assert!(
        store
            .revoke_consent(&whole.grant_id, "gym-admin:gym-a")
            .await
            .unwrap()
    );
    assert!(!store.revoke_consent(&whole.grant_id, "x").await.unwrap());
    let s = store.clinician_scope("dr-a").await.unwrap();
    assert_eq!(s.gyms, Some(vec![gym("gym-b")]));
    assert_eq!(s.athletes, Some(vec![aid(b1)]));
    let g = store.get_grant(&whole.grant_id).await.unwrap().unwrap();
    assert_eq!(g.revoked_by, "gym-admin:gym-a");
    assert_eq!(
        store
            .revoke_consent("g-none", "x")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// The existing query functions apply the scope in SQL.
async fn scoped_queries(store: &Store, [a1, a2, b1]: &[String; 3]) {
    let all = RepQuery {
        target: RepTarget::Gym(gym("gym-a")),
        from_us: 0,
        to_us: i64::MAX,
        events_only: false,
        limit: 100,
        after: None,
    };
    let athletes_of = |reps: Vec<RepRecord>| {
        let mut v: Vec<String> = reps.into_iter().map(|r| r.athlete_id).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut both = vec![a1.clone(), a2.clone()];
    both.sort();
    let page = store.list_reps(&Scope::all(), &all).await.unwrap();
    assert_eq!(athletes_of(page.reps), both);
    let only_a1 = Scope::athlete(gym("gym-a"), aid(a1));
    let page = store.list_reps(&only_a1, &all).await.unwrap();
    assert_eq!(athletes_of(page.reps), vec![a1.clone()]);
    let page = store
        .list_reps(&Scope::gym(gym("gym-b")), &all)
        .await
        .unwrap();
    assert!(
        page.reps.is_empty(),
        "a scope of gym-b sees nothing of gym-a"
    );
    assert!(
        store
            .list_reps(&Scope::none(), &all)
            .await
            .unwrap()
            .reps
            .is_empty()
    );
    assert_eq!(store.all_reps(&Scope::all()).await.unwrap().len(), 6);
    assert_eq!(
        store
            .all_reps(&Scope::gym(gym("gym-b")))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(store.all_reps(&only_a1).await.unwrap().len(), 2);
    // two gyms, explicit athletes (a clinician with mixed grants)
    let mixed = Scope {
        gyms: Some(vec![gym("gym-a"), gym("gym-b")]),
        athletes: Some(vec![aid(a2), aid(b1)]),
        identity: false,
    };
    let mut got = athletes_of(store.all_reps(&mixed).await.unwrap());
    got.sort();
    got.dedup();
    let mut want = vec![a2.clone(), b1.clone()];
    want.sort();
    assert_eq!(got, want);

    assert_eq!(
        store
            .lumbar_trace(&only_a1, &aid(a1), 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(
        store
            .lumbar_trace(&only_a1, &aid(a2), 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = store.list_athletes(&only_a1, &gym("gym-a")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].athlete_id, *a1);
    assert_eq!(
        store
            .list_athletes(&Scope::all(), &gym("gym-a"))
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .list_athletes(&Scope::none(), &gym("gym-a"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_sensors(&only_a1, &gym("gym-a"))
            .await
            .unwrap()
            .len(),
        1
    );
    let mut ids = store.athlete_ids_in_scope(&mixed).await.unwrap();
    ids.sort();
    assert_eq!(ids.len(), 2);
}

async fn audit(store: &Store) {
    for i in 0..5 {
        store
            .record_audit(&AuditRecord {
                actor: "clinician:dr-a".into(),
                role: "clinician".into(),
                token_id: Some("t-1".into()),
                gym: Some(gym(if i % 2 == 0 { "gym-a" } else { "gym-b" })),
                action: "Query.ListReps".into(),
                params: format!("i={i} {}", "x".repeat(if i == 4 { 5000 } else { 0 })),
                status: "OK".into(),
                result_count: Some(i),
                detail: String::new(),
            })
            .await
            .unwrap();
    }
    let p1 = store
        .query_audit(Some(&gym("gym-a")), 0, i64::MAX, 2, None)
        .await
        .unwrap();
    assert_eq!(p1.entries.len(), 2);
    assert!(
        p1.entries[0].audit_id > p1.entries[1].audit_id,
        "newest first"
    );
    assert!(
        p1.entries[0].params.chars().count() <= 2_001,
        "long text is cut"
    );
    let p2 = store
        .query_audit(Some(&gym("gym-a")), 0, i64::MAX, 2, p1.next_before)
        .await
        .unwrap();
    assert_eq!(p2.entries.len(), 1);
    assert_eq!(p2.next_before, None);
    assert!(
        p1.entries
            .iter()
            .chain(&p2.entries)
            .all(|e| e.gym_id == "gym-a")
    );
    let all = store
        .query_audit(None, 0, i64::MAX, 100, None)
        .await
        .unwrap();
    assert_eq!(all.entries.len(), 5);
    assert_eq!(all.entries[4].result_count, 0);
    assert_eq!(all.entries[4].token_id, "t-1");
    let none = store.query_audit(None, 0, T0, 100, None).await.unwrap();
    assert!(none.entries.is_empty(), "before any row was logged");
}

async fn suite(store: Store) {
    let ids = fixture(&store).await;
    tokens(&store, &ids).await;
    grants_and_scopes(&store, &ids).await;
    scoped_queries(&store, &ids).await;
    audit(&store).await;
}

#[tokio::test]
async fn access_on_sqlite() {
    let store = Store::connect("sqlite::memory:", StoreOptions::default())
        .await
        .unwrap();
    suite(store).await;
}

#[tokio::test]
async fn access_on_postgres() {
    let db = PgTestDb::create().await.unwrap();
    let store = Store::connect(db.url(), StoreOptions { max_connections: 4 })
        .await
        .unwrap();
    suite(store.clone()).await;
    // The CHECK binding role to subject holds even for writes that bypass the store.
    let bad = sqlx::query(
        "INSERT INTO access_tokens (token_id, role, gym_id, label, secret_sha256, issued_by, \
         created_at, expires_at) VALUES ('t-bad', 'athlete', 'gym-a', '', $1, 'x', now(), now())",
    )
    .bind("0".repeat(64))
    .execute(store.pg_pool().unwrap())
    .await;
    assert!(
        bad.is_err(),
        "an athlete token without an athlete is refused"
    );
    store.close().await;
    db.drop().await.unwrap();
}
