//! How kpulse uses the C allocator, tuned for a long-running watcher whose memory is mostly a
//! steady set of small objects, with a burst of large ones at each (re-)list.
//!
//! - [`configure`], before any thread starts: glibc's malloc gives every thread that allocates
//!   its own arena; each keeps freed memory of its own. kpulse's threads (a few runtime workers,
//!   the blocking pool) share few arenas instead: measured in `make bench-scale`, this removes
//!   most of the resident memory a list leaves behind, at no cost in alert latency.
//! - [`release`], after a complete list: hands the pages the list's transient buffers (one page
//!   of objects as the API server sent them, untrimmed) left free back to the kernel.
//!
//! Both are no-ops on other C libraries (musl returns memory by itself).

/// The arenas glibc may create (its default is 8 per core).
pub const ARENAS: i32 = 2;

/// Limits glibc's arenas to [`ARENAS`] unless `MALLOC_ARENA_MAX` is set (the environment
/// wins, so an operator can measure another setting). Call first thing, before threads start.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Returns free memory at the top of every arena and free whole pages inside them to the
/// kernel. Costs a walk of the free lists: call it after rare, large events (a complete list).
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory malloc does not use.
    unsafe {
        libc::malloc_trim(0);
    }
}
