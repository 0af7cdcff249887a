//! ipvsadm 1.31 text formats: command lines (`Display`), `ipvsadm -S -n`
//! save/restore, and the `ipvsadm -L -n` listings.
//!
//! Every layout here was checked byte for byte against ipvsadm 1.31 on a
//! Debian 6.1 kernel (fixtures in `testdata/`, and live in the VM lane),
//! trailing spaces included:
//! * service line: `{proto:<4} {addr:port} {sched}[ ({flags})][ persistent T[ mask M][ pe P]][ ops]`
//! * real server:  `  -> {addr:port:<28} {fwd:<7} {weight:<6} {active:<10} {inact:<10}`
//! * services are sorted by fwmark, family, protocol, address, port and real
//!   servers by family, address, port, with ipvsadm's own comparison (32-bit
//!   wrapping differences, so 10.0.0.1 sorts *after* 198.18.0.3) and the
//!   same merge order as glibc's qsort.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};

use super::convert::inet_addr16;
use super::model::*;
use crate::sys::abi;

// =====================================================================================
// command lines
// =====================================================================================

/// `ADDR:PORT`, IPv6 in brackets.
pub fn addr_port(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The key as ipvsadm options: `-t 198.18.0.100:80`, `-f 42`, `-f 43 -6`.
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => {
                write!(f, "{} {}", protocol.option(), addr_port(addr, *port))
            }
            ServiceKey::Fwmark {
                mark,
                family: Family::Inet,
            } => write!(f, "-f {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::Inet6,
            } => write!(f, "-f {mark} -6"),
        }
    }
}

impl ServiceKey {
    /// The service column of `ipvsadm -L`: `TCP  198.18.0.100:80`, `FWM  43 IPv6`.
    pub fn list_name(&self) -> String {
        match self {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            } => {
                format!("{:<4} {}", protocol.list_name(), addr_port(addr, *port))
            }
            ServiceKey::Fwmark {
                mark,
                family: Family::Inet,
            } => format!("FWM  {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::Inet6,
            } => format!("FWM  {mark} IPv6"),
        }
    }
}

/// `-s sched [-p T [-M mask]] [--pe P] [-o] [-b flags]`, as `ipvsadm -S` orders them.
fn service_options(s: &Service, out: &mut String) {
    let _ = write!(out, " -s {}", s.scheduler);
    if s.is_persistent() {
        let _ = write!(out, " -p {}", s.timeout);
        if !s.netmask.is_host() {
            let _ = write!(out, " -M {}", s.netmask);
        }
    }
    if let Some(pe) = &s.pe_name {
        let _ = write!(out, " --pe {pe}");
    }
    if s.flags.contains(ServiceFlags::ONE_PACKET) {
        out.push_str(" -o");
    }
    let names = s.flags.sched_flag_names(&s.scheduler);
    if !names.is_empty() {
        let _ = write!(out, " -b {}", names.join(","));
    }
}

/// The `ipvsadm` command that creates the service:
/// `-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port`.
impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = format!("-A {}", self.key);
        service_options(self, &mut s);
        f.write_str(&s)
    }
}

fn tunnel_options(t: &Tunnel, out: &mut String) {
    let _ = write!(out, " --tun-type {}", t.kind.name());
    if t.kind == TunnelType::Gue {
        let _ = write!(out, " --tun-port {}", t.port);
    }
    if t.kind != TunnelType::Ipip {
        out.push_str(if t.flags & Tunnel::REMCSUM != 0 {
            " --tun-remcsum"
        } else if t.flags & Tunnel::CSUM != 0 {
            " --tun-csum"
        } else {
            " --tun-nocsum"
        });
    }
}

/// `-r ADDR:PORT -g -w W` [tunnel options] [`-x U -y L` when set]: the real-server
/// part of an `-a` command line. (`ipvsadm -S` never writes thresholds; see
/// [`SaveDialect`].)
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&dest_options(self, true))
    }
}

fn dest_options(d: &Destination, thresholds: bool) -> String {
    let mut s = format!(
        "-r {} {} -w {}",
        addr_port(&d.addr, d.port),
        d.fwd.option(),
        d.weight
    );
    if d.fwd == Forward::Tun {
        tunnel_options(&d.tunnel, &mut s);
    }
    if thresholds && (d.u_thresh != 0 || d.l_thresh != 0) {
        let _ = write!(s, " -x {} -y {}", d.u_thresh, d.l_thresh);
    }
    s
}

/// `-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1`.
pub struct DestRule<'a> {
    pub key: &'a ServiceKey,
    pub dest: &'a Destination,
}

impl fmt::Display for DestRule<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-a {} {}", self.key, self.dest)
    }
}

impl Destination {
    /// The full `-a` command line for this real server behind `key`.
    pub fn rule<'a>(&'a self, key: &'a ServiceKey) -> DestRule<'a> {
        DestRule { key, dest: self }
    }
}

/// One ipvsadm command line (what `ipvsadm -R` reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `-A`
    AddService(Service),
    /// `-E`
    EditService(Service),
    /// `-D`
    DeleteService(ServiceKey),
    /// `-a`
    AddDest(ServiceKey, Destination),
    /// `-e`
    EditDest(ServiceKey, Destination),
    /// `-d`
    DeleteDest(ServiceKey, IpAddr, u16),
    /// `-C`
    Flush,
}

impl Rule {
    /// Model-level validation (no kernel involved).
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Rule::AddService(s) | Rule::EditService(s) => s.validate(),
            Rule::AddDest(k, d) | Rule::EditDest(k, d) => d.validate_for(k),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::AddService(s) => write!(f, "{s}"),
            Rule::EditService(s) => {
                let mut o = format!("-E {}", s.key);
                service_options(s, &mut o);
                f.write_str(&o)
            }
            Rule::DeleteService(k) => write!(f, "-D {k}"),
            Rule::AddDest(k, d) => write!(f, "-a {k} {d}"),
            Rule::EditDest(k, d) => write!(f, "-e {k} {d}"),
            Rule::DeleteDest(k, a, p) => write!(f, "-d {k} -r {}", addr_port(a, *p)),
            Rule::Flush => f.write_str("-C"),
        }
    }
}

// =====================================================================================
// save
// =====================================================================================

/// Which `-S` flavour to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDialect {
    /// Byte-identical to `ipvsadm -S -n` (1.31), which drops real-server thresholds.
    Ipvsadm,
    /// ipvsadm syntax, plus `-x U -y L` on real servers that have thresholds,
    /// so that a restore reproduces everything.
    Lossless,
}

/// `ipvsadm -S -n` text for `entries` (sorted like ipvsadm).
pub fn save(entries: &[ServiceEntry], dialect: SaveDialect) -> String {
    let mut out = String::new();
    for e in sorted(entries) {
        let _ = writeln!(out, "{}", e.service);
        for d in &e.dests {
            let _ = writeln!(
                out,
                "-a {} {}",
                e.service.key,
                dest_options(&d.dest, dialect == SaveDialect::Lossless)
            );
        }
    }
    out
}

/// The rules that recreate `entries` (services first, each followed by its
/// real servers), in ipvsadm's order.
pub fn rules_of(entries: &[ServiceEntry]) -> Vec<Rule> {
    let mut v = Vec::new();
    for e in sorted(entries) {
        v.push(Rule::AddService(e.service.clone()));
        for d in &e.dests {
            v.push(Rule::AddDest(e.service.key, d.dest.clone()));
        }
    }
    v
}

// =====================================================================================
// restore (parsing)
// =====================================================================================

/// A line of ipvsadm text that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub text: String,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {:?}", self.line, self.msg, self.text)
    }
}

impl std::error::Error for ParseError {}

/// Parse `ipvsadm -S` output (or any file of ipvsadm command lines, as
/// `ipvsadm -R` reads it). Blank lines and `#` comments are skipped.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, ParseError> {
    let mut v = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        // allow a leading program name ("ipvsadm -A ...")
        let t = t.strip_prefix("ipvsadm ").map(str::trim_start).unwrap_or(t);
        v.push(parse_rule(t).map_err(|msg| ParseError {
            line: i + 1,
            text: line.to_string(),
            msg,
        })?);
    }
    Ok(v)
}

/// Parse one ipvsadm command line (without the program name).
/// A service key as [`ServiceKey`]'s `Display` writes it (`-t 198.18.0.100:80`, `-f 7 -6`).
pub fn parse_service_key_text(text: &str) -> Result<ServiceKey, String> {
    match parse_rule(&format!("-D {text}"))? {
        Rule::DeleteService(key) => Ok(key),
        _ => Err(format!("not a service key: {text}")),
    }
}

pub fn parse_rule(line: &str) -> Result<Rule, String> {
    // split "--opt=value" into two words
    let mut words: Vec<&str> = Vec::new();
    for w in line.split_whitespace() {
        match (w.starts_with("--"), w.split_once('=')) {
            (true, Some((k, val))) => {
                words.push(k);
                words.push(val);
            }
            _ => words.push(w),
        }
    }

    #[derive(PartialEq, Clone, Copy)]
    enum Cmd {
        AddS,
        EditS,
        DelS,
        AddD,
        EditD,
        DelD,
        Clear,
    }
    let mut cmd = None;
    let set_cmd = |c: Cmd, cmd: &mut Option<Cmd>| -> Result<(), String> {
        if cmd.is_some() {
            return Err("more than one command".into());
        }
        *cmd = Some(c);
        Ok(())
    };
    let mut svc: Option<(Option<Protocol>, &str)> = None; // (None = fwmark, text)
    let mut v6 = false;
    let mut sched: Option<String> = None;
    let mut persistent: Option<u32> = None;
    let mut netmask: Option<&str> = None;
    let mut pe: Option<String> = None;
    let mut ops = false;
    let mut sched_flags: Option<&str> = None;
    let mut real: Option<&str> = None;
    let mut fwd: Option<Forward> = None;
    let mut weight: Option<u32> = None;
    let (mut uth, mut lth) = (None, None);
    let mut tun_type: Option<TunnelType> = None;
    let mut tun_port: Option<u16> = None;
    let mut tun_flags: Option<u16> = None;

    let mut i = 0;
    let need = |i: usize, words: &[&str], opt: &str| -> Result<(), String> {
        if i + 1 >= words.len() {
            Err(format!("option {opt} needs a value"))
        } else {
            Ok(())
        }
    };
    while i < words.len() {
        let w = words[i];
        match w {
            "-A" | "--add-service" => set_cmd(Cmd::AddS, &mut cmd)?,
            "-E" | "--edit-service" => set_cmd(Cmd::EditS, &mut cmd)?,
            "-D" | "--delete-service" => set_cmd(Cmd::DelS, &mut cmd)?,
            "-a" | "--add-server" => set_cmd(Cmd::AddD, &mut cmd)?,
            "-e" | "--edit-server" => set_cmd(Cmd::EditD, &mut cmd)?,
            "-d" | "--delete-server" => set_cmd(Cmd::DelD, &mut cmd)?,
            "-C" | "--clear" => set_cmd(Cmd::Clear, &mut cmd)?,
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" | "-f"
            | "--fwmark-service" => {
                need(i, &words, w)?;
                if svc.is_some() {
                    return Err("more than one service".into());
                }
                let p = match w {
                    "-t" | "--tcp-service" => Some(Protocol::Tcp),
                    "-u" | "--udp-service" => Some(Protocol::Udp),
                    "--sctp-service" => Some(Protocol::Sctp),
                    _ => None,
                };
                i += 1;
                svc = Some((p, words[i]));
            }
            "-6" | "--ipv6" => v6 = true,
            "-s" | "--scheduler" => {
                need(i, &words, w)?;
                i += 1;
                sched = Some(words[i].to_string());
            }
            "-p" | "--persistent" => {
                // optional value: a following word that is not an option
                let t = match words.get(i + 1) {
                    Some(n) if !n.starts_with('-') => {
                        i += 1;
                        n.parse::<u32>()
                            .map_err(|_| format!("invalid timeout value `{n}'"))?
                    }
                    _ => DEFAULT_PERSISTENCE_TIMEOUT,
                };
                persistent = Some(t);
            }
            "-M" | "--netmask" => {
                need(i, &words, w)?;
                i += 1;
                netmask = Some(words[i]);
            }
            "--pe" => {
                need(i, &words, w)?;
                i += 1;
                pe = Some(words[i].to_string());
            }
            "-o" | "--ops" => ops = true,
            "-b" | "--sched-flags" => {
                need(i, &words, w)?;
                i += 1;
                sched_flags = Some(words[i]);
            }
            "-r" | "--real-server" => {
                need(i, &words, w)?;
                i += 1;
                real = Some(words[i]);
            }
            "-g" | "--gatewaying" => fwd = Some(Forward::Dr),
            "-i" | "--ipip" => fwd = Some(Forward::Tun),
            "-m" | "--masquerading" => fwd = Some(Forward::Nat),
            "-w" | "--weight" => {
                need(i, &words, w)?;
                i += 1;
                weight = Some(parse_num(words[i], "weight")?);
            }
            "-x" | "--u-threshold" => {
                need(i, &words, w)?;
                i += 1;
                uth = Some(parse_num(words[i], "upper threshold")?);
            }
            "-y" | "--l-threshold" => {
                need(i, &words, w)?;
                i += 1;
                lth = Some(parse_num(words[i], "lower threshold")?);
            }
            "--tun-type" => {
                need(i, &words, w)?;
                i += 1;
                tun_type = Some(match words[i] {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    o => return Err(format!("unknown tunnel type `{o}'")),
                });
            }
            "--tun-port" => {
                need(i, &words, w)?;
                i += 1;
                tun_port = Some(parse_num(words[i], "tunnel port")?);
            }
            "--tun-nocsum" => tun_flags = Some(0),
            "--tun-csum" => tun_flags = Some(Tunnel::CSUM),
            "--tun-remcsum" => tun_flags = Some(Tunnel::REMCSUM),
            "-n" | "--numeric" => {}
            o => return Err(format!("unknown or unsupported option `{o}'")),
        }
        i += 1;
    }

    let cmd = cmd.ok_or("no command (-A/-E/-D/-a/-e/-d/-C)")?;
    if cmd == Cmd::Clear {
        return Ok(Rule::Flush);
    }
    let (proto, stext) = svc.ok_or("no service (-t/-u/--sctp-service/-f)")?;
    let key = match proto {
        Some(protocol) => {
            let (addr, port) = parse_addr_port(stext)?;
            let port = port.unwrap_or(0);
            if v6 && !addr.is_ipv6() {
                return Err("-6 with an IPv4 service address".into());
            }
            ServiceKey::Inet {
                protocol,
                addr,
                port,
            }
        }
        None => {
            let mark: u32 = parse_num(stext, "fwmark")?;
            if mark == 0 {
                return Err("fwmark 0 is not a valid mark".into());
            }
            ServiceKey::Fwmark {
                mark,
                family: if v6 { Family::Inet6 } else { Family::Inet },
            }
        }
    };

    match cmd {
        Cmd::AddS | Cmd::EditS => {
            let scheduler = Scheduler::from(sched.as_deref().unwrap_or("wlc"));
            let mut s = Service::new(key, scheduler);
            if let Some(t) = persistent {
                s = s.persistent(t);
            }
            if let Some(m) = netmask {
                s.netmask = parse_netmask(m, key.family())?;
            }
            s.pe_name = pe;
            if ops {
                s.flags.insert(ServiceFlags::ONE_PACKET);
            }
            if let Some(list) = sched_flags {
                s.flags.insert(parse_sched_flags(list, &s.scheduler)?);
            }
            Ok(if cmd == Cmd::AddS {
                Rule::AddService(s)
            } else {
                Rule::EditService(s)
            })
        }
        Cmd::DelS => Ok(Rule::DeleteService(key)),
        Cmd::AddD | Cmd::EditD | Cmd::DelD => {
            let rtext = real.ok_or("no real server (-r)")?;
            let (addr, port) = parse_addr_port(rtext)?;
            // like ipvsadm: no port = the service port (0 for fwmark services)
            let port = port.unwrap_or(key.port().unwrap_or(0));
            if cmd == Cmd::DelD {
                return Ok(Rule::DeleteDest(key, addr, port));
            }
            let mut d = Destination::new(addr, port, fwd.unwrap_or(Forward::Dr));
            if let Some(w) = weight {
                d.weight = w;
            }
            d.u_thresh = uth.unwrap_or(0);
            d.l_thresh = lth.unwrap_or(0);
            if d.fwd == Forward::Tun {
                d.tunnel = Tunnel {
                    kind: tun_type.unwrap_or_default(),
                    port: tun_port.unwrap_or(0),
                    flags: tun_flags.unwrap_or(0),
                };
            }
            Ok(if cmd == Cmd::AddD {
                Rule::AddDest(key, d)
            } else {
                Rule::EditDest(key, d)
            })
        }
        Cmd::Clear => unreachable!(),
    }
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("invalid {what} `{s}'"))
}

/// `1.2.3.4[:port]`, `[v6][:port]` or a bare IPv6 address.
pub fn parse_addr_port(s: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (a, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing `]' in `{s}'"))?;
        let addr: IpAddr = a.parse().map_err(|_| format!("invalid address `{a}'"))?;
        let port = match after {
            "" => None,
            p => Some(parse_num(
                p.strip_prefix(':').ok_or_else(|| format!("bad `{s}'"))?,
                "port",
            )?),
        };
        return Ok((addr, port));
    }
    if s.matches(':').count() > 1 {
        return Ok((
            s.parse().map_err(|_| format!("invalid address `{s}'"))?,
            None,
        ));
    }
    match s.split_once(':') {
        Some((a, p)) => Ok((
            a.parse().map_err(|_| format!("invalid address `{a}'"))?,
            Some(parse_num(p, "port")?),
        )),
        None => Ok((
            s.parse().map_err(|_| format!("invalid address `{s}'"))?,
            None,
        )),
    }
}

fn parse_netmask(m: &str, fam: Family) -> Result<Netmask, String> {
    match fam {
        Family::Inet => Ok(Netmask::V4(
            m.parse().map_err(|_| format!("invalid netmask `{m}'"))?,
        )),
        Family::Inet6 => {
            let p: u8 = parse_num(m, "IPv6 prefix length")?;
            if p == 0 || p > 128 {
                return Err(format!("invalid IPv6 prefix length `{m}'"));
            }
            Ok(Netmask::V6(p))
        }
    }
}

/// `-b` list → SCHED1..3 bits; names must belong to the scheduler, like ipvsadm.
pub fn parse_sched_flags(list: &str, sched: &Scheduler) -> Result<ServiceFlags, String> {
    let names = sched.flag_names();
    let bits = [
        ServiceFlags::SCHED1,
        ServiceFlags::SCHED2,
        ServiceFlags::SCHED3,
    ];
    let mut f = ServiceFlags::empty();
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let generic = ["flag-1", "flag-2", "flag-3"]
            .iter()
            .position(|g| *g == name);
        let named = names.iter().position(|n| *n == name);
        match named.or(generic) {
            Some(i) => f.insert(bits[i]),
            None => {
                return Err(ValidationError::FlagNotForScheduler {
                    flag: name.to_string(),
                    scheduler: sched.name().to_string(),
                }
                .to_string())
            }
        }
    }
    Ok(f)
}

// =====================================================================================
// sorting like ipvsadm
// =====================================================================================

/// ipvsadm's comparison of two 32-bit host-order values: `(int)(a - b)`.
fn wrap_cmp(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn addr_cmp(a: &IpAddr, b: &IpAddr, as_v6: bool) -> i32 {
    let (x, y) = (inet_addr16(a), inet_addr16(b));
    let words = if as_v6 { 4 } else { 1 };
    for i in 0..words {
        let xa = u32::from_be_bytes(x[i * 4..i * 4 + 4].try_into().unwrap());
        let ya = u32::from_be_bytes(y[i * 4..i * 4 + 4].try_into().unwrap());
        let r = wrap_cmp(xa, ya);
        if r != 0 {
            return r;
        }
    }
    0
}

fn family_num(f: Family) -> i32 {
    match f {
        Family::Inet => abi::AF_INET,
        Family::Inet6 => abi::AF_INET6,
    }
}

/// libipvs `ipvs_cmp_services`.
pub fn ipvsadm_cmp_services(a: &Service, b: &Service) -> i32 {
    let mark = |s: &Service| match s.key {
        ServiceKey::Fwmark { mark, .. } => mark,
        _ => 0,
    };
    let r = wrap_cmp(mark(a), mark(b));
    if r != 0 {
        return r;
    }
    let r = family_num(a.key.family()) - family_num(b.key.family());
    if r != 0 {
        return r;
    }
    let proto = |s: &Service| {
        s.key
            .protocol()
            .map(|p| super::convert::proto_num(p) as i32)
            .unwrap_or(0)
    };
    let r = proto(a) - proto(b);
    if r != 0 {
        return r;
    }
    let unspec = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let (aa, ap) = match &a.key {
        ServiceKey::Inet { addr, port, .. } => (*addr, *port),
        _ => (unspec, 0),
    };
    let (ba, bp) = match &b.key {
        ServiceKey::Inet { addr, port, .. } => (*addr, *port),
        _ => (unspec, 0),
    };
    let r = addr_cmp(&aa, &ba, a.key.family() == Family::Inet6);
    if r != 0 {
        return r;
    }
    ap as i32 - bp as i32
}

/// libipvs `ipvs_cmp_dests`.
pub fn ipvsadm_cmp_dests(a: &Destination, b: &Destination) -> i32 {
    let r = family_num(a.family()) - family_num(b.family());
    if r != 0 {
        return r;
    }
    let r = addr_cmp(&a.addr, &b.addr, a.family() == Family::Inet6);
    if r != 0 {
        return r;
    }
    a.port as i32 - b.port as i32
}

/// glibc's qsort for small arrays is a top-down merge sort that takes from the
/// left run while `cmp <= 0`; doing the same reproduces ipvsadm's order even
/// where its comparison is not a total order.
pub fn merge_sort_by<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort_by(&mut v[..n1], cmp);
    merge_sort_by(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..n]);
    v.clone_from_slice(&merged);
}

/// Services and their real servers in ipvsadm's order.
pub fn sorted(entries: &[ServiceEntry]) -> Vec<ServiceEntry> {
    let mut v = entries.to_vec();
    merge_sort_by(&mut v, &|a: &ServiceEntry, b: &ServiceEntry| {
        ipvsadm_cmp_services(&a.service, &b.service)
    });
    for e in &mut v {
        merge_sort_by(&mut e.dests, &|a: &DestEntry, b: &DestEntry| {
            ipvsadm_cmp_dests(&a.dest, &b.dest)
        });
    }
    v
}

// =====================================================================================
// listings
// =====================================================================================

/// Which `ipvsadm -L -n` table to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListKind {
    /// plain `-L -n`
    #[default]
    Plain,
    /// `--stats`
    Stats,
    /// `--rate`
    Rate,
    /// `--thresholds`
    Thresholds,
    /// `--persistent-conn`
    PersistentConn,
    /// `--tun-info`
    TunInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListOptions {
    pub kind: ListKind,
    /// `--exact`: no K/M/G/T abbreviations.
    pub exact: bool,
}

/// ipvsadm's `print_largenum`.
pub fn largenum(i: u64, exact: bool) -> String {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        return format!("{i:>w$}");
    }
    if i < 100_000_000 {
        format!("{i:>9}")
    } else if i < 1_000_000_000 {
        format!("{:>8}K", i / 1_000)
    } else if i < 1_000_000_000_000 {
        format!("{:>8}M", i / 1_000_000)
    } else if i < 1_000_000_000_000_000 {
        format!("{:>8}G", i / 1_000_000_000)
    } else {
        format!("{:>8}T", i / 1_000_000_000_000)
    }
}

/// `--tun-info` column: `n/a`, `ipip`, `gue:PORT:CSUM`, `gre:CSUM`.
pub fn tunnel_info(d: &Destination) -> String {
    if d.fwd != Forward::Tun {
        return "n/a".into();
    }
    let t = &d.tunnel;
    let csum = || {
        let mut s = String::new();
        if t.flags & Tunnel::REMCSUM != 0 {
            s.push('r');
        }
        s.push_str(if t.flags & (Tunnel::CSUM | Tunnel::REMCSUM) != 0 {
            "+c"
        } else {
            "-c"
        });
        s
    };
    match t.kind {
        TunnelType::Ipip => "ipip".into(),
        TunnelType::Gue => format!("gue:{}:{}", t.port, csum()),
        TunnelType::Gre => format!("gre:{}", csum()),
    }
}

/// The service line of the plain/thresholds/persistent-conn tables.
pub fn service_line(s: &Service) -> String {
    let mut o = format!("{} {}", s.key.list_name(), s.scheduler);
    let names = s.flags.sched_flag_names(&s.scheduler);
    if !names.is_empty() {
        let _ = write!(o, " ({})", names.join(","));
    }
    if s.is_persistent() {
        let _ = write!(o, " persistent {}", s.timeout);
        if !s.netmask.is_host() {
            let _ = write!(o, " mask {}", s.netmask);
        }
        if let Some(pe) = &s.pe_name {
            let _ = write!(o, " pe {pe}");
        }
    }
    if s.flags.contains(ServiceFlags::ONE_PACKET) {
        o.push_str(" ops");
    }
    o
}

fn dest_name(svc: &Service, d: &Destination) -> String {
    let mut n = addr_port(&d.addr, d.port);
    // ipvsadm cuts IPv4-service real-server names at 28 characters
    if svc.key.family() != Family::Inet6 && n.len() > 28 {
        n.truncate(28);
    }
    n
}

fn header(kind: ListKind) -> [&'static str; 2] {
    match kind {
        ListKind::Plain => [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        ],
        ListKind::TunInfo => [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn",
        ],
        ListKind::Stats => [
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
        ],
        ListKind::Rate => [
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS",
            "  -> RemoteAddress:Port",
        ],
        ListKind::Thresholds => [
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
        ],
        ListKind::PersistentConn => [
            "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn ",
            "  -> RemoteAddress:Port",
        ],
    }
}

fn counters(s: &Stats, rate: bool, exact: bool) -> String {
    let v = if rate {
        [s.cps, s.inpps, s.outpps, s.inbps, s.outbps]
    } else {
        [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes]
    };
    v.iter().map(|n| largenum(*n, exact)).collect()
}

/// `ipvsadm -L -n [--stats|--rate|--thresholds|--persistent-conn|--tun-info]`.
///
/// With `info` the "IP Virtual Server version …" line is printed first (as for
/// a full listing); without it the output matches `ipvsadm -L -n -t SERVICE`.
pub fn format_list(info: Option<&Info>, entries: &[ServiceEntry], opts: ListOptions) -> String {
    let mut out = String::new();
    if let Some(i) = info {
        let _ = writeln!(
            out,
            "IP Virtual Server version {} (size={})",
            i.version_string(),
            i.conn_tab_size
        );
    }
    for h in header(opts.kind) {
        let _ = writeln!(out, "{h}");
    }
    for e in sorted(entries) {
        let s = &e.service;
        match opts.kind {
            ListKind::Stats | ListKind::Rate => {
                let rate = opts.kind == ListKind::Rate;
                let _ = writeln!(
                    out,
                    "{:<33}{}",
                    s.key.list_name(),
                    counters(&e.stats, rate, opts.exact)
                );
                for d in &e.dests {
                    let _ = writeln!(
                        out,
                        "  -> {:<28}{}",
                        dest_name(s, &d.dest),
                        counters(&d.stats, rate, opts.exact)
                    );
                }
            }
            kind => {
                let _ = writeln!(out, "{}", service_line(s));
                for d in &e.dests {
                    let n = dest_name(s, &d.dest);
                    let _ = match kind {
                        ListKind::Thresholds => writeln!(
                            out,
                            "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
                            n, d.dest.u_thresh, d.dest.l_thresh, d.active_conns, d.inact_conns
                        ),
                        ListKind::PersistentConn => writeln!(
                            out,
                            "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
                            n, d.dest.weight, d.persist_conns, d.active_conns, d.inact_conns
                        ),
                        ListKind::TunInfo => writeln!(
                            out,
                            "  -> {:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                            n,
                            d.dest.fwd.list_name(),
                            tunnel_info(&d.dest),
                            d.dest.weight,
                            d.active_conns,
                            d.inact_conns
                        ),
                        _ => writeln!(
                            out,
                            "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                            n,
                            d.dest.fwd.list_name(),
                            d.dest.weight,
                            d.active_conns,
                            d.inact_conns
                        ),
                    };
                }
            }
        }
    }
    out
}

/// `ipvsadm -L -n --timeout`.
pub fn format_timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
