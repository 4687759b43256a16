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

/// Types whose all-zero bit pattern is a valid value, equal to their default, and that own
/// nothing (no `Drop`).
///
/// # Safety
/// Every field must be a plain integer (or an array of them) and `Default` must be all zeros.
pub unsafe trait ZeroDefault: Default + Copy {}

// SAFETY: a plain integer; its default is 0.
unsafe impl ZeroDefault for u64 {}

// SAFETY: integer fields only (its instants are stored as `u64` stamps with "never" as 0); its
// `Default` is all zero bits (a test in abm-core checks it).
unsafe impl ZeroDefault for abm_core::engagement::EngagementState {}

/// A fixed-length array of `T` whose initial contents are the default: on Linux, a private
/// anonymous mapping (huge pages where possible) of zero pages that the kernel zeroes where
/// they are first touched, so nothing is written before use; elsewhere, a vector.
pub struct ZeroedArray<T: ZeroDefault> {
    #[cfg(target_os = "linux")]
    ptr: std::ptr::NonNull<T>,
    #[cfg(target_os = "linux")]
    len: usize,
    #[cfg(not(target_os = "linux"))]
    vec: Vec<T>,
}

// SAFETY: the array owns its values like a `Vec<T>` does.
unsafe impl<T: ZeroDefault + Send> Send for ZeroedArray<T> {}
unsafe impl<T: ZeroDefault + Sync> Sync for ZeroedArray<T> {}

impl<T: ZeroDefault> ZeroedArray<T> {
    /// `n` default values.
    #[cfg(target_os = "linux")]
    pub fn new(n: usize) -> ZeroedArray<T> {
        let bytes = n.checked_mul(std::mem::size_of::<T>()).expect("array size");
        assert!(
            std::mem::align_of::<T>() <= 4096,
            "a mapping is page aligned"
        );
        if bytes == 0 {
            return ZeroedArray {
                ptr: std::ptr::NonNull::dangling(),
                len: n,
            };
        }
        // SAFETY: a fresh private anonymous mapping (page aligned, zero filled); checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::array::<T>(n).expect("array layout"),
            );
        }
        advise_huge(p as *const u8, bytes);
        ZeroedArray {
            ptr: std::ptr::NonNull::new(p as *mut T).expect("mmap gives a non-null address"),
            len: n,
        }
    }

    /// `n` default values.
    #[cfg(not(target_os = "linux"))]
    pub fn new(n: usize) -> ZeroedArray<T> {
        ZeroedArray {
            vec: (0..n).map(|_| T::default()).collect(),
        }
    }
}

impl<T: ZeroDefault> std::ops::Deref for ZeroedArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        #[cfg(target_os = "linux")]
        // SAFETY: `len` values live at `ptr` (zero bits are valid values: `ZeroDefault`), page
        // aligned, owned by `self`.
        return unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) };
        #[cfg(not(target_os = "linux"))]
        return &self.vec;
    }
}

impl<T: ZeroDefault> std::ops::DerefMut for ZeroedArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        #[cfg(target_os = "linux")]
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        return unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) };
        #[cfg(not(target_os = "linux"))]
        return &mut self.vec;
    }
}

impl<T: ZeroDefault> Drop for ZeroedArray<T> {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            // ZeroDefault values are plain integers: nothing to drop but the mapping.
            let bytes = self.len * std::mem::size_of::<T>();
            if bytes > 0 {
                // SAFETY: the mapping made in `new`, of this size, unmapped once.
                unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, bytes) };
            }
        }
    }
}

impl<T: ZeroDefault + std::fmt::Debug> std::fmt::Debug for ZeroedArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
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

/// A read-only memory map of a whole file (`memmap2`, a private copy-on-write mapping that is
/// never written): the bulk readers cut blocks out of it without copying, and hand consumed
/// ranges back to the kernel so the resident set stays small.
///
/// The file must not be truncated while mapped (the process would get SIGBUS); inputs are
/// files the run only reads. `ABM_NO_MMAP=1` turns mapping off.
#[derive(Debug)]
pub struct MappedFile {
    map: memmap2::Mmap,
    /// The file itself, for reads that copy a range instead of faulting it in
    /// ([`MappedFile::read_at`]).
    file: Option<std::fs::File>,
}

impl MappedFile {
    /// Map `file` (its current length); `None` where mapping is unavailable or the file is
    /// empty or not a regular file.
    pub fn open(file: &std::fs::File) -> Option<MappedFile> {
        let meta = file.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: a read-only private mapping of a file the run only reads; the caller's
        // contract is that no other process truncates an input during a run (documented in
        // ARCHITECTURE.md, as for any memory-mapped reader).
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(len)
                .map_copy_read_only(file)
        }
        .ok()?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Some(MappedFile { map, file: None })
    }

    /// Whether [`MappedFile::read_at`] can read (the file was kept).
    pub fn can_read(&self) -> bool {
        self.file.is_some()
    }

    /// Keep `file` (the mapped file) for [`MappedFile::read_at`].
    pub fn with_file(mut self, file: std::fs::File) -> MappedFile {
        self.file = Some(file);
        self
    }

    /// Copy `len` bytes at `offset` into `buf` (resized to `len`) with `pread`, without
    /// touching the map; `false` (and `buf` unspecified) when there is no file to read or the
    /// read fails or comes up short.
    ///
    /// Reading a range the process then scans once is cheaper than faulting it into the map
    /// and dropping it again: measured here, 1 GB costs ~0.1 CPU-s of `pread` into a buffer
    /// that stays in the core's cache, against ~0.2 CPU-s of page faults and `MADV_DONTNEED`.
    pub fn read_at(&self, buf: &mut Vec<u8>, offset: usize, len: usize) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            let Some(file) = &self.file else {
                return false;
            };
            if offset
                .checked_add(len)
                .is_none_or(|end| end > self.map.len())
            {
                return false;
            }
            buf.resize(len, 0);
            file.read_exact_at(buf, offset as u64).is_ok()
        }
        #[cfg(not(unix))]
        {
            let _ = (buf, offset, len);
            false
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Drop the pages wholly inside `range` from this process (they stay in the page cache;
    /// reading them again would fault them back in).
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(target_os = "linux")]
        {
            const PAGE: usize = 4096;
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = (range.end.min(self.map.len())) / PAGE * PAGE;
            if end > start {
                // SAFETY: the range lies inside our mapping and no `&[u8]` into it is used
                // afterwards by the caller's contract (blocks are released once processed);
                // for a private file mapping never written, MADV_DONTNEED only drops our page
                // table entries: a later read faults the file's bytes back in.
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = range;
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

/// CPU seconds this process has used so far (user, system): not measured on this system.
#[cfg(not(unix))]
pub fn cpu_seconds() -> (f64, f64) {
    (0.0, 0.0)
}

/// CPU seconds this process has used so far (user, system).
#[cfg(unix)]
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
    }

    #[test]
    fn zeroed_arrays_hold_defaults_and_take_writes() {
        for n in [0usize, 1, 1000, 3 << 20] {
            let mut a = super::ZeroedArray::<u64>::new(n);
            assert_eq!(a.len(), n);
            assert!(a.iter().all(|&v| v == 0));
            for (i, v) in a.iter_mut().enumerate() {
                *v = i as u64;
            }
            assert!(a.iter().enumerate().all(|(i, &v)| v == i as u64));
        }
        let s = super::ZeroedArray::<abm_core::engagement::EngagementState>::new(5000);
        assert!(s.iter().all(|st| *st == Default::default()));
    }
}
