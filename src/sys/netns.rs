//! Named network namespaces: create, delete, list, run a command or a closure inside one.
//!
//! This is the one implementation shared by `lbctl lab` and the integration-test harness
//! (`tests/common`), so the lab and the tests build namespaces the same way.
//!
//! Why it looks like this:
//! - Namespaces are created and deleted with `ip netns add/del` (iproute2 is a stated dependency):
//!   it bind-mounts the namespace at `/run/netns/NAME` with the mount propagation `ip netns exec`
//!   and `lbctl --netns` expect. Creation is serialized within this process, because the first
//!   `ip netns add` on a host sets up the `/run/netns` mount and two racing threads can stack it.
//! - A fresh namespace gets `lo` up and a fixed sysctl baseline ([`BASELINE_SYSCTLS`]): a new
//!   namespace copies `conf/all` and `conf/default` from the root namespace, which differ between
//!   hosts, and nothing built on top may depend on that.
//! - [`run_in`] runs a closure on a new thread that has `setns`'d into the namespace: sockets,
//!   netlink handles and `/proc/sys/net` opened on that thread belong to the namespace, while the
//!   rest of the process stays where it is (netns membership is per thread).
//! - Nothing here ever changes the root namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::Context as _;

use crate::error::{Error, Result};
use crate::usage;

/// Where `ip netns` keeps its bind mounts.
pub const NETNS_DIR: &str = "/run/netns";

/// Sysctls every namespace made here starts with, as (`/proc/sys` path, value): no reverse-path
/// filtering, the kernel's default ARP behaviour, and no IPv6 duplicate address detection (so
/// addresses are usable at once instead of `tentative`).
pub const BASELINE_SYSCTLS: &[(&str, &str)] = &[
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
    ("net/ipv4/conf/lo/rp_filter", "0"),
    ("net/ipv4/conf/all/arp_ignore", "0"),
    ("net/ipv4/conf/default/arp_ignore", "0"),
    ("net/ipv4/conf/lo/arp_ignore", "0"),
    ("net/ipv4/conf/all/arp_announce", "0"),
    ("net/ipv4/conf/default/arp_announce", "0"),
    ("net/ipv4/conf/lo/arp_announce", "0"),
    ("net/ipv6/conf/all/accept_dad", "0"),
    ("net/ipv6/conf/default/accept_dad", "0"),
];

static ADD_LOCK: Mutex<()> = Mutex::new(());

/// Refuse names `ip netns` would mis-handle (path separators, dot names, blanks).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(usage!("invalid network namespace name '{name}'"))
    }
}

/// Resolve a tool through PATH plus the sbin directories (an unprivileged PATH may lack them).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Some(PathBuf::from(tool));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// The `ip` binary, or a runtime error that says how to get it.
pub fn ip_tool() -> Result<PathBuf> {
    find_tool("ip").ok_or_else(|| {
        Error::Runtime(anyhow::anyhow!(
            "`ip` (iproute2) is not installed: apt-get install iproute2"
        ))
    })
}

/// Run `ip ARGS…`, returning stdout; a failure carries `ip`'s own message.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new(ip_tool()?)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Runtime(anyhow::anyhow!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `ip -n NAME ARGS…` as an argument vector (for callers that run it their own way).
pub fn ip_argv(name: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["ip".to_string(), "-n".into(), name.into()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `ip netns exec NAME ARGV…` as an argument vector.
pub fn exec_argv(name: &str, argv: &[&str]) -> Vec<String> {
    let mut v = vec!["ip".to_string(), "netns".into(), "exec".into(), name.into()];
    v.extend(argv.iter().map(|s| s.to_string()));
    v
}

/// A [`Command`] running `argv` inside the namespace (through `ip netns exec`, which also gives
/// the command a matching /sys). Stdio is left to the caller.
pub fn command(name: &str, argv: &[&str]) -> Result<Command> {
    validate_name(name)?;
    let mut cmd = Command::new(ip_tool()?);
    cmd.args(["netns", "exec", name]).args(argv);
    Ok(cmd)
}

/// `ip -n NAME ARGS…`, returning stdout.
pub fn ip_in(name: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["-n", name];
    full.extend_from_slice(args);
    ip(&full)
}

/// The bind mount of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Does a namespace of this name exist?
pub fn exists(name: &str) -> bool {
    validate_name(name).is_ok() && inode(name).is_some()
}

/// The namespace's inode (identifies it while it exists; a recreated namespace gets a new one).
/// `None` when there is no such namespace (a leftover plain file is not one).
pub fn inode(name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path(name)).ok()?;
    // An unmounted leftover file lives on /run's filesystem; a namespace lives on nsfs.
    let parent = std::fs::metadata(NETNS_DIR).ok()?;
    (m.dev() != parent.dev()).then_some(m.ino())
}

/// Every named namespace, sorted.
pub fn list() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| exists(n))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Create the namespace, bring `lo` up and apply [`BASELINE_SYSCTLS`]. Fails when it exists.
/// If a later step fails the namespace is deleted again.
pub fn add(name: &str) -> Result<()> {
    validate_name(name)?;
    {
        let _guard = ADD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        ip(&["netns", "add", name])?;
    }
    let setup = ip_in(name, &["link", "set", "lo", "up"]).and_then(|_| {
        run_in(name, || {
            for (key, value) in BASELINE_SYSCTLS {
                let file = format!("/proc/sys/{key}");
                std::fs::write(&file, value).with_context(|| format!("writing {file}"))?;
            }
            Ok::<_, anyhow::Error>(())
        })?
        .map_err(Error::from)
    });
    if let Err(e) = setup {
        let _ = del(name);
        return Err(e);
    }
    Ok(())
}

/// Delete the namespace. Deleting also removes everything in it (links, addresses, routes, nft
/// tables, sysctls); a process still inside keeps the namespace itself alive, unnamed. A missing
/// namespace is not an error.
pub fn del(name: &str) -> Result<()> {
    validate_name(name)?;
    if !path(name).exists() {
        return Ok(());
    }
    ip(&["netns", "del", name]).map(|_| ())
}

/// PIDs of processes whose network namespace is this one (read from /proc; needs root to see
/// other users' processes).
pub fn pids(name: &str) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path(name)) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::metadata(format!("/proc/{pid}/ns/net"))
                        .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Run `f` on a new thread that has entered the namespace, and return its result. The calling
/// thread is not moved. A panic in `f` becomes an error.
pub fn run_in<T, F>(name: &str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    validate_name(name)?;
    let file = File::open(path(name)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => usage!("no network namespace named '{name}'"),
        std::io::ErrorKind::PermissionDenied => Error::Privilege(format!(
            "cannot open {}: permission denied",
            path(name).display()
        )),
        _ => Error::Runtime(anyhow::Error::new(e).context(format!("opening netns {name}"))),
    })?;
    let label = name.to_string();
    let handle = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            // SAFETY: setns on a valid, open namespace descriptor; it only changes this thread's
            // network namespace, and this thread is ours and ends with `f`.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            drop(file);
            Ok(f())
        })
        .context("spawning a namespace thread")?;
    match handle.join() {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) if e.raw_os_error() == Some(libc::EPERM) => Err(Error::Privilege(format!(
            "entering network namespace '{label}' needs CAP_SYS_ADMIN: run as root"
        ))),
        Ok(Err(e)) => Err(Error::Runtime(
            anyhow::Error::new(e).context(format!("setns into '{label}'")),
        )),
        Err(_) => Err(Error::Runtime(anyhow::anyhow!(
            "a task inside network namespace '{label}' panicked"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["lbl-lab-sw", "lbt-1-2-x", "a.b_c"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn argv_shapes() {
        assert_eq!(
            exec_argv("n1", &["nft", "list", "ruleset"]),
            ["ip", "netns", "exec", "n1", "nft", "list", "ruleset"]
        );
        assert_eq!(ip_argv("n1", &["addr"]), ["ip", "-n", "n1", "addr"]);
    }

    #[test]
    fn missing_namespace_is_not_there() {
        assert!(!exists("lbl-does-not-exist-xyz"));
        assert!(inode("lbl-does-not-exist-xyz").is_none());
        assert!(pids("lbl-does-not-exist-xyz").is_empty());
        assert!(del("lbl-does-not-exist-xyz").is_ok());
    }
}
