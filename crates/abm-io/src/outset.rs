//! An output set: the files one run writes (assignments, summary, rejected rows), committed
//! together or not at all.
//!
//! Replacing several files one `rename` at a time leaves a window in which a reader (or the
//! directory after a failed or killed run) holds a mix of old and new files. Instead every run
//! writes a complete set into a directory of its own and makes it visible with **one**
//! atomic step, as Kubernetes' atomic writer does for mounted volumes:
//!
//! ```text
//! out/
//!   cluster_assignments.csv -> .abm-outputs/current/cluster_assignments.csv
//!   cluster_summary.json    -> .abm-outputs/current/cluster_summary.json
//!   …
//!   .abm-outputs/
//!     current -> set-7       the commit point: one symlink, replaced by rename(2)
//!     set-7/                 the committed set
//!     set-6/                 the previous set: the spare the next run writes over
//!     lock                   one run at a time per output directory (flock)
//! ```
//!
//! The names in `out/` are symlinks through `current`, so every name resolves into the same
//! set at any instant: before the switch, the old set; after it, the new one. A name the new
//! set adds is linked before the switch (it dangles, i.e. is absent, as it was in the old set);
//! a name the new set drops dangles after the switch and is then removed. A failed run (disk
//! full, an error, a kill) never reaches the switch: the previous set stays as it was.
//!
//! **No writes through symlinks.** Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`
//! inside the run's own set directory. A file of the spare set is written over only when it is
//! a regular file of ours with one link that is not one of the run's inputs; on any doubt it
//! is unlinked and written fresh (unlinking never touches what a symlink points to).
//! `out/.abm-outputs` must be a real directory owned by the user running `abm`; a symlink or
//! file in its place is removed and the directory made afresh. A name in `out/` that is a
//! symlink of someone else's is replaced by ours (its target is never opened); a regular file
//! there (outputs of an older `abm`) is first hard-linked into a set that `current` names, so
//! even that one-time upgrade never shows a missing or mixed file.
//!
//! **Never over an input.** A run that would replace one of its own input files (same device
//! and inode) is refused before anything is written.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::direct::DirectWriter;
use crate::output::OutFile;

/// Which family of outputs a set belongs to: each has its own sets directory, so a what-if
/// written into the same directory as the assignments leaves them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// `abm segment`, `abm export`: `.abm-outputs`.
    Assignments,
    /// `abm whatif`: `.abm-whatif`.
    WhatIf,
    /// `abm analyze`, `abm backtest`, `abm icp learn`: `.abm-analytics`.
    Analytics,
}

impl SetKind {
    /// The hidden directory, inside the output directory, that holds the sets.
    pub fn sets_dir(self) -> &'static str {
        match self {
            SetKind::Assignments => ".abm-outputs",
            SetKind::WhatIf => ".abm-whatif",
            SetKind::Analytics => ".abm-analytics",
        }
    }

    /// The files a set of this kind may hold: checked against the inputs, and removed when a
    /// later set no longer has them.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            SetKind::Assignments => &[
                "cluster_assignments.csv",
                "cluster_assignments.jsonl",
                "cluster_summary.json",
                "rejected_rows.csv",
            ],
            SetKind::WhatIf => &["whatif.json", "whatif_accounts.csv"],
            SetKind::Analytics => &[
                "analytics.json",
                "report.md",
                "report.html",
                "whitespace_accounts.csv",
                "backtest.json",
                "icp_discovery.json",
                "icp.toml",
            ],
        }
    }
}

/// The sets directory of `abm segment`'s outputs.
pub const SETS_DIR: &str = ".abm-outputs";

/// One run's set of outputs being written; see the module documentation.
pub struct OutputSet {
    kind: SetKind,
    /// The user's output directory.
    dir: PathBuf,
    /// `dir/.abm-outputs`.
    root: PathBuf,
    /// `set-N`: this run's directory under `root`, not visible until [`Self::commit`].
    stage_name: String,
    /// The set `current` names when the run began (`None` on the first run).
    previous: Option<String>,
    /// A fresh set name for the outputs of an older `abm` (regular files in `dir`), when
    /// there is no `current` yet.
    legacy_name: String,
    /// Files created in the stage, in order.
    created: Vec<String>,
    /// Device and inode of every input, never written over.
    inputs: HashSet<(u64, u64)>,
    /// Keep the previous set as the spare the next run writes over (else delete it).
    recycle: bool,
    /// Whether the bulk files are written with direct I/O.
    direct: bool,
    committed: bool,
    /// Held for the run: one writer per output directory.
    _lock: File,
}

fn err(kind: io::ErrorKind, msg: String) -> io::Error {
    io::Error::new(kind, msg)
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The set number of a `set-N` name.
fn set_number(name: &OsStr) -> Option<u64> {
    let s = name.to_str()?;
    let digits = s.strip_prefix("set-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 18 {
        return None;
    }
    digits.parse().ok()
}

/// The link target of `dir/NAME`: through `current`.
fn link_target(kind: SetKind, name: &str) -> PathBuf {
    Path::new(kind.sets_dir()).join("current").join(name)
}

/// Remove whatever `path` is without following it (a symlink is removed, not its target).
fn remove_entry(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Make `link` a symlink to `target`, atomically (a temporary link renamed over it).
fn replace_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(link.file_name().unwrap_or_default());
    tmp_name.push(".abm-link");
    let tmp = link.with_file_name(tmp_name);
    remove_entry(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp)?;
    fs::rename(&tmp, link)
}

/// Create `path` for writing: a new regular file, never through a symlink.
fn create_fresh(path: &Path) -> io::Result<File> {
    remove_entry(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl OutputSet {
    /// Begin a set in `dir` (created if needed) for a run that reads `inputs`. Takes the
    /// directory's lock (a second run on the same directory waits), checks that no output
    /// name is an input, and prepares this run's set directory (the spare set, renamed, when
    /// `recycle`). Nothing the user sees changes until [`Self::commit`].
    pub fn begin(
        dir: &Path,
        kind: SetKind,
        inputs: &[&Path],
        tuning: &crate::Tuning,
    ) -> io::Result<OutputSet> {
        let recycle = tuning.recycle_outputs;
        fs::create_dir_all(dir)?;
        let mut ids = HashSet::new();
        for p in inputs {
            if let Ok(m) = fs::metadata(p) {
                ids.insert((m.dev(), m.ino()));
            }
        }
        for name in kind.names() {
            let path = dir.join(name);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    return Err(err(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} is a directory; move it away or choose another --out",
                            path.display()
                        ),
                    ))
                }
                _ => {}
            }
            crate::output::refuse_input(&path, inputs)?;
        }

        let root = dir.join(kind.sets_dir());
        match fs::symlink_metadata(&root) {
            Ok(m) if m.is_dir() => {
                if m.uid() != euid() {
                    return Err(err(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "{} belongs to another user (uid {}); remove it or choose another --out",
                            root.display(),
                            m.uid()
                        ),
                    ));
                }
            }
            Ok(_) => {
                // A symlink or a file where our directory should be: never followed.
                fs::remove_file(&root)?;
                fs::create_dir(&root)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&root)?,
            Err(e) => return Err(e),
        }

        let lock_path = root.join("lock");
        let lock = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&lock_path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => create_fresh(&lock_path)?,
            Err(e) => return Err(e),
        };
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a descriptor we own; released when it closes (also on a kill).
            if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }

        // The committed set, if `current` names a real set directory.
        let previous = fs::read_link(root.join("current")).ok().and_then(|t| {
            let name = t.to_str()?.to_string();
            set_number(OsStr::new(&name))?;
            fs::symlink_metadata(root.join(&name))
                .ok()
                .filter(|m| m.is_dir())
                .map(|_| name)
        });
        // Every other entry of ours is left over from an earlier set or a failed run.
        let mut spares: Vec<(u64, PathBuf, bool)> = Vec::new();
        let mut max = 0u64;
        for entry in fs::read_dir(&root)? {
            let entry = entry?;
            let name = entry.file_name();
            if Some(name.to_str().unwrap_or_default()) == previous.as_deref() {
                max = max.max(set_number(&name).unwrap_or(0));
                continue;
            }
            if let Some(n) = set_number(&name) {
                max = max.max(n);
                let m = fs::symlink_metadata(entry.path())?;
                spares.push((n, entry.path(), m.is_dir() && m.uid() == euid()));
            } else if name.to_str().is_some_and(|s| s.starts_with("current.")) {
                remove_entry(&entry.path())?;
            }
        }
        spares.sort_by_key(|s| std::cmp::Reverse(s.0));
        let next = max + 1;
        let (legacy_name, stage_name) = if previous.is_none() {
            (format!("set-{next}"), format!("set-{}", next + 1))
        } else {
            (String::new(), format!("set-{next}"))
        };
        let stage = root.join(&stage_name);
        let mut reused = false;
        for (i, (_, path, ours)) in spares.iter().enumerate() {
            if i == 0 && recycle && *ours && fs::rename(path, &stage).is_ok() {
                reused = true;
            } else {
                remove_entry(path)?;
            }
        }
        if !reused {
            fs::create_dir(&stage)?;
        }
        Ok(OutputSet {
            kind,
            dir: dir.to_path_buf(),
            root,
            stage_name,
            previous,
            legacy_name,
            created: Vec::new(),
            inputs: ids,
            recycle,
            direct: tuning.direct_io,
            committed: false,
            _lock: lock,
        })
    }

    /// The user's output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stage(&self) -> PathBuf {
        self.root.join(&self.stage_name)
    }

    /// A small file of the set, written through a buffer.
    pub fn create(&mut self, name: &str) -> io::Result<OutFile> {
        let f = create_fresh(&self.stage().join(name))?;
        self.created.push(name.to_string());
        Ok(OutFile::Buffered(BufWriter::with_capacity(1 << 20, f)))
    }

    /// A large file of the set written once from start to end: with direct I/O where the
    /// filesystem allows it (see [`crate::direct`]), over the spare set's file of the same name
    /// when that is safely ours (no allocation, no discard).
    pub fn create_bulk(&mut self, name: &str) -> io::Result<OutFile> {
        let path = self.stage().join(name);
        let reused = if self.recycle {
            self.open_spare(&path)?
        } else {
            None
        };
        let file = match reused {
            Some(f) => f,
            None => create_fresh(&path)?,
        };
        self.created.push(name.to_string());
        if self.direct {
            if let Some(w) = DirectWriter::start(file.try_clone()?)? {
                return Ok(OutFile::Direct(Box::new(w)));
            }
        }
        Ok(OutFile::Buffered(BufWriter::with_capacity(1 << 20, file)))
    }

    /// The spare's file at `path`, opened for writing over, when it is a regular file of ours
    /// with one link and not an input; else `None` (the caller writes a fresh one).
    fn open_spare(&self, path: &Path) -> io::Result<Option<File>> {
        let f = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => f,
            Err(_) => return Ok(None),
        };
        let m = f.metadata()?;
        let safe = m.file_type().is_file()
            && m.uid() == euid()
            && m.nlink() == 1
            && !self.inputs.contains(&(m.dev(), m.ino()));
        if !safe {
            return Ok(None);
        }
        // Back to blocking writes.
        use std::os::unix::io::AsRawFd;
        // SAFETY: fcntl on a descriptor we own; only the status flags change.
        unsafe {
            let fd = f.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
                return Ok(None);
            }
        }
        Ok(Some(f))
    }

    /// Finish every file of the set and make the set visible, all at once. An error before the
    /// switch leaves the previous set exactly as it was.
    ///
    /// `files` are the set's files in the order they were created; an error names the file
    /// (or directory) it concerns.
    pub fn commit(self, files: Vec<OutFile>) -> Result<(), (PathBuf, io::Error)> {
        assert_eq!(files.len(), self.created.len(), "every file of the set");
        for (mut f, name) in files.into_iter().zip(&self.created) {
            f.finish().map_err(|e| (self.dir.join(name), e))?;
        }
        let dir = self.dir.clone();
        self.switch().map_err(|e| (dir, e))
    }

    fn switch(mut self) -> io::Result<()> {
        let stage = self.stage();
        // Leftovers of the spare's old contents are not part of this set.
        for entry in fs::read_dir(&stage)? {
            let entry = entry?;
            if !self
                .created
                .iter()
                .any(|c| OsStr::new(c) == entry.file_name())
            {
                remove_entry(&entry.path())?;
            }
        }

        // The names of this set and of the outputs a previous one may have had.
        let mut names: Vec<&str> = self.created.iter().map(String::as_str).collect();
        for n in self.kind.names() {
            if !names.contains(n) {
                names.push(n);
            }
        }
        if self.previous.is_none() {
            // First set in this directory: regular files of an older `abm` keep showing the
            // same bytes through a legacy set until the switch.
            let legacy = self.root.join(&self.legacy_name);
            remove_entry(&legacy)?;
            fs::create_dir(&legacy)?;
            let mut old_files = Vec::new();
            for n in &names {
                let p = self.dir.join(n);
                if let Ok(m) = fs::symlink_metadata(&p) {
                    if m.file_type().is_file() {
                        if fs::hard_link(&p, legacy.join(n)).is_err() {
                            fs::copy(&p, legacy.join(n))?;
                        }
                        old_files.push(*n);
                    }
                }
            }
            replace_symlink(Path::new(&self.legacy_name), &self.root.join("current"))?;
            for n in old_files {
                replace_symlink(&link_target(self.kind, n), &self.dir.join(n))?;
            }
        }
        // Link the names of this set (a new name dangles, i.e. is absent, until the switch).
        for n in &self.created {
            let link = self.dir.join(n);
            let ours = fs::read_link(&link).is_ok_and(|t| t == link_target(self.kind, n));
            if !ours {
                replace_symlink(&link_target(self.kind, n), &link)?;
            }
        }

        // The switch: one rename.
        replace_symlink(Path::new(&self.stage_name), &self.root.join("current"))?;
        self.committed = true;
        if let Ok(d) = File::open(&self.root) {
            let _ = d.sync_all();
        }

        // Names the new set does not have now dangle: remove them.
        for n in self.kind.names() {
            if self.created.iter().any(|c| c == n) {
                continue;
            }
            let link = self.dir.join(n);
            if fs::read_link(&link).is_ok_and(|t| t == link_target(self.kind, n)) {
                let _ = fs::remove_file(&link);
            }
        }
        // The previous set is now the spare; without recycling it goes.
        if !self.recycle {
            for old in [self.previous.clone(), Some(self.legacy_name.clone())]
                .into_iter()
                .flatten()
                .filter(|n| !n.is_empty())
            {
                let _ = remove_entry(&self.root.join(old));
            }
        }
        Ok(())
    }
}

impl Drop for OutputSet {
    /// A set that was not committed is deleted (its space is freed at once: a run that failed
    /// for want of space leaves none taken); the previous set stays as it was.
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_entry(&self.stage());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_set(dir: &Path, files: &[(&str, &str)], recycle: bool) -> io::Result<()> {
        let mut set = OutputSet::begin(
            dir,
            SetKind::Assignments,
            &[],
            &crate::Tuning {
                recycle_outputs: recycle,
                ..Default::default()
            },
        )?;
        let mut outs = Vec::new();
        for (name, text) in files {
            let mut f = if name.ends_with(".json") {
                set.create(name)?
            } else {
                set.create_bulk(name)?
            };
            f.write_all(text.as_bytes())?;
            outs.push(f);
        }
        set.commit(outs).map_err(|(_, e)| e)
    }

    fn read(dir: &Path, name: &str) -> Option<String> {
        fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn sets_replace_each_other_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        for recycle in [true, false] {
            write_set(
                &out,
                &[
                    ("cluster_assignments.csv", "a1"),
                    ("cluster_assignments.jsonl", "j1"),
                    ("cluster_summary.json", "s1"),
                ],
                recycle,
            )
            .unwrap();
            assert_eq!(read(&out, "cluster_assignments.csv").unwrap(), "a1");
            assert_eq!(read(&out, "cluster_assignments.jsonl").unwrap(), "j1");
            // A longer, then a shorter file over the spare's blocks; a name dropped.
            write_set(
                &out,
                &[
                    ("cluster_assignments.csv", "a2-longer-than-before"),
                    ("cluster_summary.json", "s2"),
                ],
                recycle,
            )
            .unwrap();
            write_set(
                &out,
                &[
                    ("cluster_assignments.csv", "a3"),
                    ("cluster_summary.json", "s3"),
                ],
                recycle,
            )
            .unwrap();
            assert_eq!(read(&out, "cluster_assignments.csv").unwrap(), "a3");
            assert_eq!(read(&out, "cluster_summary.json").unwrap(), "s3");
            assert!(
                fs::symlink_metadata(out.join("cluster_assignments.jsonl")).is_err(),
                "a name the new set does not have is gone"
            );
            let sets: Vec<_> = fs::read_dir(out.join(SETS_DIR))
                .unwrap()
                .filter_map(|e| set_number(&e.unwrap().file_name()))
                .collect();
            assert_eq!(sets.len(), if recycle { 2 } else { 1 }, "{sets:?}");
        }
    }

    #[test]
    fn a_set_not_committed_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        write_set(
            out,
            &[
                ("cluster_assignments.csv", "old"),
                ("cluster_summary.json", "old-s"),
            ],
            true,
        )
        .unwrap();
        {
            let mut set =
                OutputSet::begin(out, SetKind::Assignments, &[], &Default::default()).unwrap();
            let mut f = set.create_bulk("cluster_assignments.csv").unwrap();
            f.write_all(b"new").unwrap();
            let mut g = set.create_bulk("cluster_assignments.jsonl").unwrap();
            g.write_all(b"new").unwrap();
            // Dropped: the run failed.
        }
        assert_eq!(read(out, "cluster_assignments.csv").unwrap(), "old");
        assert_eq!(read(out, "cluster_summary.json").unwrap(), "old-s");
        assert!(read(out, "cluster_assignments.jsonl").is_none());
        // And the next run works.
        write_set(out, &[("cluster_assignments.csv", "next")], true).unwrap();
        assert_eq!(read(out, "cluster_assignments.csv").unwrap(), "next");
    }

    #[test]
    fn never_writes_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let precious = tmp.path().join("precious.txt");
        fs::write(&precious, "keep me").unwrap();
        write_set(&out, &[("cluster_assignments.csv", "one")], true).unwrap();
        write_set(&out, &[("cluster_assignments.csv", "two")], true).unwrap();
        // Plant symlinks to the precious file wherever a run might write.
        let root = out.join(SETS_DIR);
        for e in fs::read_dir(&root).unwrap() {
            let e = e.unwrap();
            if set_number(&e.file_name()).is_some() && e.path().is_dir() {
                let f = e.path().join("cluster_assignments.csv");
                let _ = fs::remove_file(&f);
                std::os::unix::fs::symlink(&precious, &f).unwrap();
                std::os::unix::fs::symlink(&precious, e.path().join("cluster_summary.json"))
                    .unwrap();
            }
        }
        std::os::unix::fs::symlink(&precious, out.join("rejected_rows.csv")).unwrap();
        std::os::unix::fs::symlink(&precious, out.join(".cluster_assignments.csv.spare")).unwrap();
        write_set(
            &out,
            &[
                ("cluster_assignments.csv", "three"),
                ("cluster_summary.json", "s"),
                ("rejected_rows.csv", "r"),
            ],
            true,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&precious).unwrap(), "keep me");
        assert_eq!(read(&out, "cluster_assignments.csv").unwrap(), "three");
        assert_eq!(read(&out, "rejected_rows.csv").unwrap(), "r");

        // The sets directory itself a symlink: removed, never followed.
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::remove_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &root).unwrap();
        write_set(&out, &[("cluster_assignments.csv", "four")], true).unwrap();
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(read(&out, "cluster_assignments.csv").unwrap(), "four");
        assert!(fs::symlink_metadata(&root).unwrap().is_dir());
    }

    #[test]
    fn older_outputs_are_taken_over_without_a_gap() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path();
        fs::write(out.join("cluster_assignments.csv"), "legacy").unwrap();
        fs::write(out.join("cluster_summary.json"), "legacy-s").unwrap();
        write_set(out, &[("cluster_assignments.csv", "new")], true).unwrap();
        assert_eq!(read(out, "cluster_assignments.csv").unwrap(), "new");
        assert!(read(out, "cluster_summary.json").is_none());
    }

    #[test]
    fn refuses_to_replace_an_input() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("cluster_assignments.csv");
        fs::write(&input, "an input").unwrap();
        let e = OutputSet::begin(
            tmp.path(),
            SetKind::Assignments,
            &[&input],
            &Default::default(),
        )
        .err()
        .expect("refused");
        assert!(e.to_string().contains("which this command reads"), "{e}");
        assert_eq!(fs::read_to_string(&input).unwrap(), "an input");
    }
}
