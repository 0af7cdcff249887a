//! Non-persistent TUN devices that tie a BGP announcement to the life of `lb run`, and a
//! watchdog process that takes them down while `lb run` is stopped or hung.
//!
//! Why it looks like this (PLATFORM.md §11):
//! - **The kernel deletes a non-persistent TUN device when the last descriptor attached to it
//!   closes**, whatever ended the process: exit, crash, SIGKILL, OOM killer. BIRD announces
//!   `route VIP/32 via "DEV"` only while DEV exists and is up, so the announcement cannot outlive
//!   the process that checks health (measured: withdrawn 17 ms after SIGKILL).
//! - **A stopped process keeps its descriptors.** So a watchdog child, forked while `lb run` is
//!   still single-threaded, expects a heartbeat on a pipe (the device names, every 100 ms) and sets
//!   the devices down when none came for [`Watchdog`]'s deadline; `lb run` sets them up again when
//!   it resumes. The watchdog holds no TUN descriptor (it closes every inherited descriptor but its
//!   pipe), dies with its parent (`PR_SET_PDEATHSIG`) and only makes async-signal-safe system calls
//!   on fixed buffers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::error::{Error, Result};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ifreq(name: &str) -> IfReqFlags {
    let mut r = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _pad: [0; 22],
    };
    let n = name.len().min(libc::IFNAMSIZ - 1);
    r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    r
}

fn os_err(what: String) -> Error {
    Error::Runtime(anyhow::Error::new(std::io::Error::last_os_error()).context(what))
}

/// A TUN device that exists while this value (its descriptor) lives.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// `ip tuntap add dev NAME mode tun` without `persist`: gone when the descriptor closes.
    /// Created down.
    pub fn create(name: &str) -> Result<Tun> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(Error::Runtime(anyhow::anyhow!(
                "invalid TUN device name '{name}'"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun (is the tun module available?)")
            .map_err(Error::Runtime)?;
        let mut r = ifreq(name);
        r.flags = IFF_TUN | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `r` is (40 bytes).
        if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut r) } != 0 {
            return Err(os_err(format!("creating TUN device {name}")));
        }
        Ok(Tun {
            file,
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Is the device administratively up?
    pub fn is_up(&self) -> Result<bool> {
        Ok(flags(&self.name)? & libc::IFF_UP as libc::c_short != 0)
    }

    /// `ip link set NAME up|down`.
    pub fn set_up(&self, up: bool) -> Result<()> {
        set_up(&self.name, up).map_err(|_| {
            os_err(format!(
                "setting {} {}",
                self.name,
                if up { "up" } else { "down" }
            ))
        })
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

fn flags(name: &str) -> Result<libc::c_short> {
    // SAFETY: plain socket(2).
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(os_err("socket".into()));
    }
    // SAFETY: s was just created and is owned here.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    let mut r = ifreq(name);
    // SAFETY: SIOCGIFFLAGS fills the flags of one struct ifreq.
    if unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut r) } != 0 {
        return Err(os_err(format!("reading the flags of {name}")));
    }
    Ok(r.flags)
}

/// Set IFF_UP on or off, with raw system calls only (also used by the watchdog child).
fn set_up(name: &str, up: bool) -> std::result::Result<(), ()> {
    let mut r = ifreq(name);
    set_up_raw(&mut r, up)
}

fn set_up_raw(r: &mut IfReqFlags, up: bool) -> std::result::Result<(), ()> {
    // SAFETY: socket/ioctl/close on a descriptor owned here; `r` is a struct ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(());
        }
        let mut ok = libc::ioctl(s, libc::SIOCGIFFLAGS as _, r as *mut IfReqFlags) == 0;
        if ok {
            let want = if up {
                r.flags | libc::IFF_UP as libc::c_short
            } else {
                r.flags & !(libc::IFF_UP as libc::c_short)
            };
            if want != r.flags {
                r.flags = want;
                ok = libc::ioctl(s, libc::SIOCSIFFLAGS as _, r as *mut IfReqFlags) == 0;
            }
        }
        libc::close(s);
        if ok {
            Ok(())
        } else {
            Err(())
        }
    }
}

/// Beats sent to the watchdog: the names of the devices to take down, NUL-separated, in one
/// write of at most this many bytes (atomic on a pipe).
const BEAT_MAX: usize = 4000;

/// The parent side of the watchdog: a thread writes the device names to the pipe every 100 ms,
/// but only while the main loop made progress in the last `stall` (so a hung main loop also
/// stops the heartbeat).
pub struct Watchdog {
    pid: libc::pid_t,
    names: Arc<Mutex<Vec<u8>>>,
    tick: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
}

impl Watchdog {
    /// Fork the watchdog. Call while the process is single-threaded (before any pool or thread
    /// starts). `deadline`: no heartbeat for this long → devices down.
    pub fn start(deadline: Duration, stall: Duration) -> Result<Watchdog> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two descriptors into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(os_err("pipe2".into()));
        }
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child only makes async-signal-safe system calls on stack buffers and ends
        // with _exit; it never returns into Rust code of the parent.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(os_err("fork (watchdog)".into()));
        }
        if pid == 0 {
            // SAFETY: see above.
            unsafe { watchdog_child(fds[0], parent, deadline) }
        }
        // SAFETY: fds[0] belongs to the child now; fds[1] is ours.
        unsafe { libc::close(fds[0]) };
        // SAFETY: fds[1] was created above and is owned by nobody else.
        let mut w = unsafe { File::from_raw_fd(fds[1]) };
        let names = Arc::new(Mutex::new(Vec::new()));
        let tick = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let epoch = Instant::now();
        {
            let (names, tick, stop) = (names.clone(), tick.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lb-watchdog".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let last = Duration::from_millis(tick.load(Ordering::Relaxed));
                        if epoch.elapsed().saturating_sub(last) < stall {
                            let mut beat = names.lock().map(|n| n.clone()).unwrap_or_default();
                            beat.push(b'\n');
                            if w.write_all(&beat).is_err() {
                                return;
                            }
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
                .context("starting the watchdog thread")
                .map_err(Error::Runtime)?;
        }
        Ok(Watchdog {
            pid,
            names,
            tick,
            stop,
            epoch,
        })
    }

    /// The main loop is alive.
    pub fn tick(&self) {
        self.tick
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// The devices the watchdog takes down when the heartbeat stops.
    pub fn watch(&self, devices: &[String]) {
        let mut b = Vec::new();
        for d in devices {
            if b.len() + d.len() + 1 >= BEAT_MAX {
                break;
            }
            b.extend_from_slice(d.as_bytes());
            b.push(0);
        }
        if let Ok(mut n) = self.names.lock() {
            *n = b;
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // SAFETY: our own child, identified by the PID fork returned; reaped right after.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The watchdog process. Only async-signal-safe calls, fixed buffers, ends in `_exit`.
unsafe fn watchdog_child(rd: i32, parent: libc::pid_t, deadline: Duration) -> ! {
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    if libc::getppid() != parent {
        libc::_exit(0);
    }
    // Hold no descriptor but the pipe: a TUN descriptor kept here would keep its device alive.
    for fd in 0..4096 {
        if fd != rd {
            libc::close(fd);
        }
    }
    // Default dispositions: the parent's handlers mean nothing here.
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        libc::signal(sig, libc::SIG_DFL);
    }
    let mut last = [0u8; BEAT_MAX + 1];
    let mut last_len = 0usize;
    let mut buf = [0u8; BEAT_MAX + 1];
    let mut downed = false;
    let ms = deadline.as_millis().min(60_000) as i32;
    loop {
        let mut p = libc::pollfd {
            fd: rd,
            events: libc::POLLIN,
            revents: 0,
        };
        let r = libc::poll(&mut p, 1, ms);
        if r < 0 {
            continue; // EINTR
        }
        if r == 0 {
            if !downed {
                downed = true;
                // Each NUL-terminated name in the last beat.
                let mut start = 0;
                for i in 0..last_len {
                    if last[i] == 0 {
                        let n = i - start;
                        if n > 0 && n < libc::IFNAMSIZ {
                            let mut req = IfReqFlags {
                                name: [0; libc::IFNAMSIZ],
                                flags: 0,
                                _pad: [0; 22],
                            };
                            req.name[..n].copy_from_slice(&last[start..i]);
                            let _ = set_up_raw(&mut req, false);
                        }
                        start = i + 1;
                    }
                }
            }
            continue;
        }
        let n = libc::read(rd, buf.as_mut_ptr() as *mut libc::c_void, BEAT_MAX);
        if n <= 0 {
            libc::_exit(0); // the parent is gone
        }
        let n = n as usize;
        // The last complete beat in what was read (beats end in '\n').
        if let Some(end) = buf[..n].iter().rposition(|&c| c == b'\n') {
            let begin = buf[..end]
                .iter()
                .rposition(|&c| c == b'\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            last_len = end - begin;
            last[..last_len].copy_from_slice(&buf[begin..end]);
        }
        downed = false;
    }
}
