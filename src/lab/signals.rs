//! Ctrl-C and SIGTERM during `lab up`/`demo`/`down`: remember them, finish or undo in order.
//!
//! [`install`] replaces the default (die at once) with a handler that only sets a flag; the lab
//! checks [`check`] between steps and in every wait loop, and on an interrupt tears down what it
//! built. The library never installs the handler by itself: a program embedding it (a test) keeps
//! its own signal behaviour.

use crate::error::{Error, Result};
use crate::sys::{self, signals::Restart, signals::Signal};

/// The error a step returns when it noticed an interrupt.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// The signals that interrupt the lab.
const SIGNALS: [Signal; 3] = [Signal::Int, Signal::Term, Signal::Hup];

/// Turn SIGINT, SIGTERM and SIGHUP into the flag.
pub fn install() {
    // No SA_RESTART: blocking waits return early with EINTR where the caller checks.
    sys::signals::catch(&SIGNALS, Restart::No);
}

/// Has an interrupt arrived?
pub fn interrupted() -> bool {
    sys::signals::received(&SIGNALS)
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
