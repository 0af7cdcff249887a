#!/usr/bin/env bash
# The README's first command: build lbctl and run `lbctl lab demo` — a switch, a client, a
# balancer (`lbctl lb run`) and two backends configured by lbctl, all in throwaway network
# namespaces; 30 requests through the VIP, where they went, proof that the replies bypassed the
# balancer, `lbctl doctor` on a backend, and everything removed again (also on Ctrl-C).
# The host's own network is never touched.
#
#   sudo scripts/demo.sh            # extra arguments go to `lbctl lab demo` (e.g. --requests 100)
#
# Works on a fresh Debian 12/13 machine:
#   1. as root: apt-get installs what is missing of nftables, iproute2 (runtime), gcc +
#      libc6-dev (the linker rustc uses), ca-certificates (cargo fetches crates over HTTPS) and,
#      only for rustup, curl;
#   2. a Rust toolchain: cargo from PATH or ~/.cargo/bin of the user who owns this checkout
#      (normally the one who ran sudo); when it is missing or older than Cargo.toml's
#      rust-version (Debian 12's own cargo is 0.66 / Rust 1.63), rustup installs the stable
#      toolchain into that user's home, as that user;
#   3. `cargo build` as that user, so target/ in the checkout stays theirs (never as root in
#      someone else's checkout);
#   4. `lbctl lab demo` as root.
# LBCTL_DEMO_NO_INSTALL=1 leaves out apt-get and rustup (fail instead).
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
say() { echo "demo.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "the demo creates network namespaces, which needs root: run 'sudo $0'"
    exit 77
fi
may_install=1
[ "${LBCTL_DEMO_NO_INSTALL:-0}" = 1 ] && may_install=0

apt_install() {
    [ "$#" -gt 0 ] || return 0
    if [ "$may_install" = 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "please install: $*"
        exit 2
    fi
    say "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
apt_install "${need[@]}"

# --- who builds, and with which cargo ----------------------------------------------------------
# The checkout's owner builds: that is $SUDO_USER for a checkout in their home, and root only
# when root owns the checkout (so target/ never ends up root-owned in a user's checkout).
user=$(stat -c %U "$checkout")
getent passwd "$user" >/dev/null 2>&1 || user=root
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != "$user" ]; then
    say "note: building as $user, who owns $checkout (not as $SUDO_USER)"
fi
home=$(getent passwd "$user" | cut -d: -f6)
home=${home:-/root}
as_user() {
    if [ "$user" = root ]; then
        env HOME="$home" "$@"
    else
        runuser -u "$user" -- env HOME="$home" "$@"
    fi
}

want=$(sed -n '/^rust-version = /{s/^rust-version = "\(.*\)"/\1/p;q}' Cargo.toml)
want=${want:-1.85}
user_path="$home/.cargo/bin:$PATH"
cargo_ok() { # cargo_ok: is the user's cargo there and new enough?
    local v
    v=$(as_user env PATH="$user_path" cargo --version 2>/dev/null | awk '{ print $2 }') || return 1
    [ -n "$v" ] || return 1
    [ "$(printf '%s\n%s\n' "$want" "$v" | sort -V | sed -n 1p)" = "$want" ]
}

if ! cargo_ok; then
    have=$(as_user env PATH="$user_path" cargo --version 2>/dev/null || echo "no cargo")
    say "$have for $user; lbctl needs Rust >= $want: installing the stable toolchain with rustup into $home/.cargo"
    [ "$may_install" = 1 ] || { say "LBCTL_DEMO_NO_INSTALL=1: install Rust >= $want (https://rustup.rs)"; exit 2; }
    need=()
    command -v curl >/dev/null 2>&1 || need+=(curl)
    [ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
    apt_install "${need[@]}"
    if as_user test -x "$home/.cargo/bin/rustup"; then
        as_user "$home/.cargo/bin/rustup" toolchain install stable --profile minimal
        as_user "$home/.cargo/bin/rustup" default stable
    else
        # RUSTUP_INIT_SKIP_PATH_CHECK: Debian's own /usr/bin/cargo may exist; ours comes first.
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
            | as_user env RUSTUP_INIT_SKIP_PATH_CHECK=yes sh -s -- -y --profile minimal \
                --default-toolchain stable \
            || { say "rustup failed (is https://sh.rustup.rs reachable?)"; exit 2; }
    fi
    cargo_ok || { say "still no cargo >= $want after rustup"; exit 2; }
fi
# rustc links with cc; cargo fetches crates over HTTPS.
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
apt_install "${need[@]}"

say "building lbctl as $user ($(as_user env PATH="$user_path" cargo --version))"
as_user env PATH="$user_path" cargo build --quiet --bin lbctl
target_dir=$(as_user env PATH="$user_path" cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
lbctl="${target_dir:-$checkout/target}/debug/lbctl"
[ -x "$lbctl" ] || { say "$lbctl not found after the build"; exit 2; }

# exec: Ctrl-C goes straight to lbctl, which tears the lab down and exits 130.
exec "$lbctl" lab demo "$@"
