//! Maglev consistent hashing (Eisenbud et al., NSDI'16 §3.4), for the nftables DSR engine.
//!
//! Each backend gets a permutation of the M slots from two hashes of its name:
//! `offset = h1 mod M`, `skip = h2 mod (M-1) + 1`, `perm[j] = (offset + j·skip) mod M`.
//! M prime makes every permutation visit every slot. Backends take turns claiming the next free
//! slot of their permutation until the table is full; a backend with weight w takes w turns per
//! round (weights are divided by their gcd first), so its share is proportional to its weight.
//! Removing a backend frees its slots, but the refill without it also reshuffles some of the
//! survivors' slots (their turns come at other times). Measured at M = 65537 (`lb maglev`): a
//! removal moves 1.03× the removed backend's own share at N = 10, 1.57× at N = 100 and 6.7× at
//! N = 1000 — near the 1/N minimum only while M/N is large.
//!
//! The hashes are fixed (FNV-1a with a splitmix64 finaliser), so every balancer — and every
//! run of lbctl — builds the same table from the same backends.

/// A backend as the table builder sees it: a stable name (its address) and a weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    pub weight: u32,
}

/// Default table size: prime, and > 100 × N for up to 655 backends.
pub const DEFAULT_SIZE: usize = 65537;

fn fnv1a(data: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV alone mixes the last bytes poorly.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    let mut i = 2;
    while i * i <= n {
        if n % i == 0 {
            return false;
        }
        i += 1;
    }
    true
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Build the lookup table: `table[slot]` is an index into `backends`. Backends with weight 0
/// get no slots. Returns `None` when no backend has a weight or `m` is not prime.
pub fn build(backends: &[Backend], m: usize) -> Option<Vec<usize>> {
    fill(backends, m).map(|t| t.into_iter().map(|i| i as usize).collect())
}

/// The fill itself, on `u32` indices. Each backend walks its permutation by adding `skip`
/// (no division per probe): the same slots in the same order as `(offset + j·skip) mod M`.
fn fill(backends: &[Backend], m: usize) -> Option<Vec<u32>> {
    if !is_prime(m) || m > u32::MAX as usize {
        return None;
    }
    let g = backends
        .iter()
        .map(|b| b.weight)
        .filter(|w| *w > 0)
        .fold(0, gcd);
    if g == 0 {
        return None;
    }
    let m64 = m as u64;
    // (backend index, current slot of its permutation, skip, turns per round)
    let mut live: Vec<(u32, u64, u64, u32)> = backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.weight > 0)
        .map(|(i, b)| {
            let offset = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0001) % m64;
            let skip = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0002) % (m64 - 1) + 1;
            (i as u32, offset, skip, b.weight / g)
        })
        .collect();
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    'fill: loop {
        for (idx, slot, skip, turns) in live.iter_mut() {
            for _ in 0..*turns {
                // Next still-free slot of this backend's permutation.
                while table[*slot as usize] != u32::MAX {
                    *slot += *skip;
                    if *slot >= m64 {
                        *slot -= m64;
                    }
                }
                table[*slot as usize] = *idx;
                *slot += *skip;
                if *slot >= m64 {
                    *slot -= m64;
                }
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
    }
    Some(table)
}

/// For each backend, the share of slots (= of new flows) that changes backend when that one
/// backend is removed (`None` where nothing is left to build a table from). Exactly what one
/// full rebuild per backend gives (tested against it), computed by replaying the original fill
/// ([`Replay`]) and only redoing the turns the removal can change; removals whose weights
/// would change the fill's rhythm (another gcd) are rebuilt in full. Spread over every core.
pub fn removal_disruptions(backends: &[Backend], m: usize) -> Option<Vec<Option<f64>>> {
    let replay = Replay::new(backends, m)?;
    let n = backends.len();
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(n.max(1));
    let table = &replay.table;
    let full = |i: usize| -> Option<f64> {
        let rest: Vec<Backend> = backends
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| b.clone())
            .collect();
        let t2 = fill(&rest, m)?;
        // rest index j is backend j (j < i) or j + 1 (j ≥ i)
        let i = i as u32;
        let moved = table
            .iter()
            .zip(&t2)
            .filter(|(a, b)| **a != if **b < i { **b } else { **b + 1 })
            .count();
        Some(moved as f64 / m as f64)
    };
    let one = |i: usize, w: &mut ReplayWork| -> Option<f64> {
        match replay.removal(i, w) {
            Some(moved) => Some(moved as f64 / m as f64),
            None => full(i),
        }
    };
    let per = n.div_ceil(threads).max(1);
    let mut out = vec![None; n];
    std::thread::scope(|s| {
        let chunks: Vec<_> = out
            .chunks_mut(per)
            .enumerate()
            .map(|(c, chunk)| {
                let replay = &replay;
                s.spawn(move || {
                    let mut w = ReplayWork::new(replay);
                    for (k, o) in chunk.iter_mut().enumerate() {
                        *o = one(c * per + k, &mut w);
                    }
                })
            })
            .collect();
        for h in chunks {
            h.join().expect("a Maglev removal thread panicked");
        }
    });
    Some(out)
}

const FREE: u32 = u32::MAX;
const UNSET: u32 = u32::MAX - 1;

/// The original fill, recorded turn by turn: which backend took which slot at which position of
/// its permutation, and every probe (slot, turn). The fill without backend r runs the same turns
/// minus r's; a turn can only come out differently when its probes cross a slot that is free
/// without r (a "hole": r's, or one a changed turn left), when its slot was taken earlier by a
/// changed turn, or when its backend's position already differs. Only those turns are redone.
struct Replay {
    m: usize,
    /// Original table (backend indices).
    table: Vec<u32>,
    /// Per live backend: backend index, offset, skip, turns per round, first turn in a round.
    live: Vec<(u32, u64, u64, u32, u32)>,
    /// Turns per round; turn t belongs to `round[t % w]` (a live index).
    w: usize,
    round: Vec<u32>,
    /// gcd of the weights.
    g: u32,
    /// Per turn: the slot taken and its position in the backend's permutation.
    turn_slot: Vec<u32>,
    turn_pos: Vec<u32>,
    /// Per slot: the turn that took it.
    claim_turn: Vec<u32>,
    /// Per slot: the turns whose probes visited it, in order (CSR).
    cov_start: Vec<u32>,
    cov: Vec<u32>,
}

/// Per-thread scratch space for [`Replay::removal`], reset after each use.
struct ReplayWork {
    overlay: Vec<u32>,
    touched: Vec<u32>,
    next: Vec<u64>,
    events: std::collections::BinaryHeap<std::cmp::Reverse<u32>>,
}

impl ReplayWork {
    fn new(r: &Replay) -> ReplayWork {
        ReplayWork {
            overlay: vec![UNSET; r.m],
            touched: Vec::new(),
            next: vec![0; r.live.len()],
            events: std::collections::BinaryHeap::new(),
        }
    }
}

impl Replay {
    fn new(backends: &[Backend], m: usize) -> Option<Replay> {
        if !is_prime(m) || m >= UNSET as usize {
            return None;
        }
        let g = backends
            .iter()
            .map(|b| b.weight)
            .filter(|w| *w > 0)
            .fold(0, gcd);
        if g == 0 {
            return None;
        }
        let m64 = m as u64;
        let mut live = Vec::new();
        let mut round = Vec::new();
        for (i, b) in backends.iter().enumerate().filter(|(_, b)| b.weight > 0) {
            let offset = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0001) % m64;
            let skip = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0002) % (m64 - 1) + 1;
            let turns = b.weight / g;
            if round.len() + turns as usize > 4 * m {
                // A round longer than the table: not worth recording; callers rebuild.
                round.clear();
                break;
            }
            live.push((i as u32, offset, skip, turns, round.len() as u32));
            round.extend(std::iter::repeat_n((live.len() - 1) as u32, turns as usize));
        }
        let w = round.len();
        let mut table = vec![FREE; m];
        let mut turn_slot = Vec::with_capacity(m);
        let mut turn_pos = Vec::with_capacity(m);
        let mut claim_turn = vec![0u32; m];
        let mut probes: Vec<(u32, u32)> = Vec::with_capacity(m * 12);
        let mut next = vec![0u64; live.len()];
        let mut cur: Vec<u64> = live.iter().map(|l| l.1).collect();
        if w == 0 {
            // Fall back: plain table only (no replay possible).
            let t = fill(backends, m)?;
            return Some(Replay {
                m,
                table: t,
                live: Vec::new(),
                w: 0,
                round,
                g,
                turn_slot,
                turn_pos,
                claim_turn,
                cov_start: Vec::new(),
                cov: Vec::new(),
            });
        }
        let mut t = 0usize;
        while t < m {
            let k = round[t % w] as usize;
            let skip = live[k].2;
            loop {
                let slot = cur[k] as usize;
                probes.push((slot as u32, t as u32));
                if table[slot] == FREE {
                    break;
                }
                next[k] += 1;
                cur[k] += skip;
                if cur[k] >= m64 {
                    cur[k] -= m64;
                }
            }
            let slot = cur[k] as usize;
            table[slot] = live[k].0;
            claim_turn[slot] = t as u32;
            turn_slot.push(slot as u32);
            turn_pos.push(next[k] as u32);
            next[k] += 1;
            cur[k] += skip;
            if cur[k] >= m64 {
                cur[k] -= m64;
            }
            t += 1;
        }
        // Counting sort of the probes by slot, keeping turn order within a slot.
        let mut cov_start = vec![0u32; m + 1];
        for (s, _) in &probes {
            cov_start[*s as usize + 1] += 1;
        }
        for i in 0..m {
            cov_start[i + 1] += cov_start[i];
        }
        let mut fillp: Vec<u32> = cov_start[..m].to_vec();
        let mut cov = vec![0u32; probes.len()];
        for (s, t) in probes {
            cov[fillp[s as usize] as usize] = t;
            fillp[s as usize] += 1;
        }
        Some(Replay {
            m,
            table,
            live,
            w,
            round,
            g,
            turn_slot,
            turn_pos,
            claim_turn,
            cov_start,
            cov,
        })
    }

    /// The last turn of live backend `k` before turn `t`.
    fn prev_turn(&self, t: usize, k: usize) -> Option<usize> {
        let (_, _, _, turns, first) = self.live[k];
        let (first, turns) = (first as usize, turns as usize);
        let pos = t % self.w;
        let base = t - pos;
        if pos > first {
            Some(base + (pos - 1).min(first + turns - 1))
        } else if base >= self.w {
            Some(base - self.w + first + turns - 1)
        } else {
            None
        }
    }

    /// Slots whose backend changes when backend `r` (an index into the backends) is removed,
    /// or `None` when the replay does not apply (then rebuild in full).
    fn removal(&self, r: usize, w: &mut ReplayWork) -> Option<usize> {
        if self.w == 0 {
            return None;
        }
        let Some(rl) = self.live.iter().position(|l| l.0 as usize == r) else {
            // Weight 0: not in the fill at all, nothing moves.
            return Some(0);
        };
        let g2 = self
            .live
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != rl)
            .map(|(_, l)| l.3 * self.g)
            .fold(0, gcd);
        if g2 != self.g {
            return None;
        }
        let m = self.m;
        let m64 = m as u64;
        let ReplayWork {
            overlay,
            touched,
            next,
            events,
        } = w;
        let set = |overlay: &mut Vec<u32>, touched: &mut Vec<u32>, s: usize, v: u32| {
            if overlay[s] == UNSET {
                touched.push(s as u32);
            }
            overlay[s] = v;
        };
        let hole_events = |events: &mut std::collections::BinaryHeap<std::cmp::Reverse<u32>>,
                           s: usize,
                           t: u32| {
            let (a, b) = (self.cov_start[s] as usize, self.cov_start[s + 1] as usize);
            for &e in &self.cov[a..b] {
                if e > t {
                    events.push(std::cmp::Reverse(e));
                }
            }
        };
        // Backend rl's turns are all events (each leaves its slot free).
        let (_, _, _, rturns, rfirst) = self.live[rl];
        let mut r_turns = 0usize;
        let mut base = 0usize;
        while base < m {
            for q in 0..rturns as usize {
                let t = base + rfirst as usize + q;
                if t < m {
                    events.push(std::cmp::Reverse(t as u32));
                    r_turns += 1;
                }
            }
            base += self.w;
        }
        let mut diverged = vec![false; self.live.len()];
        let next_turn = |t: usize, k: usize| -> usize {
            let (_, _, _, turns, first) = self.live[k];
            let pos = t % self.w;
            if pos + 1 < (first + turns) as usize {
                t + 1
            } else {
                t + self.w - turns as usize + 1
            }
        };
        // A turn redone for real: backend k probes from its position in the new fill.
        let probe = |overlay: &mut Vec<u32>, next: &mut Vec<u64>, k: usize, t: usize| -> usize {
            let (_, off, skip, _, _) = self.live[k];
            let mut pos = next[k];
            let mut slot = ((off + (pos % m64) * skip) % m64) as usize;
            loop {
                let free = match overlay[slot] {
                    FREE => true,
                    UNSET => t < m && self.claim_turn[slot] >= t as u32,
                    _ => false,
                };
                if free {
                    break;
                }
                pos += 1;
                slot += skip as usize;
                if slot >= m {
                    slot -= m;
                }
            }
            next[k] = pos + 1;
            slot
        };
        let mut last = None;
        while let Some(std::cmp::Reverse(t)) = events.pop() {
            if last == Some(t) {
                continue;
            }
            last = Some(t);
            let t = t as usize;
            let k = self.round[t % self.w] as usize;
            let old = self.turn_slot[t] as usize;
            if k == rl {
                if overlay[old] == UNSET {
                    set(overlay, touched, old, FREE);
                    hole_events(events, old, t as u32);
                }
                continue;
            }
            if !diverged[k] {
                // Where the backend started this turn in the original fill.
                next[k] = self
                    .prev_turn(t, k)
                    .map_or(0, |p| u64::from(self.turn_pos[p]) + 1);
            }
            let slot = probe(overlay, next, k, t);
            let id = self.live[k].0;
            if slot == old {
                if overlay[old] != UNSET {
                    set(overlay, touched, old, id);
                }
            } else {
                if overlay[slot] == UNSET {
                    // Taken before its original turn: that turn must be redone.
                    events.push(std::cmp::Reverse(self.claim_turn[slot]));
                }
                set(overlay, touched, slot, id);
                if overlay[old] == UNSET {
                    set(overlay, touched, old, FREE);
                    hole_events(events, old, t as u32);
                }
            }
            diverged[k] = next[k] != u64::from(self.turn_pos[t]) + 1;
            if diverged[k] {
                let nt = next_turn(t, k);
                if nt < m {
                    events.push(std::cmp::Reverse(nt as u32));
                }
            }
        }
        // Tail: the original fill is over, r's slots are still to give out.
        let mut left = r_turns;
        let mut t = m;
        while left > 0 {
            let k = self.round[t % self.w] as usize;
            if k != rl {
                if !diverged[k] {
                    next[k] = self
                        .prev_turn(m, k)
                        .map_or(0, |p| u64::from(self.turn_pos[p]) + 1);
                    diverged[k] = true;
                }
                let slot = probe(overlay, next, k, t);
                set(overlay, touched, slot, self.live[k].0);
                left -= 1;
            }
            t += 1;
        }
        let mut moved = 0;
        events.clear();
        for &s in touched.iter() {
            let s = s as usize;
            if overlay[s] != self.table[s] {
                moved += 1;
            }
            overlay[s] = UNSET;
        }
        touched.clear();
        Some(moved)
    }
}

/// Slots per backend index.
pub fn counts(table: &[usize], n: usize) -> Vec<usize> {
    let mut c = vec![0; n];
    for &i in table {
        c[i] += 1;
    }
    c
}

/// Fraction of slots whose backend differs between two tables of the same size.
pub fn disruption(a: &[usize], a_names: &[Backend], b: &[usize], b_names: &[Backend]) -> f64 {
    let moved = a
        .iter()
        .zip(b)
        .filter(|(x, y)| a_names[**x].name != b_names[**y].name)
        .count();
    moved as f64 / a.len() as f64
}

/// Largest relative deviation of any backend's share from its weight-proportional ideal.
pub fn imbalance(table: &[usize], backends: &[Backend]) -> f64 {
    let total_w: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let c = counts(table, backends.len());
    backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.weight > 0)
        .map(|(i, b)| {
            let ideal = table.len() as f64 * f64::from(b.weight) / total_w as f64;
            (c[i] as f64 - ideal).abs() / ideal
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                name: format!("198.18.0.{}", 11 + i),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn every_slot_filled_and_deterministic() {
        let b = backends(7);
        let t = build(&b, 251).unwrap();
        assert!(t.iter().all(|&i| i < 7));
        assert_eq!(t, build(&b, 251).unwrap());
        assert!(build(&b, 250).is_none(), "non-prime size refused");
        let zero = vec![Backend {
            name: "x".into(),
            weight: 0,
        }];
        assert!(build(&zero, 251).is_none());
    }

    #[test]
    fn balance_within_one_percent_at_65537() {
        for n in [2, 3, 10, 100] {
            let b = backends(n);
            let t = build(&b, DEFAULT_SIZE).unwrap();
            let imb = imbalance(&t, &b);
            assert!(imb < 0.01, "n={n}: imbalance {imb}");
        }
    }

    #[test]
    fn weights_are_honoured() {
        let mut b = backends(3);
        b[0].weight = 2;
        b[2].weight = 0;
        let t = build(&b, DEFAULT_SIZE).unwrap();
        let c = counts(&t, 3);
        assert_eq!(c[2], 0, "weight 0 gets nothing");
        let ratio = c[0] as f64 / c[1] as f64;
        assert!((ratio - 2.0).abs() < 0.02, "ratio {ratio}");
    }

    /// The table as the paper writes it (`(offset + j·skip) mod M` per probe): the fast fill
    /// must give the very same table.
    fn build_reference(backends: &[Backend], m: usize) -> Option<Vec<usize>> {
        if !is_prime(m) {
            return None;
        }
        let g = backends
            .iter()
            .map(|b| b.weight)
            .filter(|w| *w > 0)
            .fold(0, gcd);
        if g == 0 {
            return None;
        }
        let live: Vec<(usize, u64, u64, u32)> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| b.weight > 0)
            .map(|(i, b)| {
                let offset = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0001) % m as u64;
                let skip = fnv1a(b.name.as_bytes(), 0x6c62_6374_6c00_0002) % (m as u64 - 1) + 1;
                (i, offset, skip, b.weight / g)
            })
            .collect();
        let mut next = vec![0u64; live.len()];
        let mut table = vec![usize::MAX; m];
        let mut filled = 0;
        'fill: loop {
            for (k, (idx, offset, skip, turns)) in live.iter().enumerate() {
                for _ in 0..*turns {
                    let mut slot = ((offset + next[k] * skip) % m as u64) as usize;
                    while table[slot] != usize::MAX {
                        next[k] += 1;
                        slot = ((offset + next[k] * skip) % m as u64) as usize;
                    }
                    table[slot] = *idx;
                    next[k] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        Some(table)
    }

    /// Small pseudo-random backend sets with mixed weights (0 included).
    fn mixed(seed: u64, n: usize) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                name: format!("10.{}.{}.{}", seed % 7, i / 200, i % 200),
                weight: ((fnv1a(&[i as u8, seed as u8], seed) % 5) as u32).max(u32::from(i == 0)),
            })
            .collect()
    }

    #[test]
    fn fast_fill_is_the_reference_table() {
        for (seed, n, m) in [
            (1, 1, 7),
            (2, 3, 251),
            (3, 10, 1009),
            (4, 40, 4099),
            (5, 7, 65537),
        ] {
            let b = mixed(seed, n);
            assert_eq!(
                build(&b, m),
                build_reference(&b, m),
                "seed {seed} n {n} m {m}"
            );
        }
        assert_eq!(build(&backends(5), 250), None);
    }

    #[test]
    fn removal_disruptions_equal_one_full_rebuild_each() {
        for (seed, n, m) in [
            (1, 2, 251),
            (2, 5, 1009),
            (3, 12, 4099),
            (6, 30, 4099),
            (7, 100, 4099),
            (8, 40, 8191),
        ] {
            let b = mixed(seed, n);
            let t = build_reference(&b, m).unwrap();
            let want: Vec<Option<f64>> = (0..n)
                .map(|i| {
                    let mut rest = b.clone();
                    rest.remove(i);
                    let t2 = build_reference(&rest, m)?;
                    Some(disruption(&t, &b, &t2, &rest))
                })
                .collect();
            assert_eq!(
                removal_disruptions(&b, m).unwrap(),
                want,
                "seed {seed} n {n}"
            );
        }
    }

    /// The replay itself (no fallback to a rebuild) on equal and on mixed weights.
    #[test]
    fn replay_gives_the_rebuilt_table() {
        for (n, heavy) in [(60, None), (25, Some(3))] {
            let mut b = backends(n);
            if let Some(h) = heavy {
                b[h].weight = 2;
            }
            let t = build_reference(&b, 4099).unwrap();
            let replay = Replay::new(&b, 4099).unwrap();
            let mut w = ReplayWork::new(&replay);
            for i in 0..n {
                let mut rest = b.clone();
                rest.remove(i);
                let t2 = build_reference(&rest, 4099).unwrap();
                let want = t
                    .iter()
                    .zip(&t2)
                    .filter(|(x, y)| b[**x].name != rest[**y].name)
                    .count();
                // weights 1 and 2: the gcd stays 1 for every removal, so the replay applies
                assert_eq!(replay.removal(i, &mut w), Some(want), "n {n} backend {i}");
            }
        }
    }

    /// Maglev moves more than the removed backend's own share, increasingly so with more
    /// backends (M fixed): the refill reshuffles slots among the survivors too.
    #[test]
    fn disruption_on_removal_is_at_least_the_removed_share() {
        for n in [3, 5, 10] {
            let b = backends(n);
            let d = removal_disruptions(&b, DEFAULT_SIZE).unwrap();
            let min = 1.0 / n as f64;
            for x in d {
                let x = x.unwrap();
                assert!(
                    x >= min * 0.99 && x < min * 1.5,
                    "n={n}: moved {x:.4}, minimum {min:.4}"
                );
            }
        }
    }
}
