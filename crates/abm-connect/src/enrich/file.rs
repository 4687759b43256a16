//! The file provider: a CSV (header row) or JSON Lines file keyed by `domain`.

use super::{Lookup, Provider};
use crate::news::normalize_domain;
use crate::ConnectError;
use abm_core::Instant;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// The file's modification time (now when the filesystem does not say).
fn modified(path: &Path) -> Instant {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Instant(d.as_micros() as i64))
        .unwrap_or_else(abm_store::wall_clock)
}

/// A CSV (header row) or JSON Lines file with a `domain` column.
pub struct FileProvider {
    name: String,
    rows: HashMap<String, Map<String, Value>>,
    /// When the file was last modified: what "fetched at" means for a file.
    modified: Instant,
}

impl FileProvider {
    pub fn open(path: &Path) -> Result<FileProvider, ConnectError> {
        let text = std::fs::read(path)
            .map_err(|e| ConnectError::Invalid(format!("{}: {e}", path.display())))?;
        let jsonl = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
        let mut rows = HashMap::new();
        let mut add = |mut m: Map<String, Value>| {
            let d = m
                .remove("domain")
                .and_then(|d| d.as_str().map(normalize_domain))
                .filter(|d| !d.is_empty());
            if let Some(d) = d {
                rows.insert(d, super::clean(m));
            }
        };
        if jsonl {
            for (i, line) in text.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Value>(line) {
                    Ok(Value::Object(m)) => add(m),
                    _ => {
                        return Err(ConnectError::Invalid(format!(
                            "{} line {}: not a JSON object",
                            path.display(),
                            i + 1
                        )))
                    }
                }
            }
        } else {
            let mut records: Vec<Vec<String>> = Vec::new();
            abm_io::csv::for_each_record(&text, 1, |r| {
                records.push(
                    (0..r.len())
                        .map(|i| String::from_utf8_lossy(r.get(i)).into_owned())
                        .collect(),
                )
            });
            let mut it = records.into_iter();
            let header: Vec<String> = it
                .next()
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
                .collect();
            if !header.iter().any(|h| h == "domain") {
                return Err(ConnectError::Invalid(format!(
                    "{}: no domain column",
                    path.display()
                )));
            }
            for rec in it {
                add(header
                    .iter()
                    .cloned()
                    .zip(rec.into_iter().map(Value::String))
                    .collect());
            }
        }
        Ok(FileProvider {
            name: format!(
                "file {}",
                path.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ),
            rows,
            modified: modified(path),
        })
    }
}

impl Provider for FileProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&mut self, domain: &str) -> Result<Option<Lookup>, ConnectError> {
        Ok(self
            .rows
            .get(&normalize_domain(domain))
            .map(|fields| Lookup {
                fields: fields.clone(),
                fetched_at: self.modified,
                cached: false,
            }))
    }
}
