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

/// Is the recorded process still running (same PID *and* start time, not a zombie)?
pub fn is_alive(pid: u32, start: u64) -> bool {
    matches!(stat_fields(pid), Some((state, s)) if s == start && state != 'Z' && state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        let st = start_time(me).expect("own start time");
        assert!(is_alive(me, st));
        assert!(!is_alive(me, st + 1));
        assert_eq!(start_time(u32::MAX - 1), None);
    }
}
