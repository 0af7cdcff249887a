//! The ruleset as the evaluator needs it: base chains with hook, priority and policy, every
//! chain's rules in order, and named sets/maps — indexed from `nft -j list ruleset`.
//!
//! Expressions stay raw JSON on purpose: other tools' tables (firewalld, iptables-nft, docker)
//! use constructs no typed schema covers, and the evaluator must be able to say "unknown" about
//! them rather than fail to parse the whole ruleset.

use std::collections::BTreeMap;

use serde_json::Value;

/// A rule's place in the ruleset, as `nft -a list` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct RuleRef {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// 1-based position in its chain (what `iptables -D CHAIN N` takes).
    pub position: usize,
    /// The rule as `nft list` prints it (rendered from the JSON).
    pub text: String,
}

/// One rule: its handle and raw statements.
#[derive(Debug, Clone)]
pub struct Rule {
    pub handle: u64,
    pub expr: Vec<Value>,
}

/// A chain; base chains have a hook.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub hook: Option<String>,
    /// `filter`, `nat` or `route`.
    pub kind: Option<String>,
    pub prio: i64,
    /// Devices of a netdev/ingress/egress chain, when the listing names them (nft 1.0.6's
    /// JSON does not: then `None`).
    pub devices: Option<Vec<String>>,
    pub policy: Option<String>,
    pub rules: Vec<Rule>,
}

/// A named set or map.
#[derive(Debug, Clone, Default)]
pub struct Set {
    pub elems: Vec<Value>,
    /// Its content changes at run time (`flags dynamic` or `timeout`).
    pub dynamic: bool,
    /// A map: elements are `[key, value]` pairs.
    pub is_map: bool,
}

/// The indexed ruleset.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    /// In listing order.
    pub chains: Vec<Chain>,
    /// (family, table, name) → set or map.
    pub sets: BTreeMap<(String, String, String), Set>,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

impl Ruleset {
    /// Index `nft -j list ruleset` output. Unknown object kinds are ignored.
    pub fn parse(doc: &Value) -> Ruleset {
        let mut rs = Ruleset::default();
        let objs: &[Value] = doc["nftables"].as_array().map_or(&[], Vec::as_slice);
        for o in objs {
            if let Some(c) = o.get("chain") {
                rs.chains.push(Chain {
                    family: s(&c["family"]),
                    table: s(&c["table"]),
                    name: s(&c["name"]),
                    hook: c["hook"].as_str().map(str::to_string),
                    kind: c["type"].as_str().map(str::to_string),
                    prio: c["prio"].as_i64().unwrap_or(0),
                    policy: c["policy"].as_str().map(str::to_string),
                    devices: match c.get("dev").or_else(|| c.get("devices")) {
                        Some(Value::String(d)) => Some(vec![d.clone()]),
                        Some(Value::Array(a)) => Some(
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect(),
                        ),
                        _ => None,
                    },
                    rules: Vec::new(),
                });
            } else if let Some(x) = o.get("set").or_else(|| o.get("map")) {
                let flags = x["flags"].as_array().cloned().unwrap_or_default();
                rs.sets.insert(
                    (s(&x["family"]), s(&x["table"]), s(&x["name"])),
                    Set {
                        elems: x["elem"].as_array().cloned().unwrap_or_default(),
                        dynamic: flags.iter().any(|f| f == "dynamic" || f == "timeout"),
                        is_map: o.get("map").is_some(),
                    },
                );
            }
        }
        let index: BTreeMap<(&str, &str, &str), usize> = rs
            .chains
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.family.as_str(), c.table.as_str(), c.name.as_str()), i))
            .collect();
        let mut rules: Vec<(usize, Rule)> = Vec::new();
        for o in objs {
            let Some(r) = o.get("rule") else { continue };
            let key = (
                r["family"].as_str().unwrap_or_default(),
                r["table"].as_str().unwrap_or_default(),
                r["chain"].as_str().unwrap_or_default(),
            );
            if let Some(&i) = index.get(&key) {
                rules.push((
                    i,
                    Rule {
                        handle: r["handle"].as_u64().unwrap_or(0),
                        expr: r["expr"].as_array().cloned().unwrap_or_default(),
                    },
                ));
            }
        }
        for (i, rule) in rules {
            rs.chains[i].rules.push(rule);
        }
        rs
    }

    pub fn chain(&self, family: &str, table: &str, name: &str) -> Option<&Chain> {
        self.chains
            .iter()
            .find(|c| c.family == family && c.table == table && c.name == name)
    }

    pub fn set(&self, family: &str, table: &str, name: &str) -> Option<&Set> {
        self.sets
            .get(&(family.to_string(), table.to_string(), name.to_string()))
    }

    /// The reference (with rendered text) of the rule at `index` in `chain`.
    pub fn rule_ref(&self, chain: &Chain, index: usize) -> RuleRef {
        let rule = &chain.rules[index];
        RuleRef {
            family: chain.family.clone(),
            table: chain.table.clone(),
            chain: chain.name.clone(),
            handle: rule.handle,
            position: index + 1,
            text: super::render::rule(&rule.expr),
        }
    }
}
