//! lbctl's own `arp` table over nf_tables netlink ([`super::nfnl`]): built, changed and read
//! without an `nft` process. nft 1.0.6 fetches every element of every set for any listing (at
//! 10,000 VIPs: 190 ms and 20 MiB for `nft -j list table arp lbctl`); here a change is one
//! batch — one transaction, all or nothing — and an observation is six small dumps.
//!
//! ```text
//! table arp lbctl {
//!   set vips { type ipv4_addr; }                    # VIPs this host must not answer ARP for
//!   map vip_rip { type ipv4_addr : ipv4_addr; }     # VIP → real IP used as ARP sender instead
//!   chain input { type filter hook input priority filter; policy accept;
//!     arp operation request arp daddr ip @vips counter drop }
//!   chain output { type filter hook output priority filter; policy accept;
//!     arp saddr ip @vips counter arp saddr ip set arp saddr ip map @vip_rip }
//! }
//! ```
//!
//! The messages are the ones nft sends for that text (the rules' expressions as
//! `nft --debug=netlink` shows them, the sets' user data byte for byte), so `nft list table arp
//! lbctl` prints the same table whichever built it; tests/netns_arptable.rs compares both ways.
//! A change is the steps of [`ArpOps`], exactly the nft commands the plan prints. Only this
//! table is ever read or touched.

use std::net::Ipv4Addr;

use crate::error::Result;
use crate::model::ARP_TABLE;
use crate::plan::{ArpMap, ArpOps};
use crate::sys::nfnl::{
    attr_of, attrs, cstr, Attrs, Batch, DumpOf, Elem, Nfnl, ObjOp, NFPROTO_ARP,
};

const SET: &str = "vips";
const MAP: &str = "vip_rip";

// enum nft_table_attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
// enum nft_chain_attributes
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
// enum nft_set_attributes
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
const NFT_SET_MAP: u32 = 0x8;
/// nft's `TYPE_IPADDR` (datatype of `ipv4_addr`).
const TYPE_IPADDR: u32 = 7;
// enum nft_rule_attributes
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
// expression attributes (nft_payload, nft_cmp, nft_lookup, nft_counter, nft_immediate)
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_PAYLOAD_SREG: u16 = 5;
const NFTA_PAYLOAD_CSUM_TYPE: u16 = 6;
const NFTA_PAYLOAD_CSUM_OFFSET: u16 = 7;
const NFTA_PAYLOAD_CSUM_FLAGS: u16 = 8;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// `NFT_PAYLOAD_NETWORK_HEADER`: offsets count from the ARP header.
const NETWORK_HEADER: u32 = 1;
/// `NFT_REG_1`, the register nft uses for these 4-byte values.
const REG_1: u32 = 1;
/// `NFT_REG_VERDICT`.
const REG_VERDICT: u32 = 0;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
/// `NF_ARP_IN`, `NF_ARP_OUT`.
const HOOK_IN: u32 = 0;
const HOOK_OUT: u32 = 1;
/// The set user data nft 1.0.6 writes (TLVs: key byte order big-endian; for the map also the
/// data byte order and "data is not an interval"); `nft list` reads them back.
const SET_UDATA: &[u8] = &[0, 4, 2, 0, 0, 0];
const MAP_UDATA: &[u8] = &[0, 4, 2, 0, 0, 0, 1, 4, 2, 0, 0, 0, 6, 4, 0, 0, 0, 0];
/// Offsets in the ARP header (Ethernet/IPv4): operation, sender IP, target IP.
const ARP_OP: u32 = 6;
const ARP_SPA: u32 = 14;
const ARP_TPA: u32 = 24;

/// One expression of lbctl's two rules, as nf_tables holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `payload load LEN @ network header + OFFSET => reg DREG`
    Load { offset: u32, len: u32, dreg: u32 },
    /// `cmp eq reg SREG DATA`
    CmpEq { sreg: u32, data: Vec<u8> },
    /// `lookup reg SREG set SET [dreg DREG]`
    Lookup {
        set: String,
        sreg: u32,
        dreg: Option<u32>,
    },
    /// `counter` (its values are not part of the rule's shape).
    Counter,
    /// `immediate reg 0 VERDICT`
    Verdict(u32),
    /// `payload write reg SREG => LEN @ network header + OFFSET` (no checksum)
    Write { sreg: u32, offset: u32, len: u32 },
    /// Anything else: not a rule lbctl writes.
    Other(String),
}

/// The two rules: (chain, expressions).
fn rules() -> [(&'static str, Vec<Expr>); 2] {
    let load = |offset, len| Expr::Load {
        offset,
        len,
        dreg: REG_1,
    };
    let lookup = |set: &str, dreg| Expr::Lookup {
        set: set.into(),
        sreg: REG_1,
        dreg,
    };
    [
        (
            "input",
            vec![
                load(ARP_OP, 2),
                Expr::CmpEq {
                    sreg: REG_1,
                    data: 1u16.to_be_bytes().to_vec(), // ARPOP_REQUEST
                },
                load(ARP_TPA, 4),
                lookup(SET, None),
                Expr::Counter,
                Expr::Verdict(NF_DROP),
            ],
        ),
        (
            "output",
            vec![
                load(ARP_SPA, 4),
                lookup(SET, None),
                Expr::Counter,
                load(ARP_SPA, 4),
                lookup(MAP, Some(REG_1)),
                Expr::Write {
                    sreg: REG_1,
                    offset: ARP_SPA,
                    len: 4,
                },
            ],
        ),
    ]
}

fn expr_attrs(e: &Expr) -> Attrs {
    let (name, data) = match e {
        Expr::Load { offset, len, dreg } => (
            "payload",
            Attrs::new()
                .be32(NFTA_PAYLOAD_DREG, *dreg)
                .be32(NFTA_PAYLOAD_BASE, NETWORK_HEADER)
                .be32(NFTA_PAYLOAD_OFFSET, *offset)
                .be32(NFTA_PAYLOAD_LEN, *len),
        ),
        Expr::CmpEq { sreg, data } => (
            "cmp",
            Attrs::new()
                .be32(NFTA_CMP_SREG, *sreg)
                .be32(NFTA_CMP_OP, 0) // NFT_CMP_EQ
                .nest(NFTA_CMP_DATA, Attrs::new().bytes(NFTA_DATA_VALUE, data)),
        ),
        Expr::Lookup { set, sreg, dreg } => {
            let mut a = Attrs::new()
                .str(NFTA_LOOKUP_SET, set)
                .be32(NFTA_LOOKUP_SREG, *sreg);
            if let Some(d) = dreg {
                a = a.be32(NFTA_LOOKUP_DREG, *d);
            }
            ("lookup", a.be32(NFTA_LOOKUP_FLAGS, 0))
        }
        Expr::Counter => ("counter", Attrs::new()),
        Expr::Verdict(code) => (
            "immediate",
            Attrs::new().be32(NFTA_IMMEDIATE_DREG, REG_VERDICT).nest(
                NFTA_IMMEDIATE_DATA,
                Attrs::new().nest(
                    NFTA_DATA_VERDICT,
                    Attrs::new().be32(NFTA_VERDICT_CODE, *code),
                ),
            ),
        ),
        Expr::Write { sreg, offset, len } => (
            "payload",
            Attrs::new()
                .be32(NFTA_PAYLOAD_SREG, *sreg)
                .be32(NFTA_PAYLOAD_BASE, NETWORK_HEADER)
                .be32(NFTA_PAYLOAD_OFFSET, *offset)
                .be32(NFTA_PAYLOAD_LEN, *len)
                .be32(NFTA_PAYLOAD_CSUM_TYPE, 0)
                .be32(NFTA_PAYLOAD_CSUM_OFFSET, 0)
                .be32(NFTA_PAYLOAD_CSUM_FLAGS, 0),
        ),
        Expr::Other(n) => unreachable!("lbctl never writes a {n} expression"),
    };
    let mut a = Attrs::new().str(NFTA_EXPR_NAME, name);
    if !data.as_bytes().is_empty() {
        a = a.nest(NFTA_EXPR_DATA, data);
    }
    a
}

fn be32(v: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_be_bytes(v?.try_into().ok()?))
}

/// One dumped expression (`NFTA_LIST_ELEM` of `NFTA_RULE_EXPRESSIONS`), and for a counter its
/// packets.
fn decode_expr(el: &[u8]) -> (Expr, Option<u64>) {
    let name = attr_of(el, NFTA_EXPR_NAME).map(cstr).unwrap_or_default();
    let data = attr_of(el, NFTA_EXPR_DATA).unwrap_or_default();
    let get = |ty| be32(attr_of(data, ty));
    let other = || Expr::Other(name.clone());
    let e = match name.as_str() {
        "payload" if get(NFTA_PAYLOAD_BASE) == Some(NETWORK_HEADER) => {
            match (get(NFTA_PAYLOAD_DREG), get(NFTA_PAYLOAD_SREG)) {
                (Some(dreg), None) => Expr::Load {
                    offset: get(NFTA_PAYLOAD_OFFSET).unwrap_or(u32::MAX),
                    len: get(NFTA_PAYLOAD_LEN).unwrap_or(u32::MAX),
                    dreg,
                },
                (None, Some(sreg))
                    if [
                        NFTA_PAYLOAD_CSUM_TYPE,
                        NFTA_PAYLOAD_CSUM_OFFSET,
                        NFTA_PAYLOAD_CSUM_FLAGS,
                    ]
                    .iter()
                    .all(|&t| get(t).unwrap_or(0) == 0) =>
                {
                    Expr::Write {
                        sreg,
                        offset: get(NFTA_PAYLOAD_OFFSET).unwrap_or(u32::MAX),
                        len: get(NFTA_PAYLOAD_LEN).unwrap_or(u32::MAX),
                    }
                }
                _ => other(),
            }
        }
        "cmp" if get(NFTA_CMP_OP) == Some(0) => {
            match (
                get(NFTA_CMP_SREG),
                attr_of(data, NFTA_CMP_DATA).and_then(|d| attr_of(d, NFTA_DATA_VALUE)),
            ) {
                (Some(sreg), Some(v)) => Expr::CmpEq {
                    sreg,
                    data: v.to_vec(),
                },
                _ => other(),
            }
        }
        "lookup" if get(NFTA_LOOKUP_FLAGS).unwrap_or(0) == 0 => {
            match (attr_of(data, NFTA_LOOKUP_SET), get(NFTA_LOOKUP_SREG)) {
                (Some(set), Some(sreg)) => Expr::Lookup {
                    set: cstr(set),
                    sreg,
                    dreg: get(NFTA_LOOKUP_DREG),
                },
                _ => other(),
            }
        }
        "counter" => {
            let packets = attr_of(data, NFTA_COUNTER_PACKETS)
                .and_then(|v| Some(u64::from_be_bytes(v.try_into().ok()?)));
            return (Expr::Counter, packets);
        }
        "immediate" if get(NFTA_IMMEDIATE_DREG) == Some(REG_VERDICT) => {
            let code = attr_of(data, NFTA_IMMEDIATE_DATA)
                .and_then(|d| attr_of(d, NFTA_DATA_VERDICT))
                .and_then(|v| be32(attr_of(v, NFTA_VERDICT_CODE)));
            code.map_or_else(other, Expr::Verdict)
        }
        _ => other(),
    };
    (e, None)
}

fn list(elems: impl IntoIterator<Item = Attrs>) -> Attrs {
    elems
        .into_iter()
        .fold(Attrs::new(), |a, e| a.nest(NFTA_LIST_ELEM, e))
}

fn ip_key(ip: &Ipv4Addr) -> Vec<u8> {
    ip.octets().to_vec()
}

/// Commit `ops` on lbctl's arp table as one transaction.
pub fn apply(ops: &ArpOps) -> Result<()> {
    let t = format!("arp {ARP_TABLE}");
    let table = || Attrs::new().str(NFTA_TABLE_NAME, ARP_TABLE);
    let mut b = Batch::new();
    if ops.delete_table {
        // "add" then "delete": the delete succeeds whether or not the table is still there.
        b.object(
            ObjOp::AddTable,
            NFPROTO_ARP,
            table(),
            format!("add table {t}"),
        );
        b.object(
            ObjOp::DeleteTable,
            NFPROTO_ARP,
            table(),
            format!("delete table {t}"),
        );
    }
    if ops.create_table {
        // Made from nothing: deleted just before, or observed absent. In the second case it
        // goes with NLM_F_EXCL (as `nft create table`): a table someone made since then fails
        // the transaction — nothing is merged into it — where an "add, delete, add" would
        // leave the kernel a deleted table to destroy, and closing the socket waits for that
        // (an RCU grace period, ~9 ms measured, on every first apply).
        let op = if ops.delete_table {
            ObjOp::AddTable
        } else {
            ObjOp::CreateTable
        };
        b.object(op, NFPROTO_ARP, table(), format!("add table {t}"));
        // The kernel requires a transaction-local ID for a new set (used by anonymous sets).
        for (id, (name, udata, map)) in [(SET, SET_UDATA, false), (MAP, MAP_UDATA, true)]
            .into_iter()
            .enumerate()
        {
            let mut a = Attrs::new()
                .str(NFTA_SET_TABLE, ARP_TABLE)
                .str(NFTA_SET_NAME, name);
            if map {
                a = a.be32(NFTA_SET_FLAGS, NFT_SET_MAP);
            }
            a = a
                .be32(NFTA_SET_KEY_TYPE, TYPE_IPADDR)
                .be32(NFTA_SET_KEY_LEN, 4);
            if map {
                a = a
                    .be32(NFTA_SET_DATA_TYPE, TYPE_IPADDR)
                    .be32(NFTA_SET_DATA_LEN, 4);
            }
            a = a
                .be32(NFTA_SET_ID, id as u32 + 1)
                .bytes(NFTA_SET_USERDATA, udata);
            let kind = if map { "map" } else { "set" };
            b.object(
                ObjOp::AddSet,
                NFPROTO_ARP,
                a,
                format!("add {kind} {t} {name}"),
            );
        }
        for ((chain, exprs), hook) in rules().into_iter().zip([HOOK_IN, HOOK_OUT]) {
            let c = Attrs::new()
                .str(NFTA_CHAIN_TABLE, ARP_TABLE)
                .str(NFTA_CHAIN_NAME, chain)
                .nest(
                    NFTA_CHAIN_HOOK,
                    Attrs::new()
                        .be32(NFTA_HOOK_HOOKNUM, hook)
                        .be32(NFTA_HOOK_PRIORITY, 0),
                )
                .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
                .str(NFTA_CHAIN_TYPE, "filter");
            b.object(
                ObjOp::AddChain,
                NFPROTO_ARP,
                c,
                format!("add chain {t} {chain}"),
            );
            let r = Attrs::new()
                .str(NFTA_RULE_TABLE, ARP_TABLE)
                .str(NFTA_RULE_CHAIN, chain)
                .nest(NFTA_RULE_EXPRESSIONS, list(exprs.iter().map(expr_attrs)));
            b.object(
                ObjOp::AddRule,
                NFPROTO_ARP,
                r,
                format!("add rule {t} {chain}"),
            );
        }
    }
    let keys = |ips: &[Ipv4Addr]| -> Vec<Elem> {
        ips.iter()
            .map(|ip| Elem {
                key: ip_key(ip),
                data: None,
            })
            .collect()
    };
    b.delete(NFPROTO_ARP, ARP_TABLE, SET, keys(&ops.del_vips));
    b.delete(NFPROTO_ARP, ARP_TABLE, MAP, keys(&ops.del_pairs));
    b.add(NFPROTO_ARP, ARP_TABLE, SET, keys(&ops.add_vips));
    let pairs = ops
        .add_pairs
        .iter()
        .map(|(v, r)| Elem {
            key: ip_key(v),
            data: Some(ip_key(r)),
        })
        .collect();
    b.add(NFPROTO_ARP, ARP_TABLE, MAP, pairs);
    Nfnl::open()?.commit(&b)
}

/// Observed arp table: `map` is `None` if absent. An existing table whose structure is not
/// exactly what lbctl builds (a rule deleted or edited by hand, a set of another type, the table
/// made dormant) is reported as intact = false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpObserved {
    pub map: Option<ArpMap>,
    pub intact: bool,
    /// Packets dropped by the input rule (ARP requests for VIPs), for status output.
    pub dropped: u64,
    pub rewritten: u64,
}

impl ArpObserved {
    fn absent() -> Self {
        ArpObserved {
            map: None,
            intact: true,
            dropped: 0,
            rewritten: 0,
        }
    }
}

/// A chain as compared: name, hook, priority, policy, type.
type ChainShape = (String, Option<u32>, Option<u32>, Option<u32>, String);

fn ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

/// Read lbctl's arp table (and only it) from the kernel.
pub fn observe() -> Result<ArpObserved> {
    // A kernel without nfnetlink (an IPVS-only balancer host) has no table at all.
    let Some(mut n) = Nfnl::open_if_available()? else {
        return Ok(ArpObserved::absent());
    };
    let ours = |body: &[u8], ty| attr_of(body, ty).map(cstr).as_deref() == Some(ARP_TABLE);
    let tables = n.dump(DumpOf::Tables, NFPROTO_ARP, &Attrs::new())?;
    let Some(table) = tables.iter().find(|t| ours(t, NFTA_TABLE_NAME)) else {
        return Ok(ArpObserved::absent());
    };
    // A dormant table (flags & NFT_TABLE_F_DORMANT) is there but does nothing.
    let mut intact = be32(attr_of(table, NFTA_TABLE_FLAGS)).unwrap_or(0) == 0;

    let sets = n.dump(
        DumpOf::Sets,
        NFPROTO_ARP,
        &Attrs::new().str(NFTA_SET_TABLE, ARP_TABLE),
    )?;
    let set_ok = |name: &str, map: bool| {
        sets.iter().any(|s| {
            let get = |ty| be32(attr_of(s, ty));
            ours(s, NFTA_SET_TABLE)
                && attr_of(s, NFTA_SET_NAME).map(cstr).as_deref() == Some(name)
                && get(NFTA_SET_FLAGS).unwrap_or(0) == if map { NFT_SET_MAP } else { 0 }
                && get(NFTA_SET_KEY_TYPE) == Some(TYPE_IPADDR)
                && get(NFTA_SET_KEY_LEN) == Some(4)
                && (!map
                    || (get(NFTA_SET_DATA_TYPE) == Some(TYPE_IPADDR)
                        && get(NFTA_SET_DATA_LEN) == Some(4)))
        })
    };
    intact &= set_ok(SET, false) && set_ok(MAP, true);

    let mut chains: Vec<ChainShape> = n
        .dump(DumpOf::Chains, NFPROTO_ARP, &Attrs::new())?
        .iter()
        .filter(|c| ours(c, NFTA_CHAIN_TABLE))
        .map(|c| {
            let hook = attr_of(c, NFTA_CHAIN_HOOK).unwrap_or_default();
            (
                attr_of(c, NFTA_CHAIN_NAME).map(cstr).unwrap_or_default(),
                be32(attr_of(hook, NFTA_HOOK_HOOKNUM)),
                be32(attr_of(hook, NFTA_HOOK_PRIORITY)),
                be32(attr_of(c, NFTA_CHAIN_POLICY)),
                attr_of(c, NFTA_CHAIN_TYPE).map(cstr).unwrap_or_default(),
            )
        })
        .collect();
    chains.sort();
    let want_chains: Vec<_> = [("input", HOOK_IN), ("output", HOOK_OUT)]
        .into_iter()
        .map(|(name, hook)| {
            let prio = Some(0);
            (
                name.to_string(),
                Some(hook),
                prio,
                Some(NF_ACCEPT),
                "filter".into(),
            )
        })
        .collect();
    intact &= chains == want_chains;

    let (mut dropped, mut rewritten) = (0, 0);
    let mut seen: Vec<(String, Vec<Expr>)> = Vec::new();
    let rule_dump = n.dump(
        DumpOf::Rules,
        NFPROTO_ARP,
        &Attrs::new().str(NFTA_RULE_TABLE, ARP_TABLE),
    )?;
    for r in rule_dump.iter().filter(|r| ours(r, NFTA_RULE_TABLE)) {
        let chain = attr_of(r, NFTA_RULE_CHAIN).map(cstr).unwrap_or_default();
        let mut exprs = Vec::new();
        let mut packets = 0;
        for (_, el) in attrs(attr_of(r, NFTA_RULE_EXPRESSIONS).unwrap_or_default()) {
            let (e, p) = decode_expr(el);
            packets = p.unwrap_or(packets);
            exprs.push(e);
        }
        match chain.as_str() {
            "input" => dropped = packets,
            "output" => rewritten = packets,
            _ => {}
        }
        seen.push((chain, exprs));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Vec<Expr>)> = rules()
        .into_iter()
        .map(|(c, e)| (c.to_string(), e))
        .collect();
    intact &= seen == want;

    let mut vips: Vec<Ipv4Addr> = n
        .set_elements(NFPROTO_ARP, ARP_TABLE, SET)?
        .unwrap_or_default()
        .iter()
        .filter_map(|e| ipv4(&e.key))
        .collect();
    let map: ArpMap = n
        .set_elements(NFPROTO_ARP, ARP_TABLE, MAP)?
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((ipv4(&e.key)?, ipv4(e.data.as_deref()?)?)))
        .collect();
    vips.sort();
    intact &= vips.iter().eq(map.keys());
    Ok(ArpObserved {
        map: Some(map),
        intact,
        dropped,
        rewritten,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every expression decodes back to itself from what it encodes (the kernel's dump has
    /// the same attributes, without the nested flag — `attrs` masks it).
    #[test]
    fn expressions_round_trip() {
        for (_, exprs) in rules() {
            for e in exprs {
                let a = expr_attrs(&e);
                assert_eq!(decode_expr(a.as_bytes()).0, e);
            }
        }
    }

    #[test]
    fn unknown_or_changed_expressions_are_not_ours() {
        let a = Attrs::new().str(NFTA_EXPR_NAME, "meta");
        assert_eq!(decode_expr(a.as_bytes()).0, Expr::Other("meta".into()));
        // accept instead of drop
        let e = expr_attrs(&Expr::Verdict(NF_ACCEPT));
        assert_ne!(decode_expr(e.as_bytes()).0, Expr::Verdict(NF_DROP));
        // a checksum update is not lbctl's write
        let w = Attrs::new().str(NFTA_EXPR_NAME, "payload").nest(
            NFTA_EXPR_DATA,
            Attrs::new()
                .be32(NFTA_PAYLOAD_SREG, 1)
                .be32(NFTA_PAYLOAD_BASE, NETWORK_HEADER)
                .be32(NFTA_PAYLOAD_OFFSET, ARP_SPA)
                .be32(NFTA_PAYLOAD_LEN, 4)
                .be32(NFTA_PAYLOAD_CSUM_TYPE, 1),
        );
        assert_eq!(decode_expr(w.as_bytes()).0, Expr::Other("payload".into()));
    }
}
