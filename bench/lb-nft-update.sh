#!/usr/bin/env bash
# bench/lb-nft-update.sh — what the nft engine of `lbctl lb run` costs at M = 65537 slots.
#
#   sudo bench/lb-nft-update.sh [release]
#
# Everything happens in a throwaway namespace (lbb-<pid>): a veth for the balancer NIC, three
# backends with permanent neighbour entries (so their MACs are known) and an exec check that
# always passes. Figures are ratios against a baseline measured in the same run:
#   baseline  one `nft -f` that loads a 65537-slot map from text (no planning, no checks)
#   start     `lb run` start → status ready (VIP, table, full Maglev load, first checks)
#   reweight  weight 1 → 3 on one backend, SIGHUP → status shows the new slot counts
#             (only the slots that moved are rewritten, in one transaction)
#   fail      a backend's check starts failing → its slots are gone (fall = 1)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 77; }
profile=${1:-debug}
if [ "$profile" = release ]; then cargo build --quiet --release; bin=target/release/lbctl
else cargo build --quiet; bin=target/debug/lbctl; fi
ns=lbb-$$
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export LBCTL_RUN_DIR=$work/run
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name peer0
ip -n "$ns" link set eth0 address 02:00:00:00:00:02 up
ip -n "$ns" link set peer0 up
ip -n "$ns" addr add 198.18.0.2/24 dev eth0
for i in 1 2 3; do
  ip -n "$ns" neigh add 198.18.0.1$i lladdr 02:00:00:00:00:1$i dev eth0 nud permanent
done

# baseline: the full map as nft text, loaded once
awk 'BEGIN { print "table netdev bench { map m { typeof numgen inc mod 65537 : ether daddr; elements = {";
             for (i = 0; i < 65537; i++) printf "%d : 02:00:00:00:00:1%d%s\n", i, i % 3 + 1, (i < 65536 ? "," : "");
             print "} }; }" }' > "$work/full.nft"
t0=$(now); ip netns exec "$ns" nft -f "$work/full.nft"; t1=$(now)
base=$(ms "$t0" "$t1")
ip netns exec "$ns" nft delete table netdev bench

cfg() { # WEIGHT1 FAILFILE
  cat << CFG
name = "bench"
[balancer]
engine = "nft"
interface = "eth0"
maglev_size = 65537
[[service]]
vip = "198.18.0.100:80"
[service.check]
type = "exec"
command = ["sh", "-c", "! [ -e $work/fail-\$LBCTL_RIP ]"]
interval = "100ms"
timeout = "100ms"
rise = 1
fall = 1
[[service.backend]]
rip = "198.18.0.11"
weight = $1
[[service.backend]]
rip = "198.18.0.12"
[[service.backend]]
rip = "198.18.0.13"
CFG
}
cfg 1 > "$work/lb.toml"
status() { "$bin" --netns "$ns" --json lb status 2>/dev/null || true; }
slots() { status | tr -d ' \n' | grep -o '"slots":[0-9]*' | cut -d: -f2 | tr '\n' ' '; }
wait_for() { # CONDITION-COMMAND
  for _ in $(seq 2000); do eval "$1" && return 0; sleep 0.01; done
  echo "timed out: $1" >&2; return 1
}

t0=$(now)
"$bin" --netns "$ns" lb run -c "$work/lb.toml" 2> "$work/lb.log" &
pid=$!
wait_for 'status | grep -q "\"ready\": true"'
t1=$(now); start=$(ms "$t0" "$t1")
before=$(slots)

cfg 3 > "$work/lb.toml"
t0=$(now); kill -HUP "$pid"
wait_for '[ "$(slots)" != "$before" ]'
t1=$(now); reweight=$(ms "$t0" "$t1")
after=$(slots)

t0=$(now); touch "$work/fail-198.18.0.12"
wait_for 'slots | grep -q " 0 "'
t1=$(now); fail=$(ms "$t0" "$t1")

ratio() { awk -v a="$1" -v b="$base" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }'; }
echo "lbctl ($profile), M = 65537, 3 backends"
printf '  %-10s %6s ms   1.00x  (nft -f of the full map)\n' baseline "$base"
printf '  %-10s %6s ms   %sx  (start → ready: VIP, table, full load, first checks)\n' start "$start" "$(ratio "$start")"
printf '  %-10s %6s ms   %sx  (slots %s→ %s; includes up to one 100 ms check interval)\n' reweight "$reweight" "$(ratio "$reweight")" "$before" "$after"
printf '  %-10s %6s ms   %sx  (check fails → slots gone; includes check interval + status poll)\n' fail "$fail" "$(ratio "$fail")"
