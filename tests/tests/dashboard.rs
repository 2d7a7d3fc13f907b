//! The clinicians' dashboard end to end: one `liftguard run` process (in-process bus,
//! SQLite) serving the dashboard, four simulated weeks of a four-athlete gym uploaded
//! through the real front door (athlete 0's lumbar-led ascents made more likely every
//! week), clinicians created and granted consent through the Access RPCs, and Debian's
//! headless Chromium driving the pages over the DevTools protocol.
//!
//! Checked: signing in with a bad token fails (401, the reason shown); the population
//! charts show one point per simulated week with the values the API returns, and the
//! clinician's scope (3 of 4 athletes) in the totals; the trending table lists the
//! athletes the API lists, athlete 0 trending up; the athlete page shows every stored
//! rep of a session as a lumbar-trace panel with its extensor events marked; a forbidden
//! athlete gives the 403 page and none of its data; a clinician without identity sees
//! pseudonyms only. Screenshots of the main pages go to
//! `$CARGO_TARGET_DIR/dashboard-screenshots/` (printed).
#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, time::Duration};

use liftguard::gym;
use liftguard_client::{Token, UploadOptions, Uploader};
use liftguard_e2e::{Role, browser::Browser, eventually, metric_sum};
use liftguard_model::topics;
use liftguard_proto::v1 as pb;
use liftguard_proto::v1::{
    access_client::AccessClient, alert_service_client::AlertServiceClient,
    query_client::QueryClient,
};
use liftguard_sim::{SimOptions, SimSession};
use serde_json::Value;

const OPERATOR: &str = "e2e-operator-token";
const SECRET: &str = "dashboard-e2e-pseudonym-secret-0123456789";
const SLUG: &str = "dash-gym";
const SEED: u64 = 7;
const ATHLETES: u32 = 4;
const WEEKS: usize = 4;
const MINUTES: f64 = 4.0;
const WEEK_US: i64 = 7 * 86_400_000_000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Four weeks of sessions, `[week][athlete]`; athlete 0 grows more prone to lumbar-led
/// ascents every week.
fn simulate() -> Vec<Vec<SimSession>> {
    (0..WEEKS)
        .map(|w| {
            let threads: Vec<_> = (0..ATHLETES)
                .map(|i| {
                    std::thread::spawn(move || {
                        let mut a = liftguard_sim::random_athlete(SEED, i);
                        if i == 0 {
                            a.fault_propensity = 0.4 + 0.9 * w as f64;
                        }
                        let tag = SEED * 1000 + 10 * w as u64 + u64::from(i);
                        let plan = liftguard_sim::random_session_plan(
                            tag,
                            &a,
                            MINUTES,
                            liftguard::demo::SIM_START_US + w as i64 * WEEK_US,
                        );
                        liftguard_sim::simulate(&a, &plan, &SimOptions::default(), tag + 1)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
        .collect()
}

/// Uploads every athlete's weeks in order on one gateway stream per athlete, sequence
/// numbers continuing from week to week.
async fn upload(grpc: &str, key: &str, weeks: &[Vec<SimSession>]) -> anyhow::Result<()> {
    let ch = liftguard_client::connect(grpc).await?;
    let token = Token::new(key)?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ATHLETES as usize {
        let mut all = Vec::new();
        let mut next_seq = std::collections::HashMap::<String, u64>::new();
        for week in weeks {
            for mut b in gym::session_batches(SLUG, &week[i], gym::BATCH_LEN) {
                let base = next_seq.get(&b.sensor_id).copied().unwrap_or(0);
                b.seq += base;
                all.push(b);
            }
            for b in &all {
                let e = next_seq.entry(b.sensor_id.clone()).or_default();
                *e = (*e).max(b.seq);
            }
        }
        let mut up = Uploader::new(ch.clone(), token.clone(), UploadOptions::default());
        tasks.spawn(async move { up.upload(all, |_| {}).await });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r??;
        anyhow::ensure!(r.rejected.is_empty(), "rejected batches: {:?}", r.rejected);
    }
    Ok(())
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test> -> target
            let exe = std::env::current_exe().unwrap();
            exe.ancestors().nth(3).unwrap().to_path_buf()
        });
    target.join("dashboard-screenshots")
}

/// GET `{base}{path}` with a bearer token: (status, JSON body).
async fn get(base: &str, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    let body = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{path}: not JSON ({e}): {text}"))?;
    Ok((status, body))
}

/// Every stored rep of an athlete (operator view), oldest first.
async fn stored_reps(
    q: &mut QueryClient<tonic::transport::Channel>,
    op: &Token,
    athlete: &str,
) -> anyhow::Result<Vec<pb::RepRecord>> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = q
            .list_reps(op.request(pb::ListRepsRequest {
                scope: Some(pb::list_reps_request::Scope::AthleteId(athlete.to_owned())),
                range: None,
                limit: 10_000,
                page_token,
            }))
            .await?
            .into_inner();
        out.extend(page.reps);
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            x.as_f64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .collect()
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

async fn sign_in(b: &Browser, dash: &str, token: &str) -> anyhow::Result<()> {
    b.goto(&format!("{dash}/dashboard/")).await?;
    b.wait_for(
        "document.getElementById('view').dataset.state === 'login'",
        TIMEOUT,
    )
    .await?;
    b.type_into("#token", token).await?;
    b.click("#sign-in").await?;
    Ok(())
}

async fn ready(b: &Browser) -> anyhow::Result<()> {
    b.wait_for(
        "document.getElementById('view').dataset.state === 'ready'",
        TIMEOUT,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinicians_dashboard_in_headless_chromium() -> anyhow::Result<()> {
    // Fail early and clearly when the browser is missing (scripts/test.sh installs it).
    anyhow::ensure!(
        liftguard_e2e::browser::chromium_path().is_some(),
        "Chromium is needed: `apt-get install -y chromium` (scripts/test.sh does it)"
    );
    let dir = std::env::temp_dir().join(format!(
        "liftguard-dashboard-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}/liftguard.db?mode=rwc", dir.display());
    let node = Role::start(
        "run",
        &[
            "run",
            "--database",
            &url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--dashboard-addr",
            "127.0.0.1:0",
            "--operator-token",
            OPERATOR,
        ],
        &[("LIFTGUARD_PSEUDONYM_SECRET", SECRET)],
    )?;
    let grpc = node.grpc.clone().unwrap();
    let dash = node.dashboard.clone().unwrap();

    // ---- data: four weeks of a simulated gym ----
    let weeks = tokio::task::spawn_blocking(simulate).await?;
    let ch = liftguard_client::connect(&grpc).await?;
    let op = Token::new(OPERATOR)?;
    let (key, enrolled) = gym::enroll(ch.clone(), &op, SLUG, &weeks[0]).await?;
    let gym_key = Token::new(&key)?;
    upload(&grpc, &key, &weeks).await?;
    let sessions = WEEKS * ATHLETES as usize;
    eventually(
        Duration::from_secs(300),
        "every session closed and stored",
        || async {
            let m = node.metrics().await?;
            let closed = metric_sum(&m, "liftguard_processor_sessions_closed_total") as usize;
            let series = |name: &str, t: &str| {
                m.get(&format!("{name}{{topic=\"{t}\"}}"))
                    .copied()
                    .unwrap_or(0.0)
            };
            let stored = [
                topics::REPS,
                topics::KINEMATICS,
                topics::ALERTS,
                topics::RISK,
            ]
            .iter()
            .all(|t| {
                series("liftguard_sink_written_records_total", t)
                    >= series("liftguard_processor_records_total", t)
            });
            Ok(if closed == sessions && stored {
                Ok(())
            } else {
                Err(format!("{closed}/{sessions} sessions closed"))
            })
        },
    )
    .await?;

    // ---- access: two clinicians ----
    let mut access = AccessClient::new(ch.clone());
    let mut token_for = async |id: &str| -> anyhow::Result<String> {
        access
            .create_clinician(op.request(pb::CreateClinicianRequest {
                clinician_id: id.into(),
                name: format!("Dr {id}"),
            }))
            .await?;
        Ok(access
            .issue_token(op.request(pb::IssueTokenRequest {
                role: pb::Role::Clinician as i32,
                clinician_id: id.into(),
                label: "dashboard e2e".into(),
                ..Default::default()
            }))
            .await?
            .into_inner()
            .secret)
    };
    let ident = token_for("dr-ident").await?;
    let pseudo = token_for("dr-pseudo").await?;
    let gym_id = {
        let mut reg = liftguard_client::registry_client(ch.clone());
        let a = reg
            .list_athletes(op.request(pb::ListAthletesRequest {
                gym_id: SLUG.into(),
            }))
            .await?
            .into_inner()
            .athletes;
        assert_eq!(a.len(), ATHLETES as usize);
        a[0].gym_id.clone()
    };
    // dr-ident: athletes 0..=2 by name (each athlete consents with its own token), not
    // athlete 3. dr-pseudo: the whole gym (granted by the gym), no identity.
    for e in &enrolled[..3] {
        let athlete = access
            .issue_token(gym_key.request(pb::IssueTokenRequest {
                role: pb::Role::Athlete as i32,
                gym_id: gym_id.clone(),
                athlete_id: e.athlete_id.clone(),
                label: "athlete app".into(),
                ..Default::default()
            }))
            .await?
            .into_inner()
            .secret;
        access
            .grant_consent(Token::new(&athlete)?.request(pb::GrantConsentRequest {
                clinician_id: "dr-ident".into(),
                gym_id: gym_id.clone(),
                athlete_id: e.athlete_id.clone(),
                include_identity: true,
            }))
            .await?;
    }
    access
        .grant_consent(gym_key.request(pb::GrantConsentRequest {
            clinician_id: "dr-pseudo".into(),
            gym_id: gym_id.clone(),
            athlete_id: String::new(),
            include_identity: false,
        }))
        .await?;

    // Athlete 0 reports a flare-up (onset two days into week 3).
    let onset = liftguard::demo::SIM_START_US + 2 * WEEK_US + 2 * 86_400_000_000;
    AlertServiceClient::new(ch.clone())
        .report_flare_up(gym_key.request(pb::ReportFlareUpRequest {
            athlete_id: enrolled[0].athlete_id.clone(),
            onset_time_us: onset,
            pain: 5,
            note: "stiff lower back the morning after deadlifts".into(),
        }))
        .await?;

    // ---- what is stored (operator view) ----
    let mut q = QueryClient::new(ch.clone());
    let mut reps_of = Vec::new();
    for e in &enrolled {
        reps_of.push(stored_reps(&mut q, &op, &e.athlete_id).await?);
    }
    let granted_reps: usize = reps_of[..3].iter().map(Vec::len).sum();
    eprintln!(
        "stored reps per athlete: {:?}",
        reps_of.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let shots = screenshot_dir();
    let mut printed = Vec::new();
    let b = Browser::launch(1360, 900).await?;
    let shot = async |b: &Browser, name: &str, printed: &mut Vec<PathBuf>| -> anyhow::Result<()> {
        let p = shots.join(name);
        b.screenshot(&p).await?;
        printed.push(p);
        Ok(())
    };

    // ---- a bad token is refused, with the reason ----
    let (st, body) = get(&dash, "/api/v1/me", "lgt_nobody_0000").await?;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown access token"),
        "{body}"
    );
    sign_in(&b, &dash, "lgt_nobody_0000").await?;
    let msg = b
        .wait_for(
            "document.getElementById('view').dataset.state === 'login-failed' && document.getElementById('login-error').textContent",
            TIMEOUT,
        )
        .await?;
    let msg = msg.as_str().unwrap();
    assert!(
        msg.contains("401") && msg.contains("unknown access token"),
        "{msg}"
    );
    assert_eq!(
        b.eval("sessionStorage.getItem('liftguard.token')").await?,
        Value::Null,
        "a refused token is not kept"
    );
    shot(&b, "01-login-refused.png", &mut printed).await?;

    // ---- the clinician with identity: population ----
    b.type_into("#token", &ident).await?;
    b.click("#sign-in").await?;
    ready(&b).await?;
    assert_eq!(b.eval("location.pathname").await?, "/dashboard/");
    let (st, trends) = get(&dash, "/api/v1/trends", &ident).await?;
    assert_eq!(st, 200, "{trends}");
    let rows = trends["rows"].as_array().unwrap();
    // One row per simulated week (no breakdown): the simulator's truth.
    assert_eq!(rows.len(), WEEKS, "{trends}");
    let api_reps: u64 = rows.iter().map(|r| r["reps"].as_u64().unwrap()).sum();
    assert_eq!(
        api_reps as usize, granted_reps,
        "the clinician's population is its 3 granted athletes"
    );
    let chart = b
        .eval(
            "(() => { const s = document.querySelector('svg[data-chart=\"event-rate\"]');
               return { weeks: +s.dataset.weeks, series: +s.dataset.seriesCount,
                 values: [...s.querySelectorAll('circle[data-value]')].map(c => c.dataset.value),
                 kpiReps: +document.getElementById('kpis').dataset.reps,
                 boxes: [...document.querySelectorAll('svg[data-chart=\"fatigue\"] .box')].map(g => g.dataset.median) }; })()",
        )
        .await?;
    assert_eq!(chart["weeks"], WEEKS);
    assert_eq!(chart["series"], 1);
    let want: Vec<f64> = rows
        .iter()
        .map(|r| r["events_per_100_reps"].as_f64().unwrap())
        .collect();
    assert!(close(&nums(&chart["values"]), &want), "{chart} vs {want:?}");
    assert_eq!(chart["kpiReps"].as_u64().unwrap() as usize, granted_reps);
    let medians: Vec<f64> = rows
        .iter()
        .map(|r| r["fatigue"]["median"].as_f64().unwrap())
        .collect();
    assert!(close(&nums(&chart["boxes"]), &medians), "{chart}");

    // Trending: the table lists what the API lists; athlete 0 (rising propensity) is up.
    let (_, trending) = get(&dash, "/api/v1/trending?all=true", &ident).await?;
    let listed: Vec<&str> = trending["athletes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["athlete_id"].as_str().unwrap())
        .collect();
    eprintln!("trending (all): {trending}");
    b.click("#show-all").await?;
    b.wait_for(
        &format!(
            "document.getElementById('view').dataset.state === 'ready' && document.querySelectorAll('#trending-table tbody tr').length === {}",
            listed.len()
        ),
        TIMEOUT,
    )
    .await?;
    let table = b
        .eval("[...document.querySelectorAll('#trending-table tbody tr')].map(tr => [tr.dataset.athleteId, tr.dataset.trending, +tr.querySelector('svg.spark')?.dataset.points])")
        .await?;
    for (row, id) in table.as_array().unwrap().iter().zip(&listed) {
        assert_eq!(row[0], *id);
    }
    assert!(!listed.contains(&enrolled[3].athlete_id.as_str()));
    let a0 = &enrolled[0].athlete_id;
    let row0 = table
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == a0.as_str())
        .unwrap();
    assert_eq!(row0[1], "true", "athlete 0 should trend up: {trending}");
    assert_eq!(row0[2], WEEKS, "one sparkline point per week");
    shot(&b, "02-population.png", &mut printed).await?;

    // Broken down by exercise: one rate series per exercise the API gives a rate for.
    b.goto(&format!("{dash}/dashboard/?group_by=exercise&all=1"))
        .await?;
    ready(&b).await?;
    let (_, by_ex) = get(&dash, "/api/v1/trends?group_by=exercise", &ident).await?;
    // (exercises with a rate: carries are walked bouts, no ascent is judged)
    let mut exercises: Vec<&str> = by_ex["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["events_per_100_reps"].is_number())
        .map(|r| r["exercise"].as_str().unwrap())
        .collect();
    exercises.sort();
    exercises.dedup();
    let n = b
        .eval("+document.querySelector('svg[data-chart=\"event-rate\"]').dataset.seriesCount")
        .await?;
    assert_eq!(n, exercises.len(), "{exercises:?}");
    shot(&b, "03-population-by-exercise.png", &mut printed).await?;

    // ---- the athlete page: every stored rep of a session, events marked ----
    b.click(&format!("#trending-table tr[data-athlete-id=\"{a0}\"] a"))
        .await?;
    ready(&b).await?;
    assert_eq!(
        b.eval("location.pathname").await?,
        format!("/dashboard/athletes/{a0}")
    );
    let page = b
        .eval(
            "(() => { const k = document.getElementById('athlete-kpis').dataset;
               const m = document.getElementById('rep-multiples');
               return { reps: +k.reps, sessions: +k.sessions, name: document.getElementById('athlete-name').textContent,
                 sessionRows: document.querySelectorAll('#sessions-table tbody tr').length,
                 selected: document.querySelector('#sessions-table tr.selected').dataset.sessionId,
                 panels: document.querySelectorAll('#rep-multiples figure.rep').length,
                 events: document.querySelectorAll('#rep-multiples figure.rep[data-event=\"true\"]').length,
                 eventWindows: document.querySelectorAll('#rep-multiples rect.event-window').length,
                 traces: document.querySelectorAll('#rep-multiples polyline.trace').length,
                 tableRows: document.querySelectorAll('#reps-table tbody tr').length,
                 flareups: document.querySelectorAll('#flareups-list [data-report-id]').length,
                 alerts: document.querySelectorAll('#alerts-list [data-alert-id]').length,
                 tracePoints: +m.dataset.tracePoints }; })()",
        )
        .await?;
    let all0 = &reps_of[0];
    assert_eq!(
        page["reps"].as_u64().unwrap() as usize,
        all0.len(),
        "{page}"
    );
    assert_eq!(page["sessions"], WEEKS);
    assert_eq!(page["sessionRows"], WEEKS);
    assert!(page["name"].as_str().unwrap().contains("Athlete ath-0"));
    let selected = page["selected"].as_str().unwrap();
    let in_session: Vec<&pb::RepRecord> =
        all0.iter().filter(|r| r.session_id == selected).collect();
    let events = in_session.iter().filter(|r| r.extensor_event).count();
    assert!(!in_session.is_empty());
    assert_eq!(page["panels"].as_u64().unwrap() as usize, in_session.len());
    assert_eq!(
        page["tableRows"].as_u64().unwrap() as usize,
        in_session.len()
    );
    assert_eq!(page["events"].as_u64().unwrap() as usize, events);
    assert_eq!(page["eventWindows"].as_u64().unwrap() as usize, events);
    assert_eq!(page["traces"].as_u64().unwrap() as usize, in_session.len());
    assert!(page["tracePoints"].as_u64().unwrap() > 0);
    assert_eq!(page["flareups"], 1, "the reported flare-up");
    let alerts0 = AlertServiceClient::new(ch.clone())
        .list_alerts(op.request(pb::ListAlertsRequest {
            athlete_id: a0.clone(),
            limit: 1000,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .alerts;
    assert_eq!(page["alerts"].as_u64().unwrap() as usize, alerts0.len());
    eprintln!(
        "athlete 0: {} reps in {} sessions; latest session {} reps, {} events",
        all0.len(),
        WEEKS,
        in_session.len(),
        events
    );
    shot(&b, "04-athlete.png", &mut printed).await?;

    // Another session: its reps replace the panels.
    let first_session = all0[0].session_id.clone();
    b.click(&format!(
        "#sessions-table tr[data-session-id=\"{first_session}\"]"
    ))
    .await?;
    let want = all0
        .iter()
        .filter(|r| r.session_id == first_session)
        .count();
    b.wait_for(
        &format!(
            "document.getElementById('view').dataset.state === 'ready' && document.querySelector('#sessions-table tr.selected')?.dataset.sessionId === {} && document.querySelectorAll('#rep-multiples figure.rep').length === {want}",
            serde_json::to_string(&first_session)?
        ),
        TIMEOUT,
    )
    .await?;

    // ---- a forbidden athlete: the 403 page, none of its data ----
    let a3 = &enrolled[3].athlete_id;
    let (st, body) = get(&dash, &format!("/api/v1/athletes/{a3}"), &ident).await?;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(a3.as_str()),
        "{body}"
    );
    let (st, _) = get(
        &dash,
        &format!(
            "/api/v1/athletes/{a3}/reps?from={}&to={}",
            liftguard::demo::SIM_START_US,
            liftguard::demo::SIM_START_US + 3_600_000_000
        ),
        &ident,
    )
    .await?;
    assert_eq!(st, 403);
    b.goto(&format!("{dash}/dashboard/athletes/{a3}")).await?;
    b.wait_for(
        "document.getElementById('view').dataset.state === 'forbidden'",
        TIMEOUT,
    )
    .await?;
    let dom = b
        .eval("({ html: document.documentElement.outerHTML, status: document.getElementById('status-page').dataset.status, reason: document.getElementById('status-reason').textContent })")
        .await?;
    assert_eq!(dom["status"], "403");
    assert!(dom["reason"].as_str().unwrap().contains("consent"), "{dom}");
    let html = dom["html"].as_str().unwrap();
    assert!(!html.contains("data-rep-id") && !html.contains("athlete-kpis"));
    assert!(!html.contains("Athlete ath-3"));
    for r in &reps_of[3] {
        assert!(!html.contains(&r.rep_id));
    }
    shot(&b, "05-forbidden.png", &mut printed).await?;

    // Unknown athletes and endpoints: 404 with a reason.
    let (st, body) = get(&dash, "/api/v1/athletes/nobody-here", &ident).await?;
    assert_eq!(st, 404, "{body}");
    let (st, body) = get(&dash, "/api/v1/nothing", &ident).await?;
    assert_eq!(st, 404, "{body}");
    let (st, body) = get(&dash, "/api/v1/trends?group_by=shoe", &ident).await?;
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("group_by")
    );

    // ---- sign out; the clinician without identity sees pseudonyms only ----
    b.click("#sign-out").await?;
    b.wait_for(
        "document.getElementById('view').dataset.state === 'login'",
        TIMEOUT,
    )
    .await?;
    assert_eq!(
        b.eval("sessionStorage.getItem('liftguard.token')").await?,
        Value::Null
    );
    b.type_into("#token", &pseudo).await?;
    b.click("#sign-in").await?;
    ready(&b).await?;
    b.goto(&format!("{dash}/dashboard/?all=1")).await?;
    ready(&b).await?;
    let ids = b
        .eval("[...document.querySelectorAll('#trending-table tbody tr')].map(tr => tr.dataset.athleteId)")
        .await?;
    let ids: Vec<&str> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), ATHLETES as usize, "the whole gym: {ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("p-")), "{ids:?}");
    b.click("#trending-table tbody tr a").await?;
    ready(&b).await?;
    let html = b.eval("document.documentElement.outerHTML").await?;
    let html = html.as_str().unwrap();
    assert!(html.contains("pseudonym"));
    for e in &enrolled {
        assert!(
            !html.contains(&e.athlete_id),
            "real id {} in the page",
            e.athlete_id
        );
    }
    assert!(!html.contains("Athlete ath-"), "a real name in the page");
    shot(&b, "06-athlete-pseudonymised.png", &mut printed).await?;

    // ---- the operator sees every gym ----
    b.click("#sign-out").await?;
    b.wait_for(
        "document.getElementById('view').dataset.state === 'login'",
        TIMEOUT,
    )
    .await?;
    b.type_into("#token", OPERATOR).await?;
    b.click("#sign-in").await?;
    ready(&b).await?;
    let gyms = b
        .eval("[...document.querySelectorAll('#f-gym option')].map(o => o.value || o.textContent)")
        .await?;
    assert!(gyms.as_array().unwrap().iter().any(|g| g == SLUG), "{gyms}");
    let kpi = b
        .eval("+document.getElementById('kpis').dataset.reps")
        .await?;
    let all: usize = reps_of.iter().map(Vec::len).sum();
    assert_eq!(
        kpi.as_u64().unwrap() as usize,
        all,
        "the operator sees all 4 athletes"
    );

    let errors = b.page_errors();
    assert!(errors.is_empty(), "errors in the page: {errors:?}");
    for p in &printed {
        eprintln!("screenshot: {}", p.display());
    }
    drop(b);
    node.terminate(Duration::from_secs(60))?;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
