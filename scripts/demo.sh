#!/usr/bin/env bash
# The README's first command: build lbctl and run `lbctl lab demo` — a switch, a client, a
# balancer (`lbctl lb run`) and two backends configured by lbctl, all in throwaway network
# namespaces; 30 requests through the VIP, where they went, proof that the replies bypassed the
# balancer, `lbctl doctor` on a backend, and everything removed again (also on Ctrl-C).
# The host's own network is never touched.
#
#   sudo scripts/demo.sh            # extra arguments go to `lbctl lab demo` (e.g. --requests 100)
#
# Needs root (network namespaces), iproute2 and nftables (installed with apt-get when missing),
# and a Rust toolchain (cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: the demo creates network namespaces, which needs root: run 'sudo $0'" >&2
    exit 77
fi

need=()
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "demo.sh: please install ${need[*]} (no apt-get here)" >&2
        exit 2
    fi
    echo "demo.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# cargo: PATH, ~/.cargo/bin, or (under sudo) the invoking user's toolchain.
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    elif [ -n "${SUDO_USER:-}" ]; then
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        if [ -x "$home/.cargo/bin/cargo" ]; then
            PATH="$home/.cargo/bin:$PATH"
            export RUSTUP_HOME="${RUSTUP_HOME:-$home/.rustup}" CARGO_HOME="${CARGO_HOME:-$home/.cargo}"
        fi
    fi
fi
command -v cargo >/dev/null 2>&1 || { echo "demo.sh: cargo not found (install Rust: https://rustup.rs)" >&2; exit 2; }

echo "demo.sh: building lbctl"
cargo build --quiet --bin lbctl
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
lbctl="${target_dir:-$PWD/target}/debug/lbctl"

# exec: Ctrl-C goes straight to lbctl, which tears the lab down and exits 130.
exec "$lbctl" lab demo "$@"
