//! The journal under /run/lbctl: what lbctl was asked to maintain (intents, per owner), what it
//! created (so `down`/`del` remove exactly that), prior sysctl values, and a short history.
//!
//! One directory per network namespace (`/run/lbctl/netns/NAME` for `--netns NAME`, `/run/lbctl`
//! for the host, `/run/lbctl/ns-INODE` for an anonymous namespace), so labs and tests never see
//! each other's state. `LBCTL_RUN_DIR` overrides the base. A `flock` on `lock` serializes
//! lbctl processes (parallel ifupdown hooks). Writes are atomic (temp file + rename).
//! /run is a tmpfs: after a reboot the kernel state is gone too, so nothing is stale.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Intent;
use crate::plan::Owned;

/// Owner name for intents created by one-shot commands (`vip add`, `arp suppress`, …).
pub const CLI_OWNER: &str = "cli";
const HISTORY_LEN: usize = 50;

/// One applied run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Seconds since the epoch.
    pub time: u64,
    pub command: String,
    pub changes: Vec<String>,
}

/// Everything persisted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// Namespace inode at the time of writing; a mismatch means the namespace was recreated.
    #[serde(default)]
    pub netns_inode: Option<u64>,
    #[serde(default)]
    pub intents: BTreeMap<String, Intent>,
    #[serde(default)]
    pub owned: Owned,
    /// Balancer objects per owner (`lb:NAME` for `lb run -c`/`lb apply -f` of an LB file named
    /// NAME, `cli` for `lb service add`): what `down --all` and `status` cover besides the
    /// backend objects above. Recorded before the objects are created (write-ahead).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lb: BTreeMap<String, LbOwned>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// Balancer objects one owner created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbOwned {
    /// nft tables, as `FAMILY NAME` (`netdev lbctl_lb_web`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub nft_tables: BTreeSet<String>,
    /// IPVS services, as ipvsadm names them (`-t 198.18.0.100:80`, `-f 7 -6`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub ipvs_services: BTreeSet<String>,
}

impl LbOwned {
    pub fn is_empty(&self) -> bool {
        self.nft_tables.is_empty() && self.ipvs_services.is_empty()
    }
}

impl State {
    pub fn record(&mut self, command: &str, changes: Vec<String>) {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.history.push(HistoryEntry {
            time,
            command: command.to_string(),
            changes,
        });
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }
}

/// The journal directory for this process's namespace.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    inode: Option<u64>,
}

/// Held while a mutating command runs; released on drop (also if the process dies).
pub struct Lock {
    _file: File,
}

impl Journal {
    /// Pick the directory for `netns` (the `--netns` name, if any).
    pub fn for_netns(netns: Option<&str>) -> Self {
        let base = std::env::var_os("LBCTL_RUN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/run/lbctl"));
        let inode = crate::sys::netns_inode("self");
        let dir = match netns {
            Some(name) => base.join("netns").join(name),
            None if inode.is_some() && inode == crate::sys::netns_inode("1") => base,
            // `ip netns exec NAME lbctl …` must share `lbctl --netns NAME …`'s journal: two
            // journals for one namespace would each think the other's objects are stale.
            None => match inode.and_then(|i| {
                crate::sys::netns::list()
                    .into_iter()
                    .find(|n| crate::sys::netns::inode(n) == Some(i))
            }) {
                Some(name) => base.join("netns").join(name),
                None => base.join(format!("ns-{}", inode.unwrap_or(0))),
            },
        };
        Journal { dir, inode }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Take the exclusive lock, waiting for another lbctl if needed.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if crate::sys::lock::try_lock_exclusive(&file).is_err() {
            eprintln!("lbctl: waiting for another lbctl ({})", path.display());
            if let Err(e) = crate::sys::lock::lock_exclusive(&file) {
                return Err(Error::Runtime(
                    anyhow::Error::new(e).context(format!("locking {}", path.display())),
                ));
            }
        }
        Ok(Lock { _file: file })
    }

    /// Load the state; a missing file is an empty state. State from a namespace that has since
    /// been deleted and recreated under the same name is discarded with a warning.
    pub fn load(&self) -> Result<State> {
        let path = self.file();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => {
                return Err(Error::Runtime(
                    anyhow::Error::new(e).context(format!("reading {}", path.display())),
                ))
            }
        };
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} (remove it to start afresh)", path.display()))?;
        if state.netns_inode.is_some() && state.netns_inode != self.inode {
            eprintln!(
                "lbctl: warning: {} belongs to a network namespace that no longer exists; ignoring it",
                path.display()
            );
            return Ok(State::default());
        }
        Ok(state)
    }

    /// Persist atomically.
    pub fn save(&self, state: &State) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let mut state = state.clone();
        state.netns_inode = self.inode;
        let tmp = self.dir.join("state.json.tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        serde_json::to_writer_pretty(&mut f, &state).context("serializing state")?;
        f.write_all(b"\n").context("writing state")?;
        f.sync_all().context("syncing state")?;
        fs::rename(&tmp, self.file()).context("replacing state.json")?;
        Ok(())
    }
}
