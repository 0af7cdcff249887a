//! nf_tables over netlink (`NETLINK_NETFILTER`), for the few things nft 1.0.6 does slowly on a
//! balancer's table: nft fetches every element of every set for almost any query on a table
//! (a 65537-slot Maglev map: seconds), and parses element lists as text. Here:
//!
//! - [`Batch`]: set element changes of named sets/maps (`nft add element` / `nft delete element`
//!   / `nft flush set`) sent as one nfnetlink batch in one `sendmsg` — one kernel transaction,
//!   all or nothing; every message is acknowledged, errors are matched to their message by
//!   sequence number and reported per message.
//! - [`Nfnl::set_elements`]: one named set's elements (`NFT_MSG_GETSETELEM` dump) as raw
//!   (key, data) bytes — no cache of the other sets, no text.
//! - [`Nfnl::generation`]: the ruleset generation (`NFT_MSG_GETGEN`), which every committed
//!   transaction bumps by one (in this network namespace) and packet-path updates of dynamic sets
//!   do not: equal generations mean nothing in the ruleset changed.
//! - [`Nfnl::counters`]: a table's named counters (`NFT_MSG_GETOBJ` dump), and
//!   [`Nfnl::table_exists`] (`NFT_MSG_GETTABLE`).
//!
//! Keys and data are the kernel's bytes (`NFTA_DATA_VALUE`): the caller encodes them as nft does
//! (e.g. `typeof numgen inc mod M` keys are host-endian 32-bit integers, `ether daddr` data the 6
//! address bytes). Why not a crate: `rustables` (GPL-3.0, lbctl is Apache-2.0) and `nftnl`/`mnl`
//! (libnftnl/libmnl C libraries) do not fit; `nf_tables` 0.1 and `netlink-bindings` 0.3 are
//! young and have no set-element dump or generation query. The wire format is small and stable
//! (linux/netfilter/nf_tables.h, nfnetlink.h); the socket is `netlink-sys`'s.

use std::collections::BTreeMap;
use std::io;

use netlink_sys::protocols::NETLINK_NETFILTER;

use super::nlsock::{
    self, errno_text, finish, io_err, parse_error, NlSocket, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP,
    NLM_F_REQUEST,
};
pub use super::nlsock::{attr_of, attrs, messages, Msg};
use crate::error::{Error, Result};

/// `NFPROTO_ARP`: the family of a `table arp …`.
pub const NFPROTO_ARP: u8 = 3;
/// `NFPROTO_NETDEV`: the family of a `table netdev …`.
pub const NFPROTO_NETDEV: u8 = 5;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFT_MSG_NEWOBJ: u16 = 18;
const NFT_MSG_GETOBJ: u16 = 19;

const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

const NLA_F_NESTED: u16 = 0x8000;

// enum nft_table_attributes
const NFTA_TABLE_NAME: u16 = 1;
// enum nft_set_elem_list_attributes
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
// enum nft_list_attributes
const NFTA_LIST_ELEM: u16 = 1;
// enum nft_set_elem_attributes
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_EXPR: u16 = 7;
const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
// enum nft_data_attributes
const NFTA_DATA_VALUE: u16 = 1;
// enum nft_expr_attributes
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
// enum nft_gen_attributes
const NFTA_GEN_ID: u16 = 1;
// enum nft_object_attributes
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFT_OBJECT_COUNTER: u32 = 1;
// enum nft_counter_attributes
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

const NFGENMSG_LEN: usize = 4;
/// An attribute's length is a u16: the element list of one message stays below it, a larger
/// change is several messages of the same batch.
const MAX_ELEMS_ATTR: usize = 0xff00;

fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// One set element: key bytes, and for a map the data bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Elem {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
}

/// A set element's key bytes and its counter (packets, bytes), if it has one.
pub type CountedElem = (Vec<u8>, Option<(u64, u64)>);

/// What one step of a [`Batch`] does to a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemOp {
    /// `nft add element` (an existing element with the same data is no error).
    Add,
    /// `nft delete element` (a missing element fails the whole batch).
    Delete,
    /// `nft flush set`/`flush map`: every element goes.
    Flush,
}

#[derive(Debug, Clone)]
enum Step {
    Elems {
        op: ElemOp,
        family: u8,
        table: String,
        set: String,
        elems: Vec<Elem>,
    },
    Object {
        op: ObjOp,
        family: u8,
        attrs: Vec<u8>,
        what: String,
    },
}

/// A table, chain, set or rule message of a [`Batch`] (the attributes are the caller's,
/// built with [`Attrs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjOp {
    /// `nft add table` (an existing table is no error).
    AddTable,
    /// `nft create table` (an existing table is an error: EEXIST).
    CreateTable,
    /// `nft delete table` (the table and everything in it).
    DeleteTable,
    /// `nft add chain` (an existing chain is no error).
    AddChain,
    /// `nft add set`/`add map` (an existing set of the same type is no error).
    AddSet,
    /// `nft add rule` (appended to its chain).
    AddRule,
}

impl ObjOp {
    fn message(self) -> (u16, u16) {
        let create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
        match self {
            ObjOp::AddTable => (NFT_MSG_NEWTABLE, create),
            ObjOp::CreateTable => (NFT_MSG_NEWTABLE, create | NLM_F_EXCL),
            ObjOp::DeleteTable => (NFT_MSG_DELTABLE, NLM_F_REQUEST | NLM_F_ACK),
            ObjOp::AddChain => (NFT_MSG_NEWCHAIN, create),
            ObjOp::AddSet => (NFT_MSG_NEWSET, create),
            // NLM_F_APPEND: after the chain's last rule, as `nft add rule` does.
            ObjOp::AddRule => (NFT_MSG_NEWRULE, create | NLM_F_APPEND),
        }
    }
}

/// Set element changes committed as one nf_tables transaction, in order.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    steps: Vec<Step>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    fn push(&mut self, op: ElemOp, family: u8, table: &str, set: &str, elems: Vec<Elem>) {
        if op != ElemOp::Flush && elems.is_empty() {
            return;
        }
        self.steps.push(Step::Elems {
            op,
            family,
            table: table.to_string(),
            set: set.to_string(),
            elems,
        });
    }

    /// A table, chain, set or rule message; `what` names it in errors ("add chain arp t input").
    pub fn object(&mut self, op: ObjOp, family: u8, attrs: Attrs, what: String) {
        self.steps.push(Step::Object {
            op,
            family,
            attrs: attrs.0,
            what,
        });
    }

    /// `flush map FAMILY TABLE SET`.
    pub fn flush(&mut self, family: u8, table: &str, set: &str) {
        self.push(ElemOp::Flush, family, table, set, Vec::new());
    }

    /// `add element FAMILY TABLE SET { … }`.
    pub fn add(&mut self, family: u8, table: &str, set: &str, elems: Vec<Elem>) {
        self.push(ElemOp::Add, family, table, set, elems);
    }

    /// `delete element FAMILY TABLE SET { … }` (keys only are sent).
    pub fn delete(&mut self, family: u8, table: &str, set: &str, elems: Vec<Elem>) {
        self.push(ElemOp::Delete, family, table, set, elems);
    }
}

/// What one message of an encoded batch carries, for its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgInfo {
    pub seq: u32,
    pub what: String,
}

// ---------------------------------------------------------------------------------------------
// Encoding (pure)
// ---------------------------------------------------------------------------------------------

/// The `NFPROTO_*` number of an nft family name (`inet`, `ip`, `arp`, `netdev`, `bridge`, `ip6`).
pub fn family_number(name: &str) -> Option<u8> {
    (0..=10).find(|&f| family_name(f) == name && name != "?")
}

fn family_name(f: u8) -> &'static str {
    match f {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "?",
    }
}

/// Start a netlink message with an nfgenmsg header; returns its offset (for [`finish`]).
/// Start an nfnetlink message: netlink header and `nfgenmsg` (see [`nlsock::begin`]).
fn begin(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
    let start = nlsock::begin(buf, ty, flags, seq);
    buf.extend_from_slice(&nfgenmsg(family, res_id));
    start
}

/// `struct nfgenmsg`: family, NFNETLINK_V0, resource id (big-endian).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; NFGENMSG_LEN] {
    let [hi, lo] = res_id.to_be_bytes();
    [family, 0, hi, lo]
}

fn pad(buf: &mut Vec<u8>) {
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    buf.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    pad(buf);
}

/// A NUL-terminated string attribute (`NLA_STRING` as nft sends it).
fn attr_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    attr(buf, ty, &v);
}

fn nest_begin(buf: &mut Vec<u8>, ty: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    start
}

fn nest_end(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

/// The attributes of one nf_tables message, in the order they are added (nested ones with
/// [`Attrs::nest`]); the names are those of linux/netfilter/nf_tables.h.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs(Vec<u8>);

impl Attrs {
    pub fn new() -> Attrs {
        Attrs::default()
    }

    /// A NUL-terminated string (`NLA_STRING` as nft sends it).
    pub fn str(mut self, ty: u16, s: &str) -> Attrs {
        attr_str(&mut self.0, ty, s);
        self
    }

    /// A 32-bit value in network byte order (`NLA_BE32`).
    pub fn be32(mut self, ty: u16, v: u32) -> Attrs {
        attr(&mut self.0, ty, &v.to_be_bytes());
        self
    }

    /// Raw bytes (`NLA_BINARY`).
    pub fn bytes(mut self, ty: u16, data: &[u8]) -> Attrs {
        attr(&mut self.0, ty, data);
        self
    }

    /// A nested attribute holding `inner`.
    pub fn nest(mut self, ty: u16, inner: Attrs) -> Attrs {
        let n = nest_begin(&mut self.0, ty);
        self.0.extend_from_slice(&inner.0);
        nest_end(&mut self.0, n);
        self
    }

    /// Append already-encoded attributes (e.g. one element of a list).
    pub fn extend(mut self, more: Attrs) -> Attrs {
        self.0.extend_from_slice(&more.0);
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One element as `NFTA_LIST_ELEM { KEY { VALUE }, DATA { VALUE } }`.
fn encode_elem(e: &Elem, with_data: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    let el = nest_begin(&mut b, NFTA_LIST_ELEM);
    let k = nest_begin(&mut b, NFTA_SET_ELEM_KEY);
    attr(&mut b, NFTA_DATA_VALUE, &e.key);
    nest_end(&mut b, k);
    if let (true, Some(d)) = (with_data, &e.data) {
        let n = nest_begin(&mut b, NFTA_SET_ELEM_DATA);
        attr(&mut b, NFTA_DATA_VALUE, d);
        nest_end(&mut b, n);
    }
    nest_end(&mut b, el);
    b
}

/// The batch as bytes (BATCH_BEGIN, one or more messages per step, BATCH_END), sequence
/// numbers from `seq0`, and per data message its sequence number and what it does.
pub fn encode(batch: &Batch, seq0: u32) -> (Vec<u8>, Vec<MsgInfo>) {
    let mut buf = Vec::new();
    let mut infos = Vec::new();
    let mut seq = seq0;
    let h = begin(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    finish(&mut buf, h);
    for s in &batch.steps {
        let (op, family, table, set, elems) = match s {
            Step::Object {
                op,
                family,
                attrs,
                what,
            } => {
                let (ty, flags) = op.message();
                seq = seq.wrapping_add(1);
                let m = begin(&mut buf, nft_type(ty), flags, seq, *family, 0);
                buf.extend_from_slice(attrs);
                finish(&mut buf, m);
                infos.push(MsgInfo {
                    seq,
                    what: what.clone(),
                });
                continue;
            }
            Step::Elems {
                op,
                family,
                table,
                set,
                elems,
            } => (*op, *family, table, set, elems),
        };
        let (ty, flags, verb) = match op {
            ElemOp::Add => (
                NFT_MSG_NEWSETELEM,
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                "add",
            ),
            ElemOp::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, "delete"),
            ElemOp::Flush => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, "flush"),
        };
        let obj = format!("{} {} {}", family_name(family), table, set);
        // (encoded elements, how many) per message
        let mut chunks: Vec<(Vec<u8>, usize)> = Vec::new();
        for e in elems {
            let enc = encode_elem(e, op == ElemOp::Add);
            match chunks.last_mut() {
                Some((c, n)) if c.len() + enc.len() <= MAX_ELEMS_ATTR => {
                    c.extend_from_slice(&enc);
                    *n += 1;
                }
                _ => chunks.push((enc, 1)),
            }
        }
        if op == ElemOp::Flush {
            chunks.push((Vec::new(), 0));
        }
        for (c, n) in &chunks {
            seq = seq.wrapping_add(1);
            let m = begin(&mut buf, nft_type(ty), flags, seq, family, 0);
            attr_str(&mut buf, NFTA_SET_ELEM_LIST_TABLE, table);
            attr_str(&mut buf, NFTA_SET_ELEM_LIST_SET, set);
            if op != ElemOp::Flush {
                let l = nest_begin(&mut buf, NFTA_SET_ELEM_LIST_ELEMENTS);
                buf.extend_from_slice(c);
                nest_end(&mut buf, l);
            }
            finish(&mut buf, m);
            infos.push(MsgInfo {
                seq,
                what: match op {
                    ElemOp::Flush => format!("flush map {obj}"),
                    _ => format!("{verb} {n} element(s) of {obj}"),
                },
            });
        }
    }
    seq = seq.wrapping_add(1);
    let e = begin(
        &mut buf,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
    );
    finish(&mut buf, e);
    (buf, infos)
}

/// A dump request (`NLM_F_DUMP`) or a get, with its attributes already encoded.
fn request(ty: u16, flags: u16, seq: u32, family: u8, attrs: &[u8]) -> Vec<u8> {
    nlsock::request(nft_type(ty), flags, seq, &nfgenmsg(family, 0), attrs)
}

// ---------------------------------------------------------------------------------------------
// Decoding (pure)
// ---------------------------------------------------------------------------------------------

/// What [`Nfnl::dump`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpOf {
    Tables,
    Chains,
    Sets,
    Rules,
}

/// A string attribute's value without its NUL.
pub fn cstr(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The elements of one `NFT_MSG_NEWSETELEM` message of a dump (payload after nlmsghdr).
pub fn parse_elems(payload: &[u8]) -> Vec<Elem> {
    let Some(body) = payload.get(NFGENMSG_LEN..) else {
        return Vec::new();
    };
    let Some(list) = attr_of(body, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    attrs(list)
        .into_iter()
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .filter_map(|(_, el)| {
            let value = |ty| attr_of(el, ty).and_then(|n| attr_of(n, NFTA_DATA_VALUE));
            Some(Elem {
                key: value(NFTA_SET_ELEM_KEY)?.to_vec(),
                data: value(NFTA_SET_ELEM_DATA).map(<[u8]>::to_vec),
            })
        })
        .collect()
}

/// The elements of one `NFT_MSG_NEWSETELEM` message with their counter expression, if any:
/// one expression comes as `NFTA_SET_ELEM_EXPR`, several as a list in
/// `NFTA_SET_ELEM_EXPRESSIONS` (the kernel's `nft_set_elem_expr_dump`).
pub fn parse_elem_counters(payload: &[u8]) -> Vec<CountedElem> {
    let Some(list) = payload
        .get(NFGENMSG_LEN..)
        .and_then(|b| attr_of(b, NFTA_SET_ELEM_LIST_ELEMENTS))
    else {
        return Vec::new();
    };
    let counter = |expr: &[u8]| -> Option<(u64, u64)> {
        if cstr(attr_of(expr, NFTA_EXPR_NAME)?) != "counter" {
            return None;
        }
        let data = attr_of(expr, NFTA_EXPR_DATA)?;
        Some((
            be64(attr_of(data, NFTA_COUNTER_PACKETS)?)?,
            be64(attr_of(data, NFTA_COUNTER_BYTES)?)?,
        ))
    };
    attrs(list)
        .into_iter()
        .filter(|(t, _)| *t == NFTA_LIST_ELEM)
        .filter_map(|(_, el)| {
            let key = attr_of(el, NFTA_SET_ELEM_KEY).and_then(|n| attr_of(n, NFTA_DATA_VALUE))?;
            let single = attr_of(el, NFTA_SET_ELEM_EXPR).and_then(counter);
            let listed = || {
                attrs(attr_of(el, NFTA_SET_ELEM_EXPRESSIONS)?)
                    .into_iter()
                    .filter(|(t, _)| *t == NFTA_LIST_ELEM)
                    .find_map(|(_, e)| counter(e))
            };
            Some((key.to_vec(), single.or_else(listed)))
        })
        .collect()
}

/// One request of [`Nfnl`]: what it is for (in errors), message type, flags, family and its
/// encoded attributes.
struct Query<'a> {
    what: &'a str,
    ty: u16,
    flags: u16,
    family: u8,
    attrs: &'a [u8],
}

// ---------------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------------

/// A `NETLINK_NETFILTER` socket in the current network namespace (open it after entering one).
pub struct Nfnl {
    nl: NlSocket,
    sndbuf: usize,
}

impl Nfnl {
    pub fn open() -> Result<Nfnl> {
        Nfnl::open_if_available()?.ok_or_else(|| {
            Error::Runtime(anyhow::anyhow!(
                "opening an nf_tables netlink socket: this kernel has no nfnetlink \
                 (CONFIG_NETFILTER_NETLINK; `modprobe nf_tables`)"
            ))
        })
    }

    /// [`Nfnl::open`], or `None` when the kernel has no nfnetlink at all (the module is neither
    /// loaded nor loadable): then no nf_tables table can exist either — a host with IPVS and
    /// without nftables reads "no table", not an error.
    pub fn open_if_available() -> Result<Option<Nfnl>> {
        match NlSocket::open(NETLINK_NETFILTER) {
            Ok(nl) => Ok(Some(Nfnl { nl, sndbuf: 0 })),
            Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => Ok(None),
            Err(e) => Err(io_err("opening an nf_tables netlink socket")(e)),
        }
    }

    /// Let one datagram of `len` bytes through (the kernel refuses a message larger than the
    /// send buffer; a batch must be one datagram). Root may exceed `wmem_max`, as nft does.
    fn ensure_sndbuf(&mut self, len: usize) -> Result<()> {
        if len + 4096 <= self.sndbuf {
            return Ok(());
        }
        let want = (len + 65536).next_power_of_two();
        let v = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt on our own open socket with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.nl.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io_err("enlarging the netlink send buffer")(
                io::Error::last_os_error(),
            ));
        }
        self.sndbuf = want;
        Ok(())
    }

    /// Commit `batch` as one transaction. Every message is acknowledged by the kernel; when any
    /// fails, nothing is changed and the error names each failed message.
    pub fn commit(&mut self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let what = "committing an nf_tables batch";
        let seq0 = self.nl.take_seqs(1);
        let (bytes, infos) = encode(batch, seq0);
        self.nl.take_seqs(infos.len() as u32 + 1);
        self.ensure_sndbuf(bytes.len())?;
        self.nl.send(&bytes, what)?;
        // nfnetlink processes the batch inside sendmsg: every answer is queued by now. Reading
        // blocks only if one is still missing (it never should), up to `nlsock::RECV_TIMEOUT`.
        let mut pending: BTreeMap<u32, &str> =
            infos.iter().map(|i| (i.seq, i.what.as_str())).collect();
        let mut failed: Vec<String> = Vec::new();
        let mut batch_err: Option<i32> = None;
        loop {
            let nonblock = pending.is_empty() || batch_err.is_some();
            if !self.nl.recv(what, nonblock)? {
                break;
            }
            let msgs = messages(&self.nl.buf)
                .map_err(|e| Error::Runtime(anyhow::anyhow!("{what}: {e}")))?;
            for m in msgs {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let Some((errno, seq)) = parse_error(m.payload) else {
                    continue;
                };
                if seq == seq0 {
                    // The batch as a whole (e.g. out of memory, or the commit itself failed).
                    batch_err = Some(errno);
                    continue;
                }
                if let Some(w) = pending.remove(&seq) {
                    if errno != 0 {
                        failed.push(format!("{w}: {}", errno_text(errno)));
                    }
                }
            }
        }
        if !failed.is_empty() || batch_err.is_some_and(|e| e != 0) {
            let mut parts = failed;
            if let Some(e) = batch_err.filter(|&e| e != 0) {
                parts.push(format!("the transaction: {}", errno_text(e)));
            }
            let eperm = parts.iter().any(|p| p.ends_with(&errno_text(libc::EPERM)));
            let msg = format!("{what} (nothing was changed): {}", parts.join("; "));
            return Err(if eperm {
                Error::Privilege(format!("{msg}: run as root"))
            } else {
                Error::Runtime(anyhow::anyhow!(msg))
            });
        }
        if !pending.is_empty() {
            return Err(Error::Runtime(anyhow::anyhow!(
                "{what}: the kernel did not acknowledge {} of {} message(s)",
                pending.len(),
                infos.len()
            )));
        }
        Ok(())
    }

    /// Send a request and call `each` for every answer message up to the ACK/`NLMSG_DONE`
    /// ([`NlSocket::exchange`]).
    fn exchange(
        &mut self,
        q: Query<'_>,
        each: &mut dyn FnMut(&Msg<'_>),
        reset: &mut dyn FnMut(),
    ) -> Result<bool> {
        let Query {
            what,
            ty,
            flags,
            family,
            attrs,
        } = q;
        self.nl.exchange(
            what,
            &|seq| request(ty, flags, seq, family, attrs),
            each,
            reset,
        )
    }

    /// The ruleset generation of this network namespace (`NFT_MSG_GETGEN`).
    pub fn generation(&mut self) -> Result<u32> {
        let mut id = None;
        self.exchange(
            Query {
                what: "reading the nf_tables generation",
                ty: NFT_MSG_GETGEN,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family: 0,
                attrs: &[],
            },
            &mut |m| {
                if m.ty == nft_type(NFT_MSG_NEWGEN) {
                    id = m
                        .payload
                        .get(NFGENMSG_LEN..)
                        .and_then(|b| attr_of(b, NFTA_GEN_ID))
                        .and_then(|v| Some(u32::from_be_bytes(v.try_into().ok()?)));
                }
            },
            &mut || {},
        )?;
        id.ok_or_else(|| {
            Error::Runtime(anyhow::anyhow!(
                "reading the nf_tables generation: no NFTA_GEN_ID in the answer"
            ))
        })
    }

    /// Whether `FAMILY TABLE` exists (`nft list tables` would fetch every set element first).
    pub fn table_exists(&mut self, family: u8, table: &str) -> Result<bool> {
        let mut a = Vec::new();
        attr_str(&mut a, NFTA_TABLE_NAME, table);
        self.exchange(
            Query {
                what: &format!("looking up table {} {table}", family_name(family)),
                ty: NFT_MSG_GETTABLE,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                family,
                attrs: &a,
            },
            &mut |_| {},
            &mut || {},
        )
    }

    /// Every object of one kind in `family` (a dump), as the attributes after each message's
    /// nfgenmsg header. `filter` is sent with the request (the kernel narrows a rule dump to
    /// `NFTA_RULE_TABLE`, a set dump to `NFTA_SET_TABLE`; chain and table dumps are not
    /// narrowed: the caller filters).
    pub fn dump(&mut self, of: DumpOf, family: u8, filter: &Attrs) -> Result<Vec<Vec<u8>>> {
        let (ty, answer, noun) = match of {
            DumpOf::Tables => (NFT_MSG_GETTABLE, NFT_MSG_NEWTABLE, "tables"),
            DumpOf::Chains => (NFT_MSG_GETCHAIN, NFT_MSG_NEWCHAIN, "chains"),
            DumpOf::Sets => (NFT_MSG_GETSET, NFT_MSG_NEWSET, "sets"),
            DumpOf::Rules => (NFT_MSG_GETRULE, NFT_MSG_NEWRULE, "rules"),
        };
        let out = std::cell::RefCell::new(Vec::new());
        self.exchange(
            Query {
                what: &format!("listing the {} {noun}", family_name(family)),
                ty,
                flags: NLM_F_REQUEST | NLM_F_DUMP,
                family,
                attrs: filter.as_bytes(),
            },
            &mut |m| {
                if m.ty == nft_type(answer) {
                    if let Some(body) = m.payload.get(NFGENMSG_LEN..) {
                        out.borrow_mut().push(body.to_vec());
                    }
                }
            },
            &mut || out.borrow_mut().clear(),
        )?;
        Ok(out.into_inner())
    }

    /// Every element of `FAMILY TABLE SET` (`None`: no such table or set).
    pub fn set_elements(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> Result<Option<Vec<Elem>>> {
        self.dump_set(family, table, set, parse_elems)
    }

    /// Every element of `FAMILY TABLE SET` with its counter (packets, bytes) — a set declared
    /// with `counter` or updated with one; `None` for an element without a counter.
    pub fn set_counters(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
    ) -> Result<Option<Vec<CountedElem>>> {
        self.dump_set(family, table, set, parse_elem_counters)
    }

    fn dump_set<T>(
        &mut self,
        family: u8,
        table: &str,
        set: &str,
        parse: fn(&[u8]) -> Vec<T>,
    ) -> Result<Option<Vec<T>>> {
        let mut a = Vec::new();
        attr_str(&mut a, NFTA_SET_ELEM_LIST_TABLE, table);
        attr_str(&mut a, NFTA_SET_ELEM_LIST_SET, set);
        let out = std::cell::RefCell::new(Vec::new());
        let found = self.exchange(
            Query {
                what: &format!("listing {} {table} {set}", family_name(family)),
                ty: NFT_MSG_GETSETELEM,
                flags: NLM_F_REQUEST | NLM_F_DUMP,
                family,
                attrs: &a,
            },
            &mut |m| {
                if m.ty == nft_type(NFT_MSG_NEWSETELEM) {
                    out.borrow_mut().extend(parse(m.payload));
                }
            },
            &mut || out.borrow_mut().clear(),
        )?;
        Ok(found.then(|| out.into_inner()))
    }

    /// The named counters of `FAMILY TABLE`: name → (packets, bytes); empty when the table does
    /// not exist (the kernel's object dump filters by table without checking it exists).
    pub fn counters(&mut self, family: u8, table: &str) -> Result<BTreeMap<String, (u64, u64)>> {
        let mut a = Vec::new();
        attr_str(&mut a, NFTA_OBJ_TABLE, table);
        attr(&mut a, NFTA_OBJ_TYPE, &NFT_OBJECT_COUNTER.to_be_bytes());
        let out = std::cell::RefCell::new(BTreeMap::new());
        self.exchange(
            Query {
                what: &format!("listing the counters of {} {table}", family_name(family)),
                ty: NFT_MSG_GETOBJ,
                flags: NLM_F_REQUEST | NLM_F_DUMP,
                family,
                attrs: &a,
            },
            &mut |m| {
                if m.ty != nft_type(NFT_MSG_NEWOBJ) {
                    return;
                }
                if let Some((name, pb)) = parse_counter(m.payload, table) {
                    out.borrow_mut().insert(name, pb);
                }
            },
            &mut || out.borrow_mut().clear(),
        )?;
        Ok(out.into_inner())
    }
}

/// One counter object of a `NFT_MSG_NEWOBJ` message: (name, (packets, bytes)), if it is a
/// counter of `table`.
fn parse_counter(payload: &[u8], table: &str) -> Option<(String, (u64, u64))> {
    let body = payload.get(NFGENMSG_LEN..)?;
    if cstr(attr_of(body, NFTA_OBJ_TABLE)?) != table
        || attr_of(body, NFTA_OBJ_TYPE)? != NFT_OBJECT_COUNTER.to_be_bytes()
    {
        return None;
    }
    let data = attr_of(body, NFTA_OBJ_DATA)?;
    Some((
        cstr(attr_of(body, NFTA_OBJ_NAME)?),
        (
            be64(attr_of(data, NFTA_COUNTER_PACKETS)?)?,
            be64(attr_of(data, NFTA_COUNTER_BYTES)?)?,
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac_elem(slot: u32, last: u8) -> Elem {
        Elem {
            key: slot.to_ne_bytes().to_vec(),
            data: Some(vec![2, 0, 0, 0, 0, last]),
        }
    }

    #[test]
    fn batch_layout() {
        let mut b = Batch::new();
        b.delete(NFPROTO_NETDEV, "t", "m", vec![mac_elem(1, 0x11)]);
        b.add(NFPROTO_NETDEV, "t", "m", vec![mac_elem(1, 0x12)]);
        let (bytes, infos) = encode(&b, 100);
        let msgs = messages(&bytes).unwrap();
        assert_eq!(
            msgs.iter().map(|m| (m.ty, m.seq)).collect::<Vec<_>>(),
            [
                (0x10, 100),
                (0x0a00 | 14, 101),
                (0x0a00 | 12, 102),
                (0x11, 103)
            ]
        );
        assert_eq!(
            infos,
            [
                MsgInfo {
                    seq: 101,
                    what: "delete 1 element(s) of netdev t m".into()
                },
                MsgInfo {
                    seq: 102,
                    what: "add 1 element(s) of netdev t m".into()
                }
            ]
        );
        // BATCH_BEGIN: no attributes, res_id = NFNL_SUBSYS_NFTABLES (big-endian).
        assert_eq!(msgs[0].payload, [0, 0, 0, 10]);
        assert_eq!(msgs[0].flags, NLM_F_REQUEST);
        assert_eq!(msgs[1].flags, NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(msgs[2].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        // The add, byte for byte: nfgenmsg, table "t\0", set "m\0", elements.
        let k = 1u32.to_ne_bytes();
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[5, 0, 0, 0][..],                                  // netdev, v0, res_id 0
            &[6, 0, 1, 0, b't', 0, 0, 0],                       // TABLE "t"
            &[6, 0, 2, 0, b'm', 0, 0, 0],                       // SET "m"
            &[36, 0, 3, 0x80],                                  // ELEMENTS (nested)
            &[32, 0, 1, 0x80],                                  //  LIST_ELEM
            &[12, 0, 1, 0x80],                                  //   KEY
            &[8, 0, 1, 0], &k,                                  //    VALUE: u32 host order
            &[16, 0, 2, 0x80],                                  //   DATA
            &[10, 0, 1, 0, 2, 0, 0, 0, 0, 0x12, 0, 0],          //    VALUE: 6 bytes + pad
        ]
        .concat();
        assert_eq!(msgs[2].payload, &want[..]);
        // The delete carries keys only.
        assert_eq!(parse_elems(msgs[1].payload)[0].data, None);
        assert_eq!(parse_elems(msgs[2].payload), [mac_elem(1, 0x12)]);
    }

    #[test]
    fn large_changes_split_into_messages() {
        let mut b = Batch::new();
        let elems: Vec<Elem> = (0..43690).map(|i| mac_elem(i, 0x11)).collect();
        b.flush(NFPROTO_NETDEV, "t", "m");
        b.add(NFPROTO_NETDEV, "t", "m", elems.clone());
        let (bytes, infos) = encode(&b, 1);
        let msgs = messages(&bytes).unwrap();
        assert!(msgs.len() > 3, "{}", msgs.len());
        assert_eq!(msgs.len(), infos.len() + 2);
        assert_eq!(infos[0].what, "flush map netdev t m");
        // The flush has no element list: the kernel flushes the set.
        assert!(attr_of(&msgs[1].payload[4..], NFTA_SET_ELEM_LIST_ELEMENTS).is_none());
        let back: Vec<Elem> = msgs[2..msgs.len() - 1]
            .iter()
            .flat_map(|m| parse_elems(m.payload))
            .collect();
        assert_eq!(back, elems);
        for m in &msgs {
            for (_, v) in attrs(&m.payload[4..]) {
                assert!(v.len() <= MAX_ELEMS_ATTR);
            }
        }
        // Sequence numbers are consecutive, the end last.
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn family_names_and_numbers() {
        assert_eq!(family_number("arp"), Some(NFPROTO_ARP));
        assert_eq!(family_number("netdev"), Some(NFPROTO_NETDEV));
        assert_eq!(family_number("ip6"), Some(10));
        assert_eq!(family_number("?"), None);
        assert_eq!(family_number("bogus"), None);
    }

    #[test]
    fn empty_steps_are_dropped() {
        let mut b = Batch::new();
        b.add(NFPROTO_NETDEV, "t", "m", Vec::new());
        b.delete(NFPROTO_NETDEV, "t", "m", Vec::new());
        assert!(b.is_empty());
    }

    #[test]
    fn errors_and_counters_decode() {
        // NLMSG_ERROR: -ENOENT, then the failed message's header (seq 7).
        let mut p = (-libc::ENOENT).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&7u32.to_ne_bytes());
        p.extend_from_slice(&[0; 4]);
        assert_eq!(parse_error(&p), Some((libc::ENOENT, 7)));
        // A counter object as the kernel dumps it.
        let mut b = vec![5, 0, 0, 0];
        attr_str(&mut b, NFTA_OBJ_TABLE, "t");
        attr_str(&mut b, NFTA_OBJ_NAME, "c_x");
        attr(&mut b, NFTA_OBJ_TYPE, &1u32.to_be_bytes());
        let n = nest_begin(&mut b, NFTA_OBJ_DATA);
        attr(&mut b, NFTA_COUNTER_BYTES, &180u64.to_be_bytes());
        attr(&mut b, NFTA_COUNTER_PACKETS, &3u64.to_be_bytes());
        nest_end(&mut b, n);
        assert_eq!(parse_counter(&b, "t"), Some(("c_x".into(), (3, 180))));
        assert_eq!(parse_counter(&b, "other"), None);
    }

    #[test]
    fn truncated_input_is_refused() {
        let mut b = Batch::new();
        b.add(NFPROTO_NETDEV, "t", "m", vec![mac_elem(0, 1)]);
        let (bytes, _) = encode(&b, 1);
        assert!(messages(&bytes[..bytes.len() - 3]).is_err());
        assert!(attrs(&[8, 0, 1, 0, 1]).is_empty());
    }
}
