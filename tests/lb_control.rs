//! Runtime control of a running `lbctl lb run` (issue 18): `lb drain|undrain|weight|disable|
//! enable` through the daemon's control socket, against real traffic in namespaces (a client,
//! the balancer with the nft engine, three backends serving a page naming themselves).
//! Covers: a drain is in effect when the command returns (new connections avoid the backend)
//! while an established download completes; weight 0 → N changes slot counts; overrides
//! survive SIGHUP and are marked in `lb status`; disable/enable; a backend's `disable_file`;
//! bad requests (exit 2, nothing changed); non-root (exit 77); the socket is root's.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{httpd, pinned_flows, plug, run_cmd, Bg, Lbctl, Netns, TempDir};
use serde_json::Value;

const VIP: &str = "198.18.0.100";
const SVC: &str = "198.18.0.100:80";
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");
/// Size of the file the slow download fetches.
const BIG: usize = 4 << 20;

struct Lab {
    // Drop order: daemon and servers before their namespaces.
    daemon: Option<Bg>,
    _servers: Vec<Bg>,
    _www: Vec<TempDir>,
    cfg_dir: TempDir,
    lb_run: Lbctl,
    client: Netns,
    _be: Vec<Netns>,
    lb: Netns,
    _sw: Netns,
}

fn lab() -> Lab {
    let sw = Netns::new("sw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let client = Netns::new("client");
    let lb = Netns::new("lb");
    plug(
        &sw,
        &client,
        "sw-client",
        "02:00:00:00:00:10",
        "198.18.0.10/24",
    );
    plug(&sw, &lb, "sw-lb", "02:00:00:00:00:02", "198.18.0.2/24");
    let (mut be, mut servers, mut www) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=3 {
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
        std::fs::write(dir.path().join("big"), vec![b'x'; BIG]).unwrap();
        servers.push(httpd(&ns, &dir));
        www.push(dir);
        be.push(ns);
    }
    Lab {
        daemon: None,
        _servers: servers,
        _www: www,
        cfg_dir: TempDir::new("lbcfg"),
        lb_run: Lbctl::new(&lb),
        client,
        _be: be,
        lb,
        _sw: sw,
    }
}

impl Lab {
    fn cfg_path(&self) -> std::path::PathBuf {
        self.cfg_dir.path().join("web.toml")
    }

    fn disable_file(&self) -> std::path::PathBuf {
        self.cfg_dir.path().join("be3.disabled")
    }

    /// HTTP check every 300 ms; be3 has a disable_file; a second service (port 8080) that the
    /// commands must leave alone.
    fn config(&self) -> String {
        let mut s = "name = \"web\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n\
                     maglev_size = 1021\nmetrics = \"127.0.0.1:9109\"\n"
            .to_string();
        for port in [80, 8080] {
            s.push_str(&format!(
                "[[service]]\nvip = \"{VIP}:{port}\"\n[service.check]\ntype = \"tcp\"\n\
                 port = 80\ninterval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n"
            ));
            for i in 1..=3 {
                s.push_str(&format!("[[service.backend]]\nrip = \"198.18.0.1{i}\"\n"));
                if i == 3 && port == 80 {
                    s.push_str(&format!(
                        "disable_file = \"{}\"\n",
                        self.disable_file().display()
                    ));
                }
            }
        }
        s
    }

    fn start(&mut self) {
        std::fs::write(self.cfg_path(), self.config()).unwrap();
        let log = std::fs::File::create(self.cfg_dir.path().join("daemon.log")).unwrap();
        let child = Command::new(LBCTL)
            .args(["--netns", self.lb.name(), "lb", "run", "-c"])
            .arg(self.cfg_path())
            .env("LBCTL_RUN_DIR", self.lb_run.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn lb run");
        self.daemon = Some(Bg(child));
        self.wait_status("every backend up", |s| {
            s["ready"] == true
                && s["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|v| v["backends"].as_array().cloned().unwrap_or_default())
                    .all(|b| b["state"] == "up")
        });
        self.wait_status("both services in the data path", |s| {
            (0..2).all(|v| slots(s, v).iter().map(|&n| n.min(2000)).sum::<u64>() == 1021)
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.cfg_dir.path().join("daemon.log")).unwrap_or_default()
    }

    fn status(&self) -> Option<Value> {
        let out = self.lb_run.run(&["--json", "lb", "status"]);
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .map(|v| v["daemons"][0].clone())
    }

    #[track_caller]
    fn wait_status(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Some(s) = self.status() {
                if s["running"] == true && pred(&s) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for: {what}\nstatus: {:#}\ndaemon log:\n{}",
            self.status().unwrap_or(Value::Null),
            self.log()
        );
    }

    fn signal(&self, sig: i32) {
        let pid = self.daemon.as_ref().expect("daemon").0.id() as i32;
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }
}

/// Backend `i` (0-based) of service `svc` (0: port 80, 1: port 8080).
fn be(s: &Value, svc: usize, i: usize) -> Value {
    s["services"][svc]["backends"][i].clone()
}

fn slots(s: &Value, svc: usize) -> Vec<u64> {
    (0..3)
        .map(|i| be(s, svc, i)["slots"].as_u64().unwrap_or(u64::MAX))
        .collect()
}

fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    lbctl::sys::netns::run_in(ns, f).expect("netns thread")
}

fn vip() -> SocketAddr {
    format!("{VIP}:80").parse().unwrap()
}

fn get(s: &mut TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .ok_or_else(|| format!("bad answer: {resp:?}"))
}

/// `n` requests on new connections: who answered each (or "FAILED"), counted.
fn tally(lab: &Lab, n: usize) -> std::collections::BTreeMap<String, usize> {
    let rs: Vec<Result<String, String>> = in_netns(lab.client.name(), move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&vip(), Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                get(&mut s)
            })
            .collect()
    });
    let mut m = std::collections::BTreeMap::new();
    for r in rs {
        *m.entry(r.unwrap_or_else(|_| "FAILED".into())).or_insert(0) += 1;
    }
    m
}

#[test]
fn runtime_control_drain_weight_disable_and_disable_file() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    lab.start();
    let s = lab.status().unwrap();
    let sock = s["control"]
        .as_str()
        .expect("control socket in status")
        .to_string();
    let meta = std::fs::metadata(&sock).expect("control socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{sock}");
    let other_before = slots(&s, 1);

    // A download from be1, started before the drain: open connections until one is pinned to
    // be1, request the big file and read the first part.
    let client = lab.client.name().to_string();
    let conns: Vec<(TcpStream, u16)> = in_netns(&client, || {
        (0..24)
            .map(|_| {
                let s = TcpStream::connect_timeout(&vip(), Duration::from_secs(2)).unwrap();
                let p = s.local_addr().unwrap().port();
                (s, p)
            })
            .collect()
    });
    let flows = pinned_flows(&lab.lb);
    let mut download = conns
        .into_iter()
        .find(|(_, p)| {
            flows
                .iter()
                .any(|(fp, m)| *fp == u64::from(*p) && m == "02:00:00:00:00:11")
        })
        .map(|(s, _)| s)
        .unwrap_or_else(|| panic!("no connection landed on be1: {flows:?}"));
    let mut got = in_netns(&client, {
        let mut d = download.try_clone().unwrap();
        move || {
            d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            d.write_all(b"GET /big HTTP/1.0\r\n\r\n").unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            d.read_exact(&mut buf).unwrap();
            buf.len()
        }
    });

    // Drain be1: in effect when the command returns.
    let out = lab.lb_run.ok(&["lb", "drain", SVC, "198.18.0.11"]);
    assert!(out.stdout.contains("drained"), "{out}");
    let t = tally(&lab, 30);
    assert_eq!(t.get("be1"), None, "{t:?}");
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    // The download from be1 completes.
    got += in_netns(&client, move || {
        let mut rest = Vec::new();
        download.read_to_end(&mut rest).unwrap();
        rest.len()
    });
    assert!(got > BIG, "the download stopped after {got} bytes");
    let s = lab.status().unwrap();
    assert_eq!(be(&s, 0, 0)["effective_weight"], 0);
    assert_eq!(be(&s, 0, 0)["slots"], 0);
    assert_eq!(be(&s, 0, 0)["state"], "up");
    assert!(
        be(&s, 0, 0)["overrides"][0]
            .as_str()
            .unwrap_or("")
            .contains("lbctl lb drain"),
        "{s:#}"
    );
    assert_eq!(slots(&s, 1), other_before, "the other service was touched");
    let text = lab.lb_run.run(&["lb", "status"]);
    assert!(
        text.stdout.contains("override: drained (lbctl lb drain)"),
        "{text}"
    );
    // Again: unchanged, exit 0.
    let out = lab.lb_run.ok(&["lb", "drain", SVC, "198.18.0.11:80"]);
    assert!(out.stdout.contains("unchanged"), "{out}");

    // The override survives a reload.
    lab.signal(libc::SIGHUP);
    lab.wait_status("reloaded", |_| lab.log().contains("reloaded"));
    std::thread::sleep(Duration::from_millis(500));
    let s = lab.status().unwrap();
    assert_eq!(be(&s, 0, 0)["effective_weight"], 0, "{s:#}");
    assert_eq!(be(&s, 0, 0)["slots"], 0, "{s:#}");

    // Weight: be2 from 1 to 3 takes about three times be3's slots; be1 (drained) stays at 0.
    lab.lb_run.ok(&["lb", "weight", SVC, "198.18.0.12", "3"]);
    let s = lab.status().unwrap();
    let sl = slots(&s, 0);
    assert_eq!(sl[0], 0, "{sl:?}");
    assert!(sl[1] > 2 * sl[2] && sl[1] + sl[2] == 1021, "{sl:?}");
    assert_eq!(be(&s, 0, 1)["effective_weight"], 3);
    assert_eq!(be(&s, 0, 1)["weight"], 1, "the file's weight is kept");
    // Undrain be1, weight back to the file's: even again.
    lab.lb_run.ok(&["lb", "undrain", SVC, "198.18.0.11"]);
    lab.lb_run
        .ok(&["lb", "weight", SVC, "198.18.0.12", "--reset"]);
    let s = lab.status().unwrap();
    let sl = slots(&s, 0);
    assert!(sl.iter().all(|&n| (300..=380).contains(&n)), "{sl:?}");
    assert!(s["overrides"].is_null(), "{s:#}");
    let t = tally(&lab, 30);
    assert!(t.get("be1").copied().unwrap_or(0) > 0, "{t:?}");

    // Disable: no new flows to the service (the other one keeps serving); enable: back.
    lab.lb_run.ok(&["lb", "disable", SVC]);
    let s = lab.status().unwrap();
    assert_eq!(s["services"][0]["disabled"], true);
    assert_eq!(slots(&s, 0), vec![0, 0, 0]);
    assert_eq!(slots(&s, 1), other_before);
    let t = tally(&lab, 3);
    assert_eq!(t.get("FAILED"), Some(&3), "{t:?}");
    assert!(lab
        .lb_run
        .run(&["lb", "status"])
        .stdout
        .contains("DISABLED"));
    lab.lb_run.ok(&["lb", "enable", SVC]);
    let t = tally(&lab, 10);
    assert_eq!(t.get("FAILED"), None, "{t:?}");

    // disable_file: be3 drained while it exists.
    std::fs::write(lab.disable_file(), "").unwrap();
    lab.wait_status("be3 drained by its file", |s| be(s, 0, 2)["slots"] == 0);
    let s = lab.status().unwrap();
    assert!(
        be(&s, 0, 2)["overrides"][0]
            .as_str()
            .unwrap_or("")
            .contains("exists"),
        "{s:#}"
    );
    assert_eq!(
        be(&s, 1, 2)["effective_weight"],
        1,
        "only the backend of port 80"
    );
    std::fs::remove_file(lab.disable_file()).unwrap();
    lab.wait_status("be3 back", |s| be(s, 0, 2)["slots"].as_u64() > Some(0));

    // Bad requests: exit 2, a clear message, nothing changed.
    let before = lab.status().unwrap();
    for (args, msg) in [
        (
            vec!["lb", "drain", "198.18.0.100:81", "198.18.0.11"],
            "no IPVS",
        ),
        (
            vec!["lb", "weight", SVC, "198.18.0.19", "2"],
            "has no backend 198.18.0.19:80",
        ),
        (vec!["lb", "undrain", SVC, "198.18.0.19"], "has no backend"),
        (
            vec!["lb", "weight", SVC, "198.18.0.11", "4294967295"],
            "weight",
        ),
        (vec!["lb", "disable", "198.18.0.100:81"], "no running"),
        (vec!["lb", "enable", SVC, "--proto", "udp"], "no running"),
    ] {
        let out = lab.lb_run.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert!(out.stderr.contains(msg), "{args:?}: {out}");
    }
    // A malformed request on the socket itself is refused.
    let answer = in_netns(lab.lb.name(), {
        let sock = sock.clone();
        move || {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            s.write_all(br#"{"command":"explode"}"#).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut a = String::new();
            s.read_to_string(&mut a).unwrap();
            a
        }
    });
    let a: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(a["ok"], false, "{answer}");
    assert!(
        a["message"].as_str().unwrap().contains("bad request"),
        "{answer}"
    );
    let after = lab.status().unwrap();
    assert_eq!(slots(&after, 0), slots(&before, 0));
    assert_eq!(after["overrides"], before["overrides"]);
    assert!(lab.log().contains("control: refused"), "{}", lab.log());

    // Not root: exit 77 (and the socket refuses a non-root peer anyway: mode 0600).
    if run_cmd(&["getent", "passwd", "65534"], &[], None).success()
        && common::find_tool("setpriv").is_some()
    {
        for args in [
            ["lb", "weight", SVC, "198.18.0.11", "2"].as_slice(),
            &["lb", "disable", SVC],
        ] {
            let mut argv = vec![
                "ip",
                "netns",
                "exec",
                lab.lb.name(),
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                LBCTL,
            ];
            argv.extend_from_slice(args);
            let out = run_cmd(&argv, &[], None);
            assert_eq!(out.code, 77, "{args:?}: {out}");
        }
        let s = lab.status().unwrap();
        assert!(s["overrides"].is_null(), "{s:#}");
    }

    // An override is kept over a restart (in the status file), and dropped by the opposite
    // command.
    lab.lb_run.ok(&["lb", "drain", SVC, "198.18.0.13"]);
    lab.signal(libc::SIGTERM);
    lab.daemon.take().unwrap().0.wait().unwrap();
    assert!(!std::path::Path::new(&sock).exists(), "socket left behind");
    lab.start();
    let s = lab.status().unwrap();
    assert_eq!(be(&s, 0, 2)["effective_weight"], 0, "{s:#}");
    assert!(
        lab.log().contains("runtime overrides taken over"),
        "{}",
        lab.log()
    );
    lab.lb_run.ok(&["lb", "undrain", SVC, "198.18.0.13"]);
    assert_eq!(be(&lab.status().unwrap(), 0, 2)["effective_weight"], 1);
}

/// The nft engine's per-backend counters: every packet the service counted went to exactly one
/// backend's counter, each connection is one new flow of one backend and stays pinned to it;
/// `lb list --stats|--rate` shows them in ipvsadm's layout.
#[test]
fn per_backend_counters_add_up_to_the_service_counter() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    lab.start();
    let t = tally(&lab, 60);
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    let sum = |s: &Value, field: &str| -> u64 {
        (0..3)
            .map(|i| be(s, 0, i)["counters"][field].as_u64().unwrap_or(0))
            .sum()
    };
    lab.wait_status("per-backend counters add up", |s| {
        let total = s["services"][0]["packets"].as_u64().unwrap_or(0);
        total > 0
            && sum(s, "packets") == total
            && sum(s, "new_flows") == 60
            && sum(s, "pinned_flows") == 60
    });
    let s = lab.status().unwrap();
    for i in 0..3 {
        let c = &be(&s, 0, i)["counters"];
        assert!(c["new_flows"].as_u64().unwrap() > 0, "{s:#}");
        assert!(
            c["bytes"].as_u64().unwrap() > c["packets"].as_u64().unwrap() * 40,
            "{s:#}"
        );
    }
    // The other service saw no traffic.
    assert_eq!(
        (0..3)
            .map(|i| be(&s, 1, i)["counters"]["packets"].as_u64().unwrap_or(0))
            .sum::<u64>(),
        0
    );
    let out = lab.lb_run.ok(&["lb", "list", "--stats", "--exact", SVC]);
    assert!(
        out.stdout
            .contains("Conns   InPkts  OutPkts  InBytes OutBytes"),
        "{out}"
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("TCP  198.18.0.100:80 "))
        .unwrap_or_else(|| panic!("{out}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(nums[0], 60, "{line}");
    assert_eq!(nums[1], sum(&s, "packets"), "{line}");
    assert!(!out.stdout.contains("198.18.0.100:8080"), "filtered: {out}");
    let out = lab.lb_run.ok(&["lb", "list", "--rate"]);
    assert!(out.stdout.contains("CPS    InPPS"), "{out}");
    let text = lab.lb_run.run(&["lb", "status"]).stdout;
    assert!(
        text.contains("new flows") && text.contains("pinned"),
        "{text}"
    );
}

/// `[balancer] metrics`: `/metrics` scraped with curl inside the balancer's namespace parses as
/// the Prometheus text format and says what `lb status` says.
#[test]
fn metrics_endpoint_serves_the_status_in_the_exposition_format() {
    require_root!();
    require_tool!("busybox");
    require_tool!("curl");
    let mut lab = lab();
    lab.start();
    let t = tally(&lab, 30);
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    lab.lb_run.ok(&["lb", "drain", SVC, "198.18.0.12"]);
    lab.signal(libc::SIGHUP);
    lab.wait_status("reloaded and counted", |s| {
        s["reloads"] == 1
            && s["services"][0]["backends"][0]["counters"]["new_flows"].as_u64() > Some(0)
    });
    let out = lab
        .lb
        .exec_ok(&["curl", "-fsS", "-i", "http://127.0.0.1:9109/metrics"]);
    let (head, body) = out.stdout.split_once("\r\n\r\n").expect("HTTP answer");
    assert!(head.contains("openmetrics-text"), "{head}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("not the text format: {e}\n{body}"));
    let value = |name: &str, backend: &str| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("service") == Some(SVC)
                    && s.labels.get("backend") == Some(backend)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name} for {backend}:\n{body}"))
    };
    let s = lab.status().unwrap();
    for (i, b) in ["198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"]
        .iter()
        .enumerate()
    {
        assert_eq!(value("lbctl_lb_backend_up", b), 1.0, "{body}");
        assert_eq!(value("lbctl_lb_backend_weight", b), 1.0);
        let flows = value("lbctl_lb_backend_new_flows_total", b);
        assert!(
            flows >= be(&s, 0, i)["counters"]["new_flows"].as_f64().unwrap(),
            "{body}"
        );
        assert!(value("lbctl_lb_backend_check_latency_seconds", b) < 1.0);
        assert_eq!(value("lbctl_lb_backend_check_failures_total", b), 0.0);
    }
    assert_eq!(
        value("lbctl_lb_backend_effective_weight", "198.18.0.12:80"),
        0.0
    );
    assert_eq!(value("lbctl_lb_backend_slots", "198.18.0.12:80"), 0.0);
    let flows: f64 = ["198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"]
        .iter()
        .map(|b| value("lbctl_lb_backend_new_flows_total", b))
        .sum();
    assert_eq!(flows, 30.0, "{body}");
    // prometheus-parse reads the Prometheus 0.0.4 text format: an OpenMetrics counter
    // (`# TYPE x counter`, sample `x_total`) comes out untyped there, with its value.
    let reloads: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "lbctl_lb_reloads_total")
        .filter_map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(reloads, vec![1.0], "{body}");
    assert!(body.contains("lbctl_lb_datapath_repairs_total"), "{body}");
    assert_eq!(
        lab.lb
            .exec(&[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://127.0.0.1:9109/"
            ])
            .stdout,
        "404"
    );
}

/// `lb balance` on fair traffic (many short connections from one client address): new flows
/// and bytes follow the weights (skew below 1.5, exit 0), every new flow of the window is
/// counted, and the report notes the single client address.
#[test]
fn balance_reports_shares_skew_and_few_clients() {
    require_root!();
    require_tool!("busybox");
    let mut lab = lab();
    lab.start();
    let argv: Vec<String> = lab
        .lb_run
        .argv(&["--json", "lb", "balance", SVC, "--window", "5"])
        .iter()
        .map(|s| s.to_string())
        .collect();
    let balance = Command::new(&argv[0])
        .args(&argv[1..])
        .env("LBCTL_RUN_DIR", lab.lb_run.run_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lb balance");
    // Past its first reading (the status file is rewritten every second).
    std::thread::sleep(Duration::from_millis(1500));
    let t = tally(&lab, 150);
    assert_eq!(t.get("FAILED"), None, "{t:?}");
    let out = balance.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let svc = &v["services"][0];
    assert_eq!(svc["service"], SVC);
    let flows: u64 = svc["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["new_flows"].as_u64().unwrap())
        .sum();
    assert_eq!(flows, 150, "{svc:#}");
    for k in ["new_flows", "bytes"] {
        let x = svc["skew"][k].as_f64().unwrap();
        assert!((1.0..1.5).contains(&x), "{k}: {svc:#}");
    }
    assert_eq!(svc["clients"], 1, "{svc:#}");
    assert!(
        svc["explanation"].to_string().contains("1 client address"),
        "{svc:#}"
    );
    let bad = lab
        .lb_run
        .run(&["lb", "balance", "198.18.0.100:81", "--window", "1"]);
    assert_eq!(bad.code, 2, "{bad}");
}

/// `[balancer] metrics` is re-read on SIGHUP: moved to another port, to the wildcard address
/// on the same port (the old socket is let go first), removed, added back; an address that is
/// taken keeps the running endpoint (a warning in the log, the reload still counts).
#[test]
fn metrics_address_follows_sighup() {
    require_root!();
    require_tool!("busybox");
    require_tool!("curl");
    let mut lab = lab();
    lab.start();
    let scrape = |addr: &str| -> Option<String> {
        let out = lab
            .lb
            .exec(&["curl", "-fsS", "-m", "5", &format!("http://{addr}/metrics")]);
        out.success().then_some(out.stdout)
    };
    let base = lab.config();
    let mut reloads = 0;
    let mut reload = |metrics: Option<&str>, want_status: Option<&str>| {
        let text = base.replace(
            "metrics = \"127.0.0.1:9109\"\n",
            &metrics.map_or(String::new(), |m| format!("metrics = \"{m}\"\n")),
        );
        std::fs::write(lab.cfg_path(), text).unwrap();
        lab.signal(libc::SIGHUP);
        reloads += 1;
        let want = reloads;
        lab.wait_status(
            &format!("reload {want} with metrics {want_status:?}"),
            |s| {
                s["reloads"] == want
                    && s["metrics"].as_str() == want_status
                    && s["reload_error"].is_null()
            },
        );
    };
    assert!(scrape("127.0.0.1:9109").is_some_and(|b| b.contains("lbctl_lb_ready")));

    reload(Some("127.0.0.1:9110"), Some("127.0.0.1:9110"));
    let body = scrape("127.0.0.1:9110").expect("serving on the new port");
    assert_eq!(reloads_metric(&body), Some(1), "{body}");
    assert_eq!(scrape("127.0.0.1:9109"), None, "the old port still answers");

    // Same port, wildcard address: binding it next to 127.0.0.1:9110 fails, so the old
    // socket goes first.
    reload(Some("0.0.0.0:9110"), Some("0.0.0.0:9110"));
    assert!(scrape("127.0.0.1:9110").is_some());
    assert!(scrape("198.18.0.2:9110").is_some());

    reload(None, None);
    assert_eq!(
        scrape("127.0.0.1:9110"),
        None,
        "still serving after removal"
    );

    reload(Some("127.0.0.1:9109"), Some("127.0.0.1:9109"));
    let body = scrape("127.0.0.1:9109").expect("serving again");
    assert_eq!(reloads_metric(&body), Some(4), "{body}");

    // An address in use: the reload applies, the endpoint stays where it was.
    let _taken = in_netns(lab.lb.name(), || {
        std::net::TcpListener::bind("127.0.0.1:9111").expect("bind 9111")
    });
    reload(Some("127.0.0.1:9111"), Some("127.0.0.1:9109"));
    assert!(scrape("127.0.0.1:9109").is_some());
    let log = lab.log();
    assert!(
        log.contains("127.0.0.1:9111") && log.contains("still serving 127.0.0.1:9109"),
        "{log}"
    );
    assert!(
        log.contains("/metrics moved from 127.0.0.1:9109 to 127.0.0.1:9110"),
        "{log}"
    );
}

/// The value of `lbctl_lb_reloads_total{…}` in a scrape.
fn reloads_metric(body: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with("lbctl_lb_reloads_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
