//! `lbctl lb run` with the IPVS engine (issue 18): the control socket's drain, undrain, weight,
//! disable and enable change the kernel's IPVS table by the time the command returns, leave the
//! other service alone, are marked in `lb status`, survive SIGHUP; a bad request changes
//! nothing; `lb balance --json` reads IPVS's per-destination counters and gives shares.
//!
//! The VM has only `lo`: the daemon owns the VIP there, the real servers are not local (DR
//! forwarding has no route out, but IPVS schedules and counts every new connection, which is
//! what is checked), and the health check is an `exec` of `/bin/true` (always up).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{args, expect_run, ipvsadm, lbctl, Client, Report, LBCTL};

const CONF: &str = "/tmp/vmrun.toml";
const LOG: &str = "/tmp/vmrun.log";
const WEB: &str = "198.18.6.1:80";

/// Two services: TCP 80 (wrr, weights 1 2 1), UDP 9 (wrr, weights 1 3) for `lb balance`.
fn config() -> String {
    let check = "[service.check]\ntype = \"exec\"\ncommand = [\"/bin/true\"]\ninterval = \"1s\"\n\
                 timeout = \"1s\"\nrise = 1\nfall = 3\n";
    format!(
        "name = \"vmrun\"\n[balancer]\nengine = \"ipvs\"\ninterface = \"lo\"\n\
         [[service]]\nvip = \"{WEB}\"\nscheduler = \"wrr\"\n{check}\
         [[service.backend]]\nrip = \"198.18.6.11\"\n\
         [[service.backend]]\nrip = \"198.18.6.12\"\nweight = 2\n\
         [[service.backend]]\nrip = \"198.18.6.13\"\n\
         [[service]]\nvip = \"198.18.6.1:9\"\nprotocol = \"udp\"\nscheduler = \"wrr\"\n{check}\
         [[service.backend]]\nrip = \"198.18.6.21\"\n\
         [[service.backend]]\nrip = \"198.18.6.22\"\nweight = 3\n"
    )
}

/// The rules `ipvsadm -S -n` prints for the two services, with these weights.
fn table(web: [u32; 3], udp: [u32; 2]) -> Vec<String> {
    let mut v = vec![format!("-A -t {WEB} -s wrr")];
    for (i, w) in web.iter().enumerate() {
        v.push(format!("-a -t {WEB} -r 198.18.6.1{}:80 -g -w {w}", i + 1));
    }
    v.push("-A -u 198.18.6.1:9 -s wrr".into());
    for (i, w) in udp.iter().enumerate() {
        v.push(format!(
            "-a -u 198.18.6.1:9 -r 198.18.6.2{}:9 -g -w {w}",
            i + 1
        ));
    }
    v
}

fn saved() -> Result<Vec<String>, String> {
    Ok(ipvsadm(&["-S", "-n"])?
        .lines()
        .map(str::to_string)
        .collect())
}

fn expect_table(what: &str, want: &[String]) -> Result<(), String> {
    let got = saved()?;
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: ipvsadm -S -n differs\n--- want ---\n{}\n--- got ---\n{}",
            want.join("\n"),
            got.join("\n")
        ))
    }
}

fn log_tail() -> String {
    let log = std::fs::read_to_string(LOG).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "--- lb run log (last 30 lines) ---\n{}",
        lines[lines.len().saturating_sub(30)..].join("\n")
    )
}

fn status() -> Option<Value> {
    let run = lbctl(&args("--json lb status vmrun"));
    serde_json::from_str::<Value>(&run.stdout)
        .ok()
        .map(|v| v["daemons"][0].clone())
}

fn wait_for(what: &str, secs: u64, mut pred: impl FnMut() -> bool) -> Result<f64, String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if pred() {
            return Ok(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!(
        "timed out after {secs} s waiting for {what}\nstatus: {:#}\n{}",
        status().unwrap_or(Value::Null),
        log_tail()
    ))
}

/// `lbctl CMDLINE` succeeds, then (no waiting) the kernel table is exactly `want`.
fn control(cmdline: &str, has: &str, want: &[String]) -> Result<String, String> {
    let t = Instant::now();
    let run = lbctl(&args(cmdline));
    let took = t.elapsed().as_secs_f64();
    expect_run(&run, 0, &[has]).map_err(|e| format!("lbctl {cmdline}: {e}\n{}", log_tail()))?;
    expect_table(&format!("right after `lbctl {cmdline}` returned"), want)?;
    Ok(format!("{cmdline}: {took:.2}s, in the kernel on return"))
}

fn backend_overrides(s: &Value, svc: usize, be: usize) -> Vec<String> {
    s["services"][svc]["backends"][be]["overrides"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_string))
        .collect()
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own, not yet reaped, child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn lb_run(c: &mut Client, r: &mut Report) {
    if let Err(e) = c.flush() {
        r.check("run.start", Err(format!("flush: {e}")));
        return;
    }
    let _ = std::fs::write(CONF, config());
    let log = match std::fs::File::create(LOG) {
        Ok(f) => f,
        Err(e) => return r.check("run.start", Err(format!("{LOG}: {e}"))),
    };
    let child = Command::new(LBCTL)
        .args(["lb", "run", "--cleanup", "-c", CONF])
        .env("LBCTL_RUN_DIR", "/tmp/lbctl-run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn();
    let daemon = match child {
        Ok(c) => Daemon(c),
        Err(e) => return r.check("run.start", Err(format!("spawning lb run: {e}"))),
    };
    let base = table([1, 2, 1], [1, 3]);
    let res = wait_for("every backend up and the table programmed", 90, || {
        status().is_some_and(|s| {
            s["ready"] == true
                && s["engine"] == "ipvs"
                && s["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|v| v["backends"].as_array().cloned().unwrap_or_default())
                    .all(|b| b["state"] == "up")
        }) && saved().is_ok_and(|t| t == base)
    })
    .map(|t| format!("ready after {t:.1}s; ipvsadm shows weights 1 2 1 / 1 3"));
    let started = res.is_ok();
    r.check("run.start", res);
    if !started {
        return;
    }

    let res = control(
        &format!("lb drain {WEB} 198.18.6.11"),
        "drained",
        &table([0, 2, 1], [1, 3]),
    )
    .and_then(|d| {
        let s = status().ok_or("no lb status")?;
        let o = backend_overrides(&s, 0, 0);
        if o.iter().any(|o| o.contains("drained"))
            && s["services"][0]["backends"][0]["effective_weight"] == 0
        {
            Ok(format!("{d}; lb status marks it: {o:?}"))
        } else {
            Err(format!(
                "lb status does not mark the drain: {:#}",
                s["services"][0]
            ))
        }
    });
    r.check("run.drain", res);

    let res = control(
        &format!("lb weight {WEB} 198.18.6.12 5"),
        "weight",
        &table([0, 5, 1], [1, 3]),
    )
    .and_then(|a| {
        control(
            &format!("lb weight {WEB} 198.18.6.12 --reset"),
            "weight",
            &table([0, 2, 1], [1, 3]),
        )
        .map(|b| format!("{a}; {b}"))
    });
    r.check("run.weight", res);

    // A bad request: exit 2, nothing changed.
    let res = (|| {
        let before = saved()?;
        for (cmd, has) in [
            (format!("lb drain {WEB} 198.18.6.99"), "refused"),
            (format!("lb weight {WEB} 198.18.6.12 3000000000"), "weight"),
            ("lb disable 198.18.6.1:81".to_string(), "198.18.6.1:81"),
        ] {
            let run = lbctl(&args(&cmd));
            expect_run(&run, 2, &[has]).map_err(|e| format!("lbctl {cmd}: {e}"))?;
        }
        expect_table("after refused requests", &before)?;
        Ok(
            "unknown backend, weight 3000000000, unknown service: exit 2, table unchanged"
                .to_string(),
        )
    })();
    r.check("run.refused", res);

    let res = control(&format!("lb undrain {WEB} 198.18.6.11"), "undrained", &base);
    r.check("run.undrain", res);

    let res = control(
        &format!("lb disable {WEB}"),
        "disabled",
        &table([0, 0, 0], [1, 3]),
    )
    .and_then(|a| {
        control(&format!("lb enable {WEB}"), "enabled", &base).map(|b| format!("{a}; {b}"))
    });
    r.check("run.disable-enable", res);

    // Overrides survive SIGHUP.
    let res = (|| {
        control(
            &format!("lb drain {WEB} 198.18.6.13"),
            "drained",
            &table([1, 2, 0], [1, 3]),
        )?;
        let reloads = status().ok_or("no lb status")?["reloads"]
            .as_u64()
            .unwrap_or(0);
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(daemon.0.id() as i32, libc::SIGHUP) };
        wait_for("the SIGHUP reload", 30, || {
            status().is_some_and(|s| s["reloads"].as_u64().unwrap_or(0) > reloads)
        })?;
        // give a wrong reload time to act before looking
        std::thread::sleep(Duration::from_secs(2));
        expect_table("after SIGHUP", &table([1, 2, 0], [1, 3]))?;
        control(&format!("lb undrain {WEB} 198.18.6.13"), "undrained", &base)?;
        Ok("drain of .13 kept across SIGHUP, then undrained".to_string())
    })();
    r.check("run.sighup", res);

    let res = balance();
    r.check("run.balance", res);

    drop(daemon);
    let res = wait_for("lb run --cleanup to remove its services", 30, || {
        saved().is_ok_and(|t| t.is_empty())
    })
    .map(|t| format!("table empty {t:.1}s after SIGTERM"));
    r.check("run.cleanup", res);
}

/// `lb balance --json` on the UDP service while local clients send one datagram per socket
/// (each a new IPVS connection): wrr 1:3 gives shares 0.25 and 0.75, skew ≈ 1.
fn balance() -> Result<String, String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
                    let _ = s.send_to(&[0u8; 64], "198.18.6.1:9");
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            n
        })
    };
    let run = lbctl(&args(
        "--json lb balance 198.18.6.1:9 --proto udp --window 6",
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = sender.join().unwrap_or(0);
    if run.code != 0 && run.code != 1 {
        return Err(format!(
            "lb balance: exit {}\n{}{}",
            run.code, run.stdout, run.stderr
        ));
    }
    let doc: Value = serde_json::from_str(&run.stdout)
        .map_err(|e| format!("lb balance --json: {e}\n{}", run.stdout))?;
    let svc = &doc["services"][0];
    let rows = svc["backends"].as_array().cloned().unwrap_or_default();
    let flows: Vec<u64> = rows
        .iter()
        .map(|b| b["new_flows"].as_u64().unwrap_or(0))
        .collect();
    let shares: Vec<f64> = rows
        .iter()
        .map(|b| b["share"]["new_flows"].as_f64().unwrap_or(-1.0))
        .collect();
    let wshares: Vec<f64> = rows
        .iter()
        .map(|b| b["share"]["weight"].as_f64().unwrap_or(-1.0))
        .collect();
    let skew = svc["skew"]["new_flows"].as_f64().unwrap_or(f64::MAX);
    let total: u64 = flows.iter().sum();
    let ok = run.code == 0
        && svc["service"] == "udp 198.18.6.1:9"
        && rows.len() == 2
        && total >= 40
        && (shares[0] - 0.25).abs() < 0.05
        && (shares[1] - 0.75).abs() < 0.05
        && wshares == [0.25, 0.75]
        && skew < 1.1;
    if ok {
        Ok(format!(
            "{sent} datagrams sent, {total} new flows in the window: {flows:?}, shares {shares:?} \
             (weights {wshares:?}), skew {skew:.3}"
        ))
    } else {
        Err(format!(
            "unexpected report (exit {}, {sent} datagrams sent)\n{}\n{}",
            run.code,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
            run.stderr
        ))
    }
}
