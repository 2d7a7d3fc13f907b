//! Per-athlete processing against the simulator: determinism of record ids, the
//! authoritative seq dedupe, session boundaries, and rep counts against ground truth.

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
        } = state.handle(&bio, &cfg, b);
        reps.extend(r);
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
