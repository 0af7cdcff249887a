//! Process identity from /proc: a PID plus its start time names one process for good, so a
//! recorded PID that the kernel has since recycled is never mistaken for ours.

/// Start time of a process in clock ticks since boot (`/proc/PID/stat` field 22), if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|(_, start)| start)
}

/// (state letter, start time) from `/proc/PID/stat`. The command name may contain spaces and
/// parentheses, so fields are counted after the last `)`.
fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 (starttime) is index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// PF_KTHREAD in `/proc/PID/stat`'s flags (field 9): a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The PIDs of kthreadd and its children, sorted — when PID 2 of this pid namespace is
/// kthreadd (a kernel thread of that name), else none. Every kernel thread but the idle tasks is
/// forked by kthreadd; the only other children it has are the user-mode helpers the kernel
/// itself starts (`modprobe`, a `core_pattern` pipe, `request-key`). One read of
/// `/proc/2/task/2/children` (CONFIG_PROC_CHILDREN) lists them all: a scan of /proc for a
/// daemon can skip them without opening a file per kernel thread. A child forked after the
/// read is simply not skipped.
pub fn kthreadd_children() -> Vec<u32> {
    let Ok(stat) = std::fs::read_to_string("/proc/2/stat") else {
        return Vec::new();
    };
    let kthreadd = stat.starts_with("2 (kthreadd) ")
        && stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(6)?.parse::<u64>().ok())
            .is_some_and(|flags| flags & PF_KTHREAD != 0);
    if !kthreadd {
        return Vec::new();
    }
    let Ok(children) = std::fs::read_to_string("/proc/2/task/2/children") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .chain([2])
        .collect();
    pids.sort_unstable();
    pids
}

/// Whether a process whose name (`/proc/PID/comm`, at most 15 bytes) is `comm` runs in this
/// pid namespace: every process in /proc, each one `open`, one `read` into a stack buffer and
/// one `close`; kernel threads ([`kthreadd_children`], on a host often half of /proc) are
/// skipped without opening anything.
pub fn running_named(comm: &str) -> bool {
    use std::fmt::Write as _;
    use std::io::Read as _;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    let kernel = kthreadd_children();
    let mut path = String::with_capacity(32);
    let mut buf = [0u8; 64];
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        if kernel.binary_search(&pid).is_ok() {
            return false;
        }
        path.clear();
        let _ = write!(path, "/proc/{pid}/comm");
        let Ok(mut f) = std::fs::File::open(&path) else {
            return false;
        };
        // comm is at most 16 bytes with its newline: one read returns all of it.
        f.read(&mut buf)
            .is_ok_and(|n| buf[..n].trim_ascii() == comm.as_bytes())
    })
}

/// Is the recorded process still running (same PID *and* start time, not a zombie)?
pub fn is_alive(pid: u32, start: u64) -> bool {
    matches!(stat_fields(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kthreadd_children_are_kernel_threads_and_not_us() {
        let kernel = kthreadd_children();
        assert!(kernel.windows(2).all(|w| w[0] < w[1]), "{kernel:?}");
        assert!(kernel.binary_search(&std::process::id()).is_err());
        assert!(kernel.binary_search(&1).is_err());
        // Where PID 2 is kthreadd, its children are kernel threads (PF_KTHREAD) or gone since.
        for pid in kernel {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let flags: u64 = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .nth(6)
                .unwrap()
                .parse()
                .unwrap();
            assert!(flags & PF_KTHREAD != 0, "{stat}");
        }
    }

    #[test]
    fn a_running_process_is_found_by_its_name() {
        let own = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(running_named(own.trim()));
        assert!(!running_named("lbt-no-such-pr"));
    }

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        let st = start_time(me).expect("own start time");
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
        assert_eq!(start_time(u32::MAX - 1), None);
    }
}
