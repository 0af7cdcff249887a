//! IPVS generic-netlink messages (include/uapi/linux/ip_vs.h,
//! net/netfilter/ipvs/ip_vs_ctl.c) on top of `netlink-packet-generic`.
//!
//! These are *wire* types: one variant per attribute, values exactly as they
//! travel (addresses as the 16-byte `nf_inet_addr`, ports as host-order `u16`
//! that are written big-endian, the IPv4 netmask as the kernel's raw `u32`).
//! The public, validated types live in [`super::model`]; [`super::convert`]
//! maps between the two.
//!
//! Encoding rules the kernel relies on:
//! * nests we send carry `NLA_F_NESTED`; the kernel's replies do not
//!   (`nla_nest_start_noflag`), and the flag is masked when parsing;
//! * top-level attribute numbers depend on the command (`SET_INFO` reuses 1/2
//!   for VERSION/CONN_TAB_SIZE), so parsing is parametrized by the genl header;
//! * `SVC_ATTR_PORT`, `DEST_ATTR_PORT` and `DEST_ATTR_TUN_PORT` are network
//!   byte order, everything else host order;
//! * inside `STATS` the byte counters are u64 and the rest u32; inside
//!   `STATS64` everything is u64.

use netlink_packet_core::{
    emit_u16, emit_u16_be, emit_u32, emit_u64, parse_u16, parse_u16_be, parse_u32, parse_u64,
    parse_u8, DecodeError, DefaultNla, Emitable, ErrorContext, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized, NLA_F_NESTED,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::sys::abi;

/// Generic-netlink family name registered by ip_vs.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const IPVS_GENL_VERSION: u8 = 1;

// --- commands (IPVS_CMD_*) ---------------------------------------------------
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_NEW_DAEMON: u8 = 9;
pub const IPVS_CMD_DEL_DAEMON: u8 = 10;
pub const IPVS_CMD_GET_DAEMON: u8 = 11;
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;
pub const IPVS_CMD_ZERO: u8 = 16;
pub const IPVS_CMD_FLUSH: u8 = 17;

// --- top-level attributes (IPVS_CMD_ATTR_*) -----------------------------------
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_CMD_ATTR_DAEMON: u16 = 3;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// --- info attributes (only in SET_INFO / GET_INFO) ------------------------------
pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

// --- service attributes (IPVS_SVC_ATTR_*) ---------------------------------------
pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

// --- destination attributes (IPVS_DEST_ATTR_*) -----------------------------------
pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

// --- statistics attributes (IPVS_STATS_ATTR_*) -------------------------------------
pub const IPVS_STATS_ATTR_CONNS: u16 = 1;
pub const IPVS_STATS_ATTR_INPKTS: u16 = 2;
pub const IPVS_STATS_ATTR_OUTPKTS: u16 = 3;
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;
pub const IPVS_STATS_ATTR_CPS: u16 = 6;
pub const IPVS_STATS_ATTR_INPPS: u16 = 7;
pub const IPVS_STATS_ATTR_OUTPPS: u16 = 8;
pub const IPVS_STATS_ATTR_INBPS: u16 = 9;
pub const IPVS_STATS_ATTR_OUTBPS: u16 = 10;
pub const IPVS_STATS_ATTR_PAD: u16 = 11;

// --- values ---------------------------------------------------------------------------
/// `IP_VS_SVC_F_*`
pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002;
pub const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004;
pub const IP_VS_SVC_F_SCHED1: u32 = 0x0008;
pub const IP_VS_SVC_F_SCHED2: u32 = 0x0010;
pub const IP_VS_SVC_F_SCHED3: u32 = 0x0020;
/// Connection flags & `IP_VS_CONN_F_FWD_MASK` = forwarding method.
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;
pub const IP_VS_CONN_F_BYPASS: u32 = 0x0004;
/// `IP_VS_CONN_F_TUNNEL_TYPE_*`
pub const IP_VS_CONN_F_TUNNEL_TYPE_IPIP: u8 = 0;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GUE: u8 = 1;
pub const IP_VS_CONN_F_TUNNEL_TYPE_GRE: u8 = 2;
/// `IP_VS_TUNNEL_ENCAP_FLAG_*` (a bit set; 0 = no checksum)
pub const IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM: u16 = 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_CSUM: u16 = 1 << 0;
pub const IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM: u16 = 1 << 1;
/// `IP_VS_SCHEDNAME_MAXLEN` / `IP_VS_PENAME_MAXLEN` (including the NUL).
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;
pub const IP_VS_PENAME_MAXLEN: usize = 16;

pub const AF_INET: u16 = abi::AF_INET as u16;
pub const AF_INET6: u16 = abi::AF_INET6 as u16;
pub const IPPROTO_TCP: u16 = abi::IPPROTO_TCP as u16;
pub const IPPROTO_UDP: u16 = abi::IPPROTO_UDP as u16;
pub const IPPROTO_SCTP: u16 = abi::IPPROTO_SCTP as u16;

// ======================================================================================
// statistics
// ======================================================================================

/// One counter inside `STATS`/`STATS64`. The width on the wire is decided by
/// the enclosing nest ([`StatsNest`]), so the value is always held as u64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsAttr {
    Conns(u64),
    InPkts(u64),
    OutPkts(u64),
    InBytes(u64),
    OutBytes(u64),
    Cps(u64),
    InPps(u64),
    OutPps(u64),
    InBps(u64),
    OutBps(u64),
    Other(DefaultNla),
}

impl StatsAttr {
    fn kind_value(&self) -> Option<(u16, u64)> {
        use StatsAttr::*;
        Some(match *self {
            Conns(v) => (IPVS_STATS_ATTR_CONNS, v),
            InPkts(v) => (IPVS_STATS_ATTR_INPKTS, v),
            OutPkts(v) => (IPVS_STATS_ATTR_OUTPKTS, v),
            InBytes(v) => (IPVS_STATS_ATTR_INBYTES, v),
            OutBytes(v) => (IPVS_STATS_ATTR_OUTBYTES, v),
            Cps(v) => (IPVS_STATS_ATTR_CPS, v),
            InPps(v) => (IPVS_STATS_ATTR_INPPS, v),
            OutPps(v) => (IPVS_STATS_ATTR_OUTPPS, v),
            InBps(v) => (IPVS_STATS_ATTR_INBPS, v),
            OutBps(v) => (IPVS_STATS_ATTR_OUTBPS, v),
            Other(_) => return None,
        })
    }
}

/// A `STATS` (`wide == false`) or `STATS64` (`wide == true`) nest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsNest {
    pub kind: u16,
    pub wide: bool,
    pub attrs: Vec<StatsAttr>,
}

/// The fixed-width view used while emitting/parsing one counter.
struct StatsValue<'a> {
    wide: bool,
    attr: &'a StatsAttr,
}

fn stats_is_u64(kind: u16, wide: bool) -> bool {
    wide || kind == IPVS_STATS_ATTR_INBYTES || kind == IPVS_STATS_ATTR_OUTBYTES
}

impl Nla for StatsValue<'_> {
    fn value_len(&self) -> usize {
        match (self.attr, self.attr.kind_value()) {
            (StatsAttr::Other(nla), _) => nla.value_len(),
            (_, Some((kind, _))) if stats_is_u64(kind, self.wide) => 8,
            _ => 4,
        }
    }
    fn kind(&self) -> u16 {
        match (self.attr, self.attr.kind_value()) {
            (StatsAttr::Other(nla), _) => nla.kind(),
            (_, Some((kind, _))) => kind,
            _ => unreachable!(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match (self.attr, self.attr.kind_value()) {
            (StatsAttr::Other(nla), _) => nla.emit_value(buf),
            (_, Some((kind, v))) if stats_is_u64(kind, self.wide) => emit_u64(buf, v).unwrap(),
            (_, Some((_, v))) => emit_u32(buf, v as u32).unwrap(),
            _ => unreachable!(),
        }
    }
}

impl Nla for StatsNest {
    fn value_len(&self) -> usize {
        self.attrs
            .iter()
            .map(|a| {
                StatsValue {
                    wide: self.wide,
                    attr: a,
                }
                .buffer_len()
            })
            .sum()
    }
    fn kind(&self) -> u16 {
        self.kind | NLA_F_NESTED
    }
    fn emit_value(&self, buf: &mut [u8]) {
        let mut off = 0;
        for a in &self.attrs {
            let v = StatsValue {
                wide: self.wide,
                attr: a,
            };
            let len = v.buffer_len();
            v.emit(&mut buf[off..off + len]);
            off += len;
        }
    }
}

fn parse_counter(payload: &[u8]) -> Result<u64, DecodeError> {
    match payload.len() {
        4 => Ok(parse_u32(payload)? as u64),
        8 => parse_u64(payload),
        n => Err(DecodeError::from(format!("stats counter of {n} bytes"))),
    }
}

impl StatsNest {
    fn parse(kind: u16, wide: bool, payload: &[u8]) -> Result<Self, DecodeError> {
        let mut attrs = Vec::new();
        for nla in NlasIterator::new(payload) {
            let nla = nla?;
            let v = nla.value();
            // the width is checked loosely (4 or 8) so that a kernel widening
            // a counter does not break listing
            let a = match nla.kind() {
                IPVS_STATS_ATTR_CONNS => StatsAttr::Conns(parse_counter(v)?),
                IPVS_STATS_ATTR_INPKTS => StatsAttr::InPkts(parse_counter(v)?),
                IPVS_STATS_ATTR_OUTPKTS => StatsAttr::OutPkts(parse_counter(v)?),
                IPVS_STATS_ATTR_INBYTES => StatsAttr::InBytes(parse_counter(v)?),
                IPVS_STATS_ATTR_OUTBYTES => StatsAttr::OutBytes(parse_counter(v)?),
                IPVS_STATS_ATTR_CPS => StatsAttr::Cps(parse_counter(v)?),
                IPVS_STATS_ATTR_INPPS => StatsAttr::InPps(parse_counter(v)?),
                IPVS_STATS_ATTR_OUTPPS => StatsAttr::OutPps(parse_counter(v)?),
                IPVS_STATS_ATTR_INBPS => StatsAttr::InBps(parse_counter(v)?),
                IPVS_STATS_ATTR_OUTBPS => StatsAttr::OutBps(parse_counter(v)?),
                _ => StatsAttr::Other(DefaultNla::parse(&nla)?),
            };
            attrs.push(a);
        }
        Ok(StatsNest { kind, wide, attrs })
    }
}

// ======================================================================================
// service
// ======================================================================================

/// Attributes nested in `IPVS_CMD_ATTR_SERVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SvcAttr {
    Af(u16),
    Protocol(u16),
    /// `union nf_inet_addr`: IPv4 in the first 4 bytes.
    Addr([u8; 16]),
    /// Host-order value; big-endian on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    /// `struct ip_vs_flags { __u32 flags; __u32 mask; }`
    Flags {
        flags: u32,
        mask: u32,
    },
    Timeout(u32),
    /// Raw `nla_get_u32` value: for IPv4 the mask's octets in network order
    /// (`u32::from_ne_bytes(mask.octets())`), for IPv6 the prefix length.
    Netmask(u32),
    Stats(StatsNest),
    PeName(String),
    Stats64(StatsNest),
    Other(DefaultNla),
}

fn nul_str_len(s: &str) -> usize {
    s.len() + 1
}

fn emit_nul_str(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        use SvcAttr::*;
        match self {
            Af(_) | Protocol(_) | Port(_) => 2,
            Addr(_) => 16,
            Fwmark(_) | Timeout(_) | Netmask(_) => 4,
            SchedName(s) | PeName(s) => nul_str_len(s),
            Flags { .. } => 8,
            Stats(n) | Stats64(n) => n.value_len(),
            Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use SvcAttr::*;
        match self {
            Af(_) => IPVS_SVC_ATTR_AF,
            Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            Addr(_) => IPVS_SVC_ATTR_ADDR,
            Port(_) => IPVS_SVC_ATTR_PORT,
            Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            Flags { .. } => IPVS_SVC_ATTR_FLAGS,
            Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            Stats(n) | Stats64(n) => n.kind(),
            Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use SvcAttr::*;
        match self {
            Af(v) | Protocol(v) => emit_u16(buf, *v).unwrap(),
            Port(v) => emit_u16_be(buf, *v).unwrap(),
            Addr(a) => buf[..16].copy_from_slice(a),
            Fwmark(v) | Timeout(v) | Netmask(v) => emit_u32(buf, *v).unwrap(),
            SchedName(s) | PeName(s) => emit_nul_str(buf, s),
            Flags { flags, mask } => {
                emit_u32(&mut buf[0..4], *flags).unwrap();
                emit_u32(&mut buf[4..8], *mask).unwrap();
            }
            Stats(n) | Stats64(n) => n.emit_value(buf),
            Other(n) => n.emit_value(buf),
        }
    }
}

/// A NUL-terminated string attribute: everything up to the first NUL.
fn parse_string(v: &[u8]) -> Result<String, DecodeError> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8(v[..end].to_vec()).map_err(DecodeError::from)
}

fn parse_addr16(v: &[u8]) -> Result<[u8; 16], DecodeError> {
    // the kernel always sends sizeof(union nf_inet_addr) = 16; accept a bare
    // 4-byte IPv4 address as well
    let mut a = [0u8; 16];
    match v.len() {
        16 => a.copy_from_slice(v),
        4 => a[..4].copy_from_slice(v),
        n => return Err(DecodeError::from(format!("address attribute of {n} bytes"))),
    }
    Ok(a)
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for SvcAttr {
    fn parse(nla: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            IPVS_SVC_ATTR_AF => SvcAttr::Af(parse_u16(v).context("IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => {
                SvcAttr::Protocol(parse_u16(v).context("IPVS_SVC_ATTR_PROTOCOL")?)
            }
            IPVS_SVC_ATTR_ADDR => SvcAttr::Addr(parse_addr16(v).context("IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => SvcAttr::Port(parse_u16_be(v).context("IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => SvcAttr::Fwmark(parse_u32(v).context("IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                SvcAttr::SchedName(parse_string(v).context("IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                if v.len() < 8 {
                    return Err(DecodeError::from(
                        "IPVS_SVC_ATTR_FLAGS shorter than 8 bytes",
                    ));
                }
                SvcAttr::Flags {
                    flags: parse_u32(&v[0..4])?,
                    mask: parse_u32(&v[4..8])?,
                }
            }
            IPVS_SVC_ATTR_TIMEOUT => {
                SvcAttr::Timeout(parse_u32(v).context("IPVS_SVC_ATTR_TIMEOUT")?)
            }
            IPVS_SVC_ATTR_NETMASK => {
                SvcAttr::Netmask(parse_u32(v).context("IPVS_SVC_ATTR_NETMASK")?)
            }
            IPVS_SVC_ATTR_PE_NAME => {
                SvcAttr::PeName(parse_string(v).context("IPVS_SVC_ATTR_PE_NAME")?)
            }
            IPVS_SVC_ATTR_STATS => SvcAttr::Stats(StatsNest::parse(IPVS_SVC_ATTR_STATS, false, v)?),
            IPVS_SVC_ATTR_STATS64 => {
                SvcAttr::Stats64(StatsNest::parse(IPVS_SVC_ATTR_STATS64, true, v)?)
            }
            _ => SvcAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

// ======================================================================================
// destination
// ======================================================================================

/// Attributes nested in `IPVS_CMD_ATTR_DEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestAttr {
    Addr([u8; 16]),
    /// Host-order value; big-endian on the wire.
    Port(u16),
    FwdMethod(u32),
    /// The kernel stores it as `int`; a value above `i32::MAX` reads back negative
    /// and is refused with ERANGE.
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(StatsNest),
    AddrFamily(u16),
    Stats64(StatsNest),
    TunType(u8),
    /// Host-order value; big-endian on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        use DestAttr::*;
        match self {
            Addr(_) => 16,
            Port(_) | AddrFamily(_) | TunPort(_) | TunFlags(_) => 2,
            TunType(_) => 1,
            FwdMethod(_) | Weight(_) | UThresh(_) | LThresh(_) | ActiveConns(_) | InactConns(_)
            | PersistConns(_) => 4,
            Stats(n) | Stats64(n) => n.value_len(),
            Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use DestAttr::*;
        match self {
            Addr(_) => IPVS_DEST_ATTR_ADDR,
            Port(_) => IPVS_DEST_ATTR_PORT,
            FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            Stats(n) | Stats64(n) => n.kind(),
            Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use DestAttr::*;
        match self {
            Addr(a) => buf[..16].copy_from_slice(a),
            Port(v) | TunPort(v) => emit_u16_be(buf, *v).unwrap(),
            AddrFamily(v) | TunFlags(v) => emit_u16(buf, *v).unwrap(),
            TunType(v) => buf[0] = *v,
            FwdMethod(v) | Weight(v) | UThresh(v) | LThresh(v) | ActiveConns(v) | InactConns(v)
            | PersistConns(v) => emit_u32(buf, *v).unwrap(),
            Stats(n) | Stats64(n) => n.emit_value(buf),
            Other(n) => n.emit_value(buf),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(nla: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = nla.value();
        Ok(match nla.kind() {
            IPVS_DEST_ATTR_ADDR => DestAttr::Addr(parse_addr16(v).context("IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => DestAttr::Port(parse_u16_be(v).context("IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => DestAttr::FwdMethod(parse_u32(v)?),
            IPVS_DEST_ATTR_WEIGHT => DestAttr::Weight(parse_u32(v)?),
            IPVS_DEST_ATTR_U_THRESH => DestAttr::UThresh(parse_u32(v)?),
            IPVS_DEST_ATTR_L_THRESH => DestAttr::LThresh(parse_u32(v)?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => DestAttr::ActiveConns(parse_u32(v)?),
            IPVS_DEST_ATTR_INACT_CONNS => DestAttr::InactConns(parse_u32(v)?),
            IPVS_DEST_ATTR_PERSIST_CONNS => DestAttr::PersistConns(parse_u32(v)?),
            IPVS_DEST_ATTR_ADDR_FAMILY => DestAttr::AddrFamily(parse_u16(v)?),
            IPVS_DEST_ATTR_TUN_TYPE => DestAttr::TunType(parse_u8(v)?),
            IPVS_DEST_ATTR_TUN_PORT => DestAttr::TunPort(parse_u16_be(v)?),
            IPVS_DEST_ATTR_TUN_FLAGS => DestAttr::TunFlags(parse_u16(v)?),
            IPVS_DEST_ATTR_STATS => {
                DestAttr::Stats(StatsNest::parse(IPVS_DEST_ATTR_STATS, false, v)?)
            }
            IPVS_DEST_ATTR_STATS64 => {
                DestAttr::Stats64(StatsNest::parse(IPVS_DEST_ATTR_STATS64, true, v)?)
            }
            _ => DestAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

// ======================================================================================
// top level
// ======================================================================================

/// A top-level attribute of an IPVS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsAttr {
    Service(Vec<SvcAttr>),
    Dest(Vec<DestAttr>),
    /// Sync-daemon attributes, kept raw (not needed for DR).
    Daemon(Vec<DefaultNla>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION` (SET_INFO / GET_INFO only): 0x00MMmmpp.
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (SET_INFO / GET_INFO only).
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

fn nested_len<N: Nla>(attrs: &[N]) -> usize {
    attrs.iter().map(|a| a.buffer_len()).sum()
}

fn emit_nested<N: Nla>(attrs: &[N], buf: &mut [u8]) {
    let mut off = 0;
    for a in attrs {
        let len = a.buffer_len();
        a.emit(&mut buf[off..off + len]);
        off += len;
    }
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        use IpvsAttr::*;
        match self {
            Service(a) => nested_len(a),
            Dest(a) => nested_len(a),
            Daemon(a) => nested_len(a),
            TimeoutTcp(_) | TimeoutTcpFin(_) | TimeoutUdp(_) | InfoVersion(_)
            | InfoConnTabSize(_) => 4,
            Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        use IpvsAttr::*;
        match self {
            Service(_) => IPVS_CMD_ATTR_SERVICE | NLA_F_NESTED,
            Dest(_) => IPVS_CMD_ATTR_DEST | NLA_F_NESTED,
            Daemon(_) => IPVS_CMD_ATTR_DAEMON | NLA_F_NESTED,
            TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        use IpvsAttr::*;
        match self {
            Service(a) => emit_nested(a, buf),
            Dest(a) => emit_nested(a, buf),
            Daemon(a) => emit_nested(a, buf),
            TimeoutTcp(v) | TimeoutTcpFin(v) | TimeoutUdp(v) | InfoVersion(v)
            | InfoConnTabSize(v) => emit_u32(buf, *v).unwrap(),
            Other(n) => n.emit_value(buf),
        }
    }
}

fn parse_nested<A>(payload: &[u8], what: &str) -> Result<Vec<A>, DecodeError>
where
    A: for<'b> Parseable<NlaBuffer<&'b [u8]>>,
{
    NlasIterator::new(payload)
        .map(|nla| nla.and_then(|nla| A::parse(&nla)))
        .collect::<Result<Vec<_>, _>>()
        .context(format!("failed to parse {what}"))
}

impl IpvsAttr {
    /// Parse one top-level attribute; `cmd` decides what the numbers mean.
    pub fn parse_for_cmd(nla: &NlaBuffer<&[u8]>, cmd: u8) -> Result<Self, DecodeError> {
        let v = nla.value();
        if cmd == IPVS_CMD_SET_INFO || cmd == IPVS_CMD_GET_INFO {
            return Ok(match nla.kind() {
                IPVS_INFO_ATTR_VERSION => IpvsAttr::InfoVersion(parse_u32(v)?),
                IPVS_INFO_ATTR_CONN_TAB_SIZE => IpvsAttr::InfoConnTabSize(parse_u32(v)?),
                _ => IpvsAttr::Other(DefaultNla::parse(nla)?),
            });
        }
        Ok(match nla.kind() {
            IPVS_CMD_ATTR_SERVICE => IpvsAttr::Service(parse_nested(v, "IPVS_CMD_ATTR_SERVICE")?),
            IPVS_CMD_ATTR_DEST => IpvsAttr::Dest(parse_nested(v, "IPVS_CMD_ATTR_DEST")?),
            IPVS_CMD_ATTR_DAEMON => IpvsAttr::Daemon(parse_nested(v, "IPVS_CMD_ATTR_DAEMON")?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => IpvsAttr::TimeoutTcp(parse_u32(v)?),
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => IpvsAttr::TimeoutTcpFin(parse_u32(v)?),
            IPVS_CMD_ATTR_TIMEOUT_UDP => IpvsAttr::TimeoutUdp(parse_u32(v)?),
            _ => IpvsAttr::Other(DefaultNla::parse(nla)?),
        })
    }
}

/// An IPVS command with its attributes: the payload of a `GenlMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: u8,
    pub attrs: Vec<IpvsAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: u8, attrs: Vec<IpvsAttr>) -> Self {
        IpvsMessage { cmd, attrs }
    }

    /// The first `SERVICE` nest, if any.
    pub fn service(&self) -> Option<&[SvcAttr]> {
        self.attrs.iter().find_map(|a| match a {
            IpvsAttr::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    /// The first `DEST` nest, if any.
    pub fn dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| match a {
            IpvsAttr::Dest(d) => Some(d.as_slice()),
            _ => None,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        nested_len(&self.attrs)
    }
    fn emit(&self, buf: &mut [u8]) {
        emit_nested(&self.attrs, buf)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let attrs = NlasIterator::new(buf)
            .map(|nla| nla.and_then(|nla| IpvsAttr::parse_for_cmd(&nla, header.cmd)))
            .collect::<Result<Vec<_>, _>>()
            .context(format!(
                "failed to parse IPVS command {} attributes",
                header.cmd
            ))?;
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
