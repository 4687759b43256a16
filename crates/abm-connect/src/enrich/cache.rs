//! The enrichment cache: each provider answer (found or not found) kept with the time it was
//! fetched, so that a lookup within the TTL makes no request. A JSON Lines file, appended one
//! line per answer (opened without following a symlink); read whole at open, the last line of
//! a domain winning. A line that does not parse (a write cut short by a crash) is skipped.

use super::{Lookup, Provider};
use crate::news::normalize_domain;
use crate::ConnectError;
use abm_core::Instant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    source: String,
    domain: String,
    fetched_at: Instant,
    /// `None`: the provider did not know the domain.
    fields: Option<Map<String, Value>>,
}

/// An answer kept: when it was fetched, and the fields (`None`: not known).
pub type Kept = (Instant, Option<Map<String, Value>>);

/// The cache file, read into memory.
pub struct Cache {
    path: PathBuf,
    entries: HashMap<(String, String), Kept>,
}

fn io_error(path: &Path, e: std::io::Error) -> ConnectError {
    ConnectError::Invalid(format!("enrichment cache {}: {e}", path.display()))
}

impl Cache {
    /// Read `path` (absent: an empty cache, created at the first answer).
    pub fn open(path: &Path) -> Result<Cache, ConnectError> {
        let mut entries = HashMap::new();
        match std::fs::read(path) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n') {
                    if let Ok(e) = serde_json::from_slice::<Entry>(line) {
                        entries.insert((e.source, e.domain), (e.fetched_at, e.fields));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, e)),
        }
        Ok(Cache {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The answer `source` gave for `domain`, if kept.
    pub fn get(&self, source: &str, domain: &str) -> Option<&Kept> {
        self.entries
            .get(&(source.to_string(), normalize_domain(domain)))
    }

    /// Keep an answer (appended to the file at once).
    pub fn put(
        &mut self,
        source: &str,
        domain: &str,
        fetched_at: Instant,
        fields: Option<Map<String, Value>>,
    ) -> Result<(), ConnectError> {
        let e = Entry {
            source: source.to_string(),
            domain: normalize_domain(domain),
            fetched_at,
            fields,
        };
        let mut line = serde_json::to_vec(&e).map_err(|x| ConnectError::Invalid(x.to_string()))?;
        line.push(b'\n');
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        let mut f = opts.open(&self.path).map_err(|x| io_error(&self.path, x))?;
        // One write of one line: appends of whole lines do not interleave.
        f.write_all(&line).map_err(|x| io_error(&self.path, x))?;
        self.entries
            .insert((e.source, e.domain), (e.fetched_at, e.fields));
        Ok(())
    }
}

/// A provider behind the cache: an answer younger than the TTL is served without a request;
/// a new answer (found or not found) is kept. A failure is not kept.
pub struct Cached {
    inner: Box<dyn Provider + Send>,
    cache: Cache,
    ttl: Duration,
    now: fn() -> Instant,
}

impl Cached {
    pub fn new(inner: Box<dyn Provider + Send>, cache: Cache, ttl: Duration) -> Cached {
        Cached {
            inner,
            cache,
            ttl,
            now: abm_store::wall_clock,
        }
    }

    /// The clock the TTL is read against (tests).
    pub fn with_clock(mut self, now: fn() -> Instant) -> Cached {
        self.now = now;
        self
    }
}

impl Provider for Cached {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn lookup(&mut self, domain: &str) -> Result<Option<Lookup>, ConnectError> {
        let now = (self.now)();
        let ttl = self.ttl.as_micros().min(i64::MAX as u128) as i64;
        if let Some((at, fields)) = self.cache.get(self.inner.name(), domain) {
            if now.0.saturating_sub(at.0) < ttl {
                return Ok(fields.clone().map(|fields| Lookup {
                    fields,
                    fetched_at: *at,
                    cached: true,
                }));
            }
        }
        let found = self.inner.lookup(domain)?;
        let source = self.inner.name().to_string();
        match &found {
            Some(l) => self
                .cache
                .put(&source, domain, l.fetched_at, Some(l.fields.clone()))?,
            None => self.cache.put(&source, domain, now, None)?,
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Answers `industry = software` for every domain, counting the lookups.
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Provider for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn lookup(&mut self, domain: &str) -> Result<Option<Lookup>, ConnectError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((domain != "unknown.example").then(|| Lookup {
                fields: json!({"industry": "software"}).as_object().unwrap().clone(),
                fetched_at: Instant(1_000),
                cached: false,
            }))
        }
    }

    fn at_day_10() -> Instant {
        Instant(10 * 86_400_000_000)
    }
    fn at_day_40() -> Instant {
        Instant(40 * 86_400_000_000)
    }

    #[test]
    fn a_hit_within_the_ttl_asks_nothing_and_survives_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.jsonl");
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ttl = Duration::from_secs(30 * 86_400);
        let open = || {
            Cached::new(
                Box::new(Counting(n.clone())),
                Cache::open(&path).unwrap(),
                ttl,
            )
        };
        let mut c = open().with_clock(at_day_10);
        let first = c.lookup("https://www.Acme.com/").unwrap().unwrap();
        assert!(!first.cached);
        let again = c.lookup("acme.com").unwrap().unwrap();
        assert!(again.cached && again.fields == first.fields);
        assert_eq!(again.fetched_at, first.fetched_at);
        assert_eq!(c.lookup("unknown.example").unwrap(), None);
        assert_eq!(c.lookup("unknown.example").unwrap(), None);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A torn last line is skipped; the kept answers survive a restart.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"source\":\"count")
            .unwrap();
        let mut c = open().with_clock(at_day_10);
        assert!(c.lookup("acme.com").unwrap().unwrap().cached);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Past the TTL: asked again.
        let mut c = open().with_clock(at_day_40);
        assert!(!c.lookup("acme.com").unwrap().unwrap().cached);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[cfg(unix)]
    #[test]
    fn the_cache_is_never_written_through_a_symlink() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("precious.txt");
        std::fs::write(&target, "keep").unwrap();
        let link = d.path().join("cache.jsonl");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut cache = Cache {
            path: link,
            entries: HashMap::new(),
        };
        assert!(cache.put("x", "a.com", Instant(0), None).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
