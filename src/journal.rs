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
use std::time::{Duration, Instant};

use crate::sys::signals;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Intent;
use crate::plan::Owned;

/// Owner name for intents created by one-shot commands (`vip add`, `arp suppress`, …).
pub const CLI_OWNER: &str = "cli";
/// The journal itself.
const STATE_FILE: &str = "state.json";
/// Prior sysctl values, beside the journal.
const SYSCTL_BACKUP: &str = "sysctl-prior.json";
/// History is bounded by its size in the journal, not by its number of runs.
const HISTORY_BYTES: usize = 64 * 1024;
/// Command lines kept per run.
const HISTORY_RUN_LINES: usize = 50;

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

/// [`State`] as written, borrowing its parts (the same fields, in the same order).
#[derive(Serialize)]
struct StateView<'a> {
    netns_inode: Option<u64>,
    intents: &'a BTreeMap<String, Intent>,
    owned: &'a Owned,
    #[serde(skip_serializing_if = "no_lb")]
    lb: &'a BTreeMap<String, LbOwned>,
    history: &'a Vec<HistoryEntry>,
}

fn no_lb(lb: &&BTreeMap<String, LbOwned>) -> bool {
    lb.is_empty()
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
    /// Record an applied run. `changes` is read once: its first lines are kept and the rest
    /// only counted.
    pub fn record(&mut self, command: &str, changes: impl IntoIterator<Item = String>) {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // A run's own record is capped too: a 10,000-VIP apply keeps its first lines and a
        // count, not 20,000 commands.
        let mut lines = changes.into_iter();
        let mut changes: Vec<String> = lines.by_ref().take(HISTORY_RUN_LINES).collect();
        let more = lines.count();
        if more > 0 {
            changes.push(format!("… {more} more change(s)"));
        }
        self.history.push(HistoryEntry {
            time,
            command: command.chars().take(200).collect(),
            changes,
        });
        // Bounded by size, newest kept: the journal is read and written on every command.
        let mut bytes = 0;
        let keep = self
            .history
            .iter()
            .rev()
            .take_while(|h| {
                bytes += h.command.len() + h.changes.iter().map(|c| c.len() + 4).sum::<usize>();
                bytes <= HISTORY_BYTES
            })
            .count()
            .max(1);
        let drop = self.history.len() - keep;
        self.history.drain(..drop);
    }
}

/// The journal's files as [`Journal::checkpoint`] found them. Dropped without
/// [`Checkpoint::restore`], the kept copies are removed and the files stay as written.
pub struct Checkpoint {
    /// Each file, and its kept copy (None: the file did not exist).
    kept: Vec<(PathBuf, Option<PathBuf>)>,
}

impl Checkpoint {
    /// Put the files back as they were (a file that did not exist is removed again).
    pub fn restore(mut self) -> Result<()> {
        for (live, saved) in std::mem::take(&mut self.kept) {
            let done = match &saved {
                Some(saved) => fs::rename(saved, &live),
                None => match fs::remove_file(&live) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    r => r,
                },
            };
            done.with_context(|| format!("restoring {}", live.display()))?;
        }
        Ok(())
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        for (_, saved) in self
            .kept
            .iter()
            .filter_map(|(l, s)| s.as_ref().map(|s| (l, s)))
        {
            let _ = fs::remove_file(saved);
        }
    }
}

/// The journal directory for this process's namespace.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    inode: Option<u64>,
    /// How long [`Journal::lock`] waits (None: as long as it takes).
    wait: Option<Duration>,
}

/// SIGINT and SIGTERM: a transaction stops and rolls back on either.
pub const STOP_SIGNALS: [signals::Signal; 2] = [signals::Signal::Int, signals::Signal::Term];

/// The error of a command stopped by SIGINT/SIGTERM, with its conventional exit code.
pub fn interrupted(what: &str) -> Error {
    let sig = if signals::count(&[signals::Signal::Term]) > 0 {
        signals::Signal::Term
    } else {
        signals::Signal::Int
    };
    Error::Interrupted {
        code: signals::exit_code(sig),
        message: format!(
            "interrupted by {} {what}",
            if sig == signals::Signal::Term {
                "SIGTERM"
            } else {
                "SIGINT"
            }
        ),
    }
}

/// The lock file's content: who holds (or last held) it.
fn holder(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
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
        Journal {
            dir,
            inode,
            wait: None,
        }
    }

    /// Wait at most `wait` for the lock (None: as long as it takes).
    pub fn with_wait(mut self, wait: Option<Duration>) -> Self {
        self.wait = wait;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Take the exclusive lock, waiting for another lbctl if needed (as long as `--wait`
    /// allows; a message after 2 s names the holder). From here on SIGINT/SIGTERM no longer
    /// kill lbctl: they are recorded, and a transaction that sees one rolls back and exits
    /// 130/143 — all or nothing, as promised. An interrupt while still waiting exits the same
    /// way with nothing changed.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.dir.join("lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        signals::catch(&STOP_SIGNALS, signals::Restart::Yes);
        let stops = signals::count(&STOP_SIGNALS);
        let start = Instant::now();
        let mut said = false;
        while crate::sys::lock::try_lock_exclusive(&file).is_err() {
            if signals::count(&STOP_SIGNALS) > stops {
                return Err(interrupted(
                    "while waiting for the lock; nothing was changed",
                ));
            }
            let waited = start.elapsed();
            if self.wait.is_some_and(|w| waited >= w) {
                return Err(Error::Runtime(anyhow::anyhow!(
                    "another lbctl is changing this namespace ({}) and --wait {} s passed; \
                     nothing was changed",
                    holder(&path).unwrap_or_else(|| "holder unknown".into()),
                    self.wait.unwrap_or_default().as_secs()
                )));
            }
            if !said && waited >= Duration::from_secs(2) {
                eprintln!(
                    "lbctl: waiting for another lbctl ({}; {}); --wait SECONDS limits the wait",
                    holder(&path).unwrap_or_else(|| "holder unknown".into()),
                    path.display()
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Say who holds it, for `status` and for a waiting lbctl.
        let me = format!(
            "PID {} `{}`",
            std::process::id(),
            std::env::args().skip(1).collect::<Vec<_>>().join(" ")
        );
        let _ = file.set_len(0);
        let _ = file.write_all(me.chars().take(300).collect::<String>().as_bytes());
        // A temporary file a killed run left behind.
        let _ = fs::remove_file(self.dir.join("state.json.tmp"));
        Ok(Lock { _file: file })
    }

    /// Who holds the lock now (`PID 123 `apply -f web.toml``), or None when nobody does.
    pub fn lock_holder(&self) -> Option<String> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new().read(true).write(true).open(&path).ok()?;
        if crate::sys::lock::try_lock_exclusive(&file).is_ok() {
            return None;
        }
        Some(holder(&path).unwrap_or_else(|| "holder unknown".into()))
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
        let state: State = serde_json::from_str(&text).with_context(|| {
            format!(
                "parsing {} (`lbctl adopt` sets it aside and rebuilds what lbctl owns from \
                     its marks)",
                path.display()
            )
        })?;
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
        self.save_parts(state, &state.owned, &state.lb)
    }

    /// Persist `state` with `owned` and `lb` in place of its own (the write-ahead record),
    /// atomically, without copying the state.
    pub fn save_parts(
        &self,
        state: &State,
        owned: &Owned,
        lb: &BTreeMap<String, LbOwned>,
    ) -> Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let view = StateView {
            netns_inode: self.inode,
            intents: &state.intents,
            owned,
            lb,
            history: &state.history,
        };
        let tmp = self.dir.join("state.json.tmp");
        let f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        // Buffered and compact: one write(2) per 64 KiB, not one per JSON token.
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, f);
        serde_json::to_writer(&mut w, &view).context("serializing state")?;
        w.write_all(b"\n").context("writing state")?;
        // No fsync: the rename alone is atomic for every other process, which is what the lock
        // and a crash of lbctl need. Only a power loss could leave a torn file, and a power
        // loss also takes every kernel object the journal describes — on /run, a tmpfs, the
        // journal goes with them. fsync on a disk-backed LBCTL_RUN_DIR cost 1–5 ms per save.
        w.into_inner()
            .map_err(|e| e.into_error())
            .context("writing state")?;
        fs::rename(&tmp, self.file()).context("replacing state.json")?;
        // The sysctl values lbctl replaced, also kept on their own: if the journal is lost,
        // `lbctl adopt` can still put them back.
        let backup = self.dir.join(SYSCTL_BACKUP);
        if owned.sysctl_prior.is_empty() {
            let _ = fs::remove_file(&backup);
        } else {
            let tmp = self.dir.join(format!("{SYSCTL_BACKUP}.tmp"));
            let body = serde_json::to_vec(&owned.sysctl_prior).context("serializing")?;
            fs::write(&tmp, body).context("writing the sysctl backup")?;
            fs::rename(&tmp, &backup).context("replacing the sysctl backup")?;
        }
        Ok(())
    }

    /// Keep the journal's files as they are now (hard links beside them) until the transaction
    /// about to write ahead ends: [`Checkpoint::restore`] puts them back on a rollback. The
    /// rollback needs no second copy of the state in memory — at 10,000 VIPs that copy was
    /// megabytes of the peak.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let mut kept = Vec::new();
        for name in [STATE_FILE, SYSCTL_BACKUP] {
            let live = self.dir.join(name);
            let saved = self.dir.join(format!("{name}.prev"));
            match fs::remove_file(&saved) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Runtime(
                        anyhow::Error::new(e).context(format!("removing {}", saved.display())),
                    ))
                }
            }
            let saved = match fs::hard_link(&live, &saved) {
                Ok(()) => Some(saved),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(Error::Runtime(
                        anyhow::Error::new(e)
                            .context(format!("keeping {} for a rollback", live.display())),
                    ))
                }
            };
            kept.push((live, saved));
        }
        Ok(Checkpoint { kept })
    }

    /// The prior sysctl values saved beside the journal (empty when there are none).
    pub fn sysctl_backup(&self) -> BTreeMap<crate::model::SysctlKey, String> {
        fs::read(self.dir.join(SYSCTL_BACKUP))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// A journal that does not parse is renamed `state.json.corrupt-SECONDS` (kept for
    /// inspection) so that lbctl can start from its marks. Returns the new name, if any.
    pub fn set_aside_if_corrupt(&self) -> Result<Option<PathBuf>> {
        let path = self.file();
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(None);
        };
        if serde_json::from_str::<State>(&text).is_ok() {
            return Ok(None);
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = self.dir.join(format!("state.json.corrupt-{secs}"));
        fs::rename(&path, &aside).with_context(|| format!("renaming {}", path.display()))?;
        Ok(Some(aside))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_by_size() {
        let mut s = State::default();
        for i in 0..200 {
            s.record(
                &format!("apply {i}"),
                (0..1000)
                    .map(|k| format!("ip addr add 198.18.{}.{}/32 dev lo", k / 250, k % 250))
                    .collect::<Vec<_>>(),
            );
        }
        let bytes: usize = s
            .history
            .iter()
            .map(|h| h.changes.iter().map(String::len).sum::<usize>())
            .sum();
        assert!(bytes <= HISTORY_BYTES, "{bytes}");
        let last = s.history.last().unwrap();
        assert_eq!(last.command, "apply 199");
        assert_eq!(last.changes.len(), HISTORY_RUN_LINES + 1);
        assert_eq!(last.changes[HISTORY_RUN_LINES], "… 950 more change(s)");
        assert!(s.history.len() > 10, "{}", s.history.len());
    }

    /// A journal in a fresh directory of its own.
    fn scratch(tag: &str) -> Journal {
        let dir = std::env::temp_dir().join(format!("lbctl-journal-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Journal {
            dir,
            inode: Some(1),
            wait: None,
        }
    }

    fn state_with(sysctl: Option<&str>, command: &str) -> State {
        let mut s = State::default();
        if let Some(v) = sysctl {
            s.owned.sysctl_prior.insert(
                crate::model::SysctlKey("net/ipv4/conf/all/arp_ignore".into()),
                v.into(),
            );
        }
        s.record(command, Vec::new());
        s
    }

    #[test]
    fn checkpoint_restores_both_files_or_keeps_the_new_ones() {
        let j = scratch("restore");
        j.save(&state_with(Some("0"), "first")).unwrap();
        let before = fs::read(j.file()).unwrap();
        let backup_before = fs::read(j.dir.join(SYSCTL_BACKUP)).unwrap();

        // Rolled back: the files are byte for byte what they were, the kept copies gone.
        let c = j.checkpoint().unwrap();
        j.save(&state_with(Some("1"), "second")).unwrap();
        assert_ne!(fs::read(j.file()).unwrap(), before);
        c.restore().unwrap();
        assert_eq!(fs::read(j.file()).unwrap(), before);
        assert_eq!(fs::read(j.dir.join(SYSCTL_BACKUP)).unwrap(), backup_before);
        assert_eq!(j.load().unwrap().history[0].command, "first");

        // Kept: the new files stay, and no copy is left behind.
        let c = j.checkpoint().unwrap();
        j.save(&state_with(None, "third")).unwrap();
        drop(c);
        assert_eq!(j.load().unwrap().history.last().unwrap().command, "third");
        assert!(!j.dir.join(SYSCTL_BACKUP).exists());
        let left: Vec<_> = fs::read_dir(&j.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".prev"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(&j.dir).unwrap();
    }

    #[test]
    fn checkpoint_of_no_journal_restores_no_journal() {
        let j = scratch("none");
        fs::create_dir_all(&j.dir).unwrap();
        let c = j.checkpoint().unwrap();
        j.save(&state_with(Some("0"), "first")).unwrap();
        c.restore().unwrap();
        assert!(!j.file().exists());
        assert!(!j.dir.join(SYSCTL_BACKUP).exists());
        assert!(j.load().unwrap().history.is_empty());
        fs::remove_dir_all(&j.dir).unwrap();
    }
}
