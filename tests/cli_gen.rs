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

#[test]
fn man_pages_read_like_man_pages() {
    let lb = Lbctl::plain();
    let dir = TempDir::new("man");
    lb.ok(&["gen", "man", dir.path().to_str().unwrap()]);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let page = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // The synopsis is the command as typed: `lbctl vip add`, not `lbctl-vip-add`.
        let typed = page.replace('-', " ");
        let synopsis = text
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .unwrap_or_else(|| panic!("{page}: no SYNOPSIS"));
        // (A verb may contain a dash itself: `lbctl arp who-has`.)
        let first = synopsis
            .strip_prefix("\\fB")
            .and_then(|s| s.split_once("\\fR"))
            .map(|(cmd, _)| cmd.replace("\\-", "-"))
            .unwrap_or_default();
        assert!(
            first.starts_with("lbctl")
                && first.replace(' ', "-") == page
                && first.contains(' ') == page.contains('-'),
            "{page}: synopsis does not start with `{typed}`:\n{synopsis}"
        );
        // The NAME line keeps the page name (whatis/apropos index it).
        assert!(
            text.contains(&format!(".SH NAME\n{} \\- ", page.replace('-', "\\-"))),
            "{page}: NAME"
        );
        // Global options on every page, and the usual sections.
        for needle in [
            "\\fB\\-\\-netns\\fR",
            "\\fB\\-\\-dry\\-run\\fR",
            "\\fB\\-\\-json\\fR",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(text.contains(needle), "{page}: `{needle}` missing");
        }
        // One roff preamble, not one per section.
        assert_eq!(text.matches(".ds Aq \\(aq").count(), 1, "{page}");
    }
}

/// Run a bash completion request against the generated script: the words typed so far (the
/// last one is being completed), answered by the function `complete -p lbctl` names.
fn bash_complete(script: &std::path::Path, cwd: &std::path::Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}'\n\
         fn=$(complete -p lbctl | sed -n 's/.*-F \\([^ ]*\\) .*/\\1/p')\n\
         COMP_WORDS=({})\n\
         COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n\
         COMPREPLY=()\n\
         $fn lbctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" ")
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&prog)
        .current_dir(cwd)
        .output()
        .expect("running bash");
    assert!(out.status.success(), "bash failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn completions_offer_interfaces_and_profiles() {
    let lb = Lbctl::plain();
    let dir = TempDir::new("compl");
    let script = dir.path().join("lbctl.bash");
    std::fs::write(
        &script,
        lb.ok(&["gen", "completions", "bash"]).stdout.as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.path().join("web.toml"), "").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "").unwrap();

    let ifaces = bash_complete(
        &script,
        dir.path(),
        &["lbctl", "vip", "add", "198.18.0.100", "--dev", ""],
    );
    assert!(ifaces.contains(&"lo".to_string()), "--dev: {ifaces:?}");
    let ifaces = bash_complete(&script, dir.path(), &["lbctl", "capture", "-i", "l"]);
    assert_eq!(ifaces, ["lo"], "capture -i l");
    for words in [
        &["lbctl", "apply", "-f", ""][..],
        &["lbctl", "status", "--file", ""],
        &["lbctl", "lb", "run", "-c", ""],
    ] {
        let files = bash_complete(&script, dir.path(), words);
        assert!(
            files.contains(&"web.toml".to_string()),
            "{words:?}: {files:?}"
        );
        assert!(
            !files.contains(&"notes.txt".to_string()),
            "{words:?}: {files:?}"
        );
    }
    // Static completion still works underneath.
    let subs = bash_complete(&script, dir.path(), &["lbctl", "vip", ""]);
    assert!(subs.contains(&"add".to_string()), "{subs:?}");
    // --netns runs `ip netns list` (which may be empty here): it must not offer files.
    let ns = bash_complete(&script, dir.path(), &["lbctl", "--netns", ""]);
    assert!(!ns.contains(&"web.toml".to_string()), "--netns: {ns:?}");

    // fish and zsh: the same values (fish can be asked directly; zsh is checked for syntax and
    // for the helper functions being wired to the options).
    if have_tool_or_skip("completions_offer_interfaces_and_profiles (fish)", "fish") {
        let fish = dir.path().join("lbctl.fish");
        std::fs::write(
            &fish,
            lb.ok(&["gen", "completions", "fish"]).stdout.as_bytes(),
        )
        .unwrap();
        let prog = format!(
            "cd '{}'; function ip; echo 'blue (id: 0)'; end; source '{}'; \
             complete -C 'lbctl --netns '; complete -C 'lbctl vip add 198.18.0.100 --dev l'; \
             complete -C 'lbctl apply -f '",
            dir.path().display(),
            fish.display()
        );
        let out = run_cmd(&["fish", "--no-config", "-c", &prog], &[], None);
        out.expect_ok();
        let words: Vec<&str> = out
            .stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        for want in ["blue", "lo", "web.toml"] {
            assert!(words.contains(&want), "fish: {want} missing\n{out}");
        }
        assert!(
            !words.contains(&"notes.txt"),
            "fish: notes.txt offered\n{out}"
        );
    }
    if have_tool_or_skip("completions_offer_interfaces_and_profiles (zsh)", "zsh") {
        let zsh = dir.path().join("_lbctl");
        let text = lb.ok(&["gen", "completions", "zsh"]).stdout;
        std::fs::write(&zsh, text.as_bytes()).unwrap();
        run_cmd(&["zsh", "-n", zsh.to_str().unwrap()], &[], None).expect_ok();
        for want in [
            ":NAME:_lbctl_netns'",
            ":DEV:_lbctl_ifaces'",
            ":IF:_lbctl_ifaces'",
            ":PROFILE:_lbctl_profiles'",
        ] {
            assert!(text.contains(want), "zsh: {want} missing");
        }
    }
}
