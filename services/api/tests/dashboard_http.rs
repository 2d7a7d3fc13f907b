//! The dashboard's HTTP surface over a real socket and a real SQLite store holding a
//! generated population: the pages and assets with their security headers, the JSON API's
//! answers against the gRPC handlers they wrap, precise errors (400/401/403/404/405/412)
//! with JSON bodies naming the reason, pseudonyms for clinicians without identity, and
//! an audit row for every read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use liftguard_analytics::testing::{Population, PopulationSpec, generate, trace_chunk};
use liftguard_api::{ApiConfig, ApiService, dashboard};
use liftguard_model::{AthleteId, GymId};
use liftguard_proto::v1::{
    ListRepsRequest, PopulationTrendsRequest, TrendingAthletesRequest,
    analytics_service_server::AnalyticsService, list_reps_request, query_server::Query,
};
use liftguard_store::{MAX_TIME_US, Scope, Store, StoreOptions, TokenSubject};
use serde_json::Value;
use tonic::Request;

const OPERATOR: &str = "op-token-for-the-dashboard";
const SECRET: &str = "pseudonym-secret-for-the-dashboard-tests";

struct Harness {
    base: String,
    store: Store,
    svc: ApiService,
    pop: Population,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    async fn start(secret: Option<&str>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
        let store = Store::connect(&url, StoreOptions { max_connections: 4 })
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let pop = generate(&PopulationSpec {
            athletes_per_gym: 4,
            weeks: 5,
            ..PopulationSpec::default()
        });
        liftguard_store::testing::seed_population(&store, &pop.gyms, &pop.athletes, &pop.reps)
            .await
            .unwrap();
        // 60 s of lumbar trace for the first athlete of gym 0, from its first rep.
        let a = pop
            .athletes
            .iter()
            .find(|a| a.gym_id == pop.gyms[0])
            .unwrap();
        let first = Self::first_rep_of(&pop, &a.athlete_id);
        store
            .upsert_kinematics(&[trace_chunk(&a.gym_id, &a.athlete_id, first, 1500)])
            .await
            .unwrap();
        let svc = ApiService::new(
            ApiConfig {
                operator_token: Some(OPERATOR.into()),
                pseudonym_secret: secret.map(str::to_owned),
                // Small trace windows: the dashboard pages through them.
                max_trace_span_ms: 7_000,
                ..ApiConfig::default()
            },
            store.clone(),
            &prometheus::Registry::new(),
        );
        let (addr, fut) = dashboard::bind(
            "127.0.0.1:0".parse().unwrap(),
            svc.clone(),
            &prometheus::Registry::new(),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        let server = tokio::spawn(async move {
            let _ = fut.await;
        });
        Harness {
            base: format!("http://{addr}"),
            store,
            svc,
            pop,
            server,
            _dir: dir,
        }
    }

    fn first_rep_of(pop: &Population, athlete: &str) -> i64 {
        pop.reps
            .iter()
            .find(|r| r.athlete_id == athlete)
            .unwrap()
            .start_us
    }

    fn gym(&self, i: usize) -> GymId {
        GymId::parse(self.pop.gyms[i].clone()).unwrap()
    }

    /// The first athlete of gym `i`.
    fn athlete_of(&self, i: usize) -> &str {
        &self
            .pop
            .athletes
            .iter()
            .find(|a| a.gym_id == self.pop.gyms[i])
            .unwrap()
            .athlete_id
    }

    /// A clinician token with whole-gym consent for gym `i`.
    async fn clinician(&self, id: &str, i: usize, identity: bool) -> (String, String) {
        self.store
            .create_clinician(Some(id), "Dr Test")
            .await
            .unwrap();
        self.store
            .grant_consent(id, &self.gym(i), None, identity, "operator")
            .await
            .unwrap();
        let t = self
            .store
            .issue_token(
                &TokenSubject::Clinician(id.to_owned()),
                "t",
                MAX_TIME_US,
                "operator",
            )
            .await
            .unwrap();
        (t.secret, t.token.token_id)
    }

    async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut r = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    async fn json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let (st, h, body) = self.get(path, token).await;
        assert_eq!(
            h.get("content-type").unwrap().to_str().unwrap(),
            "application/json",
            "{path}: {body}"
        );
        assert_eq!(h.get("cache-control").unwrap(), "no-store");
        (st, serde_json::from_str(&body).unwrap())
    }
}

fn rpc<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

fn error(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap(),
        v["error"]["message"].as_str().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_assets_carry_no_data_and_strict_headers() {
    let h = Harness::start(Some(SECRET)).await;
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers().get("location").unwrap(), "/dashboard/");

    let (st, hd, shell) = h.get("/dashboard/", None).await;
    assert_eq!(st, 200);
    assert!(shell.contains("<script src=\"/dashboard/assets/app.js\" defer></script>"));
    let csp = hd.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(hd.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(hd.get("x-content-type-options").unwrap(), "nosniff");
    // Every page path returns the same shell, which holds no data.
    let athlete = h.athlete_of(0).to_owned();
    let (st, _, same) = h.get(&format!("/dashboard/athletes/{athlete}"), None).await;
    assert_eq!((st, same.as_str()), (200, shell.as_str()));
    assert!(!shell.contains(&athlete));

    for (path, ct) in [
        ("/dashboard/assets/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/assets/app.css", "text/css; charset=utf-8"),
        ("/dashboard/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (st, hd, body) = h.get(path, None).await;
        assert_eq!(st, 200, "{path}");
        assert_eq!(hd.get("content-type").unwrap(), ct);
        assert!(!body.is_empty());
    }
    let (st, _, _) = h.get("/dashboard/assets/missing.js", None).await;
    assert_eq!(st, 404);
    // The script never writes API data as HTML.
    let (_, _, js) = h.get("/dashboard/assets/app.js", None).await;
    assert!(!js.contains("innerHTML") && !js.contains("insertAdjacentHTML"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_precise_statuses_and_reasons() {
    let h = Harness::start(Some(SECRET)).await;
    // No token, a bad token, a revoked token: 401.
    let (st, body) = h.json("/api/v1/me", None).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(error(&body).0, "UNAUTHENTICATED");
    let (_, hd, _) = h.get("/api/v1/me", None).await;
    assert!(hd.get("www-authenticate").is_some());
    let (st, body) = h.json("/api/v1/trends", Some("lgt_nope_00")).await;
    assert_eq!(st, 401);
    assert!(error(&body).1.contains("unknown access token"), "{body}");
    let (revoked, token_id) = h.clinician("dr-revoked", 0, true).await;
    h.store.revoke_token(&token_id).await.unwrap();
    let (st, body) = h.json("/api/v1/me", Some(&revoked)).await;
    assert_eq!(st, 401);
    assert!(error(&body).1.contains("was revoked"), "{body}");

    // Outside the consent: 403 naming the athlete or gym.
    let (token, _) = h.clinician("dr-zero", 0, true).await;
    let other = h.athlete_of(1).to_owned();
    let (st, body) = h
        .json(&format!("/api/v1/athletes/{other}"), Some(&token))
        .await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(error(&body).0, "PERMISSION_DENIED");
    assert!(error(&body).1.contains(&other), "{body}");
    let first = Harness::first_rep_of(&h.pop, &other);
    let (st, _) = h
        .json(
            &format!(
                "/api/v1/athletes/{other}/reps?from={first}&to={}",
                first + 1
            ),
            Some(&token),
        )
        .await;
    assert_eq!(st, 403);
    let (st, body) = h
        .json(
            &format!("/api/v1/trends?gym={}", h.pop.gyms[1]),
            Some(&token),
        )
        .await;
    assert_eq!(st, 403, "{body}");

    // Unknown things: 404.
    let (st, body) = h.json("/api/v1/athletes/nobody-here", Some(OPERATOR)).await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = h.json("/api/v1/nothing", Some(OPERATOR)).await;
    assert_eq!(st, 404);
    assert!(error(&body).1.contains("/api/v1/nothing"));

    // Bad parameters: 400 naming the parameter.
    for (path, names) in [
        ("/api/v1/trends?group_by=shoe", "group_by"),
        ("/api/v1/trends?colour=red", "colour"),
        ("/api/v1/trends?exercise=bench", "exercise"),
        ("/api/v1/trends?from=yesterday", "from"),
        ("/api/v1/trending?all=maybe", "all"),
        ("/api/v1/trending?weeks=-1", "weeks"),
    ] {
        let (st, body) = h.json(path, Some(OPERATOR)).await;
        assert_eq!(st, 400, "{path}: {body}");
        assert!(error(&body).1.contains(&format!("`{names}`")), "{body}");
    }
    let (st, body) = h
        .json(&format!("/api/v1/athletes/{other}/reps"), Some(OPERATOR))
        .await;
    assert_eq!(st, 400);
    assert!(error(&body).1.contains("`from`"), "{body}");
    let (st, body) = h
        .json(
            &format!("/api/v1/athletes/{other}/reps?from=0&to=999999999999999"),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(st, 400, "{body}");

    // Writes are not offered: 405.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/trends", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // A pseudonymised caller on a server without a pseudonym key: 412.
    let bare = Harness::start(None).await;
    let (pseudo, _) = bare.clinician("dr-pseudo", 0, false).await;
    let (st, body) = bare.json("/api/v1/trends", Some(&pseudo)).await;
    assert_eq!(st, 412, "{body}");
    assert!(error(&body).1.contains("pseudonym_secret"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_equal_the_grpc_handlers_within_the_callers_scope() {
    let h = Harness::start(Some(SECRET)).await;
    let (token, _) = h.clinician("dr-zero", 0, true).await;
    let gym0 = h.pop.gyms[0].clone();

    // Trends: the same rows as PopulationTrends, the clinician's gym only.
    let (st, trends) = h
        .json("/api/v1/trends?group_by=exercise", Some(&token))
        .await;
    assert_eq!(st, 200, "{trends}");
    let direct = AnalyticsService::population_trends(
        &h.svc,
        rpc(
            PopulationTrendsRequest {
                filter: None,
                group_by: vec![liftguard_proto::v1::TrendDimension::Exercise as i32],
            },
            &token,
        ),
    )
    .await
    .unwrap()
    .into_inner();
    let rows = trends["rows"].as_array().unwrap();
    assert_eq!(rows.len(), direct.rows.len());
    for (j, d) in rows.iter().zip(&direct.rows) {
        assert_eq!(j["iso_week"], d.iso_week.as_str());
        assert_eq!(j["exercise"], d.exercise.as_str());
        assert_eq!(j["reps"], d.reps);
        assert_eq!(j["extensor_events"], d.extensor_events);
        assert_eq!(j["events_per_100_reps"].as_f64(), d.events_per_100_reps);
        assert_eq!(
            j["fatigue"]["median"].as_f64(),
            d.fatigue.as_ref().map(|f| f.median)
        );
    }
    let in_gym0 = h.pop.reps.iter().filter(|r| r.gym_id == gym0).count() as u64;
    let total: u64 = rows.iter().map(|r| r["reps"].as_u64().unwrap()).sum();
    assert_eq!(total, in_gym0, "scoped to the granted gym in SQL");
    let weeks: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["iso_week"].as_str().unwrap())
        .collect();
    assert_eq!(weeks.len(), 5);

    // Trending: the same athletes, each with its weekly points and name.
    let (_, trending) = h.json("/api/v1/trending?all=true", Some(&token)).await;
    let direct = AnalyticsService::trending_athletes(
        &h.svc,
        rpc(
            TrendingAthletesRequest {
                include_all: true,
                ..Default::default()
            },
            &token,
        ),
    )
    .await
    .unwrap()
    .into_inner();
    let listed = trending["athletes"].as_array().unwrap();
    assert_eq!(listed.len(), direct.athletes.len());
    assert!(!listed.is_empty());
    for (j, d) in listed.iter().zip(&direct.athletes) {
        assert_eq!(j["athlete_id"], d.athlete_id.as_str());
        assert_eq!(j["gym_id"], gym0.as_str());
        assert_eq!(j["trending_event_rate"], d.trending_event_rate);
        assert_eq!(j["rate_slope"].as_f64(), d.rate_slope);
        let weeks = j["weeks"].as_array().unwrap();
        assert_eq!(weeks.len() as u32, d.weeks_counted, "{j}");
        assert!(j["display_name"].as_str().is_some_and(|n| !n.is_empty()));
    }

    // One athlete: its sessions, and a span's reps and paged trace.
    let a = h.athlete_of(0).to_owned();
    let (st, athlete) = h.json(&format!("/api/v1/athletes/{a}"), Some(&token)).await;
    assert_eq!(st, 200, "{athlete}");
    let sessions = athlete["sessions"].as_array().unwrap();
    let reps_in_sessions: u64 = sessions.iter().map(|s| s["reps"].as_u64().unwrap()).sum();
    let stored = h.pop.reps.iter().filter(|r| r.athlete_id == a).count() as u64;
    assert_eq!(reps_in_sessions, stored);
    // The session holding the athlete's first rep (where the stored trace is).
    let first = Harness::first_rep_of(&h.pop, &a);
    let s0 = sessions
        .iter()
        .find(|s| {
            s["start_us"].as_i64().unwrap() <= first && first <= s["end_us"].as_i64().unwrap()
        })
        .unwrap();
    let (from, to) = (
        s0["start_us"].as_i64().unwrap(),
        s0["end_us"].as_i64().unwrap() + 1,
    );
    let (st, span) = h
        .json(
            &format!("/api/v1/athletes/{a}/reps?from={from}&to={to}&trace=true"),
            Some(&token),
        )
        .await;
    assert_eq!(st, 200, "{span}");
    let direct = Query::list_reps(
        &h.svc,
        rpc(
            ListRepsRequest {
                scope: Some(list_reps_request::Scope::AthleteId(a.clone())),
                range: Some(liftguard_proto::v1::TimeRange {
                    from_us: from,
                    to_us: to,
                }),
                limit: 10_000,
                page_token: String::new(),
            },
            &token,
        ),
    )
    .await
    .unwrap()
    .into_inner();
    let reps = span["reps"].as_array().unwrap();
    assert_eq!(reps.len(), direct.reps.len());
    assert_eq!(reps.len() as u64, s0["reps"].as_u64().unwrap());
    for (j, d) in reps.iter().zip(&direct.reps) {
        assert_eq!(j["rep_id"], d.rep_id.as_str());
        assert_eq!(j["extensor_event"], d.extensor_event);
        assert_eq!(j["evidence"].is_object(), d.evidence.is_some());
        assert_eq!(
            j["peak_lumbar_flexion_deg"].as_f64().map(|x| x as f32),
            Some(d.peak_lumbar_flexion_deg)
        );
    }
    // The trace over the span equals the store's, read in 7 s windows.
    let trace = h
        .store
        .lumbar_trace(
            &Scope::all(),
            &AthleteId::parse(a.clone()).unwrap(),
            from,
            to,
        )
        .await
        .unwrap();
    let got = span["trace"].as_array().unwrap();
    assert!(!trace.is_empty());
    assert_eq!(got.len(), trace.len());
    for (j, (t, _)) in got.iter().zip(&trace) {
        assert_eq!(j[0].as_i64().unwrap(), *t);
    }

    // Every read was audited as the clinician, refusals included.
    let other = h.athlete_of(1).to_owned();
    let (st, _) = h
        .json(&format!("/api/v1/athletes/{other}"), Some(&token))
        .await;
    assert_eq!(st, 403);
    let audit = h
        .store
        .query_audit(None, i64::MIN, i64::MAX, 1000, None)
        .await
        .unwrap()
        .entries;
    let mine: Vec<_> = audit
        .iter()
        .filter(|e| e.actor.contains("dr-zero"))
        .collect();
    for action in [
        "Analytics.PopulationTrends",
        "Analytics.TrendingAthletes",
        "Analytics.AthleteHistory",
        "Query.ListReps",
        "Query.GetLumbarTrace",
    ] {
        assert!(
            mine.iter().any(|e| e.action == action && e.status == "OK"),
            "no audit row for {action}: {mine:?}"
        );
    }
    assert!(
        mine.iter()
            .any(|e| e.action == "Analytics.AthleteHistory" && e.status == "PERMISSION_DENIED"),
        "{mine:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinicians_without_identity_see_and_use_pseudonyms_only() {
    let h = Harness::start(Some(SECRET)).await;
    let (token, _) = h.clinician("dr-pseudo", 0, false).await;
    let (st, me) = h.json("/api/v1/me", Some(&token)).await;
    assert_eq!(st, 200);
    assert_eq!(me["identity"], false);
    let (_, trending) = h.json("/api/v1/trending?all=1", Some(&token)).await;
    let listed = trending["athletes"].as_array().unwrap();
    assert!(!listed.is_empty());
    let real: Vec<&str> = h
        .pop
        .athletes
        .iter()
        .map(|a| a.athlete_id.as_str())
        .collect();
    for a in listed {
        let id = a["athlete_id"].as_str().unwrap();
        assert!(id.starts_with("p-"), "{a}");
        assert!(a.get("display_name").is_none(), "{a}");
    }
    let p = listed[0]["athlete_id"].as_str().unwrap();
    let (st, athlete) = h.json(&format!("/api/v1/athletes/{p}"), Some(&token)).await;
    assert_eq!(st, 200, "{athlete}");
    let text = athlete.to_string();
    for id in &real {
        assert!(!text.contains(id), "real id {id} in {text}");
    }
    assert_eq!(athlete["athlete"]["display_name"], "");
    // Real ids are refused: no linking oracle.
    let (st, body) = h
        .json(
            &format!("/api/v1/athletes/{}", h.athlete_of(0)),
            Some(&token),
        )
        .await;
    assert_eq!(st, 403, "{body}");
}
