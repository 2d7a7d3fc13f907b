//! CSV rendering (pure strings; callers write files) and parsing of sensor recordings.
//!
//! Recording format (the `replay`/`analyze` commands use it):
//! header `t_s,ax,ay,az,gx,gy,gz`, one sample per line, `t_s` = seconds on the SENSOR clock
//! printed exactly from integer microseconds (6 decimals), acc in m/s², gyro in rad/s.
//! Invariant: `recording_from_csv(&recording_to_csv(r))` returns `r.samples` bit-exactly.

use std::fmt::{self, Write as _};

use crate::{ImuSample, SensorRecording, Truth};

/// Header line of the recording CSV format.
pub const RECORDING_CSV_HEADER: &str = "t_s,ax,ay,az,gx,gy,gz";

fn push_time(out: &mut String, t_us: i64) {
    let neg = t_us < 0;
    let a = t_us.unsigned_abs();
    let _ = write!(
        out,
        "{}{}.{:06}",
        if neg { "-" } else { "" },
        a / 1_000_000,
        a % 1_000_000
    );
}

/// Renders a recording as CSV (`t_s,ax,ay,az,gx,gy,gz`).
pub fn recording_to_csv(rec: &SensorRecording) -> String {
    let mut out = String::with_capacity(rec.samples.len() * 80 + 32);
    out.push_str(RECORDING_CSV_HEADER);
    out.push('\n');
    for s in &rec.samples {
        push_time(&mut out, s.t_us);
        for v in s.acc.iter().chain(s.gyro.iter()) {
            let _ = write!(out, ",{v}");
        }
        out.push('\n');
    }
    out
}

/// Error of [`recording_from_csv`]: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for CsvError {}

fn parse_time_us(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || frac.len() > 6
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let i: i64 = int.parse().ok()?;
    let mut f: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..6 {
        f *= 10;
    }
    let v = i.checked_mul(1_000_000)?.checked_add(f)?;
    Some(if neg { -v } else { v })
}

/// Parses the recording CSV format (header required; blank lines ignored).
pub fn recording_from_csv(text: &str) -> Result<Vec<ImuSample>, CsvError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == RECORDING_CSV_HEADER => {}
        _ => {
            return Err(CsvError {
                line: 1,
                reason: format!("expected header `{RECORDING_CSV_HEADER}`"),
            });
        }
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| CsvError {
            line: i + 1,
            reason,
        };
        let mut it = line.split(',');
        let t = it.next().ok_or_else(|| err("missing t_s".into()))?;
        let t_us = parse_time_us(t.trim()).ok_or_else(|| err(format!("bad t_s `{t}`")))?;
        let mut v = [0f32; 6];
        for (k, slot) in v.iter_mut().enumerate() {
            let f = it
                .next()
                .ok_or_else(|| err(format!("expected 7 fields, got {}", k + 1)))?;
            *slot = f
                .trim()
                .parse::<f32>()
                .map_err(|_| err(format!("bad number `{f}`")))?;
            if !slot.is_finite() {
                return Err(err(format!("non-finite value `{f}`")));
            }
        }
        if it.next().is_some() {
            return Err(err("more than 7 fields".into()));
        }
        out.push(ImuSample {
            t_us,
            acc: [v[0], v[1], v[2]],
            gyro: [v[3], v[4], v[5]],
        });
    }
    Ok(out)
}

/// Ground-truth angle series as CSV (`t_s,lumbar_flexion_deg,trunk_inclination_deg,pelvis_inclination_deg`,
/// thoracolumbar clock).
pub fn truth_angles_to_csv(truth: &Truth) -> String {
    let mut out = String::with_capacity(truth.lumbar.len() * 48 + 80);
    out.push_str("t_s,lumbar_flexion_deg,trunk_inclination_deg,pelvis_inclination_deg\n");
    for a in &truth.lumbar {
        push_time(&mut out, a.t_us);
        let _ = writeln!(
            out,
            ",{:.4},{:.4},{:.4}",
            a.lumbar_flexion_deg, a.trunk_inclination_deg, a.pelvis_inclination_deg
        );
    }
    out
}

/// Ground-truth reps as CSV (one line per rep, times in seconds on the thoracolumbar clock).
pub fn truth_reps_to_csv(truth: &Truth) -> String {
    let mut out = String::from(
        "set_id,exercise,load_kg,load_ratio,rep,start_s,bottom_s,concentric_start_s,end_s,\
         peak_lumbar_flexion_deg,min_lumbar_flexion_deg,peak_lumbar_ext_velocity_early_dps,\
         lumbar_lead_ms,extensor_fault,unstable,fatigue\n",
    );
    for s in &truth.sets {
        for r in &s.reps {
            let _ = write!(
                out,
                "{},{},{},{:.3},{},",
                s.set_id, s.exercise, s.load_kg, s.load_ratio, r.index
            );
            for t in [r.start_us, r.bottom_us, r.concentric_start_us, r.end_us] {
                push_time(&mut out, t);
                out.push(',');
            }
            let _ = writeln!(
                out,
                "{:.3},{:.3},{:.2},{:.1},{},{},{:.4}",
                r.peak_lumbar_flexion_deg,
                r.min_lumbar_flexion_deg,
                r.peak_lumbar_ext_velocity_early_dps,
                r.lumbar_lead_ms,
                r.extensor_fault,
                r.unstable,
                r.fatigue
            );
        }
    }
    out
}

/// Ground-truth sets as CSV (one line per set; carries list their walked lengths as
/// `start-end` pairs in seconds on the thoracolumbar clock, `;`-separated).
pub fn truth_sets_to_csv(truth: &Truth) -> String {
    let mut out = String::from(
        "set_id,exercise,load_kg,load_ratio,start_s,end_s,reps,faults,unstable_reps,bouts\n",
    );
    for s in &truth.sets {
        let _ = write!(
            out,
            "{},{},{},{:.3},",
            s.set_id, s.exercise, s.load_kg, s.load_ratio
        );
        push_time(&mut out, s.start_us);
        out.push(',');
        push_time(&mut out, s.end_us);
        let faults = s.reps.iter().filter(|r| r.extensor_fault).count();
        let unstable = s.reps.iter().filter(|r| r.unstable).count();
        let _ = write!(out, ",{},{faults},{unstable},", s.reps.len());
        for (i, b) in s.bouts.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            push_time(&mut out, b.start_us);
            out.push('-');
            push_time(&mut out, b.end_us);
            if b.unstable {
                out.push('!');
            }
        }
        out.push('\n');
    }
    out
}
