//! lbvm-ipvs-test — the IPVS scenario that runs as /lbvm-test inside the QEMU
//! VM built by vm/build-image.sh (real Debian kernel, ip_vs + schedulers
//! loaded by /init, lo up, ipvsadm 1.31 available at /sbin/ipvsadm).
//!
//! Prints one `LBVM: CHECK <name> ok|FAIL <detail>` line per check, then
//! `LBVM: RESULT pass|fail`, and exits 0 only when every check passed.
//! It flushes IPVS when it starts and when it ends: never run it on a host
//! whose IPVS table matters.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lbctl::ipvs::{
    convert, golden, text, Client, DestEntry, Destination, Error, Family, Forward, ListKind,
    ListOptions, Netmask, Rule, SaveDialect, Scheduler, Service, ServiceEntry, ServiceFlags,
    ServiceKey, Timeouts, Tunnel, TunnelType, ValidationError,
};

const IPVSADM: &str = "/sbin/ipvsadm";
/// The schedulers /init loads (Debian 6.1 cloud kernel; `twos` is 6.2+).
const SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

type Check = Result<String, String>;

struct Report {
    ok: usize,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, r: Check) {
        match r {
            Ok(detail) => {
                self.ok += 1;
                println!(
                    "LBVM: CHECK {name} ok{}{}",
                    if detail.is_empty() { "" } else { " " },
                    one_line(&detail)
                );
            }
            Err(detail) => {
                self.failed.push(name.to_string());
                let mut lines = detail.lines();
                println!("LBVM: CHECK {name} FAIL {}", lines.next().unwrap_or(""));
                for l in lines {
                    println!("    | {l}");
                }
            }
        }
        let _ = std::io::stdout().flush();
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " / ")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("IP literal")
}

fn e2s(e: Error) -> String {
    format!("unexpected error: {e}")
}

/// Run ipvsadm; Ok(stdout) on exit 0, Err(stderr…) otherwise.
fn ipvsadm(args: &[&str]) -> Result<String, String> {
    ipvsadm_stdin(args, None)
}

fn ipvsadm_stdin(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new(IPVSADM);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {IPVSADM}: {e}"))?;
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "ipvsadm {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Byte-for-byte comparison with the first difference in the detail.
fn same_text(what: &str, mine: &str, theirs: &str) -> Check {
    if mine == theirs {
        return Ok(format!("{what}: {} lines identical", mine.lines().count()));
    }
    let (m, t): (Vec<_>, Vec<_>) = (mine.lines().collect(), theirs.lines().collect());
    let i = (0..m.len().max(t.len()))
        .find(|&i| m.get(i) != t.get(i))
        .unwrap_or(0);
    let mut d = format!(
        "{what}: first difference at line {}\nlbctl:   {:?}\nipvsadm: {:?}\n--- lbctl ---\n",
        i + 1,
        m.get(i),
        t.get(i)
    );
    d.push_str(mine);
    d.push_str("--- ipvsadm ---\n");
    d.push_str(theirs);
    Err(d)
}

fn find<'a>(entries: &'a [ServiceEntry], key: &ServiceKey) -> Option<&'a ServiceEntry> {
    entries.iter().find(|e| e.service.key == *key)
}

fn dest_set(dests: &[DestEntry]) -> Vec<Destination> {
    let mut v: Vec<Destination> = dests.iter().map(|d| d.dest.clone()).collect();
    v.sort_by_key(|d| (d.addr, d.port));
    v
}

fn sorted_dests(mut v: Vec<Destination>) -> Vec<Destination> {
    v.sort_by_key(|d| (d.addr, d.port));
    v
}

/// The service as listed equals `want` and its real servers are exactly `dests`.
fn expect_state(c: &mut Client, want: &Service, dests: Vec<Destination>) -> Check {
    let e = c.service(&want.key).map_err(e2s)?;
    if e.service != *want {
        return Err(format!(
            "service differs\nwant {want:?}\ngot  {:?}",
            e.service
        ));
    }
    let (got, want_d) = (dest_set(&e.dests), sorted_dests(dests));
    if got != want_d {
        return Err(format!(
            "real servers differ\nwant {want_d:?}\ngot  {got:?}"
        ));
    }
    Ok(format!("{} with {} real servers", e.service, got.len()))
}

/// The kernel refused with `errno`, and the message reads like ipvsadm's.
fn expect_kernel_err<T: std::fmt::Debug>(r: Result<T, Error>, errno: i32, text_has: &str) -> Check {
    match r {
        Err(e @ Error::Kernel { .. }) if e.errno() == Some(errno) => {
            let s = e.to_string();
            if s.contains(text_has) {
                Ok(s)
            } else {
                Err(format!("errno ok but message lacks {text_has:?}: {s}"))
            }
        }
        Err(e) => Err(format!("wanted errno {errno}, got: {e}")),
        Ok(v) => Err(format!("wanted errno {errno}, got success: {v:?}")),
    }
}

/// Refused by validation, and no request reached the kernel.
fn refused<T: std::fmt::Debug>(
    c: &mut Client,
    f: impl FnOnce(&mut Client) -> Result<T, Error>,
    pred: impl Fn(&ValidationError) -> bool,
) -> Check {
    let before = c.requests_sent();
    let r = f(c);
    let sent = c.requests_sent() - before;
    match r {
        Err(Error::Invalid { what, source }) if pred(&source) && sent == 0 => Ok(format!(
            "refused before any syscall: {}",
            Error::Invalid { what, source }
        )),
        Err(e) => Err(format!("unexpected error ({sent} requests sent): {e}")),
        Ok(v) => Err(format!("accepted: {v:?}")),
    }
}

fn list_cmp(c: &mut Client, kind: ListKind, args: &[&str]) -> Check {
    let info = c.info().map_err(e2s)?;
    let entries = c.services().map_err(e2s)?;
    let mine = text::format_list(Some(&info), &entries, ListOptions { kind, exact: false });
    same_text(
        &format!("ipvsadm {}", args.join(" ")),
        &mine,
        &ipvsadm(args)?,
    )
}

fn save_cmp(c: &mut Client) -> Check {
    let entries = c.services().map_err(e2s)?;
    same_text(
        "ipvsadm -S -n",
        &text::save(&entries, SaveDialect::Ipvsadm),
        &ipvsadm(&["-S", "-n"])?,
    )
}

/// Listing without counters/connection numbers, in a canonical order.
fn normalized(entries: &[ServiceEntry]) -> Vec<(Service, Vec<Destination>)> {
    let mut v: Vec<_> = entries
        .iter()
        .map(|e| (e.service.clone(), dest_set(&e.dests)))
        .collect();
    v.sort_by_key(|(s, _)| s.to_string());
    v
}

fn main() {
    if std::env::args().any(|a| a == "--unprivileged-probe") {
        unprivileged_probe();
    }
    let t0 = Instant::now();
    let mut r = Report {
        ok: 0,
        failed: Vec::new(),
    };
    let mut c = match Client::open() {
        Ok(c) => c,
        Err(e) => {
            r.check("family", Err(e.to_string()));
            println!("LBVM: RESULT fail (cannot talk to IPVS)");
            std::process::exit(1);
        }
    };
    r.check(
        "family",
        Ok(format!(
            "\"IPVS\" generic netlink family id {}",
            c.family_id()
        )),
    );
    r.check(
        "info",
        c.info().map_err(e2s).and_then(|i| {
            if i.version_string() == "1.2.1" && i.conn_tab_size > 0 {
                Ok(format!(
                    "IPVS {} conn_tab_size {}",
                    i.version_string(),
                    i.conn_tab_size
                ))
            } else {
                Err(format!("unexpected {i:?}"))
            }
        }),
    );
    r.check(
        "flush-start",
        c.flush()
            .map_err(e2s)
            .and_then(|_| match c.services().map_err(e2s)?.len() {
                0 => Ok(String::new()),
                n => Err(format!("{n} services left")),
            }),
    );

    golden_bytes(&mut c, &mut r);
    schedulers(&mut c, &mut r);
    variety(&mut c, &mut r);

    // the whole table against ipvsadm, in every listing format
    for (name, kind, args) in [
        ("state.list", ListKind::Plain, &["-L", "-n"][..]),
        ("state.stats", ListKind::Stats, &["-L", "-n", "--stats"][..]),
        ("state.rate", ListKind::Rate, &["-L", "-n", "--rate"][..]),
        (
            "state.thresholds",
            ListKind::Thresholds,
            &["-L", "-n", "--thresholds"][..],
        ),
        (
            "state.persistent-conn",
            ListKind::PersistentConn,
            &["-L", "-n", "--persistent-conn"][..],
        ),
        (
            "state.tun-info",
            ListKind::TunInfo,
            &["-L", "-n", "--tun-info"][..],
        ),
    ] {
        let res = list_cmp(&mut c, kind, args);
        r.check(name, res);
    }
    let res = save_cmp(&mut c);
    r.check("state.save", res);

    save_restore(&mut c, &mut r);
    delete_services(&mut c, &mut r);
    errors(&mut c, &mut r);
    created_by_ipvsadm(&mut c, &mut r);
    config(&mut c, &mut r);
    traffic(&mut c, &mut r);
    permission(&mut r);

    r.check("flush-end", c.flush().map_err(e2s).map(|_| String::new()));
    let total = r.ok + r.failed.len();
    println!(
        "LBVM: SUMMARY {} of {total} checks ok, {} netlink requests, {:.2}s",
        r.ok,
        c.requests_sent(),
        t0.elapsed().as_secs_f64()
    );
    if r.failed.is_empty() {
        println!("LBVM: RESULT pass");
    } else {
        println!(
            "LBVM: RESULT fail ({} failed: {})",
            r.failed.len(),
            r.failed.join(" ")
        );
        std::process::exit(1);
    }
}

/// Hand-assembled byte vectors (ipvs::golden, also checked against our
/// encoder by the unit tests) are accepted by the kernel and mean what we say.
fn golden_bytes(c: &mut Client, r: &mut Report) {
    let vip = ServiceKey::tcp(sa("198.18.0.100:80"));
    let mh = Service::new(vip, "mh").flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT);
    let res = (|| {
        c.request_bytes(&golden::NEW_SERVICE_MH).map_err(e2s)?;
        c.request_bytes(&golden::NEW_DEST_DR).map_err(e2s)?;
        expect_state(c, &mh, vec![Destination::dr(sa("198.18.0.11:80"))])?;
        same_text(
            "ipvsadm -S -n",
            "-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n",
            &ipvsadm(&["-S", "-n"])?,
        )
    })();
    r.check("golden.new-service+new-dest", res);

    let res = (|| {
        c.request_bytes(&golden::NEW_SERVICE_FWMARK6).map_err(e2s)?;
        let want = Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
            .persistent(360)
            .netmask(Netmask::V6(64));
        expect_state(c, &want, vec![])?;
        let s = ipvsadm(&["-S", "-n"])?;
        if s.lines().any(|l| l == "-A -f 43 -6 -s lc -p 360 -M 64") {
            Ok("ipvsadm shows -A -f 43 -6 -s lc -p 360 -M 64".into())
        } else {
            Err(format!("ipvsadm -S -n:\n{s}"))
        }
    })();
    r.check("golden.new-service-fwmark6", res);

    let res = (|| {
        let replies = c.request_bytes(&golden::GET_SERVICE_DUMP).map_err(e2s)?;
        let keys: BTreeSet<String> = replies
            .iter()
            .filter_map(|m| m.service())
            .map(|a| {
                convert::service_from_attrs(a)
                    .map(|(s, _)| s.key.list_name())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        if keys.len() == 2 {
            Ok(format!("dump: {keys:?}"))
        } else {
            Err(format!("dump returned {keys:?}"))
        }
    })();
    r.check("golden.get-service-dump", res);

    let res = (|| {
        c.request_bytes(&golden::DEL_DEST).map_err(e2s)?;
        expect_state(c, &mh, vec![])?;
        c.request_bytes(&golden::FLUSH).map_err(e2s)?;
        match c.services().map_err(e2s)?.len() {
            0 => Ok("DEL_DEST and FLUSH bytes accepted".into()),
            n => Err(format!("{n} services after FLUSH")),
        }
    })();
    r.check("golden.del-dest+flush", res);
}

fn sched_vip(i: usize) -> ServiceKey {
    ServiceKey::tcp(SocketAddr::new(
        IpAddr::V4([198, 18, 1, 10 + i as u8].into()),
        80,
    ))
}

/// For every scheduler: a TCP service with three DR real servers; edit,
/// drain, delete; ipvsadm must list it exactly as we format it.
fn schedulers(c: &mut Client, r: &mut Report) {
    let rs = |n: u8| Destination::dr(SocketAddr::new(IpAddr::V4([198, 18, 0, n].into()), 80));
    for (i, name) in SCHEDULERS.iter().enumerate() {
        let key = sched_vip(i);
        let sched = Scheduler::from(*name);
        let hashing = matches!(sched, Scheduler::Mh | Scheduler::Sh);
        let mut svc = Service::new(key, sched.clone());
        if hashing {
            svc = svc.flags(ServiceFlags::SCHED2); // mh-port / sh-port, no fallback yet
        }
        let res = (|| {
            c.add_service(&svc).map_err(e2s)?;
            for n in [11, 12, 13] {
                c.add_dest(&key, &rs(n)).map_err(e2s)?;
            }
            expect_state(c, &svc, vec![rs(11), rs(12), rs(13)])
        })();
        r.check(&format!("{name}.create"), res);

        let res = (|| {
            let e = c.service(&key).map_err(e2s)?;
            let vip = text::addr_port(&key_addr(&key), 80);
            same_text(
                "ipvsadm -L -n -t",
                &text::format_list(None, &[e], ListOptions::default()),
                &ipvsadm(&["-L", "-n", "-t", &vip])?,
            )
        })();
        r.check(&format!("{name}.ipvsadm-list"), res);

        let res = (|| {
            c.edit_dest(&key, &rs(12).weight(5)).map_err(e2s)?;
            expect_state(c, &svc, vec![rs(11), rs(12).weight(5), rs(13)])
        })();
        r.check(&format!("{name}.edit-weight"), res);

        let res = (|| {
            let out = c.drain_dest(&key, ip("198.18.0.13"), 80).map_err(e2s)?;
            let mut want = svc.clone();
            if hashing {
                want.flags.insert(ServiceFlags::SCHED1);
            }
            if out.enabled_fallback != hashing {
                return Err(format!(
                    "enabled_fallback = {} for {name}",
                    out.enabled_fallback
                ));
            }
            expect_state(c, &want, vec![rs(11), rs(12).weight(5), rs(13).weight(0)])?;
            Ok(if hashing {
                format!("weight 0; {name} had no fallback: now {}", want)
            } else {
                "weight 0".into()
            })
        })();
        r.check(&format!("{name}.drain"), res);

        let res = (|| {
            c.del_dest(&key, ip("198.18.0.11"), 80).map_err(e2s)?;
            let mut want = svc.clone();
            if hashing {
                want.flags.insert(ServiceFlags::SCHED1);
            }
            expect_state(c, &want, vec![rs(12).weight(5), rs(13).weight(0)])
        })();
        r.check(&format!("{name}.del-dest"), res);
    }
}

fn key_addr(k: &ServiceKey) -> IpAddr {
    match k {
        ServiceKey::Inet { addr, .. } => *addr,
        ServiceKey::Fwmark { .. } => unreachable!(),
    }
}

fn tun_dest(addr: &str, kind: TunnelType, port: u16, flags: u16) -> Destination {
    let mut d = Destination::tun(sa(addr));
    d.tunnel = Tunnel { kind, port, flags };
    d
}

/// IPv6, UDP, SCTP, fwmark, persistence, one-packet, pe, NAT/TUN real servers.
fn variety(c: &mut Client, r: &mut Report) {
    // IPv6 DR service: the full life cycle
    let k6 = ServiceKey::tcp(sa("[2001:db8::100]:80"));
    let s6 = Service::new(k6, "mh").flags(ServiceFlags::MH_PORT);
    let d6 = |n: &str| Destination::dr(sa(&format!("[2001:db8::{n}]:80")));
    let res = (|| {
        c.add_service(&s6).map_err(e2s)?;
        for n in ["11", "12", "13"] {
            c.add_dest(&k6, &d6(n)).map_err(e2s)?;
        }
        expect_state(c, &s6, vec![d6("11"), d6("12"), d6("13")])
    })();
    r.check("v6.create", res);
    let res = (|| {
        c.edit_dest(&k6, &d6("12").weight(3)).map_err(e2s)?;
        let out = c.drain_dest(&k6, ip("2001:db8::13"), 80).map_err(e2s)?;
        c.del_dest(&k6, ip("2001:db8::11"), 80).map_err(e2s)?;
        let mut want = s6.clone();
        want.flags.insert(ServiceFlags::MH_FALLBACK);
        if !out.enabled_fallback {
            return Err("mh drain did not enable mh-fallback".into());
        }
        expect_state(c, &want, vec![d6("12").weight(3), d6("13").weight(0)])
    })();
    r.check("v6.edit+drain+del", res);

    let mut services: Vec<(&str, Service, Vec<Destination>)> = vec![
        (
            "udp-ops-nat-tun",
            Service::new(ServiceKey::udp(sa("198.18.0.101:53")), "wrr")
                .flags(ServiceFlags::ONE_PACKET),
            vec![
                Destination::nat(sa("198.18.0.11:5353"))
                    .weight(65535)
                    .thresholds(100, 10),
                tun_dest("198.18.0.12:53", TunnelType::Ipip, 0, 0),
                tun_dest("198.18.0.14:53", TunnelType::Gue, 6080, Tunnel::CSUM),
                tun_dest("198.18.0.15:53", TunnelType::Gue, 6081, Tunnel::REMCSUM),
                tun_dest("198.18.0.16:53", TunnelType::Gre, 0, 0),
                tun_dest("[2001:db8::19]:53", TunnelType::Ipip, 0, 0),
            ],
        ),
        (
            "fwmark4",
            Service::new(ServiceKey::fwmark(42, Family::Inet), "wlc"),
            vec![
                Destination::dr(sa("198.18.0.11:0")),
                Destination::dr(sa("198.18.0.12:0")).weight(2),
            ],
        ),
        (
            "fwmark6-persistent",
            Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
                .persistent(360)
                .netmask(Netmask::V6(64)),
            vec![Destination::dr(sa("[2001:db8::21]:0"))],
        ),
        (
            "sctp-persistent-mask",
            Service::new(ServiceKey::sctp(sa("198.18.0.102:5000")), "sed")
                .persistent(60)
                .netmask(Netmask::V4("255.255.255.0".parse().unwrap())),
            vec![Destination::dr(sa("198.18.0.11:5000"))],
        ),
        (
            "udp-pe-sip",
            Service::new(ServiceKey::udp(sa("198.18.0.104:5060")), "rr")
                .persistent(60)
                .pe("sip"),
            vec![Destination::dr(sa("198.18.0.11:5060"))],
        ),
        (
            "v6-sh-flags-persistent",
            Service::new(ServiceKey::tcp(sa("[2001:db8::101]:443")), "sh")
                .flags(ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT)
                .persistent(100)
                .netmask(Netmask::V6(48)),
            vec![Destination::dr(sa("[2001:db8::11]:443")).weight(7)],
        ),
    ];
    for (name, s, dests) in services.drain(..) {
        let res = (|| {
            c.add_service(&s).map_err(e2s)?;
            for d in &dests {
                c.add_dest(&s.key, d).map_err(e2s)?;
            }
            expect_state(c, &s, dests.clone())
        })();
        r.check(&format!("svc.{name}"), res);
    }
    // edit a service in place (SET_SERVICE): scheduler and persistence change
    let res = (|| {
        let k = ServiceKey::udp(sa("198.18.0.104:5060"));
        let s = Service::new(k, "wlc").persistent(120).pe("sip");
        c.edit_service(&s).map_err(e2s)?;
        expect_state(c, &s, vec![Destination::dr(sa("198.18.0.11:5060"))])
    })();
    r.check("svc.edit-service", res);
}

/// save → flush → restore gives the same table; also through `ipvsadm -R`.
fn save_restore(c: &mut Client, r: &mut Report) {
    let before = match c.services() {
        Ok(b) => b,
        Err(e) => return r.check("restore.read", Err(e2s(e))),
    };
    let ipvsadm_before = ipvsadm(&["-S", "-n"]).unwrap_or_default();
    let text = text::save(&before, SaveDialect::Lossless);
    let res = (|| {
        let rules = text::parse_rules(&text).map_err(|e| e.to_string())?;
        if rules != text::rules_of(&before) {
            return Err("parse(save(state)) != rules_of(state)".into());
        }
        c.flush().map_err(e2s)?;
        if !c.services().map_err(e2s)?.is_empty() {
            return Err("not empty after flush".into());
        }
        c.restore(&text).map_err(e2s)?;
        let after = c.services().map_err(e2s)?;
        if normalized(&after) != normalized(&before) {
            return Err(format!("state differs after restore\nsaved:\n{text}"));
        }
        same_text(
            "ipvsadm -S -n before/after",
            &ipvsadm(&["-S", "-n"])?,
            &ipvsadm_before,
        )?;
        Ok(format!(
            "{} rules, {} services restored",
            rules.len(),
            after.len()
        ))
    })();
    r.check("restore.lbctl", res);

    let res = (|| {
        c.flush().map_err(e2s)?;
        ipvsadm_stdin(&["-R"], Some(&text))?;
        let after = c.services().map_err(e2s)?;
        if normalized(&after) != normalized(&before) {
            return Err("state differs after ipvsadm -R of lbctl's save".into());
        }
        Ok("ipvsadm -R reads lbctl's lossless save (thresholds included)".into())
    })();
    r.check("restore.via-ipvsadm-R", res);

    let res = (|| {
        c.flush().map_err(e2s)?;
        ipvsadm_stdin(&["-R"], Some(&ipvsadm_before))?;
        let theirs = c.services().map_err(e2s)?;
        // ipvsadm's own save drops real-server thresholds: that is the only loss
        let strip = |v: &[ServiceEntry]| {
            normalized(v)
                .into_iter()
                .map(|(s, d)| {
                    (
                        s,
                        d.into_iter()
                            .map(|x| x.thresholds(0, 0))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if strip(&theirs) != strip(&before) {
            return Err("ipvsadm -S | ipvsadm -R changed more than thresholds".into());
        }
        c.flush().map_err(e2s)?;
        c.restore(&text).map_err(e2s)?;
        Ok("ipvsadm -S -n | ipvsadm -R loses only thresholds (lbctl's Lossless keeps them)".into())
    })();
    r.check("restore.ipvsadm-roundtrip", res);
}

fn delete_services(c: &mut Client, r: &mut Report) {
    for (i, name) in SCHEDULERS.iter().enumerate() {
        let key = sched_vip(i);
        let res = (|| {
            c.del_service(&key).map_err(e2s)?;
            match find(&c.services().map_err(e2s)?, &key) {
                None => Ok(String::new()),
                Some(_) => Err("still listed".into()),
            }
        })();
        r.check(&format!("{name}.del-service"), res);
    }
}

fn errors(c: &mut Client, r: &mut Report) {
    let key = ServiceKey::tcp(sa("198.18.3.1:80"));
    let svc = Service::new(key, "rr");
    let res = c.add_service(&svc).map_err(e2s).and_then(|_| {
        c.add_dest(&key, &Destination::dr(sa("198.18.0.11:80")))
            .map_err(e2s)
            .map(|_| String::new())
    });
    r.check("err.setup", res);

    let res = expect_kernel_err(c.add_service(&svc), libc::EEXIST, "service already exists");
    r.check("err.duplicate-service", res);
    let res = expect_kernel_err(
        c.add_dest(&key, &Destination::dr(sa("198.18.0.11:80"))),
        libc::EEXIST,
        "destination already exists",
    );
    r.check("err.duplicate-dest", res);

    let res = refused(
        c,
        |c| c.add_dest(&key, &Destination::dr(sa("198.18.0.12:8080"))),
        |e| {
            matches!(
                e,
                ValidationError::PortMismatch {
                    service_port: 80,
                    dest_port: 8080,
                    ..
                }
            )
        },
    );
    r.check("err.dr-port-mismatch", res);
    let res = (|| {
        // for contrast: ipvsadm silently rewrites the port
        ipvsadm(&["-a", "-t", "198.18.3.1:80", "-r", "198.18.0.12:8080", "-g"])?;
        let e = c.service(&key).map_err(e2s)?;
        let d = dest_set(&e.dests);
        if d.iter()
            .any(|d| d.addr == ip("198.18.0.12") && d.port == 80)
        {
            c.del_dest(&key, ip("198.18.0.12"), 80).map_err(e2s)?;
            Ok("ipvsadm -a ... -r 198.18.0.12:8080 -g created 198.18.0.12:80 (lbctl refuses instead)".into())
        } else {
            Err(format!("unexpected: {d:?}"))
        }
    })();
    r.check("err.dr-port-mismatch-ipvsadm-rewrites", res);

    let res = refused(
        c,
        |c| c.add_service(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "bogus")),
        |e| matches!(e, ValidationError::UnknownScheduler(_)),
    );
    r.check("err.unknown-scheduler", res);
    let res = expect_kernel_err(
        c.add_service_unvalidated(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "bogus")),
        libc::ENOENT,
        "scheduler or persistence engine not found",
    );
    r.check("err.unknown-scheduler-kernel", res);
    let res = expect_kernel_err(
        c.add_service(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "twos")),
        libc::ENOENT,
        "modprobe ip_vs_twos",
    );
    r.check("err.scheduler-module-missing", res);

    let res = expect_kernel_err(
        c.del_service(&ServiceKey::tcp(sa("198.18.3.9:80"))),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.del-missing-service", res);
    let res = expect_kernel_err(
        c.edit_service(&Service::new(ServiceKey::tcp(sa("198.18.3.9:80")), "rr")),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.edit-missing-service", res);
    let res = expect_kernel_err(
        c.service(&ServiceKey::tcp(sa("198.18.3.9:80"))),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.get-missing-service", res);
    let res = expect_kernel_err(
        c.add_dest(
            &ServiceKey::tcp(sa("198.18.3.9:80")),
            &Destination::dr(sa("198.18.0.11:80")),
        ),
        libc::ESRCH,
        "service not defined",
    );
    r.check("err.dest-of-missing-service", res);
    let res = expect_kernel_err(
        c.edit_dest(&key, &Destination::dr(sa("198.18.0.99:80")).weight(2)),
        libc::ENOENT,
        "no such destination",
    );
    r.check("err.edit-missing-dest", res);
    let res = expect_kernel_err(
        c.del_dest(&key, ip("198.18.0.99"), 80),
        libc::ENOENT,
        "no such destination",
    );
    r.check("err.del-missing-dest", res);

    let bad = Destination::dr(sa("198.18.0.13:80")).thresholds(5, 10);
    let res = refused(
        c,
        |c| c.add_dest(&key, &bad),
        |e| matches!(e, ValidationError::ThresholdOrder { .. }),
    );
    r.check("err.thresholds", res);
    let res = expect_kernel_err(
        c.request_raw(convert::new_dest(&key, &bad), false),
        libc::ERANGE,
        "out of range",
    );
    r.check("err.thresholds-kernel", res);
    let heavy = Destination::dr(sa("198.18.0.13:80")).weight(1 << 31);
    let res = refused(
        c,
        |c| c.add_dest(&key, &heavy),
        |e| matches!(e, ValidationError::WeightOutOfRange(_)),
    );
    r.check("err.weight", res);
    let res = expect_kernel_err(
        c.request_raw(convert::new_dest(&key, &heavy), false),
        libc::ERANGE,
        "out of range",
    );
    r.check("err.weight-kernel", res);

    let v6 = Destination::dr(sa("[2001:db8::13]:80"));
    let res = refused(
        c,
        |c| c.add_dest(&key, &v6),
        |e| matches!(e, ValidationError::FamilyMismatch { .. }),
    );
    r.check("err.family-mismatch", res);
    let res = match c.request_raw(convert::new_dest(&key, &v6), false) {
        Err(e @ Error::Kernel { .. }) => Ok(format!("kernel: {e}")),
        other => Err(format!(
            "kernel accepted a DR real server of another family: {other:?}"
        )),
    };
    r.check("err.family-mismatch-kernel", res);

    let res = refused(
        c,
        |c| {
            c.add_service(
                &Service::new(ServiceKey::tcp(sa("198.18.3.3:80")), "rr")
                    .flags(ServiceFlags::ONE_PACKET),
            )
        },
        |e| matches!(e, ValidationError::OnePacketNotUdp),
    );
    r.check("err.one-packet-tcp", res);

    // restore is all-or-nothing at validation time
    let n = c.requests_sent();
    let res =
        match c.restore("-A -t 198.18.3.4:80 -s rr\n-a -t 198.18.3.4:80 -r 198.18.0.11:81 -g\n") {
            Err(Error::Invalid {
                source: ValidationError::PortMismatch { .. },
                ..
            }) if c.requests_sent() == n => {
                match find(
                    &c.services().unwrap_or_default(),
                    &ServiceKey::tcp(sa("198.18.3.4:80")),
                ) {
                    None => Ok("nothing applied".into()),
                    Some(_) => Err("first rule was applied".into()),
                }
            }
            other => Err(format!("{other:?}")),
        };
    r.check("err.restore-validates-first", res);

    let res = c.del_service(&key).map_err(e2s).map(|_| String::new());
    r.check("err.cleanup", res);
}

/// What ipvsadm creates, lbctl lists identically (model and text).
fn created_by_ipvsadm(c: &mut Client, r: &mut Report) {
    let cmds: [&[&str]; 10] = [
        &["-C"],
        &[
            "-A",
            "-t",
            "198.18.2.1:80",
            "-s",
            "wrr",
            "-p",
            "120",
            "-M",
            "255.255.255.0",
        ],
        &[
            "-a",
            "-t",
            "198.18.2.1:80",
            "-r",
            "198.18.0.11:80",
            "-g",
            "-w",
            "3",
        ],
        &[
            "-a",
            "-t",
            "198.18.2.1:80",
            "-r",
            "198.18.0.12",
            "-g",
            "-w",
            "0",
        ],
        &[
            "-A",
            "-t",
            "[2001:db8::200]:443",
            "-s",
            "mh",
            "-b",
            "mh-fallback,mh-port",
        ],
        &[
            "-a",
            "-t",
            "[2001:db8::200]:443",
            "-r",
            "[2001:db8::21]:443",
            "-g",
        ],
        &["-A", "-f", "99", "-6", "-s", "lc", "-p", "-M", "56"],
        &["-A", "-u", "198.18.2.2:53", "-s", "rr", "-o"],
        &[
            "-a",
            "-u",
            "198.18.2.2:53",
            "-r",
            "198.18.0.13:5353",
            "-m",
            "-w",
            "10",
            "-x",
            "50",
            "-y",
            "5",
        ],
        &[
            "-a",
            "-u",
            "198.18.2.2:53",
            "-r",
            "198.18.0.14:53",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            "--tun-remcsum",
        ],
    ];
    let res = cmds
        .iter()
        .try_for_each(|a| ipvsadm(a).map(|_| ()))
        .map(|_| format!("{} ipvsadm commands", cmds.len()));
    r.check("ipvsadm-created.setup", res);

    let res = (|| {
        let got = c.services().map_err(e2s)?;
        let remcsum = got
            .iter()
            .flat_map(|e| e.dests.iter())
            .find(|d| d.dest.fwd == Forward::Tun)
            .map(|d| d.dest.tunnel.flags)
            .unwrap_or(0xffff);
        let want = vec![
            ServiceEntry {
                service: Service::new(ServiceKey::tcp(sa("198.18.2.1:80")), "wrr")
                    .persistent(120)
                    .netmask(Netmask::V4("255.255.255.0".parse().unwrap())),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::tcp(sa("[2001:db8::200]:443")), "mh")
                    .flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::fwmark(99, Family::Inet6), "lc")
                    .persistent(360)
                    .netmask(Netmask::V6(56)),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::udp(sa("198.18.2.2:53")), "rr")
                    .flags(ServiceFlags::ONE_PACKET),
                stats: Default::default(),
                dests: vec![],
            },
        ];
        let want_dests: Vec<(ServiceKey, Vec<Destination>)> = vec![
            (
                ServiceKey::tcp(sa("198.18.2.1:80")),
                vec![
                    Destination::dr(sa("198.18.0.11:80")).weight(3),
                    Destination::dr(sa("198.18.0.12:80")).weight(0),
                ],
            ),
            (
                ServiceKey::tcp(sa("[2001:db8::200]:443")),
                vec![Destination::dr(sa("[2001:db8::21]:443"))],
            ),
            (ServiceKey::fwmark(99, Family::Inet6), vec![]),
            (
                ServiceKey::udp(sa("198.18.2.2:53")),
                vec![
                    Destination::nat(sa("198.18.0.13:5353"))
                        .weight(10)
                        .thresholds(50, 5),
                    tun_dest("198.18.0.14:53", TunnelType::Gue, 6080, remcsum),
                ],
            ),
        ];
        if remcsum & Tunnel::REMCSUM == 0 {
            return Err(format!("--tun-remcsum came back as flags {remcsum:#x}"));
        }
        for w in &want {
            let g = find(&got, &w.service.key)
                .ok_or_else(|| format!("{} missing", w.service.key.list_name()))?;
            if g.service != w.service {
                return Err(format!(
                    "service differs\nwant {:?}\ngot  {:?}",
                    w.service, g.service
                ));
            }
        }
        for (k, d) in want_dests {
            let g = find(&got, &k).ok_or("missing")?;
            if dest_set(&g.dests) != sorted_dests(d.clone()) {
                return Err(format!(
                    "real servers of {} differ\nwant {d:?}\ngot  {:?}",
                    k.list_name(),
                    dest_set(&g.dests)
                ));
            }
        }
        if got.len() != want.len() {
            return Err(format!(
                "{} services listed, want {}",
                got.len(),
                want.len()
            ));
        }
        Ok(format!(
            "4 services as modelled; kernel tun flags for --tun-remcsum = {remcsum:#x}"
        ))
    })();
    r.check("ipvsadm-created.model", res);

    for (name, kind, args) in [
        ("ipvsadm-created.list", ListKind::Plain, &["-L", "-n"][..]),
        (
            "ipvsadm-created.stats",
            ListKind::Stats,
            &["-L", "-n", "--stats"][..],
        ),
        (
            "ipvsadm-created.thresholds",
            ListKind::Thresholds,
            &["-L", "-n", "--thresholds"][..],
        ),
        (
            "ipvsadm-created.tun-info",
            ListKind::TunInfo,
            &["-L", "-n", "--tun-info"][..],
        ),
    ] {
        let res = list_cmp(c, kind, args);
        r.check(name, res);
    }
    let res = save_cmp(c);
    r.check("ipvsadm-created.save", res);

    let res = (|| {
        let rules = text::parse_rules(&ipvsadm(&["-S", "-n"])?).map_err(|e| e.to_string())?;
        let mine: Vec<Rule> = text::rules_of(&c.services().map_err(e2s)?)
            .into_iter()
            .map(|r| match r {
                Rule::AddDest(k, d) => Rule::AddDest(k, d.thresholds(0, 0)),
                r => r,
            })
            .collect();
        if rules == mine {
            Ok(format!(
                "{} rules parsed from ipvsadm -S -n equal the listed state",
                rules.len()
            ))
        } else {
            Err(format!("parsed {rules:?}\nlisted {mine:?}"))
        }
    })();
    r.check("ipvsadm-created.parse-save", res);
    let res = c.flush().map_err(e2s).map(|_| String::new());
    r.check("ipvsadm-created.flush", res);
}

fn config(c: &mut Client, r: &mut Report) {
    let res = (|| {
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        c.set_timeouts(&t).map_err(e2s)?;
        let got = c.timeouts().map_err(e2s)?;
        if got != t {
            return Err(format!("set {t:?}, read {got:?}"));
        }
        same_text(
            "ipvsadm -L -n --timeout",
            &text::format_timeouts(&got),
            &ipvsadm(&["-L", "-n", "--timeout"])?,
        )
    })();
    r.check("config.timeouts", res);
    let res = (|| {
        let k = ServiceKey::tcp(sa("198.18.4.1:80"));
        c.add_service(&Service::new(k, "rr")).map_err(e2s)?;
        c.zero(Some(&k)).map_err(e2s)?;
        c.zero(None).map_err(e2s)?;
        c.del_service(&k).map_err(e2s)?;
        expect_kernel_err(c.zero(Some(&k)), libc::ESRCH, "no such service")
    })();
    r.check("config.zero", res);
}

/// Child mode: drop root, then every IPVS command must fail with a privilege
/// error (GENL_ADMIN_PERM), while the nlctrl lookup itself works.
fn unprivileged_probe() -> ! {
    // SAFETY: plain syscalls, single-threaded at this point
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
    };
    if !ok {
        println!(
            "PROBE cannot drop privileges: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    match Client::open().and_then(|mut c| c.info()) {
        Err(e @ Error::Permission { .. }) => {
            println!("PROBE permission-error {}", one_line(&e.to_string()))
        }
        other => println!("PROBE unexpected {other:?}"),
    }
    std::process::exit(0);
}

fn permission(r: &mut Report) {
    let res = (|| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .arg("--unprivileged-probe")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match text.strip_prefix("PROBE permission-error ") {
            Some(msg) if msg.contains("root") => Ok(format!("as uid 65534: {}", msg.trim())),
            _ => Err(text),
        }
    })();
    r.check("err.permission", res);
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Local UDP clients through a DR service: counters become non-zero and the
/// --stats listings (also --exact) still match ipvsadm; ZERO resets them.
fn traffic(c: &mut Client, r: &mut Report) {
    let key = ServiceKey::udp(sa("198.18.5.1:9"));
    let res = (|| {
        run("ip", &["addr", "add", "198.18.5.1/32", "dev", "lo"])?;
        c.add_service(&Service::new(key, "rr")).map_err(e2s)?;
        c.add_dest(&key, &Destination::dr(sa("198.18.5.2:9")))
            .map_err(e2s)?;
        c.add_dest(&key, &Destination::dr(sa("198.18.5.3:9")))
            .map_err(e2s)?;
        let mut send_errors = 0;
        for _ in 0..20 {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            if s.send_to(&[0u8; 100], "198.18.5.1:9").is_err() {
                send_errors += 1;
            }
        }
        let t = Instant::now();
        loop {
            let e = c.service(&key).map_err(e2s)?;
            let per_dest: u64 = e.dests.iter().map(|d| d.stats.conns).sum();
            if e.stats.conns == 20 && per_dest == 20 && e.stats.inpkts >= 20 {
                // (no OutPkts == 0 assertion here: these clients are local, so the
                // packets also pass IPVS's LOCAL_OUT hook; the DSR signal applies
                // to forwarded traffic only)
                return Ok(format!(
                    "after {:.1}s: conns {} inpkts {} inbytes {} outpkts {} ({} sends refused locally)",
                    t.elapsed().as_secs_f64(),
                    e.stats.conns,
                    e.stats.inpkts,
                    e.stats.inbytes,
                    e.stats.outpkts,
                    send_errors
                ));
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("counters never reached 20 conns: {:?}", e.stats));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })();
    r.check("traffic.counted", res);
    let res = list_cmp(c, ListKind::Stats, &["-L", "-n", "--stats"]);
    r.check("traffic.stats", res);
    let res = (|| {
        let info = c.info().map_err(e2s)?;
        let entries = c.services().map_err(e2s)?;
        let mine = text::format_list(
            Some(&info),
            &entries,
            ListOptions {
                kind: ListKind::Stats,
                exact: true,
            },
        );
        same_text(
            "ipvsadm -L -n --stats --exact",
            &mine,
            &ipvsadm(&["-L", "-n", "--stats", "--exact"])?,
        )
    })();
    r.check("traffic.stats-exact", res);
    let res = (|| {
        c.zero(Some(&key)).map_err(e2s)?;
        let e = c.service(&key).map_err(e2s)?;
        if e.stats.conns != 0 {
            return Err(format!("conns {} after ZERO", e.stats.conns));
        }
        c.del_service(&key).map_err(e2s)?;
        run("ip", &["addr", "del", "198.18.5.1/32", "dev", "lo"])?;
        Ok("ZERO reset the counters".into())
    })();
    r.check("traffic.zero", res);
}
