//! Notify hooks: a user's argv started in the background with the event in its environment,
//! and reaped without blocking. Each hook leads its own process group; one still running after
//! [`TIMEOUT`] is killed with SIGKILL to that group (its PID: the hook and whatever it started),
//! so a hung hook cannot pile up behind the daemon.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a notify hook may run.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Start `argv` with `env` added; stdout and stderr go to lbctl's stderr. The caller reaps it.
pub fn spawn(argv: &[String], env: &[(String, String)]) -> std::io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty notify command"))?;
    Command::new(prog)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
}

/// The hooks started and not reaped yet.
#[derive(Default)]
pub struct Running {
    children: Vec<(Child, String, Instant)>,
}

impl Running {
    /// Start `argv` (see [`spawn`]) and keep it for [`Running::reap`].
    pub fn start(&mut self, argv: &[String], env: &[(String, String)]) -> std::io::Result<()> {
        let child = spawn(argv, env)?;
        self.children.push((child, argv.join(" "), Instant::now()));
        Ok(())
    }

    /// Reap the hooks that ended; kill (SIGKILL, by PID) and reap those running longer than
    /// `timeout`. Returns one line per killed hook, for the log.
    pub fn reap(&mut self, timeout: Duration) -> Vec<String> {
        let mut killed = Vec::new();
        self.children.retain_mut(|(c, what, since)| {
            match c.try_wait() {
                Ok(None) if since.elapsed() >= timeout => {}
                Ok(None) => return true,
                Ok(Some(_)) | Err(_) => return false,
            }
            let pid = c.id();
            // SAFETY: kill(2) on the process group our own, not yet reaped, child leads (its
            // PID is still ours: a zombie keeps it).
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            let _ = c.kill();
            let _ = c.wait();
            killed.push(format!(
                "notify hook `{what}` (PID {pid}) still running after {} s: killed (its process group)",
                timeout.as_secs()
            ));
            false
        });
        killed
    }
}
