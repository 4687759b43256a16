//! # abm-io — adapters between files and the domain core
//!
//! Input → normalized records → core → results → sinks. Nothing here decides a cluster: that is
//! `abm-core`'s job. This crate reads (CSV and JSON Lines, presets, mappings), validates (bad rows
//! go to `rejected_rows.csv`, never silently dropped), folds the bulk data in parallel, and
//! writes the outputs of SPEC §4.7.
//!
//! # Layout
//! - [`csv`]: the record scanner; [`chunk`]: parallel blocks of whole records.
//! - [`source`]: opening a file (format, header, projection; JSON Lines as records).
//! - [`columns`]: canonical names, presets, user mappings.
//! - [`load`]: accounts, triggers, deals; rejected rows. [`ids`]: the account id index.
//! - [`fold`]: the parallel engagement fold (fast paths, pipelined lookups, lean mode).
//! - [`mem`]: huge-page arrays and memory-mapped inputs.
//! - [`output`]: `cluster_assignments.{csv,jsonl}`, `cluster_summary.json`, `rejected_rows.csv`.
//! - [`outset`]: the outputs of one run committed together (one atomic switch), never through
//!   a symlink, never over an input.
//! - [`segment`]: the stateless bulk pipeline behind `abm segment`.
//! - [`sample`]: the bundled, generated demo data set.
//! - [`whatif`]: the old and the new config over the same data in one pass, compared.

pub(crate) mod chunk;
pub mod columns;
pub mod csv;
pub(crate) mod direct;
pub mod explain;
pub mod fold;
pub mod ids;
pub mod load;
pub(crate) mod mem;
pub mod output;
#[cfg(unix)]
pub mod outset;
pub mod sample;
pub mod segment;
pub mod source;
pub mod values;
pub mod whatif;

#[cfg(test)]
mod proptests;

pub use chunk::default_threads;
pub use columns::{FileKind, Preset};

/// How inputs are read and outputs written: switches for the machine, never for the answers
/// (every combination gives the same bytes). The library reads no environment variables; the
/// `abm` command maps `ABM_NO_MMAP`, `ABM_READ_BLOCKS`, `ABM_DIRECT_IO` and `ABM_RECYCLE_OUTPUTS`
/// onto this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Memory-map regular input files (else read them as streams).
    pub mmap: bool,
    /// Read a mapped input's line-cut blocks with `pread` into each worker's buffer (else scan
    /// them in the map).
    pub read_blocks: bool,
    /// Write the bulk outputs with direct I/O where the filesystem allows it.
    pub direct_io: bool,
    /// Keep the previous output set as the spare the next run writes over (else delete it).
    pub recycle_outputs: bool,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            mmap: true,
            read_blocks: true,
            direct_io: true,
            recycle_outputs: true,
        }
    }
}
pub use load::{Rejection, Rejects};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: no header row (the first line must name the columns)")]
    NoHeader { file: String },
    #[error("{file}: not a CSV/JSON Lines text file: {reason}")]
    NotText { file: String, reason: String },
    #[error("{file}: missing column `{column}`{}; columns found: {}",
        .wanted_for.as_ref().map(|w| format!(" (mapped to `{w}` in the config)")).unwrap_or_default(),
        .found.join(", "))]
    MissingColumn {
        file: String,
        column: String,
        wanted_for: Option<String>,
        found: Vec<String>,
    },
    #[error("{file}:{line}:{column}: invalid JSON: {message}")]
    Json {
        file: String,
        line: u64,
        column: usize,
        message: String,
    },
    #[error("{file}:{line}: column `{column}`: {reason} (--strict stops at the first bad row)")]
    Strict {
        file: String,
        line: u64,
        column: String,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
}

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    /// The JSON Lines template reader on one line: the values' bytes when it accepts the line.
    pub fn json_template_fields<'a>(header: &[String], line: &'a [u8]) -> Option<Vec<&'a [u8]>> {
        let t = crate::source::JsonTemplate::new(header)?;
        let mut bounds = [(0u32, 0u32); crate::source::MAX_FAST_COLS];
        if !t.fields(line, 0, &mut bounds) {
            return None;
        }
        Some(
            bounds[..header.len()]
                .iter()
                .map(|&(s, e)| &line[s as usize..e as usize])
                .collect(),
        )
    }
}
