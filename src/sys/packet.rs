//! The `AF_PACKET` socket, once: open, bind to an interface and ethertype, socket options,
//! promiscuous membership, poll, send and receive; interface name ⇄ index. `capture` (every
//! frame, with auxdata and timestamps) and `rawpkt` (hand-built frames out, probe replies in)
//! are built on it. Errors are plain `io::Error`s: each caller words them for its own user.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Every ethertype (`ETH_P_ALL`), for [`PacketSocket::bind`].
pub const ETH_P_ALL: u16 = libc::ETH_P_ALL as u16;

/// `sll_pkttype` of a frame this host sent (`PACKET_OUTGOING`).
pub const PACKET_OUTGOING: u8 = libc::PACKET_OUTGOING;

/// A raw (`SOCK_RAW`: whole Ethernet frames) packet socket.
pub struct PacketSocket {
    fd: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// A new socket for ethertype `protocol` (host order; 0: nothing is queued until
    /// [`bind`](Self::bind) names one).
    pub fn open(protocol: u16) -> io::Result<PacketSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol.to_be()),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        Ok(PacketSocket {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Receive ethertype `protocol` (host order; [`ETH_P_ALL`] for every frame) from interface
    /// `ifindex` (0: every interface), and send there.
    pub fn bind(&self, ifindex: u32, protocol: u16) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: a pointer to a live sockaddr_ll and its exact size.
        check(unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
    }

    /// An integer socket option (`SOL_SOCKET`/`SOL_PACKET` level).
    pub fn set_int_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        val: libc::c_int,
    ) -> io::Result<()> {
        // SAFETY: passes a pointer to a live c_int and its exact size.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&val as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
    }

    /// The link type (`ARPHRD_*`) of the interface the socket is bound to.
    pub fn bound_hatype(&self) -> io::Result<u16> {
        // SAFETY: all-zero is valid for sockaddr_ll; len tells the kernel the buffer size.
        let mut got: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: a pointer to a live sockaddr_ll and its size.
        check(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut got as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        })?;
        Ok(got.sll_hatype)
    }

    /// Put interface `ifindex` in promiscuous mode for as long as the socket is open.
    pub fn add_promisc_membership(&self, ifindex: u32) -> io::Result<()> {
        // SAFETY: packet_mreq is plain data; all-zero is valid.
        let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        // SAFETY: a pointer to a live packet_mreq and its exact size. The membership (and
        // promiscuous mode) ends when the socket is closed.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mreq as *const libc::packet_mreq).cast(),
                mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        })
    }

    /// Wait at most `timeout` (rounded up to a millisecond) for a frame to read: `Ok(true)` when
    /// one is there, `Ok(false)` on timeout; a signal is an `Interrupted` error.
    pub fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc > 0)
    }

    /// Send one whole frame on the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live slice; the socket is bound, so send(2) needs no address.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Read one frame without waiting: its length and `sll_pkttype`.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, u8)> {
        // SAFETY: sockaddr_ll is plain data.
        let mut from: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and from are live and sized as passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize, from.sll_pkttype))
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The index of interface `name` (in this network namespace); `None` when there is none (or the
/// name has a NUL byte).
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The name of interface `index`.
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer is IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_and_indexes() {
        let lo = ifindex("lo").expect("lo exists in every namespace");
        assert_eq!(ifname(lo).as_deref(), Some("lo"));
        assert_eq!(ifindex("no-such-if0"), None);
        assert_eq!(ifindex("bad\0name"), None);
    }
}
