//! The athlete-level stages, one paired grid instant at a time: filters, load moment and
//! fatigue dose, segmentation, per-rep accumulation (extremes, eccentric stability, ascent
//! recording, sacrum drop), the top window, walking bouts and the kinematics trace. Set
//! bookkeeping and rep emission live in [`crate::reps`].
//!
//! Invariants:
//! - Frames arrive in strictly increasing thoracolumbar time; a missing trunk sample is a
//!   gap (the dose rests; a gap over `MAX_REP_GAP_S` abandons the current rep).
//! - Every stored value is finite (finite sentinels instead of ±∞), so the state
//!   serialises in any format.
//! - Every buffer is bounded (ascent recorder, pending reps ≤ `MAX_WAITING`, set shapes ≤
//!   `MAX_SHAPES`, pending set contexts ≤ `MAX_CONTEXTS`).

use std::collections::VecDeque;

use liftguard_model::Exercise;
use serde::{Deserialize, Serialize};

use crate::classify::{DropIntegrator, GaitDetector, RepShape};
use crate::config::Config;
use crate::damage::DamageAccumulator;
use crate::events::{AscentEvidence, AscentRecorder, AscentSample, analyze_ascent};
use crate::fatigue::{DoseModel, ObservedDrift};
use crate::filter::{Biquad, finite_or};
use crate::moment::Anthropometrics;
use crate::ring::GridSample;
use crate::segment::{Phase, RepTiming, SegEvent, Segmenter};
use crate::sensor::SensorStage;
use crate::stability::{PhaseStability, StabilityBaseline, StabilityFeatures};
use crate::{KinematicsPoint, Output, SetInfo};

/// Reps waiting for their set's exercise to be classified.
pub(crate) const MAX_WAITING: usize = 6;
/// Set-context changes waiting for the processing to reach their time.
pub(crate) const MAX_CONTEXTS: usize = 4;
/// Rep shapes kept per set for classification.
pub(crate) const MAX_SHAPES: usize = 8;
/// A trunk gap longer than this abandons the current rep, s.
const MAX_REP_GAP_S: f64 = 1.0;

/// One segment's sagittal signals at a paired instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seg {
    pub(crate) theta: f64,
    pub(crate) omega: f64,
    pub(crate) lateral: f64,
    pub(crate) vert_acc: f64,
    pub(crate) tremor_acc: f64,
    pub(crate) tremor_gyro: f64,
}

pub(crate) fn to_seg(stage: &SensorStage, g: &GridSample) -> Option<Seg> {
    let m = stage.calib(g.epoch)?.ml?;
    Some(Seg {
        theta: g.tilt[0] * m[0] + g.tilt[1] * m[1],
        omega: g.omega[0] * m[0] + g.omega[1] * m[1],
        lateral: g.tilt[1] * m[0] - g.tilt[0] * m[1],
        vert_acc: g.vert_acc,
        tremor_acc: g.tremor_acc,
        tremor_gyro: g.tremor_gyro,
    })
}

/// Diagnostics of the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStats {
    pub frames: u64,
    pub frames_without_pelvis: u64,
    pub frames_without_trunk: u64,
    pub reps: u64,
    pub abandoned: u64,
    pub clock_offset_us: Option<i64>,
}

/// Measurements of the rep in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RepAccum {
    pub(crate) set_index: u32,
    pub(crate) peak_lumbar: f64,
    pub(crate) min_trunk: f64,
    pub(crate) max_trunk: f64,
    pub(crate) min_pelvis: f64,
    pub(crate) max_pelvis: f64,
    pub(crate) pelvis_seen: bool,
    pub(crate) lumbar_seen: bool,
    pub(crate) peak_moment: f64,
    /// Minimum lumbar flexion during the concentric phase (lockout), rad.
    pub(crate) min_lumbar: f64,
    pub(crate) tremor2: f64,
    pub(crate) samples: u32,
    pub(crate) drop: Option<f64>,
    pub(crate) ecc: StabilityFeatures,
}

/// A completed rep waiting for its top window / classification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RepDraft {
    pub(crate) set_index: u32,
    pub(crate) timing: RepTiming,
    pub(crate) acc: RepAccum,
    pub(crate) ascent: AscentEvidence,
    pub(crate) min_lumbar_top: f64,
    pub(crate) top_until_us: i64,
    pub(crate) dose_score: f64,
    pub(crate) shape: RepShape,
    pub(crate) steps: u32,
    pub(crate) is_bout: bool,
}

/// The current set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SetState {
    pub(crate) index: u32,
    pub(crate) info: SetInfo,
    pub(crate) inferred: Option<Exercise>,
    pub(crate) reps: u32,
    pub(crate) drift: ObservedDrift,
    pub(crate) shapes: Vec<RepShape>,
    pub(crate) waiting: Vec<RepDraft>,
    pub(crate) last_end_us: Option<i64>,
}

impl SetState {
    pub(crate) fn exercise(&self) -> Option<Exercise> {
        self.info.exercise.or(self.inferred)
    }
}

/// Athlete-level state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Core {
    pub(crate) period_us: i64,
    pub(crate) dt: f64,
    pub(crate) last_t_us: Option<i64>,
    pub(crate) trunk_gap_s: f64,
    pub(crate) primed: bool,
    pub(crate) seg_theta: Biquad,
    pub(crate) seg_omega: Biquad,
    pub(crate) ang_omega: Biquad,
    pub(crate) ev_wl: Biquad,
    pub(crate) ev_wp: Biquad,
    pub(crate) lumb_lp: Biquad,
    pub(crate) prev_w6: f64,
    pub(crate) ev_delay_us: i64,
    pub(crate) segmenter: Segmenter,
    pub(crate) ascent: AscentRecorder,
    pub(crate) in_rep: bool,
    pub(crate) rep: RepAccum,
    pub(crate) ecc: PhaseStability,
    pub(crate) drop: DropIntegrator,
    pub(crate) top: Option<RepDraft>,
    pub(crate) set: SetState,
    pub(crate) contexts: VecDeque<(i64, SetInfo)>,
    pub(crate) dose: DoseModel,
    pub(crate) damage: DamageAccumulator,
    pub(crate) baseline: StabilityBaseline,
    pub(crate) gait: GaitDetector,
    pub(crate) bout: PhaseStability,
    pub(crate) bout_peak_trunk: f64,
    pub(crate) last_kin_us: Option<i64>,
    pub(crate) stats: PipelineStats,
}

pub(crate) fn group_delay_us(fc_hz: f64) -> i64 {
    if fc_hz > 0.0 && fc_hz.is_finite() {
        (std::f64::consts::SQRT_2 / (2.0 * std::f64::consts::PI * fc_hz) * 1e6).round() as i64
    } else {
        0
    }
}

impl Core {
    pub(crate) fn new(cfg: &Config) -> Self {
        let period_us = cfg.grid_period_us();
        let rate = cfg.grid_rate_hz();
        let dt = period_us as f64 * 1e-6;
        let f = &cfg.filters;
        Self {
            period_us,
            dt,
            last_t_us: None,
            trunk_gap_s: 0.0,
            primed: false,
            seg_theta: Biquad::lowpass(f.segmentation_lowpass_hz, rate),
            seg_omega: Biquad::lowpass(f.segmentation_lowpass_hz, rate),
            ang_omega: Biquad::lowpass(f.angle_lowpass_hz, rate),
            ev_wl: Biquad::lowpass(f.event_lowpass_hz, rate),
            ev_wp: Biquad::lowpass(f.event_lowpass_hz, rate),
            lumb_lp: Biquad::lowpass(f.angle_lowpass_hz, rate),
            prev_w6: 0.0,
            ev_delay_us: group_delay_us(f.event_lowpass_hz),
            segmenter: Segmenter::new(f.segmentation_lowpass_hz),
            ascent: AscentRecorder::new(period_us),
            in_rep: false,
            rep: RepAccum::default(),
            ecc: PhaseStability::default(),
            drop: DropIntegrator::default(),
            top: None,
            set: SetState {
                index: 1,
                ..SetState::default()
            },
            contexts: VecDeque::new(),
            dose: DoseModel::default(),
            damage: DamageAccumulator::default(),
            baseline: StabilityBaseline::default(),
            gait: GaitDetector::new(&cfg.classify, rate),
            bout: PhaseStability::default(),
            bout_peak_trunk: 0.0,
            last_kin_us: None,
            stats: PipelineStats::default(),
        }
    }

    fn capacity_moment(&self, cfg: &Config, anthro: &Anthropometrics) -> f64 {
        let ex = self.set.exercise().unwrap_or(Exercise::Deadlift);
        anthro.capacity_moment(&cfg.anthropometry, cfg.gravity_mps2, ex)
    }

    fn apply_contexts(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        t: i64,
        out: &mut Vec<Output>,
    ) {
        while self.contexts.front().is_some_and(|(at, _)| *at <= t) {
            if let Some((_, info)) = self.contexts.pop_front() {
                self.close_set(cfg, anthro, out);
                self.set = SetState {
                    index: self.set.index
                        + u32::from(self.set.reps > 0 || !self.set.waiting.is_empty()),
                    info,
                    ..SetState::default()
                };
            }
        }
    }

    /// One paired grid instant.
    pub(crate) fn frame(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        t: i64,
        trunk: Option<Seg>,
        pelvis: Option<Seg>,
        out: &mut Vec<Output>,
    ) {
        let dt = self.dt;
        self.stats.frames += 1;
        self.apply_contexts(cfg, anthro, t, out);
        if let Some(last) = self.last_t_us
            && t > last + self.period_us
        {
            // Rest over skipped time (the dose decays).
            self.dose
                .rest(&cfg.fatigue, (t - last - self.period_us) as f64 * 1e-6);
        }
        self.last_t_us = Some(t);
        let Some(tr) = trunk else {
            self.stats.frames_without_trunk += 1;
            self.trunk_gap_s += dt;
            self.dose.rest(&cfg.fatigue, dt);
            if self.trunk_gap_s > MAX_REP_GAP_S {
                if self.in_rep {
                    self.abandon_rep();
                }
                self.segmenter.reset();
                self.primed = false;
            }
            self.tick_top(cfg, anthro, t, None, out);
            return;
        };
        self.trunk_gap_s = 0.0;
        if pelvis.is_none() {
            self.stats.frames_without_pelvis += 1;
        }
        if !self.primed {
            self.seg_theta.reset(tr.theta);
            self.seg_omega.reset(tr.omega);
            self.ang_omega.reset(tr.omega);
            self.prev_w6 = tr.omega;
            self.ev_wl.reset(pelvis.map_or(0.0, |p| tr.omega - p.omega));
            self.ev_wp.reset(pelvis.map_or(0.0, |p| p.omega));
            self.lumb_lp
                .reset(pelvis.map_or(0.0, |p| tr.theta - p.theta));
            self.primed = true;
        }
        let th_s = self.seg_theta.step(tr.theta);
        let w_s = self.seg_omega.step(tr.omega);
        let w6 = self.ang_omega.step(tr.omega);
        let alpha = (w6 - self.prev_w6) / dt;
        self.prev_w6 = w6;
        let lumbar = pelvis.map(|p| tr.theta - p.theta);
        let (wl, wp) = match pelvis {
            Some(p) => (
                self.ev_wl.step(tr.omega - p.omega),
                self.ev_wp.step(p.omega),
            ),
            None => (0.0, 0.0),
        };
        let lumbar6 = lumbar.map(|l| self.lumb_lp.step(l));

        // Load moment and dose.
        let load = self.set.info.load_kg.unwrap_or(0.0);
        let moment = anthro.moment(anthro.static_gain(cfg.gravity_mps2, load), tr.theta, alpha);
        let m_cap = self.capacity_moment(cfg, anthro);
        self.dose.step(&cfg.fatigue, dt, moment / m_cap);

        // Ascent recording (velocities delayed by the event low-pass).
        if let Some(p) = pelvis {
            self.ascent.push(
                &cfg.events,
                t - self.ev_delay_us,
                AscentSample {
                    omega_l: wl,
                    omega_p: wp,
                    theta_l: tr.theta - p.theta,
                    theta_p: p.theta,
                },
            );
        }

        // Rep accumulation.
        if self.in_rep {
            let r = &mut self.rep;
            r.max_trunk = r.max_trunk.max(tr.theta);
            r.min_trunk = r.min_trunk.min(tr.theta);
            if let Some(p) = pelvis {
                if r.pelvis_seen {
                    r.max_pelvis = r.max_pelvis.max(p.theta);
                    r.min_pelvis = r.min_pelvis.min(p.theta);
                } else {
                    r.max_pelvis = p.theta;
                    r.min_pelvis = p.theta;
                    r.pelvis_seen = true;
                }
            }
            if let Some(l) = lumbar6 {
                r.peak_lumbar = if r.lumbar_seen {
                    r.peak_lumbar.max(l)
                } else {
                    l
                };
                r.lumbar_seen = true;
                if self.segmenter.phase() == Phase::Concentric {
                    r.min_lumbar = r.min_lumbar.min(l);
                }
            }
            r.peak_moment = r.peak_moment.max(moment);
            let t2 = tremor_gyro2(&tr, pelvis.as_ref());
            r.tremor2 += t2;
            r.samples += 1;
            if self.segmenter.phase() == Phase::Eccentric {
                self.ecc.push(
                    dt,
                    tremor_acc2(&tr, pelvis.as_ref()),
                    t2,
                    w6,
                    None,
                    cfg.segment.still_dps.to_radians(),
                );
            }
        }

        // Segmentation.
        if let Some(ev) = self.segmenter.step(&cfg.segment, t, th_s, w_s, dt) {
            self.on_segment(cfg, anthro, ev, out);
        }
        self.tick_top(cfg, anthro, t, lumbar6, out);

        // Sacrum drop since the body was last still (zero-velocity update; read at the
        // bottom above, before this sample may restart it).
        let still = cfg.segment.still_dps.to_radians();
        if w_s.abs() < still && pelvis.is_none_or(|p| p.omega.abs() < still) {
            self.drop.still();
        } else {
            self.drop
                .push(dt, pelvis.map_or(tr.vert_acc, |p| p.vert_acc));
        }

        // Carries: walking bouts.
        self.gait_step(cfg, anthro, t, &tr, pelvis.as_ref(), w6, out);

        // Kinematics.
        if let (Some(p), Some(l)) = (pelvis, lumbar) {
            let kin_period = (1e6 / cfg.kinematics_rate_hz.clamp(1.0, 1e3)).round() as i64;
            if t.rem_euclid(kin_period.max(1)) < self.period_us
                && self.last_kin_us.is_none_or(|k| t - k >= kin_period / 2)
            {
                self.last_kin_us = Some(t);
                out.push(Output::Kinematics(KinematicsPoint {
                    t_us: t,
                    lumbar_flexion_deg: finite_or(l.to_degrees(), 0.0) as f32,
                    trunk_inclination_deg: finite_or(tr.theta.to_degrees(), 0.0) as f32,
                    pelvis_inclination_deg: finite_or(p.theta.to_degrees(), 0.0) as f32,
                }));
            }
        }
    }

    fn on_segment(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        ev: SegEvent,
        out: &mut Vec<Output>,
    ) {
        match ev {
            SegEvent::Start { t_us } => {
                // A rest gap without reps starts a new set (unless the client names sets).
                if let Some(last) = self.set.last_end_us
                    && self.set.info.set_id.is_none()
                    && (t_us - last) as f64 * 1e-6 > cfg.sets.rest_gap_s
                {
                    self.close_set(cfg, anthro, out);
                    let info = self.set.info.clone();
                    self.set = SetState {
                        index: self.set.index + 1,
                        info,
                        ..SetState::default()
                    };
                }
                self.in_rep = true;
                self.rep = RepAccum {
                    set_index: self.set.index,
                    // Finite sentinels: state must serialise in every format (JSON has no ∞).
                    min_trunk: f64::MAX,
                    max_trunk: -f64::MAX,
                    min_lumbar: f64::MAX,
                    ..RepAccum::default()
                };
                self.ecc = PhaseStability::default();
                self.ascent.clear();
            }
            SegEvent::Bottom { .. } => {
                self.rep.ecc = self.ecc.features();
                self.rep.drop = self.drop.drop_m();
            }
            SegEvent::Concentric { t_us } => {
                self.ascent.begin(t_us);
            }
            SegEvent::End(timing) => {
                if !self.in_rep {
                    return;
                }
                self.in_rep = false;
                // A previous rep still in its top window is completed now.
                if let Some(prev) = self.top.take() {
                    self.complete(cfg, anthro, prev, out);
                }
                let ascent = analyze_ascent(
                    &cfg.events,
                    &self.ascent,
                    timing.concentric_us,
                    timing.end_us,
                );
                self.ascent.clear();
                let r = self.rep;
                let shape = RepShape {
                    trunk_range_deg: if r.max_trunk >= r.min_trunk {
                        (r.max_trunk - r.min_trunk).to_degrees()
                    } else {
                        0.0
                    },
                    pelvis_range_deg: r
                        .pelvis_seen
                        .then(|| (r.max_pelvis - r.min_pelvis).to_degrees()),
                    sacrum_drop_m: r.drop,
                    concentric_s: (timing.end_us - timing.concentric_us) as f64 * 1e-6,
                };
                self.top = Some(RepDraft {
                    set_index: r.set_index,
                    timing,
                    acc: r,
                    ascent,
                    min_lumbar_top: r.min_lumbar,
                    top_until_us: timing.end_us + (cfg.segment.top_window_s * 1e6) as i64,
                    dose_score: self.dose.score(&cfg.fatigue),
                    shape,
                    steps: 0,
                    is_bout: false,
                });
            }
            SegEvent::Abandoned => self.abandon_rep(),
        }
    }

    fn abandon_rep(&mut self) {
        self.in_rep = false;
        self.stats.abandoned += 1;
        self.ascent.clear();
    }

    /// Tracks the lumbar minimum during the top window of the last rep; completes it after.
    fn tick_top(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        t: i64,
        lumbar: Option<f64>,
        out: &mut Vec<Output>,
    ) {
        let Some(top) = self.top.as_mut() else { return };
        if let Some(l) = lumbar {
            // Concentric start onwards (the lockout happens at the end of the ascent).
            top.min_lumbar_top = top.min_lumbar_top.min(l);
        }
        if t >= top.top_until_us
            && let Some(d) = self.top.take()
        {
            self.complete(cfg, anthro, d, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gait_step(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        t: i64,
        tr: &Seg,
        pelvis: Option<&Seg>,
        w6: f64,
        out: &mut Vec<Output>,
    ) {
        let declared_carry = self.set.info.exercise == Some(Exercise::Carry);
        let unknown = self.set.exercise().is_none() || self.set.inferred == Some(Exercise::Carry);
        let min_s = if declared_carry {
            cfg.classify.min_bout_s
        } else {
            cfg.classify.min_auto_bout_s
        };
        let vert = pelvis.map_or(tr.vert_acc, |p| p.vert_acc);
        // Loads are carried upright: a bent trunk (a lift, a swing) is never walking.
        let upright = tr.theta.abs() < cfg.classify.walk_max_trunk_deg.to_radians();
        if self.gait.is_walking() {
            self.bout.push(
                self.dt,
                tremor_acc2(tr, pelvis),
                tremor_gyro2(tr, pelvis),
                w6,
                Some((tr.theta, tr.lateral)),
                cfg.segment.still_dps.to_radians(),
            );
            self.bout_peak_trunk = self.bout_peak_trunk.max(tr.theta);
        }
        let was_walking = self.gait.is_walking();
        let bout = self
            .gait
            .push(&cfg.classify, t, self.dt, vert, upright, min_s);
        if !was_walking && self.gait.is_walking() {
            self.bout = PhaseStability::default();
            self.bout_peak_trunk = tr.theta;
        }
        if let Some(b) = bout.filter(|_| declared_carry || unknown) {
            self.on_bout(cfg, anthro, b, out);
        }
    }

    pub(crate) fn finish(&mut self, cfg: &Config, anthro: &Anthropometrics, out: &mut Vec<Output>) {
        if self.in_rep {
            self.abandon_rep();
        }
        self.segmenter.reset();
        self.primed = false;
        self.close_set(cfg, anthro, out);
    }
}

pub(crate) fn tremor_acc2(tr: &Seg, p: Option<&Seg>) -> f64 {
    match p {
        Some(p) => 0.5 * (tr.tremor_acc * tr.tremor_acc + p.tremor_acc * p.tremor_acc),
        None => tr.tremor_acc * tr.tremor_acc,
    }
}

pub(crate) fn tremor_gyro2(tr: &Seg, p: Option<&Seg>) -> f64 {
    match p {
        Some(p) => 0.5 * (tr.tremor_gyro * tr.tremor_gyro + p.tremor_gyro * p.tremor_gyro),
        None => tr.tremor_gyro * tr.tremor_gyro,
    }
}
