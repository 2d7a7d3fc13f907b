//! PostgreSQL binary `COPY` encoding of the record tables' rows.
//!
//! Invariants:
//! - The column order is `schema::REP_COLUMNS` then `stored_at` for reps, and
//!   [`KIN_COPY_COLUMNS`] for kinematics; the encoders write exactly those fields, in the
//!   types the tables declare (a type mismatch is a server error, never a silent cast).
//! - Times are the wire's µs since the Unix epoch, shifted to PostgreSQL's 2000-01-01 epoch;
//!   the caller has validated them (`common::validate_rep` / `expand_kinematics`).

use liftguard_proto::v1::RepRecord;

use crate::common::KinPoint;

/// µs between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// The kinematics columns in copy order.
pub(crate) const KIN_COPY_COLUMNS: &str =
    "gym_id, athlete_id, time, lumbar_flexion_deg, trunk_inclination_deg, pelvis_inclination_deg";

/// The 19-byte header of a binary COPY stream: signature, flags, extension length.
pub(crate) const COPY_HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The trailer ending a binary COPY stream.
pub(crate) const COPY_TRAILER: &[u8; 2] = &[0xff, 0xff];

/// Tuples of a binary COPY stream (send [`COPY_HEADER`] first and [`COPY_TRAILER`] last).
#[derive(Default)]
pub(crate) struct CopyBuf {
    pub buf: Vec<u8>,
}

impl CopyBuf {
    pub fn with_capacity(capacity: usize) -> Self {
        CopyBuf {
            buf: Vec::with_capacity(capacity),
        }
    }

    fn tuple(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn field(&mut self, bytes: &[u8]) {
        // Field lengths are far below i32::MAX (text fields are capped at 256 chars).
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn text(&mut self, s: &str) {
        self.field(s.as_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.field(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.field(&v.to_be_bytes());
    }

    fn bool(&mut self, v: bool) {
        self.field(&[u8::from(v)]);
    }

    fn f32(&mut self, v: f32) {
        self.field(&v.to_bits().to_be_bytes());
    }

    fn opt_f32(&mut self, v: Option<f32>) {
        match v {
            Some(v) => self.f32(v),
            None => self.null(),
        }
    }

    fn f64(&mut self, v: f64) {
        self.field(&v.to_bits().to_be_bytes());
    }

    fn time(&mut self, us: i64) {
        self.i64(us - PG_EPOCH_OFFSET_US);
    }

    /// One `reps` row: `REP_COLUMNS` then `stored_at`.
    pub fn rep(&mut self, r: &RepRecord, stored_us: i64) {
        let ev = r.evidence.as_ref();
        self.tuple(37);
        self.text(&r.rep_id);
        self.text(&r.gym_id);
        self.text(&r.athlete_id);
        self.text(&r.set_id);
        self.i64(i64::from(r.rep_index));
        self.i32(r.exercise);
        self.bool(r.exercise_inferred);
        self.f32(r.load_kg);
        self.time(r.start_us);
        self.time(r.end_us);
        self.time(r.bottom_us);
        self.time(r.concentric_start_us);
        self.f32(r.eccentric_s);
        self.f32(r.concentric_s);
        self.f32(r.peak_lumbar_flexion_deg);
        self.f32(r.peak_trunk_inclination_deg);
        self.f32(r.ldi);
        self.f32(r.peak_load_moment_nm);
        self.bool(r.extensor_event);
        self.opt_f32(ev.map(|e| e.peak_lumbar_ext_velocity_dps));
        self.opt_f32(ev.map(|e| e.lumbar_share_duration_ms));
        self.opt_f32(ev.map(|e| e.max_lumbar_share));
        self.opt_f32(ev.map(|e| e.ldi));
        self.opt_f32(ev.map(|e| e.onset_lag_ms));
        self.opt_f32(ev.map(|e| e.bottom_lumbar_flexion_deg));
        self.opt_f32(ev.map(|e| e.peak_load_moment_nm));
        self.opt_f32(ev.map(|e| e.top_hyperextension_deg));
        self.f32(r.fatigue_score);
        self.f32(r.fatigue_dose);
        self.f32(r.fatigue_observed);
        self.f32(r.stability_deficit);
        self.f64(r.damage);
        self.f64(r.cumulative_damage);
        self.text(&r.session_id);
        self.bool(r.clock_skew_flagged);
        self.i64(i64::from(r.model_version));
        self.time(stored_us);
    }

    /// One `kinematics` row in [`KIN_COPY_COLUMNS`] order.
    pub fn kin(&mut self, p: &KinPoint<'_>) {
        self.tuple(6);
        self.text(p.gym_id);
        self.text(p.athlete_id);
        self.time(p.t_us);
        self.f32(p.lumbar);
        self.opt_f32(p.trunk);
        self.opt_f32(p.pelvis);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tuple_and_trailer() {
        assert_eq!(&COPY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(&COPY_HEADER[11..], &[0u8; 8]);
        assert_eq!(COPY_TRAILER, &(-1i16).to_be_bytes());
        let mut c = CopyBuf::default();
        c.kin(&KinPoint {
            gym_id: "g",
            athlete_id: "a",
            t_us: PG_EPOCH_OFFSET_US + 1,
            lumbar: 1.0,
            trunk: None,
            pelvis: Some(2.0),
        });
        let b = c.buf;
        assert_eq!(&b[..2], &6i16.to_be_bytes());
        // gym "g": length 1 then the byte.
        assert_eq!(&b[2..7], &[0, 0, 0, 1, b'g']);
        // time field: 8 bytes holding 1 µs after 2000-01-01.
        assert_eq!(&b[12..24], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        // trunk NULL, then pelvis 2.0.
        assert_eq!(&b[32..36], &(-1i32).to_be_bytes());
        assert_eq!(&b[36..44], &[0, 0, 0, 4, 0x40, 0, 0, 0]);
        assert_eq!(b.len(), 44);
    }
}
