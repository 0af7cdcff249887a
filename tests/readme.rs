//! Docs that run (issue 12): every fenced shell block of README.md and every file in profiles/
//! is checked against the real tool.
//!
//! * `lbctl …` lines (in blocks, after a `$ ` prompt, and in the profiles' `#   lbctl …` comment
//!   lines) parse with the real clap definition (`lbctl::cli::Cli::try_parse_from`), both without
//!   and with their `[optional]` parts; the safe ones then run in a throwaway namespace (with
//!   `--dry-run` for those that change something), and must not be refused (exit 2).
//! * Printed `ip`/`nft`/`sysctl` lines (a console block's output, `# ip …` lines and trailing
//!   `# ip …` comments, the profiles' `#   ip …` comments) run in a throwaway namespace, so they
//!   work verbatim on the iproute2/nftables installed (Debian 12: iproute2 6.1, nftables 1.0.6).
//! * Profiles are parsed by the real parser: `lbctl plan -f` (backend profiles), `lbctl
//!   --dry-run lb run -c` / `lb apply -f` (LB files), in a namespace with the interfaces they
//!   name.
//! * Host commands (`make`, `apt`, `man`, `systemctl`, `scripts/…`) are not run; what they name
//!   must exist (Makefile target, man page, unit, script).
//! * The ifupdown stanza is run by tests/ifupdown.rs with the real ifup/ifdown.
//! * A block preceded by `<!-- illustrative -->` is only listed.

#[macro_use]
mod common;

use std::path::Path;

use clap::Parser as _;
use common::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug)]
struct Block {
    line: usize,
    lang: String,
    text: String,
    illustrative: bool,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        if let Some(lang) = lines[i].strip_prefix("```") {
            let prev = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
            let illustrative = prev.is_some_and(|l| l.trim() == "<!-- illustrative -->");
            let start = i;
            let mut body = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push(lines[i]);
                i += 1;
            }
            out.push(Block {
                line: start + 1,
                lang: lang.trim().to_string(),
                text: body.join("\n"),
                illustrative,
            });
        }
        i += 1;
    }
    out
}

/// The command and the trailing comment of a shell line (` # ` outside quotes).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote = None;
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match (quote, c) {
            (None, b'\'') | (None, b'"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, b'#') if i == 0 || b[i - 1] == b' ' => {
                return (line[..i].trim_end(), Some(line[i + 1..].trim()));
            }
            _ => {}
        }
    }
    (line.trim_end(), None)
}

/// `[a|b c]` usage groups: (dropped, kept with the first alternative).
fn variants(line: &str) -> Vec<String> {
    let mut without = String::new();
    let mut with = String::new();
    let mut depth = 0;
    let mut group = String::new();
    for c in line.chars() {
        match c {
            '[' => {
                depth += 1;
                if depth == 1 {
                    group.clear();
                    continue;
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let first = group.split('|').next().unwrap_or("").to_string();
                    with.push_str(&first);
                    continue;
                }
            }
            _ => {}
        }
        if depth > 0 {
            group.push(c);
        } else {
            without.push(c);
            with.push(c);
        }
    }
    let mut v = vec![
        without.split_whitespace().collect::<Vec<_>>().join(" "),
        with.split_whitespace().collect::<Vec<_>>().join(" "),
    ];
    v.dedup();
    v
}

/// What a documentation line asks for.
#[derive(Debug, Default)]
struct Found {
    /// `lbctl …` command lines (sudo and prompt removed), with where they came from.
    lbctl: Vec<(String, String)>,
    /// Printed `ip`/`nft`/`sysctl` lines.
    printed: Vec<(String, String)>,
    /// Host commands, not run.
    host: Vec<(String, String)>,
}

/// An `ip`/`nft`/`sysctl` command line (not prose such as "nft mode (default)").
fn is_printed(cmd: &str) -> bool {
    let w: Vec<&str> = cmd.split_whitespace().collect();
    let obj = |i: usize| w.get(i).copied().unwrap_or("");
    match obj(0) {
        "ip" => {
            let i = if obj(1).starts_with('-') { 2 } else { 1 };
            matches!(
                obj(i),
                "addr" | "address" | "route" | "rule" | "link" | "neigh"
            )
        }
        "nft" => matches!(
            obj(1),
            "add" | "list" | "delete" | "flush" | "insert" | "-f"
        ),
        "sysctl" => obj(1) == "-w" || obj(1).contains('='),
        _ => false,
    }
}

fn collect_line(found: &mut Found, at: &str, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    if let Some(c) = line.strip_prefix('#') {
        let c = c.trim();
        if is_printed(c) {
            found.printed.push((at.to_string(), c.to_string()));
        }
        return;
    }
    let (cmd, comment) = split_comment(line);
    if let Some(c) = comment {
        if is_printed(c) {
            found.printed.push((at.to_string(), c.to_string()));
        }
    }
    for part in cmd.split(';').flat_map(|p| p.split("&&")) {
        // `lbctl lb save > rules`: the redirection is the shell's.
        let part = part.split(" > ").next().unwrap_or("").trim();
        let part = part.strip_prefix("sudo ").unwrap_or(part).trim();
        if part.is_empty() {
            continue;
        }
        if part.starts_with("lbctl ") || part == "lbctl" {
            found.lbctl.push((at.to_string(), part.to_string()));
        } else if is_printed(part) {
            found.printed.push((at.to_string(), part.to_string()));
        } else {
            found.host.push((at.to_string(), part.to_string()));
        }
    }
}

/// Everything README.md and profiles/ show; also the list of illustrative blocks and the
/// ifupdown stanza's place.
fn gather() -> (Found, Vec<String>, Vec<String>) {
    let mut found = Found::default();
    let mut illustrative = Vec::new();
    let mut delegated = Vec::new();
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    for b in blocks(&readme) {
        let at = format!("README.md:{}", b.line);
        if b.illustrative {
            illustrative.push(at);
            continue;
        }
        if b.text.trim_start().starts_with("auto ") {
            delegated.push(format!("{at} (ifupdown stanza: tests/ifupdown.rs)"));
            continue;
        }
        assert!(
            matches!(b.lang.as_str(), "" | "sh" | "console" | "toml"),
            "{at}: a ```{} block: mark it <!-- illustrative --> or teach tests/readme.rs",
            b.lang
        );
        if b.lang == "toml" {
            delegated.push(format!("{at} (TOML: parsed like the profiles)"));
            continue;
        }
        for l in b.text.lines() {
            if b.lang == "console" {
                // `$ cmd` is typed; other lines are printed output.
                match l.strip_prefix("$ ") {
                    Some(cmd) => collect_line(&mut found, &at, cmd),
                    None if is_printed(l.trim()) => {
                        found.printed.push((at.clone(), l.trim().to_string()))
                    }
                    None => {}
                }
            } else {
                collect_line(&mut found, &at, l);
            }
        }
    }
    for p in profiles() {
        let text = std::fs::read_to_string(&p).unwrap();
        let at = format!("profiles/{}", p.file_name().unwrap().to_string_lossy());
        for l in text.lines() {
            if let Some(c) = l.strip_prefix("#   ") {
                let (cmd, _) = split_comment(c);
                if cmd.starts_with("lbctl ") {
                    collect_line(&mut found, &at, c);
                } else if is_printed(cmd) {
                    found.printed.push((at.clone(), cmd.to_string()));
                }
            }
        }
    }
    (found, illustrative, delegated)
}

fn profiles() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(Path::new(ROOT).join("profiles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_lbctl_line_in_the_docs_parses_with_the_real_cli() {
    let (found, illustrative, delegated) = gather();
    assert!(
        found.lbctl.len() > 30,
        "too few lbctl lines found: {found:?}"
    );
    let mut bad = Vec::new();
    for (at, line) in &found.lbctl {
        for v in variants(line) {
            if let Err(e) = lbctl::cli::Cli::try_parse_from(v.split_whitespace()) {
                bad.push(format!("{at}: `{v}`:\n{e}"));
            }
        }
    }
    eprintln!("illustrative blocks (not run): {illustrative:?}");
    eprintln!("checked elsewhere: {delegated:?}");
    assert!(bad.is_empty(), "lines the CLI refuses:\n{}", bad.join("\n"));
}

#[test]
fn host_commands_in_the_docs_name_what_exists() {
    let (found, _, _) = gather();
    let root = Path::new(ROOT);
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let mut bad = Vec::new();
    for (at, cmd) in &found.host {
        let w: Vec<&str> = cmd.split_whitespace().collect();
        let ok = match w[0] {
            "make" => w[1..]
                .iter()
                .filter(|t| !t.starts_with('-') && **t != "&&")
                .take_while(|t| **t != "sudo")
                .all(|t| makefile.contains(&format!("\n{t}:"))),
            "apt" => w.last().is_some_and(|p| p.ends_with(".deb")),
            "man" => root.join("man").join(format!("{}.1", w[1])).exists(),
            "systemctl" => {
                let unit = w.last().unwrap();
                let template = unit.split('@').next().unwrap();
                root.join("contrib/systemd")
                    .join(format!("{template}@.service"))
                    .exists()
            }
            s if s.starts_with("scripts/") => root.join(s).exists(),
            _ => false,
        };
        if !ok {
            bad.push(format!("{at}: `{cmd}`"));
        }
    }
    assert!(
        bad.is_empty(),
        "host commands naming nothing that exists (or unknown to this test):\n{}",
        bad.join("\n")
    );
}

/// A namespace shaped like the docs' backend: eth0 198.18.0.11/24 and eth1 198.18.0.21/24
/// (veth pairs), lo up.
fn docs_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    for (dev, peer, addr) in [
        ("eth0", "peer0", "198.18.0.11/24"),
        ("eth1", "peer1", "198.18.0.21/24"),
    ] {
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
        ns.up(peer);
        ns.up(dev);
        ns.add_addr(dev, addr);
    }
    ns.settle();
    ns
}

#[test]
fn printed_ip_nft_sysctl_lines_run_verbatim() {
    require_root!();
    let (found, _, _) = gather();
    assert!(!found.printed.is_empty());
    let mut bad = Vec::new();
    // One fresh namespace per block or file: its lines run in order, as a reader would.
    let mut ns: Option<(String, Netns)> = None;
    for (at, cmd) in &found.printed {
        if ns.as_ref().is_none_or(|(a, _)| a != at) {
            drop(ns.take());
            ns = Some((at.clone(), docs_ns("printed")));
        }
        let out = ns.as_ref().unwrap().1.exec(&["sh", "-c", cmd]);
        if out.code == 0 {
            continue;
        }
        bad.push(format!("{at}: `{cmd}`\n{}", out.stderr.trim()));
    }
    assert!(
        bad.is_empty(),
        "printed lines that do not run:\n{}",
        bad.join("\n")
    );
}

/// How a documented lbctl line is run in the namespace: `None` when it is not run (it runs
/// forever, waits for traffic, needs IPVS or builds a lab).
fn how_to_run(line: &str) -> Option<Vec<String>> {
    let w: Vec<&str> = line.split_whitespace().skip(1).collect();
    let verb: Vec<&str> = w
        .iter()
        .filter(|a| !a.starts_with('-'))
        .copied()
        .take(2)
        .collect();
    let first = *verb.first()?;
    let dry = w.contains(&"--dry-run") || w.contains(&"-n");
    let mutating = matches!(
        (first, verb.get(1).copied()),
        ("vip", Some("add" | "del"))
            | ("arp", Some("suppress" | "restore"))
            | ("route", Some("add" | "del"))
            | ("rpfilter", Some("fix" | "restore"))
            | ("apply", _)
            | ("down", _)
    );
    let read_only = matches!(
        (first, verb.get(1).copied()),
        ("vip", Some("list"))
            | ("arp", Some("status"))
            | ("route", Some("list"))
            | ("rpfilter", Some("check"))
            | ("plan", _)
            | ("status", _)
            | ("lb", Some("maglev"))
            | ("crossover", Some("plan" | "status"))
    ) || (first == "lb" && dry);
    if line.contains("--capture") || line.contains("LB.toml") {
        return None;
    }
    let mut argv: Vec<String> = Vec::new();
    if mutating && !dry {
        argv.push("--dry-run".into());
    } else if !(mutating || read_only || first == "doctor") {
        return None;
    }
    argv.extend(w.iter().map(|s| s.to_string()));
    Some(argv)
}

#[test]
fn documented_lbctl_lines_run_in_a_namespace_without_being_refused() {
    require_root!();
    let (found, _, _) = gather();
    let ns = docs_ns("lines");
    let run = Lbctl::new(&ns);
    let before = snapshot(&ns);
    let mut bad = Vec::new();
    let mut not_run = Vec::new();
    for (at, line) in &found.lbctl {
        let v = &variants(line)[0];
        let Some(argv) = how_to_run(v) else {
            not_run.push(format!("{at}: {v}"));
            continue;
        };
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = run_in(&run, &argv);
        if !(out.code == 0 || out.code == 1) {
            bad.push(format!("{at}: `{v}`\n{out}"));
        }
    }
    eprintln!("parsed only (not run here):\n{}", not_run.join("\n"));
    assert!(
        bad.is_empty(),
        "documented lines refused:\n{}",
        bad.join("\n\n")
    );
    assert_same(
        &before,
        &snapshot(&ns),
        "dry runs and read-only commands of the docs",
    );
}

/// Run `lbctl --netns NS ARGS` from the repository root (the docs' relative paths).
fn run_in(run: &Lbctl, args: &[&str]) -> Out {
    let argv = run.argv(args);
    let run_dir = run.run_dir().to_string_lossy().into_owned();
    let mut cmd = std::process::Command::new(argv[0]);
    cmd.args(&argv[1..])
        .current_dir(ROOT)
        .env("LBCTL_RUN_DIR", &run_dir);
    let o = cmd.output().expect("run lbctl");
    Out {
        cmd: argv.join(" "),
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn every_profile_parses_with_the_real_parser() {
    require_root!();
    let ns = docs_ns("profiles");
    let run = Lbctl::new(&ns);
    let before = snapshot(&ns);
    let mut bad = Vec::new();
    for p in profiles() {
        let text = std::fs::read_to_string(&p).unwrap();
        let path = p.to_str().unwrap();
        let (what, out) = if text.contains("[[service]]") && text.contains("[balancer]") {
            (
                "lb run",
                run_in(&run, &["--dry-run", "lb", "run", "-c", path]),
            )
        } else if text.contains("[[service]]") {
            (
                "lb apply",
                run_in(&run, &["--dry-run", "lb", "apply", "-f", path]),
            )
        } else {
            ("plan", run_in(&run, &["plan", "-f", path]))
        };
        // plan: 1 = changes pending (expected in an empty namespace).
        let ok = out.code == 0 || (what == "plan" && out.code == 1);
        if !ok {
            bad.push(format!("{} ({what}):\n{out}", p.display()));
        }
    }
    assert!(bad.is_empty(), "profiles refused:\n{}", bad.join("\n\n"));
    assert_same(&before, &snapshot(&ns), "parsing the profiles");
}

#[test]
fn the_line_helpers_do_what_the_docs_need() {
    assert_eq!(
        variants("lbctl lb list [--stats|--rate] [--json]"),
        vec!["lbctl lb list", "lbctl lb list --stats --json"]
    );
    assert_eq!(
        split_comment("lbctl vip add 198.18.0.100   # ip addr add x"),
        ("lbctl vip add 198.18.0.100", Some("ip addr add x"))
    );
    assert_eq!(
        split_comment("nft add set arp lbctl vips '{ type ipv4_addr; }'"),
        ("nft add set arp lbctl vips '{ type ipv4_addr; }'", None)
    );
}

/// The printed lines README shows for an lbctl command are what that command prints: a console
/// block's output is the `$` command's whole output; an `ip`/`nft` line in a trailing comment, or
/// on `# ` lines right after an lbctl line, is among the lines its `--dry-run` prints.
#[test]
fn printed_lines_in_the_readme_are_what_lbctl_prints() {
    require_root!();
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut bad = Vec::new();
    let mut checked = 0;
    for b in blocks(&readme) {
        if b.illustrative || !matches!(b.lang.as_str(), "" | "sh" | "console") {
            continue;
        }
        let at = format!("README.md:{}", b.line);
        // (lbctl line, lines it should print, whole output?)
        let mut expect: Vec<(String, Vec<String>, bool)> = Vec::new();
        for l in b.text.lines() {
            let t = l.trim();
            if b.lang == "console" {
                if let Some(cmd) = t.strip_prefix("$ ") {
                    let cmd = cmd.strip_prefix("sudo ").unwrap_or(cmd);
                    expect.push((cmd.to_string(), Vec::new(), true));
                } else if let Some(e) = expect.last_mut() {
                    e.1.push(t.to_string());
                }
                continue;
            }
            if let Some(c) = t.strip_prefix('#') {
                let c = c.trim();
                if is_printed(c) {
                    if let Some(e) = expect.last_mut() {
                        e.1.push(c.to_string());
                    }
                }
                continue;
            }
            let (cmd, comment) = split_comment(t);
            let cmd = cmd.strip_prefix("sudo ").unwrap_or(cmd);
            if !cmd.starts_with("lbctl ") {
                continue;
            }
            let mut printed = Vec::new();
            if let Some(c) = comment.filter(|c| is_printed(c)) {
                printed.push(c.to_string());
            }
            expect.push((variants(cmd)[0].clone(), printed, false));
        }
        for (cmd, lines, whole) in expect {
            if lines.is_empty() {
                continue;
            }
            checked += 1;
            // A fresh namespace per command: the plan of an empty backend.
            let ns = docs_ns("printed-by");
            let run = Lbctl::new(&ns);
            let mut args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
            if !args.contains(&"--dry-run") {
                args.insert(0, "--dry-run");
            }
            let out = run_in(&run, &args);
            let got: Vec<&str> = out.stdout.lines().map(str::trim).collect();
            let ok = if whole {
                got == lines.iter().map(String::as_str).collect::<Vec<_>>()
            } else {
                lines.iter().all(|l| got.contains(&l.as_str()))
            };
            if !ok {
                bad.push(format!(
                    "{at}: `{cmd}`: README shows\n  {}\nlbctl prints\n  {}",
                    lines.join("\n  "),
                    got.join("\n  ")
                ));
            }
        }
    }
    assert!(checked >= 4, "too few printed lines found ({checked})");
    assert!(
        bad.is_empty(),
        "README out of date with what lbctl prints:\n{}",
        bad.join("\n\n")
    );
}
