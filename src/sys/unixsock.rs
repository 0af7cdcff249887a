//! Local control sockets: a unix stream socket only root can use (mode 0600, peer checked by
//! `SO_PEERCRED`), one request and one answer per connection.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest request or answer accepted (a request is one small JSON object).
pub const MAX_MESSAGE: u64 = 64 * 1024;

/// One accepted connection: the stream (for the answer) and the peer's uid with the request
/// bytes, or why they could not be read.
pub type Incoming = (UnixStream, std::io::Result<(u32, Vec<u8>)>);

/// A listening socket at `path`, removed when dropped.
pub struct Listener {
    sock: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Bind `path` (a stale socket file left by a dead process is replaced: the caller holds
    /// the lock that makes it the only owner), mode 0600, non-blocking.
    pub fn bind(path: &Path) -> std::io::Result<Listener> {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let sock = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        sock.set_nonblocking(true)?;
        Ok(Listener {
            sock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next pending connection, if any (never blocks): the peer's uid and the request
    /// bytes (read until the peer shuts its side, at most [`MAX_MESSAGE`], within `timeout`).
    pub fn accept(&self, timeout: Duration) -> Option<Incoming> {
        let (mut s, _) = self.sock.accept().ok()?;
        let r = (|| {
            s.set_nonblocking(false)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            let uid = peer_uid(&s)?;
            let mut buf = Vec::new();
            (&mut s).take(MAX_MESSAGE).read_to_end(&mut buf)?;
            Ok((uid, buf))
        })();
        Some((s, r))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The uid of the process at the other end of `s`.
pub fn peer_uid(s: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a properly sized ucred.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Send one request to the socket at `path` and read the whole answer.
pub fn call(path: &Path, request: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut buf = Vec::new();
    s.take(MAX_MESSAGE).read_to_end(&mut buf)?;
    Ok(buf)
}
