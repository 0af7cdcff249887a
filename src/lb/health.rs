//! Backend health as a pure state machine: `rise` successes in a row bring a backend up, `fall`
//! failures in a row take it down. A backend starts `unknown` (not in service) and its first
//! result decides, so a fresh balancer serves after one interval instead of `rise` intervals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// When backend `i` of `n` in one service is first checked, after start or after it was added:
/// its own slot of `interval` (i/n of it) plus a random part of one slot, so the first checks
/// spread over one interval and the services of a file do not all fire at the same instant
/// (keepalived's checker warm-up does the same with a random delay up to `delay_loop`).
pub fn warmup(interval: Duration, i: usize, n: usize) -> Duration {
    let n = n.max(1) as u32;
    let slot = interval / n;
    let frac = (next_random() >> 11) as f64 / (1u64 << 53) as f64;
    slot * i as u32 + slot.mul_f64(frac)
}

/// splitmix64 over a process-wide state seeded from the clock and PID (no crypto needed).
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.load(Ordering::Relaxed);
    if seed == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        seed = t ^ (u64::from(std::process::id()) << 32) | 1;
    }
    let next = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    STATE.store(next, Ordering::Relaxed);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Unknown,
    Up,
    Down,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: State,
    /// Current run of equal results (positive: successes, negative: failures).
    streak: i64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: State::Unknown,
            streak: 0,
        }
    }
}

impl Health {
    /// A state taken over from a previous run (restart): kept until the checks say otherwise,
    /// with `rise`/`fall` counted from here, so a restart never takes a healthy backend out.
    pub fn resumed(state: State) -> Self {
        Health { state, streak: 0 }
    }

    /// Record one check result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<State> {
        self.streak = match (ok, self.streak) {
            (true, s) if s > 0 => s + 1,
            (true, _) => 1,
            (false, s) if s < 0 => s - 1,
            (false, _) => -1,
        };
        let next = match self.state {
            State::Unknown => {
                if ok {
                    State::Up
                } else {
                    State::Down
                }
            }
            State::Up if !ok && -self.streak >= i64::from(fall) => State::Down,
            State::Down if ok && self.streak >= i64::from(rise) => State::Up,
            s => s,
        };
        if next != self.state {
            self.state = next;
            Some(next)
        } else {
            None
        }
    }

    /// Successes (positive) or failures (negative) in a row.
    pub fn streak(&self) -> i64 {
        self.streak
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn warmup_stays_in_its_slot_and_varies() {
        let iv = std::time::Duration::from_secs(4);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            for i in 0..4 {
                let d = super::warmup(iv, i, 4);
                assert!(
                    d >= iv * i as u32 / 4 && d < iv * (i as u32 + 1) / 4,
                    "{i}: {d:?}"
                );
                seen.insert(d);
            }
        }
        assert!(seen.len() > 150, "only {} distinct delays", seen.len());
        assert!(super::warmup(iv, 0, 0) < iv);
    }

    use super::*;

    #[test]
    fn rise_and_fall() {
        let mut h = Health::default();
        assert_eq!(h.record(true, 2, 3), Some(State::Up));
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(
            h.record(true, 2, 3),
            None,
            "a success resets the failure run"
        );
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(State::Down));
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(State::Up));
        assert_eq!(h.streak(), 2);
    }

    #[test]
    fn a_resumed_state_needs_fall_failures_to_change() {
        let mut h = Health::resumed(State::Up);
        assert_eq!(h.record(false, 2, 2), None);
        assert_eq!(h.record(false, 2, 2), Some(State::Down));
        let mut h = Health::resumed(State::Down);
        assert_eq!(h.record(true, 2, 2), None);
        assert_eq!(h.record(true, 2, 2), Some(State::Up));
    }

    #[test]
    fn first_result_decides() {
        let mut h = Health::default();
        assert_eq!(h.record(false, 5, 5), Some(State::Down));
        let mut h = Health::default();
        assert_eq!(h.record(true, 5, 5), Some(State::Up));
    }
}
