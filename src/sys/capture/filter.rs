//! tcpdump-style filter expressions, parsed into a typed AST and evaluated in-process on decoded
//! packets (no kernel BPF: captures are short and targeted).
//!
//! Primitives: `[src|dst|src or dst|src and dst] host ADDR`, `… net CIDR`, `… port N`,
//! `… portrange N-M`, a bare address after `src`/`dst`, `tcp`, `udp`, `icmp`, `icmp6`, `arp`,
//! `ip`, `ip6`, `vlan [ID]`; a protocol may qualify a primitive (`tcp port 80`, `ip6 host
//! 2001:db8::1`, `arp host 198.18.0.1`). Combined with `and`/`&&`, `or`/`||`, `not`/`!` and
//! parentheses; as in tcpdump, a bare value after `and`/`or` repeats the previous primitive's
//! qualifiers (`port 80 or 443`).
//!
//! One deliberate difference: tcpdump's protocol primitives do not look inside 802.1Q tags
//! unless `vlan` came first; here every primitive looks at the packet inside its tags, and
//! `vlan [ID]` tests the outer tag.

use ipnet::IpNet;

use super::*;

/// Which end(s) of a packet an address or port primitive looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    /// Either end (the default, and `src or dst`).
    Any,
    /// Both ends (`src and dst`).
    Both,
}

/// A transport or network protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    Icmp6,
    Arp,
    Ip,
    Ip6,
}

/// The filter AST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Host(Dir, IpAddr),
    Net(Dir, IpNet),
    /// A TCP or UDP port range (inclusive), optionally only for one protocol.
    Port(Dir, Option<Proto>, u16, u16),
    Proto(Proto),
    /// Tagged, optionally with this VLAN id.
    Vlan(Option<u16>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// What the filter looks at.
pub struct View<'a> {
    pub ethertype: u16,
    pub vlan: Option<u16>,
    pub l3: &'a L3,
}

fn ends(l3: &L3) -> Option<(IpAddr, IpAddr)> {
    match l3 {
        L3::Ip { src, dst, .. } => Some((*src, *dst)),
        L3::Arp {
            sender_ip,
            target_ip,
            ..
        } => Some((IpAddr::V4(*sender_ip), IpAddr::V4(*target_ip))),
        L3::Other { .. } => None,
    }
}

fn by_dir(dir: Dir, (s, d): (bool, bool)) -> bool {
    match dir {
        Dir::Src => s,
        Dir::Dst => d,
        Dir::Any => s || d,
        Dir::Both => s && d,
    }
}

impl Proto {
    fn matches(self, v: &View<'_>) -> bool {
        match (self, v.l3) {
            (Proto::Arp, _) => v.ethertype == ETH_P_ARP,
            (Proto::Ip, _) => v.ethertype == ETH_P_IP,
            (Proto::Ip6, _) => v.ethertype == ETH_P_IPV6,
            (Proto::Tcp, L3::Ip { l4, .. }) => {
                matches!(l4, L4::Tcp { .. } | L4::Other { proto: IPPROTO_TCP })
            }
            (Proto::Udp, L3::Ip { l4, .. }) => {
                matches!(l4, L4::Udp { .. } | L4::Other { proto: IPPROTO_UDP })
            }
            (Proto::Icmp, L3::Ip { l4, .. }) => {
                matches!(l4, L4::Icmp { .. })
                    || matches!(
                        l4,
                        L4::Other {
                            proto: IPPROTO_ICMP
                        }
                    )
            }
            (Proto::Icmp6, L3::Ip { l4, .. }) => {
                matches!(l4, L4::Icmp6 { .. })
                    || matches!(
                        l4,
                        L4::Other {
                            proto: IPPROTO_ICMPV6
                        }
                    )
            }
            _ => false,
        }
    }
}

impl Expr {
    pub fn matches(&self, v: &View<'_>) -> bool {
        match self {
            Expr::Host(dir, ip) => {
                ends(v.l3).is_some_and(|(s, d)| by_dir(*dir, (s == *ip, d == *ip)))
            }
            Expr::Net(dir, net) => {
                ends(v.l3).is_some_and(|(s, d)| by_dir(*dir, (net.contains(&s), net.contains(&d))))
            }
            Expr::Port(dir, proto, lo, hi) => {
                let L3::Ip { l4, .. } = v.l3 else {
                    return false;
                };
                let (sp, dp, p) = match l4 {
                    L4::Tcp { sport, dport, .. } => (*sport, *dport, Proto::Tcp),
                    L4::Udp { sport, dport, .. } => (*sport, *dport, Proto::Udp),
                    _ => return false,
                };
                if proto.is_some_and(|q| q != p) {
                    return false;
                }
                let r = |x: u16| (*lo..=*hi).contains(&x);
                by_dir(*dir, (r(sp), r(dp)))
            }
            Expr::Proto(p) => p.matches(v),
            Expr::Vlan(id) => match (v.vlan, id) {
                (Some(t), Some(id)) => t == *id,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Expr::Not(e) => !e.matches(v),
            Expr::And(a, b) => a.matches(v) && b.matches(v),
            Expr::Or(a, b) => a.matches(v) || b.matches(v),
        }
    }

    /// Does this filter keep `p`?
    pub fn matches_packet(&self, p: &Packet) -> bool {
        let ethertype = match &p.l3 {
            L3::Arp { .. } => ETH_P_ARP,
            L3::Ip { src, .. } if src.is_ipv4() => ETH_P_IP,
            L3::Ip { .. } => ETH_P_IPV6,
            L3::Other { ethertype } => *ethertype,
        };
        self.matches(&View {
            ethertype,
            vlan: p.vlan,
            l3: &p.l3,
        })
    }

    /// Parse the words of a filter (as given on the command line, joined by spaces). Errors
    /// are usage errors naming the 1-based character position in the joined expression.
    pub fn parse(words: &[String]) -> Result<Expr> {
        let text = words.join(" ");
        let toks = tokenize(&text)?;
        let mut p = Parser {
            text: &text,
            toks,
            i: 0,
            last: None,
        };
        let e = p.or()?;
        if let Some(t) = p.toks.get(p.i) {
            return Err(p.err(t.pos, &format!("unexpected '{}'", t.s)));
        }
        Ok(e)
    }
}

#[derive(Debug, Clone)]
struct Tok {
    s: String,
    /// 0-based byte offset in the expression.
    pos: usize,
}

fn tokenize(text: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' || c == b')' {
            out.push(Tok {
                s: (c as char).to_string(),
                pos: i,
            });
            i += 1;
        } else if c == b'!' {
            out.push(Tok {
                s: "!".into(),
                pos: i,
            });
            i += 1;
        } else if (c == b'&' || c == b'|') && b.get(i + 1) == Some(&c) {
            out.push(Tok {
                s: if c == b'&' { "and" } else { "or" }.into(),
                pos: i,
            });
            i += 2;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"()!&|".contains(&b[i]) {
                i += 1;
            }
            if i == start {
                return Err(usage!(
                    "bad filter expression: unexpected '{}' at character {} of '{text}'",
                    c as char,
                    start + 1
                ));
            }
            out.push(Tok {
                s: text[start..i].to_ascii_lowercase(),
                pos: start,
            });
        }
    }
    Ok(out)
}

/// The kind of value primitive the last one was, for `port 80 or 443`.
#[derive(Clone, Copy)]
enum Last {
    Host(Dir, Option<Proto>),
    Net(Dir, Option<Proto>),
    Port(Dir, Option<Proto>),
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Tok>,
    i: usize,
    last: Option<Last>,
}

impl Parser<'_> {
    fn err(&self, pos: usize, msg: &str) -> Error {
        usage!(
            "bad filter expression: {msg} at character {} of '{}'",
            pos + 1,
            self.text
        )
    }

    fn end_pos(&self) -> usize {
        self.text.len()
    }

    fn peek(&self) -> Option<&str> {
        self.toks.get(self.i).map(|t| t.s.as_str())
    }

    fn next(&mut self, what: &str) -> Result<Tok> {
        match self.toks.get(self.i) {
            Some(t) => {
                self.i += 1;
                Ok(t.clone())
            }
            None => Err(self.err(self.end_pos(), &format!("expected {what}"))),
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while self.peek() == Some("or") {
            self.i += 1;
            let r = self.and()?;
            e = Expr::Or(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut e = self.not()?;
        while self.peek() == Some("and") {
            self.i += 1;
            let r = self.not()?;
            e = Expr::And(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr> {
        if matches!(self.peek(), Some("not") | Some("!")) {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        let t = self.next("a primitive (host, net, port, tcp, udp, icmp, arp, ip, ip6, vlan)")?;
        match t.s.as_str() {
            "(" => {
                let e = self.or()?;
                match self.toks.get(self.i) {
                    Some(c) if c.s == ")" => {
                        self.i += 1;
                        Ok(e)
                    }
                    Some(c) => Err(self.err(c.pos, &format!("expected ')', not '{}'", c.s))),
                    None => Err(self.err(self.end_pos(), "expected ')'")),
                }
            }
            "tcp" | "udp" | "icmp" | "icmp6" | "arp" | "ip" | "ip6" => {
                let proto = match t.s.as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    "icmp" => Proto::Icmp,
                    "icmp6" => Proto::Icmp6,
                    "arp" => Proto::Arp,
                    "ip" => Proto::Ip,
                    _ => Proto::Ip6,
                };
                if matches!(
                    self.peek(),
                    Some("host" | "net" | "port" | "portrange" | "src" | "dst")
                ) {
                    // `tcp port 80` is a port of TCP; `ip host X` is X over IPv4.
                    return self.qualified(Some(proto));
                }
                Ok(Expr::Proto(proto))
            }
            "vlan" => {
                if let Some(n) = self.peek().and_then(|s| s.parse::<u16>().ok()) {
                    let pos = self.toks[self.i].pos;
                    self.i += 1;
                    if n > 4095 {
                        return Err(self.err(pos, &format!("VLAN id {n} is out of range (0-4095)")));
                    }
                    return Ok(Expr::Vlan(Some(n)));
                }
                Ok(Expr::Vlan(None))
            }
            "host" | "net" | "port" | "portrange" | "src" | "dst" => {
                self.i -= 1;
                self.qualified(None)
            }
            _ => {
                // A bare value repeats the previous primitive's qualifiers.
                if let Some(last) = self.last {
                    self.i -= 1;
                    return self.value(last);
                }
                Err(self.err(t.pos, &format!("unknown primitive '{}'", t.s)))
            }
        }
    }

    /// `[src|dst|src or dst|src and dst] (host|net|port|portrange) VALUE`, or `src|dst ADDR`.
    fn qualified(&mut self, proto: Option<Proto>) -> Result<Expr> {
        let mut dir = Dir::Any;
        if let Some(d @ ("src" | "dst")) = self.peek().map(str::to_string).as_deref() {
            dir = if d == "src" { Dir::Src } else { Dir::Dst };
            self.i += 1;
            let two = (self.peek(), self.toks.get(self.i + 1).map(|t| t.s.as_str()));
            if let (Some(op @ ("or" | "and")), Some(o @ ("src" | "dst"))) = two {
                if o != d {
                    dir = if op == "or" { Dir::Any } else { Dir::Both };
                    self.i += 2;
                }
            }
        }
        let kind = match self.peek() {
            Some("host") => Last::Host(dir, proto),
            Some("net") => Last::Net(dir, proto),
            Some("port" | "portrange") => Last::Port(dir, proto),
            _ if dir != Dir::Any => {
                // `src 198.18.0.1`: host implied.
                let last = Last::Host(dir, proto);
                self.last = Some(last);
                return self.value(last);
            }
            Some(other) => {
                let pos = self.toks[self.i].pos;
                return Err(self.err(pos, &format!("expected host, net or port, not '{other}'")));
            }
            None => return Err(self.err(self.end_pos(), "expected host, net or port")),
        };
        self.i += 1;
        self.last = Some(kind);
        self.value(kind)
    }

    fn value(&mut self, kind: Last) -> Result<Expr> {
        let what = match kind {
            Last::Host(..) => "an address",
            Last::Net(..) => "a network (CIDR)",
            Last::Port(..) => "a port number",
        };
        let t = self.next(what)?;
        let bad = |p: &Self, m: String| Err(p.err(t.pos, &m));
        let over = |proto: Option<Proto>, e: Expr| match proto {
            Some(p) => Expr::And(Box::new(Expr::Proto(p)), Box::new(e)),
            None => e,
        };
        match kind {
            Last::Host(dir, proto) => match t.s.parse::<IpAddr>() {
                Ok(ip) => Ok(over(proto, Expr::Host(dir, ip))),
                Err(_) => bad(self, format!("'{}' is not an IP address", t.s)),
            },
            Last::Net(dir, proto) => {
                if let Ok(n) = t.s.parse::<IpNet>() {
                    return Ok(over(proto, Expr::Net(dir, n.trunc())));
                }
                match t.s.parse::<IpAddr>() {
                    Ok(ip) => Ok(over(proto, Expr::Net(dir, IpNet::from(ip)))),
                    Err(_) => bad(self, format!("'{}' is not a network (CIDR)", t.s)),
                }
            }
            Last::Port(dir, proto) => {
                let port = |s: &str| s.parse::<u16>().ok();
                let (lo, hi) = match t.s.split_once('-') {
                    Some((a, b)) => match (port(a), port(b)) {
                        (Some(a), Some(b)) if a <= b => (a, b),
                        _ => return bad(self, format!("'{}' is not a port range", t.s)),
                    },
                    None => match port(&t.s) {
                        Some(p) => (p, p),
                        None => return bad(self, format!("'{}' is not a port number", t.s)),
                    },
                };
                let proto = proto.filter(|p| matches!(p, Proto::Tcp | Proto::Udp));
                Ok(Expr::Port(dir, proto, lo, hi))
            }
        }
    }
}
