//! Linux ABI numbers that code above `sys` matches on or writes into messages: errno values
//! (IPVS errors, `rename`), address families and IP protocols (IPVS attributes). Re-exported from
//! `libc`, so that only `sys` names it.

pub use libc::{AF_INET, AF_INET6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
pub use libc::{
    EACCES, EAFNOSUPPORT, EEXIST, EINTR, EINVAL, EMSGSIZE, ENOENT, ENOMEM, ENOPROTOOPT, ENOTEMPTY,
    EOPNOTSUPP, EPERM, ERANGE, ESRCH,
};
