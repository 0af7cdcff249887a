#!/usr/bin/env bash
# bench/bgp-failover.sh — failover drills for several `lbctl lb run` balancers announcing one VIP
# by BGP (BIRD 2) to a router that spreads flows over them with ECMP (issue 16).
#
#   sudo bench/bgp-failover.sh [BALANCERS=3] [LONG=100] [DRILLS=stop,link,kill,term]
#
#   DRILLS   comma-separated, run in this order: stop, link, kill, term (default: all four)
#   env      BFD_MS=200 BFD_MULT=5  BFD on both sides (the router and every balancer's [bgp])
#            LBG_PREFIX=lbg          namespace prefix (namespaces PREFIX-<pid>-*)
#            LBG_KEEP=1              keep the work directory (logs, the router's route monitor)
#            LBG_PROFILE=release     cargo profile of the lbctl that runs (release or debug)
#
# Everything runs in throwaway namespaces PREFIX-<pid>-*, deleted on exit (Ctrl-C included): a
# client, a router (BIRD 2, `merge paths on`, fib_multipath_hash_policy=3 with fields 0x0037,
# BFD towards each balancer), BALANCERS balancers (each `lbctl lb run` with [bgp], nft engine,
# same LB file but its own AS) on one bridge, and three backends (busybox httpd, VIP on lo,
# paced by tbf so downloads last seconds).
#
# Every fault drill hits lb1 and measures the same things:
#   - time from the fault until the router's route for the VIP no longer lists lb1 (polled
#     every ~5 ms)
#   - LONG long downloads started 2 s before the fault: how many completed byte-intact (lb1's
#     flows move mid-flow to the survivors; ECMP also re-hashes some flows between survivors)
#   - short requests (new connections, sequential, 5 s) started once the route had lost lb1:
#     how many failed
# stop: SIGSTOP of lb1's `lb run` (the watchdog downs its gates; its BIRD keeps running),
#       then SIGCONT: time until the router lists lb1 again.
# link: lb1's link cut (its switch-side veth set down: no FIN, no carrier on the router's
#       side; only BFD can tell), then set up again: time until the router lists lb1 again.
# kill: SIGKILL of lb1's `lb run` (its gate devices vanish, its BIRD gets SIGTERM).
# term: graceful SIGTERM of lb2's `lb run` (withdraw first, the data path stays): downloads
#       broken (expected 0). Needs 3 balancers.
# Baselines in the same run: the same long downloads with no fault (all must be intact), and
# the router's reaction time to a BGP withdrawal that BIRD itself sends (`birdc disable` of
# the last balancer's gate-route protocol), to compare the fault detection with.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 77; }
NLB=${1:-3}
LONG=${2:-100}
DRILLS=,${3:-stop,link,kill,term},
BFD_MS=${BFD_MS:-200}
BFD_MULT=${BFD_MULT:-5}
PROFILE=${LBG_PROFILE:-release}
case "$NLB" in 2|3|4) ;; *) echo "BALANCERS must be 2..4" >&2; exit 2 ;; esac
for d in ${DRILLS//,/ }; do
  case "$d" in stop|link|kill|term) ;; *) echo "unknown drill '$d' (stop, link, kill, term)" >&2; exit 2 ;; esac
done
case "$PROFILE" in release|debug) ;; *) echo "LBG_PROFILE must be release or debug" >&2; exit 2 ;; esac
want() { [[ $DRILLS == *,$1,* ]]; }
for t in bird birdc curl busybox tc; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done
if [ "$PROFILE" = release ]; then cargo build --quiet --release; else cargo build --quiet; fi
lbctl=$PWD/target/$PROFILE/lbctl
P=${LBG_PREFIX:-lbg}-$$
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
trap cleanup EXIT
trap 'exit 130' INT   # the EXIT trap cleans up; a bare INT/TERM trap would carry on afterwards
trap 'exit 143' TERM
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
  echo "template bgp balancer { local 198.18.0.1 as 65000; bfd { interval $BFD_MS ms; multiplier $BFD_MULT; };"
  echo "  debug { states, events };   # router.log: why and when each session went down and up"
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
bfd_interval = "${BFD_MS}ms"   # default 100 ms x 3 flaps on a loaded 2-core machine (BENCHMARKS.md)
bfd_multiplier = $BFD_MULT
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
# ---- baseline: a withdrawal BIRD sends itself (the socket is looked up before the clock starts)
S=$(sock "$NLB")
t0=$(now_ms); birdc -s "$S" disable lbctl_vips4 >/dev/null
while has_hop "198.18.0.$((NLB + 1))"; do sleep 0.005; done; t1=$(now_ms)
birdc_ms=$((t1 - t0))
birdc -s "$S" enable lbctl_vips4 >/dev/null
for _ in $(seq 1 300); do [ "$(hops)" = "$NLB" ] && break; sleep 0.1; done
echo "baseline: birdc disable of lb$NLB's VIP protocol → the router dropped it after ${birdc_ms} ms"

wait_hops() {  # n [seconds=60]
  local tries=$(( ${2:-60} * 10 ))
  for _ in $(seq 1 "$tries"); do [ "$(hops)" = "$1" ] && return 0; sleep 0.1; done
  echo "the router does not have $1 next hops: $(ip -n "$P-router" route show "$VIP" | tr -s '\n\t' '  ')"; exit 1
}
# Short requests (new connections, sequential) for 5 s: $short_n, $short_fail, $short_rc.
short_probe() {
  local end rc
  short_fail=0; short_n=0; short_rc=""
  end=$(( $(now_ms) + 5000 ))
  while [ "$(now_ms)" -lt "$end" ]; do
    short_n=$((short_n + 1))
    nsx client curl -s --max-time 2 -o /dev/null "http://$VIP/index.html" || { rc=$?; short_fail=$((short_fail + 1)); short_rc="$short_rc $rc"; }
  done
}
# A fault drill on lb1: start the downloads, `fault`, time until the route has lost lb1, probe
# new connections, wait for the downloads. Sets $det_ms, $on1, $intact and the short_* figures.
fault_drill() {  # tag fault-command...
  local tag=$1 t0 t1; shift
  wait_hops "$NLB"
  echo "$tag drill starts $(date +%T.%N)" >> "$work/router-routes.log"
  long_start "$tag"
  sleep 2
  on1=$(flows_on 1)
  pre=$(hops); invalid=""
  if [ "$pre" != "$NLB" ]; then
    invalid=" INVALID: $pre next hops at the fault (a session flapped)"
    echo "warning: a balancer flapped while the downloads started: $pre next hops"
  fi
  t0=$(now_ms); "$@"
  while has_hop 198.18.0.2 && [ $(( $(now_ms) - t0 )) -lt 60000 ]; do sleep 0.005; done; t1=$(now_ms)
  det_ms=$((t1 - t0))
  has_hop 198.18.0.2 && { echo "$tag: the router still lists lb1 60 s after the fault"; det_ms=-1; }
  short_probe
  long_wait "$tag"
}
# Time until the router lists lb1 again after `restore-command` ($back_ms; -1: not within 330 s,
# longer than BIRD's largest error wait time).
restore_lb1() {  # restore-command...
  local t0 end
  t0=$(now_ms); "$@"; end=$((t0 + 330000)); back_ms=-1
  while [ "$(now_ms)" -lt "$end" ]; do
    if has_hop 198.18.0.2; then back_ms=$(( $(now_ms) - t0 )); break; fi
    sleep 0.005
  done
}
report() {  # name tag
  echo "$1: route lost lb1 after ${det_ms} ms (a BIRD-sent withdrawal: ${birdc_ms} ms)"
  echo "$1: $intact/$LONG long downloads intact ($on1 were pinned on lb1 at the fault); curl exit codes: $(sort "$work/rc-$2" | uniq -c | tr -s ' \n' ' ')"
  echo "$1: new connections after detection: $short_fail of $short_n failed${short_rc:+ (curl exit codes:$short_rc)}"
}
summary=()

# ---- drill: SIGSTOP lb1's lb run, then SIGCONT
if want stop; then
  fault_drill stop kill -STOP "${lbpid[1]}"
  report "hang (SIGSTOP)" stop
  summary+=("stop: lost ${det_ms} ms, intact $intact/$LONG (on lb1: $on1), new conns failed $short_fail/$short_n$invalid")
  restore_lb1 kill -CONT "${lbpid[1]}"
  echo "hang (SIGSTOP): SIGCONT → the router lists lb1 again after ${back_ms} ms"
  summary[-1]+=", back after SIGCONT ${back_ms} ms"
  grep -h "behind lbctl's back" "$work/lb1.log" | tail -n 2 | sed 's/^/hang (SIGSTOP): lb1 log: /' || true
fi

# ---- drill: lb1's link cut, then restored
if want link; then
  fault_drill link ip -n "$P-sw" link set p-lb1 down
  report "link loss" link
  summary+=("link: lost ${det_ms} ms, intact $intact/$LONG (on lb1: $on1), new conns failed $short_fail/$short_n$invalid")
  birdc -s "$work/router.ctl" show protocols all lb1 | grep -E "^lb1|Last error|BGP state" | sed 's/^ */link loss: router: /' || true
  restore_lb1 ip -n "$P-sw" link set p-lb1 up
  echo "link loss: link up again → the router lists lb1 again after ${back_ms} ms"
  grep -h " lb1: " "$work/router.log" | tail -n 8 | sed 's/^/link loss: router log: /' || true
  summary[-1]+=", back after link up ${back_ms} ms"
fi

# ---- drill: SIGKILL lb1's lb run
if want kill; then
  kill_lb1() { kill -9 "${lbpid[1]}"; wait "${lbpid[1]}" 2>/dev/null || true; }   # reaped quietly
  fault_drill kill kill_lb1
  report "crash (SIGKILL)" kill
  echo "crash (SIGKILL): route changes so far: $(grep -c "^\[" "$work/router-routes.log" || true) (see router-routes.log with LBG_KEEP=1)"
  summary+=("kill: lost ${det_ms} ms, intact $intact/$LONG (on lb1: $on1), new conns failed $short_fail/$short_n$invalid")
fi

# ---- drill: graceful SIGTERM of lb2 (needs a third balancer to survive)
if want term; then
  if [ "$NLB" -lt 3 ]; then
    echo "graceful: skipped (needs 3 balancers)"
  else
    n=$NLB; want kill && n=$((NLB - 1))
    wait_hops "$n"
    long_start term
    sleep 2
    on2=$(flows_on 2)
    t0=$(now_ms); kill -TERM "${lbpid[2]}"
    while has_hop 198.18.0.3; do sleep 0.005; done; t1=$(now_ms)
    long_wait term; term_ok=$intact
    echo "graceful: curl exit codes: $(sort "$work/rc-term" | uniq -c | tr -s ' \n' ' ')"
    echo "graceful: SIGTERM of lb2 → withdrawn after $((t1 - t0)) ms; $term_ok/$LONG long downloads intact ($on2 were on lb2), $((LONG - term_ok)) broken"
    summary+=("term: withdrawn $((t1 - t0)) ms, intact $term_ok/$LONG (on lb2: $on2)")
  fi
fi

echo "== summary ($NLB balancers, $LONG long downloads, BFD ${BFD_MS} ms x ${BFD_MULT}, $PROFILE build; $(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "baseline: $base_ok/$LONG intact without a fault; birdc withdrawal ${birdc_ms} ms"
for l in "${summary[@]}"; do echo "$l"; done
# Flaps: BFD sessions the router saw go down (the link drill accounts for one of lb1's), and
# times a watchdog took a balancer's gates down (the stop drill accounts for one of lb1's).
flaps="" wd=""
for i in $(seq 1 "$NLB"); do
  flaps="$flaps lb$i $(grep -c "lb$i: BFD session down" "$work/router.log" || true)"
  wd="$wd lb$i $(grep -c "behind lbctl's back" "$work/lb$i.log" || true)"
done
echo "router: BFD sessions down:$flaps; watchdog fired:$wd"
