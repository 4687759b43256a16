//! Enrichment (`enrich_company`): a [`Provider`] answers firmographics for a domain; the
//! accounts that lack a field get the provider's value (a value already there is never
//! overwritten), the fields filled are listed in the account's `enriched_by` field (shown with
//! the account's other fields), and the accounts are re-imported through
//! [`abm_app::App::import_records`]. A provider failure leaves the accounts as they are.
//!
//! Providers: [`FileProvider`] (CSV or JSON Lines keyed by `domain`).

use crate::news::normalize_domain;
use crate::ConnectError;
use abm_app::records::{RecordBatch, RecordKind};
use abm_app::App;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Answers firmographics (canonical account field names → values) for a domain.
pub trait Provider {
    /// What the `enriched_by` mark names.
    fn name(&self) -> &str;
    fn lookup(&mut self, domain: &str) -> Result<Option<Map<String, Value>>, ConnectError>;
}

/// A CSV (header row) or JSON Lines file with a `domain` column.
pub struct FileProvider {
    name: String,
    rows: HashMap<String, Map<String, Value>>,
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
                m.retain(|_, v| match v {
                    Value::String(s) => !s.trim().is_empty(),
                    Value::Null => false,
                    _ => true,
                });
                rows.insert(d, m);
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
        })
    }
}

impl Provider for FileProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn lookup(&mut self, domain: &str) -> Result<Option<Map<String, Value>>, ConnectError> {
        Ok(self.rows.get(&normalize_domain(domain)).cloned())
    }
}

/// What an enrichment did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EnrichReport {
    /// Accounts with a domain.
    pub looked_up: usize,
    /// Accounts the provider knew.
    pub found: usize,
    /// Accounts that got at least one field.
    pub enriched: usize,
    /// Fields filled, by name.
    pub fields_filled: std::collections::BTreeMap<String, usize>,
    pub imported: Option<abm_app::RecordsImported>,
}

/// Fill the stored accounts' missing fields from `provider` and re-import them (nothing
/// imported with `dry_run`).
pub fn enrich(
    app: &App,
    provider: &mut dyn Provider,
    dry_run: bool,
) -> Result<EnrichReport, ConnectError> {
    let mut rep = EnrichReport::default();
    let mut out = Vec::new();
    for a in app.store()?.account_directory()? {
        let Some(domain) = &a.domain else { continue };
        rep.looked_up += 1;
        let Some(found) = provider.lookup(domain)? else {
            continue;
        };
        rep.found += 1;
        let mut fields = a.fields.clone();
        let mut filled = Vec::new();
        for (k, v) in found {
            let k = k.to_ascii_lowercase();
            if k == "account_id" || k == "name" || k == "enriched_by" {
                continue;
            }
            let empty = match fields.get(&k) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                _ => false,
            };
            if empty {
                let v = match v {
                    Value::String(s) => Value::String(s),
                    other => Value::String(other.to_string()),
                };
                fields.insert(k.clone(), v);
                *rep.fields_filled.entry(k.clone()).or_default() += 1;
                filled.push(k);
            }
        }
        if filled.is_empty() {
            continue;
        }
        rep.enriched += 1;
        fields.insert(
            "enriched_by".into(),
            Value::String(format!("{}: {}", provider.name(), filled.join(", "))),
        );
        fields.insert("account_id".into(), Value::String(a.account_id.clone()));
        out.push(Value::Object(fields));
    }
    if !dry_run && !out.is_empty() {
        let batch = RecordBatch::new(RecordKind::Accounts, "enrich", out);
        rep.imported = Some(app.import_records(&[batch])?);
    }
    Ok(rep)
}
