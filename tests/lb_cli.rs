//! `lbctl lb` on the build host, which (like the CI kernel) has no IPVS: what must work anyway,
//! and what must fail, how.
//!
//! * Bad input is exit 2 with one `lbctl: ` line naming the problem, decided before IPVS is
//!   opened: on a host without IPVS the message is the validation error, not "no IPVS", and
//!   under strace (when installed) no generic-netlink socket is ever created.
//! * Commands that need the kernel (`list`, `save`, any change) fail with exit 2 and
//!   "this kernel has no IPVS; try modprobe ip_vs".
//! * `--dry-run` plans against an empty table (with a warning), so an LB file or a rule file can
//!   be checked anywhere. The result is exactly the ipvsadm commands that would create it.
//!
//! The real kernel side (every command against IPVS, compared with ipvsadm) runs in the QEMU
//! lane: tests/vm/run-ipvs-lane.sh, `cli.*` checks.
//!
//! Where the kernel does have IPVS, the tests that rely on its absence say so and return.

#[macro_use]
mod common;

use common::*;

const NO_IPVS: &str = "this kernel has no IPVS; try modprobe ip_vs";

/// True when this kernel has no IPVS (the "IPVS" generic-netlink family is missing).
fn host_without_ipvs(test: &str) -> bool {
    match lbctl::ipvs::Client::open() {
        Err(lbctl::ipvs::Error::NoIpvs) => true,
        _ => {
            eprintln!(
                "SKIPPED (this kernel has IPVS; the no-IPVS behaviour cannot be shown): {test}"
            );
            false
        }
    }
}

fn lbctl(args: &[&str]) -> Out {
    let lb = Lbctl::plain();
    lb.run(args)
}

fn lbctl_line(line: &str) -> Out {
    lbctl(&words(line))
}

/// Invalid requests and the message each must produce (exit 2, before IPVS is opened).
const BAD_INPUT: &[(&str, &str)] = &[
    (
        "lb service add 198.18.0.100:80 --scheduler bogus",
        "unknown scheduler 'bogus'",
    ),
    (
        "lb service add 198.18.0.100:80 -s rr --mh-port",
        "mh scheduler only",
    ),
    (
        "lb service add 198.18.0.100:80 -s mh -b sh-port",
        "does not apply to scheduler 'mh'",
    ),
    ("lb service add 198.18.0.100 -s rr", "has no port"),
    ("lb service add 2001:db8::100 -s rr", "[2001:db8::100]:80"),
    (
        "lb service add 198.18.0.300:80",
        "invalid service '198.18.0.300:80'",
    ),
    ("lb service add 0.0.0.0:80", "not a unicast address"),
    ("lb service add 198.18.0.100:0", "port 0"),
    ("lb service add 198.18.0.100:80 --fwmark 7", "not both"),
    ("lb service add fwmark:0", "mark 0"),
    (
        "lb service add --fwmark 7 --proto udp",
        "does not apply to a fwmark service",
    ),
    (
        "lb service add 198.18.0.100:80 --ipv6",
        "fwmark services only",
    ),
    (
        "lb service add 198.18.0.100:80 -p 99999999",
        "persistence timeout",
    ),
    (
        "lb service add 198.18.0.100:80 -M 255.255.255.0",
        "needs persistence",
    ),
    (
        "lb service add 198.18.0.100:80 -p 60 -M 255.0.255.0",
        "not contiguous",
    ),
    ("lb service edit 198.18.0.100:80", "nothing to change"),
    (
        "lb service edit 198.18.0.100:80 -s nope",
        "unknown scheduler 'nope'",
    ),
    ("lb service del 198.18.0.100", "has no port"),
    (
        "lb backend add 198.18.0.100:80 198.18.0.11:8080",
        "DR forwarding does not change the destination port",
    ),
    (
        "lb backend add 198.18.0.100:80 198.18.0.11:8080 --method tun",
        "TUN forwarding does not change the destination port",
    ),
    (
        "lb backend add 198.18.0.100:80 198.18.0.300",
        "invalid real server '198.18.0.300'",
    ),
    (
        "lb backend add 198.18.0.100:80 2001:db8::11",
        "needs tunnel forwarding",
    ),
    (
        "lb backend add 198.18.0.100:80 224.0.0.1",
        "not a unicast address",
    ),
    (
        "lb backend add 198.18.0.100:80 198.18.0.11 -w 4294967295",
        "weight 4294967295",
    ),
    (
        "lb backend add 198.18.0.100:80 198.18.0.11 -x 5 -y 9",
        "lower threshold 9",
    ),
    (
        "lb backend edit 198.18.0.100:80 198.18.0.11",
        "nothing to change",
    ),
    (
        "lb backend edit 198.18.0.100:80 198.18.0.11 -w 4294967295",
        "weight 4294967295",
    ),
    (
        "lb backend edit 198.18.0.100:80 198.18.0.11 -x 5 -y 9",
        "lower threshold 9",
    ),
    (
        "lb backend edit 198.18.0.100:80 198.18.0.11:8080 --method dr",
        "DR forwarding does not change",
    ),
    ("lb backend del 198.18.0.100 198.18.0.11", "has no port"),
    (
        "lb drain 198.18.0.100:80 198.18.0.11:x",
        "invalid real server",
    ),
    ("lb list 198.18.0.100", "has no port"),
    (
        "lb apply -f /nonexistent/lb.toml",
        "cannot read LB file /nonexistent/lb.toml",
    ),
    (
        "lb restore /nonexistent/rules",
        "cannot read /nonexistent/rules",
    ),
];

#[test]
fn bad_input_is_refused_before_ipvs_is_opened() {
    let without_ipvs = matches!(lbctl::ipvs::Client::open(), Err(lbctl::ipvs::Error::NoIpvs));
    let mut failures = Vec::new();
    for (line, want) in BAD_INPUT {
        for dry in [false, true] {
            let mut args = Vec::new();
            if dry {
                args.push("--dry-run");
            }
            args.extend(words(line));
            let out = lbctl(&args);
            let lines: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            let ok = out.code == 2
                && lines.len() == 1
                && lines[0].starts_with("lbctl: ")
                && lines[0].contains(want)
                && out.stdout.is_empty()
                // on a host without IPVS, the validation error comes first: IPVS was not opened
                && !(without_ipvs && out.stderr.contains("IPVS"));
            if !ok {
                failures.push(format!(
                    "wanted exit 2 and one `lbctl: …{want}…` line\n{out}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the contract:\n\n{}",
        failures.len(),
        BAD_INPUT.len() * 2,
        failures.join("\n\n")
    );
}

/// The strongest form of "validated before any syscall": the process never creates a generic
/// netlink socket (the IPVS family lives there), while a valid request does.
#[test]
fn bad_input_opens_no_generic_netlink_socket() {
    let Some(strace) = find_tool("strace") else {
        eprintln!("NOTE: strace is not installed; the message-order test above covers this");
        return;
    };
    let tmp = TempDir::new("strace");
    let log = tmp.path().join("trace");
    let log_s = log.to_string_lossy().into_owned();
    let strace_s = strace.to_string_lossy().into_owned();
    let traced = |line: &str| -> (Out, String) {
        let mut argv = vec![
            strace_s.as_str(),
            "-f",
            "-qq",
            "-e",
            "trace=socket",
            "-o",
            &log_s,
        ];
        argv.push(LBCTL);
        argv.extend(words(line));
        let out = run_cmd(
            &argv,
            &[("LBCTL_RUN_DIR", &tmp.path().to_string_lossy())],
            None,
        );
        let trace = std::fs::read_to_string(&log).unwrap_or_default();
        (out, trace)
    };
    // positive control: a valid request does open one (and strace works here at all)
    let (_, control) = traced("--dry-run lb service add 198.18.0.100:80 -s rr");
    if !control.contains("NETLINK_GENERIC") {
        eprintln!("NOTE: strace shows no generic netlink socket for a valid request (ptrace not permitted here?); skipping:\n{control}");
        return;
    }
    for line in [
        "lb backend add 198.18.0.100:80 198.18.0.11:8080",
        "lb service add 198.18.0.100:80 --scheduler bogus",
        "--dry-run lb service add 198.18.0.100:80 -s mh --mh-port=maybe",
        "lb apply -f /nonexistent/lb.toml",
    ] {
        let (out, trace) = traced(line);
        out.expect_code(2);
        assert!(
            !trace.contains("NETLINK_GENERIC"),
            "`lbctl {line}` opened a generic netlink socket before refusing:\n{trace}\n{out}"
        );
    }
}

#[test]
fn kernel_commands_say_there_is_no_ipvs() {
    if !host_without_ipvs(test_name!()) {
        return;
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/lb-example.toml");
    for line in [
        "lb list".to_string(),
        "lb list --stats".to_string(),
        "--json lb list".to_string(),
        "lb save".to_string(),
        "lb service add 198.18.0.100:80 -s mh --mh-port".to_string(),
        "lb service del 198.18.0.100:80".to_string(),
        "lb backend add 198.18.0.100:80 198.18.0.11".to_string(),
        "lb drain 198.18.0.100:80 198.18.0.11".to_string(),
        format!("lb apply -f {example}"),
    ] {
        let out = lbctl_line(&line);
        out.expect_code(2).expect_one_line_error();
        assert!(out.stderr.contains(NO_IPVS), "{out}");
        assert!(out.stdout.is_empty(), "{out}");
    }
}

#[test]
fn dry_run_apply_plans_against_an_empty_table() {
    if !host_without_ipvs(test_name!()) {
        return;
    }
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/lb-example.toml");
    let out = lbctl(&["--dry-run", "lb", "apply", "-f", example]);
    out.expect_ok();
    assert!(
        out.stderr.contains("planning against an empty IPVS table"),
        "{out}"
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "ipvsadm -A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port",
            "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1",
            "ipvsadm -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 1",
            "ipvsadm -A -t 198.18.0.100:443 -s wrr -p 300 -M 255.255.255.0",
            "ipvsadm -a -t 198.18.0.100:443 -r 198.18.0.11:443 -g -w 2",
            "ipvsadm -a -t 198.18.0.100:443 -r 198.18.0.12:443 -g -w 1",
            "ipvsadm -A -u [2001:db8::100]:53 -s rr",
            "ipvsadm -a -u [2001:db8::100]:53 -r [2001:db8::11]:53 -g -w 1",
            "ipvsadm -a -u [2001:db8::100]:53 -r [2001:db8::12]:53 -g -w 1",
        ],
        "{out}"
    );
    // the same as JSON
    let out = lbctl(&["--json", "--dry-run", "lb", "apply", "-f", example]);
    let v = out.expect_ok().json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["applied"], false);
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(9), "{out}");
    // and the plan is a valid rule file: `lb restore` reads it back, to the same plan
    let tmp = TempDir::new("plan");
    let rules = tmp.path().join("plan.rules");
    std::fs::write(
        &rules,
        &lbctl(&["--dry-run", "lb", "apply", "-f", example]).stdout,
    )
    .unwrap();
    let again = lbctl(&["--dry-run", "lb", "restore", &rules.to_string_lossy()]);
    again.expect_ok();
    assert_eq!(again.stdout.lines().collect::<Vec<_>>(), lines, "{again}");
}

#[test]
fn dry_run_one_shot_commands_print_ipvsadm_lines() {
    if !host_without_ipvs(test_name!()) {
        return;
    }
    for (line, want) in [
        (
            "--dry-run lb service add 198.18.0.100:80 -s mh --mh-port --mh-fallback -p 300",
            "ipvsadm -A -t 198.18.0.100:80 -s mh -p 300 -b mh-fallback,mh-port",
        ),
        (
            "--dry-run lb service add [2001:db8::100]:53 --proto udp -s rr",
            "ipvsadm -A -u [2001:db8::100]:53 -s rr",
        ),
        (
            "--dry-run lb service add --fwmark 7 --ipv6 -s sh -b sh-port",
            "ipvsadm -A -f 7 -6 -s sh -b sh-port",
        ),
        // nothing to delete in an empty table
        (
            "--dry-run lb service del 198.18.0.100:80",
            "# unchanged: no service 198.18.0.100:80",
        ),
    ] {
        let out = lbctl_line(line);
        out.expect_ok();
        assert_eq!(out.stdout.trim_end(), want, "{out}");
    }
    // a real server needs its service, even in a dry run
    let out = lbctl_line("--dry-run lb backend add 198.18.0.100:80 198.18.0.11");
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("no service 198.18.0.100:80 (create it first with `lbctl lb service add 198.18.0.100:80`)"),
        "{out}"
    );
    let out = lbctl_line("--dry-run lb backend add [2001:db8::100]:53 2001:db8::11 --proto udp");
    assert!(
        out.stderr
            .contains("`lbctl lb service add [2001:db8::100]:53 --proto udp`"),
        "{out}"
    );
}

#[test]
fn restore_checks_every_rule_before_the_first_change() {
    if !host_without_ipvs(test_name!()) {
        return;
    }
    let tmp = TempDir::new("rules");
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let good = write(
        "good",
        "# ipvsadm -S -n\n-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port\n\
         -a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n\
         -a -t 198.18.0.100:80 -r 198.18.0.12:80 -g -w 0\n",
    );
    let out = lbctl(&["--dry-run", "lb", "restore", &good]);
    out.expect_ok();
    assert_eq!(out.stdout.lines().count(), 3, "{out}");
    // from standard input as well
    let lb = Lbctl::plain();
    let run_dir = lb.run_dir().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&good).unwrap();
    let out = run_cmd(
        &lb.argv(&["--dry-run", "lb", "restore", "-"]),
        &[("LBCTL_RUN_DIR", &run_dir)],
        Some(&text),
    );
    out.expect_ok();
    assert_eq!(out.stdout.lines().count(), 3, "{out}");

    for (text, want) in [
        (
            "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.18.0.11:8080 -g\n",
            "line 2: real server 198.18.0.11:8080 cannot serve 198.18.0.100:80",
        ),
        (
            "-A -t 198.18.0.100:80 -s rr\n\n-A -t 198.18.0.101:80 -s nope\n",
            "line 3: unknown scheduler 'nope'",
        ),
        (
            "-A -t 198.18.0.100:80 -s rr\n--frobnicate\n",
            "line 2: unknown or unsupported option",
        ),
        (
            "-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n",
            "line 1: `-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1`: service not defined",
        ),
        (
            "-A -t 198.18.0.100:80 -s rr\n-A -t 198.18.0.100:80 -s wrr\n",
            "line 2: `-A -t 198.18.0.100:80 -s wrr`: service already exists",
        ),
    ] {
        let f = write("bad", text);
        for flush in [false, true] {
            let mut args = vec!["--dry-run", "lb", "restore"];
            if flush {
                args.push("--flush");
            }
            args.push(&f);
            let out = lbctl(&args);
            out.expect_code(2);
            assert!(out.stderr.contains(want), "wanted {want:?}\n{out}");
            assert!(out.stdout.is_empty(), "{out}");
        }
    }
}

#[test]
fn lb_file_errors_name_the_place() {
    let tmp = TempDir::new("lbfile");
    for (text, want) in [
        ("[[service]]\nvip = \"198.18.0.100:80\"\nschedular = \"rr\"\n", "unknown field `schedular`"),
        ("[[service]]\nvip = 198.18.0.100\n", "line 2"),
        (
            "[[service]]\nvip = \"198.18.0.100:80\"\n[[service.backend]]\nrip = \"198.18.0.11:8080\"\n",
            "[[service]] #1 (198.18.0.100:80): real server 198.18.0.11:8080 cannot serve",
        ),
        (
            "[[service]]\nvip = \"198.18.0.100:80\"\n[[service]]\nvip = \"198.18.0.100:80\"\n",
            "listed twice",
        ),
    ] {
        let p = tmp.path().join("lb.toml");
        std::fs::write(&p, text).unwrap();
        let p = p.to_string_lossy().into_owned();
        for dry in [false, true] {
            let mut args = Vec::new();
            if dry {
                args.push("--dry-run");
            }
            args.extend(["lb", "apply", "-f", &p]);
            let out = lbctl(&args);
            out.expect_code(2);
            assert!(out.stderr.starts_with(&format!("lbctl: {p}: ")), "{out}");
            assert!(out.stderr.contains(want), "wanted {want:?}\n{out}");
            assert!(!out.stderr.contains("IPVS"), "validated before IPVS\n{out}");
        }
    }
}

/// `--netns` works for lb like for every command: the no-IPVS answer (or the dry-run plan)
/// comes from inside the namespace; a missing namespace is a usage error.
#[test]
fn netns_option() {
    let out = lbctl_line("--netns lbt-no-such-ns lb list");
    out.expect_code(2).expect_one_line_error();
    assert!(out.stderr.contains("no network namespace named"), "{out}");
    require_root!();
    if !host_without_ipvs(test_name!()) {
        return;
    }
    let ns = Netns::new("lb");
    let lb = Lbctl::new(&ns);
    let out = lb.run_line("lb list");
    out.expect_code(2);
    assert!(out.stderr.contains(NO_IPVS), "{out}");
    let out = lb.run_line("--dry-run lb service add 198.18.0.100:80 -s rr");
    out.expect_ok();
    assert_eq!(
        out.stdout.trim(),
        "ipvsadm -A -t 198.18.0.100:80 -s rr",
        "{out}"
    );
}

#[test]
fn help_for_every_lb_command() {
    for line in [
        "lb --help",
        "lb service add --help",
        "lb service edit --help",
        "lb service del --help",
        "lb backend add --help",
        "lb backend edit --help",
        "lb backend del --help",
        "lb drain --help",
        "lb list --help",
        "lb save --help",
        "lb restore --help",
        "lb apply --help",
    ] {
        let out = lbctl_line(line);
        out.expect_ok();
        assert!(out.stdout.contains("Usage: lbctl lb"), "{out}");
    }
}
