//! Per-athlete processing against the simulator: determinism of record ids, the
//! authoritative seq dedupe, session boundaries, rep counts against ground truth, and
//! bit-identical records whatever the arrival interleaving, the delivery delay or a
//! checkpoint/restore in between.

use liftguard_biomech::Config;
use liftguard_client::{Sample, batches_from_samples};
use liftguard_processor::{AthleteConfig, AthleteState, BatchOutput};
use liftguard_proto::v1 as pb;
use liftguard_sim::{SimOptions, SimSession};

const START_US: i64 = 1_767_603_600_000_000;

fn session(seed: u64, start_us: i64) -> SimSession {
    liftguard_sim::simulate_gym(seed, 1, 3.0, start_us, &SimOptions::default())
        .pop()
        .expect("one session")
}

/// Both sensors' batches, enriched as ingest would, merged by true time.
fn enriched(s: &SimSession, first_seq: u64) -> Vec<pb::EnrichedBatch> {
    let mut all = Vec::new();
    for rec in [&s.thoracolumbar, &s.sacrum] {
        let samples: Vec<Sample> = rec
            .samples
            .iter()
            .map(|x| Sample {
                t_us: x.t_us,
                acc: x.acc,
                gyro: x.gyro,
            })
            .collect();
        for b in batches_from_samples(&rec.sensor_id, first_seq, rec.rate_hz, &samples, 50, None) {
            let true_t = b.first_sample_time_us - rec.clock_offset_us;
            all.push((
                true_t,
                pb::EnrichedBatch {
                    gym_id: "g".into(),
                    athlete_id: "a1".into(),
                    sensor_id: b.sensor_id,
                    placement: rec.placement.to_proto(),
                    seq: b.seq,
                    first_sample_time_us: b.first_sample_time_us,
                    sample_rate_hz: b.sample_rate_hz,
                    received_time_us: true_t,
                    ax: b.ax,
                    ay: b.ay,
                    az: b.az,
                    gx: b.gx,
                    gy: b.gy,
                    gz: b.gz,
                    athlete: Some(pb::AthleteProfile {
                        height_m: s.athlete.height_m as f32,
                        mass_kg: s.athlete.mass_kg as f32,
                        capacity_deadlift_kg: s.athlete.capacity_kg.deadlift as f32,
                        capacity_squat_kg: s.athlete.capacity_kg.squat as f32,
                        capacity_swing_kg: s.athlete.capacity_kg.swing as f32,
                    }),
                    ..Default::default()
                },
            ));
        }
    }
    all.sort_by_key(|(t, _)| *t);
    all.into_iter().map(|(_, b)| b).collect()
}

fn run(
    state: &mut AthleteState,
    batches: &[pb::EnrichedBatch],
) -> (Vec<pb::RepRecord>, Vec<pb::KinematicsChunk>, usize) {
    let (bio, cfg) = (Config::default(), AthleteConfig::default());
    let mut reps = Vec::new();
    let mut kin = Vec::new();
    let mut dups = 0;
    for b in batches {
        let BatchOutput {
            reps: r,
            kinematics: k,
            duplicate,
            ..
        } = state.handle(&bio, &cfg, b);
        // The receive time stamped for latency measurement is not part of the record's
        // identity (it is not stored): compare without it.
        reps.extend(r.into_iter().map(|mut r| {
            r.source_received_us = 0;
            r
        }));
        kin.extend(k);
        dups += usize::from(duplicate);
    }
    (reps, kin, dups)
}

#[test]
fn the_same_input_gives_the_same_records_and_ids() {
    let s = session(3, START_US);
    let batches = enriched(&s, 1);
    let bio = Config::default();
    let (r1, k1, _) = run(&mut AthleteState::new(&bio, "g", "a1"), &batches);
    let (r2, k2, _) = run(&mut AthleteState::new(&bio, "g", "a1"), &batches);
    assert!(!r1.is_empty());
    assert_eq!(r1, r2);
    assert_eq!(k1, k2);
    for r in &r1 {
        assert_eq!(r.rep_id, format!("a1-{}", r.start_us));
        assert_eq!(
            r.session_id,
            format!("a1-{}", s.thoracolumbar.samples[0].t_us)
        );
    }
    let truth: usize = s.truth.sets.iter().map(|x| x.reps.len()).sum();
    assert!(
        r1.len().abs_diff(truth) <= 1,
        "{} reps vs {truth} true",
        r1.len()
    );
}

#[test]
fn resent_and_stale_batches_are_dropped_without_changing_the_output() {
    let s = session(4, START_US);
    let batches = enriched(&s, 1);
    let bio = Config::default();
    let (clean, clean_kin, _) = run(&mut AthleteState::new(&bio, "g", "a1"), &batches);
    // Every 7th batch delivered twice, and a stale one re-sent much later.
    let mut noisy = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        noisy.push(b.clone());
        if i % 7 == 0 {
            noisy.push(b.clone());
        }
        if i == 200 {
            noisy.push(batches[10].clone());
        }
    }
    let (reps, kin, dups) = run(&mut AthleteState::new(&bio, "g", "a1"), &noisy);
    assert_eq!(dups, noisy.len() - batches.len());
    assert_eq!(reps, clean);
    assert_eq!(kin, clean_kin);
}

#[test]
fn a_long_gap_starts_a_new_session_with_its_own_id() {
    let a = session(5, START_US);
    // The same athlete two hours later, sensors' seq continuing.
    let b = session(5, START_US + 2 * 3600 * 1_000_000);
    let mut batches = enriched(&a, 1);
    let next = batches.iter().map(|x| x.seq).max().unwrap_or(0) + 1;
    batches.extend(enriched(&b, next));
    let bio = Config::default();
    let (reps, _, dups) = run(&mut AthleteState::new(&bio, "g", "a1"), &batches);
    assert_eq!(dups, 0);
    let sessions: std::collections::BTreeSet<&str> =
        reps.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let (first, _, _) = run(&mut AthleteState::new(&bio, "g", "a1"), &enriched(&a, 1));
    // The first session's records are unchanged by what came after.
    assert_eq!(&reps[..first.len()], &first[..]);
}

/// Kinematics as the store keeps them: one row per point (chunk boundaries follow the
/// batches that released the points, so only the points are compared).
type Points = Vec<(i64, [u32; 3])>;

fn points(chunks: &[pb::KinematicsChunk]) -> Points {
    let mut v = Vec::new();
    for c in chunks {
        for i in 0..c.lumbar_flexion_deg.len() {
            let t = c.first_time_us + (i as f64 * 1e6 / f64::from(c.rate_hz)).round() as i64;
            v.push((
                t,
                [
                    c.lumbar_flexion_deg[i].to_bits(),
                    c.trunk_inclination_deg[i].to_bits(),
                    c.pelvis_inclination_deg[i].to_bits(),
                ],
            ));
        }
    }
    v
}

/// Everything a whole run produces, including what `finish` flushes.
fn run_all(batches: &[pb::EnrichedBatch]) -> (Vec<pb::RepRecord>, Points) {
    let (bio, cfg) = (Config::default(), AthleteConfig::default());
    let mut st = AthleteState::new(&bio, "g", "a1");
    let (mut reps, mut kin, _) = run(&mut st, batches);
    let tail = st.finish(&bio, &cfg);
    reps.extend(tail.reps.into_iter().map(|mut r| {
        r.source_received_us = 0;
        r
    }));
    kin.extend(tail.kinematics);
    (reps, points(&kin))
}

/// Reorders the batches as a delivery with one sensor lagging (by `lag` batches of the
/// other), or in seeded random bursts, would; each sensor keeps its own order.
fn reorder(batches: &[pb::EnrichedBatch], mode: u64) -> Vec<pb::EnrichedBatch> {
    let t: Vec<_> = batches
        .iter()
        .filter(|b| b.placement == 1)
        .cloned()
        .collect();
    let s: Vec<_> = batches
        .iter()
        .filter(|b| b.placement != 1)
        .cloned()
        .collect();
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut rng = mode.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while i < t.len() || j < s.len() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let take_t = match mode {
            // The sacrum 20 batches (10 s) behind.
            0 => i < j + 20,
            // The thoracolumbar sensor 30 batches (15 s) behind.
            1 => i + 30 < j,
            // Random bursts, either sensor at most 40 batches (20 s) ahead.
            _ => (rng.is_multiple_of(2) && i < j + 40) || j >= i + 40,
        };
        if (take_t && i < t.len()) || j >= s.len() {
            out.push(t[i].clone());
            i += 1;
        } else {
            out.push(s[j].clone());
            j += 1;
        }
    }
    out
}

#[test]
fn arrival_interleaving_and_delay_do_not_change_a_single_record() {
    let s = session(6, START_US);
    let batches = enriched(&s, 1);
    let (reps, kin) = run_all(&batches);
    assert!(reps.len() > 10, "{}", reps.len());
    for mode in 0..6 {
        let shuffled = reorder(&batches, mode);
        assert_eq!(shuffled.len(), batches.len());
        let (r, k) = run_all(&shuffled);
        assert_eq!(r, reps, "mode {mode}: reps differ");
        assert!(k == kin, "mode {mode}: kinematics differ");
    }
    // The whole session delivered an hour late (a synced logbook): same records.
    let late: Vec<_> = batches
        .iter()
        .map(|b| {
            let mut b = b.clone();
            b.received_time_us += 3600 * 1_000_000;
            b
        })
        .collect();
    let (r, k) = run_all(&late);
    assert_eq!(r, reps);
    assert!(k == kin, "late delivery: kinematics differ");
}

#[test]
fn a_checkpoint_restored_midway_gives_identical_records() {
    let s = session(7, START_US);
    let batches = enriched(&s, 1);
    let (reps, kin) = run_all(&batches);
    let (bio, cfg) = (Config::default(), AthleteConfig::default());
    for cut in [1, batches.len() / 3, batches.len() / 2, batches.len() - 5] {
        let mut st = AthleteState::new(&bio, "g", "a1");
        let (mut r, mut k, _) = run(&mut st, &batches[..cut]);
        let bytes = rmp_serde::to_vec_named(&st).expect("serialise");
        assert!(bytes.len() < 256 * 1024, "{} bytes", bytes.len());
        drop(st);
        let mut st: AthleteState = rmp_serde::from_slice(&bytes).expect("restore");
        let (r2, k2, _) = run(&mut st, &batches[cut..]);
        r.extend(r2);
        k.extend(k2);
        let tail = st.finish(&bio, &cfg);
        r.extend(tail.reps.into_iter().map(|mut r| {
            r.source_received_us = 0;
            r
        }));
        k.extend(tail.kinematics);
        assert_eq!(r, reps, "cut {cut}");
        assert!(points(&k) == kin, "cut {cut}: kinematics differ");
    }
}

#[test]
fn the_end_of_session_marker_closes_the_session_at_once() {
    let s = session(8, START_US);
    let mut batches = enriched(&s, 1);
    let (reps, kin) = run_all(&batches);
    // Each sensor's last batch carries the marker.
    for placement in [1, 2] {
        if let Some(b) = batches.iter_mut().rev().find(|b| b.placement == placement) {
            b.end_of_session = true;
        }
    }
    let bio = Config::default();
    let mut st = AthleteState::new(&bio, "g", "a1");
    let (r, k, _) = run(&mut st, &batches);
    assert!(!st.session_open());
    assert_eq!(r, reps);
    assert!(points(&k) == kin, "kinematics differ");
}

/// Alerts and the day's risk, through a whole session ended by its markers.
fn signals(batches: &[pb::EnrichedBatch]) -> (Vec<pb::AlertRecord>, Vec<pb::RiskRecord>) {
    let (bio, cfg) = (Config::default(), AthleteConfig::default());
    let mut st = AthleteState::new(&bio, "g", "a1");
    let (mut alerts, mut risks) = (Vec::new(), Vec::new());
    for b in batches {
        let out = st.handle(&bio, &cfg, b);
        alerts.extend(out.alerts.into_iter().map(|mut a| {
            a.source_received_us = 0;
            a
        }));
        risks.extend(out.risks);
    }
    (alerts, risks)
}

#[test]
fn alerts_and_risk_are_emitted_deterministically_at_session_end() {
    let s = session(9, START_US);
    let mut batches = enriched(&s, 1);
    for placement in [1, 2] {
        if let Some(b) = batches.iter_mut().rev().find(|b| b.placement == placement) {
            b.end_of_session = true;
        }
    }
    let (alerts, risks) = signals(&batches);
    // One risk estimate for the day, at the session's end, with its drivers.
    assert_eq!(risks.len(), 1, "{risks:?}");
    let r = &risks[0];
    assert_eq!(r.risk_id, format!("a1-{}", r.day));
    assert!((0.0..=1.0).contains(&r.probability));
    assert!(!r.drivers.is_empty());
    for a in &alerts {
        assert_eq!(
            a.alert_id,
            format!("a1-{}", a.alert_id.trim_start_matches("a1-"))
        );
        assert!(!a.recommendation.is_empty() && !a.evidence.is_empty());
    }
    // The same alerts and risk whatever the arrival interleaving.
    for mode in 0..3 {
        assert_eq!(
            signals(&reorder(&batches, mode)),
            (alerts.clone(), risks.clone()),
            "mode {mode}"
        );
    }
}
