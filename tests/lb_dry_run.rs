//! `lbctl --dry-run lb run` runs the real run's validation and shows what the chosen engine
//! would do (issue 12, finding 12): a file the real run refuses is refused in dry-run with the
//! same exit code and message; `engine = "ipvs"` shows ipvsadm lines, never the nft ruleset; each
//! VIP's `ip addr add` is printed once, however many services share it. Nothing is changed.

#[macro_use]
mod common;

use common::*;

/// A namespace with `eth0` (a veth with an Ethernet address) for the balancer.
fn lb_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.up("eth0");
    ns.add_addr("eth0", "198.18.0.2/24");
    ns
}

const BACKENDS: &str = "[[service.backend]]\nrip = \"198.18.0.11\"\n\
                        [[service.backend]]\nrip = \"198.18.0.12\"\n";

#[test]
fn dry_run_refuses_what_the_real_run_refuses() {
    require_root!();
    let ns = lb_ns("dryref");
    let run = Lbctl::new(&ns);
    let dir = TempDir::new("dryref");
    let cases = [
        (
            "persistence",
            format!(
                "[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n[[service]]\n\
                 vip = \"198.18.0.100:80\"\npersistent = 300\n{BACKENDS}"
            ),
            "persistence needs engine",
        ),
        (
            "fwmark",
            format!(
                "[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n[[service]]\nfwmark = 7\n\
                 {BACKENDS}"
            ),
            "fwmark services need engine",
        ),
        (
            "sctp",
            format!(
                "[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n[[service]]\n\
                 vip = \"198.18.0.100:80\"\nprotocol = \"sctp\"\n{BACKENDS}"
            ),
            "SCTP needs engine",
        ),
    ];
    let before = snapshot(&ns);
    for (name, text, want) in cases {
        let p = dir.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        let p = p.to_str().unwrap();
        let real = run.run(&["lb", "run", "-c", p]);
        let dry = run.run(&["--dry-run", "lb", "run", "-c", p]);
        assert_eq!(real.code, 2, "{name}: real run: {real}");
        assert_eq!(dry.code, real.code, "{name}: dry run: {dry}");
        assert!(real.stderr.contains(want), "{name}: real run: {real}");
        assert_eq!(dry.stderr, real.stderr, "{name}: the same message");
        assert!(
            !dry.stdout.contains("add table"),
            "{name}: a refused file shows no plan: {dry}"
        );
    }
    assert_same(&before, &snapshot(&ns), "refused lb run files");
}

#[test]
fn dry_run_with_the_ipvs_engine_shows_ipvsadm_lines_not_the_nft_ruleset() {
    require_root!();
    let ns = lb_ns("dryipvs");
    let run = Lbctl::new(&ns);
    let dir = TempDir::new("dryipvs");
    let p = dir.path().join("web.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"web\"\n[balancer]\nengine = \"ipvs\"\ninterface = \"eth0\"\n[[service]]\n\
             vip = \"198.18.0.100:80\"\nscheduler = \"mh\"\n{BACKENDS}"
        ),
    )
    .unwrap();
    let before = snapshot(&ns);
    let out = run.run(&["--dry-run", "lb", "run", "-c", p.to_str().unwrap()]);
    // Without IPVS in this kernel the real run refuses (exit 2); so does the dry run, after
    // showing the plan against an empty IPVS table.
    assert!(
        out.code == 0 || (out.code == 2 && out.stderr.contains("no IPVS")),
        "{out}"
    );
    for want in [
        "engine ipvs",
        "ipvsadm -A -t 198.18.0.100:80 -s mh",
        "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
        "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1",
    ] {
        assert!(out.stdout.contains(want), "missing `{want}`:\n{out}");
    }
    for unwanted in ["nft engine", "add table", "netdev"] {
        assert!(!out.stdout.contains(unwanted), "`{unwanted}`:\n{out}");
    }
    assert_same(&before, &snapshot(&ns), "dry run, engine ipvs");
}

#[test]
fn dry_run_prints_each_vip_once() {
    require_root!();
    let ns = lb_ns("dryvip");
    let run = Lbctl::new(&ns);
    let dir = TempDir::new("dryvip");
    let p = dir.path().join("web.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n\
             maglev_size = 1021\n[[service]]\nvip = \"198.18.0.100:80\"\n{BACKENDS}\
             [[service]]\nvip = \"198.18.0.100:443\"\n{BACKENDS}\
             [[service]]\nvip = \"198.18.0.100:53\"\nprotocol = \"udp\"\n{BACKENDS}"
        ),
    )
    .unwrap();
    let before = snapshot(&ns);
    let out = run.ok(&["--dry-run", "lb", "run", "-c", p.to_str().unwrap()]);
    let adds: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("addr add"))
        .collect();
    assert_eq!(adds.len(), 1, "one VIP, one `ip addr add`:\n{out}");
    assert!(adds[0].contains("198.18.0.100/32 dev eth0"), "{out}");
    assert!(out.stdout.contains("engine nft"), "{out}");
    assert!(
        out.stdout.contains("add table netdev lbctl_lb_web"),
        "{out}"
    );
    assert!(!out.stdout.contains("ipvsadm"), "{out}");
    assert_same(&before, &snapshot(&ns), "dry run, engine nft");
}
