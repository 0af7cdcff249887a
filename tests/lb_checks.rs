//! `lb run`'s `udp` and `dns` checks against real servers in a namespace (issue 18): a UDP echo
//! (a socket the test binds inside the backend's namespace) and dnsmasq with its own config. A
//! check fails when its server stops (and says why) and recovers when it is back.

#[macro_use]
mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{veth, Bg, Lbctl, Netns, TempDir};
use serde_json::Value;

const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

/// A UDP server answering "pong " + the datagram, on 198.18.0.11:5300 in `ns`; stops on drop.
struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    fn start(ns: &str) -> Echo {
        let sock = lbctl::sys::netns::run_in(ns, || UdpSocket::bind("198.18.0.11:5300"))
            .expect("netns")
            .expect("bind the echo socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let mut a = b"pong ".to_vec();
                        a.extend_from_slice(&buf[..n]);
                        let _ = sock.send_to(&a, from);
                    }
                }
            }
        });
        Echo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dnsmasq(ns: &Netns, dir: &TempDir) -> Bg {
    let child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "dnsmasq"])
        .args([
            "--conf-file=/dev/null",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--bind-interfaces",
            "--listen-address=198.18.0.11",
            "--port=5353",
            "--address=/svc.test/198.18.0.100",
        ])
        .arg(format!(
            "--pid-file={}",
            dir.path().join("dnsmasq.pid").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dnsmasq");
    Bg(child)
}

fn status(run: &Lbctl) -> Option<Value> {
    let out = run.run(&["--json", "lb", "status"]);
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .map(|v| v["daemons"][0].clone())
}

#[track_caller]
fn wait(run: &Lbctl, log: &std::path::Path, what: &str, pred: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Some(s) = status(run) {
            if pred(&s) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "timed out waiting for: {what}\nstatus: {:#}\nlog:\n{}",
        status(run).unwrap_or(Value::Null),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn backend(s: &Value, svc: usize) -> Value {
    s["services"][svc]["backends"][0].clone()
}

#[test]
fn udp_and_dns_checks_fail_and_recover_against_real_servers() {
    require_root!();
    require_tool!("dnsmasq");
    let lb = Netns::new("lb");
    let be = Netns::new("be1");
    veth(&lb, "eth0", &be, "eth0");
    lb.add_addr("eth0", "198.18.0.2/24");
    be.add_addr("eth0", "198.18.0.11/24");
    lb.up("eth0");
    be.up("eth0");
    let dir = TempDir::new("checks");
    let echo = Echo::start(be.name());
    let dns = dnsmasq(&be, &dir);
    let cfg = dir.path().join("chk.toml");
    std::fs::write(
        &cfg,
        "name = \"chk\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n\
         [[service]]\nvip = \"198.18.0.100:5300\"\nprotocol = \"udp\"\n\
         [service.check]\ntype = \"udp\"\nsend = \"ping\"\nexpect = \"pong ping\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 2\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n\
         [[service]]\nvip = \"198.18.0.100:53\"\nprotocol = \"udp\"\n\
         [service.check]\ntype = \"dns\"\nport = 5353\nquery = \"svc.test\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 2\n\
         [[service.backend]]\nrip = \"198.18.0.11\"\n",
    )
    .unwrap();
    let run = Lbctl::new(&lb);
    let log = dir.path().join("daemon.log");
    let _daemon = Bg(Command::new(LBCTL)
        .args(["--netns", lb.name(), "lb", "run", "-c"])
        .arg(&cfg)
        .env("LBCTL_RUN_DIR", run.run_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn lb run"));
    wait(&run, &log, "both up", |s| {
        backend(s, 0)["state"] == "up" && backend(s, 1)["state"] == "up"
    });
    let text = run.run(&["lb", "status"]).stdout;
    assert!(text.contains("udp \"ping\" → \"pong ping\""), "{text}");
    assert!(text.contains("dns A svc.test"), "{text}");

    // The echo server stops: the udp check fails (port unreachable), the dns one is untouched.
    drop(echo);
    wait(&run, &log, "udp check down", |s| {
        backend(s, 0)["state"] == "down"
    });
    let s = status(&run).unwrap();
    let detail = backend(&s, 0)["last_check"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("port unreachable"), "{detail}");
    assert_eq!(backend(&s, 1)["state"], "up");
    let echo = Echo::start(be.name());
    wait(&run, &log, "udp check up again", |s| {
        backend(s, 0)["state"] == "up"
    });

    // dnsmasq stops: the dns check fails; started again: it recovers.
    drop(dns);
    wait(&run, &log, "dns check down", |s| {
        backend(s, 1)["state"] == "down"
    });
    let dns = dnsmasq(&be, &dir);
    wait(&run, &log, "dns check up again", |s| {
        backend(s, 1)["state"] == "up"
    });

    // A name dnsmasq does not know: NXDOMAIN or no record, and the check says which.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("svc.test", "missing.test"),
    )
    .unwrap();
    let pid = _daemon.0.id() as i32;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait(&run, &log, "dns check down on an unknown name", |s| {
        backend(s, 1)["state"] == "down"
    });
    let s = status(&run).unwrap();
    let detail = backend(&s, 1)["last_check"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        detail.contains("REFUSED") || detail.contains("NXDOMAIN") || detail.contains("no A record"),
        "{detail}"
    );
    drop(echo);
    drop(dns);
}

#[test]
fn bad_udp_and_dns_checks_are_refused_before_anything_runs() {
    let dir = TempDir::new("badchk");
    let run = Lbctl::plain();
    for (check, msg) in [
        ("type = \"dns\"", "needs query"),
        ("type = \"dns\"\nquery = \"a..b\"", "invalid DNS name"),
        (
            "type = \"dns\"\nquery = \"a.b\"\nquery_type = \"MX\"",
            "use \"A\" or \"AAAA\"",
        ),
        ("type = \"tcp\"\nsend = \"x\"", "only for type = \"udp\""),
        ("type = \"udp\"\nquery = \"a.b\"", "only for type = \"dns\""),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[service]]\nvip = \"198.18.0.100:53\"\nprotocol = \"udp\"\n[service.check]\n{check}\n\
                 [[service.backend]]\nrip = \"198.18.0.11\"\n"
            ),
        )
        .unwrap();
        let out = run.run(&["--dry-run", "lb", "run", "-c", cfg.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{check}: {out}");
        assert!(out.stderr.contains(msg), "{check}: {out}");
    }
}

fn s_server(ns: &Netns, dir: &TempDir) -> Bg {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "openssl",
            "s_server",
            "-quiet",
            "-www",
        ])
        .args(["-accept", "198.18.0.11:8443", "-cert"])
        .arg(dir.path().join("cert.pem"))
        .arg("-key")
        .arg(dir.path().join("key.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_server");
    Bg(child)
}

/// `type = "https"`: TLS with SNI, the certificate not verified by default (a self-signed one
/// passes), status and body matched; `verify_tls = true` refuses the self-signed certificate.
#[test]
fn https_check_against_openssl_s_server() {
    require_root!();
    require_tool!("openssl");
    let lb = Netns::new("lb");
    let be = Netns::new("be1");
    veth(&lb, "eth0", &be, "eth0");
    lb.add_addr("eth0", "198.18.0.2/24");
    be.add_addr("eth0", "198.18.0.11/24");
    lb.up("eth0");
    be.up("eth0");
    let dir = TempDir::new("https");
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    common::run_ok(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=svc.test",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let server = s_server(&be, &dir);
    let cfg = dir.path().join("tls.toml");
    let config = |verify: bool| {
        format!(
            "name = \"tls\"\n[balancer]\nengine = \"nft\"\ninterface = \"eth0\"\n\
             [[service]]\nvip = \"198.18.0.100:443\"\n\
             [service.check]\ntype = \"https\"\nport = 8443\nsni = \"svc.test\"\n\
             expect_body = \"s_server\"\nverify_tls = {verify}\n\
             interval = \"300ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n\
             [[service.backend]]\nrip = \"198.18.0.11\"\n"
        )
    };
    std::fs::write(&cfg, config(false)).unwrap();
    let run = Lbctl::new(&lb);
    let log = dir.path().join("daemon.log");
    let daemon = Bg(Command::new(LBCTL)
        .args(["--netns", lb.name(), "lb", "run", "-c"])
        .arg(&cfg)
        .env("LBCTL_RUN_DIR", run.run_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn lb run"));
    wait(&run, &log, "https up", |s| backend(s, 0)["state"] == "up");
    let text = run.run(&["lb", "status"]).stdout;
    assert!(
        text.contains("https GET / → 200, SNI svc.test, certificate not verified"),
        "{text}"
    );

    // The server stops: down; back: up.
    drop(server);
    wait(&run, &log, "https down", |s| {
        backend(s, 0)["state"] == "down"
    });
    let server = s_server(&be, &dir);
    wait(&run, &log, "https up again", |s| {
        backend(s, 0)["state"] == "up"
    });

    // Verification on: the self-signed certificate is refused, and the check says so.
    std::fs::write(&cfg, config(true)).unwrap();
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) }, 0);
    wait(&run, &log, "https down with verification", |s| {
        backend(s, 0)["state"] == "down"
    });
    let s = status(&run).unwrap();
    let detail = backend(&s, 0)["last_check"]["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        detail.to_lowercase().contains("certificate") || detail.contains("CA"),
        "{detail}"
    );
    drop(server);
}
