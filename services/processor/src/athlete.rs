//! Per-athlete processing: the synchronous heart of the processor role.
//!
//! [`AthleteState`] turns the athlete's enriched sample batches, in bus order, into rep
//! and kinematics records by driving the pure [`AthletePipeline`]. It does no I/O and
//! reads no clock, so it is tested directly against the simulator.
//!
//! Invariants:
//! - A batch whose `seq` is not above the last one processed for its sensor is dropped:
//!   this is the authoritative dedupe (ingest's is best-effort and in memory).
//! - Record ids are derived from device times only, so reprocessing the same input
//!   yields the same ids and the sink's upserts make replays harmless.
//! - A gap in device time longer than `session_gap_s` closes the session: pending work is
//!   flushed and a fresh pipeline (with fresh calibration) starts.

use liftguard_biomech::{self as bio, AthletePipeline, Output};
use liftguard_model::{Exercise, Placement};
use liftguard_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::merge::SensorMerge;

/// Tunables of the per-athlete processing that are not biomechanics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AthleteConfig {
    /// A gap in an athlete's data longer than this starts a new training session.
    pub session_gap_s: f64,
    /// Device clock ahead of the server clock by more than this flags the records.
    pub max_clock_ahead_s: f64,
    /// How long (of the other sensor's data) a sensor's batch waits for its partner
    /// before the partner is treated as missing for that span, s. [tune]
    pub merge_hold_s: f64,
    /// Most batches held for the merge per athlete.
    pub merge_max_batches: usize,
    /// Alert rules and the flare-up risk model.
    pub risk: liftguard_risk::Config,
}

impl Default for AthleteConfig {
    fn default() -> Self {
        Self {
            session_gap_s: 1800.0,
            max_clock_ahead_s: 5.0,
            merge_hold_s: 30.0,
            merge_max_batches: 512,
            risk: liftguard_risk::Config::default(),
        }
    }
}

/// What one batch produced.
#[derive(Debug, Default)]
pub struct BatchOutput {
    pub reps: Vec<pb::RepRecord>,
    /// Uniformly spaced runs of kinematics points (a gap starts a new chunk).
    pub kinematics: Vec<pb::KinematicsChunk>,
    /// The batch was a duplicate (already processed) and was skipped.
    pub duplicate: bool,
    /// Sessions closed while handling the batch.
    pub sessions_closed: u32,
    /// In-session, session-end and risk alerts.
    pub alerts: Vec<pb::AlertRecord>,
    /// The day's flare-up risk, at each session end.
    pub risks: Vec<pb::RiskRecord>,
}

/// Everything the processor keeps for one athlete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AthleteState {
    gym_id: String,
    athlete_id: String,
    pipeline: AthletePipeline,
    merge: SensorMerge,
    /// Last processed seq per placement (an athlete wears one sensor per placement).
    last_seq: [Option<(String, u64)>; 2],
    /// Device time (thoracolumbar clock) of the last sample seen, any sensor.
    last_time_us: Option<i64>,
    session_start_us: Option<i64>,
    set: Option<pb::SetContext>,
    profile: Option<pb::AthleteProfile>,
    clock_skew: bool,
    /// Sensors (by slot) seen, and those that sent their end-of-session marker, in the
    /// current session.
    seen: [bool; 2],
    ended: [bool; 2],
    /// In-session alert rules and the multi-day risk model (liftguard-risk).
    alerts: liftguard_risk::AlertEngine,
    risk: liftguard_risk::RiskState,
    /// Receive time of the batch being handled (whose arrival released what is processed
    /// now), stamped on what it emits (latency measurement only; not checkpointed).
    #[serde(skip)]
    source_received_us: i64,
}

fn slot(p: Placement) -> usize {
    match p {
        Placement::Thoracolumbar => 0,
        Placement::Sacrum => 1,
    }
}

/// Anthropometrics for the biomechanics from the enrollment profile.
pub fn params_from_profile(p: Option<&pb::AthleteProfile>) -> bio::AthleteParams {
    let p = p.cloned().unwrap_or_default();
    bio::AthleteParams {
        height_m: f64::from(p.height_m),
        mass_kg: f64::from(p.mass_kg),
        capacity_kg: bio::Capacity {
            deadlift: f64::from(p.capacity_deadlift_kg),
            squat: f64::from(p.capacity_squat_kg),
            swing: f64::from(p.capacity_swing_kg),
        },
    }
}

fn set_info(set: Option<&pb::SetContext>) -> bio::SetInfo {
    match set {
        None => bio::SetInfo {
            set_id: None,
            exercise: None,
            load_kg: None,
        },
        Some(s) => bio::SetInfo {
            set_id: (!s.set_id.is_empty()).then(|| s.set_id.clone()),
            exercise: Exercise::from_proto(s.exercise),
            load_kg: (s.load_kg > 0.0 && s.load_kg.is_finite()).then_some(f64::from(s.load_kg)),
        },
    }
}

/// Device timestamps of a batch's samples.
pub fn sample_times(first_us: i64, rate_hz: f32, n: usize) -> impl Iterator<Item = i64> {
    let period_us = 1e6 / f64::from(rate_hz);
    (0..n).map(move |i| first_us + (i as f64 * period_us).round() as i64)
}

/// Converts a batch's columns to samples. Columns were validated by ingest to have equal
/// lengths; a shorter column simply shortens the batch.
pub fn batch_samples(b: &pb::EnrichedBatch) -> Vec<bio::ImuSample> {
    let n = [&b.ax, &b.ay, &b.az, &b.gx, &b.gy, &b.gz]
        .iter()
        .map(|c| c.len())
        .min()
        .unwrap_or(0);
    sample_times(b.first_sample_time_us, b.sample_rate_hz, n)
        .enumerate()
        .map(|(i, t_us)| bio::ImuSample {
            t_us,
            acc: [b.ax[i], b.ay[i], b.az[i]],
            gyro: [b.gx[i], b.gy[i], b.gz[i]],
        })
        .collect()
}

impl AthleteState {
    pub fn new(config: &bio::Config, gym_id: &str, athlete_id: &str) -> Self {
        Self {
            gym_id: gym_id.to_owned(),
            athlete_id: athlete_id.to_owned(),
            pipeline: AthletePipeline::new(config, params_from_profile(None)),
            merge: SensorMerge::default(),
            last_seq: [None, None],
            last_time_us: None,
            session_start_us: None,
            set: None,
            profile: None,
            clock_skew: false,
            seen: [false; 2],
            ended: [false; 2],
            alerts: liftguard_risk::AlertEngine::new(),
            risk: liftguard_risk::RiskState::new(),
            source_received_us: 0,
        }
    }

    pub fn athlete_id(&self) -> &str {
        &self.athlete_id
    }

    pub fn gym_id(&self) -> &str {
        &self.gym_id
    }

    /// A flare-up the athlete reported: feeds the risk model.
    pub fn flare_up(&mut self, report: &pb::FlareUpReport) {
        self.risk.on_flare_up(report.onset_time_us, report.pain);
    }

    /// Device time of the newest sample seen.
    pub fn last_time_us(&self) -> Option<i64> {
        self.last_time_us
    }

    /// Processes one batch (already decoded). Pure: same state + same batch = same output.
    pub fn handle(
        &mut self,
        bio_cfg: &bio::Config,
        cfg: &AthleteConfig,
        b: &pb::EnrichedBatch,
    ) -> BatchOutput {
        let mut result = BatchOutput::default();
        let Some(placement) = Placement::from_proto(b.placement) else {
            return result;
        };
        let s = slot(placement);
        if let Some((sensor, seq)) = &self.last_seq[s]
            && *sensor == b.sensor_id
            && b.seq <= *seq
        {
            result.duplicate = true;
            return result;
        }
        self.last_seq[s] = Some((b.sensor_id.clone(), b.seq));
        // What this batch releases became computable when it arrived: that is the start of
        // the end-to-end latency of everything it emits.
        self.source_received_us = b.received_time_us;
        self.merge.push(placement, b.clone());
        let hold_us = (cfg.merge_hold_s * 1e6) as i64;
        while let Some(batch) = self.merge.pop_ready(
            self.pipeline.clock_offset_us(),
            hold_us,
            cfg.merge_max_batches,
        ) {
            self.process(bio_cfg, cfg, &batch, &mut result);
        }
        result
    }

    /// Feeds one batch, released by the merge in time order, to the pipeline.
    fn process(
        &mut self,
        bio_cfg: &bio::Config,
        cfg: &AthleteConfig,
        b: &pb::EnrichedBatch,
        result: &mut BatchOutput,
    ) {
        let Some(placement) = Placement::from_proto(b.placement) else {
            return;
        };
        let samples = batch_samples(b);
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return;
        };
        let mut out = Vec::new();

        // Session boundary on a long gap: flush, then start afresh.
        if let Some(prev) = self.last_time_us
            && (first.t_us - prev) as f64 > cfg.session_gap_s * 1e6
            && self.session_open()
        {
            self.close_session(bio_cfg, cfg, result);
        }
        self.seen[slot(placement)] = true;
        // Record times are on the thoracolumbar clock, so the session's start is too.
        if self.session_start_us.is_none() && placement == Placement::Thoracolumbar {
            self.session_start_us = Some(first.t_us);
        }

        if b.athlete.is_some() && b.athlete != self.profile {
            self.profile = b.athlete;
            self.pipeline
                .set_params(params_from_profile(self.profile.as_ref()));
        }
        if b.set != self.set {
            self.set = b.set.clone();
            self.pipeline.set_context(set_info(self.set.as_ref()));
        }
        if b.reattached {
            self.pipeline.reattached(placement);
        }
        let ahead_us = last.t_us - b.received_time_us;
        if b.received_time_us > 0 && ahead_us as f64 > cfg.max_clock_ahead_s * 1e6 {
            self.clock_skew = true;
        }
        self.last_time_us = Some(self.last_time_us.map_or(last.t_us, |t| t.max(last.t_us)));

        self.pipeline.push(bio_cfg, placement, &samples, &mut out);
        self.convert(bio_cfg, cfg, &mut out, result);

        if b.end_of_session {
            self.ended[slot(placement)] = true;
            if (0..2).all(|i| !self.seen[i] || self.ended[i]) {
                self.close_session(bio_cfg, cfg, result);
            }
        }
    }

    /// Whether a session has data (it is closed by a marker, a gap or [`Self::finish`]).
    pub fn session_open(&self) -> bool {
        self.seen.iter().any(|s| *s)
    }

    /// Ends the session: the pipeline emits what it holds, and a fresh pipeline (fresh
    /// calibration) waits for the next session. The day's cumulative damage carries over.
    fn close_session(
        &mut self,
        bio_cfg: &bio::Config,
        cfg: &AthleteConfig,
        result: &mut BatchOutput,
    ) {
        let mut out = Vec::new();
        self.pipeline.finish(bio_cfg, &mut out);
        self.convert(bio_cfg, cfg, &mut out, result);
        // Session-level alerts, then the day's risk as of the session's end.
        let end_us = self.last_time_us.unwrap_or_default();
        let session_id = self.session_id();
        let mut alerts = Vec::new();
        self.alerts
            .on_session_end(&cfg.risk.alerts, &session_id, end_us, &mut alerts);
        let assessment = self.risk.assess(&cfg.risk.risk, end_us);
        alerts.extend(assessment.alert.clone());
        for a in &alerts {
            result.alerts.push(self.alert_record(cfg, a));
        }
        result.risks.push(pb::RiskRecord {
            risk_id: format!("{}-{}", self.athlete_id, assessment.day),
            gym_id: self.gym_id.clone(),
            athlete_id: self.athlete_id.clone(),
            day: assessment.day,
            time_us: assessment.time_us,
            probability: assessment.probability,
            drivers: assessment
                .drivers
                .into_iter()
                .map(|d| pb::RiskDriver {
                    feature: d.feature,
                    value: d.value,
                    contribution: d.contribution,
                    explanation: d.explanation,
                })
                .collect(),
            alert: assessment.rule_met,
            model_version: cfg.risk.model_version,
        });
        let (day, damage) = self.pipeline.daily_damage();
        self.pipeline = AthletePipeline::new(bio_cfg, params_from_profile(self.profile.as_ref()));
        if let Some(day) = day {
            self.pipeline.restore_daily_damage(day, damage);
        }
        self.session_start_us = None;
        self.set = None;
        self.clock_skew = false;
        self.seen = [false; 2];
        self.ended = [false; 2];
        result.sessions_closed += 1;
    }

    /// End of data (offline runs, tests, an athlete idle for longer than a session gap):
    /// processes every batch the merge holds, in canonical order, and closes the session.
    pub fn finish(&mut self, bio_cfg: &bio::Config, cfg: &AthleteConfig) -> BatchOutput {
        let mut result = BatchOutput::default();
        while let Some(batch) = self.merge.pop_any(self.pipeline.clock_offset_us()) {
            self.process(bio_cfg, cfg, &batch, &mut result);
        }
        if self.session_open() {
            self.close_session(bio_cfg, cfg, &mut result);
        }
        result
    }

    fn session_id(&self) -> String {
        format!(
            "{}-{}",
            self.athlete_id,
            self.session_start_us.unwrap_or_default()
        )
    }

    fn alert_record(&self, cfg: &AthleteConfig, a: &liftguard_risk::Alert) -> pb::AlertRecord {
        pb::AlertRecord {
            alert_id: a.id(&self.athlete_id),
            gym_id: self.gym_id.clone(),
            athlete_id: self.athlete_id.clone(),
            session_id: a.session_id.clone(),
            set_id: a.set_id.clone().unwrap_or_default(),
            kind: a.kind.to_proto(),
            severity: a.severity.to_proto(),
            time_us: a.time_us,
            title: a.title.clone(),
            recommendation: a.recommendation.clone(),
            evidence: a
                .evidence
                .iter()
                .map(|e| pb::Evidence {
                    name: e.name.clone(),
                    value: e.value,
                    threshold: e.threshold,
                    unit: e.unit.clone(),
                })
                .collect(),
            rep_ids: a.rep_ids.clone(),
            model_version: cfg.risk.model_version,
            source_received_us: self.source_received_us,
        }
    }

    /// The athlete's capacity for an exercise from the profile, kg (0 = unknown).
    fn capacity_kg(&self, exercise: Exercise) -> f64 {
        let c = params_from_profile(self.profile.as_ref()).capacity_kg;
        match exercise {
            Exercise::Deadlift => c.deadlift,
            Exercise::Squat => c.squat,
            Exercise::KettlebellSwing => c.swing,
            Exercise::Carry => 0.0,
        }
    }

    fn convert(
        &mut self,
        bio_cfg: &bio::Config,
        cfg: &AthleteConfig,
        out: &mut Vec<Output>,
        result: &mut BatchOutput,
    ) {
        let session_id = self.session_id();
        for o in out.drain(..) {
            match o {
                Output::Rep(rep) => {
                    let record = self.rep_record(bio_cfg, &rep, &session_id);
                    let facts = liftguard_risk::RepFacts {
                        rep_id: record.rep_id.clone(),
                        set_id: record.set_id.clone(),
                        session_id: session_id.clone(),
                        exercise: rep.exercise,
                        load_kg: rep.load_kg,
                        capacity_kg: self.capacity_kg(rep.exercise),
                        start_us: rep.start_us,
                        end_us: rep.end_us,
                        extensor_event: rep.extensor_event,
                        fatigue_score: rep.fatigue.score,
                        stability_deficit: rep.stability_deficit,
                        damage_per_cycle: rep.damage.per_cycle,
                        peak_load_moment_nm: rep.peak_load_moment_nm,
                        eccentric_s: rep.eccentric_s,
                    };
                    let mut alerts = Vec::new();
                    self.alerts.on_rep(&cfg.risk.alerts, &facts, &mut alerts);
                    self.risk.on_rep(&facts);
                    for a in &alerts {
                        result.alerts.push(self.alert_record(cfg, a));
                    }
                    result.reps.push(record);
                }
                Output::Kinematics(k) => {
                    let rate = bio_cfg.kinematics_rate_hz;
                    let continues = result.kinematics.last().is_some_and(|c| {
                        let expected =
                            c.first_time_us as f64 + c.lumbar_flexion_deg.len() as f64 * 1e6 / rate;
                        (k.t_us as f64 - expected).abs() <= 0.25e6 / rate
                    });
                    if !continues {
                        result.kinematics.push(pb::KinematicsChunk {
                            gym_id: self.gym_id.clone(),
                            athlete_id: self.athlete_id.clone(),
                            first_time_us: k.t_us,
                            rate_hz: rate as f32,
                            ..Default::default()
                        });
                    }
                    let Some(chunk) = result.kinematics.last_mut() else {
                        continue;
                    };
                    chunk.lumbar_flexion_deg.push(k.lumbar_flexion_deg);
                    chunk.trunk_inclination_deg.push(k.trunk_inclination_deg);
                    chunk.pelvis_inclination_deg.push(k.pelvis_inclination_deg);
                }
            }
        }
    }

    fn rep_record(&self, bio_cfg: &bio::Config, r: &bio::Rep, session_id: &str) -> pb::RepRecord {
        let e = &r.evidence;
        pb::RepRecord {
            rep_id: format!("{}-{}", self.athlete_id, r.start_us),
            gym_id: self.gym_id.clone(),
            athlete_id: self.athlete_id.clone(),
            set_id: r
                .set_id
                .clone()
                .unwrap_or_else(|| format!("{session_id}-s{}", r.set_index)),
            rep_index: r.rep_index,
            exercise: r.exercise.to_proto(),
            exercise_inferred: r.exercise_inferred,
            load_kg: r.load_kg as f32,
            start_us: r.start_us,
            end_us: r.end_us,
            bottom_us: r.bottom_us,
            concentric_start_us: r.concentric_start_us,
            eccentric_s: r.eccentric_s as f32,
            concentric_s: r.concentric_s as f32,
            peak_lumbar_flexion_deg: r.peak_lumbar_flexion_deg as f32,
            peak_trunk_inclination_deg: r.peak_trunk_inclination_deg as f32,
            ldi: r.ldi as f32,
            peak_load_moment_nm: r.peak_load_moment_nm as f32,
            extensor_event: r.extensor_event,
            evidence: Some(pb::ExtensorEvidence {
                peak_lumbar_ext_velocity_dps: e.peak_lumbar_ext_velocity_dps as f32,
                lumbar_share_duration_ms: e.lumbar_share_duration_ms as f32,
                max_lumbar_share: e.max_lumbar_share as f32,
                ldi: e.ldi as f32,
                onset_lag_ms: e.onset_lag_ms as f32,
                bottom_lumbar_flexion_deg: e.bottom_lumbar_flexion_deg as f32,
                peak_load_moment_nm: e.peak_load_moment_nm as f32,
                top_hyperextension_deg: e.top_hyperextension_deg as f32,
            }),
            fatigue_score: r.fatigue.score as f32,
            fatigue_dose: r.fatigue.dose as f32,
            fatigue_observed: r.fatigue.observed as f32,
            stability_deficit: r.stability_deficit as f32,
            damage: r.damage.per_cycle,
            cumulative_damage: r.damage.cumulative_day,
            session_id: session_id.to_owned(),
            clock_skew_flagged: self.clock_skew,
            model_version: bio_cfg.model_version,
            source_received_us: self.source_received_us,
        }
    }
}
