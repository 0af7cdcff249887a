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
/// full rebuild per backend gives — the rebuilds run on every available core.
pub fn removal_disruptions(backends: &[Backend], m: usize) -> Option<Vec<Option<f64>>> {
    let all: Vec<usize> = (0..backends.len()).collect();
    removal_disruptions_of(backends, m, &all)
}

/// Backends a sampled removal report computes: `k` indices evenly spaced over `0..n` (all of
/// them when `n <= k`). Deterministic: the same `n` and `k` always give the same indices.
pub fn removal_sample(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    (0..k).map(|i| i * n / k).collect()
}

/// [`removal_disruptions`] for the backends at `which` only (one full rebuild each), in the
/// order of `which`.
pub fn removal_disruptions_of(
    backends: &[Backend],
    m: usize,
    which: &[usize],
) -> Option<Vec<Option<f64>>> {
    let table = fill(backends, m)?;
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(which.len().max(1));
    let one = |i: usize| -> Option<f64> {
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
    let mut out = vec![None; which.len()];
    let per = which.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let chunks: Vec<_> = out
            .chunks_mut(per)
            .zip(which.chunks(per))
            .map(|(chunk, idx)| {
                s.spawn(move || {
                    for (o, &i) in chunk.iter_mut().zip(idx) {
                        *o = one(i);
                    }
                })
            })
            .collect();
        for h in chunks {
            h.join().expect("a Maglev rebuild thread panicked");
        }
    });
    Some(out)
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
        for (seed, n, m) in [(1, 2, 251), (2, 5, 1009), (3, 12, 4099), (6, 30, 4099)] {
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

    #[test]
    fn sampled_removals_equal_the_exact_ones_on_the_sampled_backends() {
        assert_eq!(removal_sample(5, 64), vec![0, 1, 2, 3, 4]);
        assert_eq!(removal_sample(10, 4), vec![0, 2, 5, 7]);
        assert_eq!(removal_sample(1000, 64).len(), 64);
        for (seed, n, k, m) in [(4, 30, 7, 4099), (5, 40, 8, 1009)] {
            let b = mixed(seed, n);
            let all = removal_disruptions(&b, m).unwrap();
            let idx = removal_sample(n, k);
            let want: Vec<Option<f64>> = idx.iter().map(|&i| all[i]).collect();
            assert_eq!(removal_disruptions_of(&b, m, &idx).unwrap(), want);
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
