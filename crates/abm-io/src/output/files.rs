//! Writing single files atomically, refusing to write over an input, and the summary and
//! rejected-rows files.

use super::*;

/// A single file written to a temporary name beside it and renamed into place on `commit`
/// (for sets of files, see [`crate::outset::OutputSet`]). The temporary file is created fresh,
/// never through a symlink; the rename replaces whatever `path` was (a symlink there is
/// replaced, its target never written).
pub struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    pub out: OutFile,
    committed: bool,
}

/// Where an output's bytes go: a buffered file, or direct I/O for bulk outputs.
pub enum OutFile {
    Buffered(BufWriter<File>),
    Direct(Box<crate::direct::DirectWriter>),
}

impl OutFile {
    /// Write out everything buffered.
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.flush(),
            OutFile::Direct(w) => w.finish(),
        }
    }
}

impl Write for OutFile {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutFile::Buffered(w) => w.write(buf),
            OutFile::Direct(w) => w.write(buf),
        }
    }

    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.write_all(buf),
            OutFile::Direct(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutFile::Buffered(w) => w.flush(),
            OutFile::Direct(w) => w.flush(),
        }
    }
}

impl AtomicFile {
    /// Begin writing `path`. `inputs` are files the caller reads: replacing one of them (the
    /// same device and inode as `path`) is refused before anything is written.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        Self::create_checked(path, &[])
    }

    /// [`Self::create`], refusing when `path` is one of `inputs`.
    pub fn create_checked(path: &Path, inputs: &[&Path]) -> io::Result<AtomicFile> {
        refuse_input(path, inputs)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // A leftover (or a planted symlink) goes; the new file is created exclusively.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o644)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        let f = opts.open(&tmp)?;
        Ok(AtomicFile {
            out: OutFile::Buffered(BufWriter::with_capacity(1 << 20, f)),
            tmp,
            path: path.to_path_buf(),
            committed: false,
        })
    }

    pub fn commit(mut self) -> io::Result<()> {
        self.out.finish()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

/// An error when `path` names the same file (device and inode) as one of `inputs`.
pub fn refuse_input(path: &Path, inputs: &[&Path]) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(out) = std::fs::metadata(path) else {
            return Ok(());
        };
        for input in inputs {
            if let Ok(m) = std::fs::metadata(input) {
                if (m.dev(), m.ino()) == (out.dev(), out.ino()) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "refusing to write {}: that file is {}, which this command reads \
                             (choose another output path)",
                            path.display(),
                            input.display()
                        ),
                    ));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, inputs);
    Ok(())
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // If not committed, the temp file is removed; the previous output stays.
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

pub fn write_summary(path: &Path, s: &Summary) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    write_summary_to(&mut f.out, s)?;
    f.commit()
}

/// `cluster_summary.json`'s bytes.
pub fn write_summary_to(w: &mut impl Write, s: &Summary) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, s)?;
    w.write_all(b"\n")
}

/// `rejected_rows.csv` at `path`, refused when `path` is one of `inputs`.
pub fn write_rejected(path: &Path, rows: &[Rejection], inputs: &[&Path]) -> io::Result<()> {
    let mut f = AtomicFile::create_checked(path, inputs)?;
    write_rejected_to(&mut f.out, rows)?;
    f.commit()
}

/// `rejected_rows.csv`'s bytes.
pub fn write_rejected_to(w: &mut impl Write, rows: &[Rejection]) -> io::Result<()> {
    let mut buf = Vec::new();
    csv_line(&mut buf, ["file", "line", "column", "reason", "record"]);
    for r in rows {
        let line = r.line.to_string();
        csv_output_line(
            &mut buf,
            [
                r.file.as_str(),
                line.as_str(),
                r.column.as_str(),
                r.reason.as_str(),
                r.record.as_str(),
            ],
        );
    }
    w.write_all(&buf)
}
