//! Profiles on a real kernel (issue 3): apply → plan empty → drift → status exit 1 → apply repairs
//! → down → the namespace is exactly as before; failure at every step rolls back; the ifupdown
//! hook with the environment ifupdown gives it; concurrent applies serialize on the lock.

#[macro_use]
mod common;

use std::path::PathBuf;

use common::{assert_same, run_cmd, s, snapshot, veth_local, write, Lbctl, Netns, Out, TempDir};

/// A backend namespace: eth0 198.18.0.11/24 (balancer side), eth1 192.0.2.21/24 (NAT side).
fn backend(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    veth_local(&ns, "eth0", "peer0");
    veth_local(&ns, "eth1", "peer1");
    ns.add_addr("eth0", "198.18.0.11/24");
    ns.add_addr("eth1", "192.0.2.21/24");
    for d in ["eth0", "peer0", "eth1", "peer1"] {
        ns.up(d);
    }
    ns.ip(&["route", "add", "default", "via", "192.0.2.1", "dev", "eth1"]);
    ns
}

const PROFILE: &str = r#"
name = "web"
[[vip]]
address = "198.18.0.100"
ports = [80]
[[vip]]
address = "198.18.0.101"
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
interfaces = ["eth0"]
[sysctl]
"net.ipv4.ip_nonlocal_bind" = 1
"#;

/// Run lbctl with extra environment (the runner's own run dir included).
fn run_env(lb: &Lbctl, args: &[&str], env: &[(&str, &str)]) -> Out {
    let dir = lb.run_dir().to_string_lossy().into_owned();
    let mut full = vec![("LBCTL_RUN_DIR", dir.as_str())];
    full.extend_from_slice(env);
    run_cmd(&lb.argv(args), &full, None)
}

fn plan_lines(lb: &Lbctl, profile: &str) -> Vec<String> {
    let out = lb.run(&["--json", "plan", "-f", profile]);
    common::changes(&out.json())
}

#[test]
fn apply_plan_drift_repair_down_roundtrip() {
    require_root!();
    let ns = backend("prof");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("prof");
    let p = write(&dir, "web.toml", PROFILE);
    // Foreign objects that must survive everything.
    ns.add_addr("lo", "198.18.0.200/32");
    ns.nft("table inet userfw {\n chain input {\n type filter hook input priority 0; policy accept;\n }\n}");
    ns.ip(&[
        "rule",
        "add",
        "from",
        "198.18.0.200",
        "lookup",
        "300",
        "priority",
        "300",
    ]);
    let before = snapshot(&ns);

    // plan: exit 1 with changes, and nothing changed yet.
    let out = lb.run(&["plan", "-f", s(&p)]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("ip addr add 198.18.0.100/32 dev lo"),
        "{}",
        out.stdout
    );
    assert_same(&before, &snapshot(&ns), "plan must not change anything");

    lb.ok(&["apply", "-f", s(&p)]);
    // The result, checked with independent tools.
    assert!(ns.addrs("lo").iter().any(|a| a == "198.18.0.100/32"));
    assert!(ns.addrs("lo").iter().any(|a| a == "2001:db8::100/128"));
    assert!(ns.nft_table_exists("arp", "lbctl"));
    assert!(ns
        .ip(&["route", "get", "198.18.0.10", "from", "198.18.0.100"])
        .contains("table 100"));
    assert_eq!(ns.conf("eth0", "rp_filter"), 2);
    assert_eq!(ns.sysctl("net/ipv4/ip_nonlocal_bind"), "1");

    // Re-plan and re-apply: nothing to do.
    let out = lb.run(&["plan", "-f", s(&p)]);
    out.expect_code(0);
    let v = lb.json(&["apply", "-f", s(&p)]);
    assert!(common::changes(&v).is_empty(), "{v:#}");
    lb.ok(&["status", "-f", s(&p)]);

    // Drift behind lbctl's back, one of each kind.
    ns.ip(&["addr", "del", "198.18.0.101/32", "dev", "lo"]);
    ns.ip(&["route", "del", "default", "table", "100"]);
    ns.nft("delete table arp lbctl");
    ns.set_conf(&[("eth0", "rp_filter", 1)]);
    let out = lb.run(&["--json", "status"]);
    out.expect_code(1);
    let drift = out.json()["drift"].clone();
    let drift: Vec<String> = serde_json::from_value(drift).unwrap();
    for want in [
        "ip addr add 198.18.0.101/32 dev lo",
        "ip route add default via 198.18.0.1 dev eth0 table 100",
        "nft add table arp lbctl",
        "sysctl -w net.ipv4.conf.eth0.rp_filter=2",
    ] {
        assert!(
            drift.iter().any(|d| d.starts_with(want)),
            "{want} not in {drift:#?}"
        );
    }
    lb.ok(&["apply", "-f", s(&p)]);
    lb.ok(&["status"]);

    // Removing a VIP from the profile removes it from the host (and only it).
    let p2 = write(
        &dir,
        "web.toml",
        &PROFILE.replace("[[vip]]\naddress = \"198.18.0.101\"\n", ""),
    );
    let v = lb.json(&["apply", "-f", s(&p2)]);
    let ch = common::changes(&v);
    assert!(
        ch.iter().any(|c| c == "ip addr del 198.18.0.101/32 dev lo"),
        "{ch:#?}"
    );
    assert!(!ns.addrs("lo").iter().any(|a| a == "198.18.0.101/32"));
    assert!(
        ns.addrs("lo").iter().any(|a| a == "198.18.0.200/32"),
        "foreign VIP kept"
    );

    lb.ok(&["down", "-f", s(&p2)]);
    assert_same(
        &before,
        &snapshot(&ns),
        "down must restore the namespace exactly",
    );
    assert_eq!(
        ns.sysctl("net/ipv4/ip_nonlocal_bind"),
        "0",
        "profile sysctl restored"
    );
    let v = lb.json(&["status"]);
    assert_eq!(v["in_sync"], true);
}

#[test]
fn failure_at_every_step_rolls_back() {
    require_root!();
    let ns = backend("fail");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("fail");
    let p = write(&dir, "web.toml", PROFILE);
    let before = snapshot(&ns);
    let steps = plan_lines(&lb, s(&p));
    assert!(steps.len() >= 8, "{steps:#?}");
    // Change k fails (each change renders as one or more lines; its first line identifies it).
    let mut tried = 0;
    for line in steps
        .iter()
        .filter(|l| !l.starts_with("nft add set") && !l.contains(" element "))
    {
        if line.starts_with("nft add") && !line.starts_with("nft add table") {
            continue; // part of the same (atomic) table change
        }
        tried += 1;
        let out = run_env(&lb, &["apply", "-f", s(&p)], &[("LBCTL_FAIL_ON", line)]);
        out.expect_code(2);
        assert!(out.stderr.contains("rolled back"), "{line}: {}", out.stderr);
        assert_same(&before, &snapshot(&ns), &format!("failure on `{line}`"));
        // The journal is as before too: nothing is claimed.
        let v = lb.json(&["status"]);
        assert_eq!(v["owners"], serde_json::json!([]), "{line}: {v:#}");
    }
    assert!(tried >= 8, "only {tried} failure points");
}

#[test]
fn a_real_kernel_failure_rolls_back() {
    require_root!();
    let ns = backend("kfail");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("kfail");
    let p = write(&dir, "web.toml", PROFILE);
    // A foreign default route already in table 100 (no rule points there, so lbctl may use the
    // table): adding lbctl's own default route fails with EEXIST after several changes succeeded.
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        "198.18.0.254",
        "dev",
        "eth0",
        "table",
        "100",
    ]);
    let before = snapshot(&ns);
    let out = lb.run(&["apply", "-f", s(&p)]);
    out.expect_code(2);
    assert!(out.stderr.contains("File exists"), "{}", out.stderr);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert_same(&before, &snapshot(&ns), "kernel failure mid-apply");
}

#[test]
fn bad_profiles_change_nothing() {
    require_root!();
    let ns = backend("badprof");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("badprof");
    let before = snapshot(&ns);
    for (text, needle) in [
        (PROFILE.replace("ports = [80]", "portz = [80]"), "line"),
        (
            PROFILE.replace("name = \"eth0\"", "name = \"nosuch0\""),
            "unknown interface",
        ),
        (PROFILE.replace("table = 100", "table = 254"), "reserved"),
        (
            PROFILE.replace("\"198.18.0.101\"", "\"198.18.0.101/24\""),
            "/32",
        ),
    ] {
        let p = write(&dir, "bad.toml", &text);
        for verb in ["plan", "apply"] {
            let out = lb.run(&[verb, "-f", s(&p)]);
            out.expect_code(2);
            assert!(
                out.stderr.contains(needle),
                "{verb} {needle}: {}",
                out.stderr
            );
        }
    }
    assert_same(&before, &snapshot(&ns), "bad profiles");
}

#[test]
fn ifupdown_hook_with_ifupdown_environment() {
    require_root!();
    let ns = backend("ifup");
    let lb = Lbctl::new(&ns);
    let hook = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/ifupdown/lbctl");
    let run_dir = lb.run_dir().to_string_lossy().into_owned();
    let before = snapshot(&ns);
    // What ifupdown exports for
    //   iface eth0 inet static
    //       address 198.18.0.11/24
    //       lbctl-vip 198.18.0.100 2001:db8::100
    //       lbctl-real-ip 198.18.0.11
    let phase = |mode: &str, phase: &str, opts: &[(&str, &str)]| {
        let mut env = vec![
            ("IFACE", "eth0"),
            ("LOGICAL", "eth0"),
            ("ADDRFAM", "inet"),
            ("METHOD", "static"),
            ("MODE", mode),
            ("PHASE", phase),
            ("VERBOSITY", "0"),
            ("IF_ADDRESS", "198.18.0.11/24"),
            ("LBCTL", common::LBCTL),
            ("LBCTL_RUN_DIR", run_dir.as_str()),
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        ];
        env.extend_from_slice(opts);
        let out = ns.exec_with(&["/bin/sh", hook], &env, None);
        assert_eq!(out.code, 0, "{mode}/{phase}: {}{}", out.stdout, out.stderr);
    };
    let opts = [
        ("IF_LBCTL_VIP", "198.18.0.100 2001:db8::100"),
        ("IF_LBCTL_REAL_IP", "198.18.0.11"),
    ];
    // A stanza without lbctl options: no-op in every phase.
    for (m, ph) in [
        ("start", "pre-up"),
        ("start", "post-up"),
        ("stop", "pre-down"),
        ("stop", "post-down"),
    ] {
        phase(m, ph, &[]);
    }
    assert_same(&before, &snapshot(&ns), "stanza without lbctl options");

    phase("start", "pre-up", &opts);
    assert!(
        ns.nft_table_exists("arp", "lbctl"),
        "ARP suppression in pre-up"
    );
    assert!(
        !ns.addrs("lo").iter().any(|a| a.starts_with("198.18.0.100")),
        "no VIP before post-up"
    );
    phase("start", "post-up", &opts);
    assert!(ns.addrs("lo").iter().any(|a| a == "198.18.0.100/32"));
    assert!(ns.addrs("lo").iter().any(|a| a == "2001:db8::100/128"));
    // ifup twice (e.g. `ifup --force`) is harmless.
    phase("start", "pre-up", &opts);
    phase("start", "post-up", &opts);
    phase("stop", "pre-down", &opts);
    assert!(!ns.addrs("lo").iter().any(|a| a.starts_with("198.18.0.100")));
    assert!(
        ns.nft_table_exists("arp", "lbctl"),
        "suppression stays until post-down"
    );
    phase("stop", "post-down", &opts);
    assert_same(&before, &snapshot(&ns), "ifdown undoes ifup");

    // lbctl-profile: apply in post-up, down in pre-down.
    let dir = TempDir::new("ifup");
    let p = write(&dir, "web.toml", PROFILE);
    let popts = [("IF_LBCTL_PROFILE", s(&p))];
    phase("start", "pre-up", &popts);
    phase("start", "post-up", &popts);
    assert!(ns.addrs("lo").iter().any(|a| a == "198.18.0.101/32"));
    phase("stop", "pre-down", &popts);
    phase("stop", "post-down", &popts);
    assert_same(&before, &snapshot(&ns), "profile via ifupdown");
}

#[test]
fn concurrent_applies_serialize() {
    require_root!();
    let ns = backend("conc");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("conc");
    let before = snapshot(&ns);
    let n = 6;
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| {
            write(
                &dir,
                &format!("p{i}.toml"),
                &format!(
                    "[[vip]]\naddress = \"198.18.1.{}\"\n[arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"eth0\"\nreal_ip = \"198.18.0.11\"\n[rp_filter]\nmode = \"loose\"\ninterfaces = [\"eth0\"]\n",
                    10 + i
                ),
            )
        })
        .collect();
    let argvs: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            lb.argv(&["apply", "-f", s(p)])
                .iter()
                .map(|s| s.to_string())
                .collect()
        })
        .collect();
    let run_dir = lb.run_dir().to_path_buf();
    let handles: Vec<_> = argvs
        .into_iter()
        .map(|argv| {
            let run_dir = run_dir.clone();
            std::thread::spawn(move || {
                let a: Vec<&str> = argv.iter().map(String::as_str).collect();
                run_cmd(&a, &[("LBCTL_RUN_DIR", run_dir.to_str().unwrap())], None)
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let v = lb.json(&["status"]);
    assert_eq!(v["in_sync"], true, "{v:#}");
    assert_eq!(v["owners"].as_array().unwrap().len(), n);
    for i in 0..n {
        assert!(ns
            .addrs("lo")
            .iter()
            .any(|a| *a == format!("198.18.1.{}/32", 10 + i)));
    }
    let arp = ns.nft_json(&["list", "set", "arp", "lbctl", "vips"]);
    assert_eq!(arp.to_string().matches("198.18.1.").count(), n, "{arp}");
    lb.ok(&["down", "--all"]);
    assert_same(
        &before,
        &snapshot(&ns),
        "down --all after concurrent applies",
    );
}

/// A profile with `n` VIPs (nft ARP suppression): about 2 changes per VIP.
fn big_profile(n: usize) -> String {
    let mut p = String::from("name = \"big\"\n");
    for i in 0..n {
        p.push_str(&format!(
            "[[vip]]\naddress = \"198.18.{}.{}\"\n",
            2 + i / 250,
            1 + i % 250
        ));
    }
    p.push_str(
        "[arp]\nmode = \"nft\"\n[[arp.interface]]\nname = \"eth0\"\nreal_ip = \"198.18.0.11\"\n",
    );
    p
}

/// Start `lbctl ARGS` with each change slowed down (test hook), signal it `signals` (each after
/// its delay), and return its output.
fn interrupt(lb: &Lbctl, args: &[&str], signals: &[(u64, i32)]) -> (i32, String) {
    use std::process::{Command, Stdio};
    let argv = lb.argv(args);
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .env("LBCTL_RUN_DIR", lb.run_dir())
        .env("LBCTL_TEST_STEP_DELAY_MS", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lbctl");
    for (ms, sig) in signals {
        std::thread::sleep(std::time::Duration::from_millis(*ms));
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, *sig) }, 0);
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 12 (finding 7): Ctrl-C or SIGTERM part-way through an apply (or a down) rolls back
/// to the state before and exits 130/143 saying so; a second signal cuts the rollback short,
/// says what is left, and keeps it recorded so that `down --all` still removes it.
#[test]
fn a_signal_during_apply_or_down_rolls_back() {
    require_root!();
    let ns = backend("sig");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("sig");
    let p = write(&dir, "big.toml", &big_profile(300));
    let before = snapshot(&ns);

    let (code, err) = interrupt(&lb, &["apply", "-f", s(&p)], &[(700, libc::SIGINT)]);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(err.contains("the system is as before"), "{err}");
    assert_same(&before, &snapshot(&ns), "after SIGINT during apply");
    assert_eq!(lb.json(&["status"])["owners"], serde_json::json!([]));

    let (code, err) = interrupt(&lb, &["apply", "-f", s(&p)], &[(700, libc::SIGTERM)]);
    assert_eq!(code, 143, "{err}");
    assert_same(&before, &snapshot(&ns), "after SIGTERM during apply");

    // down, interrupted, leaves everything applied.
    lb.ok(&["apply", "-f", s(&p)]);
    let applied = snapshot(&ns);
    let journal = lb
        .run_dir()
        .join("netns")
        .join(ns.name())
        .join("state.json");
    let journal_applied = std::fs::read(&journal).unwrap();
    let (code, err) = interrupt(&lb, &["down", "--all"], &[(700, libc::SIGINT)]);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("the system is as before"), "{err}");
    // The journal too, byte for byte (its history included), and no copy is left beside it.
    assert!(
        std::fs::read(&journal).unwrap() == journal_applied,
        "the journal changed across a rolled-back down"
    );
    assert!(!journal.with_extension("json.prev").exists());
    // Re-added addresses come back at the end of the list: compare them as a set.
    let mut now = snapshot(&ns);
    let mut was = applied.clone();
    let addrs = |s: &mut common::Snapshot| {
        let v = s.parts.remove("ip addr").unwrap();
        let mut a: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| a.to_string())
            .collect();
        a.sort();
        a
    };
    assert_eq!(addrs(&mut now), addrs(&mut was));
    assert_same(&was, &now, "after SIGINT during down");
    lb.ok(&["down", "--all"]);
    assert_same(&before, &snapshot(&ns), "down after the interrupted down");

    // A second signal aborts the rollback: what is left stays lbctl's.
    let (code, err) = interrupt(
        &lb,
        &["apply", "-f", s(&p)],
        &[(1500, libc::SIGINT), (300, libc::SIGINT)],
    );
    assert_eq!(code, 130, "{err}");
    assert!(
        err.contains("the rollback was aborted by a second signal"),
        "{err}"
    );
    lb.ok(&["down", "--all"]);
    assert_same(
        &before,
        &snapshot(&ns),
        "down --all after an aborted rollback",
    );
}

/// Issue 12 (finding 10): `--wait 0` fails at once while another lbctl holds the lock (naming
/// it), `status` says a change is in progress, and a longer `--wait` succeeds once it is free.
#[test]
fn the_lock_can_be_waited_for_or_not() {
    require_root!();
    let ns = backend("wait");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("wait");
    let p = write(&dir, "big.toml", &big_profile(200));
    let argv = lb.argv(&["apply", "-f", s(&p)]);
    let mut holder = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .env("LBCTL_RUN_DIR", lb.run_dir())
        .env("LBCTL_TEST_STEP_DELAY_MS", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let t = std::time::Instant::now();
    let out = lb.run(&["--wait", "0", "vip", "add", "198.18.9.9"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("another lbctl is changing this namespace (PID"),
        "{out}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
    let st = lb.run(&["status"]);
    assert!(
        st.stdout
            .contains("another lbctl is changing this namespace now"),
        "{st}"
    );
    let out = lb.run(&["--wait", "60", "vip", "add", "198.18.9.9"]);
    out.expect_ok();
    assert!(holder.wait().unwrap().success());
    lb.ok(&["down", "--all"]);
}

/// Issue 12 (finding 8): with the journal lost — deleted, or replaced by `{}` — lbctl still
/// knows its objects by their marks: `down --all` removes them (VIPs, rules, routes, the arp
/// table) and puts back the sysctls from the backup beside the journal; `lbctl adopt`
/// records them again so that `status` is in sync and `vip del` works.
#[test]
fn a_lost_journal_is_recovered_from_lbctls_marks() {
    require_root!();
    let ns = backend("lost");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("lost");
    let p = write(&dir, "web.toml", PROFILE);
    let before = snapshot(&ns);
    let journal = lb
        .run_dir()
        .join("netns")
        .join(ns.name())
        .join("state.json");

    // Deleted journal, then down --all.
    lb.ok(&["apply", "-f", s(&p)]);
    std::fs::remove_file(&journal).unwrap();
    let out = lb.ok(&["down", "--all"]);
    assert!(out.stderr.contains("carry lbctl's marks"), "{out}");
    assert_same(&before, &snapshot(&ns), "down --all without a journal");

    // Without adopt, `vip del` of a VIP that carries lbctl's mark deletes it (it is lbctl's).
    lb.ok(&["vip", "add", "198.18.0.150"]);
    std::fs::remove_file(&journal).unwrap();
    let del = lb.ok(&["vip", "del", "198.18.0.150"]);
    assert!(
        del.stdout.contains("ip addr del 198.18.0.150/32 dev lo"),
        "{del}"
    );
    assert_same(&before, &snapshot(&ns), "vip del without a journal");

    // A journal replaced by `{}`, then adopt: status in sync, vip del works, down restores.
    lb.ok(&["apply", "-f", s(&p)]);
    std::fs::write(&journal, "{}").unwrap();
    let out = lb.ok(&["adopt"]);
    assert!(
        out.stdout
            .contains("adopted address 198.18.0.100/32 dev lo"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("adopted policy route from 198.18.0.100 table 100"),
        "{out}"
    );
    assert!(
        out.stdout.contains("adopted arp suppression 198.18.0.100"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("adopted sysctl net.ipv4.conf.eth0.rp_filter=2 (was"),
        "{out}"
    );
    let st = lb.json(&["status"]);
    assert_eq!(st["in_sync"], true, "{st:#}");
    assert_eq!(st["owners"], serde_json::json!(["adopted"]), "{st:#}");
    let again = lb.ok(&["adopt"]);
    assert!(again.stdout.contains("nothing to adopt"), "{again}");
    let del = lb.ok(&["vip", "del", "198.18.0.101"]);
    assert!(
        del.stdout.contains("ip addr del 198.18.0.101/32 dev lo"),
        "{del}"
    );
    lb.ok(&["down", "--all"]);
    assert_same(&before, &snapshot(&ns), "down --all after adopt");

    // A corrupt journal: the error points at adopt, which sets it aside.
    lb.ok(&["apply", "-f", s(&p)]);
    std::fs::write(&journal, "{ not json").unwrap();
    let st = lb.run(&["status"]);
    st.expect_code(2);
    assert!(st.stderr.contains("lbctl adopt"), "{st}");
    lb.ok(&["adopt"]);
    lb.ok(&["down", "--all"]);
    assert_same(
        &before,
        &snapshot(&ns),
        "down --all after a corrupt journal",
    );
}

/// Issue 12 (finding 13): a profile applied through a symlink belongs to the target's name (one
/// owner however it is reached); `down -f` of a profile that is not applied says so; drift of
/// one-shot objects is not "repaired by `lbctl apply`" (which needs a profile).
#[test]
fn symlinked_profiles_down_of_unapplied_and_repair_hints() {
    require_root!();
    let ns = backend("link");
    let lb = Lbctl::new(&ns);
    let dir = TempDir::new("link");
    let p = write(
        &dir,
        "web-v2.toml",
        &PROFILE.replace("name = \"web\"\n", ""),
    );
    let link = dir.path().join("web.toml");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    lb.ok(&["apply", "-f", s(&link)]);
    let st = lb.json(&["status"]);
    assert_eq!(
        st["owners"],
        serde_json::json!(["profile:web-v2"]),
        "{st:#}"
    );
    lb.ok(&["down", "-f", s(&p)]);
    assert_eq!(lb.json(&["status"])["owners"], serde_json::json!([]));

    let out = lb.run(&["down", "-f", s(&p)]);
    out.expect_ok();
    assert!(
        out.stderr.contains("profile:web-v2 is not applied here"),
        "{out}"
    );

    lb.ok(&["vip", "add", "198.18.0.150"]);
    ns.ip(&["addr", "del", "198.18.0.150/32", "dev", "lo"]);
    let st = lb.run(&["status"]);
    st.expect_code(1);
    assert!(!st.stdout.contains("`lbctl apply` repairs"), "{st}");
    assert!(
        st.stdout
            .contains("# cli: re-run the `lbctl vip/arp/route/rpfilter` command"),
        "{st}"
    );
    lb.ok(&["down", "--all"]);
}
