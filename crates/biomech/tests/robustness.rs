//! No panic and no NaN/inf out, for any input: random finite (and non-finite) samples,
//! constant and saturated signals, duplicated, backwards and jumping timestamps, gaps,
//! random set contexts and re-attachments, extreme configurations.
//!
//! Reproduce: `cargo test -p liftguard-biomech --test robustness -- --nocapture`

use liftguard_biomech::{
    AthleteParams, AthletePipeline, Capacity, Config, ImuSample, Output, SetInfo,
};
use liftguard_model::{Exercise, Placement};
use proptest::prelude::*;

/// Every number in an output is finite (serde_json turns NaN/inf into null).
fn assert_finite(out: &[Output]) {
    fn walk(v: &serde_json::Value, path: &str) {
        match v {
            serde_json::Value::Null => {
                assert!(path.ends_with("set_id"), "non-finite or null at {path}")
            }
            serde_json::Value::Number(n) => {
                assert!(n.as_f64().is_some_and(f64::is_finite), "{path}: {n}");
            }
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            serde_json::Value::Object(m) => {
                m.iter().for_each(|(k, x)| walk(x, &format!("{path}.{k}")))
            }
            _ => {}
        }
    }
    for o in out {
        walk(
            &serde_json::to_value(o).expect("serialize output"),
            "output",
        );
    }
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -20.0f32..20.0,
        1 => Just(0.0f32),
        1 => prop_oneof![Just(156.9f32), Just(-156.9f32), Just(34.9f32), Just(-34.9f32)],
        1 => any::<f32>().prop_filter("finite", |x| x.is_finite()),
        1 => prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), Just(f32::MAX), Just(f32::MIN_POSITIVE)],
    ]
}

fn dt() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => Just(10_000i64),
        2 => 1i64..40_000,
        1 => Just(0i64),
        1 => -50_000i64..0,
        1 => 300_000i64..5_000_000_000,
        1 => any::<i64>(),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Push(Placement, Vec<(i64, [f32; 3], [f32; 3])>),
    Context(Option<Exercise>, Option<f64>),
    Reattach(Placement),
}

fn op() -> impl Strategy<Value = Op> {
    let placement = prop_oneof![Just(Placement::Thoracolumbar), Just(Placement::Sacrum)];
    let sample = (
        dt(),
        [value(), value(), value()],
        [value(), value(), value()],
    );
    let exercise = prop::option::of(prop_oneof![
        Just(Exercise::Deadlift),
        Just(Exercise::Squat),
        Just(Exercise::KettlebellSwing),
        Just(Exercise::Carry)
    ]);
    prop_oneof![
        8 => (placement.clone(), prop::collection::vec(sample, 0..60)).prop_map(|(p, v)| Op::Push(p, v)),
        1 => (exercise, prop::option::of(prop_oneof![0.0f64..300.0, any::<f64>()])).prop_map(|(e, l)| Op::Context(e, l)),
        1 => placement.prop_map(Op::Reattach),
    ]
}

fn run_ops(cfg: &Config, params: AthleteParams, ops: &[Op]) {
    let mut p = AthletePipeline::new(cfg, params);
    let mut out = Vec::new();
    let mut clock = [1_700_000_000_000_000i64; 2];
    for o in ops {
        match o {
            Op::Push(pl, v) => {
                let c = &mut clock[usize::from(*pl == Placement::Sacrum)];
                let samples: Vec<ImuSample> = v
                    .iter()
                    .map(|(d, acc, gyro)| {
                        *c = c.wrapping_add(*d);
                        ImuSample {
                            t_us: *c,
                            acc: *acc,
                            gyro: *gyro,
                        }
                    })
                    .collect();
                p.push(cfg, *pl, &samples, &mut out);
            }
            Op::Context(e, l) => p.set_context(SetInfo {
                set_id: None,
                exercise: *e,
                load_kg: *l,
            }),
            Op::Reattach(pl) => p.reattached(*pl),
        }
    }
    p.finish(cfg, &mut out);
    assert_finite(&out);
    // The state still serialises and restores.
    let bytes = serde_json::to_vec(&p).expect("serialize state");
    let _: AthletePipeline = serde_json::from_slice(&bytes).expect("restore state");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_panic_no_nan_for_any_input(ops in prop::collection::vec(op(), 0..40),
                                     h in prop_oneof![Just(0.0f64), 1.0f64..2.2, any::<f64>()],
                                     m in prop_oneof![Just(0.0f64), 40.0f64..150.0, any::<f64>()]) {
        let params = AthleteParams { height_m: h, mass_kg: m, capacity_kg: Capacity { deadlift: m, squat: 0.0, swing: -1.0 } };
        run_ops(&Config::default(), params, &ops);
    }

    #[test]
    fn no_panic_with_extreme_configurations(ops in prop::collection::vec(op(), 0..20),
                                            grid in prop_oneof![Just(f64::NAN), 0.0f64..1e6],
                                            ring in prop_oneof![Just(-1.0f64), 0.0f64..1e9],
                                            kp in any::<f64>()) {
        let mut cfg = Config { grid_rate_hz: grid, ..Config::default() };
        cfg.align.ring_s = ring;
        cfg.fusion.kp = kp;
        run_ops(&cfg, AthleteParams::default(), &ops);
    }
}

/// Long constant, saturated and gappy signals on both sensors.
#[test]
fn constant_saturated_and_gappy_signals() {
    let cfg = Config::default();
    let mut p = AthletePipeline::new(&cfg, AthleteParams::default());
    let mut out = Vec::new();
    let mut t = 1_700_000_000_000_000i64;
    for k in 0..30_000u32 {
        t += 10_000;
        let phase = k / 5_000;
        let (acc, gyro) = match phase {
            0 => ([0.0, 0.0, 9.81], [0.0; 3]), // constant, quiet
            1 => ([156.9, -156.9, 156.9], [34.9, 34.9, -34.9]), // saturated
            2 => ([0.0; 3], [0.0; 3]),         // free fall / dead sensor
            3 => ([9.81, 0.0, 0.0], [(k as f32 * 0.01).sin() * 2.0, 0.0, 0.0]),
            _ => ([0.0, 9.81, 0.0], [0.0; 3]),
        };
        if k % 997 < 30 {
            continue; // gaps
        }
        let s = [ImuSample { t_us: t, acc, gyro }];
        p.push(&cfg, Placement::Thoracolumbar, &s, &mut out);
        let s = [ImuSample {
            t_us: t + 123_456,
            acc,
            gyro,
        }];
        p.push(&cfg, Placement::Sacrum, &s, &mut out);
    }
    p.finish(&cfg, &mut out);
    assert_finite(&out);
    eprintln!(
        "ROBUSTNESS constant/saturated/gappy: {} outputs, all finite",
        out.len()
    );
}
