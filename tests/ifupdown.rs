//! The README's ifupdown stanza, verbatim, with the real `ifup`/`ifdown` (Debian package
//! ifupdown) and the hook as installed (one script linked into /etc/network/if-*.d): ARP
//! suppression and the VIPs after `ifup`, gone after `ifdown`, the namespace as before (issue 12,
//! finding 14). Each run is `ip netns exec NS unshare -m sh -c …` with /etc and /run overlaid by
//! temporary directories, so /etc/network, /etc/default/lbctl and /run/network are private and
//! the host's are never touched. ifupdown gives hooks a fresh environment, so the built binary
//! and the run dir reach the hook through /etc/default/lbctl (the hook's documented settings
//! file), not through `LBCTL=` on the command line.
//!
//! `ifup` is looked up on PATH and in the sbin directories; `LBCTL_TEST_IFUP` may name one
//! extracted from the package (`dpkg-deb -x ifupdown_*.deb DIR`) on a host without it.

#[macro_use]
mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use common::*;

const HOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/ifupdown/lbctl");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The first fenced block after the `### ifupdown` heading of README.md.
fn readme_stanza() -> String {
    let text = std::fs::read_to_string(README).expect("read README.md");
    let section = &text[text
        .find("### ifupdown")
        .expect("README has an ifupdown section")..];
    let start = section
        .find("\n```")
        .expect("a fenced block in the section")
        + 1;
    let body = &section[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let end = body.find("\n```").expect("the block ends");
    format!("{}\n", &body[..end])
}

fn ifup() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LBCTL_TEST_IFUP") {
        return Some(PathBuf::from(p));
    }
    find_tool("ifup")
}

/// The private /etc/network, /etc/default/lbctl and overlay directories for one namespace.
struct Root {
    dir: TempDir,
}

impl Root {
    fn new(stanza: &str) -> Root {
        let dir = TempDir::new("ifupdown");
        let d = dir.path();
        for sub in ["etc-up", "etc-work", "run-up", "run-work", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let net = d.join("network");
        for hook_dir in ["if-pre-up.d", "if-up.d", "if-down.d", "if-post-down.d"] {
            std::fs::create_dir_all(net.join(hook_dir)).unwrap();
            // As the .deb and `make install` do: links to the one installed script.
            std::os::unix::fs::symlink(HOOK, net.join(hook_dir).join("lbctl")).unwrap();
        }
        std::fs::write(net.join("interfaces"), stanza).unwrap();
        std::fs::write(
            d.join("default-lbctl"),
            format!(
                "LBCTL={}\nLBCTL_RUN_DIR={}\n",
                LBCTL,
                d.join("run").display()
            ),
        )
        .unwrap();
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `ifup`/`ifdown ARGS` inside `ns`, in a private mount namespace.
    fn run(&self, ns: &Netns, ifup: &Path, verb: &str) -> Out {
        let d = self.path().display();
        let bin = ifup.with_file_name(verb);
        let bin = if bin.exists() {
            bin
        } else {
            ifup.to_path_buf()
        };
        let script = format!(
            "set -e\n\
             mount --make-rprivate /\n\
             mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-up,workdir={d}/etc-work /etc\n\
             mount -t overlay overlay -o lowerdir=/run,upperdir={d}/run-up,workdir={d}/run-work /run\n\
             mkdir -p /etc/network /etc/default /run/network\n\
             mount --bind {d}/network /etc/network\n\
             cp {d}/default-lbctl /etc/default/lbctl\n\
             exec {bin} -v eth0\n",
            bin = bin.display()
        );
        // `ifdown` is `ifup` under another name: argv[0] picks the verb.
        let argv0 = format!("exec -a {verb} {}", bin.display());
        let script = script.replace(&format!("exec {} ", bin.display()), &format!("{argv0} "));
        ns.exec(&["unshare", "-m", "bash", "-c", &script])
    }
}

#[test]
fn readme_ifupdown_stanza_works_verbatim_with_real_ifup_and_ifdown() {
    require_root!();
    let Some(ifup) = ifup() else {
        skip_or_panic(test_name!(), "needs `ifup` (Debian package ifupdown)");
        return;
    };
    let stanza = readme_stanza();
    assert!(stanza.contains("lbctl-vip"), "not the stanza:\n{stanza}");
    let ns = Netns::new("ifupdown");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.up("peer0");
    // Once up and down, so the kernel's own traces of an up link (link-local address, qdisc,
    // multicast routes), which stay after `ifdown`, are in the "before" state too.
    ns.up("eth0");
    ns.ip(&["link", "set", "eth0", "down"]);
    ns.settle();
    let before = snapshot(&ns);
    let root = Root::new(&stanza);

    let up = root.run(&ns, &ifup, "ifup");
    assert_eq!(
        up.code, 0,
        "ifup failed with the README stanza:\n{stanza}\n{up}"
    );
    assert!(
        ns.addrs("eth0").iter().any(|a| a == "198.18.0.11/24"),
        "eth0: {:?}\n{up}",
        ns.addrs("eth0")
    );
    let lo = ns.addrs("lo");
    for vip in ["198.18.0.100/32", "2001:db8::100/128"] {
        assert!(lo.iter().any(|a| a == vip), "{vip} not on lo: {lo:?}\n{up}");
    }
    let arp = ns.nft_text(&["list", "table", "arp", "lbctl"]);
    assert_eq!(arp.code, 0, "no ARP suppression after ifup:\n{arp}\n{up}");
    assert!(arp.stdout.contains("198.18.0.100"), "{arp}");
    assert!(arp.stdout.contains("198.18.0.11"), "the real IP: {arp}");

    let down = root.run(&ns, &ifup, "ifdown");
    assert_eq!(down.code, 0, "ifdown:\n{down}");
    assert!(
        !ns.nft_table_exists("arp", "lbctl"),
        "ARP suppression left after ifdown:\n{down}"
    );
    assert_same(
        &before,
        &snapshot(&ns),
        "ifup + ifdown of the README stanza",
    );
}

/// Run the hook directly (as ifupdown would: a fresh environment) with a fake lbctl that logs
/// its arguments; returns the log.
fn hook_calls(env: &[(&str, &str)], fake_via_defaults: bool) -> String {
    let dir = TempDir::new("hookargs");
    let log = dir.path().join("log");
    let fake = dir.path().join("fake-lbctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let defaults = dir.path().join("defaults");
    let fake_s = fake.to_str().unwrap().to_string();
    let defaults_s = defaults.to_str().unwrap().to_string();
    let mut full: Vec<(&str, &str)> = vec![("LBCTL_DEFAULTS", &defaults_s)];
    if fake_via_defaults {
        std::fs::write(&defaults, format!("LBCTL={fake_s}\n")).unwrap();
    } else {
        full.push(("LBCTL", &fake_s));
    }
    full.extend_from_slice(env);
    let mut argv = vec!["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"];
    let kv: Vec<String> = full.iter().map(|(k, v)| format!("{k}={v}")).collect();
    argv.extend(kv.iter().map(String::as_str));
    argv.push(HOOK);
    let out = run_cmd(&argv, &[], None);
    assert_eq!(out.code, 0, "{out}");
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn hook_without_real_ip_passes_no_empty_real_ip_and_reads_lbctl_from_defaults() {
    let base = [
        ("IFACE", "eth0"),
        ("MODE", "start"),
        ("PHASE", "pre-up"),
        ("IF_LBCTL_VIP", "198.18.0.100"),
    ];
    // The binary named in the defaults file is the one run (ifupdown strips LBCTL=).
    let calls = hook_calls(&base, true);
    assert_eq!(calls.trim(), "-q arp suppress 198.18.0.100", "{calls:?}");
    // No lbctl-real-ip: no `--real-ip ''`.
    assert!(!calls.contains("--real-ip"), "{calls:?}");
    // With one, it is passed; and LBCTL in the environment (a direct call) works too.
    let mut with = base.to_vec();
    with.push(("IF_LBCTL_REAL_IP", "198.18.0.11"));
    let calls = hook_calls(&with, false);
    assert_eq!(
        calls.trim(),
        // --force: in pre-up the real IP is not configured yet (lbctl would refuse it).
        "-q arp suppress 198.18.0.100 --real-ip 198.18.0.11 --force",
        "{calls:?}"
    );
}
