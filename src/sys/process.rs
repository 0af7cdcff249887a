//! Background processes (the lab's servers and balancer): started detached with their PID
//! recorded *before* they run, and stopped only by that recorded PID after checking it is still
//! the same process. Also whether this process runs as root.
//!
//! Why it looks like this:
//! - **Write-ahead PIDs.** [`spawn_detached`] forks, and the child waits on a pipe before it
//!   `exec`s. The parent reads the child's start time, hands (PID, start time) to a `record`
//!   callback (which writes the lab's state file), and only then lets the child go. If the parent
//!   dies first (SIGKILL), the pipe closes and the child exits without ever running. So a
//!   process that runs is always in the state file, and `lab down` after a killed `lab up`
//!   finds every one of them.
//! - **No recycled PIDs.** A PID is identified by (PID, start time in clock ticks since boot,
//!   field 22 of `/proc/PID/stat`). [`terminate`] opens a pidfd first and then checks the start
//!   time, so the signal goes to the process that was checked, never to a newcomer that reused
//!   the number.
//! - **Detached.** The child gets its own session (`setsid`, so a terminal's Ctrl-C reaches only
//!   the lbctl in the foreground, which then tears the lab down in order), default signal
//!   dispositions and an empty signal mask, stdin from /dev/null and stdout/stderr appended to a
//!   log file.
//! - Between `fork` and `exec` the child only makes async-signal-safe system calls; everything it
//!   needs (C strings, descriptors) is prepared before the fork.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::error::{Error, Result};

pub use crate::sys::proc::{is_alive, start_time};

/// Is the effective user root?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn cstring(s: &std::ffi::OsStr) -> Result<CString> {
    CString::new(s.as_bytes())
        .map_err(|_| Error::Runtime(anyhow::anyhow!("argument contains a NUL byte: {s:?}")))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Runtime(
            anyhow::Error::new(std::io::Error::last_os_error()).context("pipe2"),
        ));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `argv` (`argv[0]` an absolute path or a name found in PATH) detached, with `env` added to
/// this process's environment and output appended to `log`. `record(pid, start_time)` runs
/// before the program does; if it fails, the child is killed unexecuted and its error returned.
pub fn spawn_detached(
    argv: &[String],
    env: &[(String, String)],
    log: &Path,
    record: impl FnOnce(u32, u64) -> Result<()>,
) -> Result<(u32, u64)> {
    let program = argv
        .first()
        .ok_or_else(|| Error::Runtime(anyhow::anyhow!("empty command")))?;
    let resolved = crate::sys::netns::find_tool(program).ok_or_else(|| {
        Error::Runtime(anyhow::anyhow!("cannot run {program}: not found in PATH"))
    })?;
    let c_prog = cstring(resolved.as_os_str())?;
    let c_args: Vec<CString> = argv
        .iter()
        .map(|a| cstring(std::ffi::OsStr::new(a)))
        .collect::<Result<_>>()?;
    let mut vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os()
        .filter(|(k, _)| !env.iter().any(|(e, _)| k.as_bytes() == e.as_bytes()))
        .collect();
    vars.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
    let c_env: Vec<CString> = vars
        .iter()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv)
                .map_err(|_| Error::Runtime(anyhow::anyhow!("environment contains a NUL byte")))
        })
        .collect::<Result<_>>()?;
    let mut p_args: Vec<*const libc::c_char> = c_args.iter().map(|c| c.as_ptr()).collect();
    p_args.push(std::ptr::null());
    let mut p_env: Vec<*const libc::c_char> = c_env.iter().map(|c| c.as_ptr()).collect();
    p_env.push(std::ptr::null());

    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let null = OpenOptions::new()
        .read(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    // go: the parent allows the exec; err: the child reports a failed exec (closes on success).
    let (go_r, go_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (go_r_fd, go_w_fd, err_w_fd) = (go_r.as_raw_fd(), go_w.as_raw_fd(), err_w.as_raw_fd());
    let (log_fd, null_fd) = (log_file.as_raw_fd(), null.as_raw_fd());

    // SAFETY: fork in a possibly multi-threaded process. The child only calls async-signal-safe
    // functions (close, read, write, setsid, sigprocmask, signal, dup2, execve, _exit) on data
    // prepared above, and never returns into Rust code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Runtime(
            anyhow::Error::new(std::io::Error::last_os_error()).context("fork"),
        ));
    }
    if pid == 0 {
        // SAFETY: child side; see above.
        unsafe {
            libc::close(go_w_fd);
            let mut b = 0u8;
            loop {
                let n = libc::read(go_r_fd, (&mut b as *mut u8).cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && errno() == libc::EINTR {
                    continue;
                }
                // The parent died or gave up before recording us: never run.
                libc::_exit(125);
            }
            libc::setsid();
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            for sig in [
                libc::SIGINT,
                libc::SIGTERM,
                libc::SIGHUP,
                libc::SIGPIPE,
                libc::SIGQUIT,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::dup2(null_fd, 0);
            libc::dup2(log_fd, 1);
            libc::dup2(log_fd, 2);
            libc::execve(c_prog.as_ptr(), p_args.as_ptr(), p_env.as_ptr());
            let e = errno().to_ne_bytes();
            libc::write(err_w_fd, e.as_ptr().cast(), e.len());
            libc::_exit(127);
        }
    }
    let pid = pid as u32;
    drop(go_r);
    drop(err_w);
    drop(null);
    drop(log_file);
    let reap = |pid: u32| {
        // SAFETY: kill/waitpid on our own, unexecuted child.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
        }
    };
    let Some(start) = start_time(pid) else {
        reap(pid);
        return Err(Error::Runtime(anyhow::anyhow!(
            "cannot read /proc/{pid}/stat of the process just started"
        )));
    };
    if let Err(e) = record(pid, start) {
        reap(pid);
        return Err(e);
    }
    let mut go = File::from(go_w);
    go.write_all(b"g").context("releasing the child")?;
    drop(go);
    let mut buf = Vec::new();
    File::from(err_r)
        .read_to_end(&mut buf)
        .context("waiting for exec")?;
    if buf.len() == 4 {
        let code = i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
        // SAFETY: reap our own child, which has exited after the failed exec.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
        return Err(Error::Runtime(
            anyhow::Error::new(std::io::Error::from_raw_os_error(code))
                .context(format!("cannot run {}", resolved.display())),
        ));
    }
    Ok((pid, start))
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: the pidfd_open system call with flags 0 returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal with a null siginfo and flags 0.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Wait until the process behind the pidfd has exited, at most `timeout`.
fn wait_exit(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid descriptor.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || (rc < 0 && errno() != libc::EINTR) || left.is_zero() {
            return false;
        }
    }
}

/// How [`terminate`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running any more (or the PID now belongs to another process: left alone).
    AlreadyGone,
    /// It exited after SIGTERM.
    Terminated,
    /// It ignored SIGTERM for `grace` and was killed.
    Killed,
}

/// Stop the recorded process (PID + start time): SIGTERM, then SIGKILL after `grace`. A PID that
/// now belongs to a different process is never signalled. Our own children are reaped.
pub fn terminate(pid: u32, start: u64, grace: Duration) -> Result<Stopped> {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::AlreadyGone),
        Err(e) => {
            return Err(Error::Runtime(
                anyhow::Error::new(e).context(format!("pidfd_open({pid})")),
            ))
        }
    };
    // The pidfd pins the process that held `pid` when it was opened: check *that* one.
    if !is_alive(pid, start) {
        reap(pid);
        return Ok(Stopped::AlreadyGone);
    }
    let signal = |sig| match pidfd_signal(&fd, sig) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(Error::Runtime(
            anyhow::Error::new(e).context(format!("signalling process {pid}")),
        )),
    };
    if !signal(libc::SIGTERM)? {
        reap(pid);
        return Ok(Stopped::AlreadyGone);
    }
    if wait_exit(&fd, grace) {
        reap(pid);
        return Ok(Stopped::Terminated);
    }
    signal(libc::SIGKILL)?;
    wait_exit(&fd, Duration::from_secs(5));
    reap(pid);
    Ok(Stopped::Killed)
}

/// SIGKILL the recorded process (PID + start time) at once, no SIGTERM first (a crash drill);
/// waits until it is gone. A PID that now belongs to a different process is never signalled.
pub fn kill(pid: u32, start: u64) -> Result<Stopped> {
    let fd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(Stopped::AlreadyGone),
        Err(e) => {
            return Err(Error::Runtime(
                anyhow::Error::new(e).context(format!("pidfd_open({pid})")),
            ))
        }
    };
    if !is_alive(pid, start) {
        reap(pid);
        return Ok(Stopped::AlreadyGone);
    }
    match pidfd_signal(&fd, libc::SIGKILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            reap(pid);
            return Ok(Stopped::AlreadyGone);
        }
        Err(e) => {
            return Err(Error::Runtime(
                anyhow::Error::new(e).context(format!("signalling process {pid}")),
            ))
        }
    }
    wait_exit(&fd, Duration::from_secs(5));
    reap(pid);
    Ok(Stopped::Killed)
}

/// Collect the exit status if `pid` is our child (no-op otherwise).
fn reap(pid: u32) {
    // SAFETY: waitpid with WNOHANG never blocks; ECHILD when it is not our child.
    unsafe {
        libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_parses() {
        let me = std::process::id();
        let st = start_time(me).expect("own start time");
        assert!(is_alive(me, st));
        assert!(
            !is_alive(me, st + 1),
            "a different start time is another process"
        );
        assert!(!is_alive(u32::MAX - 1, 0));
    }

    #[test]
    fn spawn_record_terminate() {
        let dir = std::env::temp_dir().join(format!("lbctl-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("sleep.log");
        let mut recorded = None;
        let (pid, start) = spawn_detached(
            &["sleep".into(), "30".into()],
            &[("LBCTL_X".into(), "1".into())],
            &log,
            |pid, start| {
                // Recorded before it runs: it cannot have exec'd yet.
                recorded = Some((pid, start));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(recorded, Some((pid, start)));
        assert!(is_alive(pid, start));
        // A wrong start time is "someone else": left alone.
        assert_eq!(
            terminate(pid, start + 1, Duration::from_secs(1)).unwrap(),
            Stopped::AlreadyGone
        );
        assert!(is_alive(pid, start));
        assert_eq!(
            terminate(pid, start, Duration::from_secs(2)).unwrap(),
            Stopped::Terminated
        );
        assert!(!is_alive(pid, start));
        assert_eq!(
            terminate(pid, start, Duration::from_secs(1)).unwrap(),
            Stopped::AlreadyGone
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn failed_record_means_never_run() {
        let dir = std::env::temp_dir().join(format!("lbctl-proc2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("ran");
        let mut child = 0;
        let err = spawn_detached(
            &[
                "sh".into(),
                "-c".into(),
                format!("touch {}", marker.display()),
            ],
            &[],
            &dir.join("log"),
            |pid, _| {
                child = pid;
                Err(crate::usage!("state file not writable"))
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("not writable"));
        assert!(start_time(child).is_none(), "the child was reaped");
        assert!(!marker.exists(), "the program never ran");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn exec_failure_is_reported() {
        let dir = std::env::temp_dir().join(format!("lbctl-proc3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = spawn_detached(
            &["/nonexistent/lbctl-no-such-binary".into()],
            &[],
            &dir.join("log"),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot run"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
