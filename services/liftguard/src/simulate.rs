//! `liftguard simulate`: writes one simulated athlete's session as two recordings in the
//! replay format plus its ground truth, for trying `replay` and `analyze` by hand.

use std::{io::Write as _, path::PathBuf};

use anyhow::Context as _;
use liftguard_client::Sample;

use crate::{demo::SIM_START_US, recording};

pub fn run(out: PathBuf, seed: u64, minutes: f64) -> anyhow::Result<()> {
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let sessions = liftguard_sim::simulate_gym(
        seed,
        1,
        minutes,
        SIM_START_US,
        &liftguard_sim::SimOptions::default(),
    );
    let s = sessions
        .first()
        .context("the simulator produced no session")?;
    for (rec, name) in [
        (&s.thoracolumbar, "thoracolumbar.csv"),
        (&s.sacrum, "sacrum.csv"),
    ] {
        recording::write(
            &out.join(name),
            rec.samples.iter().map(|x| Sample {
                t_us: x.t_us,
                acc: x.acc,
                gyro: x.gyro,
            }),
        )?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out.join("truth_reps.csv"))?);
    writeln!(
        w,
        "set_id,exercise,load_kg,rep_index,start_s,bottom_s,concentric_start_s,end_s,peak_lumbar_flexion_deg,extensor_fault,unstable"
    )?;
    for set in &s.truth.sets {
        for r in &set.reps {
            writeln!(
                w,
                "{},{},{:.1},{},{:.3},{:.3},{:.3},{:.3},{:.2},{},{}",
                set.set_id,
                set.exercise,
                set.load_kg,
                r.index,
                r.start_us as f64 / 1e6,
                r.bottom_us as f64 / 1e6,
                r.concentric_start_us as f64 / 1e6,
                r.end_us as f64 / 1e6,
                r.peak_lumbar_flexion_deg,
                r.extensor_fault,
                r.unstable
            )?;
        }
    }
    w.flush()?;
    let a = &s.athlete;
    println!(
        "wrote {}/{{thoracolumbar,sacrum,truth_reps}}.csv: athlete height {:.2} m, mass {:.0} kg, {} sets, {} reps",
        out.display(),
        a.height_m,
        a.mass_kg,
        s.truth.sets.len(),
        s.truth.sets.iter().map(|x| x.reps.len()).sum::<usize>()
    );
    Ok(())
}
