//! Notify hooks: a user's argv started in the background with the event in its environment.

use std::process::{Child, Command, Stdio};

/// Start `argv` with `env` added; stdout and stderr go to lbctl's stderr. The caller reaps it.
pub fn spawn(argv: &[String], env: &[(String, String)]) -> std::io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty notify command"))?;
    Command::new(prog)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
        .stderr(Stdio::inherit())
        .spawn()
}

use std::os::fd::AsFd;
