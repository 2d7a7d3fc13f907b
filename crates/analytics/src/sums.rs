//! Deterministic float sums per group.
//!
//! Polars' float sums (and means) depend on how it chunks and parallelises a group-by:
//! the same frame can give sums that differ in the last bits from run to run. Every float
//! sum of the analytics is therefore computed here instead: plain `f64` addition in the
//! frame's row order (which is the store's canonical order), per group.
//!
//! Invariants:
//! - The result is a pure function of the frame: same rows in the same order, same bits.
//! - Groups are listed in order of first appearance; key columns keep their dtype.
//! - Integer keys only (codes, weeks, µs); at most [`MAX_KEYS`] key columns.

use std::collections::HashMap;

use polars::prelude::*;

use crate::{AnalyticsError, PolarsContext};

/// Most key columns of one [`sum_by`].
pub(crate) const MAX_KEYS: usize = 9;

fn int_column(df: &DataFrame, name: &str) -> Result<(Vec<i64>, DataType), AnalyticsError> {
    let c = df.column(name).ctx("reading a key column")?;
    let dtype = c.dtype().clone();
    let v = c
        .cast(&DataType::Int64)
        .ctx("casting a key column")?
        .i64()
        .ctx("reading a key column")?
        .iter()
        .map(|v| v.unwrap_or(i64::MIN))
        .collect();
    Ok((v, dtype))
}

/// Sums of `values` (one output column per `(source, output name)`) per distinct
/// combination of `keys`, rows taken in frame order. Nulls in a value column count as 0.
pub(crate) fn sum_by(
    df: &DataFrame,
    keys: &[&str],
    values: &[(&str, &str)],
) -> Result<DataFrame, AnalyticsError> {
    if keys.len() > MAX_KEYS {
        return Err(AnalyticsError::InvalidOptions(format!(
            "at most {MAX_KEYS} group keys"
        )));
    }
    let key_cols = keys
        .iter()
        .map(|k| int_column(df, k))
        .collect::<Result<Vec<_>, _>>()?;
    let value_cols = values
        .iter()
        .map(|(src, _)| {
            let c = df
                .column(src)
                .ctx("reading a value column")?
                .cast(&DataType::Float64)
                .ctx("casting a value column")?;
            Ok(c.f64()
                .ctx("reading a value column")?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect::<Vec<f64>>())
        })
        .collect::<Result<Vec<_>, AnalyticsError>>()?;
    let mut index: HashMap<[i64; MAX_KEYS], usize> = HashMap::new();
    let mut group_keys: Vec<[i64; MAX_KEYS]> = Vec::new();
    let mut sums: Vec<Vec<f64>> = vec![Vec::new(); values.len()];
    // Rows come sorted by athlete and time: consecutive rows mostly share their group.
    let mut last: Option<([i64; MAX_KEYS], usize)> = None;
    for row in 0..df.height() {
        let mut k = [0i64; MAX_KEYS];
        for (slot, (col, _)) in k.iter_mut().zip(&key_cols) {
            *slot = col[row];
        }
        let g = match last {
            Some((lk, lg)) if lk == k => lg,
            _ => *index.entry(k).or_insert_with(|| {
                group_keys.push(k);
                for s in sums.iter_mut() {
                    s.push(0.0);
                }
                group_keys.len() - 1
            }),
        };
        last = Some((k, g));
        for (s, v) in sums.iter_mut().zip(&value_cols) {
            s[g] += v[row];
        }
    }
    let n = group_keys.len();
    let mut columns = Vec::with_capacity(keys.len() + values.len());
    for (i, (name, (_, dtype))) in keys.iter().zip(&key_cols).enumerate() {
        let col = Series::new(
            (*name).into(),
            group_keys.iter().map(|k| k[i]).collect::<Vec<i64>>(),
        )
        .cast(dtype)
        .ctx("restoring a key column")?;
        columns.push(col.into_column());
    }
    for ((_, out), s) in values.iter().zip(sums) {
        columns.push(Series::new((*out).into(), s).into_column());
    }
    DataFrame::new(n, columns).ctx("building group sums")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_in_row_order_per_group() {
        let df = DataFrame::new(
            5,
            vec![
                Series::new("k".into(), vec![2u32, 1, 2, 1, 3]).into_column(),
                Series::new("v".into(), vec![0.1, 1.0, 0.2, 2.0, 5.0]).into_column(),
            ],
        )
        .unwrap();
        let s = sum_by(&df, &["k"], &[("v", "s")]).unwrap();
        assert_eq!(s.column("k").unwrap().dtype(), &DataType::UInt32);
        let k: Vec<u32> = s
            .column("k")
            .unwrap()
            .u32()
            .unwrap()
            .into_no_null_iter()
            .collect();
        let v: Vec<f64> = s
            .column("s")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(k, vec![2, 1, 3]);
        assert_eq!(v, vec![0.1 + 0.2, 3.0, 5.0]);
    }
}
