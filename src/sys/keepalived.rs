//! keepalived as a child of `lb run`: validate a config (`keepalived -t`), start it tied to
//! this process (`PR_SET_PDEATHSIG`), read its notify FIFO, stop it.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// Where one keepalived keeps its files (all under `lb run`'s run dir).
#[derive(Debug, Clone)]
pub struct Files {
    pub conf: PathBuf,
    pub pid: PathBuf,
    pub vrrp_pid: PathBuf,
    pub checkers_pid: PathBuf,
    pub bfd_pid: PathBuf,
    pub fifo: PathBuf,
    pub track: PathBuf,
    pub log: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            conf: dir.join("keepalived.conf"),
            pid: dir.join("keepalived.pid"),
            vrrp_pid: dir.join("vrrp.pid"),
            checkers_pid: dir.join("checkers.pid"),
            bfd_pid: dir.join("bfd.pid"),
            fifo: dir.join("notify.fifo"),
            track: dir.join("quorum.track"),
            log: dir.join("keepalived.log"),
        }
    }
}

/// `keepalived -t -e -f CONF`: Err(keepalived's messages) when it rejects the file. Runs in the
/// current namespace, where keepalived checks that the interface exists.
pub fn config_test(bin: &Path, conf: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .args(["-t", "-e", "-f"])
        .arg(conf)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} -t: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if msg.is_empty() {
        msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    Err(format!(
        "keepalived -t -f {} rejected it ({}): {msg}",
        conf.display(),
        out.status
    ))
}

/// A FIFO at `path` (an existing FIFO is kept; any other file there is an error).
pub fn make_fifo(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => std::fs::remove_file(path)?,
        Err(_) => {}
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("NUL in path"))?;
    // SAFETY: mkfifo reads a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Read FIFO lines for ever in a thread, sending each to `tx`. The FIFO is opened read-write so
/// that it never reports end-of-file while keepalived restarts. The thread ends when `tx`'s
/// receiver is gone (at the next line).
pub fn follow_fifo(path: &Path, tx: Sender<String>) -> std::io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    std::thread::Builder::new()
        .name("keepalived-fifo".into())
        .spawn(move || {
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// Start `keepalived -f CONF -p PID -r VRRP_PID -c CHK_PID -b BFD_PID --vrrp -D -l -G -n`, its
/// console log appended to `files.log`. It gets SIGTERM when this thread's process dies
/// (`PR_SET_PDEATHSIG`), so a SIGKILLed `lb run` never leaves a keepalived holding VIPs
/// unsupervised: keepalived stops cleanly, removes them and sends a priority-0 advert.
pub fn spawn(bin: &Path, files: &Files) -> std::io::Result<Child> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)?;
    let parent = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(&files.conf)
        .arg("-p")
        .arg(&files.pid)
        .arg("-r")
        .arg(&files.vrrp_pid)
        .arg("-c")
        .arg(&files.checkers_pid)
        .arg("-b")
        .arg(&files.bfd_pid)
        .args(["--vrrp", "-D", "-l", "-G", "-n"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, getppid, _exit), and
    // the signal mask is cleared so keepalived gets its signals whatever this thread blocked.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would ever stop us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn()
}

/// SIGTERM `child`, wait up to `grace`, then SIGKILL. Returns true when it stopped on SIGTERM.
pub fn stop(child: &mut Child, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    // SAFETY: kill on the PID of our own, not yet reaped, child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let t = Instant::now();
    while t.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// The PID in a keepalived pid file, if that process is alive and is a keepalived started with
/// `conf` (a stale pid file after SIGKILL may name a recycled PID).
pub fn live_pid(pid_file: &Path, conf: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let want = conf.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|a| a == want).then_some(pid)
}

/// SIGTERM a keepalived VRRP child left behind by a dead parent and wait for it (up to
/// `grace`; SIGKILL after). It removes its VIPs when it stops cleanly.
pub fn stop_orphan(pid: u32, grace: Duration) {
    let start = crate::sys::proc::start_time(pid).unwrap_or(0);
    let _ = crate::sys::process::terminate(pid, start, grace);
}

/// Write the track file (`0`: healthy, `1`: FAULT), in place: keepalived watches it with
/// inotify and reads it on every close after writing.
pub fn write_track(path: &Path, fault: bool) -> std::io::Result<()> {
    std::fs::write(path, if fault { "1\n" } else { "0\n" })
}

/// What a priority-0 VRRPv3 advertisement needs (one address family).
#[derive(Debug, Clone)]
pub struct Resign {
    pub iface: String,
    /// The source (None: nothing to send from; the advert is not sent).
    pub src: Option<std::net::IpAddr>,
    /// An IPv4 instance (else IPv6).
    pub v4: bool,
    /// Unicast peers; empty: multicast to 224.0.0.18 / ff02::12.
    pub peers: Vec<std::net::IpAddr>,
    pub vrid: u8,
    pub advert_cs: u16,
    /// The instance's VIPs of its family (a receiver checks the list against its own).
    pub vips: Vec<std::net::IpAddr>,
}

/// Send the priority-0 VRRPv3 advertisement a SIGKILLed master could not send ("I resign"):
/// the backup takes over after its skew time instead of the whole master-down interval.
/// IPv4 or IPv6 (RFC 5798: hop limit 255, checksum over the pseudo-header).
pub fn send_resign(r: &Resign) -> std::io::Result<()> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
    const VRRP: i32 = 112;
    let src = r
        .src
        .filter(|s| s.is_ipv4() == r.v4)
        .ok_or_else(|| std::io::Error::other(format!("no source address on {}", r.iface)))?;
    let ifindex = nix_ifindex(&r.iface)?;
    let sock = if r.v4 {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(VRRP)))?;
        s.set_ttl_v4(255)?;
        s.set_multicast_ttl_v4(255)?;
        s
    } else {
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(VRRP)))?;
        s.set_unicast_hops_v6(255)?;
        s.set_multicast_hops_v6(255)?;
        s.set_multicast_if_v6(ifindex)?;
        s
    };
    sock.bind_device(Some(r.iface.as_bytes()))?;
    let scoped = |a: IpAddr| -> SockAddr {
        match a {
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 || v6.is_multicast() => {
                SockAddr::from(SocketAddrV6::new(v6, 0, 0, ifindex))
            }
            a => SockAddr::from(SocketAddr::new(a, 0)),
        }
    };
    sock.bind(&scoped(src))?;
    let mcast = [if r.v4 {
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18))
    } else {
        IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12))
    }];
    let dsts: &[IpAddr] = if r.peers.is_empty() { &mcast } else { &r.peers };
    for dst in dsts {
        let mut p = vec![
            0x31,
            r.vrid,
            0, // priority 0: the master stops
            r.vips.len().min(255) as u8,
        ];
        p.extend_from_slice(&(r.advert_cs & 0x0fff).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        for v in r.vips.iter().take(255) {
            match v {
                IpAddr::V4(a) => p.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => p.extend_from_slice(&a.octets()),
            }
        }
        let c = crate::sys::rawpkt::l4_checksum(src, *dst, VRRP as u8, &p);
        p[6..8].copy_from_slice(&c.to_be_bytes());
        sock.send_to(&p, &scoped(*dst))?;
    }
    Ok(())
}

fn nix_ifindex(iface: &str) -> std::io::Result<u32> {
    let name = std::ffi::CString::new(iface).map_err(std::io::Error::other)?;
    // SAFETY: a valid NUL-terminated string; if_nametoindex only reads it.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        i => Ok(i),
    }
}
