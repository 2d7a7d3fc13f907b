//! The recording format shared by `replay`, `analyze` and `simulate`: one CSV file per
//! sensor with the header `t_s,ax,ay,az,gx,gy,gz` (device seconds, m/s², rad/s).
//!
//! Reading is strict: a malformed row is an error naming its line, never skipped.

use std::path::Path;

use anyhow::{Context as _, bail};
use liftguard_client::Sample;

pub const HEADER: &str = "t_s,ax,ay,az,gx,gy,gz";

/// Reads a recording; timestamps must not go backwards.
pub fn read(path: &Path) -> anyhow::Result<Vec<Sample>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let want: Vec<&str> = HEADER.split(',').collect();
    if headers.iter().collect::<Vec<_>>() != want {
        bail!(
            "{}: header must be `{HEADER}`, found `{}`",
            path.display(),
            headers.iter().collect::<Vec<_>>().join(",")
        );
    }
    let mut out = Vec::new();
    let mut last_t = i64::MIN;
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let mut v = [0f64; 7];
        for (j, slot) in v.iter_mut().enumerate() {
            let field = rec.get(j).unwrap_or("");
            *slot = field.parse().with_context(|| {
                format!(
                    "{}: line {line}, column {}: {field:?} is not a number",
                    path.display(),
                    want[j]
                )
            })?;
            if !slot.is_finite() {
                bail!(
                    "{}: line {line}, column {}: value is not finite",
                    path.display(),
                    want[j]
                );
            }
        }
        let t_us = (v[0] * 1e6).round() as i64;
        if t_us < last_t {
            bail!("{}: line {line}: time goes backwards", path.display());
        }
        last_t = t_us;
        out.push(Sample {
            t_us,
            acc: [v[1] as f32, v[2] as f32, v[3] as f32],
            gyro: [v[4] as f32, v[5] as f32, v[6] as f32],
        });
    }
    if out.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(out)
}

/// Writes a recording.
pub fn write(path: &Path, samples: impl IntoIterator<Item = Sample>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    writeln!(w, "{HEADER}")?;
    for s in samples {
        writeln!(
            w,
            "{:.6},{},{},{},{},{},{}",
            s.t_us as f64 / 1e6,
            s.acc[0],
            s.acc[1],
            s.acc[2],
            s.gyro[0],
            s.gyro[1],
            s.gyro[2]
        )?;
    }
    w.flush()?;
    Ok(())
}

/// The median sample rate of a recording, from its timestamps.
pub fn estimate_rate_hz(samples: &[Sample]) -> Option<f64> {
    let mut d: Vec<i64> = samples
        .windows(2)
        .map(|w| w[1].t_us - w[0].t_us)
        .filter(|d| *d > 0)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some(1e6 / d[d.len() / 2] as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_rows_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample {
                t_us: 1_000_000 + i * 10_000,
                acc: [0.1, 0.2, 9.81],
                gyro: [0.01, -0.02, 0.0],
            })
            .collect();
        write(&p, samples.clone()).unwrap();
        assert_eq!(read(&p).unwrap(), samples);
        assert_eq!(estimate_rate_hz(&samples).unwrap().round(), 100.0);

        std::fs::write(
            &p,
            "t_s,ax,ay,az,gx,gy,gz\n0.0,1,2,3,4,5,6\n0.01,1,x,3,4,5,6\n",
        )
        .unwrap();
        let e = format!("{:#}", read(&p).unwrap_err());
        assert!(e.contains("line 3") && e.contains("ay"), "{e}");
        std::fs::write(&p, "t,ax\n").unwrap();
        assert!(format!("{:#}", read(&p).unwrap_err()).contains("header"));
    }
}
