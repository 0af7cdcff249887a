//! `lbctl doctor`: the DSR troubleshooting checklist, automated.
//!
//! Facts are gathered once (`facts.rs`, through `sys/`); each check is a pure function of the
//! facts that returns [`Finding`]s, so checks are unit-tested with hand-made facts. Every check
//! runs — doctor never stops at the first failure (ripgrep's non-fatal-error model) — and the
//! exit code is the worst outcome: 1 if anything failed, 0 otherwise (warnings included).

pub mod backend;
pub mod bonding;
pub mod engine;
pub mod evidence;
pub mod facts;
pub mod firewall;
pub mod lb;
pub mod segment;

use serde::Serialize;
use serde_json::json;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Skip,
    /// The check could not run (no privilege to read the state, a tool missing): neither a
    /// pass nor a failure, and said so.
    Unknown,
}

impl Status {
    fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::Warn => "!",
            Status::Skip => "–",
            Status::Unknown => "?",
        }
    }
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier for monitoring (`vip.present`, `arp.suppressed`, …).
    pub id: &'static str,
    /// What was checked, and for which object.
    pub title: String,
    pub status: Status,
    /// What was observed (command-like lines a sysadmin can re-run).
    pub evidence: Vec<String>,
    /// The exact fix: a command or an `lbctl` invocation.
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(id: &'static str, title: impl Into<String>, status: Status) -> Self {
        Finding {
            id,
            title: title.into(),
            status,
            evidence: Vec::new(),
            fix: None,
        }
    }
    pub fn pass(id: &'static str, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Pass)
    }
    pub fn fail(id: &'static str, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Fail)
    }
    pub fn warn(id: &'static str, title: impl Into<String>) -> Self {
        Self::new(id, title, Status::Warn)
    }
    /// A check that could not run: `why` says what was missing.
    pub fn unknown(id: &'static str, title: impl Into<String>, why: impl Into<String>) -> Self {
        let mut f = Self::new(id, title, Status::Unknown);
        f.evidence.push(format!("could not check: {}", why.into()));
        f
    }
    pub fn skip(id: &'static str, title: impl Into<String>, why: impl Into<String>) -> Self {
        let mut f = Self::new(id, title, Status::Skip);
        f.evidence.push(why.into());
        f
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }
    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}

/// One fix line for `--netns NS` (see [`Report::in_netns`]).
pub fn fix_in_netns(fix: &str, ns: &str) -> String {
    const HERE: [&str; 7] = [
        "ip ",
        "nft ",
        "sysctl ",
        "arping ",
        "ss ",
        "iptables ",
        "ip6tables ",
    ];
    if fix.starts_with("ip netns exec ") || fix.contains("--netns ") {
        fix.to_string()
    } else if let Some(rest) = fix.strip_prefix("lbctl ") {
        format!("lbctl --netns {ns} {rest}")
    } else if HERE.iter().any(|c| fix.starts_with(c)) {
        format!("ip netns exec {ns} {fix}")
    } else {
        fix.to_string()
    }
}

/// The whole checklist.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub role: &'static str,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn count(&self, s: Status) -> usize {
        self.findings.iter().filter(|f| f.status == s).count()
    }

    /// Rewrite every fix for a run with `--netns NS`: `lbctl …` gets `--netns NS`, and the
    /// commands that act on the current namespace (`ip`, `nft`, `sysctl`, `arping`, …) get
    /// `ip netns exec NS` — so a pasted fix changes that namespace, never the host's own.
    pub fn in_netns(&mut self, ns: &str) {
        for f in &mut self.findings {
            if let Some(fix) = &f.fix {
                f.fix = Some(fix_in_netns(fix, ns));
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "role": self.role,
            "ok": !self.failed(),
            "summary": {
                "pass": self.count(Status::Pass),
                "fail": self.count(Status::Fail),
                "warn": self.count(Status::Warn),
                "skip": self.count(Status::Skip),
                "unknown": self.count(Status::Unknown),
            },
            "checks": self.findings,
        })
    }

    /// The human checklist.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!("{} {}\n", f.status.mark(), f.title));
            let show_evidence = f.status != Status::Pass || f.evidence.len() <= 2;
            if show_evidence {
                // A multi-line message (nft's stderr) stays indented under its check.
                for line in f.evidence.iter().flat_map(|e| e.lines()) {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            if let Some(fix) = &f.fix {
                if f.status == Status::Fail || f.status == Status::Warn {
                    out.push_str(&format!("    fix: {fix}\n"));
                }
            }
        }
        out.push_str(&format!(
            "\n{} passed, {} failed, {} warnings, {} skipped",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Skip)
        ));
        match self.count(Status::Unknown) {
            0 => out.push('\n'),
            n => out.push_str(&format!(", {n} could not be checked\n")),
        }
        out
    }
}

#[cfg(test)]
mod netns_tests {
    use super::fix_in_netns;

    #[test]
    fn fixes_act_inside_the_namespace() {
        assert_eq!(
            fix_in_netns(
                "lbctl arp suppress 198.18.0.100 --real-ip 198.18.0.11",
                "be1"
            ),
            "lbctl --netns be1 arp suppress 198.18.0.100 --real-ip 198.18.0.11"
        );
        assert_eq!(
            fix_in_netns("sysctl -w net.ipv4.conf.all.proxy_arp=0", "be1"),
            "ip netns exec be1 sysctl -w net.ipv4.conf.all.proxy_arp=0"
        );
        let done = "ip netns exec be1 nft insert rule inet filter input accept";
        assert_eq!(fix_in_netns(done, "be1"), done);
        assert_eq!(fix_in_netns("check the cable", "be1"), "check the cable");
    }
}
