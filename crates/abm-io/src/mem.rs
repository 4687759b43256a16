//! Large per-account arrays backed by transparent huge pages where the OS allows it.
//!
//! The bulk fold touches its per-account state and the id index at random: with 4 KiB pages
//! nearly every event is a TLB miss (and under virtualization a two-level page walk). Asking for
//! huge pages (`MADV_HUGEPAGE`) before the memory is first touched removes most of them. On
//! other systems this is a no-op.

/// A vector of `n` copies of `value`, huge-page backed when possible.
pub fn huge_vec<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr() as *const u8, n * std::mem::size_of::<T>());
    v.resize(n, value);
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

#[cfg(test)]
mod tests {
    #[test]
    fn huge_vec_is_initialized() {
        let v = super::huge_vec(5_000_000, 7u32);
        assert_eq!(v.len(), 5_000_000);
        assert!(v.iter().all(|&x| x == 7));
    }
}
