//! "`ip route get` for the firewall": the verdict nftables gives one concrete DSR flow — the
//! client's SYN to VIP:port on the way in, the SYN-ACK from the VIP on the way out.
//!
//! Pure: it reads `nft -j list ruleset` output (which includes iptables-nft rules) plus route
//! answers the caller looked up (`ip route get CLIENT from VIP`), and makes no syscalls, so every
//! case is unit-tested on captured JSON. `lbctl firewall check` and doctor's `firewall.*` checks
//! are thin layers over [`check`]. Its one promise: a ✓ or ✗ only when every rule on the path
//! could be evaluated — otherwise "unknown", naming the rules that might drop.

pub mod eval;
pub mod model;
pub mod render;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Value};

pub use model::{RuleRef, Ruleset};

/// Transport protocol of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Which half of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The client's first packet (SYN), hooks prerouting and input, `ct state new`.
    Request,
    /// The service's answer (SYN-ACK) from the VIP, hooks output and postrouting,
    /// `ct state established`.
    Reply,
}

/// The flow to judge and what the caller knows about routing.
#[derive(Debug, Clone)]
pub struct Query {
    pub vip: IpAddr,
    pub port: u16,
    pub client: IpAddr,
    /// The client's source port; `None`: anywhere in the ephemeral range.
    pub client_port: Option<u16>,
    pub proto: Proto,
    /// Interface the client's packets arrive on (`None`: not known; `iif` matches are unknown).
    pub iif: Option<String>,
    /// Interface replies leave by (`ip route get CLIENT from VIP`).
    pub oif: Option<String>,
    /// `fib saddr . iif oif`: does the route back to the client leave by `iif`?
    pub route_back_via_iif: Option<bool>,
    /// `fib saddr oif` (loose): is there any route back to the client?
    pub route_back: Option<bool>,
    /// `fib daddr type local`: is the VIP an address of this host?
    pub vip_local: Option<bool>,
}

impl Query {
    /// A query for a new flow from `client` (any ephemeral port), given the interface its
    /// packets arrive on and `ip route get CLIENT from VIP` (how the kernel's `fib saddr`
    /// expression sees the way back; `None` when the lookup failed: fib matches are unknown).
    pub fn new(
        vip: IpAddr,
        port: u16,
        client: IpAddr,
        proto: Proto,
        iif: Option<String>,
        reply: Option<&crate::sys::netlink::Lookup>,
    ) -> Query {
        let unicast = reply.filter(|l| l.kind == "unicast");
        let oif = unicast.and_then(|l| l.dev.clone());
        Query {
            vip,
            port,
            client,
            client_port: None,
            proto,
            route_back_via_iif: match (reply, &iif) {
                (Some(_), Some(i)) => Some(oif.as_deref() == Some(i.as_str())),
                _ => None,
            },
            route_back: reply.map(|_| unicast.is_some()),
            vip_local: None,
            iif,
            oif,
        }
    }
}

/// What decided a drop: a rule, or (rule `None`) the base chain's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decider {
    pub rule: Option<RuleRef>,
    pub family: String,
    pub table: String,
    pub chain: String,
}

impl Decider {
    /// `table inet filter chain input handle 3: tcp dport 80 drop`
    pub fn describe(&self) -> String {
        match &self.rule {
            Some(r) => format!(
                "table {} {} chain {} handle {}: {}",
                r.family, r.table, r.chain, r.handle, r.text
            ),
            None => format!(
                "table {} {} chain {}: policy drop",
                self.family, self.table, self.chain
            ),
        }
    }
}

/// One direction's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop {
        by: Decider,
        /// Rules that drop under other assumptions about undecidable rules before `by`.
        might_also: Vec<RuleRef>,
    },
    /// Some assumptions accept and others drop, or a statement could not be modelled.
    Unknown {
        rules: Vec<RuleRef>,
        reasons: Vec<String>,
    },
}

#[derive(Debug, Clone)]
pub struct PathVerdict {
    pub direction: Direction,
    pub verdict: Verdict,
}

/// Both directions.
#[derive(Debug, Clone)]
pub struct Check {
    pub request: PathVerdict,
    pub reply: PathVerdict,
}

/// Judge the flow in `q` against `rs`.
pub fn check(rs: &Ruleset, q: &Query) -> Check {
    Check {
        request: eval::path(rs, q, Direction::Request),
        reply: eval::path(rs, q, Direction::Reply),
    }
}

/// A fix for a drop: the accept rule to insert, and the delete alternative.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    /// Pasteable command inserting an accept for this flow ahead of the drop.
    pub insert: String,
    /// Pasteable command deleting the dropping rule (none for a policy).
    pub delete: Option<String>,
}

/// Table names iptables-nft creates.
const IPTABLES_TABLES: [&str; 5] = ["filter", "raw", "mangle", "nat", "security"];

/// A table written by iptables-nft (`ip`/`ip6` family, an iptables table name, uppercase
/// built-in chains): fixes go through iptables, as nft itself warns not to touch it.
pub fn is_iptables_nft(rs: &Ruleset, family: &str, table: &str) -> bool {
    matches!(family, "ip" | "ip6")
        && IPTABLES_TABLES.contains(&table)
        && rs.chains.iter().any(|c| {
            c.family == family
                && c.table == table
                && matches!(
                    c.name.as_str(),
                    "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
                )
        })
}

/// The commands that let this flow through the rule (or policy) that drops it. With `netns`
/// they are prefixed `ip netns exec NS`.
pub fn fix(rs: &Ruleset, q: &Query, dir: Direction, by: &Decider, netns: Option<&str>) -> Fix {
    let pre = netns
        .map(|ns| format!("ip netns exec {ns} "))
        .unwrap_or_default();
    let p = q.proto.name();
    if is_iptables_nft(rs, &by.family, &by.table) {
        let tool = if by.family == "ip6" {
            "ip6tables"
        } else {
            "iptables"
        };
        let t = if by.table == "filter" {
            String::new()
        } else {
            format!("-t {} ", by.table)
        };
        let m = match dir {
            Direction::Request => format!("-d {} -p {p} --dport {}", q.vip, q.port),
            Direction::Reply => format!("-s {} -p {p} --sport {}", q.vip, q.port),
        };
        return Fix {
            insert: format!("{pre}{tool} {t}-I {} {m} -j ACCEPT", by.chain),
            delete: by
                .rule
                .as_ref()
                .map(|r| format!("{pre}{tool} {t}-D {} {}", r.chain, r.position)),
        };
    }
    let ipf = if q.vip.is_ipv4() { "ip" } else { "ip6" };
    let m = match dir {
        Direction::Request => format!("{ipf} daddr {} {p} dport {}", q.vip, q.port),
        Direction::Reply => format!("{ipf} saddr {} {p} sport {}", q.vip, q.port),
    };
    Fix {
        insert: format!(
            "{pre}nft insert rule {} {} {} {m} accept",
            by.family, by.table, by.chain
        ),
        delete: by.rule.as_ref().map(|r| {
            format!(
                "{pre}nft delete rule {} {} {} handle {}",
                r.family, r.table, r.chain, r.handle
            )
        }),
    }
}

impl PathVerdict {
    /// `accept`, `drop` or `unknown`.
    pub fn word(&self) -> &'static str {
        match self.verdict {
            Verdict::Accept => "accept",
            Verdict::Drop { .. } => "drop",
            Verdict::Unknown { .. } => "unknown",
        }
    }

    /// What the packet is, e.g. `SYN 198.18.0.10 → 198.18.0.100:80 tcp, iif eth0, ct state new`.
    pub fn describe(&self, q: &Query) -> String {
        let iface = |i: &Option<String>| i.clone().unwrap_or_else(|| "?".into());
        match self.direction {
            Direction::Request => format!(
                "{} {} → {} {}, iif {}, ct state new",
                if q.proto == Proto::Tcp {
                    "SYN"
                } else {
                    "request"
                },
                q.client,
                sock(q.vip, q.port),
                q.proto.name(),
                iface(&q.iif)
            ),
            Direction::Reply => format!(
                "{} {} → {} {}, oif {}, ct state established",
                if q.proto == Proto::Tcp {
                    "SYN-ACK"
                } else {
                    "reply"
                },
                sock(q.vip, q.port),
                q.client,
                q.proto.name(),
                iface(&q.oif)
            ),
        }
    }

    /// Human lines: the dropping rule, or the rules that could not be evaluated.
    pub fn evidence(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.verdict {
            Verdict::Accept => {}
            Verdict::Drop { by, might_also } => {
                out.push(format!("dropped by {}", by.describe()));
                for r in might_also {
                    out.push(format!(
                        "also might drop: table {} {} chain {} handle {}: {}",
                        r.family, r.table, r.chain, r.handle, r.text
                    ));
                }
            }
            Verdict::Unknown { rules, reasons } => {
                for r in rules {
                    out.push(format!(
                        "could not evaluate, might drop: table {} {} chain {} handle {}: {}",
                        r.family, r.table, r.chain, r.handle, r.text
                    ));
                }
                out.extend(reasons.iter().cloned());
            }
        }
        out
    }

    pub fn to_json(&self, rs: &Ruleset, q: &Query, netns: Option<&str>) -> Value {
        let rule = |r: &RuleRef| serde_json::to_value(r).unwrap_or_default();
        let mut v = json!({
            "verdict": self.word(),
            "packet": self.describe(q),
        });
        match &self.verdict {
            Verdict::Accept => {}
            Verdict::Drop { by, might_also } => {
                v["by"] = json!({
                    "family": by.family, "table": by.table, "chain": by.chain,
                    "rule": by.rule.as_ref().map(rule),
                    "policy": by.rule.is_none(),
                    "text": by.describe(),
                });
                v["might_also"] = might_also.iter().map(rule).collect();
                v["fix"] =
                    serde_json::to_value(fix(rs, q, self.direction, by, netns)).unwrap_or_default();
            }
            Verdict::Unknown { rules, reasons } => {
                v["unknown_rules"] = rules.iter().map(rule).collect();
                v["reasons"] = json!(reasons);
            }
        }
        v
    }
}

/// `198.18.0.100:80`, `[2001:db8::100]:80`
pub fn sock(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

#[cfg(test)]
mod tests;
