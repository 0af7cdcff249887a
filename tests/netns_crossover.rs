//! Issue 19: cross-over failover without a balancer, in namespaces this test builds.
//!
//! Topology: a switch namespace with a bridge; `router` (198.18.0.1/24 on the bridge, and a
//! link to `client` 198.18.2.2/24), three servers `s1`…`s3` (198.18.0.11-13/24, the public
//! range 198.18.100.0/24 local on lo, busybox httpd answering with the server's name). The
//! router runs the lines `lbctl crossover plan` printed (multipath over 198.18.1.1-6); every
//! server runs `lbctl crossover run` with an HTTP check of its own httpd. ARP on the router's
//! side is captured throughout (`lbctl capture --json`): once settled, only primaries claim, and
//! every later phase is checked for double claims (once another server has claimed an address,
//! the earlier claimant never claims it again within the same phase).
//!
//! Faults: a server's link cut at the switch (gone from the segment), its service stopped
//! (kernel up, service dead), SIGTERM and SIGKILL of an agent, and a double failure with three
//! tiers. Everything is polled with generous timeouts; nothing is timed.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PUBLIC: &str = "198.18.100.0/24";
const RANGE: &str = "198.18.1.0/24";

fn spawn_in(ns: &Netns, argv: &[&str], env: &[(&str, &str)], log: &std::path::Path) -> Bg {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns.name()]).args(argv);
    for (k, v) in env {
        c.env(k, v);
    }
    Bg(c.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn"))
}

struct Lab {
    // Drop order: processes before their namespaces.
    agents: Vec<Option<Bg>>,
    httpd: Vec<Option<Bg>>,
    capture: Option<Bg>,
    dir: TempDir,
    runs: Vec<Lbctl>,
    client: Netns,
    servers: Vec<Netns>,
    router: Netns,
    sw: Netns,
    /// Address → its servers in tier order.
    table: Vec<(String, Vec<usize>)>,
    macs: Vec<String>,
}

fn lab(n: usize, tiers: usize) -> Lab {
    let sw = Netns::new("xsw");
    sw.ip(&["link", "add", "br0", "type", "bridge"]);
    sw.up("br0");
    let router = Netns::new("xrouter");
    let client = Netns::new("xclient");
    plug(
        &sw,
        &router,
        "p-router",
        "02:00:00:00:00:01",
        "198.18.0.1/24",
    );
    link(
        End {
            ns: &router,
            dev: "eth1",
            mac: "02:00:00:00:01:01",
            cidr: "198.18.2.1/24",
        },
        End {
            ns: &client,
            dev: "eth0",
            mac: "02:00:00:00:01:02",
            cidr: "198.18.2.2/24",
        },
    );
    client.ip(&["route", "add", "default", "via", "198.18.2.1"]);
    router.write_sysctls(&[("net/ipv4/ip_forward".into(), "1".into())]);
    let dir = TempDir::new("xover");
    let cfg = dir.path().join("cfg");
    let plan = Lbctl::plain().json(&[
        "crossover",
        "plan",
        "--servers",
        &n.to_string(),
        "--tiers",
        &tiers.to_string(),
        "--range",
        RANGE,
        "--public",
        PUBLIC,
        "--write",
        cfg.to_str().unwrap(),
    ]);
    let table: Vec<(String, Vec<usize>)> = plan["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["addr"].as_str().unwrap().to_string(),
                a["servers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap()[1..].parse().unwrap())
                    .collect(),
            )
        })
        .collect();
    // The router's side, verbatim.
    router
        .exec(&["sh", "-e", cfg.join("router.sh").to_str().unwrap()])
        .expect_ok();
    let mut servers = Vec::new();
    let mut runs = Vec::new();
    let mut macs = Vec::new();
    for i in 1..=n {
        let ns = Netns::new(&format!("xs{i}"));
        let mac = format!("02:00:00:00:00:1{i}");
        plug(
            &sw,
            &ns,
            &format!("p-s{i}"),
            &mac,
            &format!("198.18.0.1{i}/24"),
        );
        ns.ip(&["route", "add", "default", "via", "198.18.0.1"]);
        ns.ip(&["route", "add", "local", PUBLIC, "dev", "lo"]);
        std::fs::create_dir_all(dir.path().join(format!("www{i}"))).unwrap();
        std::fs::write(
            dir.path().join(format!("www{i}/index.html")),
            format!("s{i}\n"),
        )
        .unwrap();
        // The agent checks its own service.
        let p = cfg.join(format!("s{i}.toml"));
        let mut c = std::fs::read_to_string(&p).unwrap();
        c.push_str(
            "\n[check]\ntype = \"http\"\nport = 80\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
             rise = 1\nfall = 1\n",
        );
        std::fs::write(&p, c).unwrap();
        runs.push(Lbctl::new(&ns));
        servers.push(ns);
        macs.push(mac);
    }
    let mut l = Lab {
        agents: Vec::new(),
        httpd: Vec::new(),
        capture: None,
        dir,
        runs,
        client,
        servers,
        router,
        sw,
        table,
        macs,
    };
    let cap = l.dir.path().join("arp.ndjson");
    l.capture = Some(spawn_in(
        &l.router,
        &[LBCTL, "--json", "capture", "-i", "eth0"],
        &[],
        &cap,
    ));
    for i in 1..=n {
        l.httpd.push(Some(l.start_httpd(i)));
        l.agents.push(Some(l.start_agent(i)));
    }
    l
}

impl Lab {
    fn start_httpd(&self, i: usize) -> Bg {
        let www = self.dir.path().join(format!("www{i}"));
        spawn_in(
            &self.servers[i - 1],
            &[
                "busybox",
                "httpd",
                "-f",
                "-p",
                "80",
                "-h",
                www.to_str().unwrap(),
            ],
            &[],
            &self.dir.path().join(format!("httpd{i}.log")),
        )
    }

    fn start_agent(&self, i: usize) -> Bg {
        let cfg = self.dir.path().join(format!("cfg/s{i}.toml"));
        let run = self.runs[i - 1].run_dir().to_string_lossy().into_owned();
        spawn_in(
            &self.servers[i - 1],
            &[LBCTL, "crossover", "run", "-c", cfg.to_str().unwrap()],
            &[("LBCTL_RUN_DIR", &run)],
            &self.dir.path().join(format!("agent{i}.log")),
        )
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.servers.len() {
            s.push_str(&format!(
                "--- agent{i}.log\n{}",
                std::fs::read_to_string(self.dir.path().join(format!("agent{i}.log")))
                    .unwrap_or_default()
            ));
        }
        s
    }

    /// Which server answers HTTP on internal address `a` (asked from the router).
    fn answers(&self, a: &str) -> String {
        let out = self
            .router
            .exec(&["curl", "-s", "-m", "1", &format!("http://{a}/")]);
        out.stdout.trim().to_string()
    }

    /// Poll until every address answers from the server `expect` names (by table row).
    #[track_caller]
    fn wait_holders(&self, what: &str, expect: impl Fn(&[usize]) -> usize) {
        let want: BTreeMap<String, String> = self
            .table
            .iter()
            .map(|(a, t)| (a.clone(), format!("s{}", expect(t))))
            .collect();
        let start = Instant::now();
        loop {
            let got: BTreeMap<String, String> =
                want.keys().map(|a| (a.clone(), self.answers(a))).collect();
            if got == want {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "{what}: addresses never answered as expected\nwant {want:?}\ngot  {got:?}\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Gratuitous ARP claims seen on the router so far: (address, sender MAC), in order.
    fn claims(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("arp.ndjson")).unwrap_or_default();
        let internal: Vec<&String> = self.table.iter().map(|(a, _)| a).collect();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["proto"] == "arp" && v["dir"] != "out")
            // Claims are the agents' gratuitous announcements. A kernel's reply to one of the
            // router's unicast probes is an answer, not a claim: the router ignores one that
            // contradicts a gratuitous update for a second (`locktime`), and the agent that
            // held the address a moment ago may still answer a probe sent before the handover.
            .filter(|v| v["opcode"] == 1 && v["sender_ip"] == v["target_ip"])
            .filter_map(|v| {
                let ip = v["sender_ip"].as_str()?.to_string();
                internal
                    .contains(&&ip)
                    .then(|| (ip, v["sender_mac"].as_str().unwrap_or("").to_string()))
            })
            .collect()
    }

    /// Start-up: every address answers from its primary; then, for a while, every claim the
    /// router sees comes from the primary. (Agents started at the same moment may hand an
    /// address over once while they start; from here on no phase may.)
    #[track_caller]
    fn settled(&self) -> usize {
        self.wait_holders("start", |t| t[0]);
        let mark = self.claims().len();
        std::thread::sleep(Duration::from_millis(1500));
        let all = self.claims();
        for (a, m) in &all[mark..] {
            let t = &self.table.iter().find(|(x, _)| x == a).unwrap().1;
            assert_eq!(
                m,
                &self.macs[t[0] - 1],
                "steady state: {a} claimed by {m}\n{}",
                self.logs()
            );
        }
        all.len()
    }

    /// No double claim in `claims[from..]`: per address, once a second MAC has claimed it, the
    /// first never claims it again (runs of one MAC, each MAC at most once). One exception: a
    /// single announcement of the old holder right after the new claim (B, A, B with A once),
    /// a heartbeat that was already on the wire when the claim arrived — the new holder
    /// re-announces at once. Anything more is a fight.
    #[track_caller]
    fn no_double_claims(&self, phase: &str, from: usize) -> usize {
        let all = self.claims();
        let mut runs: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
        for (a, m) in &all[from.min(all.len())..] {
            let r = runs.entry(a).or_default();
            match r.last_mut() {
                Some((last, n)) if *last == m.as_str() => *n += 1,
                _ => r.push((m, 1)),
            }
        }
        for (a, r) in &runs {
            // Drop crossed heartbeats: a one-frame run between two runs of the same MAC.
            let mut kept: Vec<&str> = Vec::new();
            for (i, (m, n)) in r.iter().enumerate() {
                let crossed = *n == 1 && i > 0 && i + 1 < r.len() && r[i - 1].0 == r[i + 1].0;
                if !crossed && kept.last() != Some(m) {
                    kept.push(m);
                }
            }
            let mut seen = kept.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(
                seen.len(),
                kept.len(),
                "{phase}: {a} was claimed back and forth: {r:?} (MACs {:?})\n{}",
                self.macs,
                self.logs()
            );
        }
        all.len()
    }

    fn cut(&self, i: usize, up: bool) {
        self.sw.ip(&[
            "link",
            "set",
            &format!("p-s{i}"),
            if up { "up" } else { "down" },
        ]);
    }

    fn held_on(&self, i: usize) -> Vec<String> {
        let internal: Vec<&String> = self.table.iter().map(|(a, _)| a).collect();
        self.servers[i - 1]
            .addrs("eth0")
            .into_iter()
            .filter(|c| internal.iter().any(|a| c.starts_with(&format!("{a}/"))))
            .collect()
    }

    /// Requests from the client to the public range: the names that answered.
    fn traffic(&self, n: usize) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for k in 0..n {
            let url = format!("http://198.18.100.{}/", 1 + k % 250);
            let out = self.client.exec(&["curl", "-s", "-m", "2", &url]);
            *m.entry(out.stdout.trim().to_string()).or_default() += 1;
        }
        m
    }
}

fn first_alive(t: &[usize], dead: &[usize]) -> usize {
    *t.iter().find(|s| !dead.contains(s)).unwrap()
}

#[test]
fn failover_service_death_and_return() {
    require_root!();
    require_tool!("busybox");
    require_tool!("curl");
    let mut l = lab(3, 2);
    let mut mark = l.settled();
    // Client traffic over the public range reaches every server, and only servers.
    let t = l.traffic(24);
    assert!(
        t.keys().all(|k| ["s1", "s2", "s3"].contains(&k.as_str())) && t.len() == 3,
        "{t:?}"
    );

    // s1 gone from the segment: its addresses answer from their secondaries.
    l.cut(1, false);
    l.wait_holders("s1 cut", |t| first_alive(t, &[1]));
    let t = l.traffic(24);
    assert_eq!(t.keys().collect::<Vec<_>>(), ["s2", "s3"], "{t:?}");
    mark = l.no_double_claims("s1 cut", mark);

    // s1 back: it holds its primaries again, the secondaries released them.
    l.cut(1, true);
    l.wait_holders("s1 back", |t| t[0]);
    let status = l.runs[1].run(&["--json", "crossover", "status"]);
    status.expect_ok();
    let v = status.json();
    let held: Vec<&str> = v["agents"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["held"] == true)
        .map(|r| r["addr"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["198.18.1.3", "198.18.1.4"], "{v:#}");
    mark = l.no_double_claims("s1 back", mark);

    // s2's service dies while its kernel is fine: it releases everything.
    l.httpd[1] = None;
    l.wait_holders("s2 service dead", |t| first_alive(t, &[2]));
    assert!(l.held_on(2).is_empty(), "{:?}", l.held_on(2));
    let v = l.runs[1].run(&["--json", "crossover", "status"]).json();
    assert_eq!(v["agents"][0]["healthy"], false, "{v:#}");
    mark = l.no_double_claims("s2 service dead", mark);

    // Its service back: primaries back.
    l.httpd[1] = Some(l.start_httpd(2));
    l.wait_holders("s2 service back", |t| t[0]);
    mark = l.no_double_claims("s2 service back", mark);

    // SIGTERM: s3 releases what it holds; its secondaries take over.
    let pid = l.agents[2].as_ref().unwrap().0.id().to_string();
    run_ok(&["kill", "-TERM", &pid]);
    let start = Instant::now();
    while l.agents[2]
        .as_mut()
        .unwrap()
        .0
        .try_wait()
        .unwrap()
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", l.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(l.held_on(3).is_empty(), "{:?}", l.held_on(3));
    l.wait_holders("s3 agent stopped", |t| first_alive(t, &[3]));
    l.no_double_claims("s3 agent stopped", mark);
    l.runs[2].run(&["crossover", "status"]).expect_ok();

    // SIGKILL leaves s1's addresses; status says what removes them; down does.
    l.agents[0] = None;
    // Its two primaries and 198.18.1.5 (s3's, s1 secondary).
    assert_eq!(l.held_on(1).len(), 3, "{:?}", l.held_on(1));
    let out = l.runs[0].run(&["crossover", "status"]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("lbctl down --owner crossover:s1"),
        "{out}"
    );
    l.runs[0].ok(&["down", "--owner", "crossover:s1"]);
    assert!(l.held_on(1).is_empty());
    l.runs[0].ok(&["crossover", "status"]);
}

#[test]
fn three_tiers_double_failure() {
    require_root!();
    require_tool!("busybox");
    require_tool!("curl");
    let l = lab(3, 3);
    let mut mark = l.settled();
    l.cut(1, false);
    l.cut(2, false);
    // Every address falls to s3: tertiaries after the secondaries' silence.
    l.wait_holders("s1 and s2 cut", |t| first_alive(t, &[1, 2]));
    mark = l.no_double_claims("s1 and s2 cut", mark);
    l.cut(2, true);
    l.wait_holders("s2 back", |t| first_alive(t, &[1]));
    mark = l.no_double_claims("s2 back", mark);
    l.cut(1, true);
    l.wait_holders("s1 back", |t| t[0]);
    l.no_double_claims("s1 back", mark);
}
