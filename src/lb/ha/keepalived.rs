//! The keepalived side of `[ha]`: the generated configuration (VRRP only for `lb run`, the full
//! file with `virtual_server` blocks for `lb export keepalived`) and the supervisor that `lb run`
//! drives once per main-loop turn.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::Ha;
use crate::sys::keepalived::{self as ka, Files};
use crate::sys::Sys;

/// What goes into one `vrrp_instance`.
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    /// The LB file's name (router_id and instance name are derived from it).
    pub name: &'a str,
    pub ha: &'a Ha,
    pub iface: &'a str,
    /// unicast_src_ip (unicast only).
    pub src: Option<IpAddr>,
    pub vips: &'a [IpAddr],
    /// `vrrp_notify_fifo` (lb run reads it).
    pub fifo: Option<&'a Path>,
    /// `vrrp_track_file` with weight 0 (lb run writes it).
    pub track: Option<&'a Path>,
}

pub fn instance_name(lb: &str) -> String {
    format!(
        "lbctl_{}",
        lb.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    )
}

fn advert(d: Duration) -> String {
    let cs = d.as_millis() / 10;
    if cs % 100 == 0 {
        format!("{}", cs / 100)
    } else {
        format!("{}.{:02}", cs / 100, cs % 100)
    }
}

/// `global_defs` + track file + `vrrp_instance`.
pub fn render_vrrp(i: &Instance<'_>) -> String {
    let mut s = String::new();
    let inst = instance_name(i.name);
    let _ = writeln!(s, "global_defs {{");
    let _ = writeln!(s, "    router_id {inst}");
    let _ = writeln!(s, "    vrrp_version 3");
    // Without these a track_script is silently dropped (no keepalived_script user on Debian).
    let _ = writeln!(s, "    script_user root");
    let _ = writeln!(s, "    enable_script_security");
    let _ = writeln!(s, "    vrrp_garp_master_delay 5");
    let _ = writeln!(s, "    vrrp_garp_master_repeat 5");
    if let Some(f) = i.fifo {
        let _ = writeln!(s, "    vrrp_notify_fifo {}", f.display());
    }
    let _ = writeln!(s, "}}\n");
    if let Some(t) = i.track {
        let _ = writeln!(s, "vrrp_track_file {inst}_quorum {{");
        let _ = writeln!(s, "    file \"{}\"", t.display());
        let _ = writeln!(s, "    weight 0    # non-zero: FAULT (service quorum lost)");
        let _ = writeln!(s, "}}\n");
    }
    // One instance speaks one family: the peers', else the first VIP's (IPv4 first).
    let v4 = match i.ha.peers.first() {
        Some(p) => p.is_ipv4(),
        None => i.vips.iter().any(|v| v.is_ipv4()) || i.vips.is_empty(),
    };
    let _ = writeln!(s, "vrrp_instance {inst} {{");
    let _ = writeln!(
        s,
        "    state BACKUP    # both start BACKUP; the priority elects the MASTER"
    );
    let _ = writeln!(s, "    interface {}", i.iface);
    let _ = writeln!(s, "    virtual_router_id {}", i.ha.vrid);
    let _ = writeln!(s, "    priority {}", i.ha.priority);
    let _ = writeln!(s, "    advert_int {}", advert(i.ha.advert));
    if !i.ha.preempt {
        let _ = writeln!(s, "    nopreempt");
    }
    if !i.ha.peers.is_empty() {
        if let Some(src) = i.src {
            let _ = writeln!(s, "    unicast_src_ip {src}");
        }
        let _ = writeln!(s, "    unicast_peer {{");
        for p in &i.ha.peers {
            let _ = writeln!(s, "        {p}");
        }
        let _ = writeln!(s, "    }}");
    }
    let (same, other): (Vec<&IpAddr>, Vec<&IpAddr>) =
        i.vips.iter().partition(|v| v.is_ipv4() == v4);
    let vip = |a: &IpAddr| format!("{a}/{} dev {}", if a.is_ipv4() { 32 } else { 128 }, i.iface);
    let _ = writeln!(s, "    virtual_ipaddress {{");
    for a in &same {
        let _ = writeln!(s, "        {}", vip(a));
    }
    let _ = writeln!(s, "    }}");
    if !other.is_empty() {
        let _ = writeln!(s, "    virtual_ipaddress_excluded {{");
        for a in &other {
            let _ = writeln!(s, "        {}", vip(a));
        }
        let _ = writeln!(s, "    }}");
    }
    if i.track.is_some() {
        let _ = writeln!(s, "    track_file {{\n        {inst}_quorum\n    }}");
    }
    let _ = writeln!(s, "}}");
    s
}

/// The role as `lb status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HaStatus {
    /// `MASTER`, `BACKUP`, `FAULT`, `STOP`, `starting` or `down` (keepalived not running).
    pub role: String,
    /// The effective priority keepalived reported last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    pub vrid: u8,
    pub configured_priority: u8,
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalived_pid: Option<u32>,
    pub restarts: u64,
    /// True while the track file says FAULT (a service lost its quorum).
    pub quorum_fault: bool,
    pub since: String,
    pub config: String,
}

/// `lb run`'s keepalived: started, followed through its notify FIFO, restarted when it dies
/// (after deleting the VIPs a SIGKILLed keepalived leaves on the NIC), stopped with lb run.
pub struct Supervisor {
    bin: PathBuf,
    files: Files,
    conf: String,
    iface: String,
    vips: Vec<IpAddr>,
    vrid: u8,
    priority: u8,
    tracking: bool,
    /// The priority-0 advert sent for a SIGKILLed MASTER (either family; unicast peers or multicast).
    resign: Option<ka::Resign>,
    child: Option<Child>,
    rx: Receiver<String>,
    role: String,
    prio: Option<u32>,
    since: SystemTime,
    restarts: u64,
    next_start: Option<Instant>,
    fault: bool,
}

impl Supervisor {
    /// Render the config and have keepalived validate it (`keepalived -t`, in a scratch file
    /// next to the real one, so a running keepalived's file is untouched). Nothing starts.
    pub fn prepare(i: &Instance<'_>, dir: &Path) -> Result<Supervisor, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let files = Files::in_dir(dir);
        let conf = render_vrrp(&Instance {
            fifo: Some(&files.fifo),
            track: i.ha.track_quorum.then_some(files.track.as_path()),
            ..i.clone()
        });
        let scratch = dir.join(format!("keepalived.conf.test-{}", std::process::id()));
        let tested = std::fs::write(&scratch, &conf)
            .map_err(|e| format!("writing {}: {e}", scratch.display()))
            .and_then(|()| ka::config_test(&i.ha.keepalived, &scratch));
        let _ = std::fs::remove_file(&scratch);
        tested?;
        let (_, rx) = channel();
        Ok(Supervisor {
            bin: i.ha.keepalived.clone(),
            files,
            conf,
            iface: i.iface.to_string(),
            vips: i.vips.to_vec(),
            vrid: i.ha.vrid,
            priority: i.ha.priority,
            tracking: i.ha.track_quorum,
            // The instance's family is the peers', else the VIPs' (IPv4 first), as rendered.
            resign: {
                let v4 = i.ha.peers.first().map_or_else(
                    || i.vips.iter().any(|v| v.is_ipv4()) || i.vips.is_empty(),
                    |p| p.is_ipv4(),
                );
                Some(ka::Resign {
                    iface: i.iface.to_string(),
                    // Multicast IPv6: the link-local address, looked up when sending.
                    src: i.src.filter(|a| a.is_ipv4() == v4),
                    v4,
                    peers: i
                        .ha
                        .peers
                        .iter()
                        .filter(|p| p.is_ipv4() == v4)
                        .copied()
                        .collect(),
                    vrid: i.ha.vrid,
                    advert_cs: (i.ha.advert.as_millis() / 10) as u16,
                    vips: i
                        .vips
                        .iter()
                        .filter(|v| v.is_ipv4() == v4)
                        .copied()
                        .collect(),
                })
            },
            child: None,
            rx,
            role: "starting".into(),
            prio: None,
            since: SystemTime::now(),
            restarts: 0,
            next_start: None,
            fault: false,
        })
    }

    /// Write the files and start keepalived (after stopping one a SIGKILLed predecessor left).
    pub fn launch(&mut self) -> Result<u32, String> {
        std::fs::write(&self.files.conf, &self.conf)
            .map_err(|e| format!("writing {}: {e}", self.files.conf.display()))?;
        ka::write_track(&self.files.track, false)
            .map_err(|e| format!("writing {}: {e}", self.files.track.display()))?;
        ka::make_fifo(&self.files.fifo)
            .map_err(|e| format!("mkfifo {}: {e}", self.files.fifo.display()))?;
        let (tx, rx) = channel();
        ka::follow_fifo(&self.files.fifo, tx)
            .map_err(|e| format!("opening {}: {e}", self.files.fifo.display()))?;
        self.rx = rx;
        // A keepalived of a previous lb run would fight this one over the VRID.
        for f in [&self.files.pid, &self.files.vrrp_pid] {
            if let Some(pid) = ka::live_pid(f, &self.files.conf) {
                ka::stop_orphan(pid, Duration::from_secs(3));
            }
        }
        self.spawn()
            .map_err(|e| format!("starting {}: {e}", self.bin.display()))?;
        Ok(self.child.as_ref().map(|c| c.id()).unwrap_or(0))
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let c = ka::spawn(&self.bin, &self.files)?;
        self.child = Some(c);
        self.set_role("starting", None);
        Ok(())
    }

    fn set_role(&mut self, role: &str, prio: Option<u32>) -> bool {
        let changed = self.role != role;
        if changed {
            self.since = SystemTime::now();
        }
        self.role = role.to_string();
        if prio.is_some() {
            self.prio = prio;
        }
        changed
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    /// Take over a freshly prepared (and `keepalived -t`-checked) configuration: write it and
    /// send keepalived SIGHUP. Ok(false) when nothing changed.
    pub fn adopt(&mut self, new: Supervisor) -> Result<bool, String> {
        if new.conf == self.conf {
            return Ok(false);
        }
        std::fs::write(&self.files.conf, &new.conf)
            .map_err(|e| format!("writing {}: {e}", self.files.conf.display()))?;
        self.conf = new.conf;
        self.vips = new.vips;
        self.vrid = new.vrid;
        self.priority = new.priority;
        self.tracking = new.tracking;
        self.resign = new.resign;
        self.bin = new.bin;
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGHUP);
            }
        }
        Ok(true)
    }

    /// One supervision step: read the FIFO, write the track file, notice a dead keepalived
    /// (delete its VIPs, restart it after a pause). Returns lines to log.
    pub fn tick(&mut self, sys: &Sys, quorum_fault: bool) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.rx.try_recv() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() >= 3 && w[0] == "INSTANCE" {
                let prio = w.get(3).and_then(|p| p.parse().ok());
                let state = w[2];
                if matches!(state, "MASTER" | "BACKUP" | "FAULT" | "STOP") {
                    if self.set_role(state, prio) {
                        out.push(format!(
                            "VRRP: {state} (VRID {}, priority {}){}",
                            self.vrid,
                            prio.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                            match state {
                                "MASTER" => " — keepalived owns the VIPs and announced them",
                                "BACKUP" => " — VIPs released, data path kept warm",
                                "FAULT" => " — VIPs released",
                                _ => "",
                            }
                        ));
                    }
                } else {
                    out.push(format!("VRRP event: {}", w[2..].join(" ")));
                }
            }
        }
        let quorum_fault = quorum_fault && self.tracking;
        if quorum_fault != self.fault {
            match ka::write_track(&self.files.track, quorum_fault) {
                Ok(()) => {
                    self.fault = quorum_fault;
                    out.push(if quorum_fault {
                        "service quorum lost: VRRP track file set, keepalived goes to FAULT".into()
                    } else {
                        "service quorum back: VRRP track file cleared".into()
                    });
                }
                Err(e) => out.push(format!("writing {}: {e}", self.files.track.display())),
            }
        }
        let died = match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Some(st.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        };
        if let Some(why) = died {
            self.child = None;
            out.push(format!("keepalived died ({why})"));
            let was_master = self.role == "MASTER";
            // Its VRRP child stops cleanly on its own when only the parent died (priority-0
            // advert, VIPs removed); give it the chance, then make sure.
            let child_left = ka::live_pid(&self.files.vrrp_pid, &self.files.conf);
            if let Some(pid) = child_left {
                ka::stop_orphan(pid, Duration::from_secs(2));
            }
            let n = self.drop_vips(sys, &mut out);
            if n > 0 {
                out.push(format!(
                    "deleted {n} VIP(s) keepalived left on {} (it cannot remove them when killed)",
                    self.iface
                ));
            }
            // A SIGKILLed master sends no priority-0 advert: send it, so the backup takes over
            // after its skew time, not the whole master-down interval.
            if was_master && child_left.is_none() {
                if let Some(r) = &self.resign {
                    let mut r = r.clone();
                    if r.src.is_none() {
                        r.src = resign_src(sys, &r);
                    }
                    match ka::send_resign(&r) {
                        Ok(()) => out.push(format!(
                            "sent the priority-0 VRRP advert keepalived could not (VRID {})",
                            r.vrid
                        )),
                        Err(e) => out.push(format!("sending the priority-0 advert: {e}")),
                    }
                }
            }
            self.set_role("down", None);
            // Crash loops cost one start per few seconds, not a busy loop.
            let pause = Duration::from_secs((1u64 << self.restarts.min(4)).min(15));
            self.next_start = Some(Instant::now() + pause);
        }
        if self.child.is_none() && self.next_start.is_some_and(|t| Instant::now() >= t) {
            self.next_start = None;
            self.restarts += 1;
            match ka::config_test(&self.bin, &self.files.conf).and_then(|()| {
                self.spawn()
                    .map_err(|e| format!("starting {}: {e}", self.bin.display()))
            }) {
                Ok(()) => out.push(format!(
                    "keepalived restarted (restart {}), PID {}",
                    self.restarts,
                    self.child.as_ref().map(|c| c.id()).unwrap_or(0)
                )),
                Err(e) => {
                    out.push(format!("restarting keepalived failed: {e}"));
                    self.next_start = Some(Instant::now() + Duration::from_secs(5));
                }
            }
        }
        out
    }

    /// Delete our VIPs from the interface (whoever added them).
    fn drop_vips(&self, sys: &Sys, out: &mut Vec<String>) -> usize {
        let Ok(addrs) = sys.addresses() else {
            out.push("could not list addresses to delete the VIPs".into());
            return 0;
        };
        let mut n = 0;
        for a in addrs {
            if a.obj.dev == self.iface && self.vips.contains(&a.obj.addr) {
                match sys.addr_del(&a.obj) {
                    Ok(()) => n += 1,
                    Err(e) => out.push(format!("deleting {}: {e}", a.obj)),
                }
            }
        }
        n
    }

    /// Stop keepalived (clean stop: priority-0 advert, VIPs removed); delete any VIP it left.
    pub fn stop(&mut self, sys: &Sys) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(mut c) = self.child.take() {
            if !ka::stop(&mut c, Duration::from_secs(5)) {
                out.push("keepalived ignored SIGTERM for 5 s and was killed".into());
            }
        }
        if let Some(pid) = ka::live_pid(&self.files.vrrp_pid, &self.files.conf) {
            ka::stop_orphan(pid, Duration::from_secs(2));
        }
        let n = self.drop_vips(sys, &mut out);
        if n > 0 {
            out.push(format!("deleted {n} VIP(s) left on {}", self.iface));
        }
        self.set_role("down", None);
        out
    }

    pub fn status(&self) -> HaStatus {
        HaStatus {
            role: self.role.clone(),
            priority: self.prio,
            vrid: self.vrid,
            configured_priority: self.priority,
            interface: self.iface.clone(),
            keepalived_pid: self.child.as_ref().map(|c| c.id()),
            restarts: self.restarts,
            quorum_fault: self.fault,
            since: crate::sys::capture::rfc3339(self.since),
            config: self.files.conf.display().to_string(),
        }
    }
}

/// The source of a multicast priority-0 advert, as keepalived picks it: the interface's IPv4
/// address (not a /32 VIP), or its IPv6 link-local address.
fn resign_src(sys: &Sys, r: &ka::Resign) -> Option<IpAddr> {
    let addrs: Vec<(IpAddr, u8)> = sys
        .addresses()
        .ok()?
        .into_iter()
        .filter(|a| a.obj.dev == r.iface && !r.vips.contains(&a.obj.addr))
        .map(|a| (a.obj.addr, a.obj.prefix))
        .collect();
    if r.v4 {
        let v4 = addrs.iter().filter(|(a, _)| a.is_ipv4());
        v4.clone()
            .find(|(_, len)| *len < 32)
            .or(v4.clone().next())
            .map(|(a, _)| *a)
    } else {
        addrs.iter().map(|(a, _)| *a).find(|a| match a {
            IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
            IpAddr::V4(_) => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrrp_block() {
        let ha = super::super::ha(
            &toml::from_str(
                "virtual_router_id = 51\npriority = 150\nadvert_interval = \"1.5s\"\npeers = [\"198.18.0.3\"]",
            )
            .unwrap(),
        )
        .unwrap();
        let vips: Vec<IpAddr> = vec![
            "198.18.0.100".parse().unwrap(),
            "2001:db8::100".parse().unwrap(),
        ];
        let c = render_vrrp(&Instance {
            name: "web.1",
            ha: &ha,
            iface: "eth0",
            src: Some("198.18.0.2".parse().unwrap()),
            vips: &vips,
            fifo: Some(Path::new("/run/x/notify.fifo")),
            track: Some(Path::new("/run/x/quorum.track")),
        });
        for want in [
            "vrrp_instance lbctl_web_1 {",
            "virtual_router_id 51",
            "priority 150",
            "advert_int 1.50",
            "unicast_src_ip 198.18.0.2",
            "        198.18.0.3\n",
            "198.18.0.100/32 dev eth0",
            "virtual_ipaddress_excluded {\n        2001:db8::100/128 dev eth0",
            "script_user root",
            "enable_script_security",
            "vrrp_notify_fifo /run/x/notify.fifo",
            "weight 0",
            "track_file {\n        lbctl_web_1_quorum",
        ] {
            assert!(c.contains(want), "missing {want:?} in\n{c}");
        }
        assert!(!c.contains("virtual_server"));
    }
}
