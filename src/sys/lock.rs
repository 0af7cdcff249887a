//! Advisory whole-file locks (`flock`): the journal's, each `lb run` daemon's, each lab's
//! directory. A lock is held until its file is closed, so it ends with its holder, however that
//! process ends.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Take an exclusive lock on `file` without waiting: an error when another open file holds it
/// (or the lock cannot be taken at all).
pub fn try_lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// Take an exclusive lock on `file`, waiting for its holder to let go.
pub fn lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX)
}

fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on the descriptor of an open File we borrow.
    if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_file_is_refused_until_the_first_closes() {
        let path = std::env::temp_dir().join(format!("lbctl-lock-{}", std::process::id()));
        let open = || File::create(&path).unwrap();
        let a = open();
        try_lock_exclusive(&a).unwrap();
        let b = open();
        assert!(try_lock_exclusive(&b).is_err());
        drop(a);
        try_lock_exclusive(&b).unwrap();
        lock_exclusive(&b).unwrap();
        let _ = std::fs::remove_file(&path);
    }
}
