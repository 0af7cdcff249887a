//! nftables: lbctl's own `arp` table, built with the `nftables` crate's JSON schema and applied
//! with `nft -j -f -` (stderr captured so nft's message reaches the user).
//!
//! **One rule for the two nft dialects** (the only place this is decided): a table lbctl
//! builds is written with the `nftables` crate's typed JSON when nft 1.0.6's JSON schema can
//! express it (the `arp lbctl` table here), and as nft text when it cannot — the balancer's
//! `netdev lbctl_lb_NAME` table (`crate::lb::nft`) needs `typeof` maps, which nft 1.0.6's JSON
//! parser rejects (PLATFORM.md §4). Whole-table deletion (`delete table F N`) and restoring a
//! table from `nft list table` text (the undo of a deletion) are text because that is the form
//! nft prints and reads back verbatim. Foreign tables are only ever read, as raw JSON.
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
//! Sets keep 10,000 VIPs at two rules. Every change rebuilds the whole table in one nft
//! transaction (`add table; delete table; add …`), which is atomic and idempotent. Only this
//! table is ever listed or touched.

use std::borrow::Cow;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nftables::{
    expr::{Expression, Map, NamedExpression, Payload, PayloadField},
    schema::{self, Chain, Element, NfCmd, NfListObject, NfObject, Nftables, Rule, Table},
    stmt::{Counter, Mangle, Match, Operator, Statement},
    types::{NfChainPolicy, NfChainType, NfFamily, NfHook},
};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::ARP_TABLE;
use crate::plan::ArpMap;

const SET: &str = "vips";
const MAP: &str = "vip_rip";

fn arp_field(field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed("arp"),
            field: Cow::Borrowed(field),
        },
    )))
}

fn eq(left: Expression<'static>, right: &'static str) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right: Expression::String(Cow::Borrowed(right)),
        op: Operator::EQ,
    })
}

fn chain(name: &'static str, hook: NfHook) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::ARP,
        table: Cow::Borrowed(ARP_TABLE),
        name: Cow::Borrowed(name),
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

/// The two rules, as (chain, statements).
fn rules() -> Vec<(&'static str, Vec<Statement<'static>>)> {
    vec![
        (
            "input",
            vec![
                eq(arp_field("operation"), "request"),
                eq(arp_field("daddr ip"), "@vips"),
                Statement::Counter(Counter::Anonymous(None)),
                Statement::Drop(None),
            ],
        ),
        (
            "output",
            vec![
                eq(arp_field("saddr ip"), "@vips"),
                Statement::Counter(Counter::Anonymous(None)),
                Statement::Mangle(Mangle {
                    key: arp_field("saddr ip"),
                    value: Expression::Named(NamedExpression::Map(Box::new(Map {
                        key: arp_field("saddr ip"),
                        data: Expression::String(Cow::Borrowed("@vip_rip")),
                    }))),
                }),
            ],
        ),
    ]
}

/// The nft batch that makes lbctl's table hold exactly `to` (or removes it when `None`).
pub fn arp_batch(to: Option<&ArpMap>) -> Nftables<'static> {
    let table = || {
        NfListObject::Table(Table {
            family: NfFamily::ARP,
            name: Cow::Borrowed(ARP_TABLE),
            handle: None,
        })
    };
    // "add" then "delete" makes the delete succeed whether or not the table exists.
    let mut cmds = vec![NfCmd::Add(table()), NfCmd::Delete(table())];
    if let Some(map) = to {
        cmds.push(NfCmd::Add(table()));
        cmds.push(NfCmd::Add(NfListObject::Set(Box::new(schema::Set {
            family: NfFamily::ARP,
            table: Cow::Borrowed(ARP_TABLE),
            name: Cow::Borrowed(SET),
            set_type: schema::SetTypeValue::Single(schema::SetType::Ipv4Addr),
            ..schema::Set::default()
        }))));
        cmds.push(NfCmd::Add(NfListObject::Map(Box::new(schema::Map {
            family: NfFamily::ARP,
            table: Cow::Borrowed(ARP_TABLE),
            name: Cow::Borrowed(MAP),
            set_type: schema::SetTypeValue::Single(schema::SetType::Ipv4Addr),
            map: schema::SetTypeValue::Single(schema::SetType::Ipv4Addr),
            ..schema::Map::default()
        }))));
        cmds.push(NfCmd::Add(chain("input", NfHook::Input)));
        cmds.push(NfCmd::Add(chain("output", NfHook::Output)));
        for (chain, expr) in rules() {
            cmds.push(NfCmd::Add(NfListObject::Rule(Rule {
                family: NfFamily::ARP,
                table: Cow::Borrowed(ARP_TABLE),
                chain: Cow::Borrowed(chain),
                expr: Cow::Owned(expr),
                ..Rule::default()
            })));
        }
        if !map.is_empty() {
            let vips: Vec<Expression> = map
                .keys()
                .map(|v| Expression::String(Cow::Owned(v.to_string())))
                .collect();
            let pairs: Vec<Expression> = map
                .iter()
                .map(|(v, r)| {
                    Expression::List(vec![
                        Expression::String(Cow::Owned(v.to_string())),
                        Expression::String(Cow::Owned(r.to_string())),
                    ])
                })
                .collect();
            for (name, elem) in [(SET, vips), (MAP, pairs)] {
                cmds.push(NfCmd::Add(NfListObject::Element(Element {
                    family: NfFamily::ARP,
                    table: Cow::Borrowed(ARP_TABLE),
                    name: Cow::Borrowed(name),
                    elem: Cow::Owned(elem),
                })));
            }
        }
    }
    Nftables {
        objects: Cow::Owned(cmds.into_iter().map(NfObject::CmdObject).collect()),
    }
}

/// Run `nft` with arguments and optional stdin; stderr is captured and returned in errors.
fn nft(args: &[&str], stdin: Option<&[u8]>) -> Result<std::process::Output> {
    let mut child = spawn(Path::new("nft"), args, stdin.is_some())?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(data)
            .map_err(|e| Error::Runtime(anyhow::Error::new(e).context("writing to nft")))?;
    }
    finish(child)
}

/// Start `program` (nft) with stdout and stderr piped; running when this returns.
fn spawn(program: &Path, args: &[&str], stdin: bool) -> Result<Child> {
    Command::new(program)
        .args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Runtime(anyhow::anyhow!(
                    "nft(8) not found: install the nftables package (apt-get install nftables)"
                ))
            } else {
                Error::Runtime(anyhow::Error::new(e).context("running nft"))
            }
        })
}

fn finish(child: Child) -> Result<std::process::Output> {
    child
        .wait_with_output()
        .map_err(|e| Error::Runtime(anyhow::Error::new(e).context("waiting for nft")))
}

/// nft's message, shortened: nft echoes the offending input line, which for a map update can be
/// tens of kilobytes; the first lines, each cut at 300 characters, say what went wrong.
fn short_stderr(raw: &[u8]) -> String {
    const LINES: usize = 6;
    const WIDTH: usize = 300;
    let text = String::from_utf8_lossy(raw);
    let lines: Vec<&str> = text.trim().lines().collect();
    let mut out: Vec<String> = lines
        .iter()
        .take(LINES)
        .map(|l| match l.char_indices().nth(WIDTH) {
            Some((i, _)) => format!("{} …", &l[..i]),
            None => l.to_string(),
        })
        .collect();
    if lines.len() > LINES {
        out.push(format!("… ({} more line(s))", lines.len() - LINES));
    }
    out.join("\n")
}

fn nft_error(what: &str, out: &std::process::Output) -> Error {
    let stderr = short_stderr(&out.stderr);
    if stderr.contains("Operation not permitted") {
        return Error::Privilege(format!("{what}: nft: {stderr}: run as root"));
    }
    Error::Runtime(anyhow::anyhow!("{what}: nft failed: {stderr}"))
}

/// Run an nft script (text) as one transaction; `what` names it in errors.
pub fn run_script(what: &str, script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    end_sharing();
    let out = nft(&["-f", "-"], Some(script.as_bytes()))?;
    if !out.status.success() {
        return Err(nft_error(what, &out));
    }
    Ok(())
}

/// `nft -j list ARGS…` parsed; `None` when the object does not exist.
pub fn list_json(args: &[&str]) -> Result<Option<Value>> {
    list_json_with(&[], args)
}

fn list_json_with(flags: &[&str], args: &[&str]) -> Result<Option<Value>> {
    let mut argv: Vec<&str> = flags.to_vec();
    argv.extend_from_slice(&["-j", "list"]);
    argv.extend_from_slice(args);
    let out = nft(&argv, None)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") || stderr.contains("does not exist") {
            return Ok(None);
        }
        return Err(nft_error(&format!("nft list {}", args.join(" ")), &out));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| Error::Runtime(anyhow::anyhow!("parsing nft's JSON: {e}")))
}

/// `nft list table FAMILY NAME` as text (what `nft -f` reads back), or `None` when there is no
/// such table. Used to undo the deletion of a whole table.
pub fn list_table_text(family: &str, name: &str) -> Result<Option<String>> {
    list_text(&["list", "table", family, name])
}

/// [`list_table_text`] without set and map elements (`nft -t`): the chains and rules only,
/// cheap even for a balancer's large slot maps.
pub fn list_table_text_terse(family: &str, name: &str) -> Result<Option<String>> {
    list_text(&["-t", "list", "table", family, name])
}

fn list_text(args: &[&str]) -> Result<Option<String>> {
    let (family, name) = (args[args.len() - 2], args[args.len() - 1]);
    let out = nft(args, None)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") || stderr.contains("does not exist") {
            return Ok(None);
        }
        return Err(nft_error(&format!("nft list table {family} {name}"), &out));
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// `nft -t -j list ARGS…` (terse: set and map elements left out) parsed; `None` when the object
/// does not exist. Cheap enough to check a table's structure once a second.
pub fn list_json_terse(args: &[&str]) -> Result<Option<Value>> {
    list_json_with(&["-t"], args)
}

/// Whether a table exists (cheap: lists table names only).
pub fn table_exists(family: &str, name: &str) -> Result<bool> {
    let Some(doc) = list_json(&["tables", family])? else {
        return Ok(false);
    };
    Ok(doc
        .get("nftables")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|o| {
            o.get("table")
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                == Some(name)
        }))
}

/// One `nft -j list ruleset`, from which every nft view of a read-only diagnosis (`doctor`) is
/// derived: the raw ruleset (firewall evaluation), lbctl's arp table ([`RulesetRead::arp`])
/// and any table's objects ([`RulesetRead::table`]). The ruleset stays raw JSON, never parsed
/// into typed objects: other tools' tables may use constructs the `nftables` crate cannot
/// represent. Cheap to clone.
#[derive(Debug, Clone)]
pub enum RulesetRead {
    /// nft(8) is not installed: there is no table lbctl could have made.
    NoNft,
    Listed(std::sync::Arc<Value>),
    /// The listing failed (no CAP_NET_ADMIN, nft's own error); `privilege` keeps exit code 77
    /// for the errors derived from it.
    Failed {
        privilege: bool,
        message: String,
    },
}

/// List the whole ruleset once (see [`RulesetRead`]).
pub fn read_ruleset() -> RulesetRead {
    start_ruleset_listing().finish()
}

/// `nft -j list ruleset` already running (see [`start_ruleset_listing`]).
pub struct RulesetListing(std::result::Result<Child, RulesetRead>);

/// Start `nft -j list ruleset` and return once nft runs: a caller with other work spawns it
/// before anything else (the spawn is the one moment it waits for), then collects the
/// listing with [`RulesetListing::finish`] — in a thread of its own for a large ruleset, which
/// nft cannot finish writing until someone reads it.
pub fn start_ruleset_listing() -> RulesetListing {
    // The resolved path: the spawn does not try every PATH directory first.
    let Some(program) = crate::sys::netns::find_tool("nft") else {
        return RulesetListing(Err(RulesetRead::NoNft));
    };
    RulesetListing(spawn(&program, &["-j", "list", "ruleset"], false).map_err(RulesetRead::failed))
}

impl RulesetListing {
    /// Wait for nft and parse its listing.
    pub fn finish(self) -> RulesetRead {
        let out = match self.0.map(finish) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return RulesetRead::failed(e),
            Err(read) => return read,
        };
        if !out.status.success() {
            return RulesetRead::failed(nft_error("nft list ruleset", &out));
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(v) => RulesetRead::Listed(std::sync::Arc::new(v)),
            Err(e) => RulesetRead::failed(Error::Runtime(anyhow::anyhow!(
                "parsing nft's JSON for the ruleset: {e}"
            ))),
        }
    }
}

impl RulesetRead {
    fn failed(e: Error) -> Self {
        RulesetRead::Failed {
            privilege: matches!(e, Error::Privilege(_)),
            message: e.to_string(),
        }
    }

    /// The ruleset, when it was listed.
    pub fn json(&self) -> Option<&Value> {
        match self {
            RulesetRead::Listed(v) => Some(v),
            _ => None,
        }
    }

    /// The ruleset, owned (copied only if a clone of this read is still alive).
    pub fn into_json(self) -> Option<Value> {
        match self {
            RulesetRead::Listed(v) => {
                Some(std::sync::Arc::try_unwrap(v).unwrap_or_else(|v| (*v).clone()))
            }
            _ => None,
        }
    }

    /// Why there is no ruleset (`None` when it was listed).
    pub fn unreadable(&self) -> Option<String> {
        match self {
            RulesetRead::Listed(_) => None,
            RulesetRead::NoNft => Some(
                "nft(8) not found: install the nftables package (apt-get install nftables)".into(),
            ),
            RulesetRead::Failed { message, .. } => Some(message.clone()),
        }
    }

    fn error(&self) -> Option<Error> {
        match self {
            RulesetRead::Failed {
                privilege: true,
                message,
            } => Some(Error::Privilege(message.clone())),
            RulesetRead::Failed { message, .. } => {
                Some(Error::Runtime(anyhow::anyhow!("{message}")))
            }
            _ => None,
        }
    }

    /// `table FAMILY NAME`'s objects as `nft -j list table FAMILY NAME` prints them; `None`
    /// when there is no such table, an error when the ruleset could not be listed.
    pub fn table(&self, family: &str, name: &str) -> Result<Option<Value>> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        Ok(self.json().and_then(|doc| table_objects(doc, family, name)))
    }

    /// lbctl's arp table as [`observe_arp`] reports it.
    pub fn arp(&self) -> Result<ArpObserved> {
        match self.table("arp", ARP_TABLE)? {
            Some(doc) => parse_arp_listing(&doc),
            None => Ok(ArpObserved::absent()),
        }
    }
}

/// The objects of `table FAMILY NAME` in a ruleset listing (`{"nftables": [...]}`), in the
/// shape `nft -j list table FAMILY NAME` prints; `None` when the table is not in it.
pub fn table_objects(doc: &Value, family: &str, name: &str) -> Option<Value> {
    let objects = doc.get("nftables")?.as_array()?;
    let ours = |o: &Value| {
        let Some((kind, v)) = o.as_object().and_then(|m| m.iter().next()) else {
            return false;
        };
        let table = if kind == "table" {
            &v["name"]
        } else {
            &v["table"]
        };
        v["family"] == family && table == name
    };
    let mine: Vec<Value> = objects.iter().filter(|o| ours(o)).cloned().collect();
    if !mine.iter().any(|o| o.get("table").is_some()) {
        return None;
    }
    let meta = objects.iter().filter(|o| o.get("metainfo").is_some());
    Some(serde_json::json!({"nftables": meta.cloned().chain(mine).collect::<Vec<_>>()}))
}

/// What [`share_ruleset`] lends: the listing, or the channel it will arrive on.
enum Shared {
    Ready(RulesetRead),
    Pending(std::sync::mpsc::Receiver<RulesetRead>),
}

thread_local! {
    /// The ruleset [`share_ruleset`] lends to this thread's readers.
    static SHARED: std::cell::RefCell<Option<Shared>> = const { std::cell::RefCell::new(None) };
}

/// While the returned guard lives, [`observe_arp`] on this thread answers from the listing that
/// arrives on `read` instead of spawning nft (waiting for it on first use): a read-only
/// diagnosis (`doctor`) lists the ruleset once, in a thread of its own, and hands it to the
/// layers it calls (the engine's drift plan, which makes its netlink dumps meanwhile) without
/// changing their interface. Thread-local, so a namespace entered by another thread never sees
/// it; any nft write on this thread ends the sharing (a later read would be stale).
pub fn share_ruleset(read: std::sync::mpsc::Receiver<RulesetRead>) -> SharedRuleset {
    let prev = SHARED.with(|s| s.replace(Some(Shared::Pending(read))));
    SharedRuleset { prev }
}

/// Guard of [`share_ruleset`]: restores what was shared before.
pub struct SharedRuleset {
    prev: Option<Shared>,
}

impl Drop for SharedRuleset {
    fn drop(&mut self) {
        let prev = self.prev.take();
        SHARED.with(|s| *s.borrow_mut() = prev);
    }
}

fn shared_ruleset() -> Option<RulesetRead> {
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        let read = match s.take()? {
            Shared::Ready(r) => r,
            Shared::Pending(rx) => rx.recv().unwrap_or_else(|_| RulesetRead::Failed {
                privilege: false,
                message: "nft list ruleset: the listing thread ended without an answer".into(),
            }),
        };
        *s = Some(Shared::Ready(read.clone()));
        Some(read)
    })
}

fn end_sharing() {
    SHARED.with(|s| s.borrow_mut().take());
}

/// Make lbctl's arp table hold exactly `to` (None: remove it), in one transaction.
pub fn apply_arp(to: Option<&ArpMap>) -> Result<()> {
    end_sharing();
    let json = serde_json::to_vec(&arp_batch(to)).expect("nft JSON serializes");
    let out = nft(&["-j", "-f", "-"], Some(&json))?;
    if !out.status.success() {
        return Err(nft_error(&format!("updating table arp {ARP_TABLE}"), &out));
    }
    Ok(())
}

/// Observed arp table: `None` if absent. An existing table whose structure is not exactly what
/// lbctl builds (a rule deleted or edited by hand) is reported as intact = false.
pub struct ArpObserved {
    pub map: Option<ArpMap>,
    pub intact: bool,
    /// Packets dropped by the input rule (ARP requests for VIPs), for status output.
    pub dropped: u64,
    pub rewritten: u64,
}

/// Remove counter values so rules can be compared structurally.
fn strip_counters(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(strip_counters),
        Value::Object(o) => {
            if o.contains_key("counter") {
                o.insert("counter".into(), Value::Null);
            }
            o.values_mut().for_each(strip_counters);
        }
        _ => {}
    }
}

fn counter_packets(expr: &Value) -> u64 {
    expr.as_array()
        .into_iter()
        .flatten()
        .find_map(|s| s.get("counter")?.get("packets")?.as_u64())
        .unwrap_or(0)
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

/// List lbctl's arp table (and only it); from the shared ruleset when one is in scope
/// ([`share_ruleset`]).
pub fn observe_arp() -> Result<ArpObserved> {
    if let Some(read) = shared_ruleset() {
        return read.arp();
    }
    let absent = ArpObserved::absent();
    // Without nft(8) there is no table lbctl could have made; a plan that needs one fails at
    // apply time with the install hint. (A balancer with IPVS needs no nftables at all.)
    if crate::sys::netns::find_tool("nft").is_none() {
        return Ok(absent);
    }
    let out = nft(&["-j", "list", "table", "arp", ARP_TABLE], None)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(absent);
        }
        return Err(nft_error(&format!("listing table arp {ARP_TABLE}"), &out));
    }
    let doc: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Runtime(anyhow::anyhow!(
            "parsing nft JSON for table arp {ARP_TABLE}: {e}"
        ))
    })?;
    parse_arp_listing(&doc)
}

/// Interpret `nft -j list table arp lbctl` output.
pub fn parse_arp_listing(doc: &Value) -> Result<ArpObserved> {
    let objects = doc["nftables"].as_array().cloned().unwrap_or_default();
    let mut vips = Vec::new();
    let mut map = ArpMap::new();
    let mut have_set = false;
    let mut have_map = false;
    let mut chains = Vec::new();
    let mut seen_rules = Vec::new();
    let (mut dropped, mut rewritten) = (0, 0);
    let ip = |v: &Value| v.as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
    for o in &objects {
        if let Some(s) = o.get("set") {
            if s["name"] == SET && s["type"] == "ipv4_addr" {
                have_set = true;
                for e in s["elem"].as_array().into_iter().flatten() {
                    vips.extend(ip(e));
                }
            }
        } else if let Some(m) = o.get("map") {
            if m["name"] == MAP && m["type"] == "ipv4_addr" && m["map"] == "ipv4_addr" {
                have_map = true;
                for e in m["elem"].as_array().into_iter().flatten() {
                    if let (Some(k), Some(v)) = (ip(&e[0]), ip(&e[1])) {
                        map.insert(k, v);
                    }
                }
            }
        } else if let Some(c) = o.get("chain") {
            chains.push((
                c["name"].as_str().unwrap_or("").to_string(),
                c["hook"].as_str().unwrap_or("").to_string(),
                c["policy"].as_str().unwrap_or("").to_string(),
            ));
        } else if let Some(r) = o.get("rule") {
            let chain = r["chain"].as_str().unwrap_or("").to_string();
            let n = counter_packets(&r["expr"]);
            if chain == "input" {
                dropped = n;
            } else if chain == "output" {
                rewritten = n;
            }
            let mut expr = r["expr"].clone();
            strip_counters(&mut expr);
            seen_rules.push((chain, expr));
        }
    }
    let mut want_rules: Vec<(String, Value)> = rules()
        .into_iter()
        .map(|(c, e)| {
            let mut v = serde_json::to_value(e).expect("serializes");
            strip_counters(&mut v);
            (c.to_string(), v)
        })
        .collect();
    want_rules.sort_by(|a, b| a.0.cmp(&b.0));
    seen_rules.sort_by(|a, b| a.0.cmp(&b.0));
    chains.sort();
    let want_chains = vec![
        (
            "input".to_string(),
            "input".to_string(),
            "accept".to_string(),
        ),
        (
            "output".to_string(),
            "output".to_string(),
            "accept".to_string(),
        ),
    ];
    let mut set_keys: Vec<_> = map.keys().copied().collect();
    set_keys.sort();
    vips.sort();
    let intact = have_set
        && have_map
        && chains == want_chains
        && seen_rules == want_rules
        && vips == set_keys;
    Ok(ArpObserved {
        map: Some(map),
        intact,
        dropped,
        rewritten,
    })
}

#[cfg(test)]
mod short_tests {
    #[test]
    fn long_nft_messages_are_cut() {
        let long = format!("Error: x\n{}\n{}", "a".repeat(5000), "l\n".repeat(20));
        let s = super::short_stderr(long.as_bytes());
        assert!(s.len() < 2000, "{}", s.len());
        assert!(s.starts_with("Error: x\n"));
        assert!(s.ends_with("more line(s))"), "{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_golden_json() {
        let mut m = ArpMap::new();
        m.insert(
            "198.18.0.100".parse().unwrap(),
            "198.18.0.11".parse().unwrap(),
        );
        let v = serde_json::to_value(arp_batch(Some(&m))).unwrap();
        let cmds = v["nftables"].as_array().unwrap();
        assert_eq!(
            cmds[0],
            serde_json::json!({"add": {"table": {"family": "arp", "name": "lbctl"}}})
        );
        assert_eq!(
            cmds[1],
            serde_json::json!({"delete": {"table": {"family": "arp", "name": "lbctl"}}})
        );
        let out_rule = &cmds[8]["add"]["rule"];
        assert_eq!(out_rule["chain"], "output");
        assert_eq!(
            out_rule["expr"][2],
            serde_json::json!({"mangle": {
                "key": {"payload": {"protocol": "arp", "field": "saddr ip"}},
                "value": {"map": {"key": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "data": "@vip_rip"}}
            }})
        );
        assert_eq!(
            cmds[10]["add"]["element"]["elem"],
            serde_json::json!([["198.18.0.100", "198.18.0.11"]])
        );
        let v = serde_json::to_value(arp_batch(None)).unwrap();
        assert_eq!(v["nftables"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn listing_roundtrip_and_tamper_detection() {
        // What nft 1.0.6 prints for the table (captured from a test namespace).
        let listing = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "arp", "name": "lbctl", "handle": 1}},
            {"set": {"family": "arp", "name": "vips", "table": "lbctl", "type": "ipv4_addr", "handle": 3, "elem": ["198.18.0.100"]}},
            {"map": {"family": "arp", "name": "vip_rip", "table": "lbctl", "type": "ipv4_addr", "handle": 4, "map": "ipv4_addr", "elem": [["198.18.0.100", "198.18.0.11"]]}},
            {"chain": {"family": "arp", "table": "lbctl", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"chain": {"family": "arp", "table": "lbctl", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "arp", "table": "lbctl", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "operation"}}, "right": "request"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "daddr ip"}}, "right": "@vips"}}, {"counter": {"packets": 3, "bytes": 84}}, {"drop": null}]}},
            {"rule": {"family": "arp", "table": "lbctl", "chain": "output", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "right": "@vips"}}, {"counter": {"packets": 0, "bytes": 0}}, {"mangle": {"key": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "value": {"map": {"key": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "data": "@vip_rip"}}}}]}}
        ]});
        let o = parse_arp_listing(&listing).unwrap();
        assert!(o.intact);
        assert_eq!(o.dropped, 3);
        assert_eq!(o.map.unwrap().len(), 1);
        let mut tampered = listing.clone();
        tampered["nftables"].as_array_mut().unwrap().remove(6);
        assert!(!parse_arp_listing(&tampered).unwrap().intact);
    }

    /// `nft -j list ruleset` of a host with lbctl's arp table and a foreign inet table that
    /// also has a set named `vips` (which must not be taken for lbctl's).
    fn ruleset() -> Value {
        serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
            {"table": {"family": "inet", "name": "filter", "handle": 1}},
            {"set": {"family": "inet", "name": "vips", "table": "filter", "type": "ipv4_addr", "handle": 2, "elem": ["192.0.2.1"]}},
            {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 3, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"table": {"family": "arp", "name": "lbctl", "handle": 4}},
            {"set": {"family": "arp", "name": "vips", "table": "lbctl", "type": "ipv4_addr", "handle": 3, "elem": ["198.18.0.100"]}},
            {"map": {"family": "arp", "name": "vip_rip", "table": "lbctl", "type": "ipv4_addr", "handle": 4, "map": "ipv4_addr", "elem": [["198.18.0.100", "198.18.0.11"]]}},
            {"chain": {"family": "arp", "table": "lbctl", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
            {"chain": {"family": "arp", "table": "lbctl", "name": "output", "handle": 2, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
            {"rule": {"family": "arp", "table": "lbctl", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "operation"}}, "right": "request"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "daddr ip"}}, "right": "@vips"}}, {"counter": {"packets": 3, "bytes": 84}}, {"drop": null}]}},
            {"rule": {"family": "arp", "table": "lbctl", "chain": "output", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "right": "@vips"}}, {"counter": {"packets": 0, "bytes": 0}}, {"mangle": {"key": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "value": {"map": {"key": {"payload": {"protocol": "arp", "field": "saddr ip"}}, "data": "@vip_rip"}}}}]}},
            {"table": {"family": "netdev", "name": "lbctl_lb_web", "handle": 7}},
            {"counter": {"family": "netdev", "name": "c_x", "table": "lbctl_lb_web", "handle": 1, "packets": 5, "bytes": 300}}
        ]})
    }

    #[test]
    fn arp_table_and_tables_from_one_ruleset() {
        let read = RulesetRead::Listed(std::sync::Arc::new(ruleset()));
        let o = read.arp().unwrap();
        assert!(o.intact);
        assert_eq!(o.dropped, 3);
        let map = o.map.unwrap();
        assert_eq!(map.len(), 1, "the inet table's set `vips` is not lbctl's");
        let arp = read.table("arp", "lbctl").unwrap().unwrap();
        // The shape `nft -j list table arp lbctl` prints: metainfo, then the table's objects.
        let objs = arp["nftables"].as_array().unwrap();
        assert_eq!(objs.len(), 8);
        assert!(objs[0].get("metainfo").is_some());
        assert_eq!(objs[1]["table"]["name"], "lbctl");
        let lb = read.table("netdev", "lbctl_lb_web").unwrap().unwrap();
        assert_eq!(lb["nftables"].as_array().unwrap().len(), 3);
        assert_eq!(read.table("netdev", "lbctl_lb_other").unwrap(), None);
        assert_eq!(read.unreadable(), None);
        // No arp table in the ruleset: absent, as `nft list table arp lbctl` failing with ENOENT.
        let mut bare = ruleset();
        bare["nftables"].as_array_mut().unwrap().retain(|o| {
            o.as_object()
                .and_then(|m| m.values().next())
                .is_none_or(|v| v["family"] != "arp")
        });
        let o = RulesetRead::Listed(std::sync::Arc::new(bare))
            .arp()
            .unwrap();
        assert!(o.map.is_none() && o.intact);
    }

    #[test]
    fn an_unreadable_ruleset_fails_every_derived_view() {
        let denied = RulesetRead::Failed {
            privilege: true,
            message: "nft list ruleset: nft: Operation not permitted: run as root".into(),
        };
        assert!(matches!(denied.arp(), Err(Error::Privilege(_))));
        assert!(matches!(
            denied.table("netdev", "lbctl_lb_web"),
            Err(Error::Privilege(_))
        ));
        assert!(denied.json().is_none());
        assert!(denied.unreadable().unwrap().contains("not permitted"));
        let broken = RulesetRead::Failed {
            privilege: false,
            message: "parsing nft's JSON".into(),
        };
        assert!(matches!(broken.arp(), Err(Error::Runtime(_))));
        // Without nft(8) there is no table lbctl could have made, but no ruleset either.
        let none = RulesetRead::NoNft;
        assert!(none.arp().unwrap().map.is_none());
        assert!(none.json().is_none());
        assert!(none.unreadable().unwrap().contains("nft(8) not found"));
    }

    #[test]
    fn a_shared_ruleset_answers_observe_arp_on_this_thread_only() {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let _shared = share_ruleset(rx);
            // The listing arrives later (from doctor's nft thread); the reader waits for it.
            let sender = std::thread::spawn(move || {
                // Another thread sees nothing shared.
                assert!(shared_ruleset().is_none());
                tx.send(RulesetRead::Listed(std::sync::Arc::new(ruleset())))
                    .unwrap();
            });
            let o = observe_arp().expect("answered from the shared listing, no nft spawned");
            assert!(o.intact);
            assert_eq!(o.map.unwrap().len(), 1);
            sender.join().unwrap();
            // Read twice, answered twice (the channel is read once).
            assert!(observe_arp().unwrap().intact);
            // A write ends the sharing: nothing stale is served afterwards.
            end_sharing();
            assert!(shared_ruleset().is_none());
        }
        {
            let (tx, rx) = std::sync::mpsc::channel::<RulesetRead>();
            let _shared = share_ruleset(rx);
            drop(tx);
            // The listing thread died without an answer: an error, never "no table".
            assert!(observe_arp().is_err());
        }
        assert!(
            shared_ruleset().is_none(),
            "the guard restores the previous state"
        );
    }
}
