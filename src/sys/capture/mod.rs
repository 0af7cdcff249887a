//! Packet capture without libpcap: one `AF_PACKET` socket, hand-written decoding, pcap and
//! pcapng files (through the `pcap-file` crate), tcpdump's text output and filter expressions.
//!
//! Why it looks like this:
//! - A DSR diagnosis needs what `tcpdump -e -n` shows: the MACs (who answered ARP for the VIP,
//!   which MAC a reply leaves with), the direction, and the IP/TCP header. A raw
//!   `AF_PACKET`/`SOCK_RAW` socket gives all of it, works inside a network namespace and needs
//!   only CAP_NET_RAW (PLATFORM.md §6). The decoding needed is small, so it is written out here
//!   and unit-tested on hand-built frames; the file formats (pcap and pcapng, both byte
//!   orders, nanosecond files, per-interface link types and timestamp resolutions) come from
//!   the `pcap-file` crate, which hands out borrowed records (no copy per packet).
//! - Records keep their link type as libpcap would write it: a named Ethernet interface (and
//!   `lo`) gives Ethernet frames, a TUN/WireGuard interface raw IP, and `-i any` Linux cooked v2
//!   (SLL2) records built from the socket address, as tcpdump does. Text output is tcpdump's
//!   `-e -n` (see `tcpdump.rs`): Ethernet shows MACs and no direction (it has none), cooked
//!   records show interface, direction and the link-layer source.
//! - The direction comes from `sll_pkttype` (HOST → In, OUTGOING → Out, …). Taps run *before*
//!   the netdev/tc ingress hook, so on a balancer each request is seen twice: as received (In)
//!   and as rewritten and sent (Out). Callers tell them apart by `dir`.
//! - The socket is created with protocol 0 and only then bound to ETH_P_ALL on one ifindex (0 for
//!   any), so nothing from other interfaces is queued between socket() and bind().
//! - NICs and veth move 802.1Q tags into skb metadata, so the frame read from the socket has no
//!   tag. PACKET_AUXDATA hands the tag back and it is re-inserted, so `frame` and the pcap hold
//!   what was on the wire (as libpcap does).
//! - Waiting is poll() with the remaining time, in slices of at most 200 ms, so a duration and a
//!   stop flag (Ctrl-C) are honoured even when no traffic arrives.
//! - Host filtering happens in user space. Captures are short and targeted; a kernel BPF filter
//!   would be an optimisation, not a change in behaviour.
//! - `lo` (ARPHRD_LOOPBACK) carries a zeroed Ethernet header; every packet on it is seen twice
//!   (OUTGOING, then HOST) and, as in libpcap, the outgoing copy is dropped. Links without a
//!   link-layer header (TUN, WireGuard, IP tunnels) are captured as raw IP.
//! - Everything runs in the network namespace of the calling thread; `--netns` has already moved
//!   the process there.

mod decode;
mod display;
pub mod filter;
mod pcap;
mod socket;
pub mod tcpdump;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::sys::mac::{fmt_mac, Mac};
use crate::usage;

use self::{decode::*, display::*};

pub use self::decode::{decode, decode_record, insert_vlan_tag, Decoded, Meta};
pub use self::display::{rfc3339, tcp_flags};
pub use self::filter::Expr;
pub use self::pcap::{pcap_reader, read_pcap, write_pcap, FileFormat, PcapReader, PcapWriter};
pub use self::socket::{capture, capture_until, Capture};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag, still seen in the wild.
const ETH_P_QINQ1: u16 = 0x9100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_URG: u8 = 0x20;
pub const TCP_ECE: u8 = 0x40;
pub const TCP_CWR: u8 = 0x80;

/// Largest frame kept (also the pcap snaplen). Large enough for GSO/GRO super-frames on veth.
pub const SNAPLEN: usize = 262_144;
/// Longest single wait, so stop flags are checked often enough for Ctrl-C to feel immediate.
const SLICE: Duration = Duration::from_millis(200);

pub const LINKTYPE_ETHERNET: u32 = 1;
/// Raw IPv4/IPv6, no link-layer header (TUN, WireGuard).
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_IPV6: u32 = 229;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
#[cfg(test)]
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// Which way a frame went, from `sll_pkttype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// PACKET_HOST: addressed to this host.
    In,
    /// PACKET_OUTGOING: sent by this host.
    Out,
    /// PACKET_BROADCAST: received, to ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// PACKET_MULTICAST: received, to a multicast MAC.
    Multicast,
    /// PACKET_OTHERHOST: received, addressed to another MAC (seen in promiscuous mode).
    OtherHost,
}

impl Direction {
    /// Map `sll_pkttype`. PACKET_LOOPBACK and unknown values count as received.
    pub fn from_pkttype(t: u8) -> Direction {
        match t {
            libc::PACKET_OUTGOING => Direction::Out,
            libc::PACKET_BROADCAST => Direction::Broadcast,
            libc::PACKET_MULTICAST => Direction::Multicast,
            libc::PACKET_OTHERHOST => Direction::OtherHost,
            _ => Direction::In,
        }
    }

    /// Stable lower-case name for JSON: `in`, `out`, `broadcast`, `multicast`, `otherhost`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::Broadcast => "broadcast",
            Direction::Multicast => "multicast",
            Direction::OtherHost => "otherhost",
        }
    }

    /// Anything but Out was received by this host's interface.
    pub fn is_received(self) -> bool {
        self != Direction::Out
    }
}

impl fmt::Display for Direction {
    /// tcpdump's `-i any` notation: `In`, `Out`, `B`, `M`, `P`. Honours width (`{:<3}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Direction::In => "In",
            Direction::Out => "Out",
            Direction::Broadcast => "B",
            Direction::Multicast => "M",
            Direction::OtherHost => "P",
        })
    }
}

/// One captured (or read) frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub ts: SystemTime,
    /// The interface index (from the socket, or a cooked record); 0 when unknown.
    pub ifindex: u32,
    /// The interface name; `pcap` when a file does not say.
    pub iface: String,
    /// `None` when the record does not say (a plain Ethernet or raw-IP file).
    pub dir: Option<Direction>,
    /// Link-layer source; all zero when unknown (raw IP).
    pub src_mac: Mac,
    /// Link-layer destination; all zero when unknown (cooked records from a file, raw IP).
    pub dst_mac: Mac,
    /// VLAN id of the outer 802.1Q/802.1ad tag, if any.
    pub vlan: Option<u16>,
    /// LINKTYPE_* of `frame`.
    pub linktype: u32,
    /// The record as it goes into a pcap of `linktype`: an Ethernet frame with the VLAN tag
    /// re-inserted if the NIC had stripped it, a cooked (SLL2) record, or a raw IP packet.
    pub frame: Vec<u8>,
    pub l3: L3,
}

/// What an Ethernet frame carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L3 {
    /// Ethernet/IPv4 ARP. `op` is 1 for a request, 2 for a reply.
    Arp {
        op: u16,
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
        target_mac: Mac,
        target_ip: Ipv4Addr,
    },
    /// IPv4 or IPv6; `ttl` is the hop limit for IPv6.
    Ip {
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        l4: L4,
    },
    /// Anything else (or a header too short to decode).
    Other { ethertype: u16 },
}

/// The transport header of an IP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// `payload_len` comes from the IP length fields, so it is right even for a truncated frame.
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
        payload_len: usize,
    },
    /// `len` is the payload length (the UDP length field minus its 8-byte header), as tcpdump
    /// prints it.
    Udp {
        sport: u16,
        dport: u16,
        len: usize,
    },
    Icmp {
        typ: u8,
        code: u8,
    },
    Icmp6 {
        typ: u8,
        code: u8,
    },
    /// Another protocol, a non-first fragment, or a header too short to decode.
    Other {
        proto: u8,
    },
}

/// Which packets to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep a packet when its IP source or destination, or its ARP sender or target, is any of
    /// these. Empty keeps everything.
    pub hosts: Vec<IpAddr>,
}

impl Filter {
    pub fn matches(&self, l3: &L3) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| l3.involves(*h))
    }
}

/// What to capture and for how long.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureOpts {
    /// An interface name; `None` (or `any`) for every interface of the namespace.
    pub iface: Option<String>,
    pub filter: Filter,
    /// Stop after this many matching packets.
    pub max_packets: Option<u64>,
    /// Stop after this long (even when nothing arrives).
    pub duration: Option<Duration>,
}

impl L3 {
    /// Is `ip` the IP source or destination, or the ARP sender or target?
    pub fn involves(&self, ip: IpAddr) -> bool {
        match self {
            L3::Arp {
                sender_ip,
                target_ip,
                ..
            } => ip == IpAddr::V4(*sender_ip) || ip == IpAddr::V4(*target_ip),
            L3::Ip { src, dst, .. } => ip == *src || ip == *dst,
            L3::Other { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests;
