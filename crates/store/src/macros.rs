//! Row decoding shared by both dialects (the column names differ only for times, which
//! the caller reads through `$time(row, index_in_REP_COLUMNS)`).

/// Builds a `RepRecord` from a row whose columns are `schema::REP_COLUMNS` in order.
/// `$time` is `fn(&Row, usize) -> Result<i64, StoreError>` reading the time column at
/// that index.
macro_rules! rep_from_row {
    ($row:expr, $time:expr) => {{
        let row = $row;
        let time = $time;
        let u32_col = |i: usize| -> Result<u32, StoreError> {
            let v: i64 = row.try_get(i)?;
            u32::try_from(v)
                .map_err(|_| StoreError::corrupt("reps", format!("column {i}: {v} is not a u32")))
        };
        let ev: [Option<f32>; 8] = [
            row.try_get(19)?,
            row.try_get(20)?,
            row.try_get(21)?,
            row.try_get(22)?,
            row.try_get(23)?,
            row.try_get(24)?,
            row.try_get(25)?,
            row.try_get(26)?,
        ];
        let evidence = if ev.iter().any(Option::is_some) {
            Some(ExtensorEvidence {
                peak_lumbar_ext_velocity_dps: ev[0].unwrap_or_default(),
                lumbar_share_duration_ms: ev[1].unwrap_or_default(),
                max_lumbar_share: ev[2].unwrap_or_default(),
                ldi: ev[3].unwrap_or_default(),
                onset_lag_ms: ev[4].unwrap_or_default(),
                bottom_lumbar_flexion_deg: ev[5].unwrap_or_default(),
                peak_load_moment_nm: ev[6].unwrap_or_default(),
                top_hyperextension_deg: ev[7].unwrap_or_default(),
            })
        } else {
            None
        };
        RepRecord {
            rep_id: row.try_get(0)?,
            gym_id: row.try_get(1)?,
            athlete_id: row.try_get(2)?,
            set_id: row.try_get(3)?,
            rep_index: u32_col(4)?,
            exercise: row.try_get(5)?,
            exercise_inferred: row.try_get(6)?,
            load_kg: row.try_get(7)?,
            start_us: time(row, 8)?,
            end_us: time(row, 9)?,
            bottom_us: time(row, 10)?,
            concentric_start_us: time(row, 11)?,
            eccentric_s: row.try_get(12)?,
            concentric_s: row.try_get(13)?,
            peak_lumbar_flexion_deg: row.try_get(14)?,
            peak_trunk_inclination_deg: row.try_get(15)?,
            ldi: row.try_get(16)?,
            peak_load_moment_nm: row.try_get(17)?,
            extensor_event: row.try_get(18)?,
            evidence,
            fatigue_score: row.try_get(27)?,
            fatigue_dose: row.try_get(28)?,
            fatigue_observed: row.try_get(29)?,
            stability_deficit: row.try_get(30)?,
            damage: row.try_get(31)?,
            cumulative_damage: row.try_get(32)?,
            session_id: row.try_get(33)?,
            clock_skew_flagged: row.try_get(34)?,
            model_version: u32_col(35)?,
            // Latency instrumentation only: not stored.
            source_received_us: 0,
        }
    }};
}

pub(crate) use rep_from_row;

#[cfg(test)]
mod tests {
    use crate::schema::REP_COLUMNS;

    /// The indices used by `rep_from_row!` match the column list.
    #[test]
    fn rep_column_indices() {
        let idx = |n: &str| REP_COLUMNS.iter().position(|c| c.0 == n).unwrap();
        assert_eq!(REP_COLUMNS.len(), 36);
        assert_eq!(idx("rep_index"), 4);
        assert_eq!(idx("start_time"), 8);
        assert_eq!(idx("concentric_start_time"), 11);
        assert_eq!(idx("extensor_event"), 18);
        assert_eq!(idx("ev_peak_lumbar_ext_velocity_dps"), 19);
        assert_eq!(idx("ev_top_hyperextension_deg"), 26);
        assert_eq!(idx("fatigue_score"), 27);
        assert_eq!(idx("damage"), 31);
        assert_eq!(idx("session_id"), 33);
        assert_eq!(idx("model_version"), 35);
    }
}
