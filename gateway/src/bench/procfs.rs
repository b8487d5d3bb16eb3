//! The gateway process's own accounting, read from `/proc` (Linux), so the
//! load generator's share of the machine is not counted.

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on
/// every Linux architecture livegate targets).
const TICKS_PER_SEC: f64 = 100.0;

/// A reading of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU seconds so far.
    pub cpu_secs: f64,
    /// Resident memory in KiB.
    pub rss_kib: u64,
}

/// Reads `pid`'s CPU time, resident memory and written bytes.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11, 12 here).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(Sample {
        cpu_secs: (utime + stime) / TICKS_PER_SEC,
        rss_kib,
    })
}

/// Bytes sent on the loopback interface so far (IP headers included). A
/// process's own byte counters miss `send(2)` and `sendmsg(2)`, which the
/// socket stacks use, so the interface is the honest place to count.
pub fn loopback_tx_bytes() -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    // Receive has 8 fields, then transmit bytes.
    line.split_once(':')?
        .1
        .split_whitespace()
        .nth(8)?
        .parse()
        .ok()
}

/// The soft limit on open files of this process.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_kib > 0);
        assert!(s.cpu_secs >= 0.0);
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert!(loopback_tx_bytes().is_some());
    }
}
