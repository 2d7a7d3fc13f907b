//! The athlete's movement: choreography of a whole session as smooth tracks, plus the raw
//! ground truth (in seconds of true time since session start).
//!
//! Degrees of freedom (each channel is built as the sum of three tracks: `main` keyframed
//! movement, `bg` background sway + physiological tremor over the whole session, `burst`
//! gait / instability windows; they are merged exactly into one track per channel):
//! - `PITCH` pelvic (S1) inclination θ_P, rad, absolute (forward positive);
//! - `LUMB` lumbar flexion θ_L, rad, relative to standing (flexion positive);
//! - `HX`, `HY`, `HZ` hip-centre displacement from standing, m (x anterior, y left, z up);
//! - `ROLL`, `YAW` pelvic roll (lateral tilt) and yaw (heading), rad;
//! - `BEND`, `TWIST` lumbar lateral bend and axial twist (trunk relative to pelvis), rad.
//!
//! Trunk (T12) inclination θ_T = θ_P + θ_L + (θ_T,stand − θ_P,stand), so the truth identity
//! θ_L = θ_T − θ_P − θ_L,stand holds exactly. Segment orientation = Rz(yaw)·Rx(roll)·Ry(pitch).
//!
//! Invariants: every main-track knot has zero velocity/acceleration unless it is an
//! intermediate "via" knot of one movement; burst windows never overlap; rep times are
//! ordered start < bottom <= concentric start < end <= next rep's start.

use std::f64::consts::PI;

use liftguard_model::{Exercise, Placement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::jet::{J, V3, body_omega, mv_c, rt_mul, vadd, zxy, zxy_axis};
use crate::track::{Knot, Track};
use crate::{AthleteSpec, G, SessionPlan, Truth, TruthAngle, TruthBout, TruthRep, TruthSet};

pub(crate) const PITCH: usize = 0;
pub(crate) const LUMB: usize = 1;
pub(crate) const HX: usize = 2;
pub(crate) const HY: usize = 3;
pub(crate) const HZ: usize = 4;
pub(crate) const ROLL: usize = 5;
pub(crate) const YAW: usize = 6;
pub(crate) const BEND: usize = 7;
pub(crate) const TWIST: usize = 8;
pub(crate) const NCH: usize = 9;

/// Latent fatigue = 0.6·fast + 0.4·slow component. Each component rises per rep by
/// (1 − F_i)·k_i·w·(load/capacity)² (w: exercise weight, deadlift 1) and recovers as
/// exp(−Δt/τ_i): the fast one (metabolic, τ 60 s) mostly recovers within a rest, the slow one
/// (τ 900 s) accumulates over the session.
const FAST_SHARE: f64 = 0.6;
const TAU_FAST_S: f64 = 60.0;
const TAU_SLOW_S: f64 = 900.0;
const K_FAST: f64 = 0.08;
const K_SLOW: f64 = 0.03;

fn deg(x: f64) -> f64 {
    x.to_radians()
}

pub(crate) fn uni(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.random::<f64>()
}

pub(crate) fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// Per-athlete static geometry.
#[derive(Debug, Clone)]
pub(crate) struct Body {
    pub scale: f64,
    pub theta_p_stand: f64,
    pub theta_t_stand: f64,
    /// hip centre → S1 at standing (world frame), m
    pub hip_to_s1: [f64; 3],
    /// S1 → T12 chord length, m
    pub lumbar_len: f64,
    /// sensor position relative to T12 in the trunk frame (skin + device), m
    pub lever_t: [f64; 3],
    /// sensor position relative to S1 in the pelvis frame, m
    pub lever_s: [f64; 3],
}

#[derive(Debug, Clone)]
struct RawRep {
    index: u32,
    t_start: f64,
    t_bottom: f64,
    t_conc: f64,
    t_end: f64,
    fault: bool,
    unstable: bool,
    fatigue: f64,
    lead_ms: f64,
}

#[derive(Debug, Clone)]
struct RawSet {
    set_id: String,
    exercise: Exercise,
    load_kg: f64,
    load_ratio: f64,
    t_start: f64,
    t_end: f64,
    reps: Vec<RawRep>,
    bouts: Vec<(f64, f64, bool)>,
}

/// Cursor for monotone evaluation of all tracks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cursor([usize; NCH]);

/// A fully built session movement.
#[derive(Debug, Clone)]
pub(crate) struct Motion {
    /// per channel: main + bg + burst merged into one exact track
    tracks: [Track; NCH],
    pub body: Body,
    pub duration_s: f64,
    sets: Vec<RawSet>,
}

impl Motion {
    #[inline]
    fn ch(&self, c: usize, t: f64, cur: &mut Cursor) -> J {
        self.tracks[c].eval(t, &mut cur.0[c])
    }

    /// Specific force (m/s², segment frame) and body angular velocity (rad/s, segment frame)
    /// of the sensor at `placement`, at `t` seconds of true time since session start.
    pub(crate) fn sensor_kinematics(
        &self,
        placement: Placement,
        t: f64,
        cur: &mut Cursor,
    ) -> ([f64; 3], [f64; 3]) {
        let b = &self.body;
        let pitch = self.ch(PITCH, t, cur);
        let roll = self.ch(ROLL, t, cur);
        let yaw = self.ch(YAW, t, cur);
        let hip: V3 = [
            self.ch(HX, t, cur),
            self.ch(HY, t, cur),
            self.ch(HZ, t, cur),
        ];
        let rel = pitch - J::c(b.theta_p_stand);
        let s1 = vadd(&hip, &mv_c(&zxy(yaw, roll, rel), &b.hip_to_s1));
        let (r, p) = match placement {
            Placement::Sacrum => {
                let r = zxy(yaw, roll, pitch);
                let p = vadd(&s1, &mv_c(&r, &b.lever_s));
                (r, p)
            }
            Placement::Thoracolumbar => {
                let lumb = self.ch(LUMB, t, cur);
                let bend = self.ch(BEND, t, cur);
                let twist = self.ch(TWIST, t, cur);
                let trunk = pitch + lumb + J::c(b.theta_t_stand - b.theta_p_stand);
                let r = zxy(yaw + twist, roll + bend, trunk);
                let phi = (trunk + pitch) * 0.5 - J::c(0.5 * (b.theta_t_stand + b.theta_p_stand));
                let chord = zxy_axis(yaw + twist * 0.5, roll + bend * 0.5, phi, b.lumbar_len);
                let p = vadd(&vadd(&s1, &chord), &mv_c(&r, &b.lever_t));
                (r, p)
            }
        };
        let f_world = [p[0].dd, p[1].dd, p[2].dd + G];
        (rt_mul(&r, &f_world), body_omega(&r))
    }

    /// (trunk inclination, pelvis inclination, lumbar flexion) in degrees at `t`.
    pub(crate) fn angles(&self, t: f64, cur: &mut Cursor) -> (f64, f64, f64) {
        let p = self.ch(PITCH, t, cur).v;
        let l = self.ch(LUMB, t, cur).v;
        let trunk = p + l + self.body.theta_t_stand - self.body.theta_p_stand;
        (trunk.to_degrees(), p.to_degrees(), l.to_degrees())
    }

    fn lumbar(&self, t: f64, cur: &mut Cursor) -> J {
        self.ch(LUMB, t, cur)
    }

    /// Builds the truth, with times on a clock whose reading at session start is `t0_us`.
    pub(crate) fn truth(&self, t0_us: i64) -> Truth {
        let to_us = |t: f64| t0_us.saturating_add((t * 1e6).round() as i64);
        let mut cur = Cursor::default();
        let n = (self.duration_s * 100.0).floor() as usize + 1;
        let mut lumbar = Vec::with_capacity(n);
        for k in 0..n {
            let t = k as f64 * 0.01;
            let (tr, pe, lu) = self.angles(t, &mut cur);
            lumbar.push(TruthAngle {
                t_us: t0_us.saturating_add(k as i64 * 10_000),
                lumbar_flexion_deg: lu,
                trunk_inclination_deg: tr,
                pelvis_inclination_deg: pe,
            });
        }
        let mut sets = Vec::with_capacity(self.sets.len());
        let mut lc = Cursor::default();
        for s in &self.sets {
            let mut reps = Vec::with_capacity(s.reps.len());
            for r in &s.reps {
                let mut peak = f64::NEG_INFINITY;
                let mut min = f64::INFINITY;
                let mut vmax = 0.0f64;
                let early_end = r.t_conc + 0.4 * (r.t_end - r.t_conc);
                let mut t = r.t_start;
                while t <= r.t_end {
                    let j = self.lumbar(t, &mut lc);
                    peak = peak.max(j.v);
                    min = min.min(j.v);
                    if t >= r.t_conc && t <= early_end {
                        vmax = vmax.max(-j.d);
                    }
                    t += 0.002;
                }
                reps.push(TruthRep {
                    index: r.index,
                    start_us: to_us(r.t_start),
                    bottom_us: to_us(r.t_bottom),
                    concentric_start_us: to_us(r.t_conc),
                    end_us: to_us(r.t_end),
                    peak_lumbar_flexion_deg: peak.to_degrees(),
                    extensor_fault: r.fault,
                    unstable: r.unstable,
                    fatigue: r.fatigue,
                    min_lumbar_flexion_deg: min.to_degrees(),
                    peak_lumbar_ext_velocity_early_dps: vmax.to_degrees(),
                    lumbar_lead_ms: r.lead_ms,
                });
            }
            sets.push(TruthSet {
                set_id: s.set_id.clone(),
                exercise: s.exercise,
                load_kg: s.load_kg,
                start_us: to_us(s.t_start),
                end_us: to_us(s.t_end),
                reps,
                load_ratio: s.load_ratio,
                bouts: s
                    .bouts
                    .iter()
                    .map(|&(a, b, u)| TruthBout {
                        start_us: to_us(a),
                        end_us: to_us(b),
                        unstable: u,
                    })
                    .collect(),
            });
        }
        Truth {
            sets,
            lumbar,
            standing_trunk_deg: self.body.theta_t_stand.to_degrees(),
            standing_pelvis_deg: self.body.theta_p_stand.to_degrees(),
            start_us: t0_us,
            end_us: to_us(self.duration_s),
        }
    }

    /// Builds the session movement. Depends only on the arguments.
    pub(crate) fn build(
        athlete: &AthleteSpec,
        plan: &SessionPlan,
        quiet_stance_s: f64,
        seed: u64,
    ) -> Motion {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let h = if athlete.height_m.is_finite() {
            athlete.height_m.clamp(1.3, 2.2)
        } else {
            1.75
        };
        let scale = h / 1.75;
        let bmi = if athlete.mass_kg.is_finite() && athlete.mass_kg > 0.0 {
            (athlete.mass_kg / (h * h)).clamp(15.0, 45.0)
        } else {
            24.0
        };
        let soft = 0.02 + 0.0015 * (bmi - 20.0).max(0.0);
        let body = Body {
            scale,
            theta_p_stand: deg((18.0 + 4.0 * gauss(&mut rng)).clamp(8.0, 28.0)),
            theta_t_stand: deg((-3.0 + 3.0 * gauss(&mut rng)).clamp(-10.0, 5.0)),
            hip_to_s1: [-0.06 * scale, 0.0, 0.09 * scale],
            lumbar_len: 0.10 * h,
            lever_t: [-(soft + 0.008), 0.0, 0.01],
            lever_s: [-(soft + 0.008), 0.0, -0.01],
        };
        let mut b = Builder {
            rng,
            ath: athlete,
            main: Default::default(),
            burst: Default::default(),
            burst_end: f64::NEG_INFINITY,
            efforts: Vec::new(),
            fatigue: 0.0,
            fat_fast: 0.0,
            fat_slow: 0.0,
            fat_t: 0.0,
            sets: Vec::with_capacity(plan.sets.len()),
            t: 0.0,
            body,
        };
        for c in 0..NCH {
            let p = b.stand(c);
            b.main[c].push(Knot::rest(0.0, p));
        }
        let quiet = if quiet_stance_s.is_finite() {
            quiet_stance_s.clamp(0.0, 600.0)
        } else {
            3.0
        };
        b.t = quiet;
        b.fat_t = quiet;
        for set in &plan.sets {
            b.run_set(set);
            let rest = if set.rest_after_s.is_finite() {
                set.rest_after_s.clamp(2.0, 3600.0)
            } else {
                2.0
            };
            let from = b.t;
            b.rest(from, from + rest);
            b.t = from + rest;
        }
        let duration = b.t.max(quiet) + 0.5;
        b.finish(duration)
    }
}

struct Builder<'a> {
    rng: ChaCha8Rng,
    ath: &'a AthleteSpec,
    body: Body,
    main: [Track; NCH],
    burst: [Track; NCH],
    burst_end: f64,
    /// (t0, t1, physiological tremor multiplier)
    efforts: Vec<(f64, f64, f64)>,
    fatigue: f64,
    fat_fast: f64,
    fat_slow: f64,
    fat_t: f64,
    sets: Vec<RawSet>,
    t: f64,
}

#[derive(Clone, Copy)]
enum GaitMode {
    /// oscillation at step frequency
    Step,
    /// oscillation at stride frequency (left/right)
    Stride,
}

impl Builder<'_> {
    fn u(&mut self, a: f64, b: f64) -> f64 {
        uni(&mut self.rng, a, b)
    }

    fn n(&mut self, sd: f64) -> f64 {
        sd * gauss(&mut self.rng)
    }

    /// multiplicative rep-to-rep jitter
    fn j(&mut self, sd: f64) -> f64 {
        (1.0 + sd * gauss(&mut self.rng)).clamp(1.0 - 3.0 * sd, 1.0 + 3.0 * sd)
    }

    fn chance(&mut self, p: f64) -> bool {
        chance(&mut self.rng, p)
    }

    fn stand(&self, c: usize) -> f64 {
        match c {
            PITCH => self.body.theta_p_stand,
            YAW => self.main[YAW].last_p(),
            _ => 0.0,
        }
    }

    fn hold(&mut self, c: usize, t: f64) {
        let tr = &mut self.main[c];
        if t > tr.last_t() + 1e-6 {
            let p = tr.last_p();
            tr.push(Knot::rest(t, p));
        }
    }

    /// Moves channel `c` from its current value (held until `t0`) to `target` at `t1`
    /// (minimum-jerk shape).
    fn go(&mut self, c: usize, t0: f64, t1: f64, target: f64) {
        self.hold(c, t0);
        let t0 = t0.max(self.main[c].last_t());
        self.main[c].push(Knot::rest(t1.max(t0 + 0.02), target));
    }

    /// Intermediate knot with a non-zero velocity.
    fn via(&mut self, c: usize, t: f64, p: f64, v: f64) {
        let t = t.max(self.main[c].last_t() + 0.02);
        self.main[c].push(Knot { t, p, v, a: 0.0 });
    }

    fn recover_to(&mut self, t: f64) {
        let dt = (t - self.fat_t).max(0.0);
        self.fat_fast *= (-dt / TAU_FAST_S).exp();
        self.fat_slow *= (-dt / TAU_SLOW_S).exp();
        self.fatigue = FAST_SHARE * self.fat_fast + (1.0 - FAST_SHARE) * self.fat_slow;
        self.fat_t = self.fat_t.max(t);
    }

    fn load(&mut self, ratio: f64, weight: f64, t_end: f64) {
        let r = if ratio.is_finite() {
            ratio.clamp(0.0, 2.0)
        } else {
            0.0
        };
        let x = weight * r * r;
        self.fat_fast =
            (self.fat_fast + (1.0 - self.fat_fast) * (K_FAST * x).min(0.5)).clamp(0.0, 1.0);
        self.fat_slow =
            (self.fat_slow + (1.0 - self.fat_slow) * (K_SLOW * x).min(0.5)).clamp(0.0, 1.0);
        self.fatigue = FAST_SHARE * self.fat_fast + (1.0 - FAST_SHARE) * self.fat_slow;
        self.fat_t = self.fat_t.max(t_end);
    }

    fn p_fault(&self, ratio: f64) -> f64 {
        let f = self.fatigue;
        let fp = if self.ath.fault_propensity.is_finite() {
            self.ath.fault_propensity.max(0.0)
        } else {
            1.0
        };
        (fp * (0.02 + 0.15 * f + 0.45 * f * f + 0.1 * (ratio - 0.75).max(0.0))).clamp(0.0, 0.9)
    }

    /// Instability only ever occurs above the athlete's stability threshold.
    fn unstable_draw(&mut self, ratio: f64) -> bool {
        let sc = self.ath.stability_capacity;
        if ratio.is_nan() || ratio <= sc {
            return false;
        }
        let p = (0.75 + 2.0 * (ratio - sc) + 0.3 * self.fatigue).clamp(0.0, 1.0);
        self.chance(p)
    }

    fn severity(&self, ratio: f64) -> f64 {
        (1.0 + 4.0 * (ratio - self.ath.stability_capacity).max(0.0)).min(2.0)
            * (1.0 + 0.3 * self.fatigue)
    }

    fn run_set(&mut self, set: &crate::SetPlan) {
        let ratio = self.ath.load_ratio(set.exercise, set.load_kg);
        let t_start = self.t;
        self.recover_to(t_start);
        let effort = 2.5 * (1.0 + 1.5 * self.fatigue) * (0.6 + 0.6 * ratio.clamp(0.0, 1.5));
        let mut reps = Vec::new();
        let mut bouts = Vec::new();
        let n = set.reps.min(200);
        // set activity that is not a rep (walk-out, pick-up, park) extends the set's span
        let mut tail_activity = false;
        match set.exercise {
            Exercise::Deadlift => {
                for i in 1..=n {
                    reps.push(self.hinge_rep(set.exercise, ratio, i));
                }
            }
            Exercise::Squat => {
                // walk the bar out of the rack, squat, walk it back in
                let d = self.u(1.8, 3.0);
                let t = self.t;
                self.gait(t, t + d, 0.9, None);
                self.t = t + d + self.u(0.6, 1.2);
                for i in 1..=n {
                    reps.push(self.hinge_rep(set.exercise, ratio, i));
                }
                let d = self.u(1.8, 3.0);
                let t = self.t;
                self.gait(t, t + d, 0.9, None);
                self.t = t + d;
                tail_activity = true;
            }
            Exercise::KettlebellSwing => {
                // pick the bell up from the floor (a hinge that is not a swing)
                self.hinge_transfer();
                self.t += self.u(0.3, 1.0);
                let base = 1.9 * self.u(0.93, 1.07) * (1.0 + 0.15 * (ratio - 0.8)).clamp(0.9, 1.15);
                for i in 1..=n {
                    reps.push(self.swing_rep(ratio, i, base));
                }
                // settle back to standing after the last swing, then park the bell
                let t = self.t;
                for c in [PITCH, LUMB, HX, HZ, ROLL, BEND, TWIST, HY] {
                    let s = self.stand(c);
                    self.go(c, t, t + 0.6, s);
                }
                self.t = t + self.u(0.8, 1.5);
                self.hinge_transfer();
                tail_activity = true;
            }
            Exercise::Carry => {
                bouts = self.carry(ratio, n.max(1));
                tail_activity = true;
            }
        }
        let t_end = if tail_activity {
            self.t
        } else {
            reps.last().map_or(self.t, |r: &RawRep| r.t_end)
        }
        .max(t_start);
        self.efforts.push((t_start, self.t.max(t_end), effort));
        self.sets.push(RawSet {
            set_id: set.set_id.clone(),
            exercise: set.exercise,
            load_kg: set.load_kg,
            load_ratio: ratio,
            t_start,
            t_end,
            reps,
            bouts,
        });
    }

    fn hinge_rep(&mut self, ex: Exercise, ratio: f64, index: u32) -> RawRep {
        let ts = self.t;
        self.recover_to(ts);
        let f = self.fatigue;
        let s = self.body.scale;
        let var = 0.04 * (1.0 + 2.0 * f);
        let fault = {
            let p = self.p_fault(ratio);
            self.chance(p)
        };
        let unstable = self.unstable_draw(ratio);
        let heavy = (ratio - 0.5).max(0.0);
        let deadlift = ex == Exercise::Deadlift;
        let (mut dp, mut lb, hx, hz, mut ecc, pause, mut con, hold) = if deadlift {
            (
                self.u(35.0, 50.0),
                self.u(12.0, 22.0),
                -self.u(0.10, 0.16) * s,
                -self.u(0.22, 0.32) * s,
                self.u(1.1, 1.6),
                self.u(0.15, 0.5),
                self.u(0.9, 1.25) * (1.0 + 0.9 * heavy),
                self.u(0.5, 1.4),
            )
        } else {
            (
                self.u(15.0, 28.0),
                self.u(10.0, 20.0),
                -self.u(0.07, 0.13) * s,
                -self.u(0.36, 0.5) * s,
                self.u(1.3, 2.0),
                self.u(0.05, 0.3),
                self.u(1.0, 1.4) * (1.0 + 0.9 * heavy),
                self.u(0.4, 1.2),
            )
        };
        // with fatigue and load the lumbar spine takes a larger share of the motion
        dp *= (1.0 - 0.12 * f) * self.j(var);
        lb *= (1.0 + 0.15 * heavy) * self.j(var);
        ecc *= (1.0 + 0.25 * f) * (1.0 + 0.2 * heavy) * self.j(var);
        con *= (1.0 + 0.35 * f) * self.j(var);
        lb += 6.0 * f;
        if fault {
            lb = (lb + self.u(3.0, 8.0)).max(16.0);
        }
        if unstable {
            ecc *= self.u(1.05, 1.25);
        }
        let tb = ts + ecc;
        let tc = tb + pause;
        let te = tc + con;
        let pst = self.body.theta_p_stand;
        // eccentric: hips back first, then pelvis tilts, lumbar flexes, knees bend
        let (d_p, d_l, d_z) = if deadlift {
            (self.u(0.0, 0.1), self.u(0.05, 0.2), self.u(0.1, 0.25))
        } else {
            (self.u(0.0, 0.1), self.u(0.15, 0.35), self.u(0.0, 0.05))
        };
        self.go(PITCH, ts + d_p * ecc, tb, pst + deg(dp));
        self.go(LUMB, ts + d_l * ecc, tb, deg(lb));
        self.go(HX, ts, tb - 0.05 * ecc, hx);
        self.go(HZ, ts + d_z * ecc, tb, hz);
        let (hy, rl, bd, tw) = (
            self.n(0.006) * s,
            deg(self.n(1.0)),
            deg(self.n(1.2) * (1.0 + f)),
            deg(self.n(1.5) * (1.0 + f)),
        );
        self.go(HY, ts, tb, hy);
        self.go(ROLL, ts, tb, rl);
        self.go(BEND, ts, tb, bd);
        self.go(TWIST, ts, tb, tw);
        // concentric
        let p_end = pst + deg(self.n(0.6));
        let l_end = deg(self.u(-1.5, 1.0));
        let lead_ms = if fault {
            // lumbar-led: the lumbar spine extends first and fast, the pelvis waits
            let vp = self.u(85.0, 160.0);
            let fr = self.u(0.6, 0.8);
            let tau = (1.875 * fr * lb / vp).clamp(0.12, 0.38 * con);
            let lagp = self.u(0.10, 0.22).min(0.3 * con);
            self.hold(LUMB, tc);
            self.via(
                LUMB,
                tc + tau,
                deg(lb * (1.0 - fr)),
                -deg(0.3 * fr * lb / tau),
            );
            self.go(LUMB, tc + tau, te, l_end);
            let e = self.u(0.0, 0.05) * con;
            self.go(PITCH, tc + lagp, te - e, p_end);
            self.go(HX, tc + 0.6 * lagp, te - 0.1 * con, 0.0);
            self.go(HZ, tc + 0.5 * lagp, te - 0.05 * con, 0.0);
            lagp * 1000.0
        } else {
            let borderline = self.chance(0.15 + 0.25 * f);
            let lag = if borderline {
                self.u(0.03, 0.08)
            } else {
                self.u(0.06, 0.25)
            };
            let e = self.u(0.0, 0.08) * con;
            self.go(PITCH, tc, te - e, p_end);
            if borderline {
                let tm = tc + self.u(0.4, 0.55) * con;
                let fr = self.u(0.55, 0.75);
                self.hold(LUMB, tc + lag);
                self.via(
                    LUMB,
                    tm,
                    deg(lb * (1.0 - fr)),
                    -deg(0.35 * fr * lb / (tm - tc - lag)),
                );
                self.go(LUMB, tm, te, l_end);
            } else {
                self.go(LUMB, tc + lag, te, l_end);
            }
            self.go(HX, tc, te - 0.1 * con, 0.0);
            self.go(HZ, tc + 0.02, te - 0.05 * con, 0.0);
            -lag * 1000.0
        };
        for c in [HY, ROLL, BEND, TWIST] {
            self.go(c, tc, te, 0.0);
        }
        if unstable {
            self.instability(ts, tb, te, ratio);
        }
        let w = if deadlift { 1.0 } else { 0.9 };
        self.load(ratio, w, te);
        let hold = hold * (1.0 + 0.5 * f) * self.j(0.15);
        self.t = te + hold;
        RawRep {
            index,
            t_start: ts,
            t_bottom: tb,
            t_conc: tc,
            t_end: te,
            fault,
            unstable,
            fatigue: f,
            lead_ms,
        }
    }

    fn swing_rep(&mut self, ratio: f64, index: u32, base: f64) -> RawRep {
        let t0 = self.t;
        self.recover_to(t0);
        let f = self.fatigue;
        let s = self.body.scale;
        let var = 0.025 * (1.0 + 2.0 * f);
        let tp = base * (1.0 + 0.1 * f) * self.j(var);
        let fault = {
            let p = self.p_fault(ratio);
            self.chance(p)
        };
        let unstable = self.unstable_draw(ratio);
        let dp = self.u(35.0, 48.0) * self.j(var);
        let lb = self.u(7.0, 14.0) * self.j(var) + 3.0 * f;
        let hx = -self.u(0.12, 0.18) * s;
        let hz = -self.u(0.07, 0.13) * s;
        let tb = t0 + 0.45 * tp;
        let tc = tb + 0.03 * tp;
        let ttop = tc + 0.30 * tp;
        let tnext = t0 + tp;
        let pst = self.body.theta_p_stand;
        self.go(PITCH, t0 + 0.03 * tp, tb, pst + deg(dp));
        self.go(LUMB, t0 + 0.06 * tp, tb, deg(lb));
        self.go(HX, t0 + 0.02 * tp, tb - 0.02 * tp, hx);
        self.go(HZ, t0 + 0.04 * tp, tb, hz);
        let (rl, tw) = (deg(self.n(0.8)), deg(self.n(1.2) * (1.0 + f)));
        self.go(ROLL, t0, tb, rl);
        self.go(TWIST, t0, tb, tw);
        let lag = self.u(0.03, 0.09);
        let lockout = pst - deg(self.u(1.0, 4.0));
        self.go(PITCH, tc, ttop, lockout);
        self.go(HX, tc, ttop - 0.03 * tp, 0.0);
        self.go(HZ, tc, ttop - 0.03 * tp, 0.0);
        self.go(ROLL, tc, ttop, 0.0);
        self.go(TWIST, tc, ttop, 0.0);
        if fault {
            let hyper = self.u(6.5, 14.0);
            self.go(LUMB, tc + lag, ttop, -deg(hyper));
            let hold = self.u(0.06, 0.14);
            self.hold(LUMB, ttop + hold);
        } else {
            let top = deg(self.u(-3.0, 0.5));
            self.go(LUMB, tc + lag, ttop, top);
        }
        self.go(LUMB, ttop + 0.02 * tp, tnext - 0.04 * tp, 0.0);
        self.go(PITCH, ttop + 0.02 * tp, tnext - 0.03 * tp, pst);
        if unstable {
            self.instability(t0, tb, ttop, ratio);
        }
        self.load(ratio, 0.3, ttop);
        self.t = tnext;
        RawRep {
            index,
            t_start: t0,
            t_bottom: tb,
            t_conc: tc,
            t_end: ttop,
            fault,
            unstable,
            fatigue: f,
            lead_ms: -lag * 1000.0,
        }
    }

    /// Pick-up or put-down of an implement (carry handles, kettlebell): a hinge that is not a rep.
    fn hinge_transfer(&mut self) {
        let t = self.t;
        let s = self.body.scale;
        let pst = self.body.theta_p_stand;
        let dp = deg(self.u(30.0, 40.0));
        let lb = deg(self.u(10.0, 18.0));
        let hz = -self.u(0.24, 0.3) * s;
        self.go(PITCH, t, t + 1.1, pst + dp);
        self.go(LUMB, t + 0.1, t + 1.1, lb);
        self.go(HX, t, t + 1.0, -0.1 * s);
        self.go(HZ, t + 0.15, t + 1.1, hz);
        let tb = t + 1.4;
        self.go(PITCH, tb, tb + 1.1, pst);
        self.go(LUMB, tb + 0.08, tb + 1.2, 0.0);
        self.go(HX, tb, tb + 1.0, 0.0);
        self.go(HZ, tb, tb + 1.0, 0.0);
        self.t = tb + 1.5;
    }

    fn carry(&mut self, ratio: f64, lengths: u32) -> Vec<(f64, f64, bool)> {
        self.hinge_transfer();
        let mut bouts = Vec::with_capacity(lengths as usize);
        for _ in 0..lengths {
            let t0 = self.t;
            self.recover_to(t0);
            let dur = self.u(8.0, 13.0);
            let unstable = self.unstable_draw(ratio);
            let sev = if unstable {
                Some(self.severity(ratio))
            } else {
                None
            };
            self.gait(t0, t0 + dur, 1.0 + 0.3 * ratio.min(1.5), sev);
            // turn at the end of the length
            let dir = if self.chance(0.5) { PI } else { -PI };
            let y = self.main[YAW].last_p();
            self.go(YAW, t0 + dur - 1.3, t0 + dur, y + dir);
            self.load(ratio, 0.5 * dur / 10.0, t0 + dur);
            bouts.push((t0, t0 + dur, unstable));
            self.t = t0 + dur + self.u(0.2, 0.8);
        }
        self.hinge_transfer();
        bouts
    }

    /// Walking in [t0, t1]: gait oscillations (and tremor/sway when `unstable`) in the burst
    /// tracks. `amp` scales the gait amplitude (load makes steps heavier).
    fn gait(&mut self, t0: f64, t1: f64, amp: f64, unstable: Option<f64>) {
        let t0 = t0.max(self.burst_end + 0.01);
        if t1 - t0 < 1.5 {
            return;
        }
        let s = self.body.scale;
        let fs = self.u(1.7, 2.0) / amp.sqrt();
        let mut steps = Vec::new();
        let mut t = t0 + 0.3;
        while t < t1 - 0.3 {
            steps.push(t);
            t += (1.0 / fs) * self.j(0.03);
        }
        let env = move |t: f64| smooth_window(t, t0, t1, 0.8);
        let spec: [(usize, GaitMode, f64, f64); 9] = [
            (HZ, GaitMode::Step, 0.018 * s, 0.0),
            (HX, GaitMode::Step, 0.010 * s, 0.25),
            (PITCH, GaitMode::Step, deg(1.2), 0.1),
            (LUMB, GaitMode::Step, deg(0.8), 0.35),
            (HY, GaitMode::Stride, 0.022 * s, 0.15),
            (ROLL, GaitMode::Stride, deg(3.0), 0.2),
            (YAW, GaitMode::Stride, deg(4.0), 0.0),
            (TWIST, GaitMode::Stride, -deg(6.0), 0.0),
            (BEND, GaitMode::Stride, deg(1.5), 0.2),
        ];
        for (c, mode, a, ph) in spec {
            let a = a * amp * self.u(0.8, 1.2);
            let mut secs = vec![Track::from_knots(gait_train(
                &steps, a, mode, ph, &env, t0, t1,
            ))];
            let (tremor, sway) = match unstable {
                Some(sev) => self.instability_amps(c, sev),
                None => (0.0, 0.0),
            };
            if sway > 0.0 {
                let sw = train(&mut self.rng, t0, t1, 0.5, 1.2, &|t| sway * env(t));
                secs.push(Track::from_knots(sw));
            }
            let prim = train(&mut self.rng, t0, t1, 4.0, 12.0, &|t| tremor * env(t));
            combine_into(&mut self.burst[c], &prim, &mut secs);
        }
        self.burst_end = t1;
    }

    /// (tremor amplitude, sway amplitude) of channel `c` for instability of severity `sev`.
    fn instability_amps(&mut self, c: usize, sev: f64) -> (f64, f64) {
        let s = self.body.scale;
        match c {
            PITCH => (deg(self.u(0.05, 0.12)) * sev, deg(0.4) * sev),
            LUMB => (deg(self.u(0.04, 0.10)) * sev, 0.0),
            ROLL => (deg(self.u(0.05, 0.12)) * sev, deg(self.u(1.0, 2.0)) * sev),
            HX => (self.u(0.06e-3, 0.15e-3) * sev, 0.0),
            HY => (
                self.u(0.06e-3, 0.15e-3) * sev,
                self.u(0.006, 0.012) * s * sev,
            ),
            HZ => (self.u(0.05e-3, 0.12e-3) * sev, 0.0),
            _ => (0.0, 0.0),
        }
    }

    /// Tremor (4–12 Hz) and sway on an unstable rep: full on the eccentric [ts, tb], 35 % after.
    fn instability(&mut self, ts: f64, tb: f64, te: f64, ratio: f64) {
        let ts = ts.max(self.burst_end + 0.01);
        if te - ts < 0.3 {
            return;
        }
        let sev = self.severity(ratio);
        // builds up over the first 40 % of the lowering, strongest towards the bottom
        let ramp = (0.4 * (tb - ts)).max(0.15);
        let env = move |t: f64| {
            let w = smooth_window(t, ts, te, ramp);
            let after = ((t - tb) / 0.25).clamp(0.0, 1.0);
            w * (1.0 - 0.65 * after)
        };
        for c in [PITCH, LUMB, ROLL, HX, HY, HZ] {
            let (tremor, sway) = self.instability_amps(c, sev);
            let mut secs = Vec::new();
            if sway > 0.0 {
                let sw = train(&mut self.rng, ts, te, 0.6, 1.8, &|t| sway * env(t));
                secs.push(Track::from_knots(sw));
            }
            let prim = train(&mut self.rng, ts, te, 4.0, 12.0, &|t| tremor * env(t));
            combine_into(&mut self.burst[c], &prim, &mut secs);
        }
        self.burst_end = te;
    }

    /// Standing rest in [from, to]: weight shifts, posture changes, looking around, a few
    /// steps; back to the standing posture ~1 s before `to`.
    fn rest(&mut self, from: f64, to: f64) {
        let s = self.body.scale;
        let pst = self.body.theta_p_stand;
        let mut t = from;
        loop {
            let next = t + self.u(3.0, 12.0);
            if next + 4.5 > to {
                break;
            }
            t = next;
            let r = self.rng.random::<f64>();
            if r < 0.5 {
                let dur = self.u(0.7, 1.5);
                let side = if self.chance(0.5) { 1.0 } else { -1.0 };
                let hy = side * self.u(0.01, 0.035) * s;
                let rl = -side * deg(self.u(0.8, 2.5));
                let bd = side * deg(self.u(0.0, 1.5));
                self.go(HY, t, t + dur, hy);
                self.go(ROLL, t, t + dur, rl);
                self.go(BEND, t, t + dur, bd);
                t += dur;
            } else if r < 0.72 {
                let dur = self.u(1.0, 2.5);
                let l = deg(self.n(1.5));
                let p = pst + deg(self.n(1.2));
                self.go(LUMB, t, t + dur, l);
                self.go(PITCH, t, t + dur, p);
                t += dur;
            } else if r < 0.86 {
                let dur = self.u(0.8, 2.0);
                let tw = deg(self.n(6.0));
                self.go(TWIST, t, t + dur, tw);
                t += dur;
            } else {
                let dur = self.u(2.5, 6.0);
                if t + dur + 4.0 > to {
                    break;
                }
                self.gait(t, t + dur, 0.8, None);
                if self.chance(0.5) {
                    let y = self.main[YAW].last_p();
                    let turn = deg(self.u(-180.0, 180.0));
                    self.go(YAW, t + 0.5, t + dur - 0.5, y + turn);
                }
                t += dur;
            }
        }
        let tr = (to - 1.2).max(t);
        for c in [PITCH, LUMB, HX, HY, HZ, ROLL, BEND, TWIST] {
            let st = self.stand(c);
            self.go(c, tr, tr + 1.0, st);
        }
    }

    fn finish(mut self, duration: f64) -> Motion {
        let mut bg: [Track; NCH] = Default::default();
        let s = self.body.scale;
        // (channel, physiological tremor amplitude at rest, sway amplitude)
        let spec: [(usize, f64, f64); 8] = [
            (PITCH, deg(0.012), deg(0.3)),
            (LUMB, deg(0.012), deg(0.25)),
            (HX, 0.015e-3, 0.003 * s),
            (HY, 0.015e-3, 0.003 * s),
            (HZ, 0.010e-3, 0.0006 * s),
            (ROLL, deg(0.01), deg(0.25)),
            (TWIST, 0.0, deg(0.4)),
            (BEND, 0.0, deg(0.2)),
        ];
        let mut efforts = std::mem::take(&mut self.efforts);
        efforts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let effort = |t: f64| -> f64 {
            let i = efforts.partition_point(|e| e.0 <= t);
            if i == 0 {
                return 1.0;
            }
            let (a, b, m) = efforts[i - 1];
            1.0 + (m - 1.0).max(0.0) * smooth_window(t, a, b, 0.5)
        };
        for (c, tremor, sway) in spec {
            let sw = train(&mut self.rng, 0.0, duration, 0.08, 0.4, &|_| sway);
            let mut secs = vec![Track::from_knots(sw)];
            let prim = train(&mut self.rng, 0.0, duration, 7.0, 11.0, &|t| {
                tremor * effort(t)
            });
            combine_into(&mut bg[c], &prim, &mut secs);
        }
        for c in 0..NCH {
            self.hold(c, duration);
        }
        let tracks =
            std::array::from_fn(|c| Track::merged(&[&self.main[c], &bg[c], &self.burst[c]]));
        Motion {
            tracks,
            body: self.body,
            duration_s: duration,
            sets: self.sets,
        }
    }
}

impl Track {
    pub(crate) fn from_knots(k: Vec<Knot>) -> Track {
        let mut t = Track::default();
        for kn in k {
            t.push(kn);
        }
        t
    }
}

/// C¹ window: 0 outside [a, b], 1 inside with raised-cosine ramps of `ramp` seconds.
fn smooth_window(t: f64, a: f64, b: f64, ramp: f64) -> f64 {
    if t <= a || t >= b {
        return 0.0;
    }
    let r = ramp.min(0.5 * (b - a)).max(1e-6);
    let x = ((t - a) / r).min((b - t) / r).min(1.0);
    0.5 - 0.5 * (PI * x).cos()
}

/// A quasi-periodic oscillation in [t0, t1] with frequency drifting in [f_lo, f_hi]:
/// knots at successive extrema (v = 0, a = −ω²·p, which reproduces a sinusoid), each with
/// amplitude `amp(t)` × U(0.6, 1.3), faded in and out. Starts and ends at rest.
fn train(
    rng: &mut ChaCha8Rng,
    t0: f64,
    t1: f64,
    f_lo: f64,
    f_hi: f64,
    amp: &dyn Fn(f64) -> f64,
) -> Vec<Knot> {
    // intrinsic fade-in/out over ~3/4 of the slowest period, so no oscillation starts abruptly
    let fade = |t: f64| smooth_window(t, t0, t1, 0.75 / f_lo);
    let mut k = Vec::with_capacity((((t1 - t0) * 2.0 * f_hi) as usize).min(1 << 22) + 2);
    k.push(Knot::rest(t0, 0.0));
    let mut f = uni(rng, f_lo, f_hi);
    let mut sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
    let mut t = t0 + 0.25 / f;
    while t < t1 - 0.25 / f {
        let w = 2.0 * PI * f;
        let p = sign * amp(t) * fade(t) * uni(rng, 0.6, 1.3);
        k.push(Knot {
            t,
            p,
            v: 0.0,
            a: -w * w * p,
        });
        sign = -sign;
        f = (f + (f_hi - f_lo) * 0.15 * gauss(rng)).clamp(f_lo, f_hi);
        t += 0.5 / f;
    }
    k.push(Knot::rest(t1, 0.0));
    k
}

/// Gait oscillation locked to the step times.
fn gait_train(
    steps: &[f64],
    amp: f64,
    mode: GaitMode,
    phase: f64,
    env: &dyn Fn(f64) -> f64,
    t0: f64,
    t1: f64,
) -> Vec<Knot> {
    let mut k = Vec::with_capacity(steps.len() * 2 + 2);
    k.push(Knot::rest(t0, 0.0));
    let mut sign = 1.0;
    for w in steps.windows(2) {
        let d = w[1] - w[0];
        match mode {
            GaitMode::Step => {
                let sp = 0.5 * d;
                let om = PI / sp;
                for (frac, sg) in [(phase, -1.0), (phase + 0.5, 1.0)] {
                    let t = w[0] + frac * d;
                    let p = sg * amp * env(t);
                    k.push(Knot {
                        t,
                        p,
                        v: 0.0,
                        a: -om * om * p,
                    });
                }
            }
            GaitMode::Stride => {
                let om = PI / d;
                let t = w[0] + phase * d;
                let p = sign * amp * env(t);
                sign = -sign;
                k.push(Knot {
                    t,
                    p,
                    v: 0.0,
                    a: -om * om * p,
                });
            }
        }
    }
    k.push(Knot::rest(t1, 0.0));
    k
}

/// Appends to `out` the primary knots with the secondary tracks added (exact jets).
fn combine_into(out: &mut Track, prim: &[Knot], secs: &mut [Track]) {
    let mut hints = vec![0usize; secs.len()];
    for k in prim {
        let mut j = J {
            v: k.p,
            d: k.v,
            dd: k.a,
        };
        for (s, h) in secs.iter().zip(hints.iter_mut()) {
            j = j + s.eval(k.t, h);
        }
        out.push(Knot {
            t: k.t,
            p: j.v,
            v: j.d,
            a: j.dd,
        });
    }
}
