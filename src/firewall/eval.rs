//! Walks one packet through the base chains of its hooks the way netfilter does, and keeps
//! honest about what it cannot know.
//!
//! Semantics followed (net/netfilter/nf_tables_core.c): base chains of each hook run in priority
//! order whatever their table; `accept` ends only the current base chain, `drop`/`reject` end
//! the packet; `jump` pushes, `goto` replaces, `return` or the end of a regular chain pops, and
//! the end of a base chain applies its policy. A `tcp dport` match on a UDP packet (or `ip saddr`
//! on IPv6) is false, not unknown: nft adds that protocol dependency itself. Before conntrack
//! (ingress, and priority < -200 on prerouting/output) `ct state` is `invalid`. Ingress and
//! egress chains count only on their device; nft 1.0.6's JSON omits it, so whether such a
//! chain sees the packet is itself undecidable.
//!
//! A match the evaluator cannot decide (marks, limits, xt matches, raw payload…) is a fork: the
//! walk is repeated with it assumed false and true. Only when every assumption ends in the same
//! verdict is the answer accept or drop; otherwise it is "unknown", naming the rules that might
//! drop. That is what keeps doctor from printing a ✓ it cannot back.

use std::net::IpAddr;

use serde_json::Value;

use super::model::{Chain, RuleRef, Ruleset};
use super::{Decider, Direction, PathVerdict, Proto, Query, Verdict};

/// Linux's default `net.ipv4.ip_local_port_range`: where the client's port is when unknown.
pub const EPHEMERAL: (u16, u16) = (32768, 60999);
/// nft refuses deeper jump stacks; a deeper walk here means a loop or a bug.
const MAX_DEPTH: usize = 16;
/// Walks tried before giving up (each undecidable rule met doubles them).
const MAX_RUNS: usize = 256;

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
    /// True if any is true; false if all are false.
    fn any(it: impl IntoIterator<Item = Tri>) -> Tri {
        let mut out = Tri::False;
        for t in it {
            match t {
                Tri::True => return Tri::True,
                Tri::Unknown => out = Tri::Unknown,
                Tri::False => {}
            }
        }
        out
    }
    /// True if all are true; false if any is false.
    fn all(it: impl IntoIterator<Item = Tri>) -> Tri {
        Tri::any(it.into_iter().map(Tri::not)).not()
    }
}

/// A value a packet field has.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Addr(IpAddr),
    Num(u64),
    /// A symbolic constant nft prints bare: `tcp`, `ipv4`, `new`.
    Sym(String),
    /// An interface name; "" where the hook has none (iif on output).
    If(String),
    /// A fib lookup's result: the device, or none (`missing`, `0`).
    Fib(Option<String>),
    Tuple(Vec<Val>),
    /// A bitmask as its set flags (`tcp flags`, `ct status`); `masked` after `&`.
    Flags {
        set: Vec<String>,
        masked: bool,
    },
}

fn flags(names: &[&str]) -> Val {
    Val::Flags {
        set: names.iter().map(|s| s.to_string()).collect(),
        masked: false,
    }
}

/// Flag names on the right of a match: `syn`, `["fin", "syn"]`, `{"|": ["syn", "ack"]}`.
fn flag_names(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                out.extend(flag_names(x)?);
            }
            Some(out)
        }
        Value::Object(o) => o.get("|").and_then(flag_names),
        _ => None,
    }
}

/// The left side of a match, evaluated.
enum Left {
    /// The protocol nft adds as a dependency does not match: the rule does not match.
    Absent,
    Unknown,
    /// Any of these values (the client's ephemeral port is a range).
    Any(Vec<Val>),
}

/// The packet as one hook sees it.
struct View<'q> {
    q: &'q Query,
    dir: Direction,
    hook: String,
    prio: i64,
    notrack: bool,
}

impl View<'_> {
    fn src(&self) -> IpAddr {
        match self.dir {
            Direction::Request => self.q.client,
            Direction::Reply => self.q.vip,
        }
    }
    fn dst(&self) -> IpAddr {
        match self.dir {
            Direction::Request => self.q.vip,
            Direction::Reply => self.q.client,
        }
    }
    fn client_ports(&self) -> Vec<Val> {
        match self.q.client_port {
            Some(p) => vec![Val::Num(p.into())],
            None => (EPHEMERAL.0..=EPHEMERAL.1)
                .map(|p| Val::Num(p.into()))
                .collect(),
        }
    }
    fn port(&self, field: &str) -> Left {
        let service = vec![Val::Num(self.q.port.into())];
        match (self.dir, field) {
            (Direction::Request, "dport") | (Direction::Reply, "sport") => Left::Any(service),
            (Direction::Request, "sport") | (Direction::Reply, "dport") => {
                Left::Any(self.client_ports())
            }
            _ => Left::Unknown,
        }
    }
    fn inbound(&self) -> bool {
        self.dir == Direction::Request
    }
    fn ct_state(&self) -> &'static str {
        if self.notrack {
            "untracked"
        } else if self.hook == "ingress"
            || (matches!(self.hook.as_str(), "prerouting" | "output") && self.prio < -200)
        {
            "invalid"
        } else if self.inbound() {
            "new"
        } else {
            "established"
        }
    }
}

fn proto_number(s: &str) -> Option<u64> {
    Some(match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" | "ipv6-icmp" => 58,
        "ipv4" => 2,
        "ipv6" => 10,
        _ => return None,
    })
}

/// Payload protocols a TCP/UDP packet definitely is not (their fields' matches are false).
const OTHER_L4: [&str; 10] = [
    "icmp", "icmpv6", "sctp", "dccp", "udplite", "esp", "ah", "comp", "gre", "igmp",
];

/// How one walk (one set of assumptions) ended.
#[derive(Debug, Clone)]
enum End {
    Accept,
    Drop(Decider),
    /// A statement whose effect cannot be modelled (nat, queue, an unknown verdict…).
    Opaque(RuleRef, String),
}

/// One step of a chain.
enum Step {
    Next,
    Accept,
    Drop,
    Jump(String),
    Goto(String),
    Return,
    Opaque(String),
}

/// Answers for undecidable matches: a script replayed and extended between walks.
#[derive(Default)]
struct Oracle {
    script: Vec<bool>,
    pos: usize,
    seen: Vec<RuleRef>,
}

impl Oracle {
    fn decide(&mut self, r: RuleRef) -> bool {
        if !self.seen.contains(&r) {
            self.seen.push(r);
        }
        if self.pos == self.script.len() {
            self.script.push(false);
        }
        let v = self.script[self.pos];
        self.pos += 1;
        v
    }

    /// Move to the next assumption set; false when all were tried.
    fn advance(&mut self) -> bool {
        self.script.truncate(self.pos);
        while self.script.last() == Some(&true) {
            self.script.pop();
        }
        match self.script.last_mut() {
            Some(last) => {
                *last = true;
                self.pos = 0;
                true
            }
            None => false,
        }
    }
}

struct Walker<'a> {
    rs: &'a Ruleset,
}

fn first(v: &Value) -> Option<(&str, &Value)> {
    v.as_object()
        .and_then(|o| o.iter().next())
        .map(|(k, x)| (k.as_str(), x))
}

impl Walker<'_> {
    fn left(&self, l: &Value, v: &View) -> Left {
        if let Some(p) = l.get("payload") {
            let (Some(proto), Some(field)) = (p["protocol"].as_str(), p["field"].as_str()) else {
                return Left::Unknown;
            };
            let v4 = v.src().is_ipv4();
            let l4 = match v.q.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            return match proto {
                "ip" | "ip6" if (proto == "ip") != v4 => Left::Absent,
                "ip" | "ip6" => match field {
                    "saddr" => Left::Any(vec![Val::Addr(v.src())]),
                    "daddr" => Left::Any(vec![Val::Addr(v.dst())]),
                    "protocol" | "nexthdr" => Left::Any(vec![Val::Sym(l4.into())]),
                    _ => Left::Unknown,
                },
                "tcp" | "udp" if proto != l4 => Left::Absent,
                "tcp" if field == "flags" => Left::Any(vec![if v.inbound() {
                    flags(&["syn"])
                } else {
                    flags(&["syn", "ack"])
                }]),
                "tcp" | "udp" | "th" => v.port(field),
                p if OTHER_L4.contains(&p) => Left::Absent,
                _ => Left::Unknown,
            };
        }
        if let Some(m) = l.get("meta") {
            let iface = |name: &Option<String>, here: bool| match (here, name) {
                (false, _) => Left::Any(vec![Val::If(String::new())]),
                (true, Some(n)) => Left::Any(vec![Val::If(n.clone())]),
                (true, None) => Left::Unknown,
            };
            let v4 = v.src().is_ipv4();
            return match m["key"].as_str().unwrap_or_default() {
                "l4proto" => Left::Any(vec![Val::Sym(
                    match v.q.proto {
                        Proto::Tcp => "tcp",
                        Proto::Udp => "udp",
                    }
                    .into(),
                )]),
                "nfproto" => Left::Any(vec![Val::Sym(if v4 { "ipv4" } else { "ipv6" }.into())]),
                "protocol" => Left::Any(vec![Val::Sym(if v4 { "ip" } else { "ip6" }.into())]),
                "iif" | "iifname" => iface(&v.q.iif, v.inbound()),
                "oif" | "oifname" => iface(&v.q.oif, !v.inbound()),
                "pkttype" if v.inbound() => Left::Any(vec![Val::Sym("host".into())]),
                _ => Left::Unknown,
            };
        }
        if let Some(c) = l.get("ct") {
            if c.get("dir").is_some() {
                return Left::Unknown;
            }
            return match c["key"].as_str().unwrap_or_default() {
                "state" => Left::Any(vec![Val::Sym(v.ct_state().into())]),
                // A new flow has no status bit before it is confirmed; its reply has been seen.
                "status" if matches!(v.ct_state(), "new") => Left::Any(vec![flags(&[])]),
                "status" if matches!(v.ct_state(), "established") => {
                    Left::Any(vec![flags(&["confirmed", "seen-reply"])])
                }
                "direction" if !matches!(v.ct_state(), "invalid" | "untracked") => {
                    Left::Any(vec![Val::Sym(
                        if v.inbound() { "original" } else { "reply" }.into(),
                    )])
                }
                _ => Left::Unknown,
            };
        }
        if let Some(f) = l.get("fib") {
            let flags: Vec<&str> = f["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let result = f["result"].as_str().unwrap_or_default();
            // `fib daddr type local`: the VIP is (or is not) an address of this host.
            if v.inbound()
                && result == "type"
                && flags.iter().all(|f| matches!(*f, "daddr" | "iif"))
                && flags.contains(&"daddr")
            {
                return match v.q.vip_local {
                    Some(true) => Left::Any(vec![Val::Sym("local".into())]),
                    Some(false) => Left::Any(vec![Val::Sym("unicast".into())]),
                    None => Left::Unknown,
                };
            }
            // Only the reverse-path form, on the way in, without marks.
            if !v.inbound()
                || !flags.contains(&"saddr")
                || flags.contains(&"mark")
                || flags.contains(&"daddr")
                || !matches!(result, "oif" | "oifname")
            {
                return Left::Unknown;
            }
            let dev = if flags.contains(&"iif") {
                match v.q.route_back_via_iif {
                    Some(true) => v.q.iif.clone().map(Some),
                    Some(false) => Some(None),
                    None => None,
                }
            } else {
                match v.q.route_back {
                    Some(true) => v.q.oif.clone().map(Some),
                    Some(false) => Some(None),
                    None => None,
                }
            };
            return match dev {
                Some(d) => Left::Any(vec![Val::Fib(d)]),
                None => Left::Unknown,
            };
        }
        if let Some([inner, mask]) = l.get("&").and_then(Value::as_array).map(Vec::as_slice) {
            return match (self.left(inner, v), flag_names(mask)) {
                (Left::Absent, _) => Left::Absent,
                (Left::Any(vals), Some(mask)) => Left::Any(
                    vals.into_iter()
                        .map(|val| match val {
                            Val::Flags { set, .. } => Val::Flags {
                                set: set.into_iter().filter(|f| mask.contains(f)).collect(),
                                masked: true,
                            },
                            _ => Val::Tuple(Vec::new()),
                        })
                        .collect(),
                ),
                _ => Left::Unknown,
            };
        }
        if let Some(parts) = l.get("concat").and_then(Value::as_array) {
            let mut vals = Vec::new();
            for p in parts {
                match self.left(p, v) {
                    Left::Absent => return Left::Absent,
                    Left::Any(mut one) if one.len() == 1 => vals.push(one.remove(0)),
                    _ => return Left::Unknown,
                }
            }
            return Left::Any(vec![Val::Tuple(vals)]);
        }
        Left::Unknown
    }

    /// Does `val` match the right-hand side element `e` (a value, prefix, range, set…)?
    fn elem(&self, val: &Val, e: &Value, chain: &Chain) -> Tri {
        match e {
            Value::String(s) if s.starts_with('@') => {
                let Some(set) = self.rs.set(&chain.family, &chain.table, &s[1..]) else {
                    return Tri::Unknown;
                };
                if set.dynamic {
                    return Tri::Unknown;
                }
                Tri::any(set.elems.iter().map(|x| {
                    let key = match (set.is_map, x.as_array()) {
                        (true, Some(kv)) if !kv.is_empty() => &kv[0],
                        _ => x,
                    };
                    self.elem(val, key, chain)
                }))
            }
            Value::Array(a) => Tri::any(a.iter().map(|x| self.elem(val, x, chain))),
            Value::Object(o) => {
                if let Some(set) = o.get("set") {
                    return match set {
                        Value::Array(a) => Tri::any(a.iter().map(|x| self.elem(val, x, chain))),
                        one => self.elem(val, one, chain),
                    };
                }
                if let Some(e) = o.get("elem") {
                    return self.elem(val, &e["val"], chain);
                }
                if let Some(p) = o.get("prefix") {
                    let (Val::Addr(a), Some(Ok(net)), Some(len)) = (
                        val,
                        p["addr"].as_str().map(str::parse::<IpAddr>),
                        p["len"].as_u64(),
                    ) else {
                        return Tri::Unknown;
                    };
                    if a.is_ipv4() != net.is_ipv4() {
                        return Tri::False;
                    }
                    return match ipnet::IpNet::new(net, len as u8) {
                        Ok(n) => Tri::from(n.trunc().contains(a)),
                        Err(_) => Tri::Unknown,
                    };
                }
                if let Some(r) = o.get("range").and_then(Value::as_array) {
                    if r.len() != 2 {
                        return Tri::Unknown;
                    }
                    return match val {
                        Val::Num(n) => match (r[0].as_u64(), r[1].as_u64()) {
                            (Some(lo), Some(hi)) => Tri::from(lo <= *n && *n <= hi),
                            _ => Tri::Unknown,
                        },
                        Val::Addr(a) => {
                            let p = |x: &Value| x.as_str().and_then(|s| s.parse::<IpAddr>().ok());
                            match (p(&r[0]), p(&r[1])) {
                                (Some(lo), Some(hi)) if lo.is_ipv4() == a.is_ipv4() => {
                                    Tri::from(lo <= *a && *a <= hi)
                                }
                                (Some(_), Some(_)) => Tri::False,
                                _ => Tri::Unknown,
                            }
                        }
                        _ => Tri::Unknown,
                    };
                }
                if let Some(parts) = o.get("concat").and_then(Value::as_array) {
                    let Val::Tuple(vals) = val else {
                        return Tri::Unknown;
                    };
                    if vals.len() != parts.len() {
                        return Tri::Unknown;
                    }
                    return Tri::all(vals.iter().zip(parts).map(|(v, p)| self.elem(v, p, chain)));
                }
                Tri::Unknown
            }
            scalar => scalar_eq(val, scalar),
        }
    }

    /// Numbers anywhere in a right-hand side (named sets included).
    fn numbers(&self, e: &Value, chain: &Chain, out: &mut Vec<u64>) {
        match e {
            Value::Number(n) => out.extend(n.as_u64()),
            Value::String(s) if s.starts_with('@') => {
                if let Some(set) = self.rs.set(&chain.family, &chain.table, &s[1..]) {
                    for x in &set.elems {
                        self.numbers(x, chain, out);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| self.numbers(x, chain, out)),
            Value::Object(o) => o.values().for_each(|x| self.numbers(x, chain, out)),
            _ => {}
        }
    }

    /// A large range of candidate ports cut down to one value on each side of every number the
    /// right-hand side mentions (plus the ends): between those the answer cannot change.
    fn sample(&self, vals: Vec<Val>, right: &Value, chain: &Chain) -> Vec<Val> {
        let nums: Option<Vec<u64>> = vals
            .iter()
            .map(|v| match v {
                Val::Num(n) => Some(*n),
                _ => None,
            })
            .collect();
        let Some(nums) = nums.filter(|n| n.len() > 64) else {
            return vals;
        };
        let (lo, hi) = (nums[0], nums[nums.len() - 1]);
        let mut marks = Vec::new();
        self.numbers(right, chain, &mut marks);
        let mut out = vec![lo, hi];
        for m in marks {
            for x in [m.saturating_sub(1), m, m.saturating_add(1)] {
                if lo <= x && x <= hi {
                    out.push(x);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.into_iter().map(Val::Num).collect()
    }

    fn matches(&self, m: &Value, chain: &Chain, v: &View) -> Tri {
        let right = &m["right"];
        let vals = match self.left(&m["left"], v) {
            Left::Absent => return Tri::False,
            Left::Unknown => return Tri::Unknown,
            Left::Any(vals) => self.sample(vals, right, chain),
        };
        let op = m["op"].as_str().unwrap_or("==");
        let one = |val: &Val| match op {
            _ if matches!(val, Val::Flags { .. }) => flags_match(val, op, right),
            "==" | "in" => self.elem(val, right, chain),
            "!=" => self.elem(val, right, chain).not(),
            "<" | ">" | "<=" | ">=" => match (val, right.as_u64()) {
                (Val::Num(n), Some(r)) => Tri::from(match op {
                    "<" => *n < r,
                    ">" => *n > r,
                    "<=" => *n <= r,
                    _ => *n >= r,
                }),
                _ => Tri::Unknown,
            },
            _ => Tri::Unknown,
        };
        let mut seen_true = false;
        let mut seen_false = false;
        for val in &vals {
            match one(val) {
                Tri::True => seen_true = true,
                Tri::False => seen_false = true,
                Tri::Unknown => return Tri::Unknown,
            }
            if seen_true && seen_false {
                return Tri::Unknown;
            }
        }
        Tri::from(seen_true)
    }

    /// A verdict statement as a step (`None`: not a verdict).
    fn verdict(stmt: &Value) -> Option<Step> {
        let (k, x) = first(stmt)?;
        Some(match k {
            "accept" => Step::Accept,
            "drop" | "reject" => Step::Drop,
            "continue" => Step::Next,
            "return" => Step::Return,
            "jump" => Step::Jump(x["target"].as_str()?.to_string()),
            "goto" => Step::Goto(x["target"].as_str()?.to_string()),
            "queue" => Step::Opaque("queue: the verdict comes from a userspace program".into()),
            _ => return None,
        })
    }

    fn vmap(&self, x: &Value, chain: &Chain, v: &View) -> Step {
        let vals = match self.left(&x["key"], v) {
            Left::Absent => return Step::Next,
            Left::Unknown => return Step::Opaque("a verdict map whose key is not known".into()),
            Left::Any(vals) => self.sample(vals, &x["data"], chain),
        };
        let data = &x["data"];
        let pairs: Vec<Value> = match data {
            Value::String(s) if s.starts_with('@') => {
                match self.rs.set(&chain.family, &chain.table, &s[1..]) {
                    Some(set) if !set.dynamic => set.elems.clone(),
                    _ => return Step::Opaque(format!("verdict map {s} not readable")),
                }
            }
            _ => data["set"].as_array().cloned().unwrap_or_default(),
        };
        let mut chosen: Option<String> = None;
        for val in &vals {
            let mut hit = None;
            for p in &pairs {
                let Some(kv) = p.as_array().filter(|kv| kv.len() == 2) else {
                    return Step::Opaque("a verdict map element not understood".into());
                };
                match self.elem(val, &kv[0], chain) {
                    Tri::True => {
                        hit = Some(kv[1].to_string());
                        break;
                    }
                    Tri::Unknown => return Step::Opaque("a verdict map key not understood".into()),
                    Tri::False => {}
                }
            }
            let hit = hit.unwrap_or_default();
            match &chosen {
                None => chosen = Some(hit),
                Some(c) if *c != hit => {
                    return Step::Opaque("the verdict depends on the client's port".into())
                }
                _ => {}
            }
        }
        match chosen.filter(|c| !c.is_empty()) {
            None => Step::Next,
            Some(json) => {
                let stmt: Value = serde_json::from_str(&json).unwrap_or_default();
                Self::verdict(&stmt).unwrap_or(Step::Opaque("unknown verdict in a map".into()))
            }
        }
    }

    fn rule(&self, chain: &Chain, idx: usize, v: &mut View, o: &mut Oracle) -> Step {
        let rref = || self.rs.rule_ref(chain, idx);
        for st in &chain.rules[idx].expr {
            if let Some(step) = Self::verdict(st) {
                return step;
            }
            let Some((k, x)) = first(st) else {
                return Step::Opaque("an empty statement".into());
            };
            let undecidable = match k {
                "match" => match self.matches(x, chain, v) {
                    Tri::True => false,
                    Tri::False => return Step::Next,
                    Tri::Unknown => true,
                },
                "counter" | "log" | "comment" | "set" | "map" => false,
                "limit" | "quota" | "meter" | "connlimit" | "numgen" => true,
                "xt" => match (x["type"].as_str(), x["name"].as_str()) {
                    (Some("match"), _) => true,
                    (Some("target"), Some("REJECT")) => return Step::Drop,
                    (Some("target"), Some("LOG" | "NFLOG")) => false,
                    (_, name) => {
                        return Step::Opaque(format!(
                            "iptables target {} (xt) not evaluated",
                            name.unwrap_or("?")
                        ))
                    }
                },
                "vmap" => return self.vmap(x, chain, v),
                "notrack" => {
                    v.notrack = true;
                    false
                }
                // Setting a mark or priority does not decide a verdict; rules reading marks are
                // undecidable anyway.
                "mangle"
                    if x["key"]
                        .get("meta")
                        .or_else(|| x["key"].get("ct"))
                        .and_then(|m| m["key"].as_str())
                        .is_some_and(|k| matches!(k, "mark" | "priority")) =>
                {
                    false
                }
                other => return Step::Opaque(format!("statement `{other}` not evaluated")),
            };
            if undecidable && !o.decide(rref()) {
                return Step::Next;
            }
        }
        Step::Next
    }

    fn chain(&self, base: &Chain, v: &mut View, o: &mut Oracle) -> End {
        let policy = || {
            if base.policy.as_deref() == Some("drop") {
                End::Drop(Decider {
                    rule: None,
                    family: base.family.clone(),
                    table: base.table.clone(),
                    chain: base.name.clone(),
                })
            } else {
                End::Accept
            }
        };
        let mut stack: Vec<(&Chain, usize)> = Vec::new();
        let mut cur = base;
        let mut i = 0;
        loop {
            if i >= cur.rules.len() {
                match stack.pop() {
                    Some((c, j)) => {
                        (cur, i) = (c, j);
                        continue;
                    }
                    None => return policy(),
                }
            }
            let idx = i;
            i += 1;
            let target = |name: &str| self.rs.chain(&cur.family, &cur.table, name);
            match self.rule(cur, idx, v, o) {
                Step::Next => {}
                Step::Accept => return End::Accept,
                Step::Drop => {
                    return End::Drop(Decider {
                        rule: Some(self.rs.rule_ref(cur, idx)),
                        family: cur.family.clone(),
                        table: cur.table.clone(),
                        chain: cur.name.clone(),
                    })
                }
                Step::Jump(t) | Step::Goto(t)
                    if stack.len() >= MAX_DEPTH || target(&t).is_none() =>
                {
                    return End::Opaque(
                        self.rs.rule_ref(cur, idx),
                        format!("jump to {t}: no such chain, or nested too deep"),
                    )
                }
                Step::Jump(t) => {
                    stack.push((cur, i));
                    cur = target(&t).expect("checked");
                    i = 0;
                }
                Step::Goto(t) => {
                    cur = target(&t).expect("checked");
                    i = 0;
                }
                Step::Return => match stack.pop() {
                    Some((c, j)) => (cur, i) = (c, j),
                    None => return policy(),
                },
                Step::Opaque(why) => return End::Opaque(self.rs.rule_ref(cur, idx), why),
            }
        }
    }
}

/// A bitmask against flags: `==` compares exactly, `in` tests any flag (what `tcp flags syn`
/// means); `!=` is answered only where both readings agree.
fn flags_match(val: &Val, op: &str, right: &Value) -> Tri {
    let Val::Flags { set, masked } = val else {
        return Tri::Unknown;
    };
    let same = |r: &[String]| {
        let mut a: Vec<&String> = set.iter().collect();
        let mut b: Vec<&String> = r.iter().collect();
        a.sort();
        a.dedup();
        b.sort();
        b.dedup();
        a == b
    };
    if let Some(elems) = right.get("set").and_then(Value::as_array) {
        let hits: Option<Vec<bool>> = elems
            .iter()
            .map(|e| flag_names(e).map(|r| same(&r)))
            .collect();
        return match (op, hits) {
            ("==" | "in", Some(h)) => Tri::from(h.contains(&true)),
            ("!=", Some(h)) => Tri::from(!h.contains(&true)),
            _ => Tri::Unknown,
        };
    }
    let Some(r) = flag_names(right) else {
        return Tri::Unknown;
    };
    let eq = same(&r);
    let any = r.iter().any(|f| set.contains(f));
    match op {
        "==" => Tri::from(eq),
        "in" if !masked => Tri::from(any),
        _ if eq != any => Tri::Unknown,
        "in" => Tri::from(eq),
        "!=" => Tri::from(!eq),
        _ => Tri::Unknown,
    }
}

/// A scalar on the right of a match against a packet value.
fn scalar_eq(val: &Val, e: &Value) -> Tri {
    match (val, e) {
        (Val::Addr(a), Value::String(s)) => match s.parse::<IpAddr>() {
            Ok(b) => Tri::from(*a == b),
            Err(_) => Tri::Unknown,
        },
        (Val::Num(n), Value::Number(m)) => Tri::from(Some(*n) == m.as_u64()),
        (Val::Num(n), Value::String(s)) => match s.parse::<u64>() {
            Ok(m) => Tri::from(*n == m),
            Err(_) => Tri::Unknown,
        },
        (Val::Sym(a), Value::String(b)) => match b.parse::<u64>() {
            _ if a.eq_ignore_ascii_case(b) => Tri::True,
            Ok(n) => match proto_number(a) {
                Some(m) => Tri::from(n == m),
                None => Tri::Unknown,
            },
            Err(_) => Tri::False,
        },
        (Val::Sym(a), Value::Number(m)) => match proto_number(a) {
            Some(n) => Tri::from(Some(n) == m.as_u64()),
            None => Tri::Unknown,
        },
        (Val::If(name), Value::String(pat)) => {
            Tri::from(match pat.strip_suffix('*').filter(|p| !p.ends_with('\\')) {
                Some(prefix) => name.starts_with(prefix),
                None => name == pat,
            })
        }
        (Val::Fib(dev), Value::Bool(exists)) => Tri::from(dev.is_some() == *exists),
        (Val::Fib(dev), Value::String(s)) if s == "0" => Tri::from(dev.is_none()),
        (Val::Fib(dev), Value::Number(n)) if n.as_u64() == Some(0) => Tri::from(dev.is_none()),
        (Val::Fib(dev), Value::String(s)) => Tri::from(dev.as_deref() == Some(s.as_str())),
        _ => Tri::Unknown,
    }
}

/// Evaluate one direction of the flow.
pub fn path(rs: &Ruleset, q: &Query, dir: Direction) -> PathVerdict {
    let hooks: &[&str] = match dir {
        Direction::Request => &["ingress", "prerouting", "input"],
        Direction::Reply => &["output", "postrouting", "egress"],
    };
    let fam = if q.vip.is_ipv4() { "ip" } else { "ip6" };
    // Each base chain with whether it sees this packet (None: cannot tell, a fork).
    let mut bases: Vec<(&Chain, Option<bool>)> = Vec::new();
    for hook in hooks {
        let device_hook = matches!(*hook, "ingress" | "egress");
        let mut on: Vec<&Chain> = rs
            .chains
            .iter()
            .filter(|c| c.hook.as_deref() == Some(*hook))
            .filter(|c| c.family == "inet" || c.family == if device_hook { "netdev" } else { fam })
            // Only a flow's first packet traverses nat chains; the reply is not one.
            .filter(|c| dir == Direction::Request || c.kind.as_deref() != Some("nat"))
            .collect();
        on.sort_by_key(|c| c.prio);
        let dev = match dir {
            Direction::Request => q.iif.as_deref(),
            Direction::Reply => q.oif.as_deref(),
        };
        bases.extend(on.into_iter().map(|c| {
            let gate = if !device_hook {
                Some(true)
            } else {
                match (&c.devices, dev) {
                    (Some(list), Some(d)) => Some(list.iter().any(|x| x == d)),
                    _ => None,
                }
            };
            (c, gate)
        }));
    }
    let mut oracle = Oracle::default();
    let walker = Walker { rs };
    let mut ends: Vec<(End, Vec<RuleRef>)> = Vec::new();
    let mut gave_up = true;
    for _ in 0..MAX_RUNS {
        oracle.pos = 0;
        oracle.seen.clear();
        let mut end = End::Accept;
        for (base, gate) in &bases {
            let applies = match gate {
                Some(g) => *g,
                None => oracle.decide(RuleRef {
                    family: base.family.clone(),
                    table: base.table.clone(),
                    chain: base.name.clone(),
                    handle: 0,
                    position: 0,
                    text: format!(
                        "(the whole chain: hook {} on a device nft's JSON does not name)",
                        base.hook.as_deref().unwrap_or("?")
                    ),
                }),
            };
            if !applies {
                continue;
            }
            let mut view = View {
                q,
                dir,
                hook: base.hook.clone().unwrap_or_default(),
                prio: base.prio,
                notrack: false,
            };
            end = walker.chain(base, &mut view, &mut oracle);
            if !matches!(end, End::Accept) {
                break;
            }
        }
        ends.push((end, oracle.seen.clone()));
        if !oracle.advance() {
            gave_up = false;
            break;
        }
    }
    let verdict = combine(ends, gave_up);
    PathVerdict {
        direction: dir,
        verdict,
    }
}

fn combine(ends: Vec<(End, Vec<RuleRef>)>, too_many: bool) -> Verdict {
    let mut unknown: Vec<RuleRef> = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    let push = |v: &mut Vec<RuleRef>, r: &RuleRef| {
        if !v.contains(r) {
            v.push(r.clone());
        }
    };
    if too_many {
        reasons.push(format!(
            "more than {MAX_RUNS} combinations of rules that cannot be evaluated"
        ));
    }
    for (end, seen) in &ends {
        if let End::Opaque(r, why) = end {
            push(&mut unknown, r);
            reasons.push(format!("handle {}: {why}", r.handle));
            for s in seen {
                push(&mut unknown, s);
            }
        }
    }
    let all_accept = ends.iter().all(|(e, _)| matches!(e, End::Accept));
    let all_drop = ends.iter().all(|(e, _)| matches!(e, End::Drop(_)));
    if unknown.is_empty() && !too_many {
        if all_accept {
            return Verdict::Accept;
        }
        if all_drop {
            let mut deciders = ends.into_iter().filter_map(|(e, _)| match e {
                End::Drop(d) => Some(d),
                _ => None,
            });
            let by = deciders.next().expect("at least one walk");
            let mut might_also = Vec::new();
            for d in deciders {
                if let Some(r) = d.rule {
                    if by.rule.as_ref() != Some(&r) {
                        push(&mut might_also, &r);
                    }
                }
            }
            return Verdict::Drop { by, might_also };
        }
    }
    // Mixed: the undecidable rules met on the walks that dropped might drop.
    for (end, seen) in &ends {
        if let End::Drop(d) = end {
            for s in seen {
                push(&mut unknown, s);
            }
            if let Some(r) = &d.rule {
                if !seen.is_empty() {
                    push(&mut unknown, r);
                }
            }
        }
    }
    Verdict::Unknown {
        rules: unknown,
        reasons,
    }
}
