//! /proc/sys with direct file I/O.
//!
//! Not the `sysctl` crate: it maps names to paths by swapping `.` and `/`, so interfaces with a
//! dot in their name (`eth0.100`) are unreachable. Keys here are paths with `/` separators.
//! /proc/sys/net follows the network namespace of the calling thread when the file is opened.

use std::io::ErrorKind;

use anyhow::Context as _;

use crate::error::{Error, Result};
use crate::model::SysctlKey;

fn path(key: &SysctlKey) -> String {
    format!("/proc/sys/{}", key.0)
}

/// Read a value; `None` when the key does not exist (e.g. the interface is gone).
pub fn read(key: &SysctlKey) -> Result<Option<String>> {
    match std::fs::read_to_string(path(key)) {
        Ok(v) => Ok(Some(v.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Runtime(
            anyhow::Error::new(e).context(format!("reading {key}")),
        )),
    }
}

/// Read an integer value (the interface sysctls lbctl cares about are all integers).
pub fn read_int(key: &SysctlKey) -> Result<Option<i64>> {
    Ok(read(key)?.and_then(|v| v.parse().ok()))
}

/// Write a value. Callers read first and skip no-op writes.
pub fn write(key: &SysctlKey, value: &str) -> Result<()> {
    std::fs::write(path(key), value).map_err(|e| {
        let hint = match e.kind() {
            ErrorKind::NotFound => " (no such key: is the interface gone?)",
            ErrorKind::PermissionDenied => " (needs root)",
            _ => "",
        };
        Error::Runtime(anyhow::Error::new(e).context(format!("writing {key}={value}{hint}")))
    })
}

/// Interfaces that have IPv4 conf entries (includes `all` and `default`).
pub fn ipv4_conf_interfaces() -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/sys/net/ipv4/conf").context("listing ipv4 conf")? {
        out.push(
            entry
                .context("listing ipv4 conf")?
                .file_name()
                .to_string_lossy()
                .into(),
        );
    }
    out.sort();
    Ok(out)
}
