//! Driving a simulated gym through the real front door, and scoring what comes out
//! against the simulator's ground truth. Used by `liftguard demo` and by the
//! end-to-end tests, so both measure the same thing the same way.

use anyhow::Context as _;
use liftguard_client::{
    Sample, Token, UploadOptions, UploadReport, Uploader, batches_from_samples,
};
use liftguard_model::Exercise;
use liftguard_proto::v1 as pb;
use liftguard_sim::{SensorRecording, SimSession, Truth};
use tonic::transport::Channel;

/// Samples per batch sent by the simulated gateways (0.5 s at 100 Hz).
pub const BATCH_LEN: usize = 50;

/// An athlete of the simulated gym as enrolled.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub athlete_id: String,
    pub thoracolumbar_sensor: String,
    pub sacrum_sensor: String,
}

/// Creates the gym (operator token) and enrolls every simulated athlete (with its cohort
/// fields, [`liftguard_sim::AthleteSpec::cohort`]) and both sensors, through the Registry
/// RPCs. Returns the gym's API key and the enrolled athletes in the
/// order of `sessions`.
pub async fn enroll(
    channel: Channel,
    operator: &Token,
    slug: &str,
    sessions: &[SimSession],
) -> anyhow::Result<(String, Vec<Enrolled>)> {
    let mut reg = liftguard_client::registry_client(channel);
    let created = reg
        .create_gym(operator.request(pb::CreateGymRequest {
            slug: slug.to_owned(),
            name: format!("Simulated gym {slug}"),
        }))
        .await
        .context("CreateGym")?
        .into_inner();
    let gym_id = created.gym.map(|g| g.gym_id).unwrap_or_default();
    let key = if created.api_key.is_empty() {
        reg.issue_api_key(operator.request(pb::IssueApiKeyRequest {
            gym_id: gym_id.clone(),
            label: "simulator".into(),
        }))
        .await
        .context("IssueApiKey")?
        .into_inner()
        .api_key
    } else {
        created.api_key
    };
    let gym_token = Token::new(&key)?;
    let mut out = Vec::with_capacity(sessions.len());
    for s in sessions {
        let a = &s.athlete;
        let cohort = a.cohort();
        let athlete = reg
            .enroll_athlete(gym_token.request(pb::EnrollAthleteRequest {
                gym_id: gym_id.clone(),
                athlete: Some(pb::Athlete {
                    external_ref: a.id.clone(),
                    display_name: format!("Athlete {}", a.id),
                    height_m: a.height_m as f32,
                    mass_kg: a.mass_kg as f32,
                    capacity_deadlift_kg: a.capacity_kg.deadlift as f32,
                    capacity_squat_kg: a.capacity_kg.squat as f32,
                    capacity_swing_kg: a.capacity_kg.swing as f32,
                    birth_year: cohort.birth_year,
                    sex: cohort.sex,
                    training_age_years: cohort.training_age_years,
                    sport: cohort.sport,
                    ..Default::default()
                }),
            }))
            .await
            .context("EnrollAthlete")?
            .into_inner();
        let mut ids = Vec::new();
        for rec in [&s.thoracolumbar, &s.sacrum] {
            let sensor_id = sensor_id(slug, rec);
            reg.register_sensor(gym_token.request(pb::RegisterSensorRequest {
                gym_id: gym_id.clone(),
                sensor_id: sensor_id.clone(),
                athlete_id: athlete.athlete_id.clone(),
                placement: rec.placement.to_proto(),
            }))
            .await
            .context("RegisterSensor")?;
            ids.push(sensor_id);
        }
        out.push(Enrolled {
            athlete_id: athlete.athlete_id,
            thoracolumbar_sensor: ids[0].clone(),
            sacrum_sensor: ids[1].clone(),
        });
    }
    Ok((key, out))
}

/// Sensor ids are global: prefix the simulator's with the gym.
pub fn sensor_id(slug: &str, rec: &SensorRecording) -> String {
    format!("{slug}-{}", rec.sensor_id)
}

fn samples(rec: &SensorRecording) -> Vec<Sample> {
    rec.samples
        .iter()
        .map(|s| Sample {
            t_us: s.t_us,
            acc: s.acc,
            gyro: s.gyro,
        })
        .collect()
}

/// Both sensors' batches of one session, merged by device time as a gym gateway would send
/// them, each with the set context the gym's app knows (the set being performed, from a
/// few seconds before it starts until it ends).
pub fn session_batches(slug: &str, s: &SimSession, batch_len: usize) -> Vec<pb::SampleBatch> {
    let mut all = Vec::new();
    for rec in [&s.thoracolumbar, &s.sacrum] {
        let to_t12 = s.thoracolumbar.clock_offset_us - rec.clock_offset_us;
        let mut batches = batches_from_samples(
            &sensor_id(slug, rec),
            1,
            rec.rate_hz,
            &samples(rec),
            batch_len,
            None,
        );
        for b in &mut batches {
            b.set = set_context(&s.truth, b.first_sample_time_us + to_t12);
        }
        // The athlete ends the workout in the app: each sensor's last batch says so.
        if let Some(last) = batches.last_mut() {
            last.end_of_session = true;
        }
        all.extend(
            batches
                .into_iter()
                .map(|b| (b.first_sample_time_us - rec.clock_offset_us, b)),
        );
    }
    all.sort_by_key(|(true_t, _)| *true_t);
    all.into_iter().map(|(_, b)| b).collect()
}

fn set_context(truth: &Truth, t12_us: i64) -> Option<pb::SetContext> {
    const LEAD_US: i64 = 3_000_000;
    truth
        .sets
        .iter()
        .find(|set| t12_us >= set.start_us - LEAD_US && t12_us <= set.end_us)
        .map(|set| pb::SetContext {
            set_id: set.set_id.clone(),
            exercise: set.exercise.to_proto(),
            load_kg: set.load_kg as f32,
        })
}

/// Uploads every session concurrently (one gateway stream per athlete), reporting each
/// final ack to `on_ack`.
pub async fn upload(
    channel: Channel,
    api_key: &str,
    slug: &str,
    sessions: &[SimSession],
    on_ack: impl Fn(&pb::BatchAck) + Clone + Send + Sync + 'static,
) -> anyhow::Result<UploadReport> {
    let token = Token::new(api_key)?;
    let mut tasks = tokio::task::JoinSet::new();
    for s in sessions {
        let batches = session_batches(slug, s, BATCH_LEN);
        let mut up = Uploader::new(channel.clone(), token.clone(), UploadOptions::default());
        let cb = on_ack.clone();
        tasks.spawn(async move { up.upload(batches, |a| cb(a)).await });
    }
    let mut total = UploadReport::default();
    while let Some(r) = tasks.join_next().await {
        let r = r.context("upload task panicked")??;
        total.accepted += r.accepted;
        total.duplicates += r.duplicates;
        total.retries += r.retries;
        total.reconnects += r.reconnects;
        total.rejected.extend(r.rejected);
    }
    Ok(total)
}

/// How one athlete's stored results compare with the ground truth.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Accuracy {
    pub sets: usize,
    pub sets_exact: usize,
    /// Largest |detected − true| rep count over the sets.
    pub max_count_error: usize,
    pub reps_true: usize,
    pub reps_detected: usize,
    /// Lumbar flexion RMSE of the stored 25 Hz trace against the truth, degrees.
    pub lumbar_rmse_deg: f64,
    pub lumbar_points: usize,
}

impl Accuracy {
    /// Sums per-athlete figures; the RMSE is pooled over all points.
    pub fn merge(items: &[Accuracy]) -> Accuracy {
        let mut a = Accuracy::default();
        let mut sq = 0.0;
        for i in items {
            a.sets += i.sets;
            a.sets_exact += i.sets_exact;
            a.max_count_error = a.max_count_error.max(i.max_count_error);
            a.reps_true += i.reps_true;
            a.reps_detected += i.reps_detected;
            a.lumbar_points += i.lumbar_points;
            sq += i.lumbar_rmse_deg.powi(2) * i.lumbar_points as f64;
        }
        a.lumbar_rmse_deg = if a.lumbar_points > 0 {
            (sq / a.lumbar_points as f64).sqrt()
        } else {
            f64::NAN
        };
        a
    }
}

/// Scores stored reps and the stored lumbar trace against the truth. A detected rep
/// belongs to the true set whose time window (± 2 s) contains its start; the trace is
/// scored from the first set on (after calibration), against the truth interpolated at
/// each stored point's time. Carries are walked bouts, not reps, on both sides: they
/// are left out of the rep counts.
pub fn score(truth: &Truth, reps: &[pb::RepRecord], trace: &[(i64, f32)]) -> Accuracy {
    const SLACK_US: i64 = 2_000_000;
    let carry = Exercise::Carry.to_proto();
    let reps: Vec<&pb::RepRecord> = reps.iter().filter(|r| r.exercise != carry).collect();
    let mut a = Accuracy {
        reps_detected: reps.len(),
        ..Default::default()
    };
    for set in truth.sets.iter().filter(|s| s.exercise != Exercise::Carry) {
        let detected = reps
            .iter()
            .filter(|r| {
                r.start_us >= set.start_us - SLACK_US && r.start_us <= set.end_us + SLACK_US
            })
            .count();
        a.sets += 1;
        a.reps_true += set.reps.len();
        let err = detected.abs_diff(set.reps.len());
        if err == 0 {
            a.sets_exact += 1;
        }
        a.max_count_error = a.max_count_error.max(err);
    }
    let from = truth.sets.first().map_or(i64::MIN, |s| s.start_us);
    let mut sq = 0.0;
    let mut n = 0usize;
    for &(t, deg) in trace.iter().filter(|(t, _)| *t >= from) {
        if let Some(truth_deg) = interpolate(&truth.lumbar, t) {
            sq += (f64::from(deg) - truth_deg).powi(2);
            n += 1;
        }
    }
    a.lumbar_points = n;
    a.lumbar_rmse_deg = if n > 0 {
        (sq / n as f64).sqrt()
    } else {
        f64::NAN
    };
    a
}

fn interpolate(series: &[liftguard_sim::TruthAngle], t: i64) -> Option<f64> {
    let i = series.partition_point(|p| p.t_us < t);
    let hi = series.get(i)?;
    if hi.t_us == t {
        return Some(hi.lumbar_flexion_deg);
    }
    let lo = series.get(i.checked_sub(1)?)?;
    let span = (hi.t_us - lo.t_us) as f64;
    if span <= 0.0 || span > 100_000.0 {
        return None;
    }
    let w = (t - lo.t_us) as f64 / span;
    Some(lo.lumbar_flexion_deg + w * (hi.lumbar_flexion_deg - lo.lumbar_flexion_deg))
}
