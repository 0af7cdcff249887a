//! A synchronous IPVS client over a `netlink-sys` generic-netlink socket.
//!
//! No runtime is needed: each call sends one request and reads until the
//! kernel's ACK (or NLMSG_DONE for dumps). The "IPVS" family id is resolved via
//! nlctrl when the client is opened (it is dynamic, and per network namespace
//! the module may be missing).
//!
//! Every mutating call validates its input first ([`Service::validate`],
//! [`Destination::validate_for`]) and returns [`Error::Invalid`] without
//! touching the socket when that fails. [`Client::requests_sent`] counts the
//! requests actually sent, so callers (and tests) can prove it.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NlasIterator, NLMSG_DONE, NLMSG_ERROR,
    NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_generic::{
    constants::{CTRL_ATTR_FAMILY_ID, GENL_HDRLEN},
    ctrl::{nlas::GenlCtrlAttrs, GenlCtrl, GenlCtrlCmd},
    GenlMessage,
};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::convert;
use super::error::{decode, Error, Op};
use super::model::*;
use super::text::{self, Rule};
use super::wire::{
    IpvsMessage, IPVS_CMD_NEW_DEST, IPVS_CMD_NEW_SERVICE, IPVS_CMD_SET_CONFIG, IPVS_CMD_SET_INFO,
    IPVS_GENL_NAME,
};
use crate::sys::abi;

/// What [`Client::drain_dest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// The service was `sh`/`mh` without fallback; SCHED1 (fallback) was
    /// turned on first so that flows hashing to the drained server are not
    /// refused.
    pub enabled_fallback: bool,
}

/// A connection to the kernel's IPVS in the current network namespace.
pub struct Client {
    sock: Socket,
    family_id: u16,
    seq: u32,
    requests: u64,
}

fn io_err(op: Op) -> impl FnOnce(io::Error) -> Error {
    move |source| match source.raw_os_error() {
        Some(abi::EPERM) | Some(abi::EACCES) => Error::Permission { op },
        _ => Error::Io { op, source },
    }
}

/// How long to wait for the kernel's answer before giving up.
const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One netlink message of a reply: header fields we need + the whole message bytes.
struct Reply {
    msg_type: u16,
    bytes: Vec<u8>,
}

impl Client {
    /// Open a socket and resolve the "IPVS" family.
    ///
    /// Errors: [`Error::NoIpvs`] when the family does not exist (ip_vs not
    /// loaded: `modprobe ip_vs`), [`Error::Permission`] without CAP_NET_ADMIN.
    pub fn open() -> Result<Client, Error> {
        let op = Op::ResolveFamily;
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(io_err(op))?;
        sock.bind_auto().map_err(io_err(op))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(io_err(op))?;
        socket2::SockRef::from(&sock)
            .set_read_timeout(Some(RECV_TIMEOUT))
            .map_err(io_err(op))?;
        let mut c = Client {
            sock,
            family_id: 0,
            seq: 0,
            requests: 0,
        };
        c.family_id = c.resolve_family()?;
        Ok(c)
    }

    /// The dynamic generic-netlink id of "IPVS".
    pub fn family_id(&self) -> u16 {
        self.family_id
    }

    /// Requests sent to the kernel so far (nlctrl lookup included).
    pub fn requests_sent(&self) -> u64 {
        self.requests
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn resolve_family(&mut self) -> Result<u16, Error> {
        let op = Op::ResolveFamily;
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(IPVS_GENL_NAME.to_string())],
        };
        let mut nl = NetlinkMessage::from(GenlMessage::from_payload(ctrl));
        let seq = self.next_seq();
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        let replies = match self.exchange(op, &buf, seq, false) {
            Err(Error::Kernel {
                errno: abi::ENOENT, ..
            }) => return Err(Error::NoIpvs),
            r => r?,
        };
        // parse leniently: only CTRL_ATTR_FAMILY_ID matters, newer kernels may
        // add attributes the crate does not know
        for r in replies {
            let nb = NetlinkBuffer::new(&r.bytes[..]);
            let payload = nb.payload();
            if payload.len() < GENL_HDRLEN {
                continue;
            }
            for nla in NlasIterator::new(&payload[GENL_HDRLEN..]).flatten() {
                if nla.kind() == CTRL_ATTR_FAMILY_ID && nla.value().len() == 2 {
                    return Ok(u16::from_ne_bytes([nla.value()[0], nla.value()[1]]));
                }
            }
        }
        Err(Error::Decode {
            op,
            msg: "nlctrl reply without CTRL_ATTR_FAMILY_ID".into(),
        })
    }

    /// Send `buf` (one netlink message with sequence number `seq`) and collect
    /// the replies up to the ACK (`dump == false`) or NLMSG_DONE.
    fn exchange(&mut self, op: Op, buf: &[u8], seq: u32, dump: bool) -> Result<Vec<Reply>, Error> {
        self.requests += 1;
        self.sock.send(buf, 0).map_err(io_err(op))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let data = loop {
                match self.sock.recv_from_full() {
                    Ok((d, _)) => break d,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(op)(e)),
                }
            };
            let mut off = 0;
            while off + 16 <= data.len() {
                let nb = NetlinkBuffer::new_checked(&data[off..]).map_err(|e| Error::Decode {
                    op,
                    msg: e.to_string(),
                })?;
                let len = nb.length() as usize;
                if len < 16 || off + len > data.len() {
                    return Err(Error::Decode {
                        op,
                        msg: format!("bad netlink length {len}"),
                    });
                }
                let bytes = &data[off..off + len];
                off += (len + 3) & !3;
                if nb.sequence_number() != seq {
                    continue; // stale answer to an earlier request
                }
                if nb.flags() & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match nb.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => {
                        return Err(Error::Decode {
                            op,
                            msg: "netlink overrun".into(),
                        })
                    }
                    NLMSG_ERROR | NLMSG_DONE => {
                        let p = nb.payload();
                        let code = if p.len() >= 4 {
                            i32::from_ne_bytes([p[0], p[1], p[2], p[3]])
                        } else {
                            0
                        };
                        if code < 0 {
                            let errno = -code;
                            return Err(match errno {
                                abi::EPERM | abi::EACCES => Error::Permission { op },
                                _ => Error::Kernel {
                                    op,
                                    errno,
                                    what: String::new(),
                                    scheduler: None,
                                },
                            });
                        }
                        if nb.message_type() == NLMSG_DONE || !dump {
                            if interrupted {
                                return Err(Error::Kernel {
                                    op,
                                    errno: abi::EINTR,
                                    what: "(dump interrupted by a concurrent change)".into(),
                                    scheduler: None,
                                });
                            }
                            return Ok(out);
                        }
                    }
                    t => out.push(Reply {
                        msg_type: t,
                        bytes: bytes.to_vec(),
                    }),
                }
            }
        }
    }

    /// Send one IPVS command; returns the IPVS messages of the reply.
    fn request(&mut self, op: Op, msg: IpvsMessage, dump: bool) -> Result<Vec<IpvsMessage>, Error> {
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(self.family_id);
        let mut nl = NetlinkMessage::from(genl);
        let seq = self.next_seq();
        nl.header = NetlinkHeader::default();
        nl.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        nl.header.sequence_number = seq;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.send_parse(op, &buf, seq, dump)
    }

    fn send_parse(
        &mut self,
        op: Op,
        buf: &[u8],
        seq: u32,
        dump: bool,
    ) -> Result<Vec<IpvsMessage>, Error> {
        let replies = self.exchange(op, buf, seq, dump)?;
        let mut v = Vec::with_capacity(replies.len());
        for r in replies {
            if r.msg_type != self.family_id {
                continue;
            }
            let m =
                NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&r.bytes).map_err(|e| {
                    Error::Decode {
                        op,
                        msg: e.to_string(),
                    }
                })?;
            if let netlink_packet_core::NetlinkPayload::InnerMessage(g) = m.payload {
                v.push(g.payload);
            }
        }
        Ok(v)
    }

    /// Send a complete, pre-assembled netlink message (e.g. a golden byte
    /// vector): its type is replaced by the IPVS family id and its sequence
    /// number by the client's; flags are left as they are. No validation.
    pub fn request_bytes(&mut self, bytes: &[u8]) -> Result<Vec<IpvsMessage>, Error> {
        let op = Op::Raw;
        let mut b = bytes.to_vec();
        let seq = self.next_seq();
        let dump = {
            let mut nb = NetlinkBuffer::new_checked(&mut b[..]).map_err(|e| Error::Decode {
                op,
                msg: e.to_string(),
            })?;
            nb.set_message_type(self.family_id);
            nb.set_sequence_number(seq);
            nb.flags() & NLM_F_DUMP == NLM_F_DUMP
        };
        self.send_parse(op, &b, seq, dump)
    }

    /// Attach context to a kernel error.
    fn ctx<T>(
        r: Result<T, Error>,
        what: impl FnOnce() -> String,
        sched: Option<&Scheduler>,
    ) -> Result<T, Error> {
        r.map_err(|e| match e {
            Error::Kernel { op, errno, .. } => Error::Kernel {
                op,
                errno,
                what: what(),
                scheduler: sched.map(|s| s.name().to_string()),
            },
            e => e,
        })
    }

    /// Send a raw IPVS message (no validation): for diagnostics and tests.
    pub fn request_raw(&mut self, msg: IpvsMessage, dump: bool) -> Result<Vec<IpvsMessage>, Error> {
        self.request(Op::Raw, msg, dump)
    }

    // --- reads -----------------------------------------------------------------

    /// `GET_INFO`: IPVS version and connection-table size.
    pub fn info(&mut self) -> Result<Info, Error> {
        let op = Op::GetInfo;
        let r = self.request(op, convert::get_info(), false)?;
        let m = r
            .iter()
            .find(|m| m.cmd == IPVS_CMD_SET_INFO)
            .ok_or_else(|| Error::Decode {
                op,
                msg: "no SET_INFO reply".into(),
            })?;
        convert::info_from(m).map_err(|e| decode(op, e))
    }

    /// `GET_CONFIG`: TCP, TCP FIN and UDP connection timeouts.
    pub fn timeouts(&mut self) -> Result<Timeouts, Error> {
        let op = Op::GetConfig;
        let r = self.request(op, convert::get_config(), false)?;
        let m = r
            .iter()
            .find(|m| m.cmd == IPVS_CMD_SET_CONFIG)
            .ok_or_else(|| Error::Decode {
                op,
                msg: "no SET_CONFIG reply".into(),
            })?;
        Ok(convert::timeouts_from(m))
    }

    /// `SET_CONFIG` (0 = leave unchanged).
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), Error> {
        self.request(Op::SetConfig, convert::set_config(t), false)
            .map(|_| ())
    }

    /// All services without their real servers (`GET_SERVICE` dump).
    pub fn services_only(&mut self) -> Result<Vec<(Service, Stats)>, Error> {
        let op = Op::ListServices;
        let mut v = Vec::new();
        for m in self.request(op, convert::get_service(None), true)? {
            if m.cmd != IPVS_CMD_NEW_SERVICE {
                continue;
            }
            if let Some(attrs) = m.service() {
                v.push(convert::service_from_attrs(attrs).map_err(|e| decode(op, e))?);
            }
        }
        Ok(v)
    }

    /// Real servers of one service (`GET_DEST` dump).
    pub fn destinations(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, Error> {
        let op = Op::ListDests;
        let r = Self::ctx(
            self.request(op, convert::get_dest(key), true),
            || key.to_string(),
            None,
        )?;
        let mut v = Vec::new();
        for m in r {
            if m.cmd != IPVS_CMD_NEW_DEST {
                continue;
            }
            if let Some(attrs) = m.dest() {
                v.push(convert::dest_from_attrs(attrs, key.family()).map_err(|e| decode(op, e))?);
            }
        }
        Ok(v)
    }

    /// Everything: services with their real servers, in the kernel's order
    /// (use [`text::sorted`] for ipvsadm's order).
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, Error> {
        let mut out = Vec::new();
        for (service, stats) in self.services_only()? {
            let dests = self.destinations(&service.key)?;
            out.push(ServiceEntry {
                service,
                stats,
                dests,
            });
        }
        Ok(out)
    }

    /// One service with its real servers (ESRCH → "no such service").
    pub fn service(&mut self, key: &ServiceKey) -> Result<ServiceEntry, Error> {
        let op = Op::GetService;
        let r = Self::ctx(
            self.request(op, convert::get_service(Some(key)), false),
            || key.to_string(),
            None,
        )?;
        let attrs = r
            .iter()
            .find(|m| m.cmd == IPVS_CMD_NEW_SERVICE)
            .and_then(|m| m.service())
            .ok_or_else(|| Error::Decode {
                op,
                msg: "no NEW_SERVICE reply".into(),
            })?;
        let (service, stats) = convert::service_from_attrs(attrs).map_err(|e| decode(op, e))?;
        let dests = self.destinations(key)?;
        Ok(ServiceEntry {
            service,
            stats,
            dests,
        })
    }

    // --- services ------------------------------------------------------------------

    fn check_service(s: &Service) -> Result<(), Error> {
        s.validate().map_err(|source| Error::Invalid {
            what: format!("service {}", s.key),
            source,
        })
    }

    /// `NEW_SERVICE` (EEXIST → "service already exists").
    pub fn add_service(&mut self, s: &Service) -> Result<(), Error> {
        Self::check_service(s)?;
        self.add_service_unvalidated(s)
    }

    /// `NEW_SERVICE` without lbctl's validation (the kernel decides).
    pub fn add_service_unvalidated(&mut self, s: &Service) -> Result<(), Error> {
        let r = self.request(Op::AddService, convert::new_service(s), false);
        Self::ctx(r, || s.to_string(), Some(&s.scheduler)).map(|_| ())
    }

    /// `SET_SERVICE`: replace scheduler, flags, timeout, netmask, pe.
    pub fn edit_service(&mut self, s: &Service) -> Result<(), Error> {
        Self::check_service(s)?;
        let r = self.request(Op::EditService, convert::set_service(s), false);
        Self::ctx(r, || s.to_string(), Some(&s.scheduler)).map(|_| ())
    }

    /// `DEL_SERVICE` (its real servers go with it).
    pub fn del_service(&mut self, key: &ServiceKey) -> Result<(), Error> {
        let r = self.request(Op::DelService, convert::del_service(key), false);
        Self::ctx(r, || key.to_string(), None).map(|_| ())
    }

    /// `FLUSH`: delete every service.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.request(Op::Flush, convert::flush(), false).map(|_| ())
    }

    /// `ZERO`: reset the counters of one service or of all.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), Error> {
        let r = self.request(Op::Zero, convert::zero(key), false);
        Self::ctx(r, || key.map(|k| k.to_string()).unwrap_or_default(), None).map(|_| ())
    }

    // --- real servers ------------------------------------------------------------------

    fn check_dest(key: &ServiceKey, d: &Destination) -> Result<(), Error> {
        d.validate_for(key).map_err(|source| Error::Invalid {
            what: format!(
                "real server {} of service {key}",
                text::addr_port(&d.addr, d.port)
            ),
            source,
        })
    }

    /// `NEW_DEST` (EEXIST → "destination already exists", ESRCH → "service not defined").
    pub fn add_dest(&mut self, key: &ServiceKey, d: &Destination) -> Result<(), Error> {
        Self::check_dest(key, d)?;
        let r = self.request(Op::AddDest, convert::new_dest(key, d), false);
        Self::ctx(r, || d.rule(key).to_string(), None).map(|_| ())
    }

    /// `SET_DEST`: the normal way to change weight or thresholds.
    pub fn edit_dest(&mut self, key: &ServiceKey, d: &Destination) -> Result<(), Error> {
        Self::check_dest(key, d)?;
        let r = self.request(Op::EditDest, convert::set_dest(key, d), false);
        Self::ctx(r, || format!("-e {key} {d}"), None).map(|_| ())
    }

    /// `DEL_DEST`.
    pub fn del_dest(&mut self, key: &ServiceKey, addr: IpAddr, port: u16) -> Result<(), Error> {
        let r = self.request(Op::DelDest, convert::del_dest(key, &addr, port), false);
        Self::ctx(
            r,
            || format!("-d {key} -r {}", text::addr_port(&addr, port)),
            None,
        )
        .map(|_| ())
    }

    /// Drain a real server: weight 0 (no new connections, existing ones
    /// continue). For `sh`/`mh` without fallback, flows hashing to a weight-0
    /// server would be refused, so fallback (SCHED1) is enabled first.
    pub fn drain_dest(
        &mut self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
    ) -> Result<DrainOutcome, Error> {
        let entry = self.service(key)?;
        let Some(d) = entry
            .dests
            .iter()
            .find(|d| d.dest.addr == addr && d.dest.port == port)
        else {
            return Err(Error::Kernel {
                op: Op::EditDest,
                errno: abi::ENOENT,
                what: format!("-e {key} -r {}", text::addr_port(&addr, port)),
                scheduler: None,
            });
        };
        let mut outcome = DrainOutcome {
            enabled_fallback: false,
        };
        let svc = &entry.service;
        if matches!(svc.scheduler, Scheduler::Mh | Scheduler::Sh)
            && !svc.flags.contains(ServiceFlags::SCHED1)
        {
            let mut s = svc.clone();
            s.flags.insert(ServiceFlags::SCHED1);
            self.edit_service(&s)?;
            outcome.enabled_fallback = true;
        }
        let mut nd = d.dest.clone();
        nd.weight = 0;
        self.edit_dest(key, &nd)?;
        Ok(outcome)
    }

    // --- rules (save/restore) -------------------------------------------------------------

    /// Apply ipvsadm rules in order. All rules are validated first: nothing is
    /// sent if any of them is refused.
    pub fn apply(&mut self, rules: &[Rule]) -> Result<(), Error> {
        for r in rules {
            r.validate().map_err(|source| Error::Invalid {
                what: format!("rule `{r}`"),
                source,
            })?;
        }
        for r in rules {
            match r {
                Rule::AddService(s) => self.add_service(s)?,
                Rule::EditService(s) => self.edit_service(s)?,
                Rule::DeleteService(k) => self.del_service(k)?,
                Rule::AddDest(k, d) => self.add_dest(k, d)?,
                Rule::EditDest(k, d) => self.edit_dest(k, d)?,
                Rule::DeleteDest(k, a, p) => self.del_dest(k, *a, *p)?,
                Rule::Flush => self.flush()?,
            }
        }
        Ok(())
    }

    /// `ipvsadm -R`: parse `ipvsadm -S` text and apply it.
    pub fn restore(&mut self, text: &str) -> Result<(), Error> {
        let rules = text::parse_rules(text)?;
        self.apply(&rules)
    }
}
