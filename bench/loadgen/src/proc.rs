//! Resident memory and CPU time of processes, from /proc.

/// Clock ticks per second of /proc/PID/stat times (USER_HZ).
pub const TICKS_PER_SEC: f64 = 100.0;

/// (resident KB, utime+stime ticks) of `pid`; zeros when it cannot be read.
pub fn proc_stats(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (rss, field(11) + field(12))
}

/// Summed (resident KB, CPU ticks) of `pids`.
pub fn server_stats(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .map(|&p| proc_stats(p))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// This process's CPU ticks.
pub fn self_ticks() -> u64 {
    proc_stats(std::process::id()).1
}
