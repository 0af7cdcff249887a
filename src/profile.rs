//! Profiles: a backend's whole DSR set-up in one TOML file (see `profiles/*.toml`).
//!
//! Parsing is strict: unknown keys are errors with line and column, and every value is validated
//! before anything is touched. A profile becomes one [`Intent`] owned by `profile:NAME`, so several
//! profiles (one per `lbctl@NAME.service`) coexist and `down -f` removes exactly one of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::error::Result;
use crate::model::{
    parse_ip, parse_vip, validate_ifname, validate_table, IfName, Intent, PolicyRoute, SysctlKey,
    Vip, DEFAULT_RULE_PRIORITY,
};
use crate::usage;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    #[serde(default, rename = "vip")]
    vips: Vec<VipEntry>,
    arp: Option<ArpSection>,
    policy_routing: Option<PolicySection>,
    rp_filter: Option<RpSection>,
    #[serde(default)]
    sysctl: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VipEntry {
    address: String,
    dev: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ArpMode {
    Nft,
    Sysctl,
    None,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArpSection {
    mode: ArpMode,
    #[serde(default, rename = "interface")]
    interfaces: Vec<ArpIface>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArpIface {
    name: String,
    real_ip: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    table: u32,
    via: String,
    dev: String,
    priority: Option<u32>,
    /// Only these VIPs (default: every VIP of the gateway's family).
    vips: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RpMode {
    Off,
    Strict,
    Loose,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpSection {
    mode: RpMode,
    interfaces: Vec<String>,
}

/// A validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub intent: Intent,
    /// VIP → ports (for doctor).
    pub ports: BTreeMap<IpAddr, Vec<u16>>,
    /// Interfaces that must exist when the profile is applied.
    pub interfaces: BTreeSet<String>,
}

impl Profile {
    /// The journal owner of this profile's intent.
    pub fn owner(&self) -> String {
        owner_of(&self.name)
    }
}

pub fn owner_of(name: &str) -> String {
    format!("profile:{name}")
}

/// Sysctls a profile may manage, besides the ARP/rp_filter ones lbctl derives itself.
const MANAGED_SYSCTL_PREFIXES: [&str; 2] = ["net/ipv4/", "net/ipv6/"];

/// Read and validate a profile file.
pub fn load(path: &Path) -> Result<Profile> {
    let text = crate::guard::read_capped(path, "profile")?;
    // A profile reached through a symlink is the target's (`/etc/lbctl/web.toml ->
    // /srv/profiles/web-v2.toml` is profile web-v2): one owner however it is named.
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let stem = real
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    parse(&text, &stem).map_err(|e| usage!("{}: {e}", path.display()))
}

/// `[[vip]]` blocks parsed per TOML document in [`parse_in_pieces`].
const VIP_BLOCKS_PER_PIECE: usize = 256;

/// The profile parsed with its `[[vip]]` blocks in pieces of [`VIP_BLOCKS_PER_PIECE`], or
/// `None` when the text does not have the shape this needs (then the caller parses it whole,
/// which also gives every error its exact line).
///
/// Why: the TOML parser holds the whole document as tokens, events and a spanned tree before
/// deserializing — about 1.9 KiB per `[[vip]]` block, 19 MiB for 10,000 VIPs, the peak of an
/// apply. Here the blocks are one run of lines: from the first line that is exactly `[[vip]]`
/// to the next table header that is not, with every header line in between exactly `[[vip]]`.
/// TOML headers are absolute paths, so that run parsed in pieces gives the same entries in the
/// same order, and the text without it (before and after) the same other fields. A line that
/// only looks like a header (inside a multi-line string) leaves an unterminated string in some
/// piece, which fails to parse: the whole text is parsed instead.
fn parse_in_pieces(text: &str) -> Option<File> {
    let header = |l: &str| l.trim_start().starts_with('[');
    let is_vip = |l: &str| l.trim() == "[[vip]]";
    let mut lines = Vec::new();
    let mut at = 0;
    for l in text.split_inclusive('\n') {
        lines.push((at, l));
        at += l.len();
    }
    let first = lines.iter().position(|(_, l)| is_vip(l))?;
    // The run ends at the first header after `first` that is not `[[vip]]`.
    let end = lines[first..]
        .iter()
        .position(|(_, l)| header(l) && !is_vip(l))
        .map_or(lines.len(), |k| first + k);
    if lines[end..].iter().any(|(_, l)| is_vip(l)) {
        return None;
    }
    let starts: Vec<usize> = (first..end).filter(|&k| is_vip(lines[k].1)).collect();
    if starts.len() <= VIP_BLOCKS_PER_PIECE {
        return None;
    }
    let offset = |k: usize| lines.get(k).map_or(text.len(), |(o, _)| *o);
    let (run_start, run_end) = (offset(first), offset(end));
    let rest = format!("{}{}", &text[..run_start], &text[run_end..]);
    let mut f: File = toml::from_str(&rest).ok()?;
    if !f.vips.is_empty() {
        return None;
    }
    drop(rest);
    // Each piece: its text and how many blocks it must hold.
    let pieces: Vec<(&str, usize)> = starts
        .chunks(VIP_BLOCKS_PER_PIECE)
        .enumerate()
        .map(|(n, piece)| {
            let to = starts
                .get((n + 1) * VIP_BLOCKS_PER_PIECE)
                .map_or(run_end, |&k| offset(k));
            (&text[offset(piece[0])..to], piece.len())
        })
        .collect();
    let parse = |group: &[(&str, usize)]| -> Option<Vec<VipEntry>> {
        let mut vips = Vec::new();
        for (piece, blocks) in group {
            let p: File = toml::from_str(piece).ok()?;
            if p.name.is_some()
                || p.arp.is_some()
                || p.policy_routing.is_some()
                || p.rp_filter.is_some()
                || !p.sysctl.is_empty()
                || p.vips.len() != *blocks
            {
                return None;
            }
            vips.extend(p.vips);
        }
        Some(vips)
    };
    // The pieces are independent: consecutive groups of them on each core, joined in order.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let per = pieces.len().div_ceil(cores);
    let groups: Vec<Option<Vec<VipEntry>>> = std::thread::scope(|s| {
        let handles: Vec<_> = pieces
            .chunks(per)
            .map(|g| s.spawn(move || parse(g)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(None))
            .collect()
    });
    for g in groups {
        f.vips.extend(g?);
    }
    Some(f)
}

/// Parse and validate profile text; `default_name` is used when the file has no `name`.
pub fn parse(text: &str, default_name: &str) -> Result<Profile> {
    let f: File = match parse_in_pieces(text) {
        Some(f) => f,
        None => toml::from_str(text)
            .map_err(|e| usage!("{}", crate::guard::cut_long_lines(e.to_string().trim_end())))?,
    };
    let name = f.name.clone().unwrap_or_else(|| default_name.to_string());
    crate::guard::validate_name(&name, "profile").map_err(|e| usage!("{e}"))?;
    if f.vips.len() > crate::guard::MAX_PROFILE_VIPS {
        return Err(usage!(
            "{} VIPs in one profile; at most {} are supported (split them over several profiles)",
            f.vips.len(),
            crate::guard::MAX_PROFILE_VIPS
        ));
    }
    let mut intent = Intent::default();
    let mut ports = BTreeMap::new();
    let mut interfaces = BTreeSet::new();

    for v in &f.vips {
        let addr = parse_vip(&v.address)?;
        let dev = IfName::new(v.dev.as_deref().unwrap_or("lo"))?;
        interfaces.insert(dev.to_string());
        if !intent.vips.insert(Vip { addr, dev }) || ports.contains_key(&addr) {
            return Err(usage!("VIP {addr} is listed twice"));
        }
        if v.ports.contains(&0) {
            return Err(usage!("VIP {addr}: port 0 is not a service port"));
        }
        ports.insert(addr, v.ports.clone());
    }
    let v4_vips: Vec<_> = intent
        .vips
        .iter()
        .filter_map(|v| match v.addr {
            IpAddr::V4(a) => Some(a),
            _ => None,
        })
        .collect();

    if let Some(arp) = &f.arp {
        let mut real_ips = Vec::new();
        for i in &arp.interfaces {
            validate_ifname(&i.name)?;
            if i.name == "lo" {
                return Err(usage!(
                    "arp.interface: name the ARP-facing interface, not lo"
                ));
            }
            interfaces.insert(i.name.clone());
            if let Some(r) = &i.real_ip {
                let r = match parse_ip(r, "real_ip")? {
                    IpAddr::V4(r) => r,
                    r => return Err(usage!("arp.interface {}: real_ip {r} is not IPv4", i.name)),
                };
                if v4_vips.contains(&r) {
                    return Err(usage!(
                        "arp.interface {}: real_ip {r} is one of the VIPs",
                        i.name
                    ));
                }
                real_ips.push(r);
            }
        }
        match arp.mode {
            ArpMode::Nft => {
                let rip = *real_ips.first().ok_or_else(|| {
                    usage!("arp.mode = \"nft\" needs an [[arp.interface]] with real_ip")
                })?;
                for v in &v4_vips {
                    intent.arp_nft.insert(*v, rip);
                }
            }
            ArpMode::Sysctl => {
                if arp.interfaces.is_empty() {
                    return Err(usage!(
                        "arp.mode = \"sysctl\" needs at least one [[arp.interface]]"
                    ));
                }
                // One interface per VIP in the intent; the sysctls go on every listed interface.
                for v in &v4_vips {
                    intent.arp_sysctl.insert(*v, arp.interfaces[0].name.clone());
                }
                for i in &arp.interfaces[1..] {
                    for (n, val, _) in crate::model::ARP_SYSCTLS {
                        intent
                            .sysctls
                            .insert(SysctlKey::ipv4_conf(&i.name, n), val.to_string());
                    }
                }
            }
            ArpMode::None => {}
        }
    } else if !v4_vips.is_empty() {
        return Err(usage!(
            "IPv4 VIPs need an [arp] section (mode = \"nft\" | \"sysctl\" | \"none\" if something else suppresses ARP)"
        ));
    }

    if let Some(p) = &f.policy_routing {
        validate_table(p.table)?;
        validate_ifname(&p.dev)?;
        interfaces.insert(p.dev.clone());
        let via = parse_ip(&p.via, "policy_routing.via")?;
        let selected: Vec<IpAddr> = match &p.vips {
            Some(list) => list
                .iter()
                .map(|s| {
                    let a = parse_vip(s)?;
                    if !intent.vips.iter().any(|v| v.addr == a) {
                        return Err(usage!(
                            "policy_routing.vips: {a} is not a [[vip]] of this profile"
                        ));
                    }
                    crate::model::same_family(a, via, "policy_routing")?;
                    Ok(a)
                })
                .collect::<Result<_>>()?,
            None => intent
                .vips
                .iter()
                .map(|v| v.addr)
                .filter(|a| a.is_ipv4() == via.is_ipv4())
                .collect(),
        };
        for vip in selected {
            intent.routes.insert(PolicyRoute {
                vip,
                table: p.table,
                via,
                dev: IfName::new(&p.dev)?,
                priority: p.priority.unwrap_or(DEFAULT_RULE_PRIORITY),
            });
        }
    }

    if let Some(rp) = &f.rp_filter {
        let val = match rp.mode {
            RpMode::Off => "0",
            RpMode::Strict => "1",
            RpMode::Loose => "2",
        };
        if rp.interfaces.is_empty() {
            return Err(usage!("rp_filter.interfaces is empty"));
        }
        for i in &rp.interfaces {
            if i != "all" {
                validate_ifname(i)?;
                interfaces.insert(i.clone());
            }
            intent
                .sysctls
                .insert(SysctlKey::ipv4_conf(i, "rp_filter"), val.to_string());
        }
    }

    for (k, v) in &f.sysctl {
        // Dotted (`net.ipv4.ip_forward`), or a path (`net/ipv4/conf/eth0.100/rp_filter`): the
        // only way to name an interface with a dot in its name, as with sysctl(8).
        let key = if k.contains('/') {
            SysctlKey(k.trim_matches('/').to_string())
        } else {
            SysctlKey(k.replace('.', "/"))
        };
        if !MANAGED_SYSCTL_PREFIXES.iter().any(|p| key.0.starts_with(p))
            || k.contains("..")
            || key.0.split('/').any(|c| c.is_empty() || c == ".")
        {
            return Err(usage!(
                "sysctl '{k}': only net.ipv4.* and net.ipv6.* keys can be managed by a profile"
            ));
        }
        let val = match v {
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::String(s) if !s.is_empty() && !s.contains('\n') => s.clone(),
            toml::Value::Boolean(b) => u8::from(*b).to_string(),
            _ => {
                return Err(usage!(
                    "sysctl '{k}': value must be an integer, boolean or string"
                ))
            }
        };
        if let Some(old) = intent.sysctls.insert(key, val.clone()) {
            if old != val {
                return Err(usage!(
                    "sysctl '{k}' conflicts with a value set by [arp] or [rp_filter]"
                ));
            }
        }
    }

    Ok(Profile {
        name,
        intent,
        ports,
        interfaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile with `n` VIPs (some with ports and a device) and every other section, with
    /// `extra` appended to the 3rd VIP's block.
    fn many(n: usize, extra: &str) -> String {
        let mut p = String::from("# head\nname = \"many\"\n\n");
        for i in 0..n {
            p.push_str(&format!(
                "[[vip]]\naddress = \"198.18.{}.{}\"\n",
                2 + i / 250,
                1 + i % 250
            ));
            if i % 7 == 0 {
                p.push_str("ports = [80, 443]\ndev = \"eth0\"\n");
            }
            if i == 2 {
                p.push_str(extra);
            }
            p.push_str("\r\n");
        }
        p.push_str(
            "[arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"eth0\"\nreal_ip = \"198.18.0.11\"\n\
             [policy_routing]\ntable = 100\nvia = \"198.18.0.1\"\ndev = \"eth0\"\n\
             [sysctl]\n\"net.ipv4.ip_nonlocal_bind\" = 1\n",
        );
        p
    }

    #[test]
    fn vip_blocks_parsed_in_pieces_equal_the_whole_parse() {
        for n in [257, 1000, 2049] {
            let text = many(n, "");
            let pieces = parse_in_pieces(&text).expect("the shape pieces need");
            let whole: File = toml::from_str(&text).unwrap();
            assert_eq!(format!("{pieces:?}"), format!("{whole:?}"), "n = {n}");
            assert_eq!(pieces.vips.len(), n);
        }
        // Small profiles are parsed whole.
        assert!(parse_in_pieces(&many(10, "")).is_none());
    }

    #[test]
    fn text_that_only_looks_like_vip_blocks_is_parsed_whole() {
        // A `[[vip]]` line inside a multi-line string: the piece that ends there does not
        // parse, so the whole text is parsed (and gives the string, or the exact error).
        let text = many(600, "label = \"\"\"\n[[vip]]\n\"\"\"\n");
        assert!(parse_in_pieces(&text).is_none());
        let e = parse(&text, "x").unwrap_err().to_string();
        assert!(e.contains("label"), "{e}");
        // Another table between the blocks, a sub-table of a block: parsed whole.
        assert!(parse_in_pieces(&many(600, "[rp_filter]\nmode = \"loose\"\n")).is_none());
        assert!(parse_in_pieces(&many(600, "[vip.x]\n")).is_none());
        // An error in block 500 is reported at its line, as a whole parse reports it.
        let bad = many(600, "").replacen(
            "address = \"198.18.3.250\"",
            "address = \"198.18.3.250\"\nbogus = 1",
            1,
        );
        let e = parse(&bad, "x").unwrap_err().to_string();
        let whole = toml::from_str::<File>(&bad).unwrap_err().to_string();
        assert!(e.contains(whole.lines().next().unwrap()), "{e}\n{whole}");
    }

    const GOOD: &str = r#"
name = "web"
[[vip]]
address = "198.18.0.100"
ports = [80, 443]
[[vip]]
address = "2001:db8::100"
[arp]
mode = "nft"
[[arp.interface]]
name = "eth0"
real_ip = "198.18.0.11"
[policy_routing]
table = 100
via = "198.18.0.1"
dev = "eth0"
[rp_filter]
mode = "loose"
interfaces = ["all", "eth0"]
[sysctl]
"net.ipv4.ip_nonlocal_bind" = 1
"#;

    #[test]
    fn good_profile() {
        let p = parse(GOOD, "x").unwrap();
        assert_eq!(p.name, "web");
        assert_eq!(p.intent.vips.len(), 2);
        assert_eq!(
            p.intent.arp_nft.len(),
            1,
            "IPv6 VIPs need no ARP suppression"
        );
        assert_eq!(
            p.intent.routes.len(),
            1,
            "only VIPs of the gateway's family"
        );
        assert_eq!(p.intent.sysctls.len(), 3);
        assert_eq!(
            p.ports[&"198.18.0.100".parse::<IpAddr>().unwrap()],
            vec![80, 443]
        );
    }

    #[test]
    fn unknown_key_has_line_and_column() {
        let e = parse("[[vip]]\naddress = \"198.18.0.100\"\nportz = [80]\n", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("column"), "{e}");
        assert!(e.contains("portz"), "{e}");
    }

    #[test]
    fn invalid_values_are_refused() {
        for (bad, what) in [
            ("[[vip]]\naddress = \"198.18.0.100/24\"\n[arp]\nmode=\"none\"", "/32"),
            ("[[vip]]\naddress = \"198.18.0.100\"\n", "[arp]"),
            ("[[vip]]\naddress = \"198.18.0.100\"\n[arp]\nmode=\"nft\"", "real_ip"),
            ("[[vip]]\naddress = \"198.18.0.100\"\n[arp]\nmode=\"none\"\n[policy_routing]\ntable=254\nvia=\"198.18.0.1\"\ndev=\"eth0\"", "reserved"),
            ("[[vip]]\naddress = \"198.18.0.100\"\n[[vip]]\naddress = \"198.18.0.100\"\n[arp]\nmode=\"none\"", "twice"),
            ("[sysctl]\n\"kernel.panic\" = 1", "net.ipv4"),
            ("[[vip]]\naddress = \"198.18.0.100\"\n[arp]\nmode=\"nft\"\n[[arp.interface]]\nname=\"eth0\"\nreal_ip=\"198.18.0.100\"", "one of the VIPs"),
        ] {
            let e = parse(bad, "x").unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
    }

    #[test]
    fn sysctl_keys_by_path_keep_dotted_interfaces() {
        let p = parse("[sysctl]\n\"net/ipv4/conf/eth0.100/rp_filter\" = 2\n", "x").unwrap();
        let k = SysctlKey("net/ipv4/conf/eth0.100/rp_filter".into());
        assert_eq!(p.intent.sysctls.get(&k).map(String::as_str), Some("2"));
        let p = parse("[sysctl]\n\"net.ipv4.conf.eth0.100.rp_filter\" = 2\n", "x").unwrap();
        let k = SysctlKey("net/ipv4/conf/eth0/100/rp_filter".into());
        assert!(
            p.intent.sysctls.contains_key(&k),
            "dotted form splits at every dot"
        );
        for bad in ["net/ipv4//x", "net/ipv4/./x", "net/ipv4/../../kernel/panic"] {
            assert!(
                parse(&format!("[sysctl]\n\"{bad}\" = 1\n"), "x").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits() {
        let e = parse(&format!("name = \"{}\"\n", "n".repeat(65)), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1-64"), "{e}");
        let mut many = String::from("[arp]\nmode = \"none\"\n");
        for i in 0..=crate::guard::MAX_PROFILE_VIPS as u32 {
            many.push_str(&format!(
                "[[vip]]\naddress = \"198.18.{}.{}\"\n",
                2 + i / 250,
                1 + i % 250
            ));
        }
        let e = parse(&many, "x").unwrap_err().to_string();
        assert!(e.contains("at most 16384"), "{e}");
    }

    #[test]
    fn shipped_examples_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let backend = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("backend-"));
            if backend && path.extension().is_some_and(|e| e == "toml") {
                load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
        assert!(n >= 2);
    }
}
