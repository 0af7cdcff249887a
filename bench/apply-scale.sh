#!/usr/bin/env bash
# Benchmark: apply a profile with N VIPs (default 10000) in a throwaway namespace, and compare
# with a baseline run in the same invocation: `ip -batch` adding the same addresses plus one
# `nft -f` loading the same set/map. Reports wall times and the ratio lbctl/baseline.
#   sudo bench/apply-scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 77; }
cargo build --release --quiet
lbctl=$PWD/target/release/lbctl
tmp=$(mktemp -d)
ns_a="lbb-base-$$"; ns_b="lbb-lbctl-$$"
cleanup() { ip netns del "$ns_a" 2>/dev/null || true; ip netns del "$ns_b" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
for ns in "$ns_a" "$ns_b"; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name peer0
    ip -n "$ns" addr add 198.18.0.11/24 dev eth0; ip -n "$ns" link set eth0 up
done
vip() { echo "198.19.$(( $1 / 250 )).$(( $1 % 250 + 1 ))"; }
{
    echo 'name = "scale"'
    for i in $(seq 0 $((N - 1))); do printf '[[vip]]\naddress = "%s"\n' "$(vip "$i")"; done
    printf '[arp]\nmode = "nft"\n[[arp.interface]]\nname = "eth0"\nreal_ip = "198.18.0.11"\n'
} > "$tmp/scale.toml"
for i in $(seq 0 $((N - 1))); do echo "addr add $(vip "$i")/32 dev lo"; done > "$tmp/ip.batch"
{
    printf 'table arp base {\n set vips { type ipv4_addr; }\n map vip_rip { type ipv4_addr : ipv4_addr; }\n}\n'
    printf 'add element arp base vips { '; for i in $(seq 0 $((N - 1))); do printf '%s, ' "$(vip "$i")"; done; echo '}'
    printf 'add element arp base vip_rip { '; for i in $(seq 0 $((N - 1))); do printf '%s : 198.18.0.11, ' "$(vip "$i")"; done; echo '}'
} > "$tmp/base.nft"

now() { date +%s.%N; }
t0=$(now)
ip -n "$ns_a" -batch "$tmp/ip.batch"
ip netns exec "$ns_a" nft -f "$tmp/base.nft"
t1=$(now)
LBCTL_RUN_DIR="$tmp/run" "$lbctl" -q --netns "$ns_b" apply -f "$tmp/scale.toml"
t2=$(now)
LBCTL_RUN_DIR="$tmp/run" "$lbctl" -q --netns "$ns_b" apply -f "$tmp/scale.toml"
t3=$(now)
LBCTL_RUN_DIR="$tmp/run" "$lbctl" -q --netns "$ns_b" down -f "$tmp/scale.toml"
t4=$(now)
got=$(ip -n "$ns_b" -4 addr show dev lo | grep -c 'inet 198.19' || true)
python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$t4" "$got" <<'PY'
import sys
n, t0, t1, t2, t3, t4, got = int(sys.argv[1]), *map(float, sys.argv[2:7]), int(sys.argv[7])
base, apply, again, down = t1 - t0, t2 - t1, t3 - t2, t4 - t3
print(f"VIPs: {n}")
print(f"baseline (ip -batch + nft -f): {base:6.2f} s")
print(f"lbctl apply (plan+apply+verify): {apply:6.2f} s  ratio {apply / base:5.2f}x baseline")
print(f"lbctl apply again (no changes):  {again:6.2f} s  ratio {again / base:5.2f}x baseline")
print(f"lbctl down:                      {down:6.2f} s  ratio {down / base:5.2f}x baseline")
print(f"addresses left after down: {got}")
PY
