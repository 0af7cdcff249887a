//! rtnetlink: typed dumps and changes for links, addresses, rules, routes and route lookups.
//!
//! Objects lbctl creates carry [`LBCTL_PROTO`] (IFA_PROTO, FRA_PROTOCOL, rtm_protocol); deletes
//! of rules and routes pass it too, so the kernel itself refuses to delete a foreign object that
//! merely looks the same.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::{
    address::{
        AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
    },
    link::{LinkAttribute, LinkFlags, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    route::{
        RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
        RouteScope, RouteType,
    },
    rule::{RuleAction, RuleAttribute, RuleMessage},
    AddressFamily, RouteNetlinkMessage,
};
use rtnetlink::{IpVersion, RouteMessageBuilder};

use netlink_packet_core::{NetlinkMessage, Parseable, NLM_F_CREATE, NLM_F_EXCL};

use super::nlsock::{
    messages, parse_error, request, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use super::Sys;
use crate::error::{Error, Result};
use crate::model::{host_prefix, AddrObj, IfName, RouteObj, RuleObj, LBCTL_PROTO};

/// `RTM_NEWADDR`, `RTM_GETADDR` (linux/rtnetlink.h).
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub mac: Option<Vec<u8>>,
    pub mtu: u32,
}

/// A neighbour (ARP/NDP) cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh {
    pub ip: IpAddr,
    pub dev: String,
    pub mac: Option<Vec<u8>>,
    /// Lower-case state name as `ip neigh` prints it (reachable, stale, failed, …).
    pub state: String,
}

/// An address as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub obj: AddrObj,
    /// Carries lbctl's protocol mark.
    pub marked: bool,
}

/// A route as observed, in any table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub table: u32,
    pub dst: IpNet,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    pub protocol: u8,
    pub scope_link: bool,
    pub unicast: bool,
}

impl RouteInfo {
    pub fn obj(&self) -> Option<RouteObj> {
        Some(RouteObj {
            table: self.table,
            dst: self.dst,
            via: self.via,
            dev: IfName::new(self.dev.as_deref()?).ok()?,
        })
    }
}

/// Result of a FIB lookup (`ip route get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub dev: Option<String>,
    pub via: Option<IpAddr>,
    pub table: u32,
    pub kind: String,
    pub prefsrc: Option<IpAddr>,
}

/// Observed rules: plain `from PREFIX lookup T` rules with their mark, and every table any rule
/// (modelled or not) points to, with whether a foreign rule points there.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub plain: BTreeMap<RuleObj, bool>,
    pub foreign_tables: BTreeSet<u32>,
    pub tables: BTreeSet<u32>,
}

/// Guard of [`Sys::pin_links`]: restores what was pinned before.
pub struct PinnedLinks<'a> {
    sys: &'a Sys,
    prev: Option<std::rc::Rc<BTreeMap<u32, String>>>,
}

impl Drop for PinnedLinks<'_> {
    fn drop(&mut self) {
        *self.sys.pinned_links.borrow_mut() = self.prev.take();
    }
}

/// An address change for [`Sys::addr_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrOp {
    Add,
    Del,
}

impl AddrOp {
    /// The netlink message, as errors name it.
    fn name(self) -> &'static str {
        match self {
            AddrOp::Add => "RTM_NEWADDR",
            AddrOp::Del => "RTM_DELADDR",
        }
    }
}

/// Requests [`Sys::addr_batch`] keeps in flight at once. Each answer is an ACK of 36 bytes (an
/// error echoes the request: about 100), so 64 of them fit the socket's receive buffer many
/// times over. The kernel handles each request inside the `sendmsg` that carries it, so what
/// pipelining saves is lbctl's per-request round trip (wake-ups, polls, one `recvmsg` each),
/// not kernel time.
pub const PIPELINE: usize = 64;

/// Turn an rtnetlink error into a tool error with the operation and object, and a hint.
fn nl_err(op: &str, obj: &dyn std::fmt::Display, e: rtnetlink::Error) -> Error {
    if let rtnetlink::Error::NetlinkError(ref m) = e {
        return errno_err(op, obj, -m.raw_code());
    }
    Error::Runtime(anyhow::anyhow!("{op} {obj}: {e}"))
}

/// The kernel's answer `errno` to `op` on `obj`, as a tool error with a hint.
fn errno_err(op: &str, obj: &dyn std::fmt::Display, errno: i32) -> Error {
    let io = std::io::Error::from_raw_os_error(errno);
    if errno == libc::EPERM || errno == libc::EACCES {
        return Error::Privilege(format!("{op} {obj}: {io}: run as root (CAP_NET_ADMIN)"));
    }
    let hint = match errno {
        libc::EEXIST => " (already present)",
        libc::ESRCH | libc::ENOENT => " (not found)",
        libc::ENODEV => " (no such device: was the interface deleted?)",
        libc::ENETUNREACH => " (gateway not reachable on that device)",
        libc::EADDRNOTAVAIL => " (address not present)",
        _ => "",
    };
    Error::Runtime(anyhow::anyhow!("{op} {obj}: {io}{hint}"))
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(msg.header.table as u32)
}

impl Sys {
    /// All interfaces.
    pub fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .block_on(self.handle.link().get().execute().try_collect())
            .map_err(|e| nl_err("RTM_GETLINK", &"dump", e))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                let mut name = None;
                let mut mac = None;
                let mut mtu = 0;
                for a in &m.attributes {
                    match a {
                        LinkAttribute::IfName(n) => name = Some(n.clone()),
                        LinkAttribute::Address(a) => mac = Some(a.clone()),
                        LinkAttribute::Mtu(v) => mtu = *v,
                        _ => {}
                    }
                }
                Some(Link {
                    index: m.header.index,
                    name: name?,
                    up: m.header.flags.contains(LinkFlags::Up),
                    mac,
                    mtu,
                })
            })
            .collect())
    }

    /// Whether interface `name` is up with a carrier (`LOWER_UP`); `None` when there is no such
    /// interface.
    pub fn carrier(&self, name: &str) -> Result<Option<bool>> {
        let msgs: Vec<LinkMessage> = self
            .block_on(
                self.handle
                    .link()
                    .get()
                    .match_name(name.to_string())
                    .execute()
                    .try_collect(),
            )
            .or_else(|e| match &e {
                rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::ENODEV => Ok(vec![]),
                _ => Err(e),
            })
            .map_err(|e| nl_err("RTM_GETLINK", &name, e))?;
        Ok(msgs.first().map(|m| {
            m.header.flags.contains(LinkFlags::Up) && m.header.flags.contains(LinkFlags::LowerUp)
        }))
    }

    /// The neighbour cache (`ip neigh`), both families.
    pub fn neighbours(&self) -> Result<Vec<Neigh>> {
        let names = self.link_names()?;
        let msgs: Vec<NeighbourMessage> = self
            .block_on(self.handle.neighbours().get().execute().try_collect())
            .map_err(|e| nl_err("RTM_GETNEIGH", &"dump", e))?;
        let mut out = Vec::new();
        for m in msgs {
            let mut ip = None;
            let mut mac = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        ip = Some(IpAddr::V4(*v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        ip = Some(IpAddr::V6(*v6))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) => mac = Some(l.clone()),
                    _ => {}
                }
            }
            let (Some(ip), Some(dev)) = (ip, names.get(&m.header.ifindex)) else {
                continue;
            };
            out.push(Neigh {
                ip,
                dev: dev.clone(),
                mac,
                state: format!("{:?}", m.header.state).to_lowercase(),
            });
        }
        Ok(out)
    }

    /// Index → name of every interface: from the links pinned by [`Sys::pin_links`] while
    /// they are, else from a fresh link dump.
    pub fn link_names(&self) -> Result<std::rc::Rc<BTreeMap<u32, String>>> {
        if let Some(names) = &*self.pinned_links.borrow() {
            return Ok(names.clone());
        }
        Ok(std::rc::Rc::new(
            self.links()?
                .into_iter()
                .map(|l| (l.index, l.name))
                .collect(),
        ))
    }

    /// While the returned guard lives, interface names and indexes (of addresses, routes,
    /// neighbours and route lookups) resolve from `links`, a dump the caller made, instead of
    /// a link dump per call: a read-only diagnosis (`doctor`) names every interface from its
    /// one view of them. Not for callers that create interfaces meanwhile.
    pub fn pin_links(&self, links: &[Link]) -> PinnedLinks<'_> {
        let names = links.iter().map(|l| (l.index, l.name.clone())).collect();
        let prev = self.pinned_links.replace(Some(std::rc::Rc::new(names)));
        PinnedLinks { sys: self, prev }
    }

    /// Every IPv4 and IPv6 address. The dump is read a datagram at a time
    /// ([`super::nlsock::NlSocket`]) and each message reduced to an [`AddrInfo`] as it
    /// arrives, so 10,000 addresses never exist as 10,000 parsed messages at once (the
    /// `rtnetlink` connection queues a whole dump: ~5 MiB at 10,000 VIPs).
    pub fn addresses(&self) -> Result<Vec<AddrInfo>> {
        // Each interface's name checked once, not once per address.
        let names: BTreeMap<u32, IfName> = self
            .link_names()?
            .iter()
            .filter_map(|(i, n)| Some((*i, IfName::new(n).ok()?)))
            .collect();
        let what = "RTM_GETADDR dump";
        let out = std::cell::RefCell::new(Vec::new());
        let mut undecodable = None;
        // struct ifaddrmsg, all zero: every address of both families.
        let ifaddrmsg = [0u8; 8];
        self.nl.borrow_mut().exchange(
            what,
            &|seq| {
                request(
                    RTM_GETADDR,
                    NLM_F_REQUEST | NLM_F_DUMP,
                    seq,
                    &ifaddrmsg,
                    &[],
                )
            },
            &mut |m| {
                if m.ty != RTM_NEWADDR {
                    return;
                }
                match AddressMessage::parse(m.payload) {
                    Ok(a) => out.borrow_mut().extend(addr_info(&a, &names)),
                    Err(e) => undecodable = Some(e.to_string()),
                }
            },
            &mut || out.borrow_mut().clear(),
        )?;
        // An address lbctl cannot read is one it might miss: not a partial answer.
        if let Some(e) = undecodable {
            return Err(Error::Runtime(anyhow::anyhow!("{what}: {e}")));
        }
        Ok(out.into_inner())
    }

    fn index_of(&self, dev: &str) -> Result<u32> {
        if let Some(i) = self.link_cache.borrow().get(dev) {
            return Ok(*i);
        }
        if let Some(names) = &*self.pinned_links.borrow() {
            if let Some((i, _)) = names.iter().find(|(_, n)| n.as_str() == dev) {
                return Ok(*i);
            }
        }
        let fresh: BTreeMap<String, u32> = self
            .links()?
            .into_iter()
            .map(|l| (l.name, l.index))
            .collect();
        let found = fresh.get(dev).copied();
        *self.link_cache.borrow_mut() = fresh;
        found.ok_or_else(|| Error::Runtime(anyhow::anyhow!("no such interface '{dev}'")))
    }

    /// The RTM_NEWADDR request for `ip addr add ADDR/PREFIX dev DEV proto 76 [nodad
    /// [preferred_lft 0]]` (NLM_F_CREATE | NLM_F_EXCL: an existing address is an error).
    ///
    /// An IPv6 VIP on a real interface (a balancer's) is added deprecated: Linux would otherwise
    /// pick it as the source address towards hosts on the same link, and a DSR backend (which
    /// has the VIP on its lo) would send the replies to itself.
    fn addr_add_message(a: &AddrObj, index: u32) -> AddressMessage {
        let mut msg = match a.addr {
            IpAddr::V4(v4) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(v4, a.prefix)
                .build(),
            IpAddr::V6(v6) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(v6, a.prefix)
                .build(),
        };
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::Other(
                LBCTL_PROTO,
            )));
        if a.addr.is_ipv6() {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
            if a.dev != "lo" {
                let mut ci = netlink_packet_route::address::CacheInfo::default();
                ci.ifa_preferred = 0;
                ci.ifa_valid = u32::MAX;
                msg.attributes.push(AddressAttribute::CacheInfo(ci));
            }
        }
        msg
    }

    /// The RTM_DELADDR message for `ip addr del ADDR/PREFIX dev DEV`.
    fn addr_del_message(a: &AddrObj, index: u32) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = family(a.addr);
        msg.header.prefix_len = a.prefix;
        msg.header.index = index;
        if a.addr.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(a.addr));
        }
        msg.attributes.push(AddressAttribute::Address(a.addr));
        msg
    }

    /// `ip addr add ADDR/PREFIX dev DEV proto 76 [nodad [preferred_lft 0]]`.
    pub fn addr_add(&self, a: &AddrObj) -> Result<()> {
        self.addr_one(AddrOp::Add, a)
    }

    /// `ip addr del ADDR/PREFIX dev DEV`.
    pub fn addr_del(&self, a: &AddrObj) -> Result<()> {
        self.addr_one(AddrOp::Del, a)
    }

    fn addr_one(&self, op: AddrOp, a: &AddrObj) -> Result<()> {
        self.addr_batch(&[(op, a)], &mut |_| true, true)
            .pop()
            .flatten()
            .expect("a batch of one sends its request")
    }

    /// Add or delete many addresses, up to [`PIPELINE`] requests per datagram on the one
    /// socket — `ip -batch` sends one and waits for its answer before the next. The kernel
    /// handles every message of a datagram in turn, each as if sent alone, and answers each
    /// with its own ACK or error; answers are matched to requests by sequence number, so each
    /// object gets its own result.
    ///
    /// `issue(k)` is asked right before request k joins a datagram; when it says false, no
    /// further request is sent. With `stop_on_error`, none is sent after one has failed.
    /// Requests in flight (the datagram sent) always finish. Returns one entry per object, in
    /// the order given: `None` for those never sent, else the kernel's answer (with the
    /// operation and object in the error, as [`Sys::addr_add`] and [`Sys::addr_del`] report
    /// it).
    pub fn addr_batch(
        &self,
        ops: &[(AddrOp, &AddrObj)],
        issue: &mut dyn FnMut(usize) -> bool,
        stop_on_error: bool,
    ) -> Vec<Option<Result<()>>> {
        let mut out: Vec<Option<Result<()>>> = Vec::with_capacity(ops.len());
        out.resize_with(ops.len(), || None);
        // Interface indexes first (a miss dumps the links). One lookup per distinct device.
        let mut index: BTreeMap<&str, std::result::Result<u32, String>> = BTreeMap::new();
        for (_, a) in ops {
            if !index.contains_key(a.dev.as_str()) {
                let i = self.index_of(&a.dev).map_err(|e| e.to_string());
                index.insert(&a.dev, i);
            }
        }
        let mut nl = self.nl.borrow_mut();
        let mut datagram = Vec::new();
        let mut sent: BTreeMap<u32, usize> = BTreeMap::new();
        let mut next = 0;
        let mut stopped = false;
        while !stopped && next < ops.len() {
            datagram.clear();
            while !stopped && sent.len() < PIPELINE && next < ops.len() {
                let k = next;
                next += 1;
                if !issue(k) {
                    stopped = true;
                    break;
                }
                let (op, a) = ops[k];
                let i = match &index[a.dev.as_str()] {
                    Ok(i) => *i,
                    Err(e) => {
                        out[k] = Some(Err(Error::Runtime(anyhow::anyhow!(
                            "{} {a}: {e}",
                            op.name()
                        ))));
                        stopped |= stop_on_error;
                        continue;
                    }
                };
                let seq = nl.take_seqs(1);
                let (payload, flags) = match op {
                    AddrOp::Add => (
                        RouteNetlinkMessage::NewAddress(Self::addr_add_message(a, i)),
                        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE,
                    ),
                    AddrOp::Del => (
                        RouteNetlinkMessage::DelAddress(Self::addr_del_message(a, i)),
                        NLM_F_REQUEST | NLM_F_ACK,
                    ),
                };
                let mut m = NetlinkMessage::from(payload);
                m.header.flags = flags;
                m.header.sequence_number = seq;
                m.finalize();
                let at = datagram.len();
                datagram.resize(at + m.buffer_len(), 0);
                m.serialize(&mut datagram[at..]);
                sent.insert(seq, k);
            }
            if sent.is_empty() {
                continue;
            }
            let what = "sending address changes";
            let failed =
                |out: &mut Vec<Option<Result<()>>>, sent: &mut BTreeMap<u32, usize>, e: &Error| {
                    for k in std::mem::take(sent).into_values() {
                        let (op, a) = ops[k];
                        out[k] = Some(Err(Error::Runtime(anyhow::anyhow!(
                            "{} {a}: {e}",
                            op.name()
                        ))));
                    }
                };
            if let Err(e) = nl.send(&datagram, what) {
                failed(&mut out, &mut sent, &e);
                break;
            }
            // Every request has its answer queued once the send returns; read them all.
            while !sent.is_empty() {
                if let Err(e) = nl.recv(what, false) {
                    failed(&mut out, &mut sent, &e);
                    stopped = true;
                    break;
                }
                let answers = match messages(&nl.buf) {
                    Ok(m) => m,
                    Err(e) => {
                        failed(&mut out, &mut sent, &Error::Runtime(anyhow::anyhow!("{e}")));
                        stopped = true;
                        break;
                    }
                };
                for m in answers.iter().filter(|m| m.ty == NLMSG_ERROR) {
                    let Some((errno, seq)) = parse_error(m.payload) else {
                        continue;
                    };
                    let Some(k) = sent.remove(&seq) else {
                        continue; // a late answer to an earlier request
                    };
                    let (op, a) = ops[k];
                    out[k] = Some(if errno == 0 {
                        Ok(())
                    } else {
                        stopped |= stop_on_error;
                        Err(errno_err(op.name(), a, errno))
                    });
                }
            }
        }
        out
    }

    /// All rules, both families.
    pub fn rules(&self) -> Result<Rules> {
        let mut out = Rules::default();
        for v in [IpVersion::V4, IpVersion::V6] {
            let msgs: Vec<RuleMessage> = self
                .block_on(self.handle.rule().get(v).execute().try_collect())
                .map_err(|e| nl_err("RTM_GETRULE", &"dump", e))?;
            for m in msgs {
                let mut table = m.header.table as u32;
                let mut from = None;
                let mut priority = 0;
                let mut marked = false;
                let mut plain = m.header.action == RuleAction::ToTable
                    && m.header.dst_len == 0
                    && m.header.tos == 0;
                for a in &m.attributes {
                    match a {
                        RuleAttribute::Table(t) => table = *t,
                        RuleAttribute::Source(ip) => from = Some(*ip),
                        RuleAttribute::Priority(p) => priority = *p,
                        RuleAttribute::Protocol(RouteProtocol::Other(p)) => {
                            marked = *p == LBCTL_PROTO
                        }
                        RuleAttribute::Protocol(_) => {}
                        // "Not set" values the kernel reports on every rule.
                        RuleAttribute::SuppressPrefixLen(u32::MAX)
                        | RuleAttribute::SuppressIfGroup(u32::MAX)
                        | RuleAttribute::FwMark(0)
                        | RuleAttribute::FwMask(0) => {}
                        _ => plain = false,
                    }
                }
                out.tables.insert(table);
                match (plain, from) {
                    (true, Some(from)) => {
                        out.plain.insert(
                            RuleObj {
                                priority,
                                from,
                                from_len: m.header.src_len,
                                table,
                            },
                            marked,
                        );
                        if !marked {
                            out.foreign_tables.insert(table);
                        }
                    }
                    _ => {
                        out.foreign_tables.insert(table);
                    }
                }
            }
        }
        Ok(out)
    }

    fn rule_message(r: &RuleObj) -> RuleMessage {
        let mut m = RuleMessage::default();
        m.header.family = family(r.from);
        m.header.src_len = r.from_len;
        m.header.action = RuleAction::ToTable;
        m.header.table = if r.table < 256 { r.table as u8 } else { 0 };
        m.attributes.push(RuleAttribute::Source(r.from));
        m.attributes.push(RuleAttribute::Table(r.table));
        m.attributes.push(RuleAttribute::Priority(r.priority));
        m.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::Other(LBCTL_PROTO)));
        m
    }

    /// `ip rule add from SRC lookup T priority P protocol 76`.
    pub fn rule_add(&self, r: &RuleObj) -> Result<()> {
        let mut req = self.handle.rule().add();
        *req.message_mut() = Self::rule_message(r);
        self.block_on(req.execute())
            .map_err(|e| nl_err("RTM_NEWRULE", r, e))
    }

    /// `ip rule del from SRC lookup T priority P protocol 76` (only lbctl's rule matches).
    pub fn rule_del(&self, r: &RuleObj) -> Result<()> {
        self.block_on(self.handle.rule().del(Self::rule_message(r)).execute())
            .map_err(|e| nl_err("RTM_DELRULE", r, e))
    }

    /// Every route of every table, both families (cached/cloned routes excluded).
    pub fn routes(&self) -> Result<Vec<RouteInfo>> {
        self.routes_where(&|_| true)
    }

    /// The routes of the tables `keep` accepts, both families (cached/cloned routes excluded).
    /// Each message is reduced as it arrives: the others are never kept.
    pub fn routes_where(&self, keep: &dyn Fn(u32) -> bool) -> Result<Vec<RouteInfo>> {
        let names = self.link_names()?;
        let mut out = Vec::new();
        for builder in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            self.block_on(
                self.handle
                    .route()
                    .get(builder)
                    .execute()
                    .try_for_each(|m| {
                        if keep(route_table(&m)) {
                            out.extend(route_info(&m, &names));
                        }
                        futures::future::ready(Ok(()))
                    }),
            )
            .map_err(|e| nl_err("RTM_GETROUTE", &"dump", e))?;
        }
        Ok(out)
    }

    fn route_message(r: &RouteObj, index: u32) -> Result<RouteMessage> {
        let bad = invalid(r.to_string());
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst.addr(), r.dst.prefix_len())
            .map_err(&bad)?
            .output_interface(index)
            .table_id(r.table)
            .protocol(RouteProtocol::Other(LBCTL_PROTO));
        b = match r.via {
            Some(gw) => b.gateway(gw).map_err(&bad)?.scope(RouteScope::Universe),
            None => b.scope(if r.dst.addr().is_ipv4() {
                RouteScope::Link
            } else {
                RouteScope::Universe
            }),
        };
        Ok(b.kind(RouteType::Unicast).build())
    }

    /// `ip route add DST [via GW] dev DEV table T proto 76`.
    pub fn route_add(&self, r: &RouteObj) -> Result<()> {
        let msg = Self::route_message(r, self.index_of(&r.dev)?)?;
        self.block_on(self.handle.route().add(msg).execute())
            .map_err(|e| nl_err("RTM_NEWROUTE", r, e))
    }

    /// `ip route del DST [via GW] dev DEV table T proto 76` (only lbctl's route matches).
    pub fn route_del(&self, r: &RouteObj) -> Result<()> {
        let mut msg = Self::route_message(r, self.index_of(&r.dev)?)?;
        msg.header.scope = RouteScope::NoWhere;
        self.block_on(self.handle.route().del(msg).execute())
            .map_err(|e| nl_err("RTM_DELROUTE", r, e))
    }

    /// `ip route get DST [from SRC] [iif IF]`: a pure FIB lookup, nothing is sent.
    pub fn route_get(&self, dst: IpAddr, src: Option<IpAddr>, iif: Option<&str>) -> Result<Lookup> {
        let names = self.link_names()?;
        let what = format!(
            "{dst}{}{}",
            src.map(|s| format!(" from {s}")).unwrap_or_default(),
            iif.map(|s| format!(" iif {s}")).unwrap_or_default()
        );
        let bad = invalid(what.clone());
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst, host_prefix(dst))
            .map_err(&bad)?;
        if let Some(src) = src {
            b = b.source_prefix(src, host_prefix(src)).map_err(&bad)?;
        }
        if let Some(iif) = iif {
            b = b.input_interface(self.index_of(iif)?);
        }
        let mut msg = b.build();
        msg.header.flags |= RouteFlags::LookupTable;
        let replies: Vec<RouteMessage> = self
            .block_on(self.handle.route().get(msg).execute().try_collect())
            .map_err(|e| nl_err("ip route get", &what, e))?;
        let m = replies
            .into_iter()
            .next()
            .ok_or_else(|| Error::Runtime(anyhow::anyhow!("ip route get {what}: no answer")))?;
        let mut l = Lookup {
            dev: None,
            via: None,
            table: route_table(&m),
            kind: format!("{:?}", m.header.kind).to_lowercase(),
            prefsrc: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Oif(i) => l.dev = names.get(i).cloned(),
                RouteAttribute::Gateway(g) => l.via = ip_of(g),
                RouteAttribute::PrefSource(p) => l.prefsrc = ip_of(p),
                _ => {}
            }
        }
        Ok(l)
    }
}

/// Map rtnetlink's (unexported) route-builder error.
fn invalid<E: std::fmt::Display>(what: String) -> impl Fn(E) -> Error {
    move |e| Error::Runtime(anyhow::anyhow!("{what}: {e}"))
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn route_info(m: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<RouteInfo> {
    let h: &RouteHeader = &m.header;
    if h.flags.contains(RouteFlags::Cloned) {
        return None;
    }
    let mut dst = None;
    let mut via = None;
    let mut dev = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => via = ip_of(g),
            RouteAttribute::Oif(i) => dev = names.get(i).cloned(),
            _ => {}
        }
    }
    let unspecified: IpAddr = match h.address_family {
        AddressFamily::Inet => std::net::Ipv4Addr::UNSPECIFIED.into(),
        AddressFamily::Inet6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => return None,
    };
    let dst = IpNet::new(dst.unwrap_or(unspecified), h.destination_prefix_length).ok()?;
    let protocol = match h.protocol {
        RouteProtocol::Other(p) => p,
        p => u8::from(p),
    };
    Some(RouteInfo {
        table: route_table(m),
        dst: dst.trunc(),
        via,
        dev,
        protocol,
        scope_link: h.scope == RouteScope::Link,
        unicast: h.kind == RouteType::Unicast,
    })
}

fn addr_info(m: &AddressMessage, names: &BTreeMap<u32, IfName>) -> Option<AddrInfo> {
    let mut local = None;
    let mut address = None;
    let mut marked = false;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Protocol(AddressProtocol::Other(p)) => marked = *p == LBCTL_PROTO,
            _ => {}
        }
    }
    Some(AddrInfo {
        obj: AddrObj {
            dev: *names.get(&m.header.index)?,
            addr: local.or(address)?,
            prefix: m.header.prefix_len,
        },
        marked,
    })
}
