//! The per-athlete pipeline: pairs the two sensors' grid samples on the thoracolumbar clock
//! and runs the athlete-level stages (segmentation, events, load moment, fatigue, damage,
//! stability, classification, sets), producing [`Output`]s.
//!
//! The athlete-level stages are in [`crate::athlete`], sets and rep emission in
//! [`crate::reps`].
//!
//! Pairing: each thoracolumbar grid sample at time t is processed once the sacrum sample at
//! t + offset is available (interpolated from the sacrum's grid), or once the sacrum is
//! known to be missing (gap) or more than `max_lookahead_s` behind. Before the clock offset
//! is known both buffers wait; a full buffer forces processing without the sacrum.
//!
//! Invariants:
//! - Every thoracolumbar grid sample is processed at most once, in time order.
//! - Outputs are emitted in order of completion; a rep is emitted after its top window
//!   (and, without metadata, once its set's exercise is classified).
//! - Set metadata changes take effect at the thoracolumbar time of the newest sample seen
//!   when they were announced (data already buffered still belongs to the old set).
//! - All buffers are bounded (sensor rings, onset trackers, pending set contexts ≤
//!   `MAX_CONTEXTS`, and the athlete-level buffers).

use liftguard_model::Placement;
use serde::{Deserialize, Serialize};

use crate::align::ClockAligner;
pub use crate::athlete::PipelineStats;
use crate::athlete::{Core, MAX_CONTEXTS, to_seg};
use crate::config::Config;
use crate::moment::Anthropometrics;
use crate::sensor::SensorStage;
use crate::{AthleteParams, ImuSample, Output, SetInfo};

/// Samples fed to a sensor stage between two drains.
const PUSH_CHUNK: usize = 32;

/// Everything the processor keeps per athlete (checkpointed; ≤ 64 KiB serialised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AthletePipeline {
    params: AthleteParams,
    anthro: Anthropometrics,
    t12: SensorStage,
    s1: SensorStage,
    aligner: ClockAligner,
    /// Newest thoracolumbar sample time seen (set-context timing, arrival prior).
    newest_t12_us: Option<i64>,
    /// Newest sacrum sample time seen (arrival prior).
    newest_s1_us: Option<i64>,
    core: Core,
}

impl AthletePipeline {
    pub fn new(config: &Config, params: AthleteParams) -> Self {
        let cfg = config.validated();
        Self {
            params,
            anthro: Anthropometrics::new(&cfg.anthropometry, &params),
            t12: SensorStage::new(&cfg),
            s1: SensorStage::new(&cfg),
            aligner: ClockAligner::default(),
            newest_t12_us: None,
            newest_s1_us: None,
            core: Core::new(&cfg),
        }
    }

    /// Anthropometrics may change (e.g. the enrollment profile arrives later). Defaults for
    /// unknown values come from the default configuration; see [`Self::set_params_with`].
    pub fn set_params(&mut self, params: AthleteParams) {
        self.params = params;
        self.anthro = Anthropometrics::new(&Config::default().anthropometry, &params);
    }

    /// Anthropometrics with an explicit configuration (its defaults for unknown values).
    pub fn set_params_with(&mut self, config: &Config, params: AthleteParams) {
        self.params = params;
        self.anthro = Anthropometrics::new(&config.validated().anthropometry, &params);
    }

    /// Set metadata from the client; `None` fields = unknown.
    pub fn set_context(&mut self, set: SetInfo) {
        let current = self
            .core
            .contexts
            .back()
            .map_or(&self.core.set.info, |(_, s)| s);
        if *current == set {
            return;
        }
        let at = self.newest_t12_us.unwrap_or(i64::MIN);
        if self.core.contexts.len() >= MAX_CONTEXTS {
            self.core.contexts.pop_front();
        }
        self.core.contexts.push_back((at, set));
    }

    /// The sensor was re-attached: forget its calibration and recalibrate.
    pub fn reattached(&mut self, placement: Placement) {
        match placement {
            Placement::Thoracolumbar => self.t12.reattached(),
            Placement::Sacrum => self.s1.reattached(),
        }
    }

    /// Diagnostics.
    pub fn stats(&self) -> PipelineStats {
        let mut s = self.core.stats;
        s.clock_offset_us = self.aligner.offset_us();
        s
    }

    /// The sensor stage of a placement (diagnostics, tests).
    pub fn sensor(&self, placement: Placement) -> &SensorStage {
        match placement {
            Placement::Thoracolumbar => &self.t12,
            Placement::Sacrum => &self.s1,
        }
    }

    /// Cumulative LiFFT damage of the current local day: (day number, damage). A new
    /// pipeline (new session) starts at zero; carry the day over with
    /// [`Self::restore_daily_damage`] when a session starts on the same day.
    pub fn daily_damage(&self) -> (Option<i64>, f64) {
        (self.core.damage.day_index, self.core.damage.day)
    }

    /// Restores the day's cumulative damage from an earlier session of the same day.
    pub fn restore_daily_damage(&mut self, day: i64, damage: f64) {
        if damage.is_finite() && damage >= 0.0 {
            self.core.damage.day_index = Some(day);
            self.core.damage.day = damage;
        }
    }

    /// The current clock offset estimate (sacrum minus thoracolumbar), µs.
    pub fn clock_offset_us(&self) -> Option<i64> {
        self.aligner.offset_us()
    }

    /// Feeds samples of one sensor in device-time order. Outputs are appended to `out`.
    pub fn push(
        &mut self,
        config: &Config,
        placement: Placement,
        samples: &[ImuSample],
        out: &mut Vec<Output>,
    ) {
        let config = &config.validated();
        // Large batches are fed in chunks so the rings never overflow between drains.
        for chunk in samples.chunks(PUSH_CHUNK) {
            self.push_chunk(config, placement, chunk, out);
        }
    }

    fn push_chunk(
        &mut self,
        config: &Config,
        placement: Placement,
        samples: &[ImuSample],
        out: &mut Vec<Output>,
    ) {
        let stage = match placement {
            Placement::Thoracolumbar => &mut self.t12,
            Placement::Sacrum => &mut self.s1,
        };
        for s in samples {
            stage.push(config, s);
        }
        if let Some(last) = samples.iter().map(|s| s.t_us).max() {
            let slot = match placement {
                Placement::Thoracolumbar => &mut self.newest_t12_us,
                Placement::Sacrum => &mut self.newest_s1_us,
            };
            *slot = Some(slot.map_or(last, |n| n.max(last)));
            if let (Some(a), Some(b)) = (self.newest_t12_us, self.newest_s1_us) {
                self.aligner.observe_arrival(b.saturating_sub(a) as f64);
            }
        }
        self.aligner.update(
            &config.align,
            &mut self.t12.onset,
            &mut self.s1.onset,
            self.core.period_us,
        );
        self.drain(config, out, false);
    }

    /// End of data: processes everything buffered and emits pending reps.
    pub fn finish(&mut self, config: &Config, out: &mut Vec<Output>) {
        let config = &config.validated();
        self.drain(config, out, true);
        self.core.finish(config, &self.anthro, out);
    }

    fn drain(&mut self, cfg: &Config, out: &mut Vec<Output>, force: bool) {
        let period = self.core.period_us;
        let lookahead_us = (cfg.align.max_lookahead_s * 1e6) as i64;
        // While waiting (calibration, alignment, the other sensor), keep this much room in
        // the ring so a chunk never overflows it.
        let headroom = (cfg.align.ring_headroom_s * 1e6 / period as f64).ceil() as usize;
        while let Some((t, entry)) = self.t12.ring.front() {
            let full = self.t12.ring.len() + headroom >= self.t12.ring.capacity();
            let trunk = match entry {
                None => None,
                Some(g) => match self.t12.calib(g.epoch) {
                    None => None,
                    Some(c) if c.ml.is_none() => {
                        if full || force {
                            None
                        } else {
                            break;
                        }
                    }
                    Some(_) => to_seg(&self.t12, &g),
                },
            };
            let newest = self.t12.ring.back_time().unwrap_or(t);
            let pelvis = match self.aligner.offset_us() {
                None => {
                    if full || force {
                        None
                    } else {
                        break;
                    }
                }
                Some(off) => {
                    let tp = t.saturating_add(off);
                    self.s1.ring.trim_before(tp.saturating_sub(period));
                    match self.s1.ring.back_time() {
                        Some(b) if b >= tp.saturating_add(period) => {
                            match self.s1.ring.interpolate(tp) {
                                None => None,
                                Some(g) => match self.s1.calib(g.epoch) {
                                    Some(c) if c.ml.is_none() && !(full || force) => break,
                                    _ => to_seg(&self.s1, &g),
                                },
                            }
                        }
                        _ => {
                            if force || newest.saturating_sub(t) > lookahead_us || full {
                                None
                            } else {
                                break;
                            }
                        }
                    }
                }
            };
            self.t12.ring.pop_front();
            self.core.frame(cfg, &self.anthro, t, trunk, pelvis, out);
        }
    }
}
