//! What users write → IPVS model, validated without any syscall: the `VIP:PORT` / `fwmark:M`
//! service syntax, service and real-server options (shared by the `lbctl lb` flags and the LB
//! file), and the declarative LB file itself (`lbctl lb apply -f LB.toml`, see
//! `profiles/lb-example.toml`).
//!
//! Rules enforced here, on top of [`Service::validate`] and [`Destination::validate_for`]:
//! * a DR (or TUN) real server listens on the service port: IPVS cannot rewrite it, and ipvsadm
//!   would silently use the service port instead;
//! * `mh-port`/`mh-fallback` belong to `mh`; other scheduler flags must belong to their scheduler;
//! * port 0 (all ports) needs persistence, a netmask needs persistence;
//! * no service or real server is listed twice.
//!

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use serde::Deserialize;

use super::plan::{Entry, Table};
use crate::ipvs::text::{addr_port, parse_addr_port, parse_sched_flags};
use crate::ipvs::{
    Destination, Family, Forward, Netmask, Protocol, Scheduler, Service, ServiceFlags, ServiceKey,
    ValidationError,
};

/// ipvsadm's default scheduler, used when none is given.
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// Parse a service: `VIP:PORT` (IPv6 `[2001:db8::100]:80`) with `proto` (default TCP), or a
/// firewall mark (`fwmark:M` or `fwmark` from `--fwmark M`), IPv6 with `ipv6`.
pub fn parse_service_key(
    spec: Option<&str>,
    proto: Option<Protocol>,
    fwmark: Option<u32>,
    ipv6: bool,
) -> Result<ServiceKey, String> {
    let mark = match (spec, fwmark) {
        (Some(_), Some(_)) => return Err("give either VIP:PORT or --fwmark M, not both".into()),
        (None, Some(m)) => Some(m),
        (Some(s), None) => match s.strip_prefix("fwmark:") {
            Some(m) => Some(
                m.parse::<u32>()
                    .map_err(|_| format!("invalid firewall mark '{m}' in '{s}'"))?,
            ),
            None => None,
        },
        (None, None) => return Err("missing service: VIP:PORT or fwmark:M".into()),
    };
    if let Some(mark) = mark {
        if mark == 0 {
            return Err("firewall mark 0 cannot identify a service".into());
        }
        if proto.is_some() {
            return Err(
                "a protocol does not apply to a fwmark service (the mark selects the packets)"
                    .into(),
            );
        }
        let family = if ipv6 { Family::Inet6 } else { Family::Inet };
        return Ok(ServiceKey::fwmark(mark, family));
    }
    let s = spec.unwrap_or_default();
    if ipv6 {
        return Err(format!(
            "--ipv6 is for fwmark services only; an IPv6 VIP is written [2001:db8::100]:80 (got '{s}')"
        ));
    }
    let (addr, port) = parse_addr_port(s)
        .map_err(|e| format!("invalid service '{s}': {}", e.replace('`', "'")))?;
    let Some(port) = port else {
        return Err(format!(
            "service '{s}' has no port: write VIP:PORT, e.g. 198.18.0.100:80 or [2001:db8::100]:80"
        ));
    };
    if !is_unicast(&addr) {
        return Err(format!("service address {addr} is not a unicast address"));
    }
    Ok(ServiceKey::Inet {
        protocol: proto.unwrap_or(Protocol::Tcp),
        addr,
        port,
    })
}

fn is_unicast(a: &IpAddr) -> bool {
    !(a.is_unspecified() || a.is_multicast() || *a == IpAddr::V4(Ipv4Addr::BROADCAST))
}

/// `ServiceKey` as users write it in lbctl: `198.18.0.100:80` (TCP), `udp 198.18.0.100:53`,
/// `fwmark:42`.
pub fn key_name(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr,
            port,
        } => addr_port(addr, *port),
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => format!(
            "{} {}",
            protocol.list_name().to_lowercase(),
            addr_port(addr, *port)
        ),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet,
        } => format!("fwmark:{mark}"),
        ServiceKey::Fwmark {
            mark,
            family: Family::Inet6,
        } => format!("fwmark:{mark} (IPv6)"),
    }
}

/// Service options. `None` means "default" for a new service and "unchanged" for an edit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    pub scheduler: Option<String>,
    pub mh_port: Option<bool>,
    pub mh_fallback: Option<bool>,
    /// ipvsadm `-b` names (sh-port, sh-fallback, flag-1…3, …): replaces the scheduler flags.
    pub sched_flags: Option<Vec<String>>,
    /// Persistence timeout in seconds; 0 turns persistence off.
    pub persistent: Option<u32>,
    /// Persistence granularity: IPv4 netmask or IPv6 prefix length.
    pub netmask: Option<String>,
}

const SCHED_BITS: u32 = ServiceFlags::SCHED1.0 | ServiceFlags::SCHED2.0 | ServiceFlags::SCHED3.0;

impl ServiceSpec {
    /// The service `key` with these options, on top of `base` (an edit) or of the defaults.
    /// Changing the scheduler clears the scheduler flags unless they are given again (SCHED1
    /// means "fallback" for mh but nothing for rr).
    pub fn build(&self, key: ServiceKey, base: Option<&Service>) -> Result<Service, String> {
        let mut s = match base {
            Some(b) => b.clone(),
            None => Service::new(key, DEFAULT_SCHEDULER),
        };
        if let Some(name) = &self.scheduler {
            let sched = Scheduler::from(name.as_str());
            if !sched.is_known() {
                return Err(ValidationError::UnknownScheduler(name.clone()).to_string());
            }
            if base.is_some_and(|b| b.scheduler != sched) {
                s.flags.0 &= !SCHED_BITS;
            }
            s.scheduler = sched;
        }
        if let Some(names) = &self.sched_flags {
            s.flags.0 &= !SCHED_BITS;
            let f = parse_sched_flags(&names.join(","), &s.scheduler)?;
            s.flags.insert(f);
        }
        for (opt, want, bit) in [
            ("mh-port", self.mh_port, ServiceFlags::MH_PORT),
            ("mh-fallback", self.mh_fallback, ServiceFlags::MH_FALLBACK),
        ] {
            match want {
                Some(true) if s.scheduler != Scheduler::Mh => {
                    return Err(format!(
                        "{opt} applies to the mh scheduler only (this service uses {}; for sh use \
                         sched-flags sh-port/sh-fallback)",
                        s.scheduler
                    ))
                }
                Some(true) => s.flags.insert(bit),
                Some(false) => s.flags.remove(bit),
                None => {}
            }
        }
        match self.persistent {
            Some(0) => {
                s.flags.remove(ServiceFlags::PERSISTENT);
                s.timeout = 0;
                s.netmask = Netmask::host(key.family());
            }
            Some(t) => s = s.persistent(t),
            None => {}
        }
        if let Some(m) = &self.netmask {
            s.netmask = parse_netmask(m, key.family())?;
        }
        if !s.is_persistent() && !s.netmask.is_host() {
            return Err(format!(
                "a persistence netmask ({}) needs persistence (persistent SECS)",
                s.netmask
            ));
        }
        if key.port() == Some(0) && !s.is_persistent() {
            return Err(
                "port 0 (all ports) is only allowed for a persistent service (like ipvsadm)".into(),
            );
        }
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }
}

fn parse_netmask(m: &str, family: Family) -> Result<Netmask, String> {
    match family {
        Family::Inet => {
            let mask: Ipv4Addr = m
                .parse()
                .map_err(|_| format!("invalid IPv4 netmask '{m}' (e.g. 255.255.255.0)"))?;
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(format!("netmask {m} is not contiguous"));
            }
            Ok(Netmask::V4(mask))
        }
        Family::Inet6 => match m.trim_start_matches('/').parse::<u8>() {
            Ok(p) if (1..=128).contains(&p) => Ok(Netmask::V6(p)),
            _ => Err(format!(
                "invalid IPv6 persistence prefix length '{m}' (1..=128)"
            )),
        },
    }
}

/// `RIP` or `RIP:PORT` (`[2001:db8::11]:80`); without a port, the service port (0 for fwmark
/// services), as ipvsadm does.
pub fn parse_rip(rip: &str, key: &ServiceKey) -> Result<(IpAddr, u16), String> {
    let (addr, port) = parse_addr_port(rip)
        .map_err(|e| format!("invalid real server '{rip}': {}", e.replace('`', "'")))?;
    Ok((addr, port.unwrap_or(key.port().unwrap_or(0))))
}

/// Real-server options. `None` means "default" for a new one and "unchanged" for an edit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestSpec {
    pub weight: Option<u32>,
    pub method: Option<Forward>,
    pub u_threshold: Option<u32>,
    pub l_threshold: Option<u32>,
}

impl DestSpec {
    /// The real server `addr:port` of `key` with these options, on top of `base` or of the
    /// defaults (DR, weight 1).
    pub fn build(
        &self,
        key: &ServiceKey,
        addr: IpAddr,
        port: u16,
        base: Option<&Destination>,
    ) -> Result<Destination, String> {
        let mut d = match base {
            Some(b) => b.clone(),
            None => Destination::new(addr, port, Forward::Dr),
        };
        if let Some(m) = self.method {
            d.fwd = m;
        }
        if let Some(w) = self.weight {
            d.weight = w;
        }
        if let Some(u) = self.u_threshold {
            d.u_thresh = u;
        }
        if let Some(l) = self.l_threshold {
            d.l_thresh = l;
        }
        validate_dest(key, &d)?;
        Ok(d)
    }
}

fn method_name(f: Forward) -> &'static str {
    match f {
        Forward::Dr | Forward::Local => "DR",
        Forward::Tun => "TUN",
        Forward::Nat => "NAT",
    }
}

/// [`Destination::validate_for`] with lbctl's wording for the DR port rule.
pub fn validate_dest(key: &ServiceKey, d: &Destination) -> Result<(), String> {
    match d.validate_for(key) {
        Ok(()) => Ok(()),
        Err(ValidationError::PortMismatch {
            fwd,
            service_port,
            dest_port,
        }) => Err(format!(
            "real server {} cannot serve {}: {} forwarding does not change the destination port, \
             so the real server must listen on the service port {service_port}; use {}, or \
             --method nat to map port {service_port} to {dest_port}",
            addr_port(&d.addr, dest_port),
            key_name(key),
            method_name(fwd),
            addr_port(&d.addr, service_port),
        )),
        Err(e) => Err(format!(
            "real server {} of {}: {e}",
            addr_port(&d.addr, d.port),
            key_name(key)
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// the LB file
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    name: Option<String>,
    balancer: Option<crate::lb::config::BalancerToml>,
    /// `lb run` only: announce the VIPs by BGP.
    bgp: Option<crate::lb::announce::BgpToml>,
    /// `lb run` only: VRRP through keepalived.
    ha: Option<crate::lb::ha::HaToml>,
    #[serde(default, rename = "service")]
    services: Vec<ServiceToml>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ProtoToml {
    Tcp,
    Udp,
    Sctp,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum MethodToml {
    Dr,
    Tun,
    Nat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceToml {
    vip: Option<String>,
    fwmark: Option<u32>,
    #[serde(default)]
    ipv6: bool,
    protocol: Option<ProtoToml>,
    scheduler: Option<String>,
    mh_port: Option<bool>,
    mh_fallback: Option<bool>,
    sched_flags: Option<Vec<String>>,
    persistent: Option<u32>,
    netmask: Option<String>,
    /// `lb run` only: the health check.
    check: Option<crate::lb::config::CheckToml>,
    /// `lb run` only: quiesce (default) or remove a failed backend.
    on_failure: Option<crate::lb::config::OnFailure>,
    /// `lb run` only: minimum healthy backends, and what happens below it.
    quorum: Option<i64>,
    on_quorum_loss: Option<crate::lb::quorum::OnQuorumLoss>,
    sorry_server: Option<String>,
    hysteresis: Option<i64>,
    /// `lb run` only: argv run on backend and service transitions.
    notify: Option<Vec<String>>,
    #[serde(default, rename = "backend")]
    backends: Vec<BackendToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendToml {
    rip: String,
    weight: Option<u32>,
    method: Option<MethodToml>,
    u_threshold: Option<u32>,
    l_threshold: Option<u32>,
    /// `lb run` only: the backend is drained while this file exists.
    disable_file: Option<String>,
}

/// A parsed and validated LB file.
#[derive(Debug, Clone)]
pub struct LbFile {
    /// Owner name in the journal (`name`, or the file name without `.toml`).
    pub name: String,
    pub table: Table,
    /// `[balancer]` (defaults when absent): used by `lb run`.
    pub balancer: crate::lb::config::Balancer,
    /// Per service, in `table.entries` order: checks and failure policy for `lb run`.
    pub runs: Vec<crate::lb::config::ServiceRun>,
    /// `[bgp]`: announce the VIPs by BGP (`lb run`).
    pub bgp: Option<crate::lb::announce::Bgp>,
    /// `[ha]`: VRRP through keepalived (`lb run`, `lb export keepalived`).
    pub ha: Option<crate::lb::ha::Ha>,
}

impl LbFile {
    /// The services with an address (fwmark services have none): VIP, the service's name
    /// (`VIP:port/proto`) and its quorum.
    pub fn inet_services(&self) -> Vec<(IpAddr, String, u32)> {
        self.table
            .entries
            .iter()
            .zip(&self.runs)
            .filter_map(|(e, r)| match e.service.key {
                ServiceKey::Inet { addr, .. } => {
                    Some((addr, key_name(&e.service.key), r.quorum.min))
                }
                ServiceKey::Fwmark { .. } => None,
            })
            .collect()
    }

    /// The distinct VIP addresses, sorted.
    pub fn vip_addrs(&self) -> Vec<IpAddr> {
        let set: std::collections::BTreeSet<IpAddr> =
            self.inet_services().into_iter().map(|s| s.0).collect();
        set.into_iter().collect()
    }
}

/// Read and validate an LB file; errors name the file (and line/column for syntax errors).
pub fn load_lb_file(path: &Path) -> Result<LbFile, String> {
    let text = crate::guard::read_capped(path, "LB file").map_err(|e| e.to_string())?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "default".into());
    parse_lb_file(&text, &stem).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse and validate LB file text; `default_name` is used when the file has no `name`.
pub fn parse_lb_file(text: &str, default_name: &str) -> Result<LbFile, String> {
    let f: FileToml =
        toml::from_str(text).map_err(|e| crate::guard::cut_long_lines(e.to_string().trim_end()))?;
    let name = f.name.unwrap_or_else(|| default_name.to_string());
    crate::guard::validate_name(&name, "LB file")?;
    let balancer = crate::lb::config::balancer(&f.balancer.unwrap_or_default())?;
    let bgp = f.bgp.as_ref().map(crate::lb::announce::parse).transpose()?;
    let mut runs = Vec::new();
    let mut table = Table::default();
    for (i, s) in f.services.iter().enumerate() {
        let what = match (&s.vip, s.fwmark) {
            (Some(v), _) => format!("[[service]] #{} ({v})", i + 1),
            (None, Some(m)) => format!("[[service]] #{} (fwmark {m})", i + 1),
            (None, None) => format!("[[service]] #{}", i + 1),
        };
        let key = parse_service_key(
            s.vip.as_deref(),
            s.protocol.map(|p| match p {
                ProtoToml::Tcp => Protocol::Tcp,
                ProtoToml::Udp => Protocol::Udp,
                ProtoToml::Sctp => Protocol::Sctp,
            }),
            s.fwmark,
            s.ipv6,
        )
        .map_err(|e| format!("{what}: {}", e.replace("--fwmark M", "fwmark")))?;
        if table.get(&key).is_some() {
            return Err(format!(
                "{what}: service {} is listed twice",
                key_name(&key)
            ));
        }
        let spec = ServiceSpec {
            scheduler: s.scheduler.clone(),
            mh_port: s.mh_port,
            mh_fallback: s.mh_fallback,
            sched_flags: s.sched_flags.clone(),
            persistent: s.persistent,
            netmask: s.netmask.clone(),
        };
        if s.persistent == Some(0) {
            return Err(format!(
                "{what}: persistent = 0 is not a timeout; leave it out for no persistence"
            ));
        }
        let service = spec.build(key, None).map_err(|e| format!("{what}: {e}"))?;
        let mut entry = Entry::new(service);
        let mut disable_files = Vec::new();
        for b in &s.backends {
            disable_files.push(match &b.disable_file {
                Some(f) if !f.starts_with('/') => {
                    return Err(format!(
                        "{what}: backend {}: disable_file \"{f}\" must be an absolute path",
                        b.rip
                    ))
                }
                f => f.as_ref().map(std::path::PathBuf::from),
            });
            let (addr, port) = parse_rip(&b.rip, &key).map_err(|e| format!("{what}: {e}"))?;
            if entry.dest(addr, port).is_some() {
                return Err(format!(
                    "{what}: real server {} is listed twice",
                    addr_port(&addr, port)
                ));
            }
            let ds = DestSpec {
                weight: b.weight,
                method: b.method.map(|m| match m {
                    MethodToml::Dr => Forward::Dr,
                    MethodToml::Tun => Forward::Tun,
                    MethodToml::Nat => Forward::Nat,
                }),
                u_threshold: b.u_threshold,
                l_threshold: b.l_threshold,
            };
            let d = ds.build(&key, addr, port, None).map_err(|e| {
                format!("{what}: {}", e.replace("--method nat", "method = \"nat\""))
            })?;
            entry.dests.push(d);
        }
        let mut run = crate::lb::config::service_run(s.check.as_ref(), s.on_failure)
            .map_err(|e| format!("{what}: {e}"))?;
        let q = crate::lb::quorum::QuorumToml {
            quorum: s.quorum,
            on_quorum_loss: s.on_quorum_loss,
            sorry_server: s.sorry_server.clone(),
            hysteresis: s.hysteresis,
            notify: s.notify.clone(),
        };
        run.quorum =
            crate::lb::quorum::parse(&q, &key, &entry).map_err(|e| format!("{what}: {e}"))?;
        table.entries.push(entry);
        run.disable_files = disable_files;
        runs.push(run);
    }
    let ha = f.ha.as_ref().map(crate::lb::ha::ha).transpose()?;
    if bgp.is_some() && ha.is_some() {
        return Err(
            "[bgp] and [ha] are alternatives: announce the VIPs by BGP from every \
                    balancer, or let a VRRP pair own them, not both"
                .into(),
        );
    }
    Ok(LbFile {
        name,
        table,
        balancer,
        runs,
        bgp,
        ha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ServiceKey {
        parse_service_key(Some(s), None, None, false).unwrap()
    }

    #[test]
    fn service_syntax() {
        assert_eq!(
            key("198.18.0.100:80"),
            ServiceKey::tcp("198.18.0.100:80".parse().unwrap())
        );
        assert_eq!(
            parse_service_key(
                Some("[2001:db8::100]:443"),
                Some(Protocol::Udp),
                None,
                false
            ),
            Ok(ServiceKey::udp("[2001:db8::100]:443".parse().unwrap()))
        );
        assert_eq!(key("fwmark:42"), ServiceKey::fwmark(42, Family::Inet));
        assert_eq!(
            parse_service_key(None, None, Some(42), true),
            Ok(ServiceKey::fwmark(42, Family::Inet6))
        );
        for (spec, proto, mark, v6, err) in [
            (Some("198.18.0.100"), None, None, false, "has no port"),
            (
                Some("2001:db8::100"),
                None,
                None,
                false,
                "[2001:db8::100]:80",
            ),
            (
                Some("198.18.0.300:80"),
                None,
                None,
                false,
                "invalid service",
            ),
            (
                Some("198.18.0.100:http"),
                None,
                None,
                false,
                "invalid service",
            ),
            (
                Some("198.18.0.100:70000"),
                None,
                None,
                false,
                "invalid service",
            ),
            (Some("0.0.0.0:80"), None, None, false, "not a unicast"),
            (Some("224.0.0.1:80"), None, None, false, "not a unicast"),
            (Some("198.18.0.100:80"), None, Some(1), false, "not both"),
            (
                Some("198.18.0.100:80"),
                None,
                None,
                true,
                "fwmark services only",
            ),
            (Some("fwmark:0"), None, None, false, "mark 0"),
            (Some("fwmark:x"), None, None, false, "invalid firewall mark"),
            (
                Some("fwmark:3"),
                Some(Protocol::Udp),
                None,
                false,
                "does not apply",
            ),
            (None, None, None, false, "missing service"),
        ] {
            let e = parse_service_key(spec, proto, mark, v6).unwrap_err();
            assert!(e.contains(err), "{spec:?}: {e}");
        }
        assert_eq!(key_name(&key("198.18.0.100:80")), "198.18.0.100:80");
        assert_eq!(key_name(&key("fwmark:7")), "fwmark:7");
    }

    #[test]
    fn service_options() {
        let k = key("198.18.0.100:80");
        let s = ServiceSpec::default().build(k, None).unwrap();
        assert_eq!(s.to_string(), "-A -t 198.18.0.100:80 -s wlc");
        let spec = ServiceSpec {
            scheduler: Some("mh".into()),
            mh_port: Some(true),
            mh_fallback: Some(true),
            persistent: Some(300),
            netmask: Some("255.255.255.0".into()),
            ..Default::default()
        };
        let s = spec.build(k, None).unwrap();
        assert_eq!(
            s.to_string(),
            "-A -t 198.18.0.100:80 -s mh -p 300 -M 255.255.255.0 -b mh-fallback,mh-port"
        );
        // edit: only what is given changes; a new scheduler drops the old one's flags
        let e = ServiceSpec {
            mh_port: Some(false),
            ..Default::default()
        }
        .build(k, Some(&s))
        .unwrap();
        assert_eq!(
            e.to_string(),
            "-A -t 198.18.0.100:80 -s mh -p 300 -M 255.255.255.0 -b mh-fallback"
        );
        let e = ServiceSpec {
            scheduler: Some("rr".into()),
            persistent: Some(0),
            ..Default::default()
        }
        .build(k, Some(&s))
        .unwrap();
        assert_eq!(e.to_string(), "-A -t 198.18.0.100:80 -s rr");
        let e = ServiceSpec {
            scheduler: Some("sh".into()),
            sched_flags: Some(vec!["sh-port".into()]),
            ..Default::default()
        }
        .build(k, None)
        .unwrap();
        assert_eq!(e.to_string(), "-A -t 198.18.0.100:80 -s sh -b sh-port");
        let v6 = ServiceSpec {
            persistent: Some(60),
            netmask: Some("64".into()),
            ..Default::default()
        }
        .build(key("[2001:db8::100]:80"), None)
        .unwrap();
        assert_eq!(v6.netmask, Netmask::V6(64));

        for (spec, k, err) in [
            (
                ServiceSpec {
                    scheduler: Some("bogus".into()),
                    ..Default::default()
                },
                k,
                "unknown scheduler 'bogus'",
            ),
            (
                ServiceSpec {
                    mh_port: Some(true),
                    ..Default::default()
                },
                k,
                "mh scheduler only",
            ),
            (
                ServiceSpec {
                    scheduler: Some("mh".into()),
                    sched_flags: Some(vec!["sh-port".into()]),
                    ..Default::default()
                },
                k,
                "does not apply",
            ),
            (
                ServiceSpec {
                    netmask: Some("255.255.255.0".into()),
                    ..Default::default()
                },
                k,
                "needs persistence",
            ),
            (
                ServiceSpec {
                    persistent: Some(60),
                    netmask: Some("255.0.255.0".into()),
                    ..Default::default()
                },
                k,
                "not contiguous",
            ),
            (
                ServiceSpec {
                    persistent: Some(60),
                    netmask: Some("200".into()),
                    ..Default::default()
                },
                key("[2001:db8::1]:80"),
                "prefix length",
            ),
            (
                ServiceSpec {
                    persistent: Some(99_999_999),
                    ..Default::default()
                },
                k,
                "persistence timeout",
            ),
            (ServiceSpec::default(), key("198.18.0.100:0"), "port 0"),
        ] {
            let e = spec.build(k, None).unwrap_err();
            assert!(e.contains(err), "{spec:?}: {e}");
        }
    }

    #[test]
    fn real_server_options() {
        let k = key("198.18.0.100:80");
        let (a, p) = parse_rip("198.18.0.11", &k).unwrap();
        assert_eq!(p, 80);
        let d = DestSpec::default().build(&k, a, p, None).unwrap();
        assert_eq!(d.to_string(), "-r 198.18.0.11:80 -g -w 1");
        let (a6, p6) = parse_rip("[2001:db8::11]:443", &k).unwrap();
        assert_eq!((a6.to_string().as_str(), p6), ("2001:db8::11", 443));
        assert_eq!(parse_rip("198.18.0.11", &key("fwmark:5")).unwrap().1, 0);

        // DR keeps the port: refused, with the fix in the message
        let e = DestSpec::default().build(&k, a, 8080, None).unwrap_err();
        assert!(
            e.contains("DR forwarding does not change the destination port"),
            "{e}"
        );
        assert!(e.contains("use 198.18.0.11:80, or --method nat"), "{e}");
        // NAT may map ports
        let nat = DestSpec {
            method: Some(Forward::Nat),
            ..Default::default()
        };
        assert!(nat.build(&k, a, 8080, None).is_ok());
        // edit keeps what is not given
        let base = Destination::nat("198.18.0.11:8080".parse().unwrap()).weight(4);
        let d = DestSpec {
            weight: Some(0),
            ..Default::default()
        }
        .build(&k, a, 8080, Some(&base))
        .unwrap();
        assert_eq!((d.fwd, d.weight), (Forward::Nat, 0));
        // switching that NAT server to DR is refused (port 8080 ≠ 80)
        assert!(DestSpec {
            method: Some(Forward::Dr),
            ..Default::default()
        }
        .build(&k, a, 8080, Some(&base))
        .is_err());
        for (ds, rip, err) in [
            (
                DestSpec {
                    weight: Some(u32::MAX),
                    ..Default::default()
                },
                "198.18.0.11",
                "weight",
            ),
            (
                DestSpec {
                    u_threshold: Some(5),
                    l_threshold: Some(9),
                    ..Default::default()
                },
                "198.18.0.11",
                "threshold",
            ),
            (DestSpec::default(), "2001:db8::11", "tunnel"),
            (DestSpec::default(), "224.0.0.1", "unicast"),
        ] {
            let (a, p) = parse_rip(rip, &k).unwrap();
            let e = ds.build(&k, a, p, None).unwrap_err();
            assert!(e.contains(err), "{rip} {ds:?}: {e}");
        }
        assert!(parse_rip("198.18.0.11:x", &k)
            .unwrap_err()
            .contains("invalid real server"));
    }

    #[test]
    fn lb_file() {
        let text = r#"
name = "web"
[[service]]
vip = "198.18.0.100:80"
scheduler = "mh"
mh_port = true
mh_fallback = true
[[service.backend]]
rip = "198.18.0.11"
[[service.backend]]
rip = "198.18.0.12:80"
weight = 3

[[service]]
vip = "[2001:db8::100]:53"
protocol = "udp"
scheduler = "rr"
[[service.backend]]
rip = "2001:db8::11"

[[service]]
fwmark = 7
persistent = 600
[[service.backend]]
rip = "198.18.0.13"
method = "nat"
"#;
        let f = parse_lb_file(text, "x").unwrap();
        assert_eq!(f.name, "web");
        let rules: Vec<String> = f
            .table
            .entries
            .iter()
            .flat_map(|e| {
                std::iter::once(e.service.to_string())
                    .chain(e.dests.iter().map(|d| d.rule(&e.service.key).to_string()))
            })
            .collect();
        assert_eq!(
            rules,
            [
                "-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port",
                "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
                "-a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 3",
                "-A -u [2001:db8::100]:53 -s rr",
                "-a -u [2001:db8::100]:53 -r [2001:db8::11]:53 -g -w 1",
                "-A -f 7 -s wlc -p 600",
                "-a -f 7 -r 198.18.0.13:0 -m -w 1",
            ]
        );
        assert_eq!(parse_lb_file("", "stem").unwrap().name, "stem");
    }

    #[test]
    fn lb_file_errors() {
        let svc = "[[service]]\nvip = \"198.18.0.100:80\"\n";
        for (text, err) in [
            ("bogus = 1", "unknown field `bogus`"),
            ("[[service]]\nvip = \"198.18.0.100:80\"\nschedular = \"rr\"", "unknown field `schedular`"),
            (&format!("{svc}[[service.backend]]\nrip = \"198.18.0.11\"\nwieght = 2"), "unknown field `wieght`"),
            (&format!("{svc}protocol = \"icmp\""), "unknown variant `icmp`"),
            (&format!("{svc}scheduler = \"nope\""), "#1 (198.18.0.100:80): unknown scheduler 'nope'"),
            (&format!("{svc}[[service.backend]]\nrip = \"198.18.0.11:8080\""), "method = \"nat\""),
            (&format!("{svc}[[service.backend]]\nrip = \"198.18.0.11\"\n[[service.backend]]\nrip = \"198.18.0.11:80\""), "listed twice"),
            (&format!("{svc}{svc}"), "#2 (198.18.0.100:80): service 198.18.0.100:80 is listed twice"),
            ("[[service]]\nscheduler = \"rr\"", "missing service"),
            ("[[service]]\nvip = \"198.18.0.100:80\"\nfwmark = 3", "not both"),
            (&format!("{svc}persistent = 0"), "leave it out"),
            (&format!("{svc}mh_port = true"), "mh scheduler only"),
            ("name = \"a b\"", "invalid LB file name"),
            ("[[service]]\nvip = \"198.18.0.100:80\"\n[[service.backend]]\nweight = 1", "missing field `rip`"),
        ] {
            let e = parse_lb_file(text, "x").unwrap_err();
            assert!(e.contains(err), "{text}\n=> {e}");
        }
        // syntax errors carry line and column
        let e = parse_lb_file("[[service]]\nvip = 198.18.0.100:80\n", "x").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn shipped_lb_examples_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("lb-") && name.ends_with(".toml") {
                let f = load_lb_file(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!f.table.entries.is_empty(), "{name}");
                n += 1;
            }
        }
        assert!(n >= 1);
    }
}
