//! nftables through the `nft` process: text scripts as one transaction, listings as JSON or
//! text, and one whole-ruleset read for a read-only diagnosis (stderr captured so nft's message
//! reaches the user).
//!
//! **Which interface builds what** (the only place this is decided): lbctl's own `arp lbctl`
//! table is built and read over nf_tables netlink ([`super::arptable`]) — it is small, fixed in
//! shape and large in elements, where nft 1.0.6 is slow (every listing fetches every element).
//! The balancer's `netdev lbctl_lb_NAME` table (`crate::lb::nft`) is nft text: it needs `typeof`
//! maps, which nft 1.0.6's JSON parser rejects (PLATFORM.md §4); its slot maps' elements go
//! over netlink ([`super::nfnl`]). Whole-table deletion (`delete table F N`) and restoring a
//! table from `nft list table` text (the undo of a deletion) are text because that is the form
//! nft prints and reads back verbatim. Foreign tables are only ever read, as raw JSON.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::error::{Error, Result};

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

/// Whether a table exists: one `NFT_MSG_GETTABLE` over netlink (`nft list tables` would first
/// fetch every element of every set — seconds next to a balancer's slot maps).
pub fn table_exists(family: &str, name: &str) -> Result<bool> {
    let Some(f) = super::nfnl::family_number(family) else {
        return Err(Error::Runtime(anyhow::anyhow!(
            "unknown nftables family {family:?}"
        )));
    };
    match super::nfnl::Nfnl::open_if_available()? {
        Some(mut n) => n.table_exists(f, name),
        None => Ok(false),
    }
}

/// One `nft -j list ruleset`, from which every nft view of a read-only diagnosis (`doctor`) is
/// derived: the raw ruleset (firewall evaluation) and any table's objects
/// ([`RulesetRead::table`]). The ruleset stays raw JSON, never parsed into typed objects: other
/// tools' tables may use constructs no typed schema of ours represents. Cheap to clone.
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
        let bare = RulesetRead::Listed(std::sync::Arc::new(bare));
        assert_eq!(bare.table("arp", "lbctl").unwrap(), None);
    }

    #[test]
    fn an_unreadable_ruleset_fails_every_derived_view() {
        let denied = RulesetRead::Failed {
            privilege: true,
            message: "nft list ruleset: nft: Operation not permitted: run as root".into(),
        };
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
        assert!(matches!(
            broken.table("arp", "lbctl"),
            Err(Error::Runtime(_))
        ));
        // Without nft(8) there is no table, but no ruleset either.
        let none = RulesetRead::NoNft;
        assert_eq!(none.table("arp", "lbctl").unwrap(), None);
        assert!(none.json().is_none());
        assert!(none.unreadable().unwrap().contains("nft(8) not found"));
    }
}
