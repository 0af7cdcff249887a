#!/bin/bash
# vrrp-takeover.sh - VRRP takeover of an `lbctl lb run` pair with [ha] (keepalived, advert 1 s).
#
#   lbv-client 198.18.0.10 --+
#   lbv-lb1    198.18.0.2  --+-- br0 in lbv-sw     VIP 198.18.0.100:80, VRID 51
#   lbv-lb2    198.18.0.3  --+                     lb1 priority 150, lb2 priority 100, nopreempt
#   lbv-be1    198.18.0.11 --+                     DSR backend (busybox httpd, VIP on lo)
#
# For each scenario, RUNS times (the current MASTER is the victim; without preemption the roles
# simply swap):
#   ka-kill   SIGKILL of the master's keepalived (parent and VRRP child); its lb run deletes the
#             VIP, sends the priority-0 advert keepalived could not, and restarts it
#   run-kill  SIGKILL of the master's `lbctl lb run`
# it measures: takeover time (kill -> the other balancer holds the VIP, polled every 20 ms),
# when the old master let go of the VIP, requests failed during the window (curl -m 1 every
# 100 ms from the client), and the client's neighbour entry for the VIP afterwards (must be the
# new master's MAC). Then a split-brain soak: SOAK seconds of link flaps of the current MASTER
# (down FLAP_DOWN s every FLAP s), sampling both balancers every 50 ms; a sample with the VIP on
# both is split brain.
#
# Usage: sudo bench/vrrp-takeover.sh           (root; touches only the lbv-* namespaces)
# Environment: RUNS=3 SOAK=60 FLAP=8 FLAP_DOWN=2 LBCTL=target/release/lbctl (else debug)
set -euo pipefail

RUNS=${RUNS:-3}
SOAK=${SOAK:-60}
FLAP=${FLAP:-8}
FLAP_DOWN=${FLAP_DOWN:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
LBCTL=${LBCTL:-$( [ -x "$HERE/target/release/lbctl" ] && echo "$HERE/target/release/lbctl" || echo "$HERE/target/debug/lbctl")}
VIP=198.18.0.100
MAC1=02:00:00:00:00:02
MAC2=02:00:00:00:00:03
WORK=$(mktemp -d /tmp/lbv-bench.XXXXXX)
NSS="lbv-sw lbv-client lbv-lb1 lbv-lb2 lbv-be1"

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 77; }
[ -x "$LBCTL" ] || { echo "no lbctl at $LBCTL (cargo build)" >&2; exit 2; }
[ -x /usr/sbin/keepalived ] || { echo "keepalived missing (apt-get install keepalived)" >&2; exit 2; }

declare -A PID
cleanup() {
    for k in "${!PID[@]}"; do kill -KILL "${PID[$k]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for ns in $NSS; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }

# ------------------------------------------------------------------ topology
for ns in $NSS; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n lbv-sw link add br0 type bridge
ip -n lbv-sw link set br0 up
plug() { # node mac cidr
    ip -n lbv-sw link add "sw-$1" type veth peer name eth0 netns "lbv-$1"
    ip -n lbv-sw link set "sw-$1" master br0 up
    ip -n "lbv-$1" link set eth0 address "$2"
    ip -n "lbv-$1" addr add "$3" dev eth0
    ip -n "lbv-$1" link set eth0 up
}
plug client 02:00:00:00:00:10 198.18.0.10/24
plug lb1 $MAC1 198.18.0.2/24
plug lb2 $MAC2 198.18.0.3/24
plug be1 02:00:00:00:00:11 198.18.0.11/24
LBCTL_RUN_DIR=$WORK/be1 "$LBCTL" --netns lbv-be1 arp suppress $VIP --real-ip 198.18.0.11 >/dev/null
LBCTL_RUN_DIR=$WORK/be1 "$LBCTL" --netns lbv-be1 vip add $VIP >/dev/null
mkdir -p "$WORK/www" && echo be1 >"$WORK/www/index.html"
ip netns exec lbv-be1 busybox httpd -f -p 80 -h "$WORK/www" &
PID[httpd]=$!

conf() { # n prio peer
    cat <<EOF
name = "web"
[balancer]
engine = "nft"
interface = "eth0"
maglev_size = 1021
[ha]
virtual_router_id = 51
priority = $2
advert_interval = "1s"
peers = ["$3"]
preempt = false
[[service]]
vip = "$VIP:80"
[service.check]
type = "tcp"
interval = "500ms"
timeout = "400ms"
[[service.backend]]
rip = "198.18.0.11"
EOF
}
conf 1 150 198.18.0.3 >"$WORK/lb1.toml"
conf 2 100 198.18.0.2 >"$WORK/lb2.toml"

start_lb() { # n
    LBCTL_RUN_DIR=$WORK/run$1 "$LBCTL" --netns "lbv-lb$1" lb run -c "$WORK/lb$1.toml" \
        >>"$WORK/lb$1.out" 2>>"$WORK/lb$1.log" </dev/null &
    PID[lb$1]=$!
}
status() { LBCTL_RUN_DIR=$WORK/run$1 "$LBCTL" --netns "lbv-lb$1" --json lb status 2>/dev/null || true; }
role() { status "$1" | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["daemons"][0]["ha"]["role"])
except Exception: print("none")'; }
has_vip() { ip -n "lbv-lb$1" -4 -o addr show dev eth0 | grep -F " $VIP/" >/dev/null; }
wait_role() { # n role timeout_s
    local t=0
    while [ "$(role "$1")" != "$2" ]; do
        sleep 0.2; t=$((t + 1))
        [ $t -lt $(( $3 * 5 )) ] || { echo "lb$1 never $2; log:" >&2; tail -20 "$WORK/lb$1.log" >&2; exit 1; }
    done
}
ka_pids() { # n -> parent and VRRP child
    local dir
    dir=$(status "$1" | python3 -c 'import json,sys,os; print(os.path.dirname(json.load(sys.stdin)["daemons"][0]["ha"]["config"]))')
    cat "$dir/keepalived.pid" "$dir/vrrp.pid" 2>/dev/null
}

start_lb 1
wait_role 1 MASTER 20
start_lb 2
wait_role 2 BACKUP 20
ip netns exec lbv-client curl -s -m 2 "http://$VIP/" | grep -q be1 || { echo "VIP does not serve" >&2; exit 1; }

# ------------------------------------------------------------------ takeovers
echo "scenario  run  victim  takeover_ms  old_owner_released_ms  failed/requests  client_neigh  ok"
master=1
results=()
for scenario in ka-kill run-kill; do
    for run in $(seq 1 "$RUNS"); do
        other=$((3 - master))
        want_mac=$([ $other = 1 ] && echo $MAC1 || echo $MAC2)
        # client load: one request every 100 ms
        ( ok=0; fail=0
          end=$(( $(date +%s) + 9 ))
          while [ "$(date +%s)" -lt $end ]; do
              if ip netns exec lbv-client curl -s -m 1 -o /dev/null "http://$VIP/"; then ok=$((ok+1)); else fail=$((fail+1)); fi
              sleep 0.1
          done
          echo "$fail $((ok+fail))" >"$WORK/load" ) &
        load=$!
        victims=$(ka_pids $master)
        sleep 1
        t0=$(now)
        if [ $scenario = ka-kill ]; then
            kill -KILL $victims
        else
            kill -KILL "${PID[lb$master]}"
            wait "${PID[lb$master]}" 2>/dev/null || true
        fi
        released=""; taken=""
        for _ in $(seq 1 500); do   # 10 s
            [ -z "$released" ] && ! has_vip $master && released=$(now)
            [ -z "$taken" ] && has_vip $other && taken=$(now)
            [ -n "$released" ] && [ -n "$taken" ] && break
            sleep 0.02
        done
        wait $load
        read -r failed total <"$WORK/load"
        neigh=$(ip -n lbv-client neigh show $VIP | awk '{for(i=1;i<=NF;i++) if($i=="lladdr") print $(i+1)}')
        ok=$([ "$neigh" = "$want_mac" ] && [ -n "$taken" ] && echo yes || echo NO)
        tk=$([ -n "$taken" ] && ms "$t0" "$taken" || echo never)
        rl=$([ -n "$released" ] && ms "$t0" "$released" || echo never)
        printf '%-9s %-4s lb%-5s %-12s %-22s %-16s %-13s %s\n' $scenario "$run" $master "$tk" "$rl" "$failed/$total" "$neigh" "$ok"
        results+=("$scenario $tk $failed")
        # the victim comes back (restarted by its lb run, or lb run restarted) as BACKUP
        [ $scenario = run-kill ] && start_lb $master
        wait_role $master BACKUP 30
        master=$other
    done
done

# ------------------------------------------------------------------ split-brain soak
echo
echo "split-brain soak: ${SOAK}s, link flap of the MASTER (down ${FLAP_DOWN}s every ${FLAP}s), sampling every 50 ms"
( end=$(( $(date +%s) + SOAK )); n=0; both=0; none=0
  while [ "$(date +%s)" -lt $end ]; do
      a=0; b=0; has_vip 1 && a=1; has_vip 2 && b=1
      n=$((n+1)); [ $a = 1 ] && [ $b = 1 ] && both=$((both+1)); [ $a = 0 ] && [ $b = 0 ] && none=$((none+1))
      sleep 0.05
  done
  echo "$n $both $none" >"$WORK/soak" ) &
sampler=$!
flaps=0
end=$(( $(date +%s) + SOAK - FLAP_DOWN ))
while [ "$(date +%s)" -lt $end ]; do
    sleep "$FLAP"
    m=1; has_vip 2 && m=2
    ip -n lbv-sw link set "sw-lb$m" down; ip -n "lbv-lb$m" link set eth0 down
    sleep "$FLAP_DOWN"
    ip -n "lbv-lb$m" link set eth0 up; ip -n lbv-sw link set "sw-lb$m" up
    flaps=$((flaps+1))
done
wait $sampler
read -r n both none <"$WORK/soak"
echo "samples $n, both own the VIP: $both, nobody owns it: $none, link flaps: $flaps"
