//! A reader that goes away (`lbctl … | head`) is not an error: like ripgrep, lbctl exits quietly
//! with success, whether the output went through `write!` or `println!` (issue 12, finding 13).

#[macro_use]
mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};

use common::*;

/// Run `lbctl ARGS` with stdout to a pipe whose reader is gone before lbctl writes (`lbctl … |
/// true`; deterministic, unlike `| head -1`, where lbctl may finish before head exits); return
/// the exit code and stderr.
fn closed_early(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(LBCTL)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lbctl");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().expect("wait for lbctl");
    (status.code(), err)
}

#[test]
fn gen_completions_bash_into_a_closed_pipe_is_quiet() {
    let (code, err) = closed_early(&["gen", "completions", "bash"]);
    assert!(!err.contains("panicked"), "panic message:\n{err}");
    assert!(!err.contains("Broken pipe"), "error message:\n{err}");
    assert_eq!(code, Some(0), "exit code; stderr:\n{err}");
}

#[test]
fn println_paths_into_a_closed_pipe_are_quiet() {
    // `gen completions zsh|fish` and clap's long help go through other writers; the dry-run
    // plan goes through `println!`.
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/lb-run-example.toml");
    for args in [
        &["gen", "completions", "zsh"][..],
        &["gen", "completions", "fish"][..],
        &["--dry-run", "lb", "run", "-c", profile][..],
    ] {
        let (code, err) = closed_early(args);
        assert!(
            !err.contains("panicked"),
            "lbctl {args:?}: panic message:\n{err}"
        );
        assert!(
            !err.contains("Broken pipe"),
            "lbctl {args:?}: error:\n{err}"
        );
        assert_eq!(code, Some(0), "lbctl {args:?}: exit code; stderr:\n{err}");
    }
}
