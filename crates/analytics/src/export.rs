//! CSV and Parquet files.
//!
//! Invariants:
//! - A file is written under a temporary name in the same directory and renamed into
//!   place, so readers see either the old file or the complete new one.
//! - CSV: a header row, `,` separator, RFC 4180 quoting, nulls as empty fields, floats
//!   in shortest round-trip form, times as ISO 8601 (UTC, microseconds).
//! - Parquet: zstd-compressed, the frame's exact schema.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use liftguard_proto::v1::RepRecord;
use polars::prelude::*;

use crate::{AnalyticsError, ExportFormat, PolarsContext, rows};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AnalyticsError + '_ {
    move |source| AnalyticsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `df` to `path` atomically in `format`.
pub(crate) fn write_frame(
    df: &DataFrame,
    path: &Path,
    format: ExportFormat,
) -> Result<(), AnalyticsError> {
    let tmp = temp_path(path);
    let result =
        write_to(df, &tmp, format).and_then(|()| std::fs::rename(&tmp, path).map_err(io_err(path)));
    if result.is_err() {
        // Best effort: do not leave a partial temporary file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_to(df: &DataFrame, path: &Path, format: ExportFormat) -> Result<(), AnalyticsError> {
    let file = File::create(path).map_err(io_err(path))?;
    let mut out = BufWriter::new(file);
    let mut df = df.clone();
    match format {
        ExportFormat::Csv => CsvWriter::new(&mut out)
            .include_header(true)
            .finish(&mut df)
            .ctx("writing CSV")?,
        ExportFormat::Parquet => {
            ParquetWriter::new(&mut out)
                .with_compression(ParquetCompression::Zstd(None))
                .finish(&mut df)
                .ctx("writing Parquet")?;
        }
    }
    out.flush().map_err(io_err(path))?;
    out.get_ref().sync_all().map_err(io_err(path))
}

/// Writes raw rep rows, one row per record in the given order, every `RepRecord` field
/// as a column (wire names; `evidence.*` flattened to `evidence_*`, null without
/// evidence; `exercise` as its label; empty strings as nulls). Rows are exported as
/// given: no validation or de-duplication. Returns the number of rows written.
pub fn export_reps(
    reps: &[RepRecord],
    path: &Path,
    format: ExportFormat,
) -> Result<usize, AnalyticsError> {
    let df = rows::raw_rep_frame(reps)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    write_frame(&df, path, format)?;
    Ok(df.height())
}

/// The frame [`export_reps`] writes, for callers that want the raw rows in memory.
pub fn raw_reps_frame(reps: &[RepRecord]) -> Result<DataFrame, AnalyticsError> {
    rows::raw_rep_frame(reps)
}
