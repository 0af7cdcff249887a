//! Runtime control of a running `lb run`: a unix socket next to its status file
//! (`<run dir>/lb-run/NAME.sock`, mode 0600, root only), one JSON request and one JSON answer per
//! connection. `lbctl lb drain|undrain|weight|disable|enable` talk to it; the daemon polls it
//! from its main loop and applies a change at once (no reload), for both engines, since both
//! take the same per-backend weights.
//!
//! What the socket changes are *overrides* on top of the LB file: they survive SIGHUP (and a
//! restart: they are kept in the status file), are shown marked as overrides in `lb status`, and
//! are dropped only by the opposite command or when the service or backend leaves the file.
//! A backend's `disable_file` (exists → drained) is the same override driven by a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ipvs::model::MAX_WEIGHT;
use crate::sys::unixsock;

/// How long one request may take to arrive or be answered.
pub const IO_TIMEOUT: Duration = Duration::from_millis(500);

/// The control socket of daemon `name` (next to its status file and lock).
pub fn socket_path(journal_dir: &Path, name: &str) -> PathBuf {
    crate::lb::status::dir(journal_dir).join(format!("{name}.sock"))
}

/// One request. Services and backends are named as lbctl prints them: `198.18.0.100:80`,
/// `udp 198.18.0.100:53`; `198.18.0.11:80`, `[2001:db8::11]:80`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// No new flows to the backend (weight 0); established ones continue.
    Drain { service: String, backend: String },
    /// Undo `drain`.
    Undrain { service: String, backend: String },
    /// Run the backend with this weight instead of the file's; `null` goes back to the file's.
    Weight {
        service: String,
        backend: String,
        weight: Option<u32>,
    },
    /// No new flows to any backend of the service; established ones continue.
    Disable { service: String },
    /// Undo `disable`.
    Enable { service: String },
    /// Drain the whole balancer: withdraw the announcements, keep forwarding until no flow is
    /// pinned or `timeout_secs` pass, then remove the data path and VIPs and exit
    /// ([`crate::lb::drain`]). With `wait` the answer comes only once that is done.
    #[serde(rename = "drain-balancer")]
    DrainBalancer { timeout_secs: u64, wait: bool },
}

impl Request {
    /// The service an override request names (none for [`Request::DrainBalancer`]).
    pub fn service(&self) -> Option<&str> {
        match self {
            Request::Drain { service, .. }
            | Request::Undrain { service, .. }
            | Request::Weight { service, .. }
            | Request::Disable { service }
            | Request::Enable { service } => Some(service),
            Request::DrainBalancer { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    /// False when the override was already as asked.
    #[serde(default)]
    pub changed: bool,
    /// What was done, or why nothing was.
    pub message: String,
    /// [`Request::DrainBalancer`] with `wait`: how the drain ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<crate::lb::drain::Outcome>,
}

impl Response {
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            changed: false,
            message: message.into(),
            drain: None,
        }
    }
}

/// One backend's runtime override.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendOverride {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

impl BackendOverride {
    fn is_empty(&self) -> bool {
        !self.drained && self.weight.is_none()
    }
}

/// One service's runtime overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceOverride {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// By backend name (`198.18.0.11:80`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, BackendOverride>,
}

/// Every runtime override of a daemon, by service name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides(pub BTreeMap<String, ServiceOverride>);

/// What the daemon runs now, for validating a request: services with their backends' names.
pub type Known = Vec<(String, Vec<String>)>;

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn backend(&self, service: &str, backend: &str) -> Option<&BackendOverride> {
        self.0.get(service)?.backends.get(backend)
    }

    pub fn disabled(&self, service: &str) -> bool {
        self.0.get(service).is_some_and(|s| s.disabled)
    }

    /// The weight the data path should use for a healthy backend: the file's, or the
    /// override's; 0 while drained (by command or `disable_file`) or its service is disabled.
    pub fn weight(&self, service: &str, backend: &str, file: u32, file_drained: bool) -> u32 {
        let o = self.backend(service, backend);
        if file_drained || self.disabled(service) || o.is_some_and(|o| o.drained) {
            return 0;
        }
        o.and_then(|o| o.weight).unwrap_or(file)
    }

    /// The overrides in force on a backend, as `lb status` shows them.
    pub fn marks(
        &self,
        service: &str,
        backend: &str,
        file_weight: u32,
        disable_file: Option<&Path>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if self.disabled(service) {
            out.push("service disabled (lbctl lb disable)".to_string());
        }
        if let Some(f) = disable_file {
            out.push(format!("drained: {} exists", f.display()));
        }
        if let Some(o) = self.backend(service, backend) {
            if o.drained {
                out.push("drained (lbctl lb drain)".to_string());
            }
            if let Some(w) = o.weight {
                out.push(format!(
                    "weight {w} (lbctl lb weight; the file says {file_weight})"
                ));
            }
        }
        out
    }

    /// Apply a request after checking it names a running service and backend; nothing changes
    /// on an error. Returns what was done.
    pub fn apply(&mut self, req: &Request, known: &Known) -> Result<Response, String> {
        let r = self.apply_checked(req, known);
        // A refused request may have left an empty entry behind: nothing changed.
        self.prune();
        r
    }

    fn apply_checked(&mut self, req: &Request, known: &Known) -> Result<Response, String> {
        let Some(service) = req.service() else {
            return Err("not an override request".into());
        };
        let Some((_, backends)) = known.iter().find(|(s, _)| s == service) else {
            return Err(format!(
                "this balancer has no service {service} (it runs: {})",
                known
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let check_backend = |b: &str| -> Result<(), String> {
            if backends.iter().any(|x| x == b) {
                Ok(())
            } else {
                Err(format!(
                    "service {service} has no backend {b} (its backends: {})",
                    backends.join(", ")
                ))
            }
        };
        let svc = self.0.entry(service.to_string()).or_default();
        let (changed, message) = match req {
            Request::Disable { .. } | Request::Enable { .. } => {
                let want = matches!(req, Request::Disable { .. });
                let changed = svc.disabled != want;
                svc.disabled = want;
                (
                    changed,
                    format!(
                        "{service}: {}",
                        if want {
                            "disabled: no new flows to any backend, established flows continue"
                        } else {
                            "enabled: backends get new flows again"
                        }
                    ),
                )
            }
            Request::Drain { backend, .. } | Request::Undrain { backend, .. } => {
                check_backend(backend)?;
                let want = matches!(req, Request::Drain { .. });
                let o = svc.backends.entry(backend.clone()).or_default();
                let changed = o.drained != want;
                o.drained = want;
                (
                    changed,
                    format!(
                        "{service} backend {backend}: {}",
                        if want {
                            "drained: no new flows, established flows continue"
                        } else {
                            "undrained: gets new flows again"
                        }
                    ),
                )
            }
            Request::DrainBalancer { .. } => unreachable!("no service: returned above"),
            Request::Weight {
                backend, weight, ..
            } => {
                check_backend(backend)?;
                if let Some(w) = weight.filter(|w| *w > MAX_WEIGHT) {
                    return Err(format!("weight {w} is not in 0..={MAX_WEIGHT}"));
                }
                let o = svc.backends.entry(backend.clone()).or_default();
                let changed = o.weight != *weight;
                o.weight = *weight;
                (
                    changed,
                    match weight {
                        Some(w) => format!("{service} backend {backend}: weight {w} (override)"),
                        None => format!("{service} backend {backend}: the file's weight again"),
                    },
                )
            }
        };
        self.prune();
        Ok(Response {
            ok: true,
            changed,
            message: if changed {
                message
            } else {
                format!("unchanged: {message}")
            },
            drain: None,
        })
    }

    /// Drop empty entries.
    fn prune(&mut self) {
        for s in self.0.values_mut() {
            s.backends.retain(|_, o| !o.is_empty());
        }
        self.0.retain(|_, s| s.disabled || !s.backends.is_empty());
    }

    /// Keep only the overrides of services and backends that still run (after a reload);
    /// returns what was dropped, for the log.
    pub fn retain(&mut self, known: &Known) -> Vec<String> {
        let mut dropped = Vec::new();
        self.0.retain(|svc, o| {
            let Some((_, backends)) = known.iter().find(|(s, _)| s == svc) else {
                dropped.push(svc.clone());
                return false;
            };
            o.backends.retain(|b, _| {
                let keep = backends.contains(b);
                if !keep {
                    dropped.push(format!("{svc} backend {b}"));
                }
                keep
            });
            true
        });
        self.prune();
        dropped
    }
}

/// The daemon's end: the listening socket.
pub struct Server {
    listener: unixsock::Listener,
}

/// One request that arrived, to be answered with [`Pending::answer`].
pub struct Pending {
    stream: std::os::unix::net::UnixStream,
    pub request: Result<Request, String>,
}

impl Server {
    pub fn bind(path: &Path) -> crate::error::Result<Server> {
        let listener = unixsock::Listener::bind(path).map_err(|e| {
            crate::error::Error::Runtime(anyhow::anyhow!(
                "creating the control socket {}: {e}",
                path.display()
            ))
        })?;
        Ok(Server { listener })
    }

    pub fn path(&self) -> &Path {
        self.listener.path()
    }

    /// Requests waiting now (never blocks when none is). A peer that is not root, or sends
    /// what is not a request, gets an error answer here.
    pub fn pending(&self) -> Vec<Pending> {
        let mut out = Vec::new();
        // A bounded batch per poll: the main loop must not starve.
        for _ in 0..16 {
            let Some((stream, r)) = self.listener.accept(IO_TIMEOUT) else {
                break;
            };
            let request = match r {
                Err(e) => Err(format!("reading the request: {e}")),
                Ok((uid, _)) if uid != 0 => Err(format!(
                    "uid {uid} is not allowed: the control socket is root's"
                )),
                Ok((_, bytes)) => serde_json::from_slice::<Request>(&bytes)
                    .map_err(|e| format!("bad request: {e}")),
            };
            out.push(Pending { stream, request });
        }
        out
    }
}

impl Pending {
    pub fn answer(mut self, r: &Response) {
        use std::io::Write;
        if let Ok(body) = serde_json::to_vec(r) {
            let _ = self.stream.write_all(&body);
        }
    }
}

/// The client's end: send `req` to the socket at `path`.
pub fn call(path: &Path, req: &Request) -> std::io::Result<Response> {
    // The daemon answers from its main loop (at most ~50 ms away) unless it is busy
    // programming a large table; allow for that.
    call_within(path, req, Duration::from_secs(5))
}

/// [`call`] with another limit (a drain with `wait` is answered when it ends).
pub fn call_within(path: &Path, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    let answer = unixsock::call(path, &body, timeout)?;
    serde_json::from_slice(&answer).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "unreadable answer ({e}): {}",
                String::from_utf8_lossy(&answer)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        vec![
            (
                "198.18.0.100:80".into(),
                vec!["198.18.0.11:80".into(), "198.18.0.12:80".into()],
            ),
            ("udp 198.18.0.100:53".into(), vec!["198.18.0.11:53".into()]),
        ]
    }

    #[test]
    fn requests_parse_and_bad_ones_change_nothing() {
        let r: Request = serde_json::from_str(
            r#"{"command":"weight","service":"198.18.0.100:80","backend":"198.18.0.11:80","weight":5}"#,
        )
        .unwrap();
        let mut o = Overrides::default();
        assert!(o.apply(&r, &known()).unwrap().changed);
        assert_eq!(o.weight("198.18.0.100:80", "198.18.0.11:80", 1, false), 5);
        assert!(!o.apply(&r, &known()).unwrap().changed);
        for bad in [
            r#"{"command":"explode","service":"x"}"#,
            r#"{"command":"drain","service":"198.18.0.100:80"}"#,
            r#"{"command":"drain","service":"198.18.0.100:80","backend":"b","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        let before = o.clone();
        for bad in [
            Request::Drain {
                service: "198.18.0.100:81".into(),
                backend: "198.18.0.11:80".into(),
            },
            Request::Drain {
                service: "198.18.0.100:80".into(),
                backend: "198.18.0.13:80".into(),
            },
            Request::Weight {
                service: "198.18.0.100:80".into(),
                backend: "198.18.0.11:80".into(),
                weight: Some(u32::MAX),
            },
        ] {
            let e = o.apply(&bad, &known()).unwrap_err();
            assert!(e.contains("no service") || e.contains("no backend") || e.contains("weight"));
            assert_eq!(o, before, "{bad:?} changed something");
        }
    }

    #[test]
    fn drain_disable_and_retain() {
        let mut o = Overrides::default();
        let s = "198.18.0.100:80";
        o.apply(
            &Request::Drain {
                service: s.into(),
                backend: "198.18.0.12:80".into(),
            },
            &known(),
        )
        .unwrap();
        assert_eq!(o.weight(s, "198.18.0.12:80", 3, false), 0);
        assert_eq!(o.weight(s, "198.18.0.11:80", 3, false), 3);
        assert_eq!(o.weight(s, "198.18.0.11:80", 3, true), 0, "disable_file");
        o.apply(&Request::Disable { service: s.into() }, &known())
            .unwrap();
        assert_eq!(o.weight(s, "198.18.0.11:80", 3, false), 0);
        assert_eq!(o.marks(s, "198.18.0.12:80", 3, None).len(), 2);
        o.apply(&Request::Enable { service: s.into() }, &known())
            .unwrap();
        o.apply(
            &Request::Undrain {
                service: s.into(),
                backend: "198.18.0.12:80".into(),
            },
            &known(),
        )
        .unwrap();
        assert!(o.is_empty(), "{o:?}");
        o.apply(&Request::Disable { service: s.into() }, &known())
            .unwrap();
        let e = o
            .apply(
                &Request::Undrain {
                    service: s.into(),
                    backend: "198.18.0.19:80".into(),
                },
                &known(),
            )
            .unwrap_err();
        assert!(e.contains("no backend"), "{e}");
        assert!(o.0.get(s).is_some_and(|v| v.backends.is_empty()), "{o:?}");
        let dropped = o.retain(&vec![("udp 198.18.0.100:53".into(), vec![])]);
        assert_eq!(dropped, vec![s.to_string()]);
        assert!(o.is_empty());
    }
}
