//! Prometheus metrics of `lb run`: `metrics = "127.0.0.1:9109"` in `[balancer]` serves
//! `GET /metrics` in the text exposition format (OpenMetrics text, encoded by
//! `prometheus-client`), from a small HTTP server (`tiny_http`) on its own thread. The daemon
//! publishes its status snapshot (the same one `lb status` reads) about once a second and on
//! every change; a scrape renders the latest one.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};
use crate::lb::status::RunStatus;

/// The content type of what [`render`] produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LbLabels {
    lb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SvcLabels {
    lb: String,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BeLabels {
    lb: String,
    service: String,
    backend: String,
}

type GaugeF = Gauge<f64, AtomicU64>;

/// The metrics of one status snapshot, in the text exposition format.
pub fn render(s: &RunStatus) -> String {
    let mut reg = Registry::default();
    let lb = LbLabels { lb: s.name.clone() };
    let g_ready = Family::<LbLabels, Gauge>::default();
    let c_reloads = Family::<LbLabels, Counter>::default();
    let c_repairs = Family::<LbLabels, Counter>::default();
    let g_svc_disabled = Family::<SvcLabels, Gauge>::default();
    let c_svc_packets = Family::<SvcLabels, Counter>::default();
    let g_up = Family::<BeLabels, Gauge>::default();
    let g_weight = Family::<BeLabels, Gauge>::default();
    let g_eff = Family::<BeLabels, Gauge>::default();
    let g_slots = Family::<BeLabels, Gauge>::default();
    let c_packets = Family::<BeLabels, Counter>::default();
    let c_bytes = Family::<BeLabels, Counter>::default();
    let c_flows = Family::<BeLabels, Counter>::default();
    let g_pinned = Family::<BeLabels, Gauge>::default();
    let g_latency = Family::<BeLabels, GaugeF>::default();
    let c_failures = Family::<BeLabels, Counter>::default();
    g_ready.get_or_create(&lb).set(i64::from(s.ready));
    c_reloads.get_or_create(&lb).inc_by(s.reloads);
    c_repairs.get_or_create(&lb).inc_by(s.repairs);
    for v in &s.services {
        let sl = SvcLabels {
            lb: s.name.clone(),
            service: v.service.clone(),
        };
        g_svc_disabled.get_or_create(&sl).set(i64::from(v.disabled));
        if let Some(p) = v.packets {
            c_svc_packets.get_or_create(&sl).inc_by(p);
        }
        for b in &v.backends {
            let l = BeLabels {
                lb: s.name.clone(),
                service: v.service.clone(),
                backend: match b.rip.parse() {
                    Ok(ip) => crate::ipvs::text::addr_port(&ip, b.port),
                    Err(_) => format!("{}:{}", b.rip, b.port),
                },
            };
            g_up.get_or_create(&l).set(i64::from(b.state == "up"));
            g_weight.get_or_create(&l).set(i64::from(b.weight));
            g_eff.get_or_create(&l).set(i64::from(b.effective_weight));
            if let Some(n) = b.slots {
                g_slots.get_or_create(&l).set(n as i64);
            }
            if let Some(c) = &b.counters {
                c_packets.get_or_create(&l).inc_by(c.packets);
                c_bytes.get_or_create(&l).inc_by(c.bytes);
                c_flows.get_or_create(&l).inc_by(c.new_flows);
                if let Some(p) = c.pinned_flows {
                    g_pinned.get_or_create(&l).set(p as i64);
                }
            }
            if let Some(lc) = &b.last_check {
                g_latency.get_or_create(&l).set(lc.ms as f64 / 1000.0);
            }
            c_failures.get_or_create(&l).inc_by(b.check_failures);
        }
    }
    let p = "lbctl_lb_";
    reg.register(
        format!("{p}ready"),
        "1 once the data path is programmed and every backend was checked",
        g_ready,
    );
    reg.register(
        format!("{p}reloads"),
        "Successful configuration reloads (SIGHUP)",
        c_reloads,
    );
    reg.register(
        format!("{p}datapath_repairs"),
        "Data-path objects re-asserted after they were changed behind the daemon's back",
        c_repairs,
    );
    reg.register(
        format!("{p}service_disabled"),
        "1 while lbctl lb disable is in force",
        g_svc_disabled,
    );
    reg.register(
        format!("{p}service_packets"),
        "Packets that entered the service (nft engine)",
        c_svc_packets,
    );
    reg.register(
        format!("{p}backend_up"),
        "1 when the backend's health check state is up",
        g_up,
    );
    reg.register(format!("{p}backend_weight"), "Configured weight", g_weight);
    reg.register(
        format!("{p}backend_effective_weight"),
        "Weight in the data path now (0: down, drained or disabled)",
        g_eff,
    );
    reg.register(
        format!("{p}backend_slots"),
        "Maglev slots held (nft engine)",
        g_slots,
    );
    reg.register(
        format!("{p}backend_packets"),
        "Packets forwarded to the backend (nft engine)",
        c_packets,
    );
    reg.register(
        format!("{p}backend_bytes"),
        "Bytes forwarded to the backend (nft engine)",
        c_bytes,
    );
    reg.register(
        format!("{p}backend_new_flows"),
        "Flows that picked the backend (nft engine)",
        c_flows,
    );
    reg.register(
        format!("{p}backend_pinned_flows"),
        "Flows pinned to the backend now (nft engine, sampled every 5 s)",
        g_pinned,
    );
    reg.register(
        format!("{p}backend_check_latency_seconds"),
        "Duration of the last health check",
        g_latency,
    );
    reg.register(
        format!("{p}backend_check_failures"),
        "Failed health checks since the daemon started",
        c_failures,
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// The HTTP server: its thread answers scrapes with the latest published snapshot.
pub struct Server {
    http: Arc<tiny_http::Server>,
    latest: Arc<Mutex<Option<RunStatus>>>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Server {
    pub fn start(addr: SocketAddr) -> Result<Server> {
        let http = Arc::new(tiny_http::Server::http(addr).map_err(|e| {
            Error::Usage(format!(
                "[balancer] metrics = \"{addr}\": cannot listen there: {e}"
            ))
        })?);
        let latest: Arc<Mutex<Option<RunStatus>>> = Arc::default();
        let thread = std::thread::Builder::new()
            .name("lbctl-metrics".into())
            .spawn({
                let http = http.clone();
                let latest = latest.clone();
                move || {
                    for req in http.incoming_requests() {
                        let path = req.url().split('?').next().unwrap_or("").to_string();
                        let resp = match (req.method(), path.as_str()) {
                            (tiny_http::Method::Get, "/metrics") => {
                                let body = latest
                                    .lock()
                                    .ok()
                                    .and_then(|l| l.as_ref().map(render))
                                    .unwrap_or_else(|| "# EOF\n".into());
                                let ct = tiny_http::Header::from_bytes(
                                    &b"Content-Type"[..],
                                    CONTENT_TYPE.as_bytes(),
                                )
                                .expect("a valid header");
                                tiny_http::Response::from_string(body).with_header(ct)
                            }
                            (_, "/metrics") => {
                                tiny_http::Response::from_string("only GET\n").with_status_code(405)
                            }
                            _ => tiny_http::Response::from_string("see /metrics\n")
                                .with_status_code(404),
                        };
                        let _ = req.respond(resp);
                    }
                }
            })
            .map_err(|e| Error::Runtime(anyhow::anyhow!("starting the metrics thread: {e}")))?;
        Ok(Server {
            http,
            latest,
            thread: Some(thread),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn publish(&self, s: &RunStatus) {
        if let Ok(mut l) = self.latest.lock() {
            *l = Some(s.clone());
        }
    }
}

/// SIGHUP: serve `/metrics` where the reloaded file says (`want`), or nowhere. An unchanged
/// address keeps the running server. The new address is bound before the old one is let go;
/// when that fails (e.g. `127.0.0.1:9109` → `0.0.0.0:9109`, the same port), the old one is
/// closed and the bind retried for up to 2 s, and if it still fails the old address is served again and the
/// error returned. `Ok(Some(line))` describes a change for the log.
pub fn rebind(
    current: &mut Option<Server>,
    want: Option<SocketAddr>,
) -> std::result::Result<Option<String>, String> {
    let old = current.as_ref().map(Server::addr);
    if old == want {
        return Ok(None);
    }
    let Some(addr) = want else {
        *current = None;
        return Ok(Some(format!(
            "metrics: no longer serving /metrics on {}",
            old.map(|a| a.to_string()).unwrap_or_default()
        )));
    };
    let what = |old: Option<SocketAddr>| match old {
        Some(o) => format!("metrics: /metrics moved from {o} to {addr}"),
        None => format!("metrics: serving /metrics on {addr}"),
    };
    match Server::start(addr) {
        Ok(s) => {
            *current = Some(s);
            return Ok(Some(what(old)));
        }
        Err(_) if old.is_none() => {}
        Err(_) => *current = None,
    }
    // tiny_http's listener closes on its own accept thread, shortly after the drop.
    let mut tries = 0;
    let started = loop {
        match Server::start(addr) {
            Err(_) if old.is_some() && tries < 40 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => break r,
        }
    };
    match started {
        Ok(s) => {
            *current = Some(s);
            Ok(Some(what(old)))
        }
        Err(e) => {
            let kept = match old.map(Server::start) {
                Some(Ok(s)) => {
                    *current = Some(s);
                    format!("still serving {}", s_addr(current))
                }
                Some(Err(e2)) => format!("and the old address could not be bound again: {e2}"),
                None => "not serving /metrics".to_string(),
            };
            Err(format!("{e}; {kept}"))
        }
    }
}

fn s_addr(s: &Option<Server>) -> String {
    s.as_ref().map(|s| s.addr().to_string()).unwrap_or_default()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.http.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
