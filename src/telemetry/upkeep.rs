//! Process-wide memory upkeep, on one thread started with the metrics recorder:
//! - drains the Prometheus histograms into their buckets, which otherwise keep every
//!   recorded sample until the next scrape (a server nobody scrapes grows with traffic);
//! - gives the allocator's free memory back to the system after a large drop (glibc
//!   keeps what a thread freed in that thread's arena: after 2 000 connections closed,
//!   40 MB stayed resident with 1 MB in use).
//!
//! The thread lives as long as the process-wide recorder, i.e. the process.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tracing::debug;

/// How often the upkeep runs (metrics-exporter-prometheus' own default).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Growth of the allocator's free memory since the last trim that makes it trim again,
/// in bytes (or an eighth of the memory in use, if more).
pub const RETAINED_FREE_LIMIT: usize = 8 << 20;

/// Starts the upkeep thread for `handle`; false if the thread could not be started.
pub fn start(handle: PrometheusHandle) -> bool {
    std::thread::Builder::new()
        .name("chatwire-upkeep".into())
        .spawn(move || {
            let mut trimmer = Trimmer::default();
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
                trimmer.tick();
            }
        })
        .is_ok()
}

/// Trims the heap when the memory resident but not in use grew by more than
/// [`RETAINED_FREE_LIMIT`] (or an eighth of the heap in use) since the last check that
/// trimmed. Resident memory, not the allocator's free count, is compared: trimmed pages
/// still count as free for glibc, but no longer as resident. The baseline starts at 0,
/// so a churn that ends before the first check is trimmed too.
#[derive(Debug, Default)]
pub struct Trimmer {
    baseline: usize,
}

impl Trimmer {
    /// Checks the heap once; whether it asked the allocator to give memory back.
    pub fn tick(&mut self) -> bool {
        let (Some(in_use), Some(resident)) = (heap::in_use(), resident_bytes()) else {
            return false;
        };
        let unused = resident.saturating_sub(in_use);
        // Memory taken up again lowers the baseline.
        self.baseline = self.baseline.min(unused);
        if unused - self.baseline < RETAINED_FREE_LIMIT.max(in_use / 8) {
            return false;
        }
        let released = heap::trim();
        let after = resident_bytes().map_or(unused, |r| r.saturating_sub(in_use));
        self.baseline = after;
        debug!(
            in_use,
            resident, after, released, "gave free heap memory back"
        );
        true
    }
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// glibc's allocator statistics and `malloc_trim`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod heap {
    /// Bytes of the heap in use, over every arena and mmapped block.
    pub fn in_use() -> Option<usize> {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value;
        // glibc locks each arena while it reads it.
        let info = unsafe { libc::mallinfo2() };
        Some(info.uordblks + info.hblkhd)
    }

    /// Returns free pages of every arena to the system; whether any were.
    pub fn trim() -> bool {
        // SAFETY: malloc_trim takes no pointers; glibc serialises it with the other
        // allocator calls, arena by arena.
        unsafe { libc::malloc_trim(0) == 1 }
    }
}

/// Other allocators return memory by themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod heap {
    pub fn in_use() -> Option<usize> {
        None
    }

    pub fn trim() -> bool {
        false
    }
}
