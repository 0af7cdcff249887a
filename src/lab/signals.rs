//! Ctrl-C and SIGTERM during `lab up`/`demo`/`down`: remember them, finish or undo in order.
//!
//! [`install`] replaces the default (die at once) with a handler that only sets a flag; the lab
//! checks [`check`] between steps and in every wait loop, and on an interrupt tears down what it
//! built. The library never installs the handler by itself: a program embedding it (a test) keeps
//! its own signal behaviour.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The error a step returns when it noticed an interrupt.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Turn SIGINT, SIGTERM and SIGHUP into the flag.
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic; no SA_RESTART,
        // so blocking waits return early with EINTR where the caller checks.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Has an interrupt arrived?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once an interrupt has arrived.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(Error::Runtime(anyhow::Error::new(Interrupted)))
    } else {
        Ok(())
    }
}

/// Is this error (or its cause) an interrupt?
pub fn is_interrupt(e: &Error) -> bool {
    matches!(e, Error::Runtime(a) if a.chain().any(|c| c.is::<Interrupted>()))
}
