//! Sets and rep emission: a completed rep joins the current set, waits for its exercise
//! to be classified when the client did not name it, and is emitted with its damage
//! (LiFFT), stability deficit, extensor-event decision and fatigue score.
//!
//! Invariants:
//! - Reps are numbered 1.. within their set, in completion order; a set closes (and its
//!   waiting reps are classified and emitted) before the next one starts.
//! - Transfers are never reps: the pick-up/put-down hinges of a carry and the slow hinges
//!   of a kettlebell-swing set are dropped.
//! - Every emitted number is finite.

use liftguard_model::Exercise;

use crate::athlete::{Core, MAX_SHAPES, MAX_WAITING, RepAccum, RepDraft, SetState};
use crate::classify::{self, Bout, RepShape};
use crate::config::Config;
use crate::damage;
use crate::events::AscentEvidence;
use crate::fatigue::{self, DriftFeatures};
use crate::filter::finite_or;
use crate::moment::Anthropometrics;
use crate::segment::RepTiming;
use crate::{Damage, ExtensorEvidence, FatigueScore, Output, Rep};

impl Core {
    /// A rep left its top window: attach it to its set (classify when needed) and emit.
    pub(crate) fn complete(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        mut d: RepDraft,
        out: &mut Vec<Output>,
    ) {
        // A rep belongs to the set current at its completion (a context change announced
        // mid-rep means the client already counts it in the new set).
        self.set.last_end_us = Some(d.timing.end_us);
        if !(d.min_lumbar_top.is_finite() && d.min_lumbar_top < f64::MAX) {
            d.min_lumbar_top = 0.0;
        }
        if self.set.shapes.len() < MAX_SHAPES {
            self.set.shapes.push(d.shape);
        }
        match self.set.exercise() {
            Some(ex) => self.emit(cfg, anthro, d, ex, out),
            None => {
                if self.set.waiting.len() >= MAX_WAITING {
                    self.classify_set(cfg, anthro, out);
                    if let Some(ex) = self.set.exercise() {
                        self.emit(cfg, anthro, d, ex, out);
                        return;
                    }
                }
                self.set.waiting.push(d);
                if self.set.waiting.len() as u32 >= cfg.classify.min_reps.max(1) {
                    self.classify_set(cfg, anthro, out);
                }
            }
        }
    }

    /// Decides the set's exercise from the shapes seen and emits the waiting reps.
    pub(crate) fn classify_set(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        out: &mut Vec<Output>,
    ) {
        if self.set.info.exercise.is_some() || self.set.shapes.is_empty() {
            return;
        }
        let ex = self.set.inferred.unwrap_or_else(|| {
            classify::classify(&cfg.classify, anthro.height_m, &self.set.shapes)
        });
        self.set.inferred = Some(ex);
        let waiting = std::mem::take(&mut self.set.waiting);
        for d in waiting {
            self.emit(cfg, anthro, d, ex, out);
        }
    }

    pub(crate) fn close_set(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        out: &mut Vec<Output>,
    ) {
        if let Some(d) = self.top.take() {
            self.complete(cfg, anthro, d, out);
        }
        if !self.set.waiting.is_empty() {
            self.classify_set(cfg, anthro, out);
        }
        self.damage.new_set();
    }

    pub(crate) fn emit(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        d: RepDraft,
        ex: Exercise,
        out: &mut Vec<Output>,
    ) {
        if ex == Exercise::Carry && !d.is_bout {
            // Pick-up / put-down hinges of a carry are not reps.
            return;
        }
        let conc_s = (d.timing.end_us - d.timing.concentric_us) as f64 * 1e-6;
        if ex == Exercise::KettlebellSwing && conc_s > cfg.classify.swing_transfer_concentric_s {
            // A slow hinge in a swing set: picking the bell up or putting it down.
            return;
        }
        self.set.reps += 1;
        self.stats.reps += 1;
        let load = self.set.info.load_kg.unwrap_or(0.0);
        let g = cfg.gravity_mps2;
        let cap_nm = anthro.capacity_moment(&cfg.anthropometry, g, ex);
        let cap_kg = anthro.capacity_kg(&cfg.anthropometry, ex);
        let peak = d.acc.peak_moment.max(0.0);

        // Damage (LiFFT on the capacity-normalised moment; carries are not lifting cycles).
        let plm = damage::effective_plm(&cfg.damage, peak, cap_nm);
        let dpc = if d.is_bout {
            0.0
        } else {
            damage::damage_per_cycle(&cfg.damage, plm)
        };
        self.damage.add(&cfg.damage, d.timing.end_us, dpc);

        // Stability against the light-load baseline.
        let deficit = self.baseline.deficit(&cfg.stability, ex, &d.acc.ecc);
        if load > 0.0 && load <= cfg.stability.light_load_fraction * cap_kg {
            self.baseline.learn(ex, &d.acc.ecc);
        }

        // Extensor events.
        let min_l = d.min_lumbar_top;
        let hyper = (-min_l).to_degrees().max(0.0);
        let hyper_event = ex == Exercise::KettlebellSwing && hyper > cfg.events.hyperextension_deg;
        let event = !d.is_bout && (d.ascent.event || hyper_event);

        // Fatigue.
        let tremor = (d.acc.samples > 0).then(|| (d.acc.tremor2 / f64::from(d.acc.samples)).sqrt());
        let drift = DriftFeatures {
            peak_lumbar_deg: d.acc.lumbar_seen.then(|| d.acc.peak_lumbar.to_degrees()),
            ldi: (!d.is_bout && d.acc.pelvis_seen).then_some(d.ascent.ldi),
            concentric_s: (!d.is_bout).then_some(conc_s),
            tremor_log: tremor.filter(|v| *v > 1e-9).map(f64::ln),
            jerk_log: d.acc.ecc.jerk,
        };
        let f_obs = self.set.drift.push(&cfg.fatigue, &drift);
        let observed = fatigue::observed_score(&cfg.fatigue, f_obs);
        let fatigue = FatigueScore {
            score: fatigue::blend(&cfg.fatigue, d.dose_score, observed),
            dose: d.dose_score,
            observed,
        };

        let deg = |x: f64| finite_or(x.to_degrees(), 0.0);
        let rep = Rep {
            set_index: self.set.index,
            set_id: self.set.info.set_id.clone(),
            rep_index: self.set.reps,
            exercise: ex,
            exercise_inferred: self.set.info.exercise.is_none(),
            load_kg: finite_or(load, 0.0),
            start_us: d.timing.start_us,
            bottom_us: d.timing.bottom_us,
            concentric_start_us: d.timing.concentric_us,
            end_us: d.timing.end_us,
            eccentric_s: (d.timing.bottom_us - d.timing.start_us) as f64 * 1e-6,
            concentric_s: conc_s,
            peak_lumbar_flexion_deg: if d.acc.lumbar_seen {
                deg(d.acc.peak_lumbar)
            } else {
                0.0
            },
            peak_trunk_inclination_deg: if d.acc.max_trunk > -f64::MAX {
                deg(d.acc.max_trunk)
            } else {
                0.0
            },
            ldi: finite_or(d.ascent.ldi, 0.0),
            peak_load_moment_nm: finite_or(peak, 0.0),
            extensor_event: event,
            evidence: ExtensorEvidence {
                peak_lumbar_ext_velocity_dps: finite_or(d.ascent.peak_lumbar_ext_velocity_dps, 0.0),
                lumbar_share_duration_ms: finite_or(d.ascent.lumbar_share_duration_ms, 0.0),
                max_lumbar_share: finite_or(d.ascent.max_lumbar_share, 0.0),
                ldi: finite_or(d.ascent.ldi, 0.0),
                onset_lag_ms: finite_or(d.ascent.onset_lag_ms, 0.0),
                bottom_lumbar_flexion_deg: finite_or(d.ascent.bottom_lumbar_flexion_deg, 0.0),
                peak_load_moment_nm: finite_or(peak, 0.0),
                top_hyperextension_deg: finite_or(hyper, 0.0),
            },
            fatigue,
            stability_deficit: finite_or(deficit, 0.0),
            damage: Damage {
                per_cycle: dpc,
                cumulative_set: self.damage.set,
                cumulative_session: self.damage.session,
                cumulative_day: self.damage.day,
                p_high_risk: damage::p_high_risk(&cfg.damage, self.damage.day),
                normalised_to_capacity: true,
                capacity_declared: anthro.capacity_declared,
                reference_moment_nm: cfg.damage.reference_moment_nm,
                capacity_moment_nm: cap_nm,
                effective_plm_nm: plm,
            },
            steps: d.steps,
        };
        out.push(Output::Rep(rep));
    }

    pub(crate) fn on_bout(
        &mut self,
        cfg: &Config,
        anthro: &Anthropometrics,
        b: Bout,
        out: &mut Vec<Output>,
    ) {
        if self.set.info.exercise.is_none() && self.set.inferred != Some(Exercise::Carry) {
            // A long walking bout without metadata: this set is a carry. Hinges seen so far
            // were the pick-up; a previous set with reps is closed first.
            if self.set.reps > 0 {
                self.close_set(cfg, anthro, out);
                let info = self.set.info.clone();
                self.set = SetState {
                    index: self.set.index + 1,
                    info,
                    ..SetState::default()
                };
            }
            self.set.inferred = Some(Exercise::Carry);
            self.set.waiting.clear();
            self.top = None;
        }
        let feats = self.bout.features();
        let acc = RepAccum {
            set_index: self.set.index,
            max_trunk: self.bout_peak_trunk,
            min_trunk: self.bout_peak_trunk,
            ecc: feats,
            ..RepAccum::default()
        };
        let d = RepDraft {
            set_index: self.set.index,
            timing: RepTiming {
                start_us: b.start_us,
                bottom_us: b.start_us,
                concentric_us: b.start_us,
                end_us: b.end_us,
                depth: 0.0,
            },
            acc,
            ascent: AscentEvidence::default(),
            min_lumbar_top: 0.0,
            top_until_us: b.end_us,
            dose_score: self.dose.score(&cfg.fatigue),
            shape: RepShape::default(),
            steps: b.steps,
            is_bout: true,
        };
        self.set.last_end_us = Some(b.end_us);
        self.emit(cfg, anthro, d, Exercise::Carry, out);
    }
}
