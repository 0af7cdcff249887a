//! The two data paths `lb run` drives: kernel IPVS (through the plan/diff code of `lb apply`)
//! and the nftables netdev engine with Maglev. Both take the same input — each service's
//! backends with their effective weights — and change only what differs.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::ipvs::plan::{self, Entry, Table};
use crate::ipvs::{Client, ServiceKey};
use crate::journal::Journal;
use crate::lb::nft::{self, Layout, Mac, Svc};
use crate::lb::status::NftRecord;
use crate::maglev;
use crate::sys;
use crate::sys::nfnl::{self, Nfnl, NFPROTO_NETDEV};

/// One backend as the data path should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantBackend {
    pub rip: IpAddr,
    pub port: u16,
    /// 0: quiesced (no new flows).
    pub weight: u32,
    /// Not in the service at all (removed after a failure, or never checked yet on IPVS with
    /// `on_failure = "remove"`).
    pub removed: bool,
    pub mac: Option<Mac>,
}

/// One service as the data path should have it: the LB file's entry (settings, configured
/// weights) and the live backends.
#[derive(Debug, Clone)]
pub struct Want {
    pub entry: Entry,
    pub backends: Vec<WantBackend>,
}

impl Want {
    pub fn key(&self) -> ServiceKey {
        self.entry.service.key
    }
}

/// The nft engine's view of a service (the LB file was validated for it).
pub fn nft_svc(key: &ServiceKey, size: usize) -> Option<Svc> {
    match *key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => Some(Svc {
            vip: addr,
            port,
            l4: match protocol {
                crate::ipvs::Protocol::Tcp => nft::L4::Tcp,
                crate::ipvs::Protocol::Udp => nft::L4::Udp,
                crate::ipvs::Protocol::Sctp => return None,
            },
            size,
        }),
        ServiceKey::Fwmark { .. } => None,
    }
}

/// What [`NftPath::drift`] found changed behind lbctl's back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftDrift {
    /// As last written (or the ruleset generation has not moved since it was last verified).
    None,
    /// The table's structure differs (see [`NftPath::intact`]): rebuild it.
    Table(String),
    /// These services' slot maps differ: rewrite them ([`NftPath::forget_slots`]).
    Slots(Vec<String>),
}

pub struct NftPath {
    layout: Layout,
    /// The slot maps are written and read over nf_tables netlink (one batch per change, a
    /// binary dump to verify), not through nft: nft 1.0.6 parses element lists as text and
    /// fetches every element of the table for almost any query (seconds at M = 65537).
    nl: RefCell<Nfnl>,
    /// The ruleset generation at which the table was last known to be exactly as lbctl wrote
    /// it (structure as `shape`, slot maps as `loaded`). Every committed nf_tables transaction
    /// bumps the generation by one; packet-path updates of the flow maps and counters do not.
    /// So while the kernel still reports this generation, nothing needs to be listed.
    verified: Cell<Option<u32>>,
    /// The table's structure (chains with their rule counts, maps) as last programmed: what
    /// [`NftPath::intact`] compares the kernel's against.
    shape: Option<Vec<String>>,
    /// Service id → signature of the maps that exist in the kernel.
    existing: BTreeMap<String, String>,
    /// Service id → slot map contents as loaded (None until the first full load).
    loaded: BTreeMap<String, Vec<Option<Mac>>>,
    /// Slots the last [`NftPath::program`] wrote (all of a map loaded in full), for the log.
    pub last_written: usize,
}

impl NftPath {
    /// Take over the table: keep what a previous run recorded if it matches, else start clean.
    pub fn start(layout: Layout, previous: Option<&NftRecord>) -> Result<NftPath> {
        let mut existing = BTreeMap::new();
        if sys::nft::table_exists("netdev", &layout.table)? {
            match previous {
                Some(p) if p.table == layout.table && p.iface == layout.iface => {
                    existing = p.maps.clone();
                }
                _ => sys::nft::run_script(
                    &format!("replacing table netdev {}", layout.table),
                    &nft::render_delete(&layout.table),
                )?,
            }
        }
        let mut me = NftPath {
            layout: Layout {
                services: Vec::new(),
                ..layout
            },
            nl: RefCell::new(Nfnl::open()?),
            verified: Cell::new(None),
            existing,
            loaded: BTreeMap::new(),
            shape: None,
            last_written: 0,
        };
        // Force the first structural render.
        me.layout.services.clear();
        Ok(me)
    }

    /// The programmed service for an LB-file service key.
    fn svc(&self, key: &ServiceKey) -> Option<&Svc> {
        self.layout
            .services
            .iter()
            .find(|s| nft_svc(key, s.size).as_ref() == Some(*s))
    }

    pub fn table(&self) -> &str {
        &self.layout.table
    }

    pub fn record(&self) -> NftRecord {
        NftRecord {
            table: self.layout.table.clone(),
            iface: self.layout.iface.clone(),
            maps: self.existing.clone(),
        }
    }

    /// Make the table's structure match `services` (only new, changed or removed services are
    /// touched). Returns what it did, for the log.
    pub fn set_services(&mut self, services: Vec<Svc>) -> Result<Option<String>> {
        let want: BTreeMap<String, String> = services
            .iter()
            .map(|s| (s.id(), self.layout.map_signature(s)))
            .collect();
        let first = self.loaded.is_empty() && self.layout.services.is_empty();
        if want == self.existing && !first && services == self.layout.services {
            return Ok(None);
        }
        self.layout.services = services;
        let script = self.layout.render(&self.existing);
        let g0 = self.generation()?;
        sys::nft::run_script(
            &format!("programming table netdev {}", self.layout.table),
            &script,
        )?;
        let g1 = self.generation()?;
        self.shape = Some(self.observe_shape()?.unwrap_or_default());
        // Kept maps keep what was written only if nothing but this script changed the ruleset
        // since it was verified; otherwise they are reloaded in full (one netlink batch).
        if !(self.verified.get() == Some(g0) && g1 == g0.wrapping_add(1)) {
            self.loaded.clear();
        }
        // The structure was just observed: verified at g1 unless something changed meanwhile.
        let g2 = self.generation()?;
        self.verified.set((g2 == g1).then_some(g2));
        let kept: BTreeSet<String> = want
            .iter()
            .filter(|(id, sig)| self.existing.get(*id) == Some(*sig))
            .map(|(id, _)| id.clone())
            .collect();
        // A kept map's contents are unknown after a restart: reload it in full once.
        self.loaded.retain(|id, _| kept.contains(id));
        let n = want.len();
        self.existing = want;
        Ok(Some(format!(
            "table netdev {} on {}: {n} service(s), {} kept with their pinned flows",
            self.layout.table,
            self.layout.iface,
            kept.len()
        )))
    }

    /// The ruleset generation now.
    fn generation(&self) -> Result<u32> {
        self.nl.borrow_mut().generation()
    }

    /// Run `f`, a change of lbctl's own to the ruleset (one transaction), keeping the table
    /// verified when it was verified before and nothing else committed in between.
    fn commit_ours<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(v) = self.verified.get() else {
            return f();
        };
        let g0 = self.generation()?;
        self.verified.set(None);
        let r = f()?;
        let g1 = self.generation()?;
        if g0 == v && g1 == g0.wrapping_add(1) {
            self.verified.set(Some(g1));
        }
        Ok(r)
    }

    /// Load every service's Maglev table from its backends; only changed slots are written, all
    /// services in one transaction (one nf_tables netlink batch: the deletes and adds of the
    /// changed slots, or a flush and a full load for a map whose contents are unknown). Returns
    /// per service the slots each backend holds.
    pub fn program(&mut self, wants: &[Want]) -> Result<HashMap<ServiceKey, Vec<usize>>> {
        let mut batch = nfnl::Batch::new();
        let mut next_loaded = Vec::new();
        let mut slots_of = HashMap::new();
        let mut written = 0;
        let t = self.layout.table.clone();
        for w in wants {
            let Some(svc) = self.svc(&w.key()).cloned() else {
                continue;
            };
            let live: Vec<(usize, &WantBackend)> = w
                .backends
                .iter()
                .enumerate()
                .filter(|(_, b)| !b.removed && b.weight > 0 && b.mac.is_some())
                .collect();
            let mb: Vec<maglev::Backend> = live
                .iter()
                .map(|(_, b)| maglev::Backend {
                    name: b.rip.to_string(),
                    weight: b.weight,
                })
                .collect();
            let table = maglev::build(&mb, svc.size);
            let mut counts = vec![0usize; w.backends.len()];
            let slots: Vec<Option<Mac>> = match &table {
                Some(t) => t
                    .iter()
                    .map(|&i| {
                        counts[live[i].0] += 1;
                        live[i].1.mac
                    })
                    .collect(),
                None => vec![None; svc.size],
            };
            slots_of.insert(w.key(), counts);
            let old = self.loaded.get(&svc.id()).map(Vec::as_slice);
            let d = nft::slot_delta(old, &slots);
            written += match old {
                Some(old) => slots.iter().zip(old).filter(|(a, b)| a != b).count(),
                None => d.adds.len(),
            };
            let m = svc.slot_map();
            if d.flush {
                batch.flush(NFPROTO_NETDEV, &t, &m);
            }
            let elem = |i: usize, mac: Option<Mac>| nfnl::Elem {
                key: nft::slot_key(i),
                data: mac.map(|m| m.to_vec()),
            };
            batch.delete(
                NFPROTO_NETDEV,
                &t,
                &m,
                d.dels.iter().map(|&i| elem(i, None)).collect(),
            );
            batch.add(
                NFPROTO_NETDEV,
                &t,
                &m,
                d.adds.iter().map(|&(i, mac)| elem(i, Some(mac))).collect(),
            );
            next_loaded.push((svc.id(), slots));
        }
        if !batch.is_empty() {
            self.commit_ours(|| {
                self.nl.borrow_mut().commit(&batch).map_err(|e| {
                    Error::Runtime(anyhow::anyhow!(
                        "updating the backend maps of table netdev {t}: {e}"
                    ))
                })
            })?;
        }
        for (id, s) in next_loaded {
            self.loaded.insert(id, s);
        }
        self.last_written = written;
        Ok(slots_of)
    }

    /// Forget the pinned flows of a backend (by MAC) in one service: its established flows
    /// move to the others (`on_failure = "remove"`). Returns how many were unpinned.
    pub fn unpin(&self, key: &ServiceKey, mac: Mac) -> Result<usize> {
        let Some(svc) = self.svc(key) else {
            return Ok(0);
        };
        let Some(doc) =
            sys::nft::list_json(&["map", "netdev", &self.layout.table, &svc.flow_map()])?
        else {
            return Ok(0);
        };
        let keys: Vec<(IpAddr, u16)> = nft::parse_flows(&doc)
            .into_iter()
            .filter(|(_, m)| *m == mac)
            .map(|(k, _)| k)
            .collect();
        self.commit_ours(|| {
            sys::nft::run_script(
                "unpinning flows",
                &nft::render_unpin(&self.layout.table, svc, &keys),
            )
        })?;
        Ok(keys.len())
    }

    /// The table's structure in the kernel (terse listing: no elements, counters ignored), or
    /// `None` when the table is gone.
    fn observe_shape(&self) -> Result<Option<Vec<String>>> {
        let Some(doc) = sys::nft::list_json_terse(&["table", "netdev", &self.layout.table])? else {
            return Ok(None);
        };
        Ok(Some(nft::shape(&doc)))
    }

    /// `None` when the table is as last programmed; otherwise what differs (flushed ruleset,
    /// deleted table, chain or map, rules added or removed).
    pub fn intact(&self) -> Result<Option<String>> {
        let Some(want) = &self.shape else {
            return Ok(None);
        };
        Ok(match self.observe_shape()? {
            None => Some("the table is gone".into()),
            Some(have) if &have != want => {
                let missing: Vec<&String> = want.iter().filter(|x| !have.contains(x)).collect();
                let extra: Vec<&String> = have.iter().filter(|x| !want.contains(x)).collect();
                Some(format!(
                    "changed behind lbctl's back: missing [{}], unexpected [{}]",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    extra
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            }
            Some(_) => None,
        })
    }

    /// Services whose Maglev slot map in the kernel differs from what was last written
    /// (elements deleted or changed behind lbctl's back); [`NftPath::forget_slots`] makes the
    /// next [`NftPath::program`] write them in full.
    pub fn slots_drifted(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for svc in &self.layout.services {
            let Some(loaded) = self.loaded.get(&svc.id()) else {
                continue;
            };
            let Some(elems) = self.nl.borrow_mut().set_elements(
                NFPROTO_NETDEV,
                &self.layout.table,
                &svc.slot_map(),
            )?
            else {
                out.push(svc.id());
                continue;
            };
            let have = nft::slots_from_raw(
                elems.iter().map(|e| (&e.key[..], e.data.as_deref())),
                svc.size,
            );
            // An element that does not decode, or a slot beyond the table, is drift too.
            let decoded = have.iter().filter(|s| s.is_some()).count();
            if have != *loaded || decoded != elems.len() {
                out.push(svc.id());
            }
        }
        Ok(out)
    }

    /// The cheap drift check `lb run` makes once a second: when the ruleset generation is the
    /// one at which the table was last verified (or lbctl's own last commit left it), nothing
    /// changed and nothing is listed. Otherwise the structure (nft, terse) and the slot maps
    /// (netlink dumps, milliseconds) are compared with what was written; when both match, the
    /// generation read before the comparison becomes the verified one (a change during the
    /// comparison moves the generation past it, so it is checked next time).
    pub fn drift(&self) -> Result<NftDrift> {
        if self.shape.is_none() {
            return Ok(NftDrift::None);
        }
        let g = self.generation()?;
        if self.verified.get() == Some(g) {
            return Ok(NftDrift::None);
        }
        if let Some(why) = self.intact()? {
            return Ok(NftDrift::Table(why));
        }
        let ids = self.slots_drifted()?;
        if !ids.is_empty() {
            return Ok(NftDrift::Slots(ids));
        }
        self.verified.set(Some(g));
        Ok(NftDrift::None)
    }

    /// Forget what was written to these services' slot maps (see [`NftPath::slots_drifted`]).
    pub fn forget_slots(&mut self, ids: &[String]) {
        for id in ids {
            self.loaded.remove(id);
        }
        self.verified.set(None);
    }

    /// Build the table again from scratch (after it was changed behind lbctl's back): the
    /// structure now, the Maglev slots at the next [`NftPath::program`]. Pinned flows that
    /// survived are lost with the old table.
    pub fn rebuild(&mut self) -> Result<()> {
        let exists = self
            .nl
            .borrow_mut()
            .table_exists(NFPROTO_NETDEV, &self.layout.table)?;
        if exists {
            sys::nft::run_script(
                &format!("replacing table netdev {}", self.layout.table),
                &nft::render_delete(&self.layout.table),
            )?;
        }
        let services = std::mem::take(&mut self.layout.services);
        self.existing.clear();
        self.loaded.clear();
        self.shape = None;
        self.verified.set(None);
        self.set_services(services).map(|_| ())
    }

    /// Packets per service id that entered its chain (its named counter).
    /// (A netlink dump of the table's counter objects: `nft list counters` would fetch every
    /// slot map's elements first.)
    pub fn packets(&self) -> BTreeMap<String, u64> {
        self.nl
            .borrow_mut()
            .counters(NFPROTO_NETDEV, &self.layout.table)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, (p, _))| Some((name.strip_prefix("c_")?.to_string(), p)))
            .collect()
    }

    /// Per service id, per backend MAC: (packets, bytes, new flows) from the per-backend counter
    /// sets. A service whose sets cannot be listed is left out.
    pub fn backend_counters(&self) -> BTreeMap<String, BTreeMap<Mac, (u64, u64, u64)>> {
        // Over netlink: `nft list set` of one small set makes nft 1.0.6 fetch every element of
        // the table (the slot maps and every pinned flow) — seconds of CPU each second.
        let list = |set: String| -> Option<BTreeMap<Mac, (u64, u64)>> {
            let elems = self
                .nl
                .borrow_mut()
                .set_counters(NFPROTO_NETDEV, &self.layout.table, &set)
                .ok()
                .flatten()?;
            Some(
                elems
                    .into_iter()
                    .filter_map(|(k, c)| Some((<Mac>::try_from(k.as_slice()).ok()?, c?)))
                    .collect(),
            )
        };
        let mut out = BTreeMap::new();
        for svc in &self.layout.services {
            let (Some(all), Some(new)) = (list(svc.backend_set()), list(svc.newflow_set())) else {
                continue;
            };
            let per: BTreeMap<Mac, (u64, u64, u64)> = all
                .into_iter()
                .map(|(mac, (p, b))| (mac, (p, b, new.get(&mac).map_or(0, |n| n.0))))
                .collect();
            out.insert(svc.id(), per);
        }
        out
    }

    /// Per service id, per backend MAC: how many flows are pinned now (a listing of the flow
    /// maps: up to `flow_size` elements each, so callers sample it slowly).
    pub fn pinned_flows(&self) -> BTreeMap<String, BTreeMap<Mac, u64>> {
        let mut out = BTreeMap::new();
        for svc in &self.layout.services {
            let Ok(Some(elems)) = self.nl.borrow_mut().set_elements(
                NFPROTO_NETDEV,
                &self.layout.table,
                &svc.flow_map(),
            ) else {
                continue;
            };
            let mut per: BTreeMap<Mac, u64> = BTreeMap::new();
            for mac in elems
                .iter()
                .filter_map(|e| <Mac>::try_from(e.data.as_deref()?).ok())
            {
                *per.entry(mac).or_insert(0) += 1;
            }
            out.insert(svc.id(), per);
        }
        out
    }

    /// Flows pinned now over every service (a fresh count of the flow maps); `None` when a map
    /// could not be read.
    pub fn pinned_total(&self) -> Option<u64> {
        let mut n = 0;
        for svc in &self.layout.services {
            let doc = sys::nft::list_json(&["map", "netdev", &self.layout.table, &svc.flow_map()])
                .ok()??;
            n += nft::parse_flows(&doc).len() as u64;
        }
        Some(n)
    }

    pub fn cleanup(&self) -> Result<()> {
        sys::nft::run_script(
            &format!("deleting table netdev {}", self.layout.table),
            &nft::render_delete(&self.layout.table),
        )
    }
}

/// The IPVS table `wants` describe (removed backends left out, quiesced ones at weight 0).
fn desired_table(wants: &[Want]) -> Table {
    let mut desired = Table::default();
    for w in wants {
        let mut e = Entry::new(w.entry.service.clone());
        for b in &w.backends {
            if b.removed {
                continue;
            }
            if let Some(d) = w.entry.dest(b.rip, b.port) {
                let mut d = d.clone();
                d.weight = b.weight;
                e.dests.push(d);
            }
        }
        desired.entries.push(e);
    }
    desired
}

pub struct IpvsPath {
    client: Client,
    /// Services this daemon created or manages (deleted when they leave the file), as the
    /// journal records them for its owner: a restarted daemon takes back exactly these.
    owned: HashSet<ServiceKey>,
    /// Where ownership is recorded, and as whom (`lb:NAME`); none until [`IpvsPath::adopt`].
    journal: Option<(Journal, String)>,
}

fn ipvs_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Runtime(anyhow::anyhow!("{what}: {e}"))
}

impl IpvsPath {
    pub fn open() -> std::result::Result<IpvsPath, crate::ipvs::Error> {
        Ok(IpvsPath {
            client: Client::open()?,
            owned: HashSet::new(),
            journal: None,
        })
    }

    /// Take over the services the journal records for `owner` (a previous run's), and record
    /// every service created from now on there, before creating it.
    pub fn adopt(&mut self, journal: &Journal, owner: &str) -> Result<()> {
        let state = journal.load()?;
        self.owned = crate::engine::lb::services_of(&state, owner)
            .into_iter()
            .collect();
        self.journal = Some((journal.clone(), owner.to_string()));
        Ok(())
    }

    /// Connections IPVS tracks now (active and inactive) to the backends of these services:
    /// what a drain of the whole balancer waits for.
    pub fn connections(&mut self, keys: &[ServiceKey]) -> Result<u64> {
        let mut n = 0;
        for k in keys {
            for d in self
                .client
                .destinations(k)
                .map_err(|e| ipvs_err("listing IPVS destinations", e))?
            {
                n += u64::from(d.active_conns) + u64::from(d.inact_conns);
            }
        }
        Ok(n)
    }

    /// The IPVS table as the kernel has it now (for a dry run's plan).
    pub fn table(&mut self) -> Result<Table> {
        Ok(Table::from_listing(
            &self
                .client
                .services()
                .map_err(|e| ipvs_err("listing IPVS", e))?,
        ))
    }

    /// Converge IPVS to `wants` (removed backends left out, quiesced ones at weight 0). Only
    /// what differs is changed; a failure rolls back. Returns the changes as ipvsadm lines.
    pub fn program(&mut self, wants: &[Want], detail: &dyn Fn(&str)) -> Result<Vec<String>> {
        let (desired, before, changes) = self.plan(wants)?;
        let keys: Vec<ServiceKey> = desired.keys().copied().collect();
        if let Some((journal, owner)) = &self.journal {
            // Write-ahead: recorded as ours before they exist.
            crate::engine::lb::record(journal, owner, &[], &keys)?;
        }
        let r = plan::execute(&mut self.client, &before, &changes, detail)
            .map_err(|e| ipvs_err("programming IPVS", e));
        let now: HashSet<ServiceKey> = if r.is_ok() {
            keys.iter().copied().collect()
        } else {
            self.owned.clone()
        };
        if let Some((journal, owner)) = &self.journal {
            crate::engine::lb::set_services(journal, owner, now.iter().copied())?;
        }
        r?;
        self.owned = now;
        Ok(changes.iter().map(|c| c.to_string()).collect())
    }

    /// How many changes IPVS needs to match `wants` now (0: as programmed). Non-zero when
    /// services or real servers were changed behind the daemon's back.
    pub fn drift(&mut self, wants: &[Want]) -> Result<usize> {
        Ok(self.plan(wants)?.2.len())
    }

    /// The table `wants` describe, the kernel's now, and the changes between them (touching
    /// only services this daemon owns, or that the file lists).
    fn plan(&mut self, wants: &[Want]) -> Result<(Table, Table, Vec<plan::Change>)> {
        let desired = desired_table(wants);
        let before = self.table()?;
        let changes = plan::diff(&desired, &before, &|k| self.owned.contains(k));
        Ok((desired, before, changes))
    }

    pub fn cleanup(&mut self, detail: &dyn Fn(&str)) -> Result<()> {
        self.program(&[], detail).map(|_| ())
    }
}

/// The running data path.
pub enum DataPath {
    Nft(NftPath),
    Ipvs(IpvsPath),
}

impl DataPath {
    pub fn name(&self) -> &'static str {
        match self {
            DataPath::Nft(_) => "nft",
            DataPath::Ipvs(_) => "ipvs",
        }
    }
}
