//! Service-level behaviour of `lb run` (issue 17): with every backend down and
//! `on_quorum_loss = "withdraw"` the VIP is released (nobody answers ARP for it: no silent SYN
//! black hole) and comes back with the backends; `on_quorum_loss = "sorry"` sends new requests to
//! the sorry server; `notify` hooks run with the transition in their environment.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{httpd, plug, Bg, Lbctl, Netns, TempDir};

const VIP: &str = "198.18.0.100";
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

struct Lab {
    daemon: Option<Bg>,
    servers: Vec<Option<Bg>>,
    www: Vec<TempDir>,
    cfg: TempDir,
    lb_run: Lbctl,
    client: Lbctl,
    client_ns: Netns,
    _be: Vec<Netns>,
    lb: Netns,
    _sw: Netns,
}

/// Client, balancer, be1 (198.18.0.11, a backend) and be2 (198.18.0.12, the sorry server).
fn lab() -> Lab {
    let sw = Netns::new("sw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let client_ns = Netns::new("client");
    plug(
        &sw,
        &client_ns,
        "sw-client",
        "02:00:00:00:00:10",
        "198.18.0.10/24",
    );
    let lb = Netns::new("lb");
    plug(&sw, &lb, "sw-lb", "02:00:00:00:00:02", "198.18.0.2/24");
    let mut be = Vec::new();
    let mut servers = Vec::new();
    let mut www = Vec::new();
    for i in 1..=2 {
        let ns = Netns::new(&format!("be{i}"));
        let rip = format!("198.18.0.1{i}");
        plug(
            &sw,
            &ns,
            &format!("sw-be{i}"),
            &format!("02:00:00:00:00:1{i}"),
            &format!("{rip}/24"),
        );
        let run = Lbctl::new(&ns);
        run.ok(&["arp", "suppress", VIP, "--real-ip", &rip]);
        run.ok(&["vip", "add", VIP]);
        let dir = TempDir::new(&format!("www{i}"));
        std::fs::write(dir.path().join("index.html"), format!("be{i}\n")).unwrap();
        servers.push(Some(httpd(&ns, &dir)));
        www.push(dir);
        be.push(ns);
    }
    Lab {
        daemon: None,
        servers,
        www,
        cfg: TempDir::new("cfg"),
        lb_run: Lbctl::new(&lb),
        client: Lbctl::new(&client_ns),
        client_ns,
        _be: be,
        lb,
        _sw: sw,
    }
}

impl Lab {
    fn start(&mut self, service_extra: &str) {
        self.start_with(service_extra, "type = \"tcp\"\n");
    }

    fn start_with(&mut self, service_extra: &str, check: &str) {
        self.start_full("", service_extra, check);
    }

    fn start_full(&mut self, head: &str, service_extra: &str, check: &str) {
        let hook = self.cfg.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho \"$LBCTL_EVENT $LBCTL_SERVICE $LBCTL_STATE ${{LBCTL_BACKEND:-}}\" >> {}\n",
                self.cfg.path().join("hook.log").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cfg = self.cfg.path().join("web.toml");
        std::fs::write(
            &cfg,
            format!(
                "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n{head}\
                 [[service]]\nvip = \"{VIP}:80\"\nnotify = [\"{}\"]\n{service_extra}\
                 [service.check]\n{check}interval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 1\n\
                 [[service.backend]]\nrip = \"198.18.0.11\"\nweight = 10\n",
                hook.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.cfg.path().join("daemon.log")).unwrap();
        self.daemon = Some(Bg(Command::new(LBCTL)
            .args(["--netns", self.lb.name(), "lb", "run", "-c"])
            .arg(&cfg)
            .env("LBCTL_RUN_DIR", self.lb_run.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lb run")));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.cfg.path().join("daemon.log")).unwrap_or_default()
    }

    fn hook_log(&self) -> String {
        std::fs::read_to_string(self.cfg.path().join("hook.log")).unwrap_or_default()
    }

    /// MACs answering ARP for the VIP, seen from the client.
    fn responders(&self) -> usize {
        let out = self.client.run(&[
            "--json",
            "arp",
            "who-has",
            VIP,
            "--iface",
            "eth0",
            "--timeout",
            "300",
        ]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["answers"].as_array().map(|a| a.len()))
            .unwrap_or(0)
    }

    fn get(&self) -> String {
        self.client_ns
            .exec(&["curl", "-s", "-m", "2", &format!("http://{VIP}/")])
            .stdout
            .trim()
            .to_string()
    }

    #[track_caller]
    fn wait(&self, what: &str, pred: impl Fn(&Lab) -> bool) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if pred(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out waiting for: {what}\nstatus: {}\ndaemon log:\n{}\nhooks:\n{}",
            self.lb_run.run(&["lb", "status"]),
            self.log(),
            self.hook_log()
        );
    }
}

#[test]
fn withdraw_releases_the_vip_and_takes_it_back() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    lab.start("on_quorum_loss = \"withdraw\"\n");
    lab.wait("the VIP answers through be1", |l| l.get() == "be1");
    assert_eq!(lab.responders(), 1);
    // Every backend down: the VIP goes (no ARP answer), lb status says why.
    lab.servers[0] = None;
    lab.wait("the VIP withdrawn", |l| {
        !l.lb.addrs("eth0").iter().any(|a| a.starts_with(VIP)) && l.responders() == 0
    });
    let st = lab.lb_run.run(&["--json", "lb", "status"]).json();
    let svc = &st["daemons"][0]["services"][0];
    assert_eq!(svc["quorum_lost"], true, "{st:#}");
    assert_eq!(svc["withdrawn"], true, "{st:#}");
    // status must not call the missing VIP a kernel problem: it was withdrawn on purpose
    assert!(
        st["daemons"][0]["kernel"]["problems"]
            .as_array()
            .is_some_and(|p| p.is_empty()),
        "{st:#}"
    );
    // Backend back: the VIP is owned and announced again.
    lab.servers[0] = Some(httpd(&lab._be[0], &lab.www[0]));
    lab.wait("the VIP back", |l| l.responders() == 1 && l.get() == "be1");
    lab.wait("hooks ran", |l| {
        let h = l.hook_log();
        h.contains("service 198.18.0.100:80 quorum-lost")
            && h.contains("service 198.18.0.100:80 quorum ")
            && h.contains("backend 198.18.0.100:80 down 198.18.0.11")
            && h.contains("backend 198.18.0.100:80 up 198.18.0.11")
    });
    drop(lab.daemon.take());
}

#[test]
fn sorry_server_serves_while_the_quorum_is_lost() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    lab.start("on_quorum_loss = \"sorry\"\nsorry_server = \"198.18.0.12\"\n");
    lab.wait("be1 serves", |l| l.get() == "be1");
    lab.servers[0] = None;
    lab.wait("the sorry server serves", |l| l.get() == "be2");
    assert_eq!(lab.responders(), 1, "the VIP stays with a sorry server");
    lab.servers[0] = Some(httpd(&lab._be[0], &lab.www[0]));
    lab.wait("be1 serves again", |l| l.get() == "be1");
    drop(lab.daemon.take());
}

/// `weight_from_exit` (keepalived's misc_dynamic): exit 0 = configured weight, 2-255 = weight
/// code − 2, 1 = down.
#[test]
fn exec_check_exit_code_sets_the_weight() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    let code = lab.cfg.path().join("code");
    std::fs::write(&code, "0").unwrap();
    lab.start_with(
        "",
        &format!(
            "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"exit $(cat {})\"]\nweight_from_exit = true\n",
            code.display()
        ),
    );
    let weight = |l: &Lab| -> (String, i64) {
        let out = l.lb_run.run(&["--json", "lb", "status"]);
        let st: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        let b = &st["daemons"][0]["services"][0]["backends"][0];
        (
            b["state"].as_str().unwrap_or("").to_string(),
            b["effective_weight"].as_i64().unwrap_or(-1),
        )
    };
    lab.wait("up at the configured weight", |l| {
        weight(l) == ("up".into(), 10)
    });
    std::fs::write(&code, "5").unwrap();
    lab.wait("weight 3 from exit 5", |l| weight(l) == ("up".into(), 3));
    lab.wait("still serving", |l| l.get() == "be1");
    std::fs::write(&code, "1").unwrap();
    lab.wait("down on exit 1", |l| weight(l) == ("down".into(), 0));
    std::fs::write(&code, "0").unwrap();
    lab.wait("back at the configured weight", |l| {
        weight(l) == ("up".into(), 10)
    });
    drop(lab.daemon.take());
}

/// With `[ha]`, a lost quorum (`withdraw`) puts VRRP in FAULT through the track file: keepalived
/// releases the VIP; with the backend back the balancer is MASTER again.
#[test]
fn withdraw_with_ha_goes_to_fault() {
    require_root!();
    require_tool!("busybox");
    if !std::path::Path::new("/usr/sbin/keepalived").is_file() {
        common::skip_or_panic("lb_quorum_ha", "keepalived is not installed");
        return;
    }
    let mut lab = lab();
    // The peer 198.18.0.3 is absent: this balancer becomes MASTER after the master-down interval.
    lab.start_full(
        "[ha]\nvirtual_router_id = 52\npriority = 150\npeers = [\"198.18.0.3\"]\n",
        "on_quorum_loss = \"withdraw\"\n",
        "type = \"tcp\"\n",
    );
    let role = |l: &Lab| -> String {
        let out = l.lb_run.run(&["--json", "lb", "status"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["daemons"][0]["ha"]["role"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    lab.wait("MASTER and serving", |l| {
        role(l) == "MASTER" && l.responders() == 1 && l.get() == "be1"
    });
    lab.servers[0] = None;
    lab.wait("FAULT, VIP released", |l| {
        role(l) == "FAULT" && l.responders() == 0
    });
    lab.servers[0] = Some(httpd(&lab._be[0], &lab.www[0]));
    lab.wait("MASTER again", |l| {
        role(l) == "MASTER" && l.responders() == 1 && l.get() == "be1"
    });
    drop(lab.daemon.take());
}

/// A notify hook that hangs is killed by its PID (with what it started: its process group)
/// after 10 s and logged; the daemon goes on checking and balancing meanwhile.
#[test]
fn hung_notify_hook_is_killed_after_its_timeout() {
    require_root!();
    require_tool!("busybox");
    require_tool!("curl");
    let mut lab = lab();
    lab.start("");
    lab.wait("be1 serves", |l| l.get() == "be1");
    let pids = lab.cfg.path().join("hook.pids");
    // The next transition runs a hook that never ends (a shell waiting for a child).
    std::fs::write(
        lab.cfg.path().join("hook.sh"),
        format!(
            "#!/bin/sh\nsleep 300 &\necho $$ $! > {}\nwait\n",
            pids.display()
        ),
    )
    .unwrap();
    let start = Instant::now();
    lab.servers[0] = None;
    lab.wait("the hook started", |_| {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.split_whitespace().count() == 2)
    });
    let hook_pids: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let gone = |pid: u32| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    };
    // While it hangs, the daemon still works: the backend comes back.
    lab.servers[0] = Some(httpd(&lab._be[0], &lab.www[0]));
    lab.wait("be1 serves again while the hook hangs", |l| {
        l.get() == "be1"
    });
    assert!(hook_pids.iter().all(|p| !gone(*p)), "the hook ended early");
    lab.wait("the hook killed and logged", |l| {
        l.log().contains("still running after 10 s: killed")
    });
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "killed before its timeout"
    );
    lab.wait("the hook and its child gone", |_| {
        hook_pids.iter().all(|p| gone(*p))
    });
    assert!(
        lab.log().contains(&format!("(PID {})", hook_pids[0])),
        "{}",
        lab.log()
    );
    drop(lab.daemon.take());
}
