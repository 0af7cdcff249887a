//! Signals as flags: a handler that only records which signal arrived (an atomic store, so
//! async-signal-safe), and the code polls the flags between steps and in its wait loops. Used by
//! `lb run` (SIGTERM/SIGINT stop, SIGHUP reloads), the lab (any of them interrupts a build) and
//! `capture` (Ctrl-C ends it).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The signals lbctl catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Hup => libc::SIGHUP,
        }
    }

    fn flag(self) -> &'static AtomicBool {
        &RECEIVED[self as usize]
    }

    fn of(number: libc::c_int) -> Option<Signal> {
        [Signal::Int, Signal::Term, Signal::Hup]
            .into_iter()
            .find(|s| s.number() == number)
    }
}

static RECEIVED: [AtomicBool; 3] = [
    AtomicBool::new(false),
    AtomicBool::new(false),
    AtomicBool::new(false),
];

/// How many times each signal arrived since the process started (never cleared): a
/// transaction compares counts to tell a first Ctrl-C (roll back) from a second (stop that).
static COUNT: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];

extern "C" fn on_signal(number: libc::c_int) {
    // Only atomic operations: async-signal-safe.
    if let Some(s) = Signal::of(number) {
        s.flag().store(true, Ordering::SeqCst);
        COUNT[s as usize].fetch_add(1, Ordering::SeqCst);
    }
}

/// How many of `signals` arrived since the process started.
pub fn count(signals: &[Signal]) -> u32 {
    signals
        .iter()
        .map(|s| COUNT[*s as usize].load(Ordering::SeqCst))
        .sum()
}

/// The conventional exit code of a process stopped by `signal` (128 + its number: 130 for
/// SIGINT, 143 for SIGTERM).
pub fn exit_code(signal: Signal) -> u8 {
    128 + signal.number() as u8
}

/// How a blocking system call that the signal interrupts behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// It returns early with EINTR (the caller checks the flags and decides).
    No,
    /// It is restarted (SA_RESTART, what `signal(2)` does on glibc).
    Yes,
}

/// Record `signals` in their flags instead of the default action (dying).
pub fn catch(signals: &[Signal], restart: Restart) {
    for s in signals {
        // SAFETY: a zeroed sigaction (empty mask) whose handler only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if restart == Restart::Yes {
                sa.sa_flags = libc::SA_RESTART;
            }
            libc::sigaction(s.number(), &sa, std::ptr::null_mut());
        }
    }
}

/// Give `signals` their default action back.
pub fn restore_default(signals: &[Signal]) {
    for s in signals {
        // SAFETY: restoring the default disposition.
        unsafe {
            libc::signal(s.number(), libc::SIG_DFL);
        }
    }
}

/// Has one of `signals` arrived (since it was last taken or cleared)?
pub fn received(signals: &[Signal]) -> bool {
    signals.iter().any(|s| s.flag().load(Ordering::SeqCst))
}

/// Has `signal` arrived? Clears its flag.
pub fn take(signal: Signal) -> bool {
    signal.flag().swap(false, Ordering::SeqCst)
}

/// Forget that `signals` arrived.
pub fn clear(signals: &[Signal]) {
    for s in signals {
        s.flag().store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_own_flag() {
        // (the flags themselves are process-wide: not set here, other tests may poll them)
        for s in [Signal::Int, Signal::Term, Signal::Hup] {
            assert_eq!(Signal::of(s.number()), Some(s));
        }
        assert_eq!(Signal::of(libc::SIGUSR1), None);
        assert!(!std::ptr::eq(Signal::Int.flag(), Signal::Hup.flag()));
    }
}
