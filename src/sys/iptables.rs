//! Legacy (x_tables) iptables, which `nft list ruleset` cannot see: lbctl does not evaluate it,
//! but must say it is there rather than let a firewall verdict look complete.
//!
//! A namespace where legacy tables were ever used lists them in `/proc/net/ip_tables_names`
//! (and `ip6_tables_names`); iptables-nft leaves these files empty. Reading them spawns nothing.

/// Legacy tables loaded in the current namespace, e.g. `["ip filter", "ip6 filter"]`.
pub fn legacy_tables() -> Vec<String> {
    let mut out = Vec::new();
    for (family, file) in [("ip", "ip_tables_names"), ("ip6", "ip6_tables_names")] {
        // thread-self: the namespace this thread entered with --netns.
        let path = format!("/proc/thread-self/net/{file}");
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        out.extend(text.split_whitespace().map(|t| format!("{family} {t}")));
    }
    out
}
