//! Writes a simulated gym to CSV files: `cargo run -p liftguard-sim --example dump -- <dir> [seed] [athletes] [minutes]`.
//! Per athlete: `<id>-t12.csv`, `<id>-s1.csv` (t_s on each sensor's clock), `<id>-truth-reps.csv`,
//! `<id>-truth-angles.csv`, `<id>-truth-sets.csv`.
use std::path::PathBuf;

use liftguard_sim::{
    SimOptions, recording_to_csv, simulate_gym, truth_angles_to_csv, truth_reps_to_csv,
    truth_sets_to_csv,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "sim-out".into()));
    let seed: u64 = args.next().map_or(Ok(1), |s| s.parse())?;
    let athletes: u32 = args.next().map_or(Ok(3), |s| s.parse())?;
    let minutes: f64 = args.next().map_or(Ok(5.0), |s| s.parse())?;
    std::fs::create_dir_all(&dir)?;
    let gym = simulate_gym(
        seed,
        athletes,
        minutes,
        1_700_000_000_000_000,
        &SimOptions::default(),
    );
    for s in &gym {
        let id = &s.athlete.id;
        std::fs::write(
            dir.join(format!("{id}-t12.csv")),
            recording_to_csv(&s.thoracolumbar),
        )?;
        std::fs::write(
            dir.join(format!("{id}-s1.csv")),
            recording_to_csv(&s.sacrum),
        )?;
        std::fs::write(
            dir.join(format!("{id}-truth-reps.csv")),
            truth_reps_to_csv(&s.truth),
        )?;
        std::fs::write(
            dir.join(format!("{id}-truth-angles.csv")),
            truth_angles_to_csv(&s.truth),
        )?;
        std::fs::write(
            dir.join(format!("{id}-truth-sets.csv")),
            truth_sets_to_csv(&s.truth),
        )?;
        let reps: usize = s.truth.sets.iter().map(|x| x.reps.len()).sum();
        let faults: usize = s
            .truth
            .sets
            .iter()
            .flat_map(|x| &x.reps)
            .filter(|r| r.extensor_fault)
            .count();
        let unstable: usize = s
            .truth
            .sets
            .iter()
            .flat_map(|x| &x.reps)
            .filter(|r| r.unstable)
            .count();
        println!(
            "{id}: {} sets, {reps} reps, {faults} extensor faults, {unstable} unstable, {} + {} samples",
            s.truth.sets.len(),
            s.thoracolumbar.samples.len(),
            s.sacrum.samples.len()
        );
    }
    Ok(())
}
