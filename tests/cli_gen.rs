//! `lbctl gen`: completions and man pages come from the clap definitions. These run without
//! root. Whether the checked-in `man/` and `completions/` are up to date is checked by
//! `scripts/gen-docs.sh --check` (run by CI), not here.

#[macro_use]
mod common;

use common::*;

#[test]
fn completions_for_every_shell() {
    let lb = Lbctl::plain();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = lb.run(&["gen", "completions", shell]);
        out.expect_ok();
        assert!(
            out.stdout.contains("lbctl") && out.stdout.len() > 200,
            "{shell} completions look empty\n{out}"
        );
        // Subcommands appear in the completions.
        for sub in ["vip", "arp", "route", "rpfilter"] {
            assert!(out.stdout.contains(sub), "{shell}: `{sub}` missing");
        }
    }
}

#[test]
fn man_pages_are_written() {
    let lb = Lbctl::plain();
    let dir = TempDir::new("man");
    let out = lb.run(&["gen", "man", dir.path().to_str().unwrap()]);
    out.expect_ok();
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read man dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    assert!(pages.contains(&"lbctl.1".to_string()), "{pages:?}");
    assert!(
        pages.iter().any(|p| p.starts_with("lbctl-vip")),
        "no page for `lbctl vip`: {pages:?}"
    );
    for page in &pages {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    // Deterministic: a second run writes the same bytes (CI diffs them against man/).
    let dir2 = TempDir::new("man");
    lb.ok(&["gen", "man", dir2.path().to_str().unwrap()]);
    for page in &pages {
        assert_eq!(
            std::fs::read(dir.path().join(page)).unwrap(),
            std::fs::read(dir2.path().join(page)).unwrap(),
            "{page} differs between two runs"
        );
    }
}
