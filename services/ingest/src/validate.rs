//! Validation of one `SampleBatch`: pure, no I/O, no clock (the receive time is passed in).
//!
//! Invariants:
//! - A batch that passes is safe for the processor: a well-formed sensor id, `seq > 0`,
//!   six columns of equal length `1..=max_samples`, every value finite and within the
//!   sensor's physical range, a sample rate in `25..=400` Hz, device times that are
//!   plausible (not before `min_device_time_us`, the last sample not more than
//!   `max_future_us` ahead of the receive time), a sane set context.
//! - A failing batch gets exactly one [`Reject`] naming the first offending field
//!   (`ax[17]`, `seq`, `sample_rate_hz`, ...), in a fixed check order, so one corruption is
//!   always reported against the field that was corrupted.
//! - Code choice: a malformed value (missing, empty, not finite, mismatched lengths, bad
//!   id) is `INVALID_ARGUMENT`; a well-formed number outside the physically accepted
//!   window (|a| > 16 g, |w| > 2000 °/s, rate outside 25..=400 Hz, device time implausible
//!   or too far in the future) is `OUT_OF_RANGE`.
//! - Old device times are accepted (backfill of sensor logbooks is legitimate). A device
//!   clock ahead of the receive time by more than `skew_flag_us` (but within
//!   `max_future_us`) is accepted and flagged in [`Checked::skew_ahead_us`], never fixed.
//! - Per-sensor progress (seq order, time continuity, dedupe) is not checked here; see
//!   [`crate::progress`].

use std::hash::{DefaultHasher, Hash, Hasher};

use liftguard_model::{ErrorKind, Exercise, SensorId};
use liftguard_proto::v1::SampleBatch;

/// Standard gravity, m/s².
pub const G: f32 = 9.80665;

/// Accepted bounds of one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_samples: usize,
    pub min_rate_hz: f32,
    pub max_rate_hz: f32,
    /// Per accelerometer component, m/s² (16 g).
    pub max_accel_ms2: f32,
    /// Per gyroscope component, rad/s (2000 °/s).
    pub max_gyro_rads: f32,
    /// The last sample may be at most this far ahead of the receive time.
    pub max_future_us: i64,
    /// A device clock ahead by more than this is flagged (not rejected).
    pub skew_flag_us: i64,
    /// Device times before this are implausible (an unset clock), µs since the epoch.
    pub min_device_time_us: i64,
    pub max_set_id_len: usize,
    pub max_load_kg: f32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_samples: 2000,
            min_rate_hz: 25.0,
            max_rate_hz: 400.0,
            // A sensor at full scale reports exactly the limit; allow float rounding of
            // the unit conversion (0.1 %).
            max_accel_ms2: 16.0 * G * 1.001,
            max_gyro_rads: 2000.0_f32.to_radians() * 1.001,
            max_future_us: 60_000_000,
            skew_flag_us: 2_000_000,
            // 2015-01-01T00:00:00Z
            min_device_time_us: 1_420_070_400_000_000,
            max_set_id_len: 128,
            max_load_kg: 1000.0,
        }
    }
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub kind: ErrorKind,
    /// The offending field (`gx[17]`, `seq`, ...), empty when there is none.
    pub field: String,
    pub reason: String,
}

impl Reject {
    pub fn new(kind: ErrorKind, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            kind,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field without an index (`gx[17]` -> `gx`), for metric labels of bounded
    /// cardinality.
    pub fn field_label(&self) -> &str {
        self.field.split('[').next().unwrap_or("")
    }
}

/// What validation learned about a good batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub sensor: SensorId,
    pub samples: usize,
    /// Device time of the last sample.
    pub last_sample_us: i64,
    /// Device time just after the last sample (`first + n * period`): where the next
    /// batch of a continuous recording starts.
    pub end_us: i64,
    /// `Some(ahead)` when the device clock is ahead of the receive time by more than the
    /// flag bound.
    pub skew_ahead_us: Option<i64>,
}

/// The column names in wire order.
pub const COLUMNS: [&str; 6] = ["ax", "ay", "az", "gx", "gy", "gz"];

pub fn columns(b: &SampleBatch) -> [&[f32]; 6] {
    [&b.ax, &b.ay, &b.az, &b.gx, &b.gy, &b.gz]
}

/// Validates `b` received at `received_time_us` (server clock, µs since the epoch).
pub fn validate(
    b: &SampleBatch,
    limits: &Limits,
    received_time_us: i64,
) -> Result<Checked, Reject> {
    use ErrorKind::{InvalidArgument, OutOfRange};

    let sensor = SensorId::parse(b.sensor_id.as_str())
        .map_err(|e| Reject::new(InvalidArgument, "sensor_id", e.to_string()))?;
    if b.seq == 0 {
        return Err(Reject::new(
            InvalidArgument,
            "seq",
            "seq must be > 0 (per-sensor, strictly increasing, starting at 1)",
        ));
    }

    let cols = columns(b);
    let n = cols[0].len();
    if n == 0 {
        return Err(Reject::new(
            InvalidArgument,
            "ax",
            "the batch has no samples",
        ));
    }
    for (name, col) in COLUMNS.iter().zip(cols.iter()).skip(1) {
        if col.len() != n {
            return Err(Reject::new(
                InvalidArgument,
                *name,
                format!(
                    "{name} has {} samples but ax has {n}; all six columns must have the same length",
                    col.len()
                ),
            ));
        }
    }
    if n > limits.max_samples {
        return Err(Reject::new(
            InvalidArgument,
            "ax",
            format!(
                "{n} samples per batch exceeds the maximum of {}",
                limits.max_samples
            ),
        ));
    }

    let rate = b.sample_rate_hz;
    if !rate.is_finite() {
        return Err(Reject::new(
            InvalidArgument,
            "sample_rate_hz",
            format!("sample_rate_hz is {rate}, not a finite number"),
        ));
    }
    if !(limits.min_rate_hz..=limits.max_rate_hz).contains(&rate) {
        return Err(Reject::new(
            OutOfRange,
            "sample_rate_hz",
            format!(
                "sample_rate_hz {rate} is outside {}..={} Hz",
                limits.min_rate_hz, limits.max_rate_hz
            ),
        ));
    }

    let first = b.first_sample_time_us;
    if first < limits.min_device_time_us {
        return Err(Reject::new(
            OutOfRange,
            "first_sample_time_us",
            format!(
                "first_sample_time_us {first} is before {} (2015-01-01): the device clock is not set",
                limits.min_device_time_us
            ),
        ));
    }
    let period_us = 1e6 / f64::from(rate);
    // n <= max_samples and rate >= 25 Hz: the duration is small; saturate anyway.
    let span_last = ((n - 1) as f64 * period_us).round() as i64;
    let span_end = (n as f64 * period_us).round() as i64;
    let last_sample_us = first.saturating_add(span_last);
    let end_us = first.saturating_add(span_end);
    let ahead = last_sample_us.saturating_sub(received_time_us);
    if ahead > limits.max_future_us {
        return Err(Reject::new(
            OutOfRange,
            "first_sample_time_us",
            format!(
                "the batch's last sample ({last_sample_us} µs) is {:.3} s ahead of the server receive time ({received_time_us} µs); at most {:.3} s is accepted",
                ahead as f64 / 1e6,
                limits.max_future_us as f64 / 1e6
            ),
        ));
    }

    for (c, (name, col)) in COLUMNS.iter().zip(cols.iter()).enumerate() {
        let (limit, unit, what) = if c < 3 {
            (limits.max_accel_ms2, "m/s²", "16 g")
        } else {
            (limits.max_gyro_rads, "rad/s", "2000 °/s")
        };
        for (i, v) in col.iter().enumerate() {
            if !v.is_finite() {
                return Err(Reject::new(
                    InvalidArgument,
                    format!("{name}[{i}]"),
                    format!("{name}[{i}] is {v}, not a finite number"),
                ));
            }
            if v.abs() > limit {
                return Err(Reject::new(
                    OutOfRange,
                    format!("{name}[{i}]"),
                    format!(
                        "{name}[{i}] = {v} {unit} exceeds the sensor range ±{what} (±{limit:.3} {unit})"
                    ),
                ));
            }
        }
    }

    if let Some(set) = &b.set {
        if set.set_id.chars().count() > limits.max_set_id_len {
            return Err(Reject::new(
                InvalidArgument,
                "set.set_id",
                format!(
                    "set.set_id is longer than {} characters",
                    limits.max_set_id_len
                ),
            ));
        }
        if let Some(ch) = set.set_id.chars().find(|c| c.is_control()) {
            return Err(Reject::new(
                InvalidArgument,
                "set.set_id",
                format!("set.set_id contains the control character {ch:?}"),
            ));
        }
        if set.exercise != 0 && Exercise::from_proto(set.exercise).is_none() {
            return Err(Reject::new(
                InvalidArgument,
                "set.exercise",
                format!("set.exercise {} is not a known Exercise", set.exercise),
            ));
        }
        if !set.load_kg.is_finite() {
            return Err(Reject::new(
                InvalidArgument,
                "set.load_kg",
                format!("set.load_kg is {}, not a finite number", set.load_kg),
            ));
        }
        if !(0.0..=limits.max_load_kg).contains(&set.load_kg) {
            return Err(Reject::new(
                OutOfRange,
                "set.load_kg",
                format!(
                    "set.load_kg {} is outside 0..={} kg",
                    set.load_kg, limits.max_load_kg
                ),
            ));
        }
    }

    Ok(Checked {
        sensor,
        samples: n,
        last_sample_us,
        end_us,
        skew_ahead_us: (ahead > limits.skew_flag_us).then_some(ahead),
    })
}

/// A 64-bit fingerprint of everything the client sent in `b` (float columns by bit
/// pattern), to tell a resend from a different batch reusing a seq. Deterministic within
/// a process, which is all the in-memory dedupe window needs.
pub fn content_hash(b: &SampleBatch) -> u64 {
    let mut h = DefaultHasher::new();
    b.sensor_id.hash(&mut h);
    b.seq.hash(&mut h);
    b.first_sample_time_us.hash(&mut h);
    b.sample_rate_hz.to_bits().hash(&mut h);
    for col in columns(b) {
        col.len().hash(&mut h);
        for v in col {
            v.to_bits().hash(&mut h);
        }
    }
    match &b.set {
        None => 0u8.hash(&mut h),
        Some(s) => {
            1u8.hash(&mut h);
            s.set_id.hash(&mut h);
            s.exercise.hash(&mut h);
            s.load_kg.to_bits().hash(&mut h);
        }
    }
    b.reattached.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use liftguard_proto::v1::SetContext;
    use proptest::prelude::*;
    use prost::Message;

    const NOW: i64 = 1_750_000_000_000_000;

    fn batch(n: usize) -> SampleBatch {
        SampleBatch {
            sensor_id: "aa:bb:cc:01".into(),
            seq: 1,
            first_sample_time_us: NOW - 10_000_000,
            sample_rate_hz: 100.0,
            ax: vec![0.1; n],
            ay: vec![0.2; n],
            az: vec![G; n],
            gx: vec![0.01; n],
            gy: vec![0.02; n],
            gz: vec![0.03; n],
            set: Some(SetContext {
                set_id: "set-1".into(),
                exercise: 1,
                load_kg: 100.0,
            }),
            reattached: false,
            end_of_session: false,
        }
    }

    fn reject(b: &SampleBatch) -> Reject {
        validate(b, &Limits::default(), NOW).unwrap_err()
    }

    #[test]
    fn a_good_batch_passes_with_its_times() {
        let c = validate(&batch(100), &Limits::default(), NOW).unwrap();
        assert_eq!(c.samples, 100);
        assert_eq!(c.last_sample_us, NOW - 10_000_000 + 990_000);
        assert_eq!(c.end_us, NOW - 10_000_000 + 1_000_000);
        assert_eq!(c.skew_ahead_us, None);
    }

    #[test]
    fn each_rule_names_its_field_and_code() {
        use ErrorKind::*;
        let mut b = batch(10);
        b.sensor_id = "bad id".into();
        assert_eq!(
            (reject(&b).kind, reject(&b).field.as_str()),
            (InvalidArgument, "sensor_id")
        );

        let mut b = batch(10);
        b.seq = 0;
        assert_eq!(reject(&b).field, "seq");

        let mut b = batch(10);
        b.gy.pop();
        let r = reject(&b);
        assert_eq!((r.kind, r.field.as_str()), (InvalidArgument, "gy"));
        assert!(
            r.reason.contains("gy has 9 samples but ax has 10"),
            "{}",
            r.reason
        );

        let r = reject(&batch(0));
        assert_eq!((r.kind, r.field.as_str()), (InvalidArgument, "ax"));

        let r = reject(&batch(2001));
        assert_eq!((r.kind, r.field.as_str()), (InvalidArgument, "ax"));
        assert!(r.reason.contains("2001") && r.reason.contains("2000"));
        assert!(validate(&batch(2000), &Limits::default(), NOW).is_ok());

        let mut b = batch(20);
        b.gx[17] = f32::NAN;
        let r = reject(&b);
        assert_eq!((r.kind, r.field.as_str()), (InvalidArgument, "gx[17]"));
        assert_eq!(r.field_label(), "gx");

        let mut b = batch(20);
        b.ax[3] = 17.0 * G;
        let r = reject(&b);
        assert_eq!((r.kind, r.field.as_str()), (OutOfRange, "ax[3]"));
        let mut b = batch(20);
        b.ax[3] = -16.0 * G; // exactly full scale is fine
        b.gz[4] = -2000f32.to_radians();
        assert!(validate(&b, &Limits::default(), NOW).is_ok());
        b.gz[4] = 2100f32.to_radians();
        assert_eq!(reject(&b).field, "gz[4]");

        for (rate, kind) in [
            (24.9, OutOfRange),
            (401.0, OutOfRange),
            (f32::INFINITY, InvalidArgument),
        ] {
            let mut b = batch(10);
            b.sample_rate_hz = rate;
            let r = reject(&b);
            assert_eq!((r.kind, r.field.as_str()), (kind, "sample_rate_hz"));
        }

        let mut b = batch(10);
        b.first_sample_time_us = 0;
        let r = reject(&b);
        assert_eq!(
            (r.kind, r.field.as_str()),
            (OutOfRange, "first_sample_time_us")
        );

        let mut b = batch(10);
        b.set.as_mut().unwrap().exercise = 99;
        assert_eq!(reject(&b).field, "set.exercise");
        let mut b = batch(10);
        b.set.as_mut().unwrap().load_kg = -1.0;
        assert_eq!(reject(&b).field, "set.load_kg");
    }

    #[test]
    fn future_times_are_rejected_beyond_the_bound_and_flagged_within_it() {
        let l = Limits::default();
        let mut b = batch(100); // 0.99 s from first to last sample
        b.first_sample_time_us = NOW + 5_000_000;
        let c = validate(&b, &l, NOW).unwrap();
        assert_eq!(c.skew_ahead_us, Some(5_990_000));
        b.first_sample_time_us = NOW + l.max_future_us - 990_000;
        assert!(validate(&b, &l, NOW).is_ok());
        b.first_sample_time_us += 1;
        let r = validate(&b, &l, NOW).unwrap_err();
        assert_eq!(
            (r.kind, r.field.as_str()),
            (ErrorKind::OutOfRange, "first_sample_time_us")
        );
        // very old data (a logbook synced a year later) is fine and not flagged
        b.first_sample_time_us = NOW - 365 * 86_400 * 1_000_000;
        assert_eq!(validate(&b, &l, NOW).unwrap().skew_ahead_us, None);
        // extreme values do not overflow
        b.first_sample_time_us = i64::MAX;
        assert_eq!(
            validate(&b, &l, NOW).unwrap_err().field,
            "first_sample_time_us"
        );
    }

    #[test]
    fn content_hash_sees_every_field() {
        let b = batch(10);
        let h = content_hash(&b);
        assert_eq!(h, content_hash(&b.clone()));
        let mut c = b.clone();
        c.gz[9] = 0.031;
        assert_ne!(h, content_hash(&c));
        let mut c = b.clone();
        c.reattached = true;
        assert_ne!(h, content_hash(&c));
        let mut c = b.clone();
        c.set = None;
        assert_ne!(h, content_hash(&c));
        // columns are length-delimited in the hash: moving a value between columns differs
        let mut c = b.clone();
        let v = c.ax.pop().unwrap();
        c.ay.insert(0, v);
        assert_ne!(h, content_hash(&c));
    }

    // ---- property tests -------------------------------------------------------------

    fn arb_value(limit: f32) -> impl Strategy<Value = f32> {
        -limit..=limit
    }

    prop_compose! {
        fn arb_valid()(n in 1usize..=300, rate in 25.0f32..=400.0,
                       age_us in 0i64..=400 * 86_400 * 1_000_000,
                       seq in 1u64..=u64::MAX, id in "[A-Za-z0-9:_.-]{1,64}",
                       exercise in 0i32..=4, load in 0.0f32..=1000.0, set_id in "[a-z0-9-]{0,40}",
                       with_set in any::<bool>(), reattached in any::<bool>())
            (cols in prop::collection::vec(
                (arb_value(16.0 * G), arb_value(16.0 * G), arb_value(16.0 * G),
                 arb_value(34.9), arb_value(34.9), arb_value(34.9)), n),
             rate in Just(rate), age_us in Just(age_us), seq in Just(seq), id in Just(id),
             exercise in Just(exercise), load in Just(load), set_id in Just(set_id),
             with_set in Just(with_set), reattached in Just(reattached))
            -> SampleBatch
        {
            SampleBatch {
                sensor_id: id,
                seq,
                first_sample_time_us: NOW - age_us,
                sample_rate_hz: rate,
                ax: cols.iter().map(|c| c.0).collect(),
                ay: cols.iter().map(|c| c.1).collect(),
                az: cols.iter().map(|c| c.2).collect(),
                gx: cols.iter().map(|c| c.3).collect(),
                gy: cols.iter().map(|c| c.4).collect(),
                gz: cols.iter().map(|c| c.5).collect(),
                set: with_set.then_some(SetContext { set_id, exercise, load_kg: load }),
                reattached,
                end_of_session: false,
            }
        }
    }

    /// One corruption: which column/index, and which kind of bad value.
    #[derive(Debug, Clone)]
    enum Corruption {
        Value {
            col: usize,
            idx: usize,
            bad: f32,
            expect: ErrorKind,
        },
        Length {
            col: usize,
        },
        Seq,
        SensorId(String),
        Rate(f32, ErrorKind),
        Future,
        Ancient,
    }

    fn arb_corruption() -> impl Strategy<Value = Corruption> {
        prop_oneof![
            (
                0usize..6,
                any::<prop::sample::Index>(),
                prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]
            )
                .prop_map(|(col, i, bad)| Corruption::Value {
                    col,
                    idx: i.index(1 << 20),
                    bad,
                    expect: ErrorKind::InvalidArgument
                }),
            (
                0usize..6,
                any::<prop::sample::Index>(),
                1.01f32..1e30,
                any::<bool>()
            )
                .prop_map(|(col, i, f, neg)| {
                    let limit = if col < 3 {
                        16.0 * G
                    } else {
                        2000f32.to_radians()
                    };
                    let v = limit * 1.002 * f.max(1.0);
                    Corruption::Value {
                        col,
                        idx: i.index(1 << 20),
                        bad: if neg { -v } else { v },
                        expect: ErrorKind::OutOfRange,
                    }
                }),
            (1usize..6).prop_map(|col| Corruption::Length { col }),
            Just(Corruption::Seq),
            prop_oneof![
                Just(String::new()),
                "[a-z]{0,10} [a-z]{0,10}",
                "[a-z]{65,80}",
                "[a-z]{1,5}[/#@é][a-z]{0,5}"
            ]
            .prop_map(Corruption::SensorId),
            prop_oneof![
                (0.0f32..24.99).prop_map(|r| (r, ErrorKind::OutOfRange)),
                (400.01f32..1e9).prop_map(|r| (r, ErrorKind::OutOfRange)),
                Just((f32::NAN, ErrorKind::InvalidArgument)),
            ]
            .prop_map(|(r, k)| Corruption::Rate(r, k)),
            Just(Corruption::Future),
            Just(Corruption::Ancient),
        ]
    }

    fn apply(b: &mut SampleBatch, c: &Corruption) -> (ErrorKind, String) {
        let n = b.ax.len();
        match c {
            Corruption::Value {
                col,
                idx,
                bad,
                expect,
            } => {
                let i = idx % n;
                let column = match col {
                    0 => &mut b.ax,
                    1 => &mut b.ay,
                    2 => &mut b.az,
                    3 => &mut b.gx,
                    4 => &mut b.gy,
                    _ => &mut b.gz,
                };
                column[i] = *bad;
                (*expect, format!("{}[{i}]", COLUMNS[*col]))
            }
            Corruption::Length { col } => {
                let column = match col {
                    1 => &mut b.ay,
                    2 => &mut b.az,
                    3 => &mut b.gx,
                    4 => &mut b.gy,
                    _ => &mut b.gz,
                };
                if column.len() > 1 && column.len() % 2 == 0 {
                    column.pop();
                } else {
                    column.push(0.0);
                }
                (ErrorKind::InvalidArgument, COLUMNS[*col].to_string())
            }
            Corruption::Seq => {
                b.seq = 0;
                (ErrorKind::InvalidArgument, "seq".into())
            }
            Corruption::SensorId(s) => {
                b.sensor_id = s.clone();
                (ErrorKind::InvalidArgument, "sensor_id".into())
            }
            Corruption::Rate(r, k) => {
                b.sample_rate_hz = *r;
                (*k, "sample_rate_hz".into())
            }
            Corruption::Future => {
                b.first_sample_time_us = NOW + 61_000_000;
                (ErrorKind::OutOfRange, "first_sample_time_us".into())
            }
            Corruption::Ancient => {
                b.first_sample_time_us = 1_000_000;
                (ErrorKind::OutOfRange, "first_sample_time_us".into())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, rng_seed: proptest::test_runner::RngSeed::Fixed(0x11f7), ..ProptestConfig::default() })]

        #[test]
        fn valid_batches_always_pass(b in arb_valid()) {
            let c = validate(&b, &Limits::default(), NOW);
            prop_assert!(c.is_ok(), "{:?}", c);
            let c = c.unwrap();
            prop_assert_eq!(c.samples, b.ax.len());
            prop_assert!(c.end_us >= c.last_sample_us && c.last_sample_us >= b.first_sample_time_us);
        }

        #[test]
        fn valid_batches_survive_the_wire(b in arb_valid()) {
            let bytes = b.encode_to_vec();
            let d = SampleBatch::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(content_hash(&d), content_hash(&b));
            prop_assert!(validate(&d, &Limits::default(), NOW).is_ok());
        }

        #[test]
        fn any_single_corruption_is_caught_with_its_field(b in arb_valid(), c in arb_corruption()) {
            let mut bad = b.clone();
            let (kind, field) = apply(&mut bad, &c);
            let r = validate(&bad, &Limits::default(), NOW);
            prop_assert!(r.is_err(), "{:?} passed", c);
            let r = r.unwrap_err();
            prop_assert_eq!(&r.field, &field, "{:?}: {}", c, r.reason);
            prop_assert_eq!(r.kind, kind, "{:?}: {}", c, r.reason);
            prop_assert_ne!(content_hash(&bad), content_hash(&b));
        }

        /// Arbitrary bytes never panic the decoder or the validator; whatever decodes is
        /// either valid or rejected with a named field.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(b) = SampleBatch::decode(bytes.as_slice())
                && let Err(r) = validate(&b, &Limits::default(), NOW)
            {
                prop_assert!(!r.field.is_empty());
                prop_assert!(!r.reason.is_empty());
            }
        }

        /// A valid encoding with one flipped byte either fails to decode or is validated
        /// without panicking; if it still validates, its content hash changed or the
        /// flip hit a byte that decodes to the same message.
        #[test]
        fn flipped_bytes_are_never_mistaken_for_the_original(b in arb_valid(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = b.encode_to_vec();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(d) = SampleBatch::decode(bytes.as_slice()) {
                let _ = validate(&d, &Limits::default(), NOW);
                if d != b {
                    prop_assert_ne!(content_hash(&d), content_hash(&b));
                }
            }
        }
    }
}
