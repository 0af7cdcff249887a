//! Live capture on an `AF_PACKET` socket: open and bind, promiscuous mode, VLAN tags from
//! PACKET_AUXDATA, kernel timestamps, poll in slices.

use super::*;
use crate::sys::packet::{self, PacketSocket};

pub(super) fn os_err(e: io::Error, what: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            Error::Privilege("capture needs CAP_NET_RAW: run as root".into())
        }
        _ => Error::Runtime(anyhow::Error::new(e).context(what.to_string())),
    }
}

/// How many bytes of link-layer header a SOCK_RAW frame of this ARPHRD type starts with;
/// `None` for link types that are not supported.
fn link_header_len(hatype: u16) -> Option<usize> {
    match hatype {
        libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Some(14),
        // TUN and WireGuard (NONE), IP-in-IP/SIT/IPv6 tunnels, GRE, PPP, raw IP: the frame is
        // the IP packet.
        libc::ARPHRD_NONE
        | libc::ARPHRD_TUNNEL
        | libc::ARPHRD_TUNNEL6
        | libc::ARPHRD_SIT
        | libc::ARPHRD_IPGRE
        | libc::ARPHRD_PPP
        | 519 /* ARPHRD_RAWIP */
        | 823 /* ARPHRD_IP6GRE */ => Some(0),
        _ => None,
    }
}

/// An open AF_PACKET socket, bound to one interface or to all of them.
pub struct Capture {
    sock: PacketSocket,
    /// (ifindex, name, link-layer header length) when bound to one interface.
    bound: Option<(u32, String, usize)>,
    names: BTreeMap<u32, String>,
    buf: Vec<u8>,
}

/// One frame as the socket delivered it.
pub(super) struct Raw {
    len: usize,
    ifindex: u32,
    hatype: u16,
    pkttype: u8,
    protocol: u16,
    halen: u8,
    addr: [u8; 8],
    vlan: Option<(u16, u16)>,
    ts: Option<SystemTime>,
}

impl Capture {
    /// Open and bind the socket (in the current network namespace). `None` or `any` listens on
    /// every interface; a named interface is put in promiscuous mode while the socket is open.
    /// Errors: missing CAP_NET_RAW → [`Error::Privilege`]; unknown interface or one of a link
    /// type that is neither Ethernet nor raw IP → [`Error::Usage`].
    pub fn open(iface: Option<&str>) -> Result<Capture> {
        let iface = iface.filter(|i| *i != "any");
        let ifindex = match iface {
            None => 0,
            Some(name) if name.contains('\0') => {
                return Err(usage!("invalid interface name '{name}'"))
            }
            Some(name) => {
                packet::ifindex(name).ok_or_else(|| usage!("unknown interface '{name}'"))?
            }
        };
        // Protocol 0: nothing is queued until bind() picks the interface and ETH_P_ALL.
        let sock = PacketSocket::open(0).map_err(|e| os_err(e, "opening an AF_PACKET socket"))?;

        // Before bind, so no frame arrives without its auxdata and timestamp.
        sock.set_int_option(libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)
            .map_err(|e| os_err(e, "setsockopt PACKET_AUXDATA"))?;
        sock.set_int_option(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
            .map_err(|e| os_err(e, "setsockopt SO_TIMESTAMPNS"))?;
        // Best effort (capped by net.core.rmem_max): room for bursts between two reads.
        let _ = sock.set_int_option(libc::SOL_SOCKET, libc::SO_RCVBUF, 4 << 20);

        if let Err(e) = sock.bind(ifindex, packet::ETH_P_ALL) {
            if e.raw_os_error() == Some(libc::ENODEV) {
                return Err(usage!("unknown interface '{}'", iface.unwrap_or("any")));
            }
            return Err(os_err(e, "binding the AF_PACKET socket"));
        }

        let bound = match iface {
            None => None,
            Some(name) => {
                // getsockname reports the bound device's link type.
                let hatype = sock
                    .bound_hatype()
                    .map_err(|e| os_err(e, "getsockname on the capture socket"))?;
                let Some(hdr) = link_header_len(hatype) else {
                    return Err(usage!(
                        "cannot capture on '{name}': link type {hatype} is neither Ethernet nor \
                         raw IP (use tcpdump)"
                    ));
                };
                sock.add_promisc_membership(ifindex)
                    .map_err(|e| os_err(e, &format!("promiscuous mode on {name}")))?;
                Some((ifindex, name.to_string(), hdr))
            }
        };
        Ok(Capture {
            sock,
            bound,
            names: BTreeMap::new(),
            buf: vec![0; SNAPLEN],
        })
    }

    /// `eth0`, or `any`.
    pub fn iface(&self) -> &str {
        self.bound.as_ref().map_or("any", |(_, n, _)| n)
    }

    /// The LINKTYPE_* of the packets this capture delivers (and of its pcap): Ethernet or raw
    /// IP for one interface, Linux cooked v2 for `any`, as libpcap.
    pub fn linktype(&self) -> u32 {
        match &self.bound {
            None => LINKTYPE_LINUX_SLL2,
            Some((_, _, 14)) => LINKTYPE_ETHERNET,
            Some(_) => LINKTYPE_RAW,
        }
    }

    /// tcpdump's `listening on` line: `eth0, link-type EN10MB (Ethernet)`.
    pub fn describe(&self) -> String {
        let lt = match self.linktype() {
            LINKTYPE_ETHERNET => "EN10MB (Ethernet)",
            LINKTYPE_RAW => "RAW (Raw IP)",
            _ => "LINUX_SLL2 (Linux cooked v2)",
        };
        format!("{}, link-type {lt}", self.iface())
    }

    /// Wait up to `timeout` for the next Ethernet (or lo) frame, unfiltered. `Ok(None)` on
    /// timeout or when a signal interrupted the wait.
    pub fn next_packet(&mut self, timeout: Duration) -> Result<Option<Packet>> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(raw) = self.recv()? {
                if let Some(p) = self.packet_from(raw) {
                    return Ok(Some(p));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.sock.poll_readable(left) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
                Err(e) => return Err(os_err(e, "poll on the capture socket")),
            }
        }
    }

    /// Read one frame without blocking; `None` when the queue is empty.
    fn recv(&mut self) -> Result<Option<Raw>> {
        // SAFETY: all-zero is valid for these plain-data structs.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut control = [0u64; 64];
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr().cast(),
            iov_len: self.buf.len(),
        };
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // MSG_TRUNC: return the real length even when the frame did not fit.
        // SAFETY: msg points at buffers that live for the whole call.
        let n = unsafe {
            libc::recvmsg(
                self.sock.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                Some(libc::ENETDOWN) | Some(libc::ENODEV) => Err(Error::Runtime(anyhow::anyhow!(
                    "{} went down or away during the capture",
                    self.iface()
                ))),
                _ => Err(Error::Runtime(
                    anyhow::Error::new(e).context("reading from the capture socket"),
                )),
            };
        }
        let mut raw = Raw {
            len: n as usize,
            ifindex: addr.sll_ifindex as u32,
            hatype: addr.sll_hatype,
            pkttype: addr.sll_pkttype,
            protocol: u16::from_be(addr.sll_protocol),
            halen: addr.sll_halen,
            addr: addr.sll_addr,
            vlan: None,
            ts: None,
        };
        // SAFETY: the CMSG_* macros walk the control buffer the kernel filled in, bounded by
        // msg_controllen; payloads are read unaligned.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let (level, typ) = ((*c).cmsg_level, (*c).cmsg_type);
                let data = libc::CMSG_DATA(c);
                if level == libc::SOL_PACKET && typ == libc::PACKET_AUXDATA {
                    let aux: libc::tpacket_auxdata = std::ptr::read_unaligned(data.cast());
                    if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0
                            && aux.tp_vlan_tpid != 0
                        {
                            aux.tp_vlan_tpid
                        } else {
                            ETH_P_8021Q
                        };
                        raw.vlan = Some((tpid, aux.tp_vlan_tci));
                    }
                } else if level == libc::SOL_SOCKET && typ == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(data.cast());
                    raw.ts =
                        Some(UNIX_EPOCH + Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some(raw))
    }

    fn packet_from(&mut self, raw: Raw) -> Option<Packet> {
        let hdr = link_header_len(raw.hatype)?;
        // lo hands every packet to the taps twice (sent, then received): keep one, as libpcap.
        if raw.hatype == libc::ARPHRD_LOOPBACK && raw.pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        let data = &self.buf[..raw.len.min(self.buf.len())];
        if data.len() < hdr {
            return None;
        }
        let ts = raw.ts.unwrap_or_else(SystemTime::now);
        let dir = Direction::from_pkttype(raw.pkttype);
        let (src_mac, dst_mac) = if hdr == 14 {
            (decode::mac_at(data, 6), decode::mac_at(data, 0))
        } else {
            ([0; 6], [0; 6])
        };
        let mut p = match &self.bound {
            Some((_, name, hdr)) => {
                let (linktype, frame) = match (hdr, raw.vlan) {
                    (14, Some((tpid, tci))) => {
                        (LINKTYPE_ETHERNET, insert_vlan_tag(data, tpid, tci))
                    }
                    (14, None) => (LINKTYPE_ETHERNET, data.to_vec()),
                    _ => (LINKTYPE_RAW, data.to_vec()),
                };
                Packet::from_record(ts, linktype, frame, raw.ifindex, name.clone())?
            }
            None => {
                // A cooked v2 record, as libpcap builds it for `-i any` (no VLAN tag).
                let mut frame = Vec::with_capacity(20 + data.len() - hdr);
                let halen = usize::from(raw.halen).min(8);
                decode::sll2_header(
                    &mut frame,
                    raw.protocol,
                    raw.ifindex,
                    raw.hatype,
                    raw.pkttype,
                    &raw.addr[..halen],
                );
                frame.extend_from_slice(&data[hdr..]);
                let iface = self
                    .names
                    .entry(raw.ifindex)
                    .or_insert_with(|| {
                        packet::ifname(raw.ifindex).unwrap_or(format!("if{}", raw.ifindex))
                    })
                    .clone();
                let mut p =
                    Packet::from_record(ts, LINKTYPE_LINUX_SLL2, frame, raw.ifindex, iface)?;
                if let Some((_, tci)) = raw.vlan {
                    p.vlan = Some(tci & 0x0fff);
                }
                p
            }
        };
        p.dir = Some(dir);
        p.src_mac = src_mac;
        p.dst_mac = dst_mac;
        Some(p)
    }

    /// Deliver matching packets to `on_packet` until `opts.max_packets` or `opts.duration` is
    /// reached, `stop()` returns true (checked at least every 200 ms), or `on_packet` returns
    /// false. Returns the number of packets delivered.
    pub fn run(
        &mut self,
        opts: &CaptureOpts,
        stop: &dyn Fn() -> bool,
        on_packet: &mut dyn FnMut(&Packet) -> bool,
    ) -> Result<u64> {
        let deadline = opts.duration.map(|d| Instant::now().checked_add(d));
        let mut n = 0u64;
        loop {
            if opts.max_packets.is_some_and(|m| n >= m) || stop() {
                break;
            }
            let mut wait = SLICE;
            if let Some(Some(d)) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                wait = wait.min(left);
            }
            let Some(p) = self.next_packet(wait)? else {
                continue;
            };
            if !opts.filter.matches(&p.l3) {
                continue;
            }
            n += 1;
            if !on_packet(&p) {
                break;
            }
        }
        Ok(n)
    }
}

/// Capture until `max_packets` or `duration` (at least one must be set) or until `on_packet`
/// returns false, calling `on_packet` for each matching packet as it arrives.
pub fn capture(opts: &CaptureOpts, on_packet: &mut dyn FnMut(&Packet) -> bool) -> Result<()> {
    if opts.max_packets.is_none() && opts.duration.is_none() {
        return Err(usage!(
            "a capture needs a packet count or a duration (or use capture_until with a stop flag)"
        ));
    }
    capture_until(opts, &|| false, on_packet).map(|_| ())
}

/// [`capture`], also stopping when `stop()` returns true (checked at least every 200 ms; e.g. a
/// flag set by a SIGINT handler). No limit is required. Returns the number of packets delivered.
pub fn capture_until(
    opts: &CaptureOpts,
    stop: &dyn Fn() -> bool,
    on_packet: &mut dyn FnMut(&Packet) -> bool,
) -> Result<u64> {
    Capture::open(opts.iface.as_deref())?.run(opts, stop, on_packet)
}
