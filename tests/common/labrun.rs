//! What every `lbctl lab` test needs: a private run dir whose labs are taken down on drop, and
//! the "nothing left behind" assertion (no namespace, no process, no record). Used by
//! tests/lab.rs, tests/lab_bgp.rs and tests/lab_vrrp.rs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbctl::lab::{self, LabSpec};
use serde_json::Value;

use super::{run_cmd, Out, TempDir, LBCTL};

/// A lab name unique to this process: `t<pid>-<tag>`.
pub fn lab_name(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

/// A private run dir. On drop (also when a test panics) every lab recorded in it is taken
/// down, then the directory is removed.
pub struct Run {
    _tmp: TempDir,
    pub dir: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Err(e) = lab::down_all(&self.dir) {
            eprintln!("warning: cleaning up labs in {}: {e}", self.dir.display());
        }
    }
}

impl Run {
    pub fn new(tag: &str) -> Run {
        let tmp = TempDir::new(tag);
        let dir = tmp.path().join("run");
        Run { _tmp: tmp, dir }
    }

    /// The run dir as `LBCTL_RUN_DIR` wants it.
    pub fn env(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// `lbctl ARGS…` with this run dir.
    pub fn lbctl(&self, args: &[&str]) -> Out {
        let mut argv = vec![LBCTL];
        argv.extend_from_slice(args);
        run_cmd(&argv, &[("LBCTL_RUN_DIR", &self.env())], None)
    }

    /// A library-API spec of lab `name` in this run dir.
    pub fn spec(&self, name: &str) -> LabSpec {
        LabSpec {
            run_dir: self.dir.clone(),
            ..LabSpec::new(name, LBCTL)
        }
    }

    /// A record of `name` exists.
    pub fn has_record(&self, name: &str) -> bool {
        lab::state::lab_dir(&self.dir, name).exists()
    }

    /// `lab status --json --name NAME`: (exit code, the lab's object).
    pub fn status(&self, name: &str) -> (i32, Value) {
        let out = self.lbctl(&["--json", "lab", "status", "--name", name]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("lab status --json: {e}\n{out}"));
        (out.code, v["labs"][0].clone())
    }
}

/// Namespaces of lab `name` that exist now.
pub fn namespaces_of(name: &str) -> Vec<String> {
    let prefix = format!("lbl-{name}-");
    lbctl::sys::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Live processes whose command line mentions `needle`, other than zombies.
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
            })
            .is_some_and(|st| st == "Z");
        if cmd.contains(needle) && !zombie {
            out.push((pid, cmd));
        }
    }
    out
}

/// Processes of lab `name`: command lines naming its namespaces or this run's lab directory.
fn processes_of(run: &Run, name: &str) -> Vec<(u32, String)> {
    let mut left = processes_mentioning(&format!("lbl-{name}-"));
    let dir = lab::state::lab_dir(&run.dir, name);
    left.extend(processes_mentioning(&format!("{}/", dir.display())));
    left.sort();
    left.dedup();
    left
}

/// Nothing of lab `name` remains: no namespace, no process (after a generous wait: stopped
/// processes are reaped by their new parent), no record.
#[track_caller]
pub fn assert_gone(run: &Run, name: &str) {
    assert_eq!(namespaces_of(name), Vec::<String>::new(), "namespaces left");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !processes_of(run, name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_of(run, name), vec![], "processes left");
    assert!(!run.has_record(name), "lab record left");
}
