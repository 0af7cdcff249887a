//! A lab's record: `<run dir>/lab/<name>/state.json` (run dir `/run/lbctl`, or `LBCTL_RUN_DIR`).
//!
//! The record is written *ahead* of every side effect: a namespace name is recorded before
//! `ip netns add`, a process before it runs (see [`super::process`]). So whatever a killed
//! `lab up` left behind is listed, and `lab down` removes exactly that and nothing else.
//!
//! - The directory appears atomically: it is built under a temporary name, locked, and renamed
//!   into place; a second `lab up` with the same name finds it and refuses.
//! - Mutations (`up`, `down`, `break`) hold an exclusive `flock` on the directory itself; readers
//!   (`status`) need no lock, because every write is a rename of a complete file.
//! - The directory also holds the LB file, rendered profiles and the processes' logs.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::topology::{Engine, Node};
use crate::error::{Error, Result};
use crate::sys::abi;
use crate::usage;

/// Format version of `state.json`.
pub const VERSION: u32 = 1;
const FILE: &str = "state.json";

/// Where a lab stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `lab up` is running, or was killed: some of the record may not exist.
    Creating,
    /// Everything was created and checked.
    Up,
}

/// A namespace the lab owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRecord {
    pub node: String,
    pub name: String,
    /// Set once created; a namespace of this name with another inode is not ours.
    #[serde(default)]
    pub inode: Option<u64>,
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    pub node: String,
    /// `http` (a backend's server) or `balancer` (`lbctl lb run`).
    pub role: String,
    pub pid: u32,
    /// Clock ticks since boot (`/proc/PID/stat` field 22): with the PID, identifies the process.
    pub start_time: u64,
    pub argv: Vec<String>,
    pub log: PathBuf,
    /// Stopped on purpose (`lab break NODE no-listener`).
    #[serde(default)]
    pub stopped: bool,
}

/// A fault injected with `lab break`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub node: String,
    pub fault: String,
}

/// Everything recorded about one lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabState {
    pub version: u32,
    pub name: String,
    pub phase: Phase,
    /// Seconds since the epoch.
    pub created: u64,
    pub backends: u8,
    pub ipv6: bool,
    pub engine: Engine,
    /// The backend profile template, if any (else backends use `arp suppress` + `vip add`).
    #[serde(default)]
    pub profile: Option<PathBuf>,
    /// Whether `lab up` started `lbctl lb run`.
    pub balancer: bool,
    /// The lbctl binary the lab runs inside its namespaces.
    pub lbctl_bin: PathBuf,
    /// `LBCTL_RUN_DIR` of the lab's lbctl invocations.
    pub run_dir: PathBuf,
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub namespaces: Vec<NsRecord>,
    #[serde(default)]
    pub processes: Vec<ProcRecord>,
    #[serde(default)]
    pub faults: Vec<FaultRecord>,
    /// A routed lab (`lab up --balancers K --routing bgp`): a router and balancers lb1…lbK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<super::routing::Routing>,
    /// A crossover lab (`lab up --topology crossover --servers N`): a router and servers
    /// s1…sN running the crossover agent, no balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crossover: Option<super::crossover::CrossoverSpec>,
}

impl LabState {
    /// The lab's IPv4 VIP (routed labs use one outside the balancer segment).
    pub fn vip4(&self) -> std::net::Ipv4Addr {
        super::routing::vip4(self.routing)
    }

    pub fn node(&self, node: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.node == node)
    }
}

/// The default run directory: `LBCTL_RUN_DIR`, else `/run/lbctl` (as the journal uses).
pub fn default_run_dir() -> PathBuf {
    std::env::var_os("LBCTL_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/lbctl"))
}

/// `<run dir>/lab`.
pub fn labs_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("lab")
}

/// `<run dir>/lab/<name>`.
pub fn lab_dir(run_dir: &Path, name: &str) -> PathBuf {
    labs_dir(run_dir).join(name)
}

/// Names of the labs recorded under `run_dir`, sorted.
pub fn list(run_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(labs_dir(run_dir))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| super::topology::validate_name(n).is_ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Read a lab's record without locking (`None` when there is no such lab).
pub fn read(run_dir: &Path, name: &str) -> Result<Option<LabState>> {
    read_file(&lab_dir(run_dir, name).join(FILE))
}

fn read_file(path: &Path) -> Result<Option<LabState>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Runtime(
                anyhow::Error::new(e).context(format!("reading {}", path.display())),
            ))
        }
    };
    let state: LabState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if state.version != VERSION {
        return Err(Error::Runtime(anyhow::anyhow!(
            "{}: state version {} is not {VERSION} (written by another lbctl)",
            path.display(),
            state.version
        )));
    }
    Ok(Some(state))
}

fn flock(file: &File, path: &Path) -> Result<()> {
    if let Err(e) = crate::sys::lock::lock_exclusive(file) {
        return Err(Error::Runtime(
            anyhow::Error::new(e).context(format!("locking {}", path.display())),
        ));
    }
    Ok(())
}

/// A lab's directory, locked for as long as this value lives.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Create the directory with `state` in it, atomically; refuses when the lab exists.
    pub fn create(run_dir: &Path, state: &LabState) -> Result<StateDir> {
        let parent = labs_dir(run_dir);
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let dir = lab_dir(run_dir, &state.name);
        if dir.exists() {
            return Err(exists_error(&state.name, run_dir));
        }
        let tmp = parent.join(format!(".{}.tmp-{}", state.name, std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let lock = File::open(&tmp).with_context(|| format!("opening {}", tmp.display()))?;
        flock(&lock, &tmp)?;
        let staged = StateDir {
            dir: tmp.clone(),
            _lock: lock,
        };
        staged.save(state)?;
        // rename() onto an existing non-empty directory fails: two `up`s cannot both win.
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(match e.raw_os_error() {
                Some(abi::ENOTEMPTY) | Some(abi::EEXIST) => exists_error(&state.name, run_dir),
                _ => Error::Runtime(
                    anyhow::Error::new(e).context(format!("renaming to {}", dir.display())),
                ),
            });
        }
        Ok(StateDir {
            dir,
            _lock: staged._lock,
        })
    }

    /// Lock an existing lab's directory (waiting for another lbctl working on it). `None` when
    /// the lab does not exist (also when it was removed while we waited).
    pub fn open(run_dir: &Path, name: &str) -> Result<Option<StateDir>> {
        let dir = lab_dir(run_dir, name);
        let lock = match File::open(&dir) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Runtime(
                    anyhow::Error::new(e).context(format!("opening {}", dir.display())),
                ))
            }
        };
        flock(&lock, &dir)?;
        if !dir.join(FILE).exists() {
            // Removed by the lbctl we waited for.
            return Ok(None);
        }
        Ok(Some(StateDir { dir, _lock: lock }))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn load(&self) -> Result<LabState> {
        read_file(&self.dir.join(FILE))?.ok_or_else(|| {
            Error::Runtime(anyhow::anyhow!(
                "{} disappeared",
                self.dir.join(FILE).display()
            ))
        })
    }

    /// Replace `state.json` atomically (temp file + rename).
    pub fn save(&self, state: &LabState) -> Result<()> {
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        serde_json::to_writer_pretty(&mut f, state).context("serializing the lab state")?;
        f.write_all(b"\n").context("writing the lab state")?;
        drop(f);
        fs::rename(&tmp, self.dir.join(FILE))
            .with_context(|| format!("replacing {}", self.dir.join(FILE).display()))?;
        Ok(())
    }

    /// Remove the directory (state, logs, LB file) while still holding the lock.
    pub fn remove(self) -> Result<()> {
        fs::remove_file(self.dir.join(FILE))
            .with_context(|| format!("removing {}", self.dir.join(FILE).display()))?;
        fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))?;
        Ok(())
    }
}

/// "lab NAME already exists", with the command that removes it.
pub fn exists_error(name: &str, run_dir: &Path) -> Error {
    let flag = if name == super::topology::DEFAULT_NAME {
        String::new()
    } else {
        format!(" --name {name}")
    };
    let env = if run_dir == default_run_dir() {
        String::new()
    } else {
        format!(" (run dir {})", run_dir.display())
    };
    usage!("lab '{name}' already exists{env}: remove it first with `lbctl lab down{flag}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::plan;

    fn sample(name: &str, run_dir: &Path) -> LabState {
        LabState {
            version: VERSION,
            name: name.into(),
            phase: Phase::Creating,
            created: 1,
            backends: 1,
            ipv6: false,
            engine: Engine::Auto,
            profile: None,
            balancer: false,
            lbctl_bin: "/bin/true".into(),
            run_dir: run_dir.into(),
            nodes: plan(name, 1, false),
            namespaces: vec![],
            processes: vec![],
            faults: vec![],
            routing: None,
            crossover: None,
        }
    }

    #[test]
    fn create_is_exclusive_and_remove_cleans() {
        let run = std::env::temp_dir().join(format!("lbctl-labstate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&run);
        let st = sample("t1", &run);
        let dir = StateDir::create(&run, &st).unwrap();
        assert_eq!(read(&run, "t1").unwrap().unwrap(), st);
        assert_eq!(list(&run), ["t1"]);
        let e = StateDir::create(&run, &st).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let mut st2 = st.clone();
        st2.phase = Phase::Up;
        dir.save(&st2).unwrap();
        assert_eq!(dir.load().unwrap().phase, Phase::Up);
        dir.remove().unwrap();
        assert!(read(&run, "t1").unwrap().is_none());
        assert!(StateDir::open(&run, "t1").unwrap().is_none());
        assert!(list(&run).is_empty());
        // No temporary directories are left behind.
        assert_eq!(fs::read_dir(labs_dir(&run)).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&run);
    }
}
