//! Per-backend traffic counters of the nft engine, sampled by the daemon: packets, bytes and new
//! flows per backend (the per-backend counter sets, see [`crate::lb::nft`]), pinned flows per
//! backend (a count of the flow map, every few seconds), and per-second rates over the last
//! sample interval, as `ipvsadm --rate` shows them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lb::datapath::NftPath;
use crate::lb::nft::Mac;

/// One backend's counters, as the status file carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendCounters {
    /// Packets and bytes forwarded to the backend (client → backend: DSR replies bypass the
    /// balancer).
    pub packets: u64,
    pub bytes: u64,
    /// Flows that picked this backend (first packets; a flow whose pin expired counts again).
    pub new_flows: u64,
    /// Flows pinned to the backend now (sampled every few seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_flows: Option<u64>,
    /// Per second, over the last sample interval (about one second).
    pub packets_rate: u64,
    pub bytes_rate: u64,
    pub new_flows_rate: u64,
}

type Key = (String, Mac);
/// Packets, bytes and new flows per backend at one moment.
type Sample = BTreeMap<Key, (u64, u64, u64)>;

/// How often the flow maps are counted (each listing costs up to `flow_size` elements).
const PINNED_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Sampler {
    now: Sample,
    base: Option<(Instant, Sample)>,
    rates: Sample,
    pinned: BTreeMap<Key, u64>,
    pinned_at: Option<Instant>,
}

fn flatten<T>(m: BTreeMap<String, BTreeMap<Mac, T>>) -> BTreeMap<Key, T> {
    m.into_iter()
        .flat_map(|(id, per)| per.into_iter().map(move |(mac, v)| ((id.clone(), mac), v)))
        .collect()
}

impl Sampler {
    /// Read the counters now; rates are recomputed once at least a second has passed.
    pub fn sample(&mut self, n: &NftPath) {
        let at = Instant::now();
        self.now = flatten(n.backend_counters());
        match &self.base {
            Some((t, base)) if at.duration_since(*t) >= Duration::from_secs(1) => {
                let secs = at.duration_since(*t).as_secs_f64();
                let per_s = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs).round() as u64;
                self.rates = self
                    .now
                    .iter()
                    .map(|(k, &(p, b, f))| {
                        let (p0, b0, f0) = base.get(k).copied().unwrap_or((p, b, f));
                        (k.clone(), (per_s(p, p0), per_s(b, b0), per_s(f, f0)))
                    })
                    .collect();
                self.base = Some((at, self.now.clone()));
            }
            Some(_) => {}
            None => self.base = Some((at, self.now.clone())),
        }
        if self.pinned_at.is_none_or(|t| t.elapsed() >= PINNED_EVERY) {
            self.pinned_at = Some(at);
            self.pinned = flatten(n.pinned_flows());
        }
    }

    /// The counters of the backend with this MAC in service `id` (nft id), if sampled.
    pub fn get(&self, id: &str, mac: Mac) -> Option<BackendCounters> {
        let k = (id.to_string(), mac);
        let &(packets, bytes, new_flows) = self.now.get(&k)?;
        let (packets_rate, bytes_rate, new_flows_rate) =
            self.rates.get(&k).copied().unwrap_or_default();
        Some(BackendCounters {
            packets,
            bytes,
            new_flows,
            pinned_flows: self
                .pinned_at
                .map(|_| self.pinned.get(&k).copied().unwrap_or(0)),
            packets_rate,
            bytes_rate,
            new_flows_rate,
        })
    }
}
