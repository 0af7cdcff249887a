//! One error type for the whole tool, carrying the exit code it maps to.
//!
//! * `Usage` — bad input; nothing was changed (exit 2).
//! * `Privilege` — missing CAP_NET_ADMIN or similar; nothing was changed (exit 77).
//! * `Runtime` — a failure while talking to the kernel (exit 2); the engine has rolled back.
//!
//! Findings and drift are not errors: commands return an [`Outcome`](crate::Outcome) instead.

use std::fmt;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for findings, drift, or a non-empty plan.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for usage and runtime errors.
pub const EXIT_ERROR: u8 = 2;
/// Exit code for missing privilege (the autoconf/automake "skip" code, familiar to test harnesses).
pub const EXIT_PRIVILEGE: u8 = 77;

#[derive(Debug)]
pub enum Error {
    /// Invalid user input. Detected before any change.
    Usage(String),
    /// The caller lacks a capability.
    Privilege(String),
    /// Anything that went wrong while observing or changing the system.
    Runtime(anyhow::Error),
    /// Stopped by SIGINT/SIGTERM; what was applied has been rolled back (the message says so,
    /// or says what a second signal left undone). Exit 130/143.
    Interrupted { code: u8, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Runtime(_) => EXIT_ERROR,
            Error::Privilege(_) => EXIT_PRIVILEGE,
            Error::Interrupted { code, .. } => *code,
        }
    }
}

impl Error {
    /// True when the failure is a write to a reader that went away (`lbctl … | head`): like
    /// ripgrep, that is a quiet, successful exit rather than an error.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            Error::Runtime(e) => e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Privilege(m) => f.write_str(m),
            Error::Interrupted { message, .. } => f.write_str(message),
            Error::Runtime(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        // A privilege error raised deep in sys/ keeps its exit code.
        match e.downcast::<Error>() {
            Ok(inner) => inner,
            Err(e) => Error::Runtime(e),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Runtime(e.into())
    }
}

/// `usage!("bad {x}")` builds an [`Error::Usage`].
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { $crate::error::Error::Usage(format!($($arg)*)) };
}
