#!/usr/bin/env bash
# bench/bgp-failover.sh — failover drill for several `lbctl lb run` balancers announcing one VIP
# by BGP (BIRD 2) to a router that spreads flows over them with ECMP (issue 16).
#
#   sudo bench/bgp-failover.sh [BALANCERS=3] [LONG=100]
#
# Everything runs in throwaway namespaces lbg-<pid>-*: a client, a router (BIRD 2, `merge paths
# on`, fib_multipath_hash_policy=3 with fields 0x0037, BFD 100 ms x 3 towards each balancer),
# BALANCERS balancers (each `lbctl lb run` with [bgp], nft engine, same LB file but its own AS)
# and three backends (busybox httpd, VIP on lo, paced by tbf so downloads last seconds).
#
# Drill 1, crash: LONG long downloads through the VIP, then SIGKILL of lb1's `lb run`:
#   - time until the router's route has lost lb1 (polled every ~5 ms)
#   - long downloads that completed byte-intact (flows of lb1 move mid-flow to the survivors,
#     and ECMP also re-hashes some flows between the survivors)
#   - short requests (new connections) that failed during the 5 s after the kill, and after
#     the route had lost lb1
# Drill 2, graceful: LONG new long downloads, then SIGTERM of lb2's `lb run` (withdraw first,
# the data path stays): downloads broken (expected 0).
# Baseline in the same run: the same long downloads with no fault (all must be intact), and
# the router's reaction time to a BGP withdrawal that BIRD itself sends (`birdc disable` of
# lb3's gate-route protocol), to compare the crash detection with.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 77; }
NLB=${1:-3}
LONG=${2:-100}
case "$NLB" in 2|3|4) ;; *) echo "BALANCERS must be 2..4" >&2; exit 2 ;; esac
for t in bird birdc curl busybox tc; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done
cargo build --quiet
lbctl=$PWD/target/debug/lbctl
P=lbg-$$
work=$(mktemp -d /tmp/lbg.XXXXXX)
VIP=198.18.2.100
pids=()
cleanup() {
  # busybox httpd serves each connection in a child: those go too (children of our PIDs only).
  for p in "${pids[@]}"; do
    for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill "$c" 2>/dev/null || true; done
    kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true
  done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do ip netns del "$ns"; done
  if [ -n "${LBG_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM
nsx() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }

# ---- topology
for n in sw router client; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
ip -n "$P-sw" link add br0 type bridge; ip -n "$P-sw" link set br0 up
plug() {  # node address/len
  ip netns add "$P-$1"; ip -n "$P-$1" link set lo up
  ip -n "$P-sw" link add "p-$1" type veth peer name eth0 netns "$P-$1"
  ip -n "$P-sw" link set "p-$1" master br0 up
  ip -n "$P-$1" addr add "$2" dev eth0; ip -n "$P-$1" link set eth0 up
  ip -n "$P-$1" route add default via 198.18.0.1
}
ip -n "$P-sw" link add p-router type veth peer name eth0 netns "$P-router"
ip -n "$P-sw" link set p-router master br0 up
ip -n "$P-router" addr add 198.18.0.1/24 dev eth0; ip -n "$P-router" link set eth0 up
ip -n "$P-client" link add eth0 type veth peer name cl netns "$P-router"
ip -n "$P-client" addr add 198.18.1.10/24 dev eth0; ip -n "$P-client" link set eth0 up
ip -n "$P-client" route add default via 198.18.1.1
ip -n "$P-router" addr add 198.18.1.1/24 dev cl; ip -n "$P-router" link set cl up
nsx router sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=3 \
  net.ipv4.fib_multipath_hash_fields=0x0037
for i in $(seq 1 "$NLB"); do plug "lb$i" "198.18.0.$((i + 1))/24"; done
mkdir -p "$work/www"
head -c 524288 /dev/urandom > "$work/www/big"
echo ok > "$work/www/index.html"
for i in 1 2 3; do
  plug "be$i" "198.18.0.1$i/24"
  ip -n "$P-be$i" addr add "$VIP/32" dev lo
  nsx "be$i" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  nsx "be$i" tc qdisc add dev eth0 root tbf rate 16mbit burst 32kb latency 50ms
  ip netns exec "$P-be$i" busybox httpd -f -p 80 -h "$work/www" & pids+=($!)
done

# ---- router BIRD
{
  echo "router id 198.18.0.1; log \"$work/router.log\" all;"
  echo "protocol device { } protocol bfd { }"
  echo "protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }"
  echo "template bgp balancer { local 198.18.0.1 as 65000; bfd { interval 200 ms; multiplier 5; };"
  echo "  ipv4 { import where net = $VIP/32; export none; }; }"
  for i in $(seq 1 "$NLB"); do echo "protocol bgp lb$i from balancer { neighbor 198.18.0.$((i + 1)) as $((65000 + i)); }"; done
} > "$work/router.conf"
ip -n "$P-router" -ts monitor route > "$work/router-routes.log" 2>&1 & pids+=($!)
ip netns exec "$P-router" bird -f -c "$work/router.conf" -s "$work/router.ctl" -P "$work/router.pid" & pids+=($!)

# ---- balancers
lbpid=()
start_lb() {  # i
  local i=$1
  cat > "$work/lb$i.toml" <<EOF
name = "web"
[balancer]
engine = "nft"
interface = "eth0"
maglev_size = 4099
[bgp]
asn = $((65000 + i))
bfd_interval = "200ms"   # 100 ms x 3 flaps on a loaded 2-core machine (see BENCHMARKS.md)
bfd_multiplier = 5
[[bgp.neighbor]]
address = "198.18.0.1"
asn = 65000
[[service]]
vip = "$VIP:80"
[service.check]
type = "http"
path = "/index.html"
interval = "500ms"
timeout = "400ms"
rise = 1
fall = 30
[[service.backend]]
rip = "198.18.0.11"
[[service.backend]]
rip = "198.18.0.12"
[[service.backend]]
rip = "198.18.0.13"
EOF
  LBCTL_RUN_DIR="$work/run-lb$i" "$lbctl" --netns "$P-lb$i" lb run -c "$work/lb$i.toml" \
    >>"$work/lb$i.log" 2>&1 &
  lbpid[$i]=$!; pids+=($!)
}
hops() { ip -n "$P-router" route show "$VIP" | grep -c 'via' || true; }
has_hop() { ip -n "$P-router" route show "$VIP" | grep -q "via $1 "; }
for i in $(seq 1 "$NLB"); do start_lb "$i"; done
for _ in $(seq 1 300); do [ "$(hops)" = "$NLB" ] && break; sleep 0.1; done
[ "$(hops)" = "$NLB" ] || { echo "the router did not get $NLB next hops"; ip -n "$P-router" route; exit 1; }
echo "== $NLB balancers announce $VIP; router: $(ip -n "$P-router" route show "$VIP" | tr -s '\n\t' '  ')"

long_start() {  # tag
  for k in $(seq 1 "$LONG"); do
    ip netns exec "$P-client" curl -s --max-time 60 -o "$work/dl-$1-$k" "http://$VIP/big" &
    echo $! > "$work/pid-$1-$k"
  done
}
long_wait() {  # tag -> $intact (not in a subshell: the curls are this shell's children)
  local ok=0 rc
  : > "$work/rc-$1"
  for k in $(seq 1 "$LONG"); do
    rc=0; wait "$(cat "$work/pid-$1-$k")" 2>/dev/null || rc=$?
    echo "$rc" >> "$work/rc-$1"
    cmp -s "$work/dl-$1-$k" "$work/www/big" && ok=$((ok + 1))
  done
  intact=$ok
}
# Long downloads running now whose flow is pinned on balancer $1 (by client port).
flows_on() {
  local map n=0 p
  map=$(ip netns exec "$P-lb$1" nft list map netdev lbctl_lb_web f_198_18_2_100_tcp_80 2>/dev/null || true)
  for p in $(nsx client ss -Htn state established "dst $VIP" | awk '{n=split($3,a,":"); print a[n]}'); do
    grep -q "[ {]$p \. 198.18.1.10 " <<<"$map" && n=$((n + 1))
  done
  echo "$n"
}
now_ms() { date +%s%3N; }

# ---- baseline: no fault
long_start base
long_wait base; base_ok=$intact
echo "baseline (no fault): $base_ok/$LONG long downloads intact (curl exit codes: $(sort "$work/rc-base" | uniq -c | tr -s ' \n' ' '))"

sock() { LBCTL_RUN_DIR="$work/run-lb$1" "$lbctl" --netns "$P-lb$1" --json lb status | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemons"][0]["bgp"]["socket"])'; }
# ---- baseline: a withdrawal BIRD sends itself
t0=$(now_ms); S=$(sock "$NLB"); birdc -s "$S" disable lbctl_vips4 >/dev/null
while has_hop "198.18.0.$((NLB + 1))"; do sleep 0.005; done; t1=$(now_ms)
birdc_ms=$((t1 - t0))
birdc -s "$S" enable lbctl_vips4 >/dev/null
for _ in $(seq 1 300); do [ "$(hops)" = "$NLB" ] && break; sleep 0.1; done

wait_hops() {  # n
  for _ in $(seq 1 600); do [ "$(hops)" = "$1" ] && return 0; sleep 0.1; done
  echo "the router does not have $1 next hops: $(ip -n "$P-router" route show "$VIP" | tr -s '\n\t' '  ')"; exit 1
}
# ---- drill 1: SIGKILL lb1
wait_hops "$NLB"
echo "kill drill starts $(date +%T.%N)" >> "$work/router-routes.log"
long_start kill
sleep 2
[ "$(hops)" = "$NLB" ] || echo "warning: a balancer flapped while the downloads started: $(hops) next hops"
on1=$(flows_on 1)
t0=$(now_ms); kill -9 "${lbpid[1]}"
while has_hop 198.18.0.2; do sleep 0.005; done; t1=$(now_ms)
kill_ms=$((t1 - t0))
wait "${lbpid[1]}" 2>/dev/null || true   # reap it quietly (no "Killed" job notice)
short_fail=0; short_n=0
end=$(( $(now_ms) + 5000 )); short_rc=""
while [ "$(now_ms)" -lt "$end" ]; do
  short_n=$((short_n + 1))
  nsx client curl -s --max-time 2 -o /dev/null "http://$VIP/index.html" || { rc=$?; short_fail=$((short_fail + 1)); short_rc="$short_rc $rc"; }
done
long_wait kill; kill_ok=$intact
echo "crash: SIGKILL of lb1's lb run → router dropped lb1 after ${kill_ms} ms (a BIRD-sent withdrawal: ${birdc_ms} ms)"
echo "crash: route changes during the drill: $(grep -c "^\[" "$work/router-routes.log" || true) since the start (see router-routes.log with LBG_KEEP=1)"
echo "crash: $kill_ok/$LONG long downloads intact ($on1 were pinned on lb1 when it died)"
echo "crash: curl exit codes of the long downloads: $(sort "$work/rc-kill" | uniq -c | tr -s ' \n' ' ')"
echo "crash: new connections after detection: $short_fail of $short_n failed${short_rc:+ (curl exit codes:$short_rc)}"

# ---- drill 2: graceful SIGTERM of lb2 (needs a third balancer to survive)
[ "$NLB" -ge 3 ] || { echo "graceful: skipped (needs 3 balancers)"; exit 0; }
wait_hops $((NLB - 1))
long_start term
sleep 2
on2=$(flows_on 2)
t0=$(now_ms); kill -TERM "${lbpid[2]}"
while has_hop 198.18.0.3; do sleep 0.005; done; t1=$(now_ms)
long_wait term; term_ok=$intact
echo "graceful: curl exit codes: $(sort "$work/rc-term" | uniq -c | tr -s ' \n' ' ')"
echo "graceful: SIGTERM of lb2 → withdrawn after $((t1 - t0)) ms; $term_ok/$LONG long downloads intact ($on2 were on lb2), $((LONG - term_ok)) broken"
