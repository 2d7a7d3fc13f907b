//! Speed of the simulator: a 10-athlete, 5-minute gym (the `liftguard demo` workload) and
//! one athlete's session.
use criterion::{Criterion, criterion_group, criterion_main};
use liftguard_sim::{SimOptions, random_athlete, random_session_plan, simulate, simulate_gym};

fn gym(c: &mut Criterion) {
    let opts = SimOptions::default();
    let mut g = c.benchmark_group("sim");
    g.sample_size(10);
    g.bench_function("simulate_gym_10x5min", |b| {
        b.iter(|| simulate_gym(7, 10, 5.0, 1_700_000_000_000_000, &opts))
    });
    let a = random_athlete(7, 0);
    let p = random_session_plan(7, &a, 5.0, 0);
    g.bench_function("simulate_1x5min", |b| b.iter(|| simulate(&a, &p, &opts, 7)));
    g.finish();
}

criterion_group!(benches, gym);
criterion_main!(benches);
