//! The enrichment cache: each provider answer (found or not found) kept with the time it was
//! fetched, so that a lookup within the TTL makes no request. A JSON Lines file, appended one
//! line per answer (opened without following a symlink); read whole at open, the last line of
//! a domain winning. A line that does not parse (a write cut short by a crash) is skipped.
//!
//! **Compaction.** Lines that no longer count — superseded by a later line of the same domain,
//! unreadable, or expired (older than the TTL) — are dead. When the dead lines outnumber the
//! live ones (and are at least [`COMPACT_MIN_DEAD`]), the cache is rewritten: the live entries
//! go to a new file beside it (`.NAME.compact`, created with `O_EXCL | O_NOFOLLOW`, synced),
//! which is renamed over the cache (then the directory is synced). A kill at any point leaves
//! either the old file or the new one, each whole; a leftover temporary file is removed by the
//! next compaction. A cache path that is a symlink is never written, compacted or replaced
//! (the same rule as the appends). Another process appending between the read and the rename
//! may lose its line: a lost cache line costs one request, never a wrong answer.

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

/// Dead lines (superseded, unreadable, expired) below this never trigger a compaction.
pub const COMPACT_MIN_DEAD: usize = 16;

/// The cache file, read into memory.
pub struct Cache {
    path: PathBuf,
    entries: HashMap<(String, String), Kept>,
    /// Non-empty lines in the file (live and dead).
    lines: usize,
    /// The line count at which the next compaction check runs (the check is a pass over the
    /// entries; spacing the checks keeps appends O(1) amortized).
    next_check: usize,
}

/// What [`Cache::compact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Lines before and after.
    pub lines_before: usize,
    pub lines_after: usize,
}

fn io_error(path: &Path, e: std::io::Error) -> ConnectError {
    ConnectError::Invalid(format!("enrichment cache {}: {e}", path.display()))
}

impl Cache {
    /// Read `path` (absent: an empty cache, created at the first answer).
    pub fn open(path: &Path) -> Result<Cache, ConnectError> {
        let mut entries = HashMap::new();
        let mut lines = 0;
        match std::fs::read(path) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n') {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    lines += 1;
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
            lines,
            next_check: 0,
        })
    }

    /// Lines in the file (live and dead), as this cache knows it.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Entries kept (the last answer per source and domain, expired or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_live(at: Instant, now: Instant, ttl: Duration) -> bool {
        let ttl = ttl.as_micros().min(i64::MAX as u128) as i64;
        now.0.saturating_sub(at.0) < ttl
    }

    /// Compact when the dead lines outnumber the live ones (and are at least
    /// [`COMPACT_MIN_DEAD`]); `None` when not needed. Checked at most every
    /// max(16, lines/8) appends.
    pub fn compact_if_needed(
        &mut self,
        now: Instant,
        ttl: Duration,
    ) -> Result<Option<Compaction>, ConnectError> {
        if self.lines < self.next_check {
            return Ok(None);
        }
        let live = self
            .entries
            .values()
            .filter(|(at, _)| Cache::is_live(*at, now, ttl))
            .count();
        let dead = self.lines.saturating_sub(live);
        self.next_check = self.lines + (self.lines / 8).max(16);
        if dead > live && dead >= COMPACT_MIN_DEAD {
            return self.compact(now, ttl).map(Some);
        }
        Ok(None)
    }

    /// Rewrite the file with the live entries only (expired ones dropped from memory too):
    /// a new file beside it, synced, renamed over it. Refused when the path is a symlink.
    pub fn compact(&mut self, now: Instant, ttl: Duration) -> Result<Compaction, ConnectError> {
        let path = self.path.clone();
        let err = |e: std::io::Error| io_error(&path, e);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(ConnectError::Invalid(format!(
                    "enrichment cache {}: a symlink, not compacted (the cache is never written through a symlink)",
                    path.display()
                )))
            }
            Ok(m) if !m.is_file() => {
                return Err(ConnectError::Invalid(format!(
                    "enrichment cache {}: not a regular file",
                    path.display()
                )))
            }
            _ => {}
        }
        let before = self.lines;
        self.entries
            .retain(|_, (at, _)| Cache::is_live(*at, now, ttl));
        let mut keys: Vec<_> = self.entries.keys().cloned().collect();
        keys.sort();
        let mut body = Vec::new();
        for k in &keys {
            let (at, fields) = &self.entries[k];
            let e = Entry {
                source: k.0.clone(),
                domain: k.1.clone(),
                fetched_at: *at,
                fields: fields.clone(),
            };
            serde_json::to_writer(&mut body, &e)
                .map_err(|x| ConnectError::Invalid(x.to_string()))?;
            body.push(b'\n');
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cache".into());
        let tmp = path.with_file_name(format!(".{name}.compact"));
        // A leftover of a killed compaction (or anything else there, a symlink included) is
        // unlinked, never opened.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err)?;
        #[cfg(unix)]
        {
            // The rename itself made durable (best effort: a directory may refuse fsync).
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.lines = keys.len();
        self.next_check = self.lines + (self.lines / 8).max(16);
        Ok(Compaction {
            lines_before: before,
            lines_after: self.lines,
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
        self.lines += 1;
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
        // The answer is kept already: a compaction that fails (e.g. a read-only directory)
        // leaves the appended file as it is, to be tried again later.
        let _ = self.cache.compact_if_needed(now, self.ttl);
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

    fn day(d: i64) -> Instant {
        Instant(d * 86_400_000_000)
    }

    fn fields(n: i64) -> Option<Map<String, Value>> {
        Some(
            json!({"industry": "software", "n": n})
                .as_object()
                .unwrap()
                .clone(),
        )
    }

    #[test]
    fn compaction_drops_expired_and_superseded_lines_and_keeps_every_live_answer() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.jsonl");
        let ttl = Duration::from_secs(30 * 86_400);
        let mut c = Cache::open(&path).unwrap();
        // 20 answers from day 1 (expired by day 40), then 10 domains answered 4 times each on
        // day 35 (the last answer counts), one "not known", and a torn line.
        for i in 0..20 {
            c.put("p", &format!("old{i}.example"), day(1), fields(i))
                .unwrap();
        }
        for round in 0..4 {
            for i in 0..10 {
                c.put(
                    "p",
                    &format!("live{i}.example"),
                    day(35),
                    fields(round * 100 + i),
                )
                .unwrap();
            }
        }
        c.put("p", "unknown.example", day(36), None).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"source\":\"p\",\"dom\n")
            .unwrap();
        let c = Cache::open(&path).unwrap();
        assert_eq!(c.lines(), 62);
        let live: Vec<String> = (0..10)
            .map(|i| format!("live{i}.example"))
            .chain(["unknown.example".to_string()])
            .collect();
        let before: Vec<Option<Kept>> = live.iter().map(|d| c.get("p", d).cloned()).collect();
        let size_before = std::fs::metadata(&path).unwrap().len();

        // Not needed yet on day 10 (everything is live but the superseded lines: 30 + 1 dead
        // vs 31 live).
        let mut c = c;
        assert_eq!(c.compact_if_needed(day(10), ttl).unwrap(), None);
        // On day 40 the day-1 answers have expired: 51 dead lines, 11 live.
        let mut c = Cache::open(&path).unwrap();
        let done = c.compact_if_needed(day(40), ttl).unwrap().unwrap();
        assert_eq!((done.lines_before, done.lines_after), (62, 11));
        assert!(std::fs::metadata(&path).unwrap().len() * 3 < size_before);
        assert!(!d.path().join(".cache.jsonl.compact").exists());
        for reopened in [c, Cache::open(&path).unwrap()] {
            assert_eq!(reopened.lines(), 11);
            let after: Vec<Option<Kept>> =
                live.iter().map(|d| reopened.get("p", d).cloned()).collect();
            assert_eq!(after, before);
            assert_eq!(reopened.get("p", "old3.example"), None);
        }
        assert_eq!(before[3].as_ref().unwrap().1, fields(303));
    }

    /// The cache's clock in the test below.
    static NOW: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

    /// Answers every domain as fetched now (by [`NOW`]), counting the lookups.
    struct Clocked(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Provider for Clocked {
        fn name(&self) -> &str {
            "clocked"
        }
        fn lookup(&mut self, _domain: &str) -> Result<Option<Lookup>, ConnectError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some(Lookup {
                fields: json!({"industry": "software"}).as_object().unwrap().clone(),
                fetched_at: Instant(NOW.load(std::sync::atomic::Ordering::SeqCst)),
                cached: false,
            }))
        }
    }

    #[test]
    fn appends_through_the_provider_compact_the_file_when_dead_lines_outnumber_live_ones() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.jsonl");
        let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ttl = Duration::from_secs(30 * 86_400);
        let mut c = Cached::new(
            Box::new(Clocked(n.clone())),
            Cache::open(&path).unwrap(),
            ttl,
        )
        .with_clock(|| Instant(NOW.load(std::sync::atomic::Ordering::SeqCst)));
        // Five domains asked every 31 days, 40 times: each answer expires before the next.
        for round in 0..40 {
            NOW.store(day(31 * round).0, std::sync::atomic::Ordering::SeqCst);
            for i in 0..5 {
                c.lookup(&format!("d{i}.example")).unwrap().unwrap();
            }
        }
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 200);
        // Never more dead lines than live ones past the minimum, though 200 were appended.
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 5 + COMPACT_MIN_DEAD + 16, "{lines} lines");
        // Within the TTL the answers are still served from the (compacted) cache.
        assert!(c.lookup("d0.example").unwrap().unwrap().cached);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 200);
    }

    #[cfg(unix)]
    #[test]
    fn a_leftover_of_a_killed_compaction_is_harmless_and_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.jsonl");
        let ttl = Duration::from_secs(30 * 86_400);
        let mut c = Cache::open(&path).unwrap();
        for i in 0..40 {
            c.put("p", "a.example", day(1), fields(i)).unwrap();
        }
        // A compaction killed after creating its file: the cache itself reads as before.
        let tmp = d.path().join(".cache.jsonl.compact");
        std::fs::write(&tmp, "{\"source\":\"p\",\"dom").unwrap();
        assert_eq!(
            Cache::open(&path).unwrap().get("p", "a.example").unwrap().1,
            fields(39)
        );
        // A symlink planted at the temporary name is unlinked, its target untouched.
        std::fs::remove_file(&tmp).unwrap();
        let precious = d.path().join("precious.txt");
        std::fs::write(&precious, "keep").unwrap();
        std::os::unix::fs::symlink(&precious, &tmp).unwrap();
        let mut c = Cache::open(&path).unwrap();
        let done = c.compact(day(2), ttl).unwrap();
        assert_eq!((done.lines_before, done.lines_after), (40, 1));
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
        assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err());
        assert_eq!(
            Cache::open(&path).unwrap().get("p", "a.example").unwrap().1,
            fields(39)
        );
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
            path: link.clone(),
            entries: HashMap::new(),
            lines: 0,
            next_check: 0,
        };
        assert!(cache.put("x", "a.com", Instant(0), None).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // Nor compacted (replaced) through one: the link and its target stay.
        let e = cache
            .compact(Instant(0), Duration::from_secs(86_400))
            .unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
