//! Errors of the IPVS client, with ipvsadm-like wording and hints.

use std::fmt;
use std::io;

use super::convert::ConvertError;
use super::model::ValidationError;
use super::text::ParseError;
use crate::sys::abi;

/// What the client was doing when the kernel answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ResolveFamily,
    GetInfo,
    GetConfig,
    SetConfig,
    ListServices,
    GetService,
    AddService,
    EditService,
    DelService,
    ListDests,
    AddDest,
    EditDest,
    DelDest,
    Flush,
    Zero,
    Raw,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::ResolveFamily => "resolving the IPVS netlink family",
            Op::GetInfo => "reading IPVS info",
            Op::GetConfig => "reading IPVS timeouts",
            Op::SetConfig => "setting IPVS timeouts",
            Op::ListServices => "listing services",
            Op::GetService => "reading service",
            Op::AddService => "adding service",
            Op::EditService => "editing service",
            Op::DelService => "deleting service",
            Op::ListDests => "listing real servers of",
            Op::AddDest => "adding real server",
            Op::EditDest => "editing real server",
            Op::DelDest => "deleting real server",
            Op::Flush => "flushing IPVS",
            Op::Zero => "zeroing counters",
            Op::Raw => "IPVS request",
        }
    }
}

/// An error from [`super::client::Client`].
#[derive(Debug)]
pub enum Error {
    /// The "IPVS" generic-netlink family does not exist (ip_vs not loaded or
    /// not built).
    NoIpvs,
    /// EPERM / EACCES: CAP_NET_ADMIN in the initial user namespace is needed.
    Permission { op: Op },
    /// The kernel refused a request.
    Kernel {
        op: Op,
        errno: i32,
        /// The object concerned, as an ipvsadm command line or key.
        what: String,
        /// The scheduler of a NEW/SET_SERVICE (for the ENOENT hint).
        scheduler: Option<String>,
    },
    /// Refused before any syscall.
    Invalid {
        what: String,
        source: ValidationError,
    },
    /// ipvsadm text that could not be parsed.
    Parse(ParseError),
    /// Socket-level failure.
    Io { op: Op, source: io::Error },
    /// A reply that could not be decoded.
    Decode { op: Op, msg: String },
}

impl Error {
    /// The kernel's errno, if this is a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Permission { .. } => Some(abi::EPERM),
            Error::NoIpvs => Some(abi::ENOENT),
            _ => None,
        }
    }

    /// ipvsadm's wording for (operation, errno) (libipvs `ipvs_strerror`).
    pub fn kernel_message(op: Op, errno: i32) -> String {
        use Op::*;
        let m = match (op, errno) {
            (AddService, abi::EEXIST) => "service already exists",
            (AddService | EditService, abi::ENOENT) => "scheduler or persistence engine not found",
            (EditService | DelService | GetService | Zero, abi::ESRCH) => "no such service",
            (AddDest | EditDest | DelDest | ListDests, abi::ESRCH) => "service not defined",
            (AddDest, abi::EEXIST) => "destination already exists",
            (EditDest | DelDest, abi::ENOENT) => "no such destination",
            (_, abi::EPERM) | (_, abi::EACCES) => "permission denied (you must be root)",
            (_, abi::EINVAL) => {
                "invalid operation; possibly wrong module version, address not unicast, ..."
            }
            (_, abi::ERANGE) => "numerical result out of range",
            (_, abi::ENOPROTOOPT) => "protocol not available",
            (_, abi::ENOMEM) => "memory allocation problem",
            (_, abi::EOPNOTSUPP) => "operation not supported with IPv6",
            (_, abi::EAFNOSUPPORT) => "operation not supported with specified address family",
            (_, abi::EMSGSIZE) => "module is wrong version",
            _ => return io::Error::from_raw_os_error(errno).to_string(),
        };
        m.to_string()
    }

    /// A suggestion for the user, when there is a usual cause.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoIpvs => Some(
                "this kernel has no IPVS; try `modprobe ip_vs` (IPVS is per network namespace and \
                 needs CONFIG_IP_VS)"
                    .into(),
            ),
            Error::Permission { .. } => Some(
                "IPVS needs CAP_NET_ADMIN in the initial user namespace: run as root \
                 (`unshare -r` is not enough)"
                    .into(),
            ),
            Error::Kernel { op, errno, scheduler, .. } => match (*op, *errno) {
                (Op::AddService | Op::EditService, abi::ENOENT) => {
                    Some(match scheduler {
                        Some(s) => format!(
                            "the kernel has no scheduler '{s}': try `modprobe ip_vs_{s}` (or check --pe)"
                        ),
                        None => "the scheduler module is missing: try `modprobe ip_vs_<name>`".into(),
                    })
                }
                (Op::AddService, abi::EEXIST) => Some("use edit to change an existing service".into()),
                (Op::AddDest, abi::EEXIST) => Some("use edit to change weight or thresholds".into()),
                (Op::AddDest | Op::EditDest, abi::EINVAL) => Some(
                    "the real-server address must be unicast; in a fresh host or namespace, bring \
                     `lo` up first (IPVS looks the address up in the local routing table)"
                        .into(),
                ),
                (Op::AddDest | Op::EditDest, abi::ERANGE) => {
                    Some("weight must be 0..=2147483647 and the lower threshold ≤ the upper".into())
                }
                (_, abi::ESRCH) => Some("list services with `ipvsadm -Ln`".into()),
                (_, abi::EAFNOSUPPORT) => {
                    Some("only tunnel (TUN) real servers may differ in address family".into())
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoIpvs => write!(
                f,
                "IPVS is not available: the kernel has no \"IPVS\" netlink family"
            )?,
            Error::Permission { op } => write!(f, "{}: permission denied", op.verb())?,
            Error::Kernel {
                op, errno, what, ..
            } => {
                let m = Error::kernel_message(*op, *errno);
                let sep = if what.is_empty() { "" } else { " " };
                write!(f, "{}{sep}{what}: {m} (errno {errno})", op.verb())?
            }
            Error::Invalid { what, source } => write!(f, "refusing {what}: {source}")?,
            Error::Parse(e) => write!(f, "cannot parse ipvsadm rules: {e}")?,
            Error::Io { op, source } => write!(f, "{}: netlink socket error: {source}", op.verb())?,
            Error::Decode { op, msg } => write!(f, "{}: {msg}", op.verb())?,
        }
        if let Some(h) = self.hint() {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Invalid { source, .. } => Some(source),
            Error::Parse(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Parse(e)
    }
}

pub(crate) fn decode(op: Op, e: ConvertError) -> Error {
    Error::Decode { op, msg: e.0 }
}
