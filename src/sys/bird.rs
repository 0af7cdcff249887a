//! BIRD 2 as a child of `lb run`: its version, `bird -p` (parse only), starting it in the
//! foreground with its own config, control socket and pid file, and its control protocol (what
//! `birdc -s SOCK` speaks) for `show protocols` and `configure`.
//!
//! BIRD is started with `-f` as a direct child that gets SIGTERM when `lb run` dies
//! (`PR_SET_PDEATHSIG`), in its own process group (a terminal's Ctrl-C reaches `lb run`, which
//! withdraws first and then stops BIRD).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `bird --version` → (major, minor, patch). BIRD prints `BIRD version 2.0.12` on stderr.
pub fn version(bin: &Path) -> Result<(u32, u32, u32), String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_version(&text).ok_or_else(|| {
        format!(
            "{} --version said {:?}: not BIRD",
            bin.display(),
            text.trim()
        )
    })
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?;
    let mut it = v.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((
        it.next()??,
        it.next().flatten()?,
        it.next().flatten().unwrap_or(0),
    ))
}

/// `bird -p -c CONF`: parse the configuration and exit. Err: what BIRD said.
pub fn parse_only(bin: &Path, conf: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("-p")
        .arg("-c")
        .arg(conf)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Err(said.trim().to_string())
}

/// A BIRD started by this process.
pub struct Bird {
    child: Child,
    pub socket: PathBuf,
}

impl Bird {
    /// `bird -f -c CONF -s SOCK -P PID`, output appended to `log`; waits (≤ 5 s) until the
    /// control socket answers. Err: BIRD exited (with its last log lines) or did not answer.
    pub fn start(
        bin: &Path,
        conf: &Path,
        socket: &Path,
        pid: &Path,
        log: &Path,
    ) -> Result<Bird, String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let _ = std::fs::remove_file(socket);
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg("-c")
            .arg(conf)
            .arg("-s")
            .arg(socket)
            .arg("-P")
            .arg(pid)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // SAFETY: prctl and setpgid are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGTERM as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut b = Bird {
            child,
            socket: socket.to_path_buf(),
        };
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(st)) = b.child.try_wait() {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(format!("bird exited ({st}): {}", tail.join(" / ")));
            }
            if request(socket, "show status").is_ok() {
                return Ok(b);
            }
            if Instant::now() > until {
                b.stop();
                return Err(format!(
                    "bird did not answer on {} within 5 s",
                    socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM (BIRD closes its sessions with a Cease), SIGKILL after 3 s; reaped.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        // SAFETY: our own unreaped child, so the PID cannot have been reused.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on BIRD's control socket; the reply's text lines (reply codes stripped). An
/// error reply (code 8xxx/9xxx) is an Err with its text.
pub fn request(socket: &Path, cmd: &str) -> Result<Vec<String>, String> {
    let s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    // Greeting: "0001 BIRD 2.0.12 ready."
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    w.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut code = 0u32;
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("BIRD closed the control connection".into());
        }
        let l = line.trim_end_matches(['\n', '\r']);
        let b = l.as_bytes();
        let coded = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
        let (text, last) = if coded {
            code = l[..4].parse().unwrap_or(0);
            (&l[5..], b[4] == b' ')
        } else {
            (l.strip_prefix(' ').unwrap_or(l), false)
        };
        if code >= 8000 {
            return Err(text.to_string());
        }
        if !text.is_empty() {
            out.push(text.to_string());
        }
        // The first coded line followed by a space ends the reply.
        if last {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("BIRD version 2.0.12\n"), Some((2, 0, 12)));
        assert_eq!(parse_version("BIRD version 1.6.8"), Some((1, 6, 8)));
        assert_eq!(parse_version("BIRD version 3.0-alpha1"), Some((3, 0, 0)));
        assert_eq!(parse_version("nope"), None);
    }
}
