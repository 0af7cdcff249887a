//! Check warm-up (issue 17): the first checks of a fresh `lb run` are spread over one interval
//! with a random part, so the first backend of every service is not checked at the same instant
//! (before, backend i of each service started at i/n of the interval: all first backends at
//! once). Exec checks log when they run; nothing else is needed.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{veth, Bg, Lbctl, Netns, TempDir};

const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");
const SERVICES: u16 = 4;

#[test]
fn first_checks_are_spread_with_jitter() {
    require_root!();
    let lb = Netns::new("lb");
    let peer = Netns::new("peer");
    veth(&lb, "eth0", &peer, "p0");
    lb.up("eth0");
    lb.add_addr("eth0", "198.18.0.2/24");
    peer.up("p0");
    let dir = TempDir::new("warmup");
    let times = dir.path().join("checks.log");
    let mut cfg = "name = \"warm\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n\
                   maglev_size = 1021\n"
        .to_string();
    for port in 81..81 + SERVICES {
        cfg.push_str(&format!(
            "[[service]]\nvip = \"198.18.0.100:{port}\"\n[service.check]\ntype = \"exec\"\n\
             command = [\"/bin/sh\", \"-c\", \"echo $(date +%s%N) $LBCTL_PORT $LBCTL_RIP >> {}\"]\n\
             interval = \"4s\"\ntimeout = \"1s\"\nrise = 1\nfall = 1\n\
             [[service.backend]]\nrip = \"198.18.0.11\"\n[[service.backend]]\nrip = \"198.18.0.12\"\n",
            times.display()
        ));
    }
    let path = dir.path().join("warm.toml");
    std::fs::write(&path, cfg).unwrap();
    let run = Lbctl::new(&lb);
    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let _daemon = Bg(Command::new(LBCTL)
        .args(["--netns", lb.name(), "lb", "run", "-c"])
        .arg(&path)
        .env("LBCTL_RUN_DIR", run.run_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lb run"));
    // First check of each (service, backend), in ns since the epoch.
    let first = || -> BTreeMap<(String, String), u128> {
        let mut m = BTreeMap::new();
        for l in std::fs::read_to_string(&times).unwrap_or_default().lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if let [t, port, rip] = w[..] {
                m.entry((port.to_string(), rip.to_string()))
                    .or_insert(t.parse::<u128>().unwrap());
            }
        }
        m
    };
    let t = Instant::now();
    while first().len() < 2 * SERVICES as usize && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let f = first();
    let daemon_log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert_eq!(f.len(), 2 * SERVICES as usize, "{f:?}\n{daemon_log}");
    let start = *f.values().min().unwrap();
    let ms = |rip: &str| -> Vec<u128> {
        f.iter()
            .filter(|((_, r), _)| r == rip)
            .map(|(_, t)| (t - start) / 1_000_000)
            .collect()
    };
    let (b0, b1) = (ms("198.18.0.11"), ms("198.18.0.12"));
    // All first checks within one interval (plus slack for a loaded machine).
    assert!(b0.iter().chain(&b1).all(|t| *t < 5000), "{b0:?} {b1:?}");
    // The first backends of the four services are not checked at one instant: without jitter
    // they all run at the daemon's first turn. (Uniform over a 2 s slot, four of them fall
    // within 100 ms of each other with probability ~5e-4.)
    let spread = b0.iter().max().unwrap() - b0.iter().min().unwrap();
    assert!(spread >= 100, "first backends' first checks at {b0:?} ms");
    let spread = b1.iter().max().unwrap() - b1.iter().min().unwrap();
    assert!(spread >= 100, "second backends' first checks at {b1:?} ms");
}
