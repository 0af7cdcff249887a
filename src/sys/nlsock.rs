//! A netlink socket of any protocol, synchronous: one request, and its answer messages handed
//! to the caller one datagram at a time, as they arrive, up to `NLMSG_DONE` or the ACK.
//!
//! Used by nf_tables ([`super::nfnl`]) and by the rtnetlink dumps that can be large (10,000
//! addresses at 10,000 VIPs): the `rtnetlink` crate's connection queues every parsed message of
//! a dump before the first reaches the caller — megabytes at that size — where this reads one
//! datagram (a few dozen messages) at a time. The socket is `netlink-sys`'s.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

use crate::error::{Error, Result};

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_DUMP_INTR: u16 = 0x10;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

const NLA_TYPE_MASK: u16 = 0x3fff;

pub const NLMSG_HDRLEN: usize = 16;
/// How long to wait for the kernel's answer before giving up.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// One received netlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Start a message at the end of `buf` (several may share one datagram): its netlink header,
/// with the length left for [`finish`]. Returns where the message starts.
pub fn begin(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    start
}

/// Set the length of the message that starts at `start` and runs to the end of `buf`.
pub fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// One request: netlink header, the protocol's fixed header (`ifaddrmsg`, `nfgenmsg`, …) and
/// the encoded attributes.
pub fn request(ty: u16, flags: u16, seq: u32, fixed: &[u8], attrs: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(NLMSG_HDRLEN + fixed.len() + attrs.len());
    let h = begin(&mut buf, ty, flags, seq);
    buf.extend_from_slice(fixed);
    buf.extend_from_slice(attrs);
    finish(&mut buf, h);
    buf
}

/// The messages in one datagram; `Err` on a length that does not fit.
pub fn messages(data: &[u8]) -> std::result::Result<Vec<Msg<'_>>, String> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDRLEN <= data.len() {
        let len = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap_or_default()) as usize;
        if len < NLMSG_HDRLEN || off + len > data.len() {
            return Err(format!("bad netlink message length {len}"));
        }
        let u16_at = |i: usize| u16::from_ne_bytes([data[i], data[i + 1]]);
        out.push(Msg {
            ty: u16_at(off + 4),
            flags: u16_at(off + 6),
            seq: u32::from_ne_bytes(data[off + 8..off + 12].try_into().unwrap_or_default()),
            payload: &data[off + NLMSG_HDRLEN..off + len],
        });
        off += (len + 3) & !3;
    }
    Ok(out)
}

/// The attributes in `data`: (type without flags, value). Stops at a malformed one.
pub fn attrs(data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 4 <= data.len() {
        let len = u16::from_ne_bytes([data[off], data[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([data[off + 2], data[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || off + len > data.len() {
            break;
        }
        out.push((ty, &data[off + 4..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// The value of the first attribute of type `ty` in `data`.
pub fn attr_of(data: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(data)
        .into_iter()
        .find(|(t, _)| *t == ty)
        .map(|(_, v)| v)
}

/// The errno (positive; 0 = ACK) of an `NLMSG_ERROR` payload, and the sequence number of the
/// message it answers.
pub fn parse_error(payload: &[u8]) -> Option<(i32, u32)> {
    let code = i32::from_ne_bytes(payload.get(0..4)?.try_into().ok()?);
    let seq = u32::from_ne_bytes(payload.get(4 + 8..4 + 12)?.try_into().ok()?);
    Some((-code, seq))
}

pub fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// The error for the kernel's answer `errno` to `what` (EPERM: a missing privilege).
pub fn kernel_err(what: &str, errno: i32) -> Error {
    if errno == libc::EPERM {
        return Error::Privilege(format!(
            "{what}: {}: needs CAP_NET_ADMIN, run as root",
            errno_text(errno)
        ));
    }
    Error::Runtime(anyhow::anyhow!("{what}: {}", errno_text(errno)))
}

/// The error of a failed socket call for `what` (EPERM: a missing privilege).
pub fn io_err(what: &str) -> impl Fn(io::Error) -> Error + '_ {
    move |e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::Privilege(format!("{what}: {e}: run as root"))
        } else {
            Error::Runtime(anyhow::anyhow!("{what}: {e}"))
        }
    }
}

/// A netlink socket in the current network namespace (open it after entering one).
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    /// The last datagram received.
    pub buf: Vec<u8>,
}

impl NlSocket {
    /// Open, bind and connect a socket of `protocol`; errors are the socket calls' own (the
    /// caller tells a protocol the kernel lacks from a failure).
    pub fn open(protocol: isize) -> io::Result<NlSocket> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        // Errors carry the failed message's header only, not a copy of the request.
        sock.set_cap_ack(true)?;
        socket2::SockRef::from(&sock).set_read_timeout(Some(RECV_TIMEOUT))?;
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Ok(NlSocket {
            sock,
            seq,
            buf: Vec::with_capacity(1 << 17),
        })
    }

    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    /// The first of `n` fresh consecutive sequence numbers.
    pub fn take_seqs(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        first
    }

    pub fn send(&mut self, bytes: &[u8], what: &str) -> Result<()> {
        self.sock.send(bytes, 0).map_err(io_err(what))?;
        Ok(())
    }

    /// Receive one datagram into `self.buf`; `Ok(false)` when `nonblock` and nothing is queued.
    pub fn recv(&mut self, what: &str, nonblock: bool) -> Result<bool> {
        loop {
            self.buf.clear();
            let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
            match self.sock.recv(&mut self.buf, flags) {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if nonblock && e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(Error::Runtime(anyhow::anyhow!(
                        "{what}: no answer from the kernel in {} s",
                        RECV_TIMEOUT.as_secs()
                    )))
                }
                Err(e) => return Err(io_err(what)(e)),
            }
        }
    }

    /// Send the request `request(seq)` makes and call `each` for every answer message up to
    /// the ACK/`NLMSG_DONE`, a datagram at a time. `Ok(false)`: the kernel answered ENOENT. A
    /// dump the kernel marks interrupted (the objects changed meanwhile) is repeated, after
    /// `reset` forgot what `each` was given.
    pub fn exchange(
        &mut self,
        what: &str,
        request: &dyn Fn(u32) -> Vec<u8>,
        each: &mut dyn FnMut(&Msg<'_>),
        reset: &mut dyn FnMut(),
    ) -> Result<bool> {
        'again: for _ in 0..10 {
            let seq = self.take_seqs(1);
            self.send(&request(seq), what)?;
            let mut intr = false;
            loop {
                self.recv(what, false)?;
                let buf = std::mem::take(&mut self.buf);
                let done = match messages(&buf) {
                    Err(e) => Some(Err(Err(e))),
                    Ok(msgs) => {
                        let mut done = None;
                        for m in &msgs {
                            if m.seq != seq {
                                continue; // a late answer to an earlier request
                            }
                            if m.flags & NLM_F_DUMP_INTR != 0 {
                                intr = true;
                            }
                            match m.ty {
                                NLMSG_NOOP => {}
                                NLMSG_OVERRUN => done = Some(Err(Ok(libc::ENOBUFS))),
                                NLMSG_ERROR | NLMSG_DONE => {
                                    let code = m.payload.get(0..4).map_or(0, |b| {
                                        -i32::from_ne_bytes(b.try_into().unwrap_or([0; 4]))
                                    });
                                    done = Some(if code == 0 { Ok(()) } else { Err(Ok(code)) });
                                    break;
                                }
                                _ => each(m),
                            }
                        }
                        done
                    }
                };
                self.buf = buf;
                match done {
                    None => continue,
                    Some(Ok(())) if intr => {
                        reset();
                        continue 'again;
                    }
                    Some(Ok(())) => return Ok(true),
                    Some(Err(Ok(libc::ENOENT))) => return Ok(false),
                    Some(Err(Ok(e))) => return Err(kernel_err(what, e)),
                    Some(Err(Err(e))) => {
                        return Err(Error::Runtime(anyhow::anyhow!("{what}: {e}")))
                    }
                }
            }
        }
        Err(Error::Runtime(anyhow::anyhow!(
            "{what}: interrupted ten times in a row (the objects keep changing)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_attributes_decode() {
        // Two messages in one datagram, the first with two attributes (one padded).
        let mut d = Vec::new();
        let body: [u8; 12] = [6, 0, 1, 0, b'l', b'o', 0, 0, 4, 0, 2, 0x80];
        d.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        d.extend_from_slice(&20u16.to_ne_bytes());
        d.extend_from_slice(&NLM_F_DUMP_INTR.to_ne_bytes());
        d.extend_from_slice(&7u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        d.extend_from_slice(&body);
        d.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        d.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        d.extend_from_slice(&0u16.to_ne_bytes());
        d.extend_from_slice(&7u32.to_ne_bytes());
        d.extend_from_slice(&0u32.to_ne_bytes());
        let m = messages(&d).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].ty, m[0].flags, m[0].seq), (20, NLM_F_DUMP_INTR, 7));
        assert_eq!(attrs(m[0].payload), vec![(1, &b"lo"[..]), (2, &[][..])]);
        assert_eq!(attr_of(m[0].payload, 1), Some(&b"lo"[..]));
        assert_eq!(m[1].ty, NLMSG_DONE);
        // A length past the datagram is an error, not a short read.
        d[0] = 200;
        assert!(messages(&d).is_err());
    }
}
