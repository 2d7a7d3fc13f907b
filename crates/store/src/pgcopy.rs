//! PostgreSQL binary `COPY` encoding of the record tables' rows, and decoding of binary
//! `COPY ... TO STDOUT` streams ([`CopyOut`]).
//!
//! Invariants:
//! - The column order is `schema::REP_COLUMNS` then `stored_at` for reps, and
//!   [`KIN_COPY_COLUMNS`] for kinematics; the encoders write exactly those fields, in the
//!   types the tables declare (a type mismatch is a server error, never a silent cast).
//! - Times are the wire's µs since the Unix epoch, shifted to PostgreSQL's 2000-01-01 epoch;
//!   the caller has validated them (`common::validate_rep` / `expand_kinematics`).
//! - The decoder accepts any split of the stream into chunks, checks the header, the
//!   field count of every tuple and every field's length, and never panics on malformed
//!   input (a precise [`StoreError::CorruptRow`] instead); its buffer holds at most one
//!   incomplete tuple beyond the chunk being read.

use liftguard_proto::v1::RepRecord;

use crate::StoreError;
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

/// Incremental decoder of a binary `COPY ... TO STDOUT` stream whose tuples all have
/// `fields` non-NULL fields. Feed it the chunks in order, then call [`CopyOut::finish`].
pub(crate) struct CopyOut {
    table: &'static str,
    fields: usize,
    buf: Vec<u8>,
    header_done: bool,
    ended: bool,
    /// Field ranges of the tuple being handed out (reused).
    ranges: Vec<(usize, usize)>,
}

impl CopyOut {
    pub fn new(table: &'static str, fields: usize) -> Self {
        CopyOut {
            table,
            fields,
            buf: Vec::new(),
            header_done: false,
            ended: false,
            ranges: Vec::with_capacity(fields),
        }
    }

    fn corrupt(&self, reason: impl Into<String>) -> StoreError {
        StoreError::CorruptRow {
            table: self.table,
            reason: format!("binary COPY stream: {}", reason.into()),
        }
    }

    /// Appends `chunk` and hands every complete tuple's fields to `row`.
    pub fn feed<F>(&mut self, chunk: &[u8], mut row: F) -> Result<(), StoreError>
    where
        F: FnMut(&[&[u8]]) -> Result<(), StoreError>,
    {
        if self.ended {
            return if chunk.is_empty() {
                Ok(())
            } else {
                Err(self.corrupt("data after the trailer"))
            };
        }
        self.buf.extend_from_slice(chunk);
        let mut pos = 0;
        if !self.header_done {
            if self.buf.len() < COPY_HEADER.len() {
                return Ok(());
            }
            if self.buf[..11] != COPY_HEADER[..11] {
                return Err(self.corrupt("bad signature"));
            }
            let ext = be_u32(&self.buf[15..19]) as usize;
            if self.buf.len() < 19 + ext {
                return Ok(());
            }
            pos = 19 + ext;
            self.header_done = true;
        }
        let mut fields: Vec<&[u8]> = Vec::with_capacity(self.fields);
        while let Some(head) = self.buf.get(pos..pos + 2) {
            let count = i16::from_be_bytes([head[0], head[1]]);
            if count == -1 {
                self.ended = true;
                pos += 2;
                if pos != self.buf.len() {
                    return Err(self.corrupt("data after the trailer"));
                }
                break;
            }
            if count as usize != self.fields || count < 0 {
                return Err(self.corrupt(format!("{count} fields, expected {}", self.fields)));
            }
            // Field boundaries of one complete tuple, or wait for more data.
            self.ranges.clear();
            let mut at = pos + 2;
            let mut complete = true;
            for _ in 0..self.fields {
                let Some(len) = self.buf.get(at..at + 4) else {
                    complete = false;
                    break;
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                if len < 0 {
                    return Err(self.corrupt("unexpected NULL"));
                }
                let (start, end) = (at + 4, at + 4 + len as usize);
                if end > self.buf.len() {
                    complete = false;
                    break;
                }
                self.ranges.push((start, end));
                at = end;
            }
            if !complete {
                break;
            }
            fields.clear();
            fields.extend(self.ranges.iter().map(|(a, b)| &self.buf[*a..*b]));
            row(&fields)?;
            pos = at;
        }
        self.buf.drain(..pos);
        Ok(())
    }

    /// The stream ended: it must have ended with the trailer.
    pub fn finish(self) -> Result<(), StoreError> {
        if self.ended {
            Ok(())
        } else {
            Err(self.corrupt("truncated (no trailer)"))
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Typed readers of binary `COPY` fields (the send formats of PostgreSQL's types).
pub(crate) mod field {
    use super::PG_EPOCH_OFFSET_US;
    use crate::StoreError;

    fn fixed<const N: usize>(b: &[u8], what: &str) -> Result<[u8; N], StoreError> {
        b.try_into().map_err(|_| StoreError::CorruptRow {
            table: "copy",
            reason: format!("{what} field of {} bytes, expected {N}", b.len()),
        })
    }

    pub fn text(b: &[u8]) -> Result<&str, StoreError> {
        std::str::from_utf8(b).map_err(|e| StoreError::CorruptRow {
            table: "copy",
            reason: format!("text field is not UTF-8: {e}"),
        })
    }

    /// TIMESTAMPTZ as µs since the Unix epoch.
    pub fn time_us(b: &[u8]) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(fixed(b, "timestamptz")?).saturating_add(PG_EPOCH_OFFSET_US))
    }

    pub fn i32(b: &[u8]) -> Result<i32, StoreError> {
        Ok(i32::from_be_bytes(fixed(b, "integer")?))
    }

    pub fn bool(b: &[u8]) -> Result<bool, StoreError> {
        Ok(fixed::<1>(b, "boolean")?[0] != 0)
    }

    pub fn f32(b: &[u8]) -> Result<f32, StoreError> {
        Ok(f32::from_bits(u32::from_be_bytes(fixed(b, "real")?)))
    }

    pub fn f64(b: &[u8]) -> Result<f64, StoreError> {
        Ok(f64::from_bits(u64::from_be_bytes(fixed(b, "double")?)))
    }

    pub fn i64(b: &[u8]) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(fixed(b, "bigint")?))
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

    /// A stream of `n` two-field tuples (text, integer) with the trailer.
    fn stream(n: i32) -> Vec<u8> {
        let mut c = CopyBuf::default();
        c.buf.extend_from_slice(COPY_HEADER);
        for i in 0..n {
            c.tuple(2);
            c.text(&format!("a{i}"));
            c.i32(i);
        }
        c.buf.extend_from_slice(COPY_TRAILER);
        c.buf
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<(String, i32)>, StoreError> {
        let mut d = CopyOut::new("t", 2);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, |f| {
                out.push((field::text(f[0])?.to_owned(), field::i32(f[1])?));
                Ok(())
            })?;
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn copy_out_decodes_any_chunking() {
        let s = stream(50);
        let want: Vec<(String, i32)> = (0..50).map(|i| (format!("a{i}"), i)).collect();
        assert_eq!(decode(&[&s]).unwrap(), want);
        for step in [1, 2, 3, 7, 19, 64] {
            let chunks: Vec<&[u8]> = s.chunks(step).collect();
            assert_eq!(decode(&chunks).unwrap(), want, "chunks of {step}");
        }
    }

    #[test]
    fn copy_out_rejects_malformed_streams() {
        let s = stream(3);
        // Truncated: no trailer.
        assert!(decode(&[&s[..s.len() - 2]]).is_err());
        // Bad signature.
        let mut bad = s.clone();
        bad[0] = b'X';
        assert!(decode(&[&bad]).is_err());
        // Wrong field count.
        let mut wrong = s.clone();
        wrong[19..21].copy_from_slice(&3i16.to_be_bytes());
        assert!(decode(&[&wrong]).is_err());
        // A NULL where none is allowed.
        let mut null = s.clone();
        null[21..25].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode(&[&null]).is_err());
        // A field of the wrong width.
        assert!(field::i32(&[0, 1]).is_err());
        assert!(field::text(&[0xff]).is_err());
    }
}
