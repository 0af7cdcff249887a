//! `lbctl gen completions SHELL` and `lbctl gen man DIR`: generated from the clap definition,
//! so completions/ and man/ never drift from the real command line (CI diffs them).
//!
//! Man pages: one per command (`lbctl-vip-add.1`), with the synopsis as typed (`lbctl vip add`),
//! the global options on every page, and EXIT STATUS, EXAMPLES and SEE ALSO sections.
//! Completions: clap_complete's static scripts, plus small shell functions that offer network
//! namespaces for `--netns`, interfaces for `--dev`/`--iface`/`-i` and `*.toml` files for the
//! profile options (`-f`, `--file`, `lb run -c`, `lab up --profile`).

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, GenCmd};
use crate::error::Result;
use crate::{Ctx, Outcome};

pub fn run(_ctx: &Ctx, cmd: GenCmd) -> Result<Outcome> {
    match cmd {
        GenCmd::Completions { shell } => {
            let script = completions(shell)?;
            std::io::stdout()
                .write_all(script.as_bytes())
                .context("writing completions")?;
        }
        GenCmd::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut root = Cli::command().version(env!("CARGO_PKG_VERSION"));
            // Built once from the top: subcommands then carry their full bin name
            // (`lbctl vip add`) and the global options.
            root.build();
            write_man(&root, "lbctl", None, &dir)?;
        }
    }
    Ok(Outcome::Clean)
}

// =============================================================================================
// completions
// =============================================================================================

/// The completion script for `shell`: clap_complete's, with dynamic values for bash, zsh, fish.
pub fn completions(shell: Shell) -> Result<String> {
    let mut c = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut c, "lbctl", &mut buf);
    let script = String::from_utf8(buf).context("completion script is not UTF-8")?;
    Ok(match shell {
        Shell::Bash => bash(&script),
        Shell::Zsh => zsh(&script),
        Shell::Fish => fish(&script),
        _ => script,
    })
}

/// bash: a wrapper that completes the dynamic values itself and leaves the rest to `_lbctl`.
fn bash(script: &str) -> String {
    let mut s = script.replace("complete -F _lbctl -o", "complete -F _lbctl_dynamic -o");
    s.push_str(BASH_DYNAMIC);
    s
}

const BASH_DYNAMIC: &str = r#"
# Added by `lbctl gen completions bash`: values clap cannot know. Namespaces for --netns,
# interfaces for --dev/--iface/-i, *.toml files (and directories) for -f/--file, lb run's
# -c/--config and lab up's --profile; everything else goes to _lbctl above.
_lbctl_dynamic() {
    local cur=${COMP_WORDS[COMP_CWORD]} opt=
    (( COMP_CWORD > 0 )) && opt=${COMP_WORDS[COMP_CWORD-1]}
    if [[ $cur == "=" ]]; then
        cur=
    elif [[ $opt == "=" ]] && (( COMP_CWORD > 1 )); then
        opt=${COMP_WORDS[COMP_CWORD-2]}
    fi
    case $opt in
        --netns)
            COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | cut -d' ' -f1)" -- "$cur"))
            return 0
            ;;
        --dev|--iface|-i)
            COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
            return 0
            ;;
        -c)
            # capture -c N is a count; only lb run's -c is a file
            if [[ " ${COMP_WORDS[*]} " != *" capture "* ]]; then
                _lbctl_profiles
                return 0
            fi
            ;;
        -f|--file|--config|--profile)
            _lbctl_profiles
            return 0
            ;;
    esac
    _lbctl "$@"
}

_lbctl_profiles() {
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -- "$cur"))
}
"#;

/// zsh: the value actions of the dynamic options point at helper functions.
fn zsh(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + 1024);
    for line in script.split_inclusive('\n') {
        let line = if line.contains("--netns=[") {
            line.replace(":NAME:_default'", ":NAME:_lbctl_netns'")
        } else {
            line.replace(":DEV:_default'", ":DEV:_lbctl_ifaces'")
                .replace(":IF:_default'", ":IF:_lbctl_ifaces'")
                .replace(":PROFILE:_files'", ":PROFILE:_lbctl_profiles'")
                .replace(":LB.toml:_files'", ":LB.toml:_lbctl_profiles'")
        };
        if line.starts_with("if [ \"$funcstack[1]\" = \"_lbctl\" ]") {
            out.push_str(ZSH_DYNAMIC);
        }
        out.push_str(&line);
    }
    out
}

const ZSH_DYNAMIC: &str = r#"# Added by `lbctl gen completions zsh`: values clap cannot know.
(( $+functions[_lbctl_netns] )) ||
_lbctl_netns() {
    local -a names
    names=(${${(f)"$(ip netns list 2>/dev/null)"}%% *})
    _describe -t netns 'network namespace' names
}
(( $+functions[_lbctl_ifaces] )) ||
_lbctl_ifaces() {
    local -a names
    names=(/sys/class/net/*(N:t))
    _describe -t interfaces 'network interface' names
}
(( $+functions[_lbctl_profiles] )) ||
_lbctl_profiles() {
    _files -g '*.toml(-.)'
}

"#;

/// fish: `-a (function)` for the dynamic options, and only *.toml files for profiles.
fn fish(script: &str) -> String {
    let mut out = String::from(FISH_DYNAMIC);
    for line in script.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let has = |opt: &str| body.contains(&format!(" -l {opt} "));
        let body = if !body.starts_with("complete -c lbctl ") {
            body.to_string()
        } else if has("netns") {
            format!("{body} -f -a '(__lbctl_netns)'")
        } else if has("dev") || has("iface") {
            format!("{body} -f -a '(__fish_print_interfaces)'")
        } else if (has("file") || has("config") || has("profile")) && body.ends_with(" -r -F") {
            format!(
                "{} -f -a '(__lbctl_profiles)'",
                body.trim_end_matches(" -F")
            )
        } else {
            body.to_string()
        };
        out.push_str(&body);
        out.push_str(nl);
    }
    out
}

const FISH_DYNAMIC: &str = r#"# Added by `lbctl gen completions fish`: network namespaces for --netns (also right
# after `lbctl`, where clap's condition does not see a command yet), and *.toml files (and
# directories) for the profile options.
function __lbctl_netns
    ip netns list 2>/dev/null | string replace -r ' .*' ''
end
function __lbctl_profiles
    set -l tok (commandline -ct)
    for f in $tok*.toml $tok*/
        echo $f
    end
end
complete -c lbctl -l netns -r -f -a '(__lbctl_netns)'

"#;

// =============================================================================================
// man pages
// =============================================================================================

/// One page per command and subcommand: lbctl.1, lbctl-vip.1, lbctl-vip-add.1, …
/// `cmd` must be built (see [`run`]).
fn write_man(cmd: &clap::Command, page: &str, parent: Option<&str>, dir: &Path) -> Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(page.to_string())
        .date("")
        .source(format!("lbctl {}", env!("CARGO_PKG_VERSION")))
        .manual("lbctl manual");
    let mut out = Vec::new();
    let mut part = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> Result<()> {
        let mut buf = Vec::new();
        f(&mut buf).context("rendering man page")?;
        // Every chunk starts with roff's apostrophe preamble; keep only the first one.
        let text = String::from_utf8_lossy(&buf).into_owned();
        let text = if out.is_empty() {
            text
        } else {
            text.lines()
                .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
                .map(|l| format!("{l}\n"))
                .collect()
        };
        out.extend_from_slice(text.as_bytes());
        Ok(())
    };
    part(&|w| man.render_title(w))?;
    part(&|w| man.render_name_section(w))?;
    part(&|w| man.render_synopsis_section(w))?;
    part(&|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        part(&|w| man.render_options_section(w))?;
    }
    let subs: Vec<&clap::Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
        .collect();
    if !subs.is_empty() {
        part(&|w| man.render_subcommands_section(w))?;
    }
    // The top page's after_help is the exit-code summary, which EXIT STATUS replaces.
    if parent.is_some() && (cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some()) {
        part(&|w| {
            let mut b = Vec::new();
            man.render_extra_section(&mut b)?;
            let s = String::from_utf8_lossy(&b).replace(".SH EXTRA", ".SH NOTES");
            w.write_all(s.as_bytes())
        })?;
    }
    out.extend_from_slice(exit_status(page).as_bytes());
    out.extend_from_slice(examples_section(cmd, page).as_bytes());
    out.extend_from_slice(see_also(page, parent, &subs).as_bytes());

    let path = dir.join(format!("{page}.1"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    for sub in subs {
        write_man(sub, &format!("{page}-{}", sub.get_name()), Some(page), dir)?;
    }
    Ok(())
}

/// Escape text for roff: backslashes, hyphens (so they are not hyphenation points), and a
/// leading `.` or `'`.
fn roff(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

fn exit_status(page: &str) -> String {
    let special = match page {
        "lbctl-lab-exec" => {
            Some("The exit status of the command run in the node is passed through.")
        }
        "lbctl-lab-demo" | "lbctl-lab-up" | "lbctl-lab-down" => {
            Some("130 when interrupted (Ctrl\\-C): what was built has been removed again.")
        }
        "lbctl-lb-status" => {
            Some("1 when some backend is not up (or a reload failed), 2 when no daemon runs.")
        }
        "lbctl-doctor" => Some("1 when a check failed, 2 when doctor could not run."),
        _ => None,
    };
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    for (code, what) in [
        ("0", "Success: nothing pending, no findings."),
        (
            "1",
            "Findings, drift or pending changes (plan, status, doctor, arp status, rpfilter check, \
             vip list/route list with missing objects).",
        ),
        (
            "2",
            "Usage error (nothing was changed) or runtime error (what was applied was rolled back).",
        ),
        ("77", "Missing privilege (CAP_NET_ADMIN); nothing was changed."),
    ] {
        s.push_str(&format!(".TP\n{code}\n{}\n", roff(what)));
    }
    if let Some(note) = special {
        // `note` is already roff text.
        s.push_str(&format!(".PP\n{note}\n"));
    }
    s
}

fn examples_section(cmd: &clap::Command, page: &str) -> String {
    let mut list: Vec<(&str, &str)> = examples(page).to_vec();
    if list.is_empty() {
        // A command group: the first example of each of its subcommands.
        for sub in cmd.get_subcommands() {
            if let Some(first) = examples(&format!("{page}-{}", sub.get_name())).first() {
                list.push(*first);
            }
        }
    }
    if list.is_empty() {
        return String::new();
    }
    let mut s = String::from(".SH EXAMPLES\n");
    for (cmdline, what) in list {
        s.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(cmdline), roff(what)));
    }
    s
}

fn see_also(page: &str, parent: Option<&str>, subs: &[&clap::Command]) -> String {
    let mut refs: Vec<String> = Vec::new();
    if parent.is_some() {
        refs.push("lbctl(1)".into());
    }
    if let Some(p) = parent.filter(|p| *p != "lbctl") {
        refs.push(format!("{p}(1)"));
    }
    for sub in subs {
        refs.push(format!("{page}-{}(1)", sub.get_name()));
    }
    let tools: &[&str] = match page {
        "lbctl" => &[
            "ip(8)",
            "nft(8)",
            "ipvsadm(8)",
            "tcpdump(8)",
            "systemd.exec(5)",
            "interfaces(5)",
        ],
        p if p.starts_with("lbctl-lb") => &["ipvsadm(8)", "nft(8)"],
        p if p.starts_with("lbctl-arp") => &["nft(8)", "arping(8)"],
        "lbctl-capture" => &["tcpdump(8)"],
        p if p.starts_with("lbctl-vip") || p.starts_with("lbctl-route") => &["ip(8)"],
        _ => &[],
    };
    refs.extend(tools.iter().map(|t| t.to_string()));
    if refs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = refs
        .iter()
        .map(|r| match r.split_once('(') {
            Some((name, sec)) => format!("\\fB{}\\fR({sec}", roff(name)),
            None => roff(r),
        })
        .collect();
    format!(".SH \"SEE ALSO\"\n{}\n", body.join(", "))
}

/// Examples per page: (command line, what it does). Command groups without their own list show
/// the first example of each subcommand.
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "lbctl" => &[
            ("sudo lbctl lab demo", "A whole DSR network in throwaway namespaces, traffic through the VIP, and everything removed again."),
            ("sudo lbctl --dry-run arp suppress 198.18.0.100 --real-ip 198.18.0.11", "Print the nft commands that would stop this backend answering ARP for the VIP; change nothing."),
            ("sudo lbctl apply -f /etc/lbctl/web.toml", "Converge this backend to a profile (examples in /usr/share/doc/lbctl/examples)."),
            ("sudo lbctl doctor --vip 198.18.0.100:80 --client 192.0.2.7", "Check this backend's DSR set-up and say what to fix."),
            ("sudo lbctl --netns blue vip list", "The same commands inside a network namespace."),
        ],
        "lbctl-vip-add" => &[
            ("lbctl vip add 198.18.0.100", "ip addr add 198.18.0.100/32 dev lo, marked proto 76 (unchanged if lbctl already added it)."),
            ("lbctl vip add 2001:db8::100", "An IPv6 VIP: /128, nodad."),
            ("lbctl vip add 198.18.0.100 --dev eth1", "On another device."),
        ],
        "lbctl-vip-del" => &[
            ("lbctl vip del 198.18.0.100", "Remove a VIP lbctl added."),
            ("lbctl vip del 198.18.0.100 --force", "Remove one lbctl did not add."),
        ],
        "lbctl-vip-list" => &[("lbctl vip list --json", "Host addresses on lo and every lbctl VIP, as JSON.")],
        "lbctl-arp-suppress" => &[
            ("lbctl arp suppress 198.18.0.100 --real-ip 198.18.0.11", "nft mode: drop ARP requests for the VIP, use the real IP as ARP sender."),
            ("lbctl arp suppress 198.18.0.100 --iface eth0 --mode sysctl", "arp_ignore=1 and arp_announce=2 on eth0 instead."),
        ],
        "lbctl-arp-restore" => &[("lbctl arp restore 198.18.0.100", "Undo the suppression, restoring exactly the prior state.")],
        "lbctl-arp-status" => &[("lbctl arp status --iface eth0", "The suppression lbctl manages and the effective ARP sysctls of eth0.")],
        "lbctl-arp-who-has" => &[
            ("sudo lbctl arp who-has 198.18.0.100", "Every MAC on the segment answering ARP for the VIP (exit 1 unless exactly one host claims it)."),
            ("sudo lbctl --json arp who-has 2001:db8::100 --iface eth0 --timeout 300", "A neighbour solicitation instead, listening 300 ms."),
        ],
        "lbctl-route-add" => &[("lbctl route add 198.18.0.100 --table 100 --via 198.18.0.1 --dev eth0", "Replies from the VIP leave by 198.18.0.1 on eth0 (ip rule + table 100).")],
        "lbctl-route-del" => &[("lbctl route del 198.18.0.100 --table 100", "Remove that policy routing.")],
        "lbctl-route-list" => &[("lbctl route list --json", "The rules and routes lbctl manages.")],
        "lbctl-rpfilter-check" => &[("lbctl rpfilter check --vip 198.18.0.100 --client 192.0.2.7", "Would rp_filter accept a request from this client to the VIP?")],
        "lbctl-rpfilter-fix" => &[("lbctl rpfilter fix --vip 198.18.0.100 --client 192.0.2.7", "Loose mode where strict mode would drop it (prior values recorded).")],
        "lbctl-rpfilter-restore" => &[("lbctl rpfilter restore", "Put back the values fix changed.")],
        "lbctl-plan" => &[("lbctl plan -f /etc/lbctl/web.toml", "The changes apply would make, as ip/nft/sysctl lines (exit 1 if any).")],
        "lbctl-apply" => &[
            ("lbctl apply -f /etc/lbctl/web.toml", "Converge this host to the profile; a failure rolls back."),
            ("systemctl enable --now lbctl@web.service", "The same at every boot (lbctl@.service)."),
        ],
        "lbctl-status" => &[("lbctl status -f /etc/lbctl/web.toml", "What the profile manages and any drift (exit 1 on drift).")],
        "lbctl-down" => &[
            ("lbctl down -f /etc/lbctl/web.toml", "Remove exactly what this profile added."),
            ("lbctl down --owner lb:web", "Remove what the balancer web (lb run or lb apply) recorded: its IPVS services, nft table and VIPs."),
            ("lbctl down --all", "Remove everything lbctl added in this namespace, balancers included."),
        ],
        "lbctl-adopt" => &[
            ("lbctl adopt", "After /run/lbctl was lost or damaged: record again what carries lbctl's marks (owner `adopted`)."),
            ("lbctl down --owner adopted", "Then remove it."),
        ],
        "lbctl-watch" => &[
            ("lbctl watch -f /etc/lbctl/web.toml", "Apply the profile, then re-apply any drift (a flushed ruleset, a deleted VIP) within a second."),
            ("lbctl watch --json", "Keep everything the journal owns converged; one JSON line per repair."),
        ],
        "lbctl-firewall-check" => &[
            ("lbctl firewall check --vip 198.18.0.100:80 --client 192.0.2.7", "Would nftables (iptables-nft included) accept the client's SYN and the SYN-ACK from the VIP? Names the rule that drops."),
        ],
        "lbctl-doctor" => &[
            ("lbctl doctor --vip 198.18.0.100:80 --client 192.0.2.7 --balancer 198.18.0.2", "Every DSR check for this backend, with the evidence and the fix."),
            ("lbctl doctor -f /etc/lbctl/web.toml --capture 5", "VIPs from a profile, plus 5 seconds of captured traffic judged."),
            ("lbctl doctor --role lb --vip 198.18.0.100:80", "Check a balancer."),
            ("lbctl doctor --role lb", "Check the VIPs of this host's lbctl lb run daemons: who else answers ARP for them, and the nft engine."),
        ],
        "lbctl-capture" => &[
            ("lbctl capture -i eth0 --vip 198.18.0.100 -c 20", "20 packets to or from the VIP, as tcpdump -e -n prints them."),
            ("lbctl capture -i any --seconds 10 -w dsr.pcap", "Write 10 seconds of traffic to a pcap file (Linux cooked v2, with directions)."),
            ("lbctl capture -i any -w dsr.pcapng tcp port 80 and not host 198.18.0.2", "A filter expression; pcapng for a .pcapng file."),
            ("lbctl capture -r dsr.pcap", "Read it back."),
        ],
        "lbctl-lb-service-add" => &[("lbctl lb service add 198.18.0.100:80 --scheduler mh --mh-port", "An IPVS service (ipvsadm -A).")],
        "lbctl-lb-service-edit" => &[("lbctl lb service edit 198.18.0.100:80 --scheduler wlc", "Change its scheduler (ipvsadm -E).")],
        "lbctl-lb-service-del" => &[("lbctl lb service del 198.18.0.100:80", "Delete it (ipvsadm -D).")],
        "lbctl-lb-backend-add" => &[("lbctl lb backend add 198.18.0.100:80 198.18.0.11", "A real server in direct routing mode, weight 1.")],
        "lbctl-lb-backend-edit" => &[("lbctl lb backend edit 198.18.0.100:80 198.18.0.11 --weight 3", "Change its weight.")],
        "lbctl-lb-backend-del" => &[("lbctl lb backend del 198.18.0.100:80 198.18.0.11", "Remove it.")],
        "lbctl-lb-drain" => &[("lbctl lb drain 198.18.0.100:80 198.18.0.11", "No new connections to this real server; established ones continue (through a running lb run's control socket when one balances the service)."), ("lbctl lb drain --balancer web --timeout 120 --wait-exit", "Take the whole balancer web out: withdraw its announcements, wait until no flow is pinned (at most 120 s), then remove its data path and VIPs; report the flows left.")],
        "lbctl-lb-undrain" => &[("lbctl lb undrain 198.18.0.100:80 198.18.0.11", "New connections to it again (drops the lb drain override).")],
        "lbctl-lb-weight" => &[
            ("lbctl lb weight 198.18.0.100:80 198.18.0.12 3", "Run this backend at weight 3 until --reset (the LB file is unchanged)."),
            ("lbctl lb weight 198.18.0.100:80 198.18.0.12 --reset", "Back to the file's weight."),
        ],
        "lbctl-lb-disable" => &[("lbctl lb disable 198.18.0.100:80", "No new flows to any backend of the service; established flows continue.")],
        "lbctl-lb-enable" => &[("lbctl lb enable 198.18.0.100:80", "Undo lb disable.")],
        "lbctl-lb-balance" => &[("lbctl lb balance 198.18.0.100:80 --window 30", "Shares of new flows, pinned flows and bytes against the weights over 30 s, the skew, and what explains it.")],
        "lbctl-lb-list" => &[("lbctl lb list --stats", "Services and real servers like ipvsadm -Ln --stats.")],
        "lbctl-lb-save" => &[("lbctl lb save > rules", "The IPVS table as ipvsadm -S -n rules.")],
        "lbctl-lb-restore" => &[("lbctl lb restore --flush rules", "Make the table exactly the file's; a failure restores the old table.")],
        "lbctl-lb-apply" => &[("lbctl lb apply -f /etc/lbctl/lb.toml", "Converge IPVS to an LB file.")],
        "lbctl-lb-run" => &[
            ("lbctl --dry-run lb run -c /etc/lbctl/lb/web.toml", "The data path, VIPs and checks the daemon would set up."),
            ("systemctl enable --now lbctl-lb@web.service", "Run it under systemd (lbctl-lb@.service); reload sends SIGHUP."),
        ],
        "lbctl-lb-status" => &[("lbctl lb status web --json", "Backends, state, last check and weight of the daemon named web.")],
        "lbctl-lb-export" => &[("lbctl lb export bird -c /etc/lbctl/lb/web.toml", "The BIRD 2 configuration lb run generates for the file's [bgp] section."), ("lbctl lb export keepalived -c /etc/lbctl/lb/web.toml -o keepalived.conf", "The LB file as a keepalived.conf (vrrp_instance, virtual_server blocks); check it with keepalived -t -e -f keepalived.conf."), ("lbctl lb export keepalived -c lb1.toml --peer-config lb2.toml -o keepalived.conf", "The same, after checking the pair: one virtual_router_id, a different priority on each balancer.")],
        "lbctl-lb-import" => &[("lbctl lb import keepalived /etc/keepalived/keepalived.conf -o web.toml", "The virtual_server blocks of a keepalived.conf as an LB file (what has no equivalent is listed in a comment).")],
        "lbctl-lb-maglev" => &[("lbctl lb maglev --backends a,b,c=2 --size 65537", "Balance and disruption of a Maglev table of that size.")],
        "lbctl-lab-demo" => &[("sudo lbctl lab demo", "Build a lab, send 30 requests through the VIP, show where they went, remove it.")],
        "lbctl-crossover-plan" => &[
            ("lbctl crossover plan --servers 3 --range 198.18.1.0/24 --public 198.18.100.0/24", "The address table for 3 servers, the load after any 1 or 2 failures, the router's multipath lines and BIRD config, and s1's agent config."),
            ("lbctl crossover plan --servers 5 --tiers 3 --range 198.18.1.0/24 --write /etc/lbctl/crossover", "Three tiers (double failures spread evenly too); write s1.toml … s5.toml, router.sh and bird.conf."),
            ("lbctl --json crossover plan --servers 4 --range 198.18.1.0/24", "The table as JSON: {\"servers\": [{\"name\", \"primary\", \"secondary\", \"tertiary\"}], …}."),
        ],
        "lbctl-crossover-run" => &[
            ("sudo lbctl crossover run -c /etc/lbctl/crossover/s2.toml", "Run server 2's agent: hold its primaries, take over a silent peer's addresses, release them when it returns."),
        ],
        "lbctl-crossover-status" => &[
            ("lbctl crossover status", "Which addresses this server's agent holds, what it last heard from its peers, checked against the kernel."),
            ("sudo lbctl down --owner crossover:s2", "Remove the addresses an agent killed with SIGKILL left behind."),
        ],
        "lbctl-lab-up" => &[
            ("sudo lbctl lab up --backends 3 --ipv6", "Keep a lab with three backends around to explore."),
            ("sudo lbctl lab up --balancers 3 --routing bgp", "Three balancers announcing the VIP by BGP to a router (BIRD 2, ECMP)."),
            ("sudo lbctl lab up --balancers 2 --routing vrrp", "Two balancers sharing the VIP by VRRP (lb run with [ha]: keepalived)."),
            ("sudo lbctl lab up --topology crossover --servers 4", "No balancer: a router spreads 198.18.100.0/24 over four servers running lbctl crossover run."),
        ],
        "lbctl-lab-traffic" => &[
            ("sudo lbctl lab traffic --requests 100", "Requests via the VIP: spread, and which way replies went."),
            ("sudo lbctl lab traffic --long 20", "20 slow downloads, open at once: how many arrive byte-intact across a `lab break`."),
        ],
        "lbctl-lab-exec" => &[("sudo lbctl lab exec client -- ip neigh", "Run a command in the client's namespace.")],
        "lbctl-lab-status" => &[("lbctl lab status --json", "Labs, nodes, addresses and processes.")],
        "lbctl-lab-break" => &[
            ("sudo lbctl lab break be1 arp-flux", "Inject a fault, then let lbctl doctor find it."),
            ("sudo lbctl lab break lb1 down", "In a routed lab: SIGKILL balancer lb1 and wait until the router drops it."),
            ("sudo lbctl lab break lb1 isolate", "In a VRRP lab: set lb1's switch port down and wait until lb2 is MASTER."),
            ("sudo lbctl lab break s2 service-dead", "In a crossover lab: stop s2's HTTP server; its agent releases its addresses to the others."),
        ],
        "lbctl-lab-down" => &[("sudo lbctl lab down --all", "Remove every recorded lab.")],
        "lbctl-lab-serve" => &[("lbctl lab serve --name be1 --port 8080", "The built-in HTTP server (lab up starts it in each backend).")],
        "lbctl-gen-completions" => &[("lbctl gen completions bash > /etc/bash_completion.d/lbctl", "Install bash completions by hand.")],
        "lbctl-gen-man" => &[("lbctl gen man /usr/local/share/man/man1", "Write every man page.")],
        _ => &[],
    }
}
