//! The only code with side effects: netlink (rtnetlink, nf_tables), nftables (`nft`), /proc/sys,
//! network namespaces, packet sockets, file locks, signals and processes; the only code that
//! names `libc` or needs `unsafe`. Everything above this layer is pure and works on the types in
//! `model`.

pub mod abi;
pub mod arptable;
pub mod bird;
pub mod capture;
pub mod hook;
pub mod iptables;
pub mod keepalived;
pub mod lock;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod nfnl;
pub mod nft;
pub mod nlsock;
pub mod packet;
pub mod probe;
pub mod proc;
pub mod process;
pub mod procnet;
pub mod rawpkt;
pub mod signals;
pub mod sysctl;
pub mod tls;
pub mod tun;
pub mod unixsock;
pub mod whohas;

use std::fs::File;
use std::os::fd::AsRawFd;

use anyhow::Context as _;

use crate::error::{Error, Result};
use crate::usage;

/// Capability number of CAP_NET_ADMIN (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;

/// One malloc arena for the whole process (glibc): lbctl is a short-lived command whose few
/// helper threads (a journal read, a dump, a profile piece) each allocate once, and per-thread
/// arenas would keep those pages resident — 2.5 MiB more peak RSS for a 10,000-VIP apply,
/// measured. The profile-parsing threads then take turns at the one arena's lock; a
/// 10,000-VIP re-apply took the same time with one parsing thread or two (65–67 vs 63–75 ms,
/// ten runs each), so nothing is lost.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Does this process hold CAP_NET_ADMIN (in its user namespace)?
pub fn has_cap_net_admin() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// Refuse early, before any change, when CAP_NET_ADMIN is missing.
pub fn require_net_admin(what: &str) -> Result<()> {
    if has_cap_net_admin() {
        Ok(())
    } else {
        Err(Error::Privilege(format!(
            "{what} needs CAP_NET_ADMIN: run as root (e.g. with sudo); nothing was changed"
        )))
    }
}

/// Move this (single-threaded) process into the named network namespace, as `ip netns exec`
/// does. Must run before any netlink socket or thread is created: /proc/sys/net and netlink
/// sockets follow the namespace of the calling thread at the time they are opened.
pub fn enter_netns(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(usage!("invalid network namespace name '{name}'"));
    }
    let path = format!("/run/netns/{name}");
    let file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => usage!("no network namespace named '{name}' ({path})"),
        std::io::ErrorKind::PermissionDenied => {
            Error::Privilege(format!("cannot open {path}: permission denied"))
        }
        _ => Error::Runtime(anyhow::Error::new(e).context(format!("opening {path}"))),
    })?;
    // SAFETY: setns on a valid, open namespace file descriptor; no memory is shared.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EPERM) {
            return Err(Error::Privilege(format!(
                "entering network namespace '{name}' needs CAP_SYS_ADMIN: run as root"
            )));
        }
        return Err(Error::Runtime(
            anyhow::Error::new(e).context(format!("setns into '{name}'")),
        ));
    }
    Ok(())
}

/// Inode number of the current network namespace (identifies it while it exists).
pub fn netns_inode(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// A handle to the kernel: a single-threaded tokio runtime driving an rtnetlink connection.
pub struct Sys {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// A synchronous rtnetlink socket for what is large at 10,000 VIPs: the address dump
    /// ([`Sys::addresses`], read a datagram at a time) and address changes
    /// ([`Sys::addr_batch`], many requests per datagram).
    nl: std::cell::RefCell<nlsock::NlSocket>,
    /// Interface name → index, refreshed on a miss (a 10,000-VIP apply must not dump links
    /// 10,000 times).
    link_cache: std::cell::RefCell<std::collections::BTreeMap<String, u32>>,
    /// Index → name from one link dump, while [`Sys::pin_links`] says so.
    pinned_links: std::cell::RefCell<Option<std::rc::Rc<std::collections::BTreeMap<u32, String>>>>,
}

impl Sys {
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("starting the netlink runtime")?;
        let handle = rt.block_on(async {
            let (conn, handle, _) =
                rtnetlink::new_connection().context("opening a netlink socket")?;
            tokio::spawn(conn);
            Ok::<_, anyhow::Error>(handle)
        })?;
        // Opened beside the rtnetlink connection, so both are in the same network namespace.
        let nl = nlsock::NlSocket::open(netlink_sys::protocols::NETLINK_ROUTE)
            .context("opening a netlink socket")?;
        Ok(Sys {
            rt,
            handle,
            nl: std::cell::RefCell::new(nl),
            link_cache: Default::default(),
            pinned_links: Default::default(),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// systemd-networkd deletes routing policy rules it did not create unless
/// `ManageForeignRoutingPolicyRules=no` (networkd.conf(5); the default is yes). Returns a warning
/// when networkd is running with that setting. The configuration is read first (a few small
/// files): when it says no, whether networkd runs does not matter and /proc is not scanned.
pub fn networkd_foreign_rules_warning() -> Option<String> {
    if !networkd_manages_foreign_rules() || !networkd_running() {
        return None;
    }
    Some(
        "systemd-networkd is running with ManageForeignRoutingPolicyRules=yes (the default): it \
         deletes `ip rule`s it did not create, including lbctl's, whenever it reconfigures. Set \
         ManageForeignRoutingPolicyRules=no in /etc/systemd/networkd.conf, or declare the rule as \
         [RoutingPolicyRule] in a .network file"
            .to_string(),
    )
}

/// `ManageForeignRoutingPolicyRules=` as networkd.conf and its drop-ins set it (last wins).
fn networkd_manages_foreign_rules() -> bool {
    let mut files = vec![std::path::PathBuf::from("/etc/systemd/networkd.conf")];
    for dir in [
        "/usr/lib/systemd/networkd.conf.d",
        "/run/systemd/networkd.conf.d",
        "/etc/systemd/networkd.conf.d",
    ] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut v: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            v.sort();
            files.extend(v);
        }
    }
    let mut manage = true;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("ManageForeignRoutingPolicyRules=") {
                manage = !matches!(v.trim(), "no" | "false" | "0" | "off");
            }
        }
    }
    manage
}

/// Whether a process named systemd-networkd runs (the kernel truncates its name to 15 bytes).
fn networkd_running() -> bool {
    proc::running_named("systemd-network")
}
