//! Piecewise quintic (C²) trajectories.
//!
//! A [`Track`] is a list of knots `(t, p, v, a)` with strictly increasing `t`; between two knots
//! the trajectory is the unique quintic matching position, velocity and acceleration at both
//! ends, so position, velocity and acceleration are continuous everywhere. Before the first
//! knot and after the last the track holds the end position (with zero derivatives), so the
//! builder must give zero velocity and acceleration to a track's first and last knot.
//! Evaluation is O(1) amortised for monotone time through a caller-held cursor.

use crate::jet::J;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Knot {
    pub t: f64,
    pub p: f64,
    pub v: f64,
    pub a: f64,
}

impl Knot {
    pub const fn rest(t: f64, p: f64) -> Knot {
        Knot {
            t,
            p,
            v: 0.0,
            a: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Track {
    knots: Vec<Knot>,
    /// optional per-segment polynomial coefficients (c0..c5 in s, then 1/T), filled by
    /// [`Track::merged`] for tracks evaluated per sample; empty while a track is being built
    coef: Vec<[f64; 7]>,
}

impl Track {
    pub fn last_t(&self) -> f64 {
        self.knots.last().map_or(f64::NEG_INFINITY, |k| k.t)
    }

    /// Value at the end of the track (0 when empty).
    pub fn last_p(&self) -> f64 {
        self.knots.last().map_or(0.0, |k| k.p)
    }

    /// Appends a knot. A knot at (almost) the same time as the last one replaces it; a knot
    /// earlier than the last one is a builder bug and is ignored (debug builds panic).
    pub fn push(&mut self, k: Knot) {
        self.coef.clear();
        if let Some(last) = self.knots.last_mut() {
            if (k.t - last.t).abs() < 1e-9 {
                *last = k;
                return;
            }
            if k.t < last.t {
                debug_assert!(false, "knot out of order: {} < {}", k.t, last.t);
                return;
            }
        }
        self.knots.push(k);
    }

    /// The exact sum of several tracks as one track. The sum of piecewise quintics is a
    /// piecewise quintic on the union of the knot times, and a quintic is determined by
    /// (p, v, a) at both ends of an interval, so the merged track reproduces the sum exactly
    /// (up to rounding) while costing one evaluation instead of `tracks.len()`.
    pub fn merged(tracks: &[&Track]) -> Track {
        let mut times: Vec<f64> = tracks
            .iter()
            .flat_map(|t| t.knots.iter().map(|k| k.t))
            .collect();
        times.sort_by(f64::total_cmp);
        times.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let mut hints = vec![0usize; tracks.len()];
        let mut out = Track {
            knots: Vec::with_capacity(times.len()),
            coef: Vec::new(),
        };
        for t in times {
            let mut j = J::ZERO;
            for (tr, h) in tracks.iter().zip(hints.iter_mut()) {
                j = j + tr.eval(t, h);
            }
            out.knots.push(Knot {
                t,
                p: j.v,
                v: j.d,
                a: j.dd,
            });
        }
        out.coef = out
            .knots
            .windows(2)
            .map(|w| coefficients(&w[0], &w[1]))
            .collect();
        out
    }

    /// Evaluates position, velocity, acceleration at `t`. `hint` is the caller's cursor
    /// (index of the segment start used last time); any value is valid.
    #[inline]
    pub fn eval(&self, t: f64, hint: &mut usize) -> J {
        let k = &self.knots;
        let n = k.len();
        if n == 0 {
            return J::ZERO;
        }
        if t <= k[0].t {
            *hint = 0;
            return J::c(k[0].p);
        }
        if t >= k[n - 1].t {
            *hint = n - 1;
            return J::c(k[n - 1].p);
        }
        // now k[0].t < t < k[n-1].t: find i with k[i].t <= t < k[i+1].t
        let mut i = (*hint).min(n - 2);
        if k[i].t > t || k[i + 1].t <= t {
            // short walk, then binary search if far away
            let mut steps = 0;
            while k[i + 1].t <= t && steps < 4 {
                i += 1;
                steps += 1;
            }
            while k[i].t > t && steps < 8 {
                i -= 1;
                steps += 1;
            }
            if k[i].t > t || k[i + 1].t <= t {
                i = k
                    .partition_point(|kn| kn.t <= t)
                    .saturating_sub(1)
                    .min(n - 2);
            }
        }
        *hint = i;
        match self.coef.get(i) {
            Some(c) => poly(c, t - k[i].t),
            None => quintic(&k[i], &k[i + 1], t),
        }
    }
}

fn coefficients(k0: &Knot, k1: &Knot) -> [f64; 7] {
    let tt = k1.t - k0.t;
    let dp = k1.p - k0.p;
    let v0 = k0.v * tt;
    let v1 = k1.v * tt;
    let a0 = k0.a * tt * tt;
    let a1 = k1.a * tt * tt;
    [
        k0.p,
        v0,
        0.5 * a0,
        10.0 * dp - 6.0 * v0 - 4.0 * v1 - 1.5 * a0 + 0.5 * a1,
        -15.0 * dp + 8.0 * v0 + 7.0 * v1 + 1.5 * a0 - a1,
        6.0 * dp - 3.0 * v0 - 3.0 * v1 - 0.5 * a0 + 0.5 * a1,
        1.0 / tt,
    ]
}

#[inline]
fn poly(c: &[f64; 7], dt: f64) -> J {
    let [c0, c1, c2, c3, c4, c5, inv] = *c;
    let s = dt * inv;
    J {
        v: c0 + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5)))),
        d: (c1 + s * (2.0 * c2 + s * (3.0 * c3 + s * (4.0 * c4 + s * 5.0 * c5)))) * inv,
        dd: (2.0 * c2 + s * (6.0 * c3 + s * (12.0 * c4 + s * 20.0 * c5))) * inv * inv,
    }
}

#[inline]
fn quintic(k0: &Knot, k1: &Knot, t: f64) -> J {
    if k0.p == k1.p && k0.v == 0.0 && k1.v == 0.0 && k0.a == 0.0 && k1.a == 0.0 {
        return J::c(k0.p);
    }
    let tt = k1.t - k0.t;
    let s = (t - k0.t) / tt;
    let dp = k1.p - k0.p;
    let v0 = k0.v * tt;
    let v1 = k1.v * tt;
    let a0 = k0.a * tt * tt;
    let a1 = k1.a * tt * tt;
    let c0 = k0.p;
    let c1 = v0;
    let c2 = 0.5 * a0;
    let c3 = 10.0 * dp - 6.0 * v0 - 4.0 * v1 - 1.5 * a0 + 0.5 * a1;
    let c4 = -15.0 * dp + 8.0 * v0 + 7.0 * v1 + 1.5 * a0 - a1;
    let c5 = 6.0 * dp - 3.0 * v0 - 3.0 * v1 - 0.5 * a0 + 0.5 * a1;
    let p = c0 + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5))));
    let dps = c1 + s * (2.0 * c2 + s * (3.0 * c3 + s * (4.0 * c4 + s * 5.0 * c5)));
    let ddps = 2.0 * c2 + s * (6.0 * c3 + s * (12.0 * c4 + s * 20.0 * c5));
    J {
        v: p,
        d: dps / tt,
        dd: ddps / (tt * tt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quintic_matches_boundary_conditions() {
        let a = Knot {
            t: 1.0,
            p: 2.0,
            v: 0.5,
            a: -1.0,
        };
        let b = Knot {
            t: 1.7,
            p: -1.0,
            v: 0.2,
            a: 3.0,
        };
        let s = quintic(&a, &b, 1.0);
        assert!(
            (s.v - 2.0).abs() < 1e-12 && (s.d - 0.5).abs() < 1e-12 && (s.dd + 1.0).abs() < 1e-9
        );
        let e = quintic(&a, &b, 1.7);
        assert!((e.v + 1.0).abs() < 1e-12 && (e.d - 0.2).abs() < 1e-9 && (e.dd - 3.0).abs() < 1e-8);
    }

    #[test]
    fn merged_track_is_the_exact_sum() {
        let mut a = Track::default();
        let mut b = Track::default();
        for i in 0..50 {
            let t = i as f64 * 0.37;
            let end = i == 0 || i == 49; // tracks start and end at rest
            a.push(Knot {
                t,
                p: (t * 1.3).sin(),
                v: if end { 0.0 } else { 0.2 * t.cos() },
                a: if end { 0.0 } else { -0.1 * t },
            });
        }
        for i in 0..80 {
            let t = 2.0 + i as f64 * 0.11;
            b.push(Knot {
                t,
                p: (t * 7.0).cos(),
                v: if i == 0 || i == 79 { 0.0 } else { 1.0 },
                a: 0.0,
            });
        }
        let m = Track::merged(&[&a, &b]);
        let (mut ha, mut hb, mut hm) = (0, 0, 0);
        let mut t = -1.0;
        while t < 20.0 {
            let s = a.eval(t, &mut ha) + b.eval(t, &mut hb);
            let x = m.eval(t, &mut hm);
            assert!(
                (s.v - x.v).abs() < 1e-9 && (s.d - x.d).abs() < 1e-8 && (s.dd - x.dd).abs() < 1e-6,
                "{t}: {s:?} {x:?}"
            );
            t += 0.0137;
        }
    }

    #[test]
    fn cursor_handles_backward_and_forward_jumps() {
        let mut tr = Track::default();
        for i in 0..100 {
            tr.push(Knot::rest(i as f64, (i as f64).sin()));
        }
        let mut h = 0;
        for &t in &[50.5, 3.2, 99.9, 0.1, 42.0, 42.0001, 41.9] {
            let mut fresh = 0;
            let a = tr.eval(t, &mut h);
            let b = tr.eval(t, &mut fresh);
            assert_eq!(a, b);
        }
    }
}
