#!/usr/bin/env bash
# The README's first command: build lbctl and walk a DSR backend set-up inside a throwaway
# network namespace (the host's own network is never touched), then remove everything.
#   sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: needs root (network namespaces, nftables): run 'sudo scripts/demo.sh'" >&2
    exit 77
fi
need=()
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    echo "demo.sh: installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --quiet
lbctl="$PWD/target/debug/lbctl"

ns="lbctl-demo-$$"
run_dir=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$run_dir"; }
trap cleanup EXIT INT TERM
export LBCTL_RUN_DIR="$run_dir"

# A backend: eth0 with its real IP 198.18.0.11/24 (a veth; its peer stays in the namespace).
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name peer0
ip -n "$ns" addr add 198.18.0.11/24 dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set peer0 up

step() { printf '\n\033[1m$ lbctl --netns %s %s\033[0m\n' "$ns" "$*"; "$lbctl" --netns "$ns" "$@"; }
echo "== DSR backend in namespace $ns: VIP 198.18.0.100, real IP 198.18.0.11, gateway 198.18.0.1"
step --dry-run arp suppress 198.18.0.100 --real-ip 198.18.0.11
step arp suppress 198.18.0.100 --real-ip 198.18.0.11
step vip add 198.18.0.100
step vip add 198.18.0.100
step route add 198.18.0.100 --table 100 --via 198.18.0.1 --dev eth0
step vip list
printf '\n$ ip route get 198.18.0.10 from 198.18.0.100\n'
ip -n "$ns" route get 198.18.0.10 from 198.18.0.100
step arp status
step route del 198.18.0.100 --table 100
step vip del 198.18.0.100
step arp restore 198.18.0.100
echo
echo "== done: namespace $ns removed, nothing on this host was changed"
