//! Backend health as a pure state machine: `rise` successes in a row bring a backend up, `fall`
//! failures in a row take it down. A backend starts `unknown` (not in service) and its first
//! result decides, so a fresh balancer serves after one interval instead of `rise` intervals.

use serde::Serialize;

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
