//! `liftguard analyze`: the biomechanics core over two recordings, offline, no server.
//! Writes `reps.csv` (one row per rep) and `lumbar.csv` (25 Hz) on the thoracolumbar
//! sensor's clock, and prints a short summary.

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use liftguard_biomech as bio;
use liftguard_model::Exercise;

use crate::recording;

#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    pub thoracolumbar: PathBuf,
    pub sacrum: PathBuf,
    pub exercise: Option<Exercise>,
    pub load_kg: Option<f64>,
    pub height_m: f64,
    pub mass_kg: f64,
    pub out: PathBuf,
    pub config: bio::Config,
}

fn to_bio(s: &[liftguard_client::Sample]) -> Vec<bio::ImuSample> {
    s.iter()
        .map(|s| bio::ImuSample {
            t_us: s.t_us,
            acc: s.acc,
            gyro: s.gyro,
        })
        .collect()
}

pub const REPS_HEADER: &str = "start_s,end_s,set_index,rep_index,exercise,exercise_inferred,load_kg,bottom_s,concentric_start_s,eccentric_s,concentric_s,peak_lumbar_flexion_deg,peak_trunk_inclination_deg,ldi,peak_load_moment_nm,extensor_event,peak_lumbar_ext_velocity_dps,lumbar_share_duration_ms,max_lumbar_share,onset_lag_ms,bottom_lumbar_flexion_deg,top_hyperextension_deg,fatigue_score,fatigue_dose,fatigue_observed,stability_deficit,damage_per_cycle,damage_cumulative_day,p_high_risk,damage_normalised_to_capacity";

pub fn run(o: AnalyzeOptions) -> anyhow::Result<()> {
    let t = to_bio(&recording::read(&o.thoracolumbar)?);
    let s = to_bio(&recording::read(&o.sacrum)?);
    let params = bio::AthleteParams {
        height_m: o.height_m,
        mass_kg: o.mass_kg,
        capacity_kg: bio::Capacity {
            deadlift: 0.0,
            squat: 0.0,
            swing: 0.0,
        },
    };
    let set = bio::SetInfo {
        set_id: None,
        exercise: o.exercise,
        load_kg: o.load_kg,
    };
    let a = bio::analyze_recordings(&o.config, params, set, &t, &s);
    std::fs::create_dir_all(&o.out).with_context(|| format!("creating {}", o.out.display()))?;

    let reps_path = o.out.join("reps.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&reps_path)?);
    writeln!(w, "{REPS_HEADER}")?;
    let secs = |us: i64| us as f64 / 1e6;
    for r in &a.reps {
        let e = &r.evidence;
        writeln!(
            w,
            "{:.3},{:.3},{},{},{},{},{:.1},{:.3},{:.3},{:.3},{:.3},{:.2},{:.2},{:.3},{:.1},{},{:.1},{:.0},{:.3},{:.0},{:.2},{:.2},{:.1},{:.4},{:.3},{:.3},{:.3e},{:.3e},{:.3},{}",
            secs(r.start_us),
            secs(r.end_us),
            r.set_index,
            r.rep_index,
            r.exercise,
            r.exercise_inferred,
            r.load_kg,
            secs(r.bottom_us),
            secs(r.concentric_start_us),
            r.eccentric_s,
            r.concentric_s,
            r.peak_lumbar_flexion_deg,
            r.peak_trunk_inclination_deg,
            r.ldi,
            r.peak_load_moment_nm,
            r.extensor_event,
            e.peak_lumbar_ext_velocity_dps,
            e.lumbar_share_duration_ms,
            e.max_lumbar_share,
            e.onset_lag_ms,
            e.bottom_lumbar_flexion_deg,
            e.top_hyperextension_deg,
            r.fatigue.score,
            r.fatigue.dose,
            r.fatigue.observed,
            r.stability_deficit,
            r.damage.per_cycle,
            r.damage.cumulative_day,
            r.damage.p_high_risk,
            r.damage.normalised_to_capacity,
        )?;
    }
    w.flush()?;

    let lumbar_path = o.out.join("lumbar.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&lumbar_path)?);
    writeln!(w, "t_s,lumbar_flexion_deg")?;
    for k in &a.kinematics {
        writeln!(w, "{:.3},{:.2}", secs(k.t_us), k.lumbar_flexion_deg)?;
    }
    w.flush()?;

    let events = a.reps.iter().filter(|r| r.extensor_event).count();
    println!("analyzed {} + {} samples", t.len(), s.len());
    for ex in Exercise::ALL {
        let n = a.reps.iter().filter(|r| r.exercise == ex).count();
        if n > 0 {
            println!("  {ex:<17} {n:>4} reps");
        }
    }
    println!(
        "  {} reps, {} extensor-moment events ({:.0}%), peak lumbar flexion max {:.1} deg, final fatigue {:.0}/100, cumulative damage {:.3e}",
        a.reps.len(),
        events,
        if a.reps.is_empty() {
            0.0
        } else {
            100.0 * events as f64 / a.reps.len() as f64
        },
        a.reps
            .iter()
            .map(|r| r.peak_lumbar_flexion_deg)
            .fold(0.0, f64::max),
        a.reps.last().map_or(0.0, |r| r.fatigue.score),
        a.reps.last().map_or(0.0, |r| r.damage.cumulative_day),
    );
    println!(
        "wrote {} and {}",
        reps_path.display(),
        lumbar_path.display()
    );
    Ok(())
}
