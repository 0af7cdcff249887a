//! The `lb run` parts of an LB file: `[balancer]` (engine, interface, hashing) and, per service,
//! `[service.check]` and `on_failure`. Parsed together with the IPVS part by
//! [`crate::ipvs::spec::parse_lb_file`], so one file serves `lb apply` and `lb run`, and every
//! mistake is reported (with the service it belongs to) before anything is touched.

use std::time::Duration;

use serde::Deserialize;

use crate::maglev;
use crate::model::validate_ifname;

/// Which data path programs the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// IPVS when the kernel has it, else nft.
    #[default]
    Auto,
    /// Kernel IPVS in DR mode.
    Ipvs,
    /// An lbctl-owned nftables netdev table with Maglev hashing.
    Nft,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Auto => "auto",
            EngineKind::Ipvs => "ipvs",
            EngineKind::Nft => "nft",
        }
    }
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct BalancerToml {
    engine: Option<EngineKind>,
    interface: Option<String>,
    seed: Option<u32>,
    maglev_size: Option<usize>,
    flow_timeout: Option<String>,
    max_concurrent_checks: Option<usize>,
    log_rate: Option<u32>,
    metrics: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckKindToml {
    Tcp,
    Http,
    Https,
    Exec,
    Udp,
    Dns,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckToml {
    #[serde(rename = "type")]
    kind: Option<CheckKindToml>,
    port: Option<u16>,
    path: Option<String>,
    host: Option<String>,
    expect_status: Option<u16>,
    expect_body: Option<String>,
    command: Option<Vec<String>>,
    /// udp: the datagram to send; expect: a substring of the answer.
    send: Option<String>,
    expect: Option<String>,
    /// dns: the name to ask for, and the record type (A, AAAA).
    query: Option<String>,
    query_type: Option<String>,
    /// https: the SNI name, and whether to verify the certificate (default: no).
    sni: Option<String>,
    verify_tls: Option<bool>,
    interval: Option<String>,
    timeout: Option<String>,
    rise: Option<u32>,
    fall: Option<u32>,
    dsr: Option<bool>,
    weight_from_exit: Option<bool>,
}

/// What happens to a backend that fails its check.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Weight 0: no new flows, established ones continue (IPVS quiescent, nft pinned flows).
    #[default]
    Quiesce,
    /// Out of the service: established flows are cut over to other backends too.
    Remove,
}

/// Validated `[balancer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balancer {
    pub engine: EngineKind,
    /// The NIC that owns the VIPs (and carries the nft ingress hook). `None`: the interface of
    /// the route to the first backend, found at start-up.
    pub interface: Option<String>,
    /// jhash seed: fixed, so reloading the table never re-maps live flows.
    pub seed: u32,
    /// Maglev table size (prime).
    pub maglev_size: usize,
    /// How long an idle flow stays pinned to its backend (nft engine).
    pub flow_timeout: Duration,
    /// At most this many checks run at the same time.
    pub max_concurrent_checks: usize,
    /// At most this many log lines per second (transitions beyond it are counted, not lost).
    pub log_rate: u32,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for Balancer {
    fn default() -> Self {
        Balancer {
            engine: EngineKind::Auto,
            interface: None,
            seed: 0x4c42,
            maglev_size: 4099,
            flow_timeout: Duration::from_secs(300),
            max_concurrent_checks: 16,
            log_rate: 20,
            metrics: None,
        }
    }
}

/// How a backend is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// TCP connect to RIP:port.
    Tcp,
    /// HTTP GET (HTTP/1.0, the server closes the connection).
    Http {
        path: String,
        host: Option<String>,
        expect_status: u16,
        expect_body: Option<String>,
        /// HTTPS: TLS with this SNI name (None: the address, no SNI), certificate verified or
        /// not (keepalived's SSL_GET does not).
        tls: Option<Tls>,
    },
    /// A command; exit 0 = healthy. Gets `LBCTL_RIP`, `LBCTL_PORT`, `LBCTL_VIP` in its
    /// environment.
    Exec { command: Vec<String> },
    /// A UDP datagram; healthy when an answer arrives (containing `expect` if given).
    Udp {
        send: String,
        expect: Option<String>,
    },
    /// A DNS query (recursion desired) for `name`; healthy on a NOERROR answer with at least
    /// one record.
    Dns {
        name: String,
        qtype: crate::lb::dns::QType,
    },
}

/// The TLS settings of an `https` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub sni: Option<String>,
    pub verify: bool,
}

/// Validated `[service.check]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub probe: Probe,
    /// Port to probe (default: the backend's port).
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Successes in a row before a down backend is up again.
    pub rise: u32,
    /// Failures in a row before an up backend is down.
    pub fall: u32,
    /// Also send a SYN to VIP:port addressed to the backend's MAC (as the balancer forwards it)
    /// and expect the SYN-ACK from the VIP: catches a backend that lost its VIP, or answers
    /// from the wrong source, while its service is still up. A UDP service gets a datagram
    /// instead, and a UDP answer or an ICMP port unreachable from the VIP passes
    /// ([`crate::sys::probe::dsr_udp`]).
    pub dsr: bool,
    /// `type = "exec"`: the exit code sets the weight, as keepalived's `misc_dynamic`: 0 = up
    /// at the configured weight, 1 = down, 2-255 = up at weight code − 2.
    pub weight_from_exit: bool,
}

impl Default for Check {
    fn default() -> Self {
        Check {
            probe: Probe::Tcp,
            port: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            dsr: false,
            weight_from_exit: false,
        }
    }
}

/// The `lb run` settings of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRun {
    pub check: Check,
    pub on_failure: OnFailure,
    /// Quorum, sorry server, notify hooks ([`crate::lb::quorum`]).
    pub quorum: crate::lb::quorum::Quorum,
    /// Per backend (in the service's order): while this file exists the backend is drained.
    pub disable_files: Vec<Option<std::path::PathBuf>>,
}

/// Parse "250ms", "2s", "1.5s", "1m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!(
            "invalid duration '{s}': give a unit, e.g. \"500ms\", \"2s\", \"1m\""
        ));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{s}'"))?;
    if !v.is_finite() || v <= 0.0 || v * mult > 86_400.0 {
        return Err(format!(
            "invalid duration '{s}': must be above 0 and at most a day"
        ));
    }
    Ok(Duration::from_secs_f64(v * mult))
}

/// Validate `[balancer]`.
pub fn balancer(t: &BalancerToml) -> Result<Balancer, String> {
    let d = Balancer::default();
    if let Some(i) = &t.interface {
        validate_ifname(i).map_err(|e| format!("[balancer] {e}"))?;
    }
    let maglev_size = t.maglev_size.unwrap_or(d.maglev_size);
    if !maglev::is_prime(maglev_size) || !(7..=1_000_003).contains(&maglev_size) {
        return Err(format!(
            "[balancer] maglev_size = {maglev_size}: must be a prime between 7 and 1000003 \
             (pick M > 100 × backends; `lbctl lb maglev` shows the trade-off)"
        ));
    }
    let flow_timeout = match &t.flow_timeout {
        Some(s) => parse_duration(s).map_err(|e| format!("[balancer] flow_timeout: {e}"))?,
        None => d.flow_timeout,
    };
    let max = t.max_concurrent_checks.unwrap_or(d.max_concurrent_checks);
    if !(1..=1024).contains(&max) {
        return Err(format!(
            "[balancer] max_concurrent_checks = {max}: must be 1..=1024"
        ));
    }
    let log_rate = t.log_rate.unwrap_or(d.log_rate);
    if log_rate == 0 {
        return Err("[balancer] log_rate must be at least 1 line per second".into());
    }
    let metrics = match &t.metrics {
        None => None,
        Some(m) => Some(m.parse().map_err(|_| {
            format!(
                "[balancer] metrics = \"{m}\": give an address and port, e.g. \"127.0.0.1:9109\""
            )
        })?),
    };
    Ok(Balancer {
        metrics,
        engine: t.engine.unwrap_or_default(),
        interface: t.interface.clone(),
        seed: t.seed.unwrap_or(d.seed),
        maglev_size,
        flow_timeout,
        max_concurrent_checks: max,
        log_rate,
    })
}

/// Validate one service's `[service.check]` and `on_failure`.
pub fn service_run(
    check: Option<&CheckToml>,
    on_failure: Option<OnFailure>,
) -> Result<ServiceRun, String> {
    let d = Check::default();
    let Some(c) = check else {
        return Ok(ServiceRun {
            check: d,
            on_failure: on_failure.unwrap_or_default(),
            ..Default::default()
        });
    };
    let kind = c.kind.unwrap_or(CheckKindToml::Tcp);
    let http_only = [
        ("path", c.path.is_some()),
        ("host", c.host.is_some()),
        ("expect_status", c.expect_status.is_some()),
        ("expect_body", c.expect_body.is_some()),
    ];
    let is_http = matches!(kind, CheckKindToml::Http | CheckKindToml::Https);
    if !is_http {
        if let Some((k, _)) = http_only.iter().find(|(_, set)| *set) {
            return Err(format!(
                "check: {k} is only for type = \"http\" or \"https\""
            ));
        }
    }
    if kind != CheckKindToml::Exec && c.weight_from_exit.is_some() {
        return Err("check: weight_from_exit is only for type = \"exec\"".into());
    }
    if kind != CheckKindToml::Exec && c.command.is_some() {
        return Err("check: command is only for type = \"exec\"".into());
    }
    if kind != CheckKindToml::Udp {
        if let Some(k) = [("send", c.send.is_some()), ("expect", c.expect.is_some())]
            .iter()
            .find_map(|(k, set)| set.then_some(k))
        {
            return Err(format!("check: {k} is only for type = \"udp\""));
        }
    }
    if kind != CheckKindToml::Dns {
        if let Some(k) = [
            ("query", c.query.is_some()),
            ("query_type", c.query_type.is_some()),
        ]
        .iter()
        .find_map(|(k, set)| set.then_some(k))
        {
            return Err(format!("check: {k} is only for type = \"dns\""));
        }
    }
    if kind != CheckKindToml::Https {
        if let Some(k) = [
            ("sni", c.sni.is_some()),
            ("verify_tls", c.verify_tls.is_some()),
        ]
        .iter()
        .find_map(|(k, set)| set.then_some(k))
        {
            return Err(format!("check: {k} is only for type = \"https\""));
        }
    }
    if let Some(n) = &c.sni {
        crate::lb::dns::validate_name(n).map_err(|e| format!("check: sni: {e}"))?;
    }
    let probe = match kind {
        CheckKindToml::Tcp => Probe::Tcp,
        CheckKindToml::Http | CheckKindToml::Https => {
            let path = c.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') || path.chars().any(|ch| ch.is_control() || ch == ' ') {
                return Err(format!(
                    "check: path '{path}' must start with '/' and contain no spaces"
                ));
            }
            if let Some(h) = &c.host {
                if h.is_empty() || h.chars().any(|ch| ch.is_control() || ch == ' ') {
                    return Err(format!("check: invalid host '{h}'"));
                }
            }
            let expect_status = c.expect_status.unwrap_or(200);
            if !(100..=599).contains(&expect_status) {
                return Err(format!(
                    "check: expect_status = {expect_status} is not an HTTP status"
                ));
            }
            Probe::Http {
                path,
                host: c.host.clone(),
                expect_status,
                expect_body: c.expect_body.clone(),
                tls: (kind == CheckKindToml::Https).then(|| Tls {
                    sni: c.sni.clone(),
                    verify: c.verify_tls.unwrap_or(false),
                }),
            }
        }
        CheckKindToml::Udp => {
            let send = c.send.clone().unwrap_or_default();
            if send.len() > 1400 {
                return Err("check: send is longer than 1400 bytes".into());
            }
            if c.expect.as_deref() == Some("") {
                return Err("check: expect = \"\" matches everything; leave it out".into());
            }
            Probe::Udp {
                send,
                expect: c.expect.clone(),
            }
        }
        CheckKindToml::Dns => {
            let name = c
                .query
                .clone()
                .ok_or("check: type = \"dns\" needs query = \"NAME\" (the name to resolve)")?;
            crate::lb::dns::validate_name(&name).map_err(|e| format!("check: query: {e}"))?;
            let qtype = match &c.query_type {
                None => crate::lb::dns::QType::A,
                Some(t) => crate::lb::dns::QType::parse(t)
                    .ok_or_else(|| format!("check: query_type = \"{t}\": use \"A\" or \"AAAA\""))?,
            };
            Probe::Dns { name, qtype }
        }
        CheckKindToml::Exec => match &c.command {
            Some(cmd) if !cmd.is_empty() && !cmd[0].is_empty() => Probe::Exec {
                command: cmd.clone(),
            },
            _ => {
                return Err(
                    "check: type = \"exec\" needs command = [\"program\", \"arg\", …]".into(),
                )
            }
        },
    };
    let interval = match &c.interval {
        Some(s) => parse_duration(s).map_err(|e| format!("check: interval: {e}"))?,
        None => d.interval,
    };
    let timeout = match &c.timeout {
        Some(s) => parse_duration(s).map_err(|e| format!("check: timeout: {e}"))?,
        None => d.timeout.min(interval),
    };
    if timeout > interval {
        return Err(format!(
            "check: timeout ({timeout:?}) is longer than interval ({interval:?}): checks would pile up"
        ));
    }
    let rise = c.rise.unwrap_or(d.rise);
    let fall = c.fall.unwrap_or(d.fall);
    for (k, v) in [("rise", rise), ("fall", fall)] {
        if !(1..=100).contains(&v) {
            return Err(format!("check: {k} = {v}: must be 1..=100"));
        }
    }
    if c.port == Some(0) {
        return Err("check: port 0 cannot be probed".into());
    }
    Ok(ServiceRun {
        check: Check {
            probe,
            port: c.port,
            interval,
            timeout,
            rise,
            fall,
            dsr: c.dsr.unwrap_or(false),
            weight_from_exit: c.weight_from_exit.unwrap_or(false),
        },
        on_failure: on_failure.unwrap_or_default(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str) -> Result<ServiceRun, String> {
        let c: CheckToml = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        service_run(Some(&c), None)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["2", "0s", "-1s", "xs", "2d", "inf s", "100000s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_defaults_and_validation() {
        let r = check("type = \"http\"\ninterval = \"500ms\"").unwrap();
        assert_eq!(r.check.interval, Duration::from_millis(500));
        assert_eq!(r.check.timeout, Duration::from_millis(500));
        assert!(
            matches!(r.check.probe, Probe::Http { expect_status: 200, ref path, .. } if path == "/")
        );
        assert!(check("type = \"tcp\"\npath = \"/\"")
            .unwrap_err()
            .contains("only for type"));
        assert!(check("type = \"exec\"")
            .unwrap_err()
            .contains("needs command"));
        assert!(check("interval = \"1s\"\ntimeout = \"2s\"")
            .unwrap_err()
            .contains("pile up"));
        assert!(check("rise = 0").unwrap_err().contains("rise"));
        assert!(check("bogus = 1").is_err());
        assert!(check("type = \"http\"\nexpect_status = 999").is_err());
        assert!(check("type = \"http\"\npath = \"no-slash\"").is_err());
        let https = check("type = \"https\"\nsni = \"svc.test\"").unwrap();
        assert!(matches!(
            https.check.probe,
            Probe::Http { tls: Some(Tls { verify: false, ref sni }), .. } if sni.as_deref() == Some("svc.test")
        ));
        assert!(check("type = \"http\"\nsni = \"a.b\"")
            .unwrap_err()
            .contains("only for type = \"https\""));
        assert!(check("type = \"https\"\nsni = \"a b\"").is_err());
    }

    #[test]
    fn balancer_validation() {
        let b = |s: &str| balancer(&toml::from_str::<BalancerToml>(s).unwrap());
        assert_eq!(b("").unwrap(), Balancer::default());
        assert!(b("maglev_size = 4096").unwrap_err().contains("prime"));
        assert!(b("interface = \"a/b\"").is_err());
        assert!(b("max_concurrent_checks = 0").is_err());
        assert_eq!(b("engine = \"nft\"").unwrap().engine, EngineKind::Nft);
    }
}
