//! Throughput of the whole per-athlete pipeline on simulated data, next to a Madgwick-only
//! pass over the same samples with the `ahrs` crate (the cost of bare orientation
//! fusion, the floor any IMU pipeline pays), and their ratio; plus the per-athlete state size.
//!
//! Run: `cargo bench -p liftguard-biomech --bench pipeline`
//! (single-threaded: the figures are sensor-samples per second per core).

use std::hint::black_box;
use std::time::{Duration, Instant};

use ahrs::{Ahrs, Madgwick};
use criterion::{Criterion, Throughput};
use liftguard_biomech::{
    AthleteParams, AthletePipeline, Capacity, Config, ImuSample, Output, SetInfo,
};
use liftguard_model::Placement;
use nalgebra::Vector3;

const BATCH: usize = 10;

struct Data {
    params: AthleteParams,
    /// (placement, batch) in arrival order.
    batches: Vec<(Placement, Vec<ImuSample>)>,
    sets: Vec<(usize, SetInfo)>,
    samples: usize,
}

fn data() -> Data {
    let seed = 2024;
    let a = liftguard_sim::random_athlete(seed, 0);
    let plan = liftguard_sim::random_session_plan(seed, &a, 10.0, 1_700_000_000_000_000);
    let s = liftguard_sim::simulate(&a, &plan, &liftguard_sim::SimOptions::default(), seed);
    let conv = |v: &[liftguard_sim::ImuSample]| -> Vec<ImuSample> {
        v.iter()
            .map(|x| ImuSample {
                t_us: x.t_us,
                acc: x.acc,
                gyro: x.gyro,
            })
            .collect()
    };
    let (t, p) = (conv(&s.thoracolumbar.samples), conv(&s.sacrum.samples));
    let (ot, op) = (s.thoracolumbar.clock_offset_us, s.sacrum.clock_offset_us);
    let mut batches = Vec::new();
    let mut sets = Vec::new();
    let mut announce: Vec<_> = s.truth.sets.iter().rev().collect();
    let (mut i, mut j) = (0, 0);
    while i < t.len() || j < p.len() {
        let take_t = match (t.get(i), p.get(j)) {
            (Some(a), Some(b)) => a.t_us - ot <= b.t_us - op,
            (Some(_), None) => true,
            _ => false,
        };
        if take_t {
            while announce
                .last()
                .is_some_and(|x| x.start_us - 3_000_000 <= t[i].t_us)
            {
                if let Some(x) = announce.pop() {
                    sets.push((
                        batches.len(),
                        SetInfo {
                            set_id: Some(x.set_id.clone()),
                            exercise: Some(x.exercise),
                            load_kg: Some(x.load_kg),
                        },
                    ));
                }
            }
            let e = (i + BATCH).min(t.len());
            batches.push((Placement::Thoracolumbar, t[i..e].to_vec()));
            i = e;
        } else {
            let e = (j + BATCH).min(p.len());
            batches.push((Placement::Sacrum, p[j..e].to_vec()));
            j = e;
        }
    }
    let params = AthleteParams {
        height_m: a.height_m,
        mass_kg: a.mass_kg,
        capacity_kg: Capacity {
            deadlift: a.capacity_kg.deadlift,
            squat: a.capacity_kg.squat,
            swing: a.capacity_kg.swing,
        },
    };
    Data {
        params,
        batches,
        sets,
        samples: t.len() + p.len(),
    }
}

/// The whole pipeline over the session; returns (outputs, largest JSON state seen).
fn pipeline(cfg: &Config, d: &Data, measure_state: bool) -> (usize, usize) {
    let mut p = AthletePipeline::new(cfg, d.params);
    let mut out: Vec<Output> = Vec::with_capacity(1024);
    let mut n = 0;
    let mut state = 0;
    let mut next_set = 0;
    for (k, (pl, b)) in d.batches.iter().enumerate() {
        while d.sets.get(next_set).is_some_and(|(at, _)| *at == k) {
            p.set_context(d.sets[next_set].1.clone());
            next_set += 1;
        }
        p.push(cfg, *pl, b, &mut out);
        n += out.len();
        out.clear();
        if measure_state && k % 500 == 0 {
            state = state.max(serde_json::to_vec(&p).map(|v| v.len()).unwrap_or(0));
        }
    }
    p.finish(cfg, &mut out);
    (n + out.len(), state)
}

/// Madgwick (ahrs crate, β = 0.1) over the same samples, one filter per sensor.
fn madgwick(d: &Data) -> f64 {
    let mut f = [Madgwick::new(0.01f64, 0.1), Madgwick::new(0.01f64, 0.1)];
    let mut acc = 0.0;
    for (pl, b) in &d.batches {
        let m = &mut f[usize::from(*pl == Placement::Sacrum)];
        for s in b {
            let g = Vector3::new(
                f64::from(s.gyro[0]),
                f64::from(s.gyro[1]),
                f64::from(s.gyro[2]),
            );
            let a = Vector3::new(
                f64::from(s.acc[0]),
                f64::from(s.acc[1]),
                f64::from(s.acc[2]),
            );
            if let Ok(q) = m.update_imu(&g, &a) {
                acc += q.w;
            }
        }
    }
    acc
}

/// Samples per second of `f` over `d`, best of a few timed runs.
fn rate(d: &Data, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed());
    }
    d.samples as f64 / best.as_secs_f64()
}

fn main() {
    let cfg = Config::default();
    let d = data();
    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("athlete");
        g.throughput(Throughput::Elements(d.samples as u64));
        g.sample_size(10);
        g.bench_function("pipeline", |b| {
            b.iter(|| black_box(pipeline(&cfg, &d, false)))
        });
        g.bench_function("madgwick_ahrs_baseline", |b| {
            b.iter(|| black_box(madgwick(&d)))
        });
        g.finish();
    }
    c.final_summary();

    let (outputs, state) = pipeline(&cfg, &d, true);
    let full = rate(&d, || {
        black_box(pipeline(&cfg, &d, false));
    });
    let base = rate(&d, || {
        black_box(madgwick(&d));
    });
    println!(
        "samples per run: {} (10-min session, both sensors, {outputs} outputs)",
        d.samples
    );
    println!(
        "whole pipeline:      {:>6.2} M sensor-samples/s per core",
        full / 1e6
    );
    println!(
        "Madgwick only (ahrs):{:>6.2} M sensor-samples/s per core",
        base / 1e6
    );
    println!(
        "ratio pipeline/Madgwick: {:.2} (pipeline costs {:.2}x a bare Madgwick pass)",
        full / base,
        base / full
    );
    println!(
        "per-athlete state: max {state} bytes serialised (JSON) during the session (limit 65536)"
    );
}
