//! Mapping between the public model and the wire attributes, and the request
//! builders for every IPVS command lbctl sends.
//!
//! What is sent follows ip_vs_genl_parse_service/_parse_dest: NEW/SET_SERVICE
//! always carry SCHED_NAME, FLAGS (mask = all bits), TIMEOUT and NETMASK;
//! NEW/SET_DEST carry the service key plus ADDR, PORT, FWD_METHOD, WEIGHT,
//! U_THRESH, L_THRESH and ADDR_FAMILY (tunnel attributes only for TUN);
//! DEL_* carry keys only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::model::*;
use super::wire::*;

/// Parsing a kernel reply into the model failed (missing/odd attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub String);

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected IPVS reply: {}", self.0)
    }
}

impl std::error::Error for ConvertError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConvertError> {
    Err(ConvertError(msg.into()))
}

// --- small encoders ------------------------------------------------------------

pub fn af_of(f: Family) -> u16 {
    match f {
        Family::Inet => AF_INET,
        Family::Inet6 => AF_INET6,
    }
}

pub fn family_from_af(af: u16) -> Result<Family, ConvertError> {
    match af {
        AF_INET => Ok(Family::Inet),
        AF_INET6 => Ok(Family::Inet6),
        other => err(format!("address family {other}")),
    }
}

pub fn proto_num(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Sctp => IPPROTO_SCTP,
    }
}

pub fn proto_from_num(n: u16) -> Result<Protocol, ConvertError> {
    match n {
        IPPROTO_TCP => Ok(Protocol::Tcp),
        IPPROTO_UDP => Ok(Protocol::Udp),
        IPPROTO_SCTP => Ok(Protocol::Sctp),
        other => err(format!("protocol {other}")),
    }
}

/// `union nf_inet_addr`: IPv4 in the first 4 bytes, the rest zero.
pub fn inet_addr16(ip: &IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a.copy_from_slice(&v6.octets()),
    }
    a
}

pub fn addr_from16(a: &[u8; 16], f: Family) -> IpAddr {
    match f {
        Family::Inet => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from(*a)),
    }
}

/// The raw `IPVS_SVC_ATTR_NETMASK` value (`nla_get_u32`).
pub fn netmask_raw(m: &Netmask) -> u32 {
    match m {
        // the kernel keeps the IPv4 mask as a __be32
        Netmask::V4(mask) => u32::from_ne_bytes(mask.octets()),
        Netmask::V6(plen) => *plen as u32,
    }
}

pub fn netmask_from_raw(raw: u32, f: Family) -> Netmask {
    match f {
        Family::Inet => Netmask::V4(Ipv4Addr::from(raw.to_ne_bytes())),
        Family::Inet6 => Netmask::V6(raw.min(255) as u8),
    }
}

pub fn fwd_raw(f: Forward) -> u32 {
    match f {
        Forward::Nat => IP_VS_CONN_F_MASQ,
        Forward::Local => IP_VS_CONN_F_LOCALNODE,
        Forward::Tun => IP_VS_CONN_F_TUNNEL,
        Forward::Dr => IP_VS_CONN_F_DROUTE,
    }
}

pub fn fwd_from_raw(raw: u32) -> Result<Forward, ConvertError> {
    match raw & IP_VS_CONN_F_FWD_MASK {
        IP_VS_CONN_F_MASQ => Ok(Forward::Nat),
        IP_VS_CONN_F_LOCALNODE => Ok(Forward::Local),
        IP_VS_CONN_F_TUNNEL => Ok(Forward::Tun),
        IP_VS_CONN_F_DROUTE => Ok(Forward::Dr),
        other => err(format!("forwarding method {other}")),
    }
}

fn tun_type_raw(t: TunnelType) -> u8 {
    match t {
        TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
        TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
        TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
    }
}

fn tun_type_from_raw(raw: u8) -> Result<TunnelType, ConvertError> {
    match raw {
        IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Ok(TunnelType::Ipip),
        IP_VS_CONN_F_TUNNEL_TYPE_GUE => Ok(TunnelType::Gue),
        IP_VS_CONN_F_TUNNEL_TYPE_GRE => Ok(TunnelType::Gre),
        other => err(format!("tunnel type {other}")),
    }
}

// --- model -> attributes --------------------------------------------------------

/// AF + (FWMARK | PROTOCOL + ADDR + PORT).
pub fn service_key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    let mut v = vec![SvcAttr::Af(af_of(key.family()))];
    match key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            v.push(SvcAttr::Protocol(proto_num(*protocol)));
            v.push(SvcAttr::Addr(inet_addr16(addr)));
            v.push(SvcAttr::Port(*port));
        }
        ServiceKey::Fwmark { mark, .. } => v.push(SvcAttr::Fwmark(*mark)),
    }
    v
}

/// The full entry for NEW/SET_SERVICE.
pub fn service_attrs(svc: &Service) -> Vec<SvcAttr> {
    let mut v = service_key_attrs(&svc.key);
    v.push(SvcAttr::SchedName(svc.scheduler.name().to_string()));
    if let Some(pe) = &svc.pe_name {
        v.push(SvcAttr::PeName(pe.clone()));
    }
    v.push(SvcAttr::Flags {
        flags: svc.flags.bits(),
        mask: u32::MAX,
    });
    v.push(SvcAttr::Timeout(svc.timeout));
    v.push(SvcAttr::Netmask(netmask_raw(&svc.netmask)));
    v
}

/// ADDR + PORT + ADDR_FAMILY (what DEL_DEST needs).
pub fn dest_key_attrs(addr: &IpAddr, port: u16) -> Vec<DestAttr> {
    vec![
        DestAttr::Addr(inet_addr16(addr)),
        DestAttr::Port(port),
        DestAttr::AddrFamily(af_of(Family::of(addr))),
    ]
}

/// The full entry for NEW/SET_DEST.
pub fn dest_attrs(d: &Destination) -> Vec<DestAttr> {
    let mut v = vec![
        DestAttr::Addr(inet_addr16(&d.addr)),
        DestAttr::Port(d.port),
        DestAttr::FwdMethod(fwd_raw(d.fwd)),
        DestAttr::Weight(d.weight),
        DestAttr::UThresh(d.u_thresh),
        DestAttr::LThresh(d.l_thresh),
        DestAttr::AddrFamily(af_of(d.family())),
    ];
    if d.fwd == Forward::Tun {
        v.push(DestAttr::TunType(tun_type_raw(d.tunnel.kind)));
        v.push(DestAttr::TunPort(d.tunnel.port));
        v.push(DestAttr::TunFlags(d.tunnel.flags));
    }
    v
}

// --- request builders -------------------------------------------------------------

pub fn new_service(svc: &Service) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_NEW_SERVICE,
        vec![IpvsAttr::Service(service_attrs(svc))],
    )
}
pub fn set_service(svc: &Service) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_SERVICE,
        vec![IpvsAttr::Service(service_attrs(svc))],
    )
}
pub fn del_service(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_DEL_SERVICE,
        vec![IpvsAttr::Service(service_key_attrs(key))],
    )
}
/// With a key: one service (no dump). Without: send with NLM_F_DUMP.
pub fn get_service(key: Option<&ServiceKey>) -> IpvsMessage {
    let attrs = key
        .map(|k| vec![IpvsAttr::Service(service_key_attrs(k))])
        .unwrap_or_default();
    IpvsMessage::new(IPVS_CMD_GET_SERVICE, attrs)
}
pub fn new_dest(key: &ServiceKey, d: &Destination) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_NEW_DEST,
        vec![
            IpvsAttr::Service(service_key_attrs(key)),
            IpvsAttr::Dest(dest_attrs(d)),
        ],
    )
}
pub fn set_dest(key: &ServiceKey, d: &Destination) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_DEST,
        vec![
            IpvsAttr::Service(service_key_attrs(key)),
            IpvsAttr::Dest(dest_attrs(d)),
        ],
    )
}
pub fn del_dest(key: &ServiceKey, addr: &IpAddr, port: u16) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_DEL_DEST,
        vec![
            IpvsAttr::Service(service_key_attrs(key)),
            IpvsAttr::Dest(dest_key_attrs(addr, port)),
        ],
    )
}
/// Sent with NLM_F_DUMP.
pub fn get_dest(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_GET_DEST,
        vec![IpvsAttr::Service(service_key_attrs(key))],
    )
}
pub fn get_info() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_INFO, vec![])
}
pub fn get_config() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_GET_CONFIG, vec![])
}
pub fn set_config(t: &Timeouts) -> IpvsMessage {
    IpvsMessage::new(
        IPVS_CMD_SET_CONFIG,
        vec![
            IpvsAttr::TimeoutTcp(t.tcp),
            IpvsAttr::TimeoutTcpFin(t.tcp_fin),
            IpvsAttr::TimeoutUdp(t.udp),
        ],
    )
}
pub fn flush() -> IpvsMessage {
    IpvsMessage::new(IPVS_CMD_FLUSH, vec![])
}
/// Zero the counters of one service, or of all (None).
pub fn zero(key: Option<&ServiceKey>) -> IpvsMessage {
    let attrs = key
        .map(|k| vec![IpvsAttr::Service(service_key_attrs(k))])
        .unwrap_or_default();
    IpvsMessage::new(IPVS_CMD_ZERO, attrs)
}

// --- attributes -> model -------------------------------------------------------------

fn stats_from(nest: &StatsNest) -> Stats {
    let mut s = Stats::default();
    for a in &nest.attrs {
        match *a {
            StatsAttr::Conns(v) => s.conns = v,
            StatsAttr::InPkts(v) => s.inpkts = v,
            StatsAttr::OutPkts(v) => s.outpkts = v,
            StatsAttr::InBytes(v) => s.inbytes = v,
            StatsAttr::OutBytes(v) => s.outbytes = v,
            StatsAttr::Cps(v) => s.cps = v,
            StatsAttr::InPps(v) => s.inpps = v,
            StatsAttr::OutPps(v) => s.outpps = v,
            StatsAttr::InBps(v) => s.inbps = v,
            StatsAttr::OutBps(v) => s.outbps = v,
            StatsAttr::Other(_) => {}
        }
    }
    s
}

/// Model → STATS64 nest (used by tests and fixtures).
pub fn stats_nest(kind: u16, wide: bool, s: &Stats) -> StatsNest {
    StatsNest {
        kind,
        wide,
        attrs: vec![
            StatsAttr::Conns(s.conns),
            StatsAttr::InPkts(s.inpkts),
            StatsAttr::OutPkts(s.outpkts),
            StatsAttr::InBytes(s.inbytes),
            StatsAttr::OutBytes(s.outbytes),
            StatsAttr::Cps(s.cps),
            StatsAttr::InPps(s.inpps),
            StatsAttr::OutPps(s.outpps),
            StatsAttr::InBps(s.inbps),
            StatsAttr::OutBps(s.outbps),
        ],
    }
}

/// A `SERVICE` nest from a NEW_SERVICE reply → service + counters
/// (STATS64 preferred over STATS).
pub fn service_from_attrs(attrs: &[SvcAttr]) -> Result<(Service, Stats), ConvertError> {
    let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, None, None, None, None);
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::Af(v) => af = Some(*v),
            SvcAttr::Protocol(v) => proto = Some(*v),
            SvcAttr::Addr(v) => addr = Some(*v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => fwmark = Some(*v),
            SvcAttr::SchedName(v) => sched = Some(v.clone()),
            SvcAttr::Flags { flags: f, .. } => flags = Some(*f),
            SvcAttr::Timeout(v) => timeout = Some(*v),
            SvcAttr::Netmask(v) => netmask = Some(*v),
            SvcAttr::PeName(v) => pe = Some(v.clone()),
            SvcAttr::Stats(n) => stats = Some(stats_from(n)),
            SvcAttr::Stats64(n) => stats64 = Some(stats_from(n)),
            SvcAttr::Other(_) => {}
        }
    }
    let Some(af) = af else {
        return err("service without AF");
    };
    let family = family_from_af(af)?;
    let key = match (fwmark, proto, addr, port) {
        (Some(mark), _, _, _) if mark != 0 => ServiceKey::Fwmark { mark, family },
        (_, Some(p), Some(a), Some(port)) => ServiceKey::Inet {
            protocol: proto_from_num(p)?,
            addr: addr_from16(&a, family),
            port,
        },
        _ => return err("service without FWMARK or PROTOCOL/ADDR/PORT"),
    };
    let Some(sched) = sched else {
        return err("service without SCHED_NAME");
    };
    let svc = Service {
        key,
        scheduler: Scheduler::from(sched.as_str()),
        flags: ServiceFlags(flags.unwrap_or(0) & !ServiceFlags::KERNEL_INTERNAL),
        timeout: timeout.unwrap_or(0),
        netmask: netmask
            .map(|m| netmask_from_raw(m, family))
            .unwrap_or_else(|| Netmask::host(family)),
        pe_name: pe.filter(|p| !p.is_empty()),
    };
    Ok((svc, stats64.or(stats).unwrap_or_default()))
}

/// A `DEST` nest from a NEW_DEST reply. `svc_family` is used when the kernel
/// omits ADDR_FAMILY (kernels before 4.x).
pub fn dest_from_attrs(attrs: &[DestAttr], svc_family: Family) -> Result<DestEntry, ConvertError> {
    let (mut addr, mut port, mut fwd, mut weight) = (None, None, None, None);
    let (mut u, mut l, mut active, mut inact, mut persist, mut af) = (0, 0, 0, 0, 0, None);
    let (mut stats, mut stats64) = (None, None);
    let mut tunnel = Tunnel::default();
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UThresh(v) => u = *v,
            DestAttr::LThresh(v) => l = *v,
            DestAttr::ActiveConns(v) => active = *v,
            DestAttr::InactConns(v) => inact = *v,
            DestAttr::PersistConns(v) => persist = *v,
            DestAttr::AddrFamily(v) => af = Some(*v),
            DestAttr::TunType(v) => tunnel.kind = tun_type_from_raw(*v)?,
            DestAttr::TunPort(v) => tunnel.port = *v,
            DestAttr::TunFlags(v) => tunnel.flags = *v,
            DestAttr::Stats(n) => stats = Some(stats_from(n)),
            DestAttr::Stats64(n) => stats64 = Some(stats_from(n)),
            DestAttr::Other(_) => {}
        }
    }
    let family = match af {
        Some(af) => family_from_af(af)?,
        None => svc_family,
    };
    let (Some(addr), Some(port), Some(fwd)) = (addr, port, fwd) else {
        return err("destination without ADDR/PORT/FWD_METHOD");
    };
    let fwd = fwd_from_raw(fwd)?;
    if fwd != Forward::Tun {
        tunnel = Tunnel::default();
    }
    Ok(DestEntry {
        dest: Destination {
            addr: addr_from16(&addr, family),
            port,
            fwd,
            weight: weight.unwrap_or(0),
            u_thresh: u,
            l_thresh: l,
            tunnel,
        },
        active_conns: active,
        inact_conns: inact,
        persist_conns: persist,
        stats: stats64.or(stats).unwrap_or_default(),
    })
}

/// A SET_INFO reply (answer to GET_INFO).
pub fn info_from(msg: &IpvsMessage) -> Result<Info, ConvertError> {
    let (mut version, mut size) = (None, None);
    for a in &msg.attrs {
        match a {
            IpvsAttr::InfoVersion(v) => version = Some(*v),
            IpvsAttr::InfoConnTabSize(v) => size = Some(*v),
            _ => {}
        }
    }
    match (version, size) {
        (Some(version), Some(conn_tab_size)) => Ok(Info {
            version,
            conn_tab_size,
        }),
        _ => err("GET_INFO reply without VERSION/CONN_TAB_SIZE"),
    }
}

/// A SET_CONFIG reply (answer to GET_CONFIG).
pub fn timeouts_from(msg: &IpvsMessage) -> Timeouts {
    let mut t = Timeouts::default();
    for a in &msg.attrs {
        match a {
            IpvsAttr::TimeoutTcp(v) => t.tcp = *v,
            IpvsAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
            IpvsAttr::TimeoutUdp(v) => t.udp = *v,
            _ => {}
        }
    }
    t
}
