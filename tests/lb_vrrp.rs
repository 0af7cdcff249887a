//! Balancer pairs (issue 17): two `lbctl lb run` with `[ha]`, each supervising its own
//! keepalived (VRRP only) in its namespace, a client and a DSR backend on one bridge. After each
//! of SIGKILL of the master's keepalived, SIGKILL of the master's `lb run` and link loss of the
//! master, exactly one balancer answers ARP for the VIP — observed from the client with ARP
//! requests (`lbctl arp who-has`), not assumed — and it is the one `lb status` calls MASTER.
//! Also: bad `[ha]` input is exit 2 with nothing started.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{plug, Bg, Lbctl, Netns, TempDir};
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");
const KEEPALIVED: &str = "/usr/sbin/keepalived";
const MAC: [&str; 2] = ["02:00:00:00:00:02", "02:00:00:00:00:03"];
const ADDR: [&str; 2] = ["198.18.0.2", "198.18.0.3"];

struct Balancer {
    daemon: Option<Bg>,
    cfg: TempDir,
    run: Lbctl,
    ns: Netns,
}

struct Lab {
    // Drop order: daemons and the server before the namespaces.
    lbs: Vec<Balancer>,
    _server: Bg,
    _www: TempDir,
    client: Lbctl,
    _client_ns: Netns,
    _be: Netns,
    sw: Netns,
}

fn config(i: usize, prio: u32) -> String {
    format!(
        "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
         [ha]\nvirtual_router_id = 51\npriority = {prio}\nadvert_interval = \"1s\"\n\
         peers = [\"{}\"]\npreempt = false\n\
         [[service]]\nvip = \"{VIP}:80\"\n\
         [service.check]\ntype = \"tcp\"\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n",
        ADDR[1 - i]
    )
}

fn lab() -> Option<Lab> {
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
    let be = Netns::new("be1");
    plug(&sw, &be, "sw-be1", "02:00:00:00:00:11", "198.18.0.11/24");
    let be_run = Lbctl::new(&be);
    be_run.ok(&["arp", "suppress", VIP, "--real-ip", "198.18.0.11"]);
    be_run.ok(&["vip", "add", VIP]);
    let www = TempDir::new("www");
    std::fs::write(www.path().join("index.html"), "be1\n").unwrap();
    let server = Bg(Command::new("ip")
        .args([
            "netns",
            "exec",
            be.name(),
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
        ])
        .arg(www.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("busybox httpd"));
    let mut lbs = Vec::new();
    for i in 0..2 {
        let ns = Netns::new(&format!("lb{}", i + 1));
        plug(
            &sw,
            &ns,
            &format!("sw-lb{}", i + 1),
            MAC[i],
            &format!("{}/24", ADDR[i]),
        );
        lbs.push(Balancer {
            daemon: None,
            cfg: TempDir::new(&format!("lbcfg{}", i + 1)),
            run: Lbctl::new(&ns),
            ns,
        });
    }
    Some(Lab {
        lbs,
        _server: server,
        _www: www,
        client: Lbctl::new(&client_ns),
        _client_ns: client_ns,
        _be: be,
        sw,
    })
}

impl Balancer {
    fn cfg_path(&self) -> std::path::PathBuf {
        self.cfg.path().join("web.toml")
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(LBCTL)
            .args(["--netns", self.ns.name(), "lb", "run", "-c"])
            .arg(self.cfg_path())
            .env("LBCTL_RUN_DIR", self.run.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lb run");
        self.daemon = Some(Bg(child));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.cfg.path().join("daemon.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<Value> {
        let out = self.run.run(&["--json", "lb", "status"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|v| v["daemons"][0].clone())
    }

    fn role(&self) -> String {
        self.status()
            .filter(|s| s["running"] == true)
            .and_then(|s| s["ha"]["role"].as_str().map(str::to_string))
            .unwrap_or_else(|| "not running".into())
    }

    fn has_vip(&self) -> bool {
        self.ns.addrs("eth0").iter().any(|a| a.starts_with(VIP))
    }

    /// The keepalived PIDs from its pid files (parent, VRRP child).
    fn keepalived_pids(&self) -> Vec<i32> {
        let st = self.status().expect("lb status");
        let conf = std::path::PathBuf::from(st["ha"]["config"].as_str().expect("ha.config"));
        let dir = conf.parent().unwrap().to_path_buf();
        ["keepalived.pid", "vrrp.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }
}

impl Balancer {
    /// `tcpdump -l -n -i eth0 FILTER` in this balancer's namespace, its lines in the file
    /// `name` of its config directory (returned), stopped when the `Bg` is dropped; given a
    /// second to start listening.
    fn tcpdump(&self, name: &str, filter: &str) -> (std::path::PathBuf, Bg) {
        let cap = self.cfg.path().join(name);
        let bg = Bg(Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns.name(),
                "tcpdump",
                "-l",
                "-n",
                "-i",
                "eth0",
            ])
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&cap).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump"));
        std::thread::sleep(Duration::from_secs(1));
        (cap, bg)
    }

    /// SIGKILL both keepalived processes (parent and VRRP child) this balancer's `lb run`
    /// started, by the PIDs in their pid files.
    fn kill_keepalived(&self) {
        let pids = self.keepalived_pids();
        assert_eq!(pids.len(), 2, "keepalived pid files: {pids:?}");
        for p in &pids {
            // SAFETY: kill(2) on the keepalived this test's lb run started.
            unsafe { libc::kill(*p, libc::SIGKILL) };
        }
    }
}

impl Lab {
    /// MACs answering ARP for the VIP, asked from the client.
    fn responders(&self) -> Vec<String> {
        let out = self.client.run(&[
            "--json",
            "arp",
            "who-has",
            VIP,
            "--iface",
            "eth0",
            "--timeout",
            "400",
        ]);
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let mut macs: Vec<String> = v["answers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["mac"].as_str().map(str::to_lowercase))
                    .collect()
            })
            .unwrap_or_default();
        macs.sort();
        macs.dedup();
        macs
    }

    fn logs(&self) -> String {
        self.lbs
            .iter()
            .enumerate()
            .map(|(i, b)| format!("--- lb{} log:\n{}", i + 1, b.log()))
            .collect()
    }

    /// Wait (generously) until exactly balancer `i` answers ARP for the VIP, is MASTER and owns
    /// the VIP, and the other one does not own it.
    #[track_caller]
    fn wait_single_owner(&self, i: usize, what: &str) {
        let start = Instant::now();
        let mut last = (Vec::new(), String::new(), String::new());
        while start.elapsed() < Duration::from_secs(30) {
            let r = self.responders();
            let roles = (self.lbs[0].role(), self.lbs[1].role());
            if r == vec![MAC[i].to_string()]
                && self.lbs[i].has_vip()
                && !self.lbs[1 - i].has_vip()
                && [&roles.0, &roles.1][i] == "MASTER"
            {
                // Still exactly one a moment later (no second claimant arriving late).
                std::thread::sleep(Duration::from_millis(300));
                if self.responders() == vec![MAC[i].to_string()] {
                    return;
                }
            }
            last = (r, roles.0, roles.1);
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{what}: lb{} never became the single ARP responder; last answers {:?}, roles lb1 {} \
             lb2 {}\n{}",
            i + 1,
            last.0,
            last.1,
            last.2,
            self.logs()
        );
    }
}

fn have_keepalived(test: &str) -> bool {
    if std::path::Path::new(KEEPALIVED).is_file() {
        return true;
    }
    common::skip_or_panic(
        test,
        "keepalived is not installed (apt-get install keepalived)",
    )
}

#[test]
fn one_arp_responder_after_keepalived_kill_lb_run_kill_and_link_loss() {
    if !common::can_run_netns_tests("lb_vrrp") || !have_keepalived("lb_vrrp") {
        return;
    }
    let Some(mut lab) = lab() else { return };
    std::fs::write(lab.lbs[0].cfg_path(), config(0, 150)).unwrap();
    std::fs::write(lab.lbs[1].cfg_path(), config(1, 100)).unwrap();
    lab.lbs[0].start();
    // lb1 first: with preempt off, the first one up stays MASTER.
    lab.wait_single_owner(0, "start");
    lab.lbs[1].start();
    let t = Instant::now();
    while lab.lbs[1].role() != "BACKUP" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lb2 never BACKUP\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.wait_single_owner(0, "both running");
    // The BACKUP's data path is warm: its nft table is programmed.
    assert!(lab.lbs[1].ns.nft_table_exists("netdev", "lbctl_lb_web"));
    // The file lb run generated and runs: VRRP only, accepted by keepalived -t.
    let st = lab.lbs[0].status().unwrap();
    let conf = st["ha"]["config"].as_str().unwrap().to_string();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains("vrrp_instance") && !text.contains("virtual_server"),
        "{text}"
    );
    lab.lbs[0]
        .ns
        .exec_ok(&[KEEPALIVED, "-t", "-e", "-f", &conf]);
    let text = lab.lbs[0].run.ok(&["lb", "status"]).stdout;
    assert!(
        text.contains("VRRP MASTER (VRID 51, priority 150"),
        "{text}"
    );

    // 1. SIGKILL of the master's keepalived (parent and VRRP child): keepalived cannot remove
    //    the VIP; lb run must, and restart it.
    lab.lbs[0].kill_keepalived();
    lab.wait_single_owner(1, "after SIGKILL of lb1's keepalived");
    let t = Instant::now();
    while lab.lbs[0].role() != "BACKUP" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "lb1's keepalived not restarted as BACKUP\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = lab.lbs[0].status().unwrap();
    assert!(st["ha"]["restarts"].as_u64() >= Some(1), "{st:#}");
    lab.wait_single_owner(1, "after lb1's keepalived restarted (no preempt)");

    // 2. SIGKILL of the master's lb run (lb2): its keepalived must not stay behind owning the
    //    VIP.
    let ka2 = lab.lbs[1].keepalived_pids();
    drop(lab.lbs[1].daemon.take()); // Bg: SIGKILL + wait
    lab.wait_single_owner(0, "after SIGKILL of lb2's lb run");
    let t = Instant::now();
    while ka2
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "lb2's keepalived survived its lb run: {ka2:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!lab.lbs[1].has_vip());

    // lb2 back as BACKUP.
    lab.lbs[1].start();
    let t = Instant::now();
    while lab.lbs[1].role() != "BACKUP" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lb2 never BACKUP again\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.wait_single_owner(0, "lb2 back");

    // 3. Link loss of the master (lb1): it goes to FAULT and drops the VIP, lb2 takes over.
    lab.sw.ip(&["link", "set", "sw-lb1", "down"]);
    lab.lbs[0].ns.ip(&["link", "set", "eth0", "down"]);
    lab.wait_single_owner(1, "after link loss of lb1");
    let t = Instant::now();
    while lab.lbs[0].role() != "FAULT" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lb1 not FAULT\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!lab.lbs[0].has_vip());
    lab.lbs[0].ns.ip(&["link", "set", "eth0", "up"]);
    lab.sw.ip(&["link", "set", "sw-lb1", "up"]);
    lab.wait_single_owner(1, "lb1's link back (no preempt)");

    // 4. SIGHUP with a changed [ha] (lb1's priority): checked with keepalived -t, handed to
    //    keepalived; removing [ha] is refused (the running configuration stays).
    std::fs::write(lab.lbs[0].cfg_path(), config(0, 120)).unwrap();
    let pid = lab.lbs[0].daemon.as_ref().unwrap().0.id() as i32;
    // SAFETY: kill(2) on this test's own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let t = Instant::now();
    while lab.lbs[0]
        .status()
        .map(|s| s["ha"]["configured_priority"].clone())
        != Some(Value::from(120))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "reload not applied\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg0 = config(0, 120);
    let i = cfg0.find("[ha]").unwrap();
    let j = cfg0.find("[[service]]").unwrap();
    std::fs::write(
        lab.lbs[0].cfg_path(),
        format!("{}{}", &cfg0[..i], &cfg0[j..]),
    )
    .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let t = Instant::now();
    while !lab.lbs[0].log().contains("needs a restart") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "removing [ha] not refused\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.wait_single_owner(1, "after the reloads");
}

#[test]
fn bad_ha_input_is_exit_2_and_starts_nothing() {
    if !common::can_run_netns_tests("lb_vrrp_bad") || !have_keepalived("lb_vrrp_bad") {
        return;
    }
    let sw = Netns::new("sw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let lb = Netns::new("lb");
    plug(&sw, &lb, "sw-lb", MAC[0], "198.18.0.2/24");
    // The link-local address arrives asynchronously: wait, or the first snapshot misses it.
    lb.settle();
    let run = Lbctl::new(&lb);
    let cfg = TempDir::new("cfg");
    let path = cfg.path().join("web.toml");
    let base = config(0, 150);
    // A keepalived that rejects the generated file: its message, exit 2, nothing started.
    let fake = cfg.path().join("keepalived");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho '(keepalived.conf: Line 9) Unknown keyword advert_itn' >&2\nexit 5\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let fake_line = format!("keepalived = \"{}\"", fake.display());
    for (edit, want) in [
        (
            ("preempt = false", fake_line.as_str()),
            "Unknown keyword advert_itn",
        ),
        (
            ("virtual_router_id = 51", "virtual_router_id = 256"),
            "1-255",
        ),
        (("virtual_router_id = 51", "virtual_router_id = 0"), "1-255"),
        (("priority = 150", "priority = 255"), "1-254"),
        (("priority = 150", "priority = 0"), "1-254"),
        (
            ("peers = [\"198.18.0.3\"]", "peers = [\"198.18.7.3\"]"),
            "not on a network of eth0",
        ),
        (
            (
                "preempt = false",
                "keepalived = \"/nonexistent/keepalived\"",
            ),
            "needs keepalived",
        ),
    ] {
        std::fs::write(&path, base.replace(edit.0, edit.1)).unwrap();
        let before = common::snapshot(&lb);
        let out = run.run(&["lb", "run", "-c", path.to_str().unwrap()]);
        out.expect_code(2);
        assert!(out.stderr.contains(want), "{edit:?}: {out}");
        common::assert_same(&before, &common::snapshot(&lb), &format!("{edit:?}"));
        let pids = Command::new("ip")
            .args(["netns", "pids", lb.name()])
            .output()
            .expect("ip netns pids");
        assert!(
            pids.stdout.is_empty(),
            "a process was left in the namespace: {}",
            String::from_utf8_lossy(&pids.stdout)
        );
    }
}

/// `lb export keepalived`: a complete keepalived.conf (vrrp_instance, virtual_server blocks with
/// lb_kind DR, TCP_CHECK / HTTP_GET / MISC_CHECK misc_dynamic) that `keepalived -t` accepts.
#[test]
fn export_keepalived_passes_keepalived_t() {
    if !common::can_run_netns_tests("lb_vrrp_export") || !have_keepalived("lb_vrrp_export") {
        return;
    }
    let lb = Netns::new("lb");
    common::veth_local(&lb, "eth0", "eth1");
    lb.add_addr("eth0", "198.18.0.2/24");
    lb.up("eth0");
    let cfg = TempDir::new("cfg");
    let path = cfg.path().join("web.toml");
    std::fs::write(
        &path,
        "name = \"web\"\n[balancer]\ninterface = \"eth0\"\n\
         [ha]\nvirtual_router_id = 51\npriority = 150\npeers = [\"198.18.0.3\"]\n\
         [[service]]\nvip = \"198.18.0.100:80\"\nscheduler = \"wrr\"\non_quorum_loss = \"sorry\"\n\
         sorry_server = \"198.18.0.20\"\n\
         [service.check]\ntype = \"http\"\npath = \"/health\"\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\nweight = 2\n\
         [[service.backend]]\nrip = \"198.18.0.12\"\n\
         [[service]]\nvip = \"198.18.0.100:443\"\npersistent = 300\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n\
         [[service]]\nvip = \"198.18.0.100:53\"\nprotocol = \"udp\"\n\
         [service.check]\ntype = \"exec\"\ncommand = [\"/bin/true\", \"dns\"]\nweight_from_exit = true\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n",
    )
    .unwrap();
    let out_path = cfg.path().join("keepalived.conf");
    Lbctl::new(&lb).ok(&[
        "lb",
        "export",
        "keepalived",
        "-c",
        path.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&out_path).unwrap();
    for want in [
        "vrrp_instance lbctl_web {",
        "virtual_router_id 51",
        "virtual_server 198.18.0.100 80 {",
        "lb_algo wrr",
        "lb_kind DR",
        "sorry_server 198.18.0.20 80",
        "real_server 198.18.0.11 80 {\n        weight 2",
        "HTTP_GET {",
        "TCP_CHECK {",
        "persistence_timeout 300",
        "protocol UDP",
        "MISC_CHECK {",
        "misc_dynamic",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    lb.exec_ok(&[KEEPALIVED, "-t", "-e", "-f", out_path.to_str().unwrap()]);
    // And back: the virtual_server blocks as an LB file that lbctl accepts.
    let back = cfg.path().join("back.toml");
    Lbctl::new(&lb).ok(&[
        "lb",
        "import",
        "keepalived",
        out_path.to_str().unwrap(),
        "-o",
        back.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&back).unwrap();
    for want in [
        "vip = \"198.18.0.100:80\"",
        "scheduler = \"wrr\"",
        "sorry_server = \"198.18.0.20:80\"",
        "weight_from_exit = true",
        "persistent = 300",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    Lbctl::new(&lb).ok(&["--dry-run", "lb", "apply", "-f", back.to_str().unwrap()]);
}

/// `lb export keepalived --peer-config`: the pair's LB files must share the VRID and differ in
/// priority — two balancers with the same priority is exit 2, nothing written; a sound pair
/// exports a file `keepalived -t` accepts.
#[test]
fn export_refuses_a_pair_with_the_same_priority() {
    if !common::can_run_netns_tests("lb_vrrp_pair") || !have_keepalived("lb_vrrp_pair") {
        return;
    }
    let lb = Netns::new("lb");
    common::veth_local(&lb, "eth0", "eth1");
    lb.add_addr("eth0", "198.18.0.2/24");
    lb.up("eth0");
    let cfg = TempDir::new("cfg");
    let file = |name: &str, vrid: u32, prio: u32| {
        let p = cfg.path().join(format!("{name}.toml"));
        std::fs::write(
            &p,
            format!(
                "name = \"web\"\n[balancer]\ninterface = \"eth0\"\n\
                 [ha]\nvirtual_router_id = {vrid}\npriority = {prio}\npeers = [\"198.18.0.3\"]\n\
                 [[service]]\nvip = \"198.18.0.100:80\"\n[[service.backend]]\nrip = \"198.18.0.11\"\n"
            ),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    let (a, b, same, other) = (
        file("lb1", 51, 150),
        file("lb2", 51, 100),
        file("lb2same", 51, 150),
        file("lb2vrid", 52, 100),
    );
    let out_path = cfg.path().join("keepalived.conf");
    let out = out_path.to_str().unwrap();
    let run = Lbctl::new(&lb);
    for (peer, want) in [
        (&same, "both have [ha] priority = 150"),
        (&other, "virtual_router_id 52"),
    ] {
        let r = run.run(&[
            "lb",
            "export",
            "keepalived",
            "-c",
            &a,
            "--peer-config",
            peer,
            "-o",
            out,
        ]);
        r.expect_code(2);
        assert!(r.stderr.contains(want), "{r}");
        assert!(!out_path.exists(), "written despite the refusal");
    }
    run.ok(&[
        "lb",
        "export",
        "keepalived",
        "-c",
        &a,
        "--peer-config",
        &b,
        "-o",
        out,
    ]);
    lb.exec_ok(&[KEEPALIVED, "-t", "-e", "-f", out]);
}

/// Multicast VRRP (no `peers`): after SIGKILL of the master's keepalived, `lb run` deletes the
/// VIP and sends the priority-0 advert to 224.0.0.18 from the interface's address (its log line;
/// a capture on the peer's side sees a priority-0 advert from lb1 — keepalived's VRRP child can
/// also get one out when it outlives its parent by a moment), and the peer ends up the single
/// ARP responder.
#[test]
fn multicast_pair_gets_the_priority_zero_advert_after_keepalived_kill() {
    if !common::can_run_netns_tests("lb_vrrp_mcast") || !have_keepalived("lb_vrrp_mcast") {
        return;
    }
    require_tool!("tcpdump");
    let Some(mut lab) = lab() else { return };
    for i in 0..2 {
        let text =
            config(i, [150, 100][i]).replace(&format!("peers = [\"{}\"]\n", ADDR[1 - i]), "");
        assert!(!text.contains("peers"), "{text}");
        std::fs::write(lab.lbs[i].cfg_path(), text).unwrap();
    }
    lab.lbs[0].start();
    lab.wait_single_owner(0, "start");
    lab.lbs[1].start();
    let t = Instant::now();
    while lab.lbs[1].role() != "BACKUP" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lb2 never BACKUP\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // VRRP packets with priority 0 (byte 2 of the VRRP header) arriving at lb2.
    let (cap, tcpdump) = lab.lbs[1].tcpdump("vrrp.pcap.txt", "ip proto 112 and ip[22] = 0");
    lab.lbs[0].kill_keepalived();
    lab.wait_single_owner(1, "after SIGKILL of lb1's keepalived (multicast)");
    let t = Instant::now();
    let want = format!(
        "{} > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 0",
        ADDR[0]
    );
    while !std::fs::read_to_string(&cap)
        .unwrap_or_default()
        .contains(&want)
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no priority-0 advert from lb1 seen at lb2: {:?}\n{}",
            std::fs::read_to_string(&cap).unwrap_or_default(),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(tcpdump);
    assert!(
        lab.lbs[0]
            .log()
            .contains("sent the priority-0 VRRP advert keepalived could not (VRID 51)"),
        "{}",
        lab.logs()
    );
}

/// IPv6 multicast VRRP (an IPv6 VIP, no `peers`): after SIGKILL of the master's keepalived,
/// `lb run` sends the priority-0 advert to ff02::12 from its link-local address and the peer
/// takes the VIP; lb1 no longer holds it.
#[test]
fn ipv6_multicast_pair_gets_the_priority_zero_advert_after_keepalived_kill() {
    if !common::can_run_netns_tests("lb_vrrp_v6") || !have_keepalived("lb_vrrp_v6") {
        return;
    }
    require_tool!("tcpdump");
    let Some(mut lab) = lab() else { return };
    for i in 0..2 {
        lab.lbs[i].ns.settle();
        std::fs::write(
            lab.lbs[i].cfg_path(),
            format!(
                "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\nmaglev_size = 1021\n\
                 [ha]\nvirtual_router_id = 52\npriority = {}\nadvert_interval = \"1s\"\npreempt = false\n\
                 [[service]]\nvip = \"[2001:db8::100]:80\"\n\
                 [service.check]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\ninterval = \"300ms\"\n\
                 timeout = \"250ms\"\nrise = 1\nfall = 2\n\
                 [[service.backend]]\nrip = \"2001:db8::11\"\n",
                [150, 100][i]
            ),
        )
        .unwrap();
    }
    let has = |b: &Balancer| {
        b.ns.addrs("eth0")
            .iter()
            .any(|a| a.starts_with("2001:db8::100"))
    };
    fn wait(lab: &Lab, what: &str, ok: &dyn Fn(&Lab) -> bool) {
        let t = Instant::now();
        while !ok(lab) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{what}\n{}",
                lab.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    lab.lbs[0].start();
    wait(&lab, "lb1 MASTER with the VIP", &|lab: &Lab| {
        lab.lbs[0].role() == "MASTER" && has(&lab.lbs[0])
    });
    lab.lbs[1].start();
    wait(&lab, "lb2 BACKUP", &|lab: &Lab| {
        lab.lbs[1].role() == "BACKUP"
    });
    assert!(!has(&lab.lbs[1]));
    let (cap, tcpdump) = lab.lbs[1].tcpdump("vrrp6.txt", "ip6 and ip6[6] = 112 and ip6[42] = 0");
    lab.lbs[0].kill_keepalived();
    wait(
        &lab,
        "lb2 MASTER with the VIP, lb1 without",
        &|lab: &Lab| lab.lbs[1].role() == "MASTER" && has(&lab.lbs[1]) && !has(&lab.lbs[0]),
    );
    wait(
        &lab,
        "a priority-0 advert from lb1 to ff02::12 seen at lb2",
        &|_: &Lab| {
            std::fs::read_to_string(&cap)
                .unwrap_or_default()
                .contains("fe80::ff:fe00:2 > ff02::12: VRRPv3, Advertisement, vrid 52, prio 0")
        },
    );
    drop(tcpdump);
    assert!(
        lab.lbs[0]
            .log()
            .contains("sent the priority-0 VRRP advert keepalived could not (VRID 52)"),
        "{}",
        lab.logs()
    );
}
