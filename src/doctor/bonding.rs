//! Seed 004's bonding check: a balancer behind an 802.3ad (LACP) or balance-xor bond whose
//! `xmit_hash_policy` is `layer2` picks the egress link from the MAC pair alone. A DSR balancer
//! sends everything from one MAC to a handful of backend MACs, so nearly all of its traffic
//! leaves by one link of the bond. `layer3+4` spreads it by flow.
//!
//! The parser reads the text the bonding driver writes to `/proc/net/bonding/BOND` (format:
//! drivers/net/bonding/bond_procfs.c, Documentation/networking/bonding.rst). This kernel cannot
//! create bonds (no bonding module), so the parser is tested on fixture files only
//! (`fixtures/bonding/`, written from the documented format), never on a live bond.

use super::Finding;

/// What doctor needs from one `/proc/net/bonding/BOND` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bond {
    pub name: String,
    /// `Bonding Mode:` as the driver prints it (`IEEE 802.3ad Dynamic link aggregation`).
    pub mode: String,
    /// The policy name of `Transmit Hash Policy:` (`layer2`, `layer3+4`, …), if printed.
    pub xmit_hash_policy: Option<String>,
    /// `Slave Interface:` names, in order.
    pub slaves: Vec<String>,
}

impl Bond {
    /// 802.3ad or balance-xor: the modes that hash flows onto links.
    pub fn hashes(&self) -> bool {
        self.mode.contains("802.3ad") || self.mode.contains("(xor)")
    }
}

/// Parse one `/proc/net/bonding/NAME` file.
pub fn parse(name: &str, text: &str) -> Bond {
    let mut b = Bond {
        name: name.to_string(),
        ..Bond::default()
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Bonding Mode" => b.mode = v.to_string(),
            // "layer2 (0)": the name, without the numeric value.
            "Transmit Hash Policy" => {
                b.xmit_hash_policy = v.split_whitespace().next().map(str::to_string)
            }
            "Slave Interface" => b.slaves.push(v.to_string()),
            _ => {}
        }
    }
    b
}

/// One finding per bond: a warning for a hashing bond with `xmit_hash_policy layer2`.
pub fn checks(bonds: &[Bond]) -> Vec<Finding> {
    bonds
        .iter()
        .map(|b| {
            let title = format!("bond {}: traffic spread over its links", b.name);
            let policy = b.xmit_hash_policy.as_deref().unwrap_or("-");
            let ev = format!(
                "/proc/net/bonding/{}: {}, xmit_hash_policy {policy}, links {}",
                b.name,
                b.mode,
                b.slaves.join(" ")
            );
            if b.hashes() && policy == "layer2" && b.slaves.len() > 1 {
                Finding::warn("lb.bonding", title)
                    .evidence(ev)
                    .evidence(
                        "layer2 hashes the MAC pair only: one balancer MAC sends nearly all traffic \
                         out of one link",
                    )
                    .fix(format!(
                        "ip link set {} type bond xmit_hash_policy layer3+4   (and in the bond's \
                         persistent configuration)",
                        b.name
                    ))
            } else {
                Finding::pass("lb.bonding", title).evidence(ev)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn fixture(name: &str) -> Bond {
        let text = match name {
            "bond0" => include_str!("fixtures/bonding/bond0-8023ad-layer2.txt"),
            "bond1" => include_str!("fixtures/bonding/bond1-xor-layer2.txt"),
            "bond2" => include_str!("fixtures/bonding/bond2-8023ad-layer34.txt"),
            "bond3" => include_str!("fixtures/bonding/bond3-active-backup.txt"),
            _ => unreachable!(),
        };
        parse(name, text)
    }

    #[test]
    fn parses_the_procfs_format() {
        let b = fixture("bond0");
        assert_eq!(b.mode, "IEEE 802.3ad Dynamic link aggregation");
        assert_eq!(b.xmit_hash_policy.as_deref(), Some("layer2"));
        assert_eq!(b.slaves, ["eth0", "eth1"]);
        assert!(b.hashes());
        let b = fixture("bond2");
        assert_eq!(b.xmit_hash_policy.as_deref(), Some("layer3+4"));
        let b = fixture("bond3");
        assert_eq!(b.mode, "fault-tolerance (active-backup)");
        assert_eq!(b.xmit_hash_policy, None);
        assert!(!b.hashes());
        assert_eq!(b.slaves, ["eth5", "eth6"]);
    }

    #[test]
    fn layer2_on_a_hashing_bond_warns_with_the_fix() {
        let f = checks(&[
            fixture("bond0"),
            fixture("bond1"),
            fixture("bond2"),
            fixture("bond3"),
        ]);
        let st: Vec<Status> = f.iter().map(|x| x.status).collect();
        assert_eq!(st, [Status::Warn, Status::Warn, Status::Pass, Status::Pass]);
        assert_eq!(
            f[1].fix.as_deref().unwrap().split("   ").next(),
            Some("ip link set bond1 type bond xmit_hash_policy layer3+4")
        );
        assert!(f[0].evidence[0].contains("802.3ad"));
    }

    #[test]
    fn garbage_is_not_a_hashing_bond() {
        let b = parse("x", "no colon here\n\n: \nBonding Mode:\n");
        assert!(!b.hashes());
        assert!(checks(&[b])[0].status == Status::Pass);
    }
}
