//! Public IPVS types: what lbctl reasons about, independent of the wire format.
//!
//! * [`Service`] = [`ServiceKey`] (protocol + address + port, or firewall mark;
//!   plus the address family) with its scheduler, flags, persistence timeout,
//!   netmask and optional persistence engine.
//! * [`Destination`] = a real server: address, port, forwarding method,
//!   weight and connection thresholds (+ tunnel options for TUN).
//! * [`ServiceEntry`]/[`DestEntry`] = what a listing returns: the above plus
//!   counters and connection numbers.
//!
//! `validate` methods encode the rules lbctl enforces *before* talking to the
//! kernel (the kernel would either refuse them or, like ipvsadm, silently
//! rewrite them): known scheduler names, DR/TUN real-server port equal to the
//! service port, weight and threshold ranges, one-packet only for UDP, …

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// Address family of a service or destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "IPv4",
            Family::Inet6 => "IPv6",
        })
    }
}

/// Transport protocol of a non-fwmark service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Name in `ipvsadm -L` listings.
    pub fn list_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
    /// Option in ipvsadm command lines.
    pub fn option(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
            Protocol::Sctp => "--sctp-service",
        }
    }
}

/// The identity of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKey {
    /// `-t/-u/--sctp-service ADDR:PORT`; the family follows `addr`.
    Inet {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    /// `-f MARK [-6]`.
    Fwmark { mark: u32, family: Family },
}

impl ServiceKey {
    pub fn tcp(sa: SocketAddr) -> Self {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }
    pub fn udp(sa: SocketAddr) -> Self {
        ServiceKey::Inet {
            protocol: Protocol::Udp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }
    pub fn sctp(sa: SocketAddr) -> Self {
        ServiceKey::Inet {
            protocol: Protocol::Sctp,
            addr: sa.ip(),
            port: sa.port(),
        }
    }
    pub fn fwmark(mark: u32, family: Family) -> Self {
        ServiceKey::Fwmark { mark, family }
    }
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Inet { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
    /// The service port (None for fwmark services).
    pub fn port(&self) -> Option<u16> {
        match self {
            ServiceKey::Inet { port, .. } => Some(*port),
            ServiceKey::Fwmark { .. } => None,
        }
    }
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Inet { protocol, .. } => Some(*protocol),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// IPVS schedulers. `Other` holds a name lbctl does not know; validation
/// refuses it (the kernel would try `request_module("ip_vs_<name>")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    Twos,
    Other(String),
}

impl Scheduler {
    /// Every scheduler of mainline Linux (`twos` needs 6.2+).
    pub const KNOWN: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::Twos,
    ];

    pub fn name(&self) -> &str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::Twos => "twos",
            Scheduler::Other(s) => s,
        }
    }
    pub fn is_known(&self) -> bool {
        !matches!(self, Scheduler::Other(_))
    }
    /// The kernel module implementing it.
    pub fn module(&self) -> String {
        format!("ip_vs_{}", self.name())
    }
    /// ipvsadm's names for the SCHED1/2/3 flags of this scheduler.
    pub fn flag_names(&self) -> [&'static str; 3] {
        match self {
            Scheduler::Sh => ["sh-fallback", "sh-port", "flag-3"],
            Scheduler::Mh => ["mh-fallback", "mh-port", "flag-3"],
            _ => ["flag-1", "flag-2", "flag-3"],
        }
    }
}

impl FromStr for Scheduler {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Scheduler::KNOWN
            .iter()
            .find(|k| k.name() == s)
            .cloned()
            .unwrap_or_else(|| Scheduler::Other(s.to_string())))
    }
}

impl From<&str> for Scheduler {
    fn from(s: &str) -> Self {
        s.parse().unwrap()
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Service flags (`IP_VS_SVC_F_*`) without the kernel-internal HASHED bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    pub const PERSISTENT: ServiceFlags = ServiceFlags(0x0001);
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(0x0004);
    /// sh/mh: fallback to another server when the chosen one is unavailable.
    pub const SCHED1: ServiceFlags = ServiceFlags(0x0008);
    /// sh/mh: hash the source port too.
    pub const SCHED2: ServiceFlags = ServiceFlags(0x0010);
    pub const SCHED3: ServiceFlags = ServiceFlags(0x0020);
    pub const MH_FALLBACK: ServiceFlags = ServiceFlags::SCHED1;
    pub const MH_PORT: ServiceFlags = ServiceFlags::SCHED2;
    pub const SH_FALLBACK: ServiceFlags = ServiceFlags::SCHED1;
    pub const SH_PORT: ServiceFlags = ServiceFlags::SCHED2;
    /// Bits the kernel manages itself (IP_VS_SVC_F_HASHED).
    pub const KERNEL_INTERNAL: u32 = 0x0002;

    pub const fn empty() -> Self {
        ServiceFlags(0)
    }
    pub fn bits(self) -> u32 {
        self.0
    }
    pub fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: ServiceFlags) {
        self.0 |= other.0
    }
    pub fn remove(&mut self, other: ServiceFlags) {
        self.0 &= !other.0
    }
    /// The SCHED1..3 bits as ipvsadm names them for `sched`, in order.
    pub fn sched_flag_names(self, sched: &Scheduler) -> Vec<&'static str> {
        let names = sched.flag_names();
        [
            ServiceFlags::SCHED1,
            ServiceFlags::SCHED2,
            ServiceFlags::SCHED3,
        ]
        .iter()
        .zip(names)
        .filter(|(bit, _)| self.contains(**bit))
        .map(|(_, n)| n)
        .collect()
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

/// Persistence granularity (`-M`): an IPv4 mask, or an IPv6 prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

impl Netmask {
    /// /32 or /128: one persistence template per client address.
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::Inet => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::Inet6 => Netmask::V6(128),
        }
    }
    pub fn is_host(&self) -> bool {
        matches!(self, Netmask::V4(m) if *m == Ipv4Addr::BROADCAST)
            || matches!(self, Netmask::V6(128))
    }
    pub fn family(&self) -> Family {
        match self {
            Netmask::V4(_) => Family::Inet,
            Netmask::V6(_) => Family::Inet6,
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6(p) => write!(f, "{p}"),
        }
    }
}

/// ipvsadm's default persistence timeout for a bare `-p`.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;
/// ipvsadm's upper bound for `-p` (31 days).
pub const MAX_PERSISTENCE_TIMEOUT: u32 = 86400 * 31;
/// The kernel keeps weights as `int`.
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: Scheduler,
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `ServiceFlags::PERSISTENT`).
    pub timeout: u32,
    /// Persistence granularity (meaningful with `ServiceFlags::PERSISTENT`).
    pub netmask: Netmask,
    /// Persistence engine (`--pe sip`).
    pub pe_name: Option<String>,
}

impl Service {
    /// A non-persistent service with no flags.
    pub fn new(key: ServiceKey, scheduler: impl Into<Scheduler>) -> Self {
        Service {
            netmask: Netmask::host(key.family()),
            key,
            scheduler: scheduler.into(),
            flags: ServiceFlags::empty(),
            timeout: 0,
            pe_name: None,
        }
    }
    /// `-p TIMEOUT`.
    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags.insert(ServiceFlags::PERSISTENT);
        self.timeout = timeout;
        self
    }
    /// `-M MASK`.
    pub fn netmask(mut self, netmask: Netmask) -> Self {
        self.netmask = netmask;
        self
    }
    pub fn flags(mut self, flags: ServiceFlags) -> Self {
        self.flags.insert(flags);
        self
    }
    pub fn pe(mut self, name: &str) -> Self {
        self.pe_name = Some(name.to_string());
        self
    }
    pub fn is_persistent(&self) -> bool {
        self.flags.contains(ServiceFlags::PERSISTENT)
    }

    /// Checks lbctl applies before sending NEW/SET_SERVICE.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !self.scheduler.is_known() {
            return Err(ValidationError::UnknownScheduler(
                self.scheduler.name().to_string(),
            ));
        }
        let fam = self.key.family();
        if self.netmask.family() != fam {
            return Err(ValidationError::NetmaskFamily {
                netmask: self.netmask,
                family: fam,
            });
        }
        if let Netmask::V6(p) = self.netmask {
            if p == 0 || p > 128 {
                return Err(ValidationError::NetmaskPrefix(p));
            }
        }
        if self.is_persistent() && (self.timeout == 0 || self.timeout > MAX_PERSISTENCE_TIMEOUT) {
            return Err(ValidationError::PersistenceTimeout(self.timeout));
        }
        if self.flags.contains(ServiceFlags::ONE_PACKET)
            && self.key.protocol() != Some(Protocol::Udp)
        {
            return Err(ValidationError::OnePacketNotUdp);
        }
        if let Some(pe) = &self.pe_name {
            if pe.is_empty() || pe.len() >= 16 {
                return Err(ValidationError::PeName(pe.clone()));
            }
        }
        let unknown = self.flags.0
            & !(ServiceFlags::PERSISTENT.0
                | ServiceFlags::ONE_PACKET.0
                | ServiceFlags::SCHED1.0
                | ServiceFlags::SCHED2.0
                | ServiceFlags::SCHED3.0);
        if unknown != 0 {
            return Err(ValidationError::UnknownFlags(unknown));
        }
        Ok(())
    }
}

/// Forwarding method of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Forward {
    /// Direct routing (`-g`, "Route", IP_VS_CONN_F_DROUTE): DSR.
    Dr,
    /// IP-in-IP / GUE / GRE tunnel (`-i`, "Tunnel").
    Tun,
    /// Masquerading (`-m`, "Masq").
    Nat,
    /// Local node ("Local"); ipvsadm saves it as `-g`.
    Local,
}

impl Forward {
    pub fn list_name(self) -> &'static str {
        match self {
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::Nat => "Masq",
            Forward::Local => "Local",
        }
    }
    pub fn option(self) -> &'static str {
        match self {
            Forward::Dr | Forward::Local => "-g",
            Forward::Tun => "-i",
            Forward::Nat => "-m",
        }
    }
    /// DR and TUN do not rewrite the destination port.
    pub fn keeps_port(self) -> bool {
        matches!(self, Forward::Dr | Forward::Tun)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Tunnel encapsulation of a TUN real server (ignored for other methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// GUE destination port.
    pub port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*` bits: 1 = checksum, 2 = remote checksum offload.
    pub flags: u16,
}

impl Tunnel {
    pub const CSUM: u16 = 1;
    pub const REMCSUM: u16 = 2;
}

/// A real server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: Forward,
    /// 0 = quiescent (no new connections); default 1.
    pub weight: u32,
    /// Upper connection threshold, 0 = none.
    pub u_thresh: u32,
    /// Lower connection threshold, 0 = none.
    pub l_thresh: u32,
    pub tunnel: Tunnel,
}

impl Destination {
    pub fn new(addr: IpAddr, port: u16, fwd: Forward) -> Self {
        Destination {
            addr,
            port,
            fwd,
            weight: 1,
            u_thresh: 0,
            l_thresh: 0,
            tunnel: Tunnel::default(),
        }
    }
    /// A DR (DSR) real server with weight 1.
    pub fn dr(sa: SocketAddr) -> Self {
        Destination::new(sa.ip(), sa.port(), Forward::Dr)
    }
    pub fn nat(sa: SocketAddr) -> Self {
        Destination::new(sa.ip(), sa.port(), Forward::Nat)
    }
    pub fn tun(sa: SocketAddr) -> Self {
        Destination::new(sa.ip(), sa.port(), Forward::Tun)
    }
    pub fn weight(mut self, w: u32) -> Self {
        self.weight = w;
        self
    }
    pub fn thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.u_thresh = upper;
        self.l_thresh = lower;
        self
    }
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    /// Checks lbctl applies before sending NEW/SET_DEST for `svc`.
    pub fn validate_for(&self, svc: &ServiceKey) -> Result<(), ValidationError> {
        if self.weight > MAX_WEIGHT {
            return Err(ValidationError::WeightOutOfRange(self.weight));
        }
        if self.l_thresh > self.u_thresh {
            return Err(ValidationError::ThresholdOrder {
                upper: self.u_thresh,
                lower: self.l_thresh,
            });
        }
        if self.family() != svc.family() && self.fwd != Forward::Tun {
            return Err(ValidationError::FamilyMismatch {
                service: svc.family(),
                dest: self.family(),
                fwd: self.fwd,
            });
        }
        if let Some(sport) = svc.port() {
            if self.fwd.keeps_port() && self.port != sport {
                return Err(ValidationError::PortMismatch {
                    fwd: self.fwd,
                    service_port: sport,
                    dest_port: self.port,
                });
            }
        }
        if self.addr.is_unspecified() || self.addr.is_multicast() {
            return Err(ValidationError::NotUnicast(self.addr));
        }
        if let IpAddr::V4(a) = self.addr {
            if a.is_broadcast() {
                return Err(ValidationError::NotUnicast(self.addr));
            }
        }
        Ok(())
    }
}

/// Traffic counters of a service or real server. In DR mode OutPkts/OutBytes
/// stay 0 (replies bypass the director); the kernel folds per-CPU counters
/// about every 2 s, so fresh traffic shows up late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// A real server as listed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestEntry {
    pub dest: Destination,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Stats,
}

/// A service as listed by the kernel, with its real servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub service: Service,
    pub stats: Stats,
    pub dests: Vec<DestEntry>,
}

/// `GET_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// 0x00MMmmpp, e.g. 0x010201 = 1.2.1
    pub version: u32,
    pub conn_tab_size: u32,
}

impl Info {
    pub fn version_string(&self) -> String {
        format!(
            "{}.{}.{}",
            (self.version >> 16) & 0xff,
            (self.version >> 8) & 0xff,
            self.version & 0xff
        )
    }
}

/// `GET/SET_CONFIG` connection timeouts in seconds (0 in a SET = unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Why lbctl refuses a service or destination before any syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    UnknownScheduler(String),
    UnknownFlags(u32),
    /// A scheduler flag name that does not belong to the scheduler (`-b sh-port` with mh).
    FlagNotForScheduler {
        flag: String,
        scheduler: String,
    },
    NetmaskFamily {
        netmask: Netmask,
        family: Family,
    },
    NetmaskPrefix(u8),
    PersistenceTimeout(u32),
    OnePacketNotUdp,
    PeName(String),
    WeightOutOfRange(u32),
    ThresholdOrder {
        upper: u32,
        lower: u32,
    },
    FamilyMismatch {
        service: Family,
        dest: Family,
        fwd: Forward,
    },
    PortMismatch {
        fwd: Forward,
        service_port: u16,
        dest_port: u16,
    },
    NotUnicast(IpAddr),
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ValidationError::*;
        match self {
            UnknownScheduler(s) => write!(
                f,
                "unknown scheduler '{s}' (known: {})",
                Scheduler::KNOWN.iter().map(|s| s.name()).collect::<Vec<_>>().join(" ")
            ),
            UnknownFlags(bits) => write!(f, "unknown service flag bits {bits:#x}"),
            FlagNotForScheduler { flag, scheduler } => {
                write!(f, "scheduler flag '{flag}' does not apply to scheduler '{scheduler}'")
            }
            NetmaskFamily { netmask, family } => {
                write!(f, "netmask {netmask} does not fit an {family} service")
            }
            NetmaskPrefix(p) => write!(f, "IPv6 persistence prefix length {p} is not in 1..=128"),
            PersistenceTimeout(t) => write!(
                f,
                "persistence timeout {t} s is not in 1..={MAX_PERSISTENCE_TIMEOUT} (31 days)"
            ),
            OnePacketNotUdp => write!(f, "one-packet scheduling (-o) is only for UDP services"),
            PeName(p) => write!(f, "invalid persistence engine name '{p}'"),
            WeightOutOfRange(w) => write!(f, "weight {w} is not in 0..={MAX_WEIGHT}"),
            ThresholdOrder { upper, lower } => write!(
                f,
                "lower threshold {lower} is above the upper threshold {upper} (the kernel answers ERANGE)"
            ),
            FamilyMismatch { service, dest, fwd } => write!(
                f,
                "an {dest} real server behind an {service} service needs tunnel forwarding (-i), not {}",
                fwd.list_name()
            ),
            PortMismatch { fwd, service_port, dest_port } => write!(
                f,
                "real-server port {dest_port} differs from the service port {service_port}: {} forwarding \
                 cannot rewrite ports (ipvsadm would silently use {service_port}); use port {service_port} \
                 or NAT (-m)",
                if *fwd == Forward::Dr { "DR" } else { "TUN" }
            ),
            NotUnicast(a) => write!(f, "real-server address {a} is not a unicast address"),
        }
    }
}

impl std::error::Error for ValidationError {}
