//! The process's allocator settings.
//!
//! glibc's malloc gives a thread that finds the arenas busy an arena of its own, up to
//! eight per core, and each arena keeps the memory freed into it. The service's threads
//! (tokio's workers, its blocking pool, the SQLite worker) take turns allocating the same
//! kinds of short-lived values, so over the first quarter of an hour more and more arenas
//! each hold a share of free memory: in the load harness's soak, resident memory grew by
//! about 5 MiB (+6 %) after the warm-up with the default, and stayed within ±5 % with two
//! arenas (BENCHMARKS.md, "Soak"). Even so, a heap keeps the free pages between its live
//! blocks; the service hands them back once a minute ([`spawn_trim`]).

/// Arenas the binary lets glibc create (one per tokio worker on the 2-core machine the
/// service is measured on).
pub const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] unless `MALLOC_ARENA_MAX` is set in the
/// environment (an operator's choice wins). Call first thing in `main`, before any other
/// thread starts. Does nothing on other C libraries; an embedding host keeps its own
/// allocator settings (the library never calls it).
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of glibc's allocator; called before other
        // threads exist, it races with no allocation.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// How often [`spawn_trim`]'s task hands free memory back.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts a task that, every `every`, gives the pages glibc's heaps hold free back to the
/// system (`malloc_trim`): free memory between live blocks is otherwise kept by the heap
/// and counted in resident memory for as long as the process runs. A few milliseconds of
/// one thread a minute. Does nothing on other C libraries. Call inside the runtime.
pub fn spawn_trim(every: std::time::Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            // Off the async workers: the walk over the heaps takes a moment.
            let _ = tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only releases free pages; it is thread-safe.
                unsafe { libc::malloc_trim(0) }
            })
            .await;
        }
    });
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = every;
}
