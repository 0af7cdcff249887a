#!/bin/bash
# vm/dr-e2e.sh — IPVS direct routing end to end, configured with lbctl on both sides:
# the QEMU VM (real IPVS kernel) is the director, set up with `lbctl lb apply`; two backend
# namespaces are the real servers, set up with `lbctl arp suppress` + `lbctl vip add`; a
# client namespace sends HTTP requests to the VIP. Then the same service runs under
# `lbctl lb run` with engine = "ipvs": HTTP + DSR-probe checks on real IPVS, a stopped server
# quiesced within fall × interval and avoided by new connections.
#
#   sudo tests/vm/dr-e2e.sh          exit 0 pass, 1 fail, 77 cannot run here (no QEMU/root)
#
# Topology (everything in namespaces named lbe2e-<pid>-*, deleted on exit; the root namespace
# never sees a device, address or sysctl of this test):
#
#   lbe2e-<pid>-sw      bridge br0 ─┬─ tap-vm ── QEMU virtio-net: eth0 198.18.0.3/24 + VIP
#                                   │            02:00:00:00:00:03   (ip_vs, lbctl lb)
#                                   ├─ sw-c ──── client  eth0 198.18.0.10/24
#                                   ├─ sw-b1 ─── be1     eth0 198.18.0.11/24, VIP on lo
#                                   └─ sw-b2 ─── be2     eth0 198.18.0.12/24, VIP on lo
#
# The tap is created inside the switch namespace and QEMU runs under `ip netns exec` there.
# The director's /lbvm-test (a shell script appended to the lane's initramfs together with a
# static lbctl) configures eth0 and IPVS, prints "LBVM: READY", then runs command lines the
# host writes to the serial console ("LBVM: cmd rc=N" after each); "done" makes it print the
# IPVS counters and power off, so no fixed sleeps are needed on the host.
#
# What is asserted:
#   1. `lbctl lb apply -f` in the VM succeeds, and a second apply reports "unchanged";
#   2. only the director's MAC answers ARP for the VIP (the backends' suppression works);
#   3. every backend serves requests sent to the VIP, none fails;
#   4. `lbctl lb drain` of be1 on the mh service (no mh-fallback in the LB file) turns
#      mh-fallback on by itself, and afterwards every request goes to be2 with none refused;
#   5. IPVS counted the connections but OutPkts is 0: replies went straight from the backends
#      to the client, never through the director (DSR).
#
# Environment: LBVM_CACHE (default target/vm-cache, shared with run-ipvs-lane.sh),
# REQUESTS (20), E2E_TIMEOUT (180 s), CARGO_JOBS (1), LBVM_QEMU.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CRATE=$(cd "$HERE/../.." && pwd)
CACHE=${LBVM_CACHE:-$CRATE/target/vm-cache}
QEMU=${LBVM_QEMU:-qemu-system-x86_64}
TARGET=x86_64-unknown-linux-gnu
REQUESTS=${REQUESTS:-20}
TIMEOUT=${E2E_TIMEOUT:-180}

VIP=198.18.0.100
PORT=80
NET=198.18.0
P=lbe2e-$$
SW=$P-sw CLIENT=$P-client
BACKENDS="be1 be2"
ip_of() { case $1 in client) echo $NET.10 ;; vm) echo $NET.3 ;; be*) echo "$NET.$((10 + ${1#be}))" ;; esac; }
mac_of() { case $1 in client) echo 02:00:00:00:00:10 ;; vm) echo 02:00:00:00:00:03 ;; be*) echo "02:00:00:00:00:1${1#be}" ;; esac; }

say() { echo "e2e: $*" >&2; }
skip77() { say "SKIP (77): $*"; exit 77; }
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

[ "$(id -u)" = 0 ] || skip77 "needs root (network namespaces, tap)"
for t in "$QEMU" ip nft curl arping busybox cpio; do
  command -v "$t" > /dev/null || skip77 "missing tool $t"
done
"$QEMU" -accel help 2> /dev/null | grep -qx tcg || skip77 "$QEMU offers no TCG accelerator"
[ -c /dev/net/tun ] || skip77 "no /dev/net/tun"

# --- build: image (cached) and the static lbctl -----------------------------------------------
t0=$(now)
"$HERE/build-image.sh" "$CACHE" > /dev/null || { say "FAIL: build-image.sh failed"; exit 1; }
(cd "$CRATE" && RUSTFLAGS='-C target-feature=+crt-static' \
   cargo build --quiet --release -j "${CARGO_JOBS:-1}" --target "$TARGET" --bin lbctl) ||
  { say "FAIL: cargo build of the static lbctl failed"; exit 1; }
LBCTL=$CRATE/target/$TARGET/release/lbctl
say "image and static lbctl ready in $(elapsed "$t0")s"

WORK=$CACHE/e2e
rm -rf "$WORK"; mkdir -p "$WORK/extra/bin" "$WORK/run"
export LBCTL_RUN_DIR=$WORK/run     # lbctl's journal for the backend namespaces

# --- cleanup: only what this run created, by PID and by name ----------------------------------
QPID=
PIDS=()
NSES=()
cleanup() {
  exec 3>&- 2> /dev/null
  if [ -n "$QPID" ]; then kill "$QPID" 2> /dev/null; wait "$QPID" 2> /dev/null; fi
  for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; done
  for ns in "${NSES[@]}"; do ip netns del "$ns" 2> /dev/null; done
  rm -f "$WORK/console.in"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

addns() { ip netns add "$1" && NSES+=("$1") && ip -n "$1" link set lo up; }
# port HOST: veth sw-HOST (in the switch) ⇄ eth0 (in the host's namespace), created in place
port() {
  local host=$1 ns=$P-$1
  ip -n "$SW" link add "sw-$host" type veth peer name eth0 netns "$ns"
  ip -n "$SW" link set "sw-$host" master br0 up
  ip -n "$ns" link set eth0 address "$(mac_of "$host")" up
  ip -n "$ns" addr add "$(ip_of "$host")/24" dev eth0
}

# --- the lab ------------------------------------------------------------------------------------
addns "$SW" || { say "FAIL: ip netns add"; exit 1; }
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
addns "$CLIENT"; port client
for be in $BACKENDS; do
  addns "$P-$be"; port "$be"
  # the real-server side, with lbctl: ARP suppression first, then the VIP on lo
  "$LBCTL" --netns "$P-$be" -q arp suppress "$VIP" --real-ip "$(ip_of "$be")" ||
    { say "FAIL: lbctl arp suppress in $be"; exit 1; }
  "$LBCTL" --netns "$P-$be" -q vip add "$VIP" || { say "FAIL: lbctl vip add in $be"; exit 1; }
  mkdir -p "$WORK/www-$be"; echo "backend $be" > "$WORK/www-$be/index.html"
  ip netns exec "$P-$be" busybox httpd -f -p "$PORT" -h "$WORK/www-$be" < /dev/null > /dev/null 2>&1 &
  PIDS+=($!)
done
ip -n "$SW" tuntap add dev tap-vm mode tap
ip -n "$SW" link set tap-vm master br0 up

# --- the director: /lbvm-test script, LB file and lbctl appended to the lane's initramfs ------
cat > "$WORK/extra/lb-e2e.toml" << EOF
name = "e2e"
[[service]]
vip = "$VIP:$PORT"
scheduler = "mh"
mh_port = true            # one client address: hash the source port too
# no mh_fallback: \`lbctl lb drain\` must turn it on by itself
EOF
for be in $BACKENDS; do printf '[[service.backend]]\nrip = "%s"\n' "$(ip_of "$be")" >> "$WORK/extra/lb-e2e.toml"; done

# The same service under the balancer daemon, engine ipvs: HTTP check plus the DSR probe.
cat > "$WORK/extra/lb-run.toml" << EOF
name = "e2e"
[balancer]
engine = "ipvs"
interface = "eth0"
[[service]]
vip = "$VIP:$PORT"
scheduler = "mh"
mh_port = true
mh_fallback = true
[service.check]
type = "http"
expect_body = "backend"
interval = "1s"
timeout = "800ms"
rise = 2
fall = 2
dsr = true
EOF
for be in $BACKENDS; do printf '[[service.backend]]\nrip = "%s"\n' "$(ip_of "$be")" >> "$WORK/extra/lb-run.toml"; done

cat > "$WORK/extra/lbvm-test" << EOF
#!/bin/sh
say() { echo "LBVM: \$*"; }
fail() { say "RESULT fail (\$*)"; exit 1; }
ip link set eth0 up || fail "no eth0"
ip addr add $(ip_of vm)/24 dev eth0
ip addr add $VIP/32 dev eth0                  # the director owns (and answers ARP for) the VIP
lbctl lb apply -f /lb-e2e.toml || fail "lbctl lb apply"
out=\$(lbctl lb apply -f /lb-e2e.toml) || fail "second lbctl lb apply"
case \$out in unchanged*) say "second apply: \$out" ;; *) fail "second apply changed: \$out" ;; esac
lbctl lb list
say "READY"
while read -t $TIMEOUT -r cmd; do
  [ "\$cmd" = done ] && break
  eval "\$cmd"
  say "cmd rc=\$?"
done
sleep 3                                       # IPVS folds per-CPU counters about every 2 s
say "stats:"
lbctl lb list --stats --exact
say "stats end"
say "RESULT pass"
EOF
chmod 0755 "$WORK/extra/lbvm-test"
cp "$LBCTL" "$WORK/extra/bin/lbctl"
(cd "$WORK/extra" && printf '%s\n' lbvm-test lb-e2e.toml lb-run.toml bin/lbctl |
   cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$WORK/extra.cpio.gz"
cat "$CACHE/image/initramfs.cpio.gz" "$WORK/extra.cpio.gz" > "$WORK/initrd.cpio.gz"

# --- boot ----------------------------------------------------------------------------------------
LOG=$WORK/console.log
mkfifo "$WORK/console.in"
t0=$(now)
ip netns exec "$SW" timeout "$TIMEOUT" "$QEMU" -M pc -accel tcg -cpu max -m 384 -smp 1 \
  -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
  -kernel "$CACHE/image/vmlinuz" -initrd "$WORK/initrd.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1" \
  -netdev tap,id=n0,ifname=tap-vm,script=no,downscript=no \
  -device virtio-net-pci,netdev=n0,mac="$(mac_of vm)" \
  < "$WORK/console.in" > "$LOG" 2>&1 &
QPID=$!
exec 3> "$WORK/console.in"     # hold the console input open; lines written to fd 3 reach the VM

console() { tr -d '\r' < "$LOG"; }
wait_for() { # PATTERN: until it is on the console, QEMU died, or the timeout
  local i
  for i in $(seq $((TIMEOUT * 10))); do
    console | grep -aq "$1" && return 0
    kill -0 "$QPID" 2> /dev/null || return 1
    sleep 0.1
  done
  return 1
}
vm_cmd() { # run a command line in the VM and wait for its "cmd rc=" marker
  local n
  n=$(console | grep -ac '^LBVM: cmd rc=')
  echo "$*" >&3
  for i in $(seq 300); do
    [ "$(console | grep -ac '^LBVM: cmd rc=')" -gt "$n" ] && break
    sleep 0.1
  done
  console | grep -a '^LBVM: cmd rc=' | tail -1
}

fail=0
check() { # NAME OK? DETAIL
  if [ "$2" = 0 ]; then echo "E2E: CHECK $1 ok $3"; else echo "E2E: CHECK $1 FAIL $3"; fail=1; fi
}

if ! wait_for '^LBVM: READY'; then
  say "FAIL: the director never became ready; console tail:"
  console | tail -30 >&2
  exit 1
fi
check director-ready 0 "after $(elapsed "$t0")s: $(console | grep -a '^LBVM: second apply' | sed 's/^LBVM: //')"

# ARP: only the director answers for the VIP
ip -n "$CLIENT" neigh flush all
owners=$(ip netns exec "$CLIENT" arping -c 2 -i eth0 "$VIP" 2> /dev/null |
         grep -oiE '([0-9a-f]{2}:){5}[0-9a-f]{2}' | tr 'A-F' 'a-f' | sort -u | tr '\n' ' ' | sed 's/ $//')
[ "$owners" = "$(mac_of vm)" ]; check arp-owner $? "ARP answers for $VIP: ${owners:-none}"

requests() { # N: N fresh connections client → VIP, "count answer" lines
  for _ in $(seq "$1"); do
    ip netns exec "$CLIENT" curl -s --max-time 2 "http://$VIP:$PORT/" || echo "FAIL(curl rc=$?)"
  done | sort | uniq -c | sed 's/^ *//'
}

out=$(requests "$REQUESTS")
ok=0
for be in $BACKENDS; do echo "$out" | grep -q "backend $be\$" || ok=1; done
echo "$out" | grep -q FAIL && ok=1
check all-backends-serve $ok "$(echo "$out" | tr '\n' ',' | sed 's/,$//')"

# drain be1 with lbctl on the director: mh without mh-fallback would refuse be1's flows
drain_rc=$(vm_cmd "lbctl lb drain $VIP:$PORT $(ip_of be1)")
note=$(console | grep -a 'note: mh without mh-fallback' | head -1)
[ "$drain_rc" = "LBVM: cmd rc=0" ] && [ -n "$note" ]
check drain $? "${drain_rc#LBVM: }; ${note:-no fallback note}"
out=$(requests "$REQUESTS")
ok=0
echo "$out" | grep -q "backend be1\$" && ok=1
echo "$out" | grep -q FAIL && ok=1
echo "$out" | grep -q "^$REQUESTS backend be2\$" || ok=1
check drained-goes-to-be2 $ok "$(echo "$out" | tr '\n' ',' | sed 's/,$//')"

# lb run with the IPVS engine takes the service over: checks (HTTP + DSR probe through each
# backend's MAC) bring both up; stopping be2's server quiesces it (weight 0) within fall × interval.
vm_cmd "lbctl lb run -c /lb-run.toml > /tmp/lbrun.log 2>&1 & echo \$! > /tmp/lbrun.pid" > /dev/null
up_rc=$(vm_cmd 'for i in $(seq 100); do lbctl lb status > /dev/null 2>&1 && break; sleep 0.2; done; lbctl lb status')
[ "$up_rc" = "LBVM: cmd rc=0" ]
check lb-run-ipvs-up $? "${up_rc#LBVM: }"
out=$(requests "$REQUESTS")
ok=0
for be in $BACKENDS; do echo "$out" | grep -q "backend $be\$" || ok=1; done
echo "$out" | grep -q FAIL && ok=1
check lb-run-both-serve $ok "$(echo "$out" | tr '\n' ',' | sed 's/,$//')"
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2> /dev/null   # be2's server
down_rc=$(vm_cmd 'for i in $(seq 100); do lbctl lb status > /dev/null 2>&1 || break; sleep 0.1; done; sleep 0.5; lbctl lb list; lbctl lb status')
[ "$down_rc" = "LBVM: cmd rc=1" ] && console | grep -aq "be2 *down\|$(ip_of be2):$PORT *down"
check lb-run-detects-down $? "${down_rc#LBVM: }; $(console | grep -a "$(ip_of be2):$PORT" | tail -1)"
out=$(requests "$REQUESTS")
ok=0
echo "$out" | grep -q FAIL && ok=1
echo "$out" | grep -q "^$REQUESTS backend be1\$" || ok=1
detail=$(echo "$out" | tr '\n' ',' | sed 's/,$//')
if [ "$ok" != 0 ]; then   # which backend's check flapped? (a refused curl = no weight > 0 left)
  vm_cmd 'grep -a "transition\|weight" /tmp/lbrun.log | tail -20; ipvsadm -Ln' > /dev/null
  detail="$detail; daemon transitions and ipvsadm -Ln on the console below"
fi
check lb-run-quiesced-avoided $ok "$detail"
vm_cmd 'kill $(cat /tmp/lbrun.pid); sleep 1; cat /tmp/lbrun.log' > /dev/null

echo done >&3
wait "$QPID"; QPID=
vm_wall=$(elapsed "$t0")

# the counters: Conns for both real servers, OutPkts 0 everywhere (replies bypassed IPVS)
stats=$(console | sed -n '/^LBVM: stats:/,/^LBVM: stats end/p' | grep -v '^LBVM')
echo "$stats"
svc=$(echo "$stats" | awk -v v="$VIP:$PORT" '$1 == "TCP" && $2 == v')
conns=$(echo "$svc" | awk '{print $3}')
outpkts=$(echo "$svc" | awk '{print $5}')
[ "${conns:-0}" -ge $((2 * REQUESTS)) ] && [ "$outpkts" = 0 ]
check dsr-outpkts-0 $? "service Conns ${conns:-?} OutPkts ${outpkts:-?}"
be_lines=$(echo "$stats" | awk '$1 == "->" && $3 > 0 && $5 == 0' | wc -l)
[ "$be_lines" = 2 ]; check dsr-per-backend $? "$be_lines of 2 real servers with Conns > 0 and OutPkts 0"
console | grep -aq '^LBVM: RESULT pass'; check director-result $? "$(console | grep -a '^LBVM: RESULT' | tail -1)"

say "VM wall ${vm_wall}s; console log $LOG"
if [ $fail = 0 ]; then
  say "PASS: IPVS-DR configured by lbctl; both backends served; replies bypassed the director"
else
  console | tail -40 >&2
  say "FAIL"
fi
exit $fail
