//! Keeping the audit writer's SQLite threads from delaying the trading path.
//!
//! The audit writer is off the trading path: it catches up from Redis, where its entries wait
//! until it acknowledges them. A SQLite transaction holds a core for milliseconds, and at
//! normal priority a stage woken meanwhile waits for it; on 2 cores that was the largest part
//! of the candle → fill p99 at 1,000 candles/s. At a lower priority (nice [`AUDIT_NICE`]) a
//! waking stage takes the core at once, while an otherwise idle machine still gives the
//! writer all it can use. Linux only; elsewhere (or without /proc) nothing changes.

/// Nice value of the audit writer's threads (0 is normal, 19 the lowest).
pub const AUDIT_NICE: i32 = 10;

/// Lowers every thread of this process whose name starts with `prefix` (threads another
/// library spawns, such as sqlx's SQLite connection threads).
pub(crate) fn lower_threads_named(prefix: &str) {
    #[cfg(target_os = "linux")]
    {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with(prefix)
                && let Some(tid) = task.file_name().to_str().and_then(|t| t.parse::<libc::id_t>().ok())
            {
                set_nice(tid);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = prefix;
}

/// Lowers the calling thread (for the threads of a runtime that runs only the audit writer).
pub fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        if let Ok(tid) = libc::id_t::try_from(tid) {
            set_nice(tid);
        }
    }
}

/// `who`: a thread id.
#[cfg(target_os = "linux")]
fn set_nice(who: libc::id_t) {
    // SAFETY: setpriority only reads its integer arguments; on Linux PRIO_PROCESS with a thread
    // id changes that one thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, AUDIT_NICE) };
    if rc != 0 {
        tracing::debug!(tid = who, error = %std::io::Error::last_os_error(), "could not lower a thread's priority");
    }
}
