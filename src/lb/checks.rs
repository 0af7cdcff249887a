//! Running health checks: a fixed pool of worker threads (`max_concurrent_checks`) takes jobs
//! from the daemon's scheduler and sends back one result each. Every probe has a hard timeout,
//! so a black-holed backend costs one worker for at most `timeout`.

use std::net::IpAddr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::lb::config::{Check, Probe};
use crate::sys::probe::{self, HttpExpect, UdpDsrVerdict};
use crate::sys::rawpkt::{self, DsrProbe, DsrVerdict};

/// Identifies a backend across reloads: service name + RIP + port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackendId {
    pub service: String,
    pub rip: IpAddr,
    pub port: u16,
}

pub struct Job {
    pub id: BackendId,
    pub check: Check,
    pub vip: IpAddr,
    pub port: u16,
    /// Set when the check has `dsr = true` and the backend's MAC is known.
    pub dsr: Option<DsrProbe>,
    /// `dsr = true` but the MAC is not known yet.
    pub dsr_unresolved: bool,
}

pub struct Outcome {
    pub id: BackendId,
    pub ok: bool,
    pub detail: String,
    pub elapsed: Duration,
    /// An exec check with `weight_from_exit` that passed with exit 2-255: weight code − 2.
    pub weight: Option<u32>,
}

/// Run one job (blocking, bounded by the check's timeout per probe).
pub fn run(job: &Job) -> Outcome {
    let start = Instant::now();
    let c = &job.check;
    let port = c.port.unwrap_or(job.id.port);
    let rip = job.id.rip;
    let mut weight = None;
    let r = match &c.probe {
        Probe::Tcp => probe::tcp(rip, port, c.timeout).map(|_| ()),
        Probe::Http {
            path,
            host,
            expect_status,
            expect_body,
            tls,
        } => probe::http(
            rip,
            port,
            &HttpExpect {
                path,
                host: host.as_deref(),
                status: *expect_status,
                body: expect_body.as_deref(),
                tls: tls.as_ref().map(|t| (t.sni.as_deref(), t.verify)),
            },
            c.timeout,
        ),
        Probe::Udp { send, expect } => probe::udp_exchange(rip, port, send.as_bytes(), c.timeout)
            .and_then(|a| match expect {
                Some(x) if !String::from_utf8_lossy(&a).contains(x.as_str()) => Err(format!(
                    "the UDP answer from {} does not contain '{x}': {:?}",
                    crate::ipvs::text::addr_port(&rip, port),
                    String::from_utf8_lossy(&a[..a.len().min(80)])
                )),
                _ => Ok(()),
            }),
        Probe::Dns { name, qtype } => {
            let id = (std::process::id() as u16) ^ (start.elapsed().subsec_nanos() as u16);
            let q = crate::lb::dns::query(id, name, *qtype);
            probe::udp_exchange(rip, port, &q, c.timeout).and_then(|a| {
                let ans = crate::lb::dns::parse_answer(id, &a)?;
                match ans {
                    crate::lb::dns::Answer { rcode: 0, answers } if answers > 0 => Ok(()),
                    crate::lb::dns::Answer { rcode: 0, .. } => Err(format!(
                        "DNS {} {name}: no {} record in the answer",
                        crate::ipvs::text::addr_port(&rip, port),
                        qtype.name()
                    )),
                    a => Err(format!(
                        "DNS {} {name}: {}",
                        crate::ipvs::text::addr_port(&rip, port),
                        crate::lb::dns::rcode_name(a.rcode)
                    )),
                }
            })
        }
        Probe::Exec { command } => {
            let env = [
                ("LBCTL_RIP", rip.to_string()),
                ("LBCTL_PORT", port.to_string()),
                ("LBCTL_VIP", job.vip.to_string()),
                ("LBCTL_VIP_PORT", job.port.to_string()),
            ];
            if c.weight_from_exit {
                // keepalived's misc_dynamic: 0 up, 1 down, 2-255 up at weight code - 2.
                match probe::exec_status(command, &env, c.timeout) {
                    Ok((0, _)) => Ok(()),
                    Ok((code @ 2..=255, _)) => {
                        weight = Some(code as u32 - 2);
                        Ok(())
                    }
                    Ok((code, last)) => Err(format!("{} exit {code} (down) {last}", command[0])
                        .trim_end()
                        .to_string()),
                    Err(e) => Err(e),
                }
            } else {
                probe::exec(command, &env, c.timeout)
            }
        }
    };
    let r = r.and_then(|()| {
        if job.dsr_unresolved {
            return Err(format!(
                "DSR check: the MAC of {rip} is not known yet (no neighbour entry)"
            ));
        }
        let Some(p) = &job.dsr else { return Ok(()) };
        if p.udp {
            return match probe::dsr_udp(p) {
                Ok(UdpDsrVerdict::Reply | UdpDsrVerdict::PortUnreachable) => Ok(()),
                Ok(UdpDsrVerdict::WrongSource(from)) => Err(format!(
                    "DSR check: the answer to a datagram for {}:{} via {rip} came from {from}, \
                     not the VIP: the server must answer from the VIP (bind it, or use \
                     IP_PKTINFO)",
                    p.vip, p.port
                )),
                Ok(UdpDsrVerdict::NoAnswer) => Err(format!(
                    "DSR check: no answer (UDP from the VIP, or ICMP port unreachable) from {} via \
                     {rip} within {} ms: the backend does not take traffic for the VIP (VIP not \
                     on lo?)",
                    p.vip,
                    p.timeout.as_millis()
                )),
                Err(e) => Err(format!("DSR check: {e}")),
            };
        }
        match rawpkt::dsr_probe(p) {
            Ok(DsrVerdict::Ok) => Ok(()),
            Ok(DsrVerdict::Refused) => Err(format!(
                "DSR check: {rip} answered RST for {}:{}: the VIP is there but nothing listens on it",
                p.vip, p.port
            )),
            Ok(DsrVerdict::NoAnswer) => Err(format!(
                "DSR check: no SYN-ACK from {} via {rip} within {} ms: the backend does not take \
                 traffic for the VIP (VIP not on lo? replies not from the VIP?)",
                p.vip,
                p.timeout.as_millis()
            )),
            Err(e) => Err(format!("DSR check: {e}")),
        }
    });
    Outcome {
        id: job.id.clone(),
        ok: r.is_ok(),
        detail: r.err().unwrap_or_default(),
        elapsed: start.elapsed(),
        weight,
    }
}

/// The worker pool.
pub struct Pool {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn new(size: usize, results: Sender<Outcome>) -> Pool {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..size)
            .map(|i| {
                let rx: Arc<Mutex<Receiver<Job>>> = Arc::clone(&rx);
                let results = results.clone();
                std::thread::Builder::new()
                    .name(format!("check-{i}"))
                    .spawn(move || loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if results.send(run(&job)).is_err() {
                            return;
                        }
                    })
                    .expect("spawning a check worker")
            })
            .collect();
        Pool {
            jobs: Some(tx),
            workers,
        }
    }

    pub fn submit(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
