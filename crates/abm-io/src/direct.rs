//! Large outputs written with direct I/O (`O_DIRECT`), past the page cache.
//!
//! Writing a 250 MB assignment file through the page cache costs the CPU a copy into freshly
//! allocated cache pages; on virtual machines whose host hands out guest memory lazily (this
//! project's CI and benchmark machines) that is ~2 ms of system time per MB, more than
//! rendering the rows. With `O_DIRECT` the data goes from our buffer to the device: measured
//! here, 240 MB in 0.1 s of wall time and ~0.02 s of CPU instead of ~0.5 s of CPU. The file
//! is the same file; readers get the same bytes.
//!
//! Direct I/O wants aligned buffers, lengths and offsets: bytes are staged in aligned 4 MiB
//! buffers, written whole by a thread of the writer's own (the caller fills the next buffer
//! meanwhile); the unaligned tail is written after turning `O_DIRECT` off on the descriptor. Where the filesystem refuses direct I/O (tmpfs, some network and
//! overlay filesystems) the writer falls back to ordinary buffered writes, silently and
//! correctly. `Tuning::direct_io` turns it off.

use std::fs::File;
use std::io::{self, Write};

/// Alignment of buffer, lengths and offsets: a page, which covers 512- and 4096-byte devices.
const ALIGN: usize = 4096;
/// Bytes staged per write.
const STAGE: usize = 4 << 20;

/// A page-aligned buffer of [`STAGE`] bytes (over-allocated, used from `off`).
struct Stage {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl Stage {
    fn new() -> Stage {
        let raw = vec![0u8; STAGE + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN);
        Stage { raw, off, len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }
}

/// A writer that stages bytes in aligned buffers and writes whole ones with `O_DIRECT` on a
/// thread of its own, so the caller goes on filling the next buffer while the device works.
pub struct DirectWriter {
    stage: Stage,
    /// Full stages to the writer thread; empty ones come back.
    to_disk: Option<std::sync::mpsc::SyncSender<Stage>>,
    spare: std::sync::mpsc::Receiver<Stage>,
    disk: Option<std::thread::JoinHandle<io::Result<File>>>,
    /// The file once the writer thread has finished (for the tail).
    file: Option<File>,
    /// Bytes accepted so far: the file's length once finished (a recycled file may be longer).
    written: u64,
}

/// Turn `O_DIRECT` off on `file` (for the tail, or after the device refused).
fn go_buffered(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; only the status flags change.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(())
}

/// The writer thread: write each stage whole, hand it back. A filesystem that accepted
/// `O_DIRECT` at open but refuses a write (`EINVAL`: nothing was written) gets the same bytes
/// buffered, and every later stage too.
fn write_stages(
    mut file: File,
    stages: std::sync::mpsc::Receiver<Stage>,
    spare: std::sync::mpsc::Sender<Stage>,
) -> io::Result<File> {
    let mut direct = true;
    for mut stage in stages {
        match file.write_all(stage.bytes()) {
            Ok(()) => {}
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                direct = false;
                go_buffered(&file)?;
                file.write_all(stage.bytes())?;
            }
            Err(e) => return Err(e),
        }
        stage.len = 0;
        let _ = spare.send(stage);
    }
    Ok(file)
}

impl DirectWriter {
    /// Write `file` (opened for writing, positioned at its start) with direct I/O from here
    /// on; `Ok(None)` when this system or filesystem does not do direct I/O (the caller writes
    /// it normally). The file is not truncated first: writing over blocks the file already
    /// has costs the filesystem no allocation (and, on a filesystem mounted with `discard`, no
    /// discards); [`DirectWriter::finish`] cuts the file to the bytes written.
    pub fn start(file: File) -> io::Result<Option<DirectWriter>> {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::io::AsRawFd;
            let fd = file.as_raw_fd();
            // SAFETY: fcntl on a descriptor we own; only the status flags change.
            let ok = unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_DIRECT) == 0
            };
            if !ok {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(None),
                    _ => Err(e),
                };
            }
            // One stage on the way to the device while the next fills.
            let (to_disk, stages) = std::sync::mpsc::sync_channel(1);
            let (spare_tx, spare) = std::sync::mpsc::channel();
            let disk = std::thread::Builder::new()
                .name("abm-direct-io".into())
                .spawn(move || write_stages(file, stages, spare_tx))?;
            Ok(Some(DirectWriter {
                stage: Stage::new(),
                to_disk: Some(to_disk),
                spare,
                disk: Some(disk),
                file: None,
                written: 0,
            }))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = file;
            Ok(None)
        }
    }

    /// Hand the current stage to the writer thread and take an empty one.
    fn ship(&mut self) -> io::Result<()> {
        let next = self.spare.try_recv().unwrap_or_else(|_| Stage::new());
        let full = std::mem::replace(&mut self.stage, next);
        let sent = self.to_disk.as_ref().map(|tx| tx.send(full));
        if let Some(Err(_)) = sent {
            // The writer thread stopped: its error says why.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the direct-I/O writer stopped")));
        }
        Ok(())
    }

    /// Wait for the writer thread; the file comes back to this side.
    fn join(&mut self) -> io::Result<()> {
        self.to_disk = None;
        if let Some(h) = self.disk.take() {
            let file = h
                .join()
                .map_err(|_| io::Error::other("the direct-I/O writer panicked"))??;
            self.file = Some(file);
        }
        Ok(())
    }

    /// Write everything staged: the aligned part directly (through the writer thread), then,
    /// once it is done, the tail buffered, and cut the file to the bytes written. Further
    /// writes are buffered and stay correct.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.disk.is_some() {
            let aligned = self.stage.len / ALIGN * ALIGN;
            let tail =
                self.stage.raw[self.stage.off + aligned..self.stage.off + self.stage.len].to_vec();
            if aligned > 0 {
                self.stage.len = aligned;
                self.ship()?;
            }
            self.join()?;
            self.stage.len = 0;
            let file = self.file.as_mut().expect("joined");
            go_buffered(file)?;
            file.write_all(&tail)?;
        }
        if self.stage.len > 0 {
            let file = self.file.as_mut().expect("joined");
            file.write_all(self.stage.bytes())?;
            self.stage.len = 0;
        }
        let file = self.file.as_mut().expect("joined");
        file.flush()?;
        if file.metadata()?.len() != self.written {
            file.set_len(self.written)?;
        }
        Ok(())
    }
}

impl Write for DirectWriter {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        self.written += total as u64;
        while !buf.is_empty() {
            let room = STAGE - self.stage.len;
            let n = room.min(buf.len());
            let at = self.stage.off + self.stage.len;
            self.stage.raw[at..at + n].copy_from_slice(&buf[..n]);
            self.stage.len += n;
            buf = &buf[n..];
            if self.stage.len == STAGE {
                if self.disk.is_some() {
                    self.ship()?;
                } else {
                    // After finish: buffered.
                    let file = self.file.as_mut().expect("joined");
                    file.write_all(self.stage.bytes())?;
                    self.stage.len = 0;
                }
            }
        }
        Ok(total)
    }

    /// Nothing is forced out before [`DirectWriter::finish`]: a partial block cannot be
    /// written directly.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DirectWriter {
    /// Stop the writer thread (an unfinished file is the caller's temporary file to delete).
    fn drop(&mut self) {
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever sizes the writes come in, the file holds exactly the bytes written.
    #[test]
    fn every_byte_arrives_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for total in [
            0usize,
            1,
            4095,
            4096,
            4097,
            STAGE - 1,
            STAGE,
            STAGE + 5000,
            3 * STAGE + 123,
        ] {
            let p = dir.path().join(format!("out-{total}"));
            let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4096) as u8).collect();
            match DirectWriter::start(std::fs::File::create(&p).unwrap()).unwrap() {
                Some(mut w) => {
                    let mut rest = &data[..];
                    let mut step = 1;
                    while !rest.is_empty() {
                        let n = step.min(rest.len());
                        w.write_all(&rest[..n]).unwrap();
                        rest = &rest[n..];
                        step = step * 3 + 1;
                    }
                    w.finish().unwrap();
                    w.write_all(b"after").unwrap(); // buffered from here on
                    w.finish().unwrap();
                }
                None => {
                    eprintln!("direct I/O is not available in {}", dir.path().display());
                    std::fs::write(&p, [&data[..], b"after"].concat()).unwrap();
                }
            }
            let got = std::fs::read(&p).unwrap();
            assert_eq!(got.len(), total + 5, "size of {total}");
            assert!(got[..total] == data[..], "content of {total}");
            assert_eq!(&got[total..], b"after");
        }
    }

    /// Writing over an existing file leaves exactly the new bytes, whether they are fewer or
    /// more than the old ones.
    #[test]
    fn overwrite_leaves_exactly_the_new_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        for (old, new) in [
            (3 * STAGE + 77, 5000),
            (5000, 2 * STAGE + 3),
            (8192, 8192),
            (100, 0),
        ] {
            std::fs::write(&p, vec![b'o'; old]).unwrap();
            let data: Vec<u8> = (0..new).map(|i| (i % 251) as u8).collect();
            match DirectWriter::start(std::fs::OpenOptions::new().write(true).open(&p).unwrap())
                .unwrap()
            {
                Some(mut w) => {
                    w.write_all(&data).unwrap();
                    w.finish().unwrap();
                }
                None => {
                    eprintln!("direct I/O is not available in {}", dir.path().display());
                    return;
                }
            }
            let got = std::fs::read(&p).unwrap();
            assert_eq!(got.len(), new, "{old} -> {new}");
            assert!(got == data, "{old} -> {new}");
        }
    }
}
