//! Process-wide tuning of the C allocator libtorch allocates through.
//!
//! libtorch takes CPU tensor memory from `malloc`. glibc serves blocks above its mmap threshold
//! (at most 32 MiB) with a fresh `mmap` and hands them back with `munmap` when freed, so a training
//! step that allocates the same large gradients, momentum updates and activations every step
//! page-faults all of them in again, with the kernel zeroing every page. Measured on the 2-core
//! CI machine, one epoch of the Faster R-CNN demo (a 64-million-parameter box head) took 30 s,
//! 22 s of it in the kernel, and 20 s with 6 s in the kernel once those blocks were reused from
//! the heap; peak resident memory rose from 2.5 to 2.8 GB (3.1 GB with glibc's
//! `MALLOC_MMAP_THRESHOLD_` raised instead).
//!
//! [`reuse_large_blocks`] is what the task binaries call first thing in `main`; a library user
//! decides for their own process.

/// Makes glibc serve every allocation from its heap (no per-block `mmap`) and keep up to
/// 256 MiB of freed memory at the top of the heap instead of returning it at once, so large
/// tensors freed by one training step are reused by the next without page faults.
///
/// Does nothing where the C library is not glibc, or when the user has tuned glibc through its
/// own environment variables (`MALLOC_MMAP_MAX_`, `MALLOC_MMAP_THRESHOLD_`,
/// `MALLOC_TRIM_THRESHOLD_`, `GLIBC_TUNABLES`): theirs win.
pub fn reuse_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned_by_user = [
            "MALLOC_MMAP_MAX_",
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
            "GLIBC_TUNABLES",
        ]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
        if tuned_by_user {
            return;
        }
        // SAFETY: mallopt only changes glibc's allocation policy; it is called before this
        // process starts other threads of its own, and a rejected value leaves the default.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
}
