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

/// A `Write` target whose bytes a reader takes out as they are produced (e.g. to stream
/// an export in chunks while it is being written). Cheap to clone; clones share the bytes.
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// Takes every byte written since the last call.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }

    /// Bytes written and not yet taken.
    pub fn len(&self) -> usize {
        self.0.lock().map(|b| b.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("shared buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Rows per Parquet row group written by [`RepStreamWriter`] (the last may be smaller).
pub const PARQUET_ROW_GROUP_ROWS: usize = 65_536;

enum StreamInner<W: Write> {
    Csv(polars::io::csv::write::BatchedWriter<W>),
    Parquet {
        writer: Box<polars::io::parquet::write::BatchedWriter<W>>,
        pending: Option<DataFrame>,
    },
}

/// Writes raw rep rows (the columns of [`export_reps`]) to `W` page by page, with bounded
/// memory: CSV is written as pages arrive, Parquet in row groups of
/// [`PARQUET_ROW_GROUP_ROWS`]; [`RepStreamWriter::finish`] completes the file (CSV header
/// even without rows; Parquet footer).
pub struct RepStreamWriter<W: Write> {
    inner: StreamInner<W>,
    rows: u64,
}

impl<W: Write> RepStreamWriter<W> {
    pub fn new(out: W, format: ExportFormat) -> Result<Self, AnalyticsError> {
        let schema = rows::raw_rep_frame(&[])?.schema().as_ref().clone();
        let inner = match format {
            ExportFormat::Csv => StreamInner::Csv(
                CsvWriter::new(out)
                    .include_header(true)
                    .batched(&schema)
                    .ctx("starting a CSV export")?,
            ),
            ExportFormat::Parquet => StreamInner::Parquet {
                writer: Box::new(
                    ParquetWriter::new(out)
                        .with_compression(ParquetCompression::Zstd(None))
                        .batched(&schema)
                        .ctx("starting a Parquet export")?,
                ),
                pending: None,
            },
        };
        Ok(Self { inner, rows: 0 })
    }

    /// Appends reps (in the order given).
    pub fn write(&mut self, reps: &[RepRecord]) -> Result<(), AnalyticsError> {
        if reps.is_empty() {
            return Ok(());
        }
        let df = rows::raw_rep_frame(reps)?;
        self.rows += df.height() as u64;
        match &mut self.inner {
            StreamInner::Csv(w) => w.write_batch(&df).ctx("writing CSV rows"),
            StreamInner::Parquet { writer, pending } => {
                let mut acc = match pending.take() {
                    Some(mut p) => {
                        p.vstack_mut(&df).ctx("buffering Parquet rows")?;
                        p
                    }
                    None => df,
                };
                if acc.height() >= PARQUET_ROW_GROUP_ROWS {
                    acc.rechunk_mut();
                    writer
                        .write_batch(&acc)
                        .ctx("writing a Parquet row group")?;
                } else {
                    *pending = Some(acc);
                }
                Ok(())
            }
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Completes the file; returns the number of rows.
    pub fn finish(self) -> Result<u64, AnalyticsError> {
        match self.inner {
            StreamInner::Csv(mut w) => w.finish().ctx("finishing CSV")?,
            StreamInner::Parquet {
                mut writer,
                pending,
            } => {
                if let Some(mut p) = pending {
                    p.rechunk_mut();
                    writer.write_batch(&p).ctx("writing a Parquet row group")?;
                }
                writer.finish().ctx("finishing Parquet")?;
            }
        }
        Ok(self.rows)
    }
}

/// A frame as the bytes of a CSV or Parquet file (same format as [`Report::export`]).
///
/// [`Report::export`]: crate::Report::export
pub fn frame_bytes(df: &DataFrame, format: ExportFormat) -> Result<Vec<u8>, AnalyticsError> {
    let mut out = Vec::new();
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
    Ok(out)
}

/// Writes a frame to `path` atomically (temporary name, then rename).
pub fn write_frame_file(
    df: &DataFrame,
    path: &Path,
    format: ExportFormat,
) -> Result<(), AnalyticsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    write_frame(df, path, format)
}

/// A lumbar trace `(t_us, degrees)` as a frame: `t_us [i64], lumbar_flexion_deg [f32]`.
pub fn trace_frame(points: &[(i64, f32)]) -> Result<DataFrame, AnalyticsError> {
    DataFrame::new(
        points.len(),
        vec![
            Series::new(
                "t_us".into(),
                points.iter().map(|p| p.0).collect::<Vec<_>>(),
            )
            .into_column(),
            Series::new(
                "lumbar_flexion_deg".into(),
                points.iter().map(|p| p.1).collect::<Vec<_>>(),
            )
            .into_column(),
        ],
    )
    .ctx("building the trace frame")
}
