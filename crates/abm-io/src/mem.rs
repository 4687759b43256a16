//! Large per-account arrays backed by transparent huge pages where the OS allows it.
//!
//! The bulk fold touches its per-account state and the id index at random: with 4 KiB pages
//! nearly every event is a TLB miss (and under virtualization a two-level page walk). Asking for
//! huge pages (`MADV_HUGEPAGE`) before the memory is first touched removes most of them. On
//! other systems this is a no-op. Also: mapped input files, and the prefetch hint the scans of
//! their blocks use.

/// Ask for the cache line at `p` (a hint: any address, mapped or not, is fine).
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// How far ahead a front-to-back scan of a block prefetches (bytes). A mapped file's pages are
/// scattered in memory, and the hardware prefetcher does not follow a stream across pages.
pub const PREFETCH_AHEAD: usize = 2048;

/// A vector of `n` copies of `value`, huge-page backed when possible.
pub fn huge_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr() as *const u8, n * std::mem::size_of::<T>());
    v.resize(n, value);
    v
}

/// [`huge_vec`], filled by `threads` threads at once (first touching fresh memory is slow on
/// virtual machines; this spreads it over the cores).
pub fn huge_vec_par<T: Clone + Send + Sync>(n: usize, value: T, threads: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr() as *const u8, n * std::mem::size_of::<T>());
    let chunk = n.div_ceil(threads.max(1)).max(1 << 16);
    std::thread::scope(|s| {
        for part in v.spare_capacity_mut()[..n].chunks_mut(chunk) {
            let value = &value;
            s.spawn(move || {
                for slot in part {
                    slot.write(value.clone());
                }
            });
        }
    });
    // SAFETY: the scope above initialized every element of 0..n (the chunks cover it).
    unsafe { v.set_len(n) };
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    if len < 2 * HUGE {
        return;
    }
    let start = (ptr as usize).div_ceil(HUGE) * HUGE;
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside an allocation we own and have not yet initialized;
        // MADV_HUGEPAGE only changes how the kernel backs it.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *const u8, _: usize) {}

/// A read-only memory map of a whole file: the bulk readers cut blocks out of it without
/// copying, and hand consumed ranges back to the kernel so the resident set stays small.
///
/// The file must not be truncated while mapped (the process would get SIGBUS); inputs are
/// files the run only reads. `ABM_NO_MMAP=1` turns mapping off.
pub struct MappedFile {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; sharing `&[u8]` views across threads is sound.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// Map `file` (its current length); `None` where mapping is unavailable or turned off.
    #[cfg(target_os = "linux")]
    pub fn open(file: &std::fs::File) -> Option<MappedFile> {
        use std::os::fd::AsRawFd;
        if std::env::var_os("ABM_NO_MMAP").is_some_and(|v| v != "0") {
            return None;
        }
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: a fresh private read-only mapping of an open file; checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: advice on our own mapping.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Some(MappedFile {
            ptr: ptr as *mut u8,
            len,
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn open(_: &std::fs::File) -> Option<MappedFile> {
        None
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is our live read-only mapping.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Drop the pages wholly inside `range` from this process (they stay in the page cache;
    /// reading them again would fault them back in).
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: usize = 4096;
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = (range.end.min(self.len)) / PAGE * PAGE;
            if end > start {
                // SAFETY: the range lies inside our mapping and no `&[u8]` into it is used
                // afterwards by the caller's contract (blocks are released once processed);
                // for a private file mapping, MADV_DONTNEED only drops our page table entries.
                unsafe {
                    libc::madvise(
                        self.ptr.add(start) as *mut libc::c_void,
                        end - start,
                        libc::MADV_DONTNEED,
                    )
                };
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = range;
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        // SAFETY: unmapping our own mapping once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

/// This process's memory now: (anonymous resident bytes, peak resident bytes), from
/// `/proc/self/status` (`None` where there is no such file).
pub fn resident() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let v = line[key.len()..].trim().trim_end_matches("kB").trim();
        v.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some((kb("RssAnon:")?, kb("VmHWM:")?))
}

/// CPU seconds this process has used so far (user, system).
pub fn cpu_seconds() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    #[test]
    fn huge_vec_is_initialized() {
        let v = super::huge_vec(5_000_000, 7u32);
        assert_eq!(v.len(), 5_000_000);
        assert!(v.iter().all(|&x| x == 7));
        for (n, threads) in [(0, 2), (1, 2), (100_000, 3), (5_000_000, 2)] {
            let v = super::huge_vec_par(n, 9u64, threads);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 9));
        }
    }
}
