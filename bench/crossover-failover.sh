#!/usr/bin/env bash
# Benchmark: cross-over failover without a balancer (issue 19). In throwaway namespaces
# (lbx-PID-*): a router spreading 198.18.100.0/24 over the plan's internal addresses, N servers
# running `lbctl crossover run` (HTTP check of their own busybox httpd), a client. ARP is
# captured on the router's segment interface throughout (`lbctl capture --json`).
#
#   sudo bench/crossover-failover.sh [N] [REQUESTS]      (N = 3…8, default 4; REQUESTS 400)
#   sudo LBCTL_BIN=target/debug/lbctl bench/crossover-failover.sh   (skip the release build)
#
# Scenario A (2 tiers): cut s1's link at the switch; time until the router sees each of its
# addresses claimed by the secondary (a gratuitous claim switches the router's entry at once),
# share of s1's traffic each survivor absorbs (client requests before/after), s1's link back:
# time until it holds its primaries again. Scenario B (3 tiers): cut s1 and s2 at once; time
# until each of their addresses is claimed by the next live tier; shares. Both: double claims
# (an address claimed back and forth within a phase) counted from the capture. Baseline: the
# configured secondary/tertiary timeout — failover time ÷ timeout is the ratio reported.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
M=${2:-400}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 77; }
[ "$N" -ge 3 ] && [ "$N" -le 8 ] || { echo "N must be 3…8" >&2; exit 2; }
for t in busybox curl python3; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 77; }; done
# LBCTL_BIN=path runs another build (e.g. target/debug/lbctl) instead of building --release.
if [ -n "${LBCTL_BIN:-}" ]; then
    lbctl=$(realpath "$LBCTL_BIN")
else
    cargo build --release --quiet
    lbctl=$PWD/target/release/lbctl
fi
tmp=$(mktemp -d)
P="lbx-$$"
pids=()

teardown() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
        # httpd daemons started by this script, by PID, in our own namespaces only.
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
cleanup() { teardown; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

now() { date +%s.%N; }

# setup TIERS DIR: build the topology and start everything.
setup() {
    local tiers=$1 d=$2 i
    mkdir -p "$d"
    for n in sw router client $(seq -f 's%g' 1 "$N"); do
        ip netns add "$P-$n"; ip -n "$P-$n" link set lo up
    done
    ip -n "$P-sw" link add br0 type bridge; ip -n "$P-sw" link set br0 up
    plug() {
        ip -n "$P-sw" link add "$2" type veth peer name eth0 netns "$P-$1"
        ip -n "$P-sw" link set "$2" master br0 up
        ip -n "$P-$1" link set eth0 address "$3"
        ip -n "$P-$1" addr add "$4" dev eth0
        ip -n "$P-$1" link set eth0 up
    }
    plug router p-router 02:00:00:00:00:01 198.18.0.1/24
    ip -n "$P-router" link add eth1 type veth peer name eth0 netns "$P-client"
    ip -n "$P-router" addr add 198.18.2.1/24 dev eth1; ip -n "$P-router" link set eth1 up
    ip -n "$P-client" addr add 198.18.2.2/24 dev eth0; ip -n "$P-client" link set eth0 up
    ip -n "$P-client" route add default via 198.18.2.1
    ip netns exec "$P-router" sysctl -qw net.ipv4.ip_forward=1
    "$lbctl" --json crossover plan --servers "$N" --tiers "$tiers" --range 198.18.4.0/22 \
        --public 198.18.100.0/24 --write "$d/cfg" > "$d/plan.json"
    ip netns exec "$P-router" sh -e "$d/cfg/router.sh" > /dev/null
    "$lbctl" --json capture -i eth0 --netns "$P-router" > "$d/arp.ndjson" 2> /dev/null &
    pids+=($!)
    for i in $(seq 1 "$N"); do
        plug "s$i" "p-s$i" "02:00:00:00:00:$(printf %02x $((16 + i)))" "198.18.0.$((10 + i))/24"
        ip -n "$P-s$i" route add default via 198.18.0.1
        ip -n "$P-s$i" route add local 198.18.100.0/24 dev lo
        mkdir -p "$d/www$i"; echo "s$i" > "$d/www$i/index.html"
        ip netns exec "$P-s$i" busybox httpd -p 80 -h "$d/www$i"
        printf '\n[check]\ntype = "http"\nport = 80\ninterval = "200ms"\ntimeout = "150ms"\nrise = 1\nfall = 2\n' \
            >> "$d/cfg/s$i.toml"
        mkdir -p "$d/run$i"
        LBCTL_RUN_DIR="$d/run$i" "$lbctl" --netns "$P-s$i" crossover run -c "$d/cfg/s$i.toml" \
            > "$d/agent$i.log" 2>&1 &
        pids+=($!)
    done
}

# wait_holders DIR DEAD...: until every address answers HTTP from its first live tier.
wait_holders() {
    local d=$1; shift
    python3 - "$d/plan.json" "$@" > "$d/expect.txt" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1])); dead = set(sys.argv[2:])
for a in plan["addresses"]:
    print(a["addr"], next(s for s in a["servers"] if s not in dead))
PY
    local start; start=$(date +%s)
    while :; do
        local ok=1 addr want got
        while read -r addr want; do
            got=$(ip netns exec "$P-router" curl -s -m 1 "http://$addr/" || true)
            [ "$got" = "$want" ] || { ok=0; break; }
        done < "$d/expect.txt"
        [ $ok = 1 ] && return 0
        [ $(( $(date +%s) - start )) -lt 30 ] || { echo "addresses never settled (dead: $*)" >&2; cat "$d"/agent*.log >&2; exit 1; }
        sleep 0.1
    done
}

# traffic DIR NAME: M client requests over the public range, each flow fixed (its own source
# port, the same in every phase, so the router hashes it to the same internal address): one
# "port server" line per request.
traffic() {
    # curl exit 45: the fixed source port is still in TIME_WAIT on the client from the
    # previous phase; such a request was never sent ("busy"), which is not a failure.
    ip netns exec "$P-client" sh -c "i=0; while [ \$i -lt $M ]; do i=\$((i+1)); \
        out=\$(curl -s -m 3 --local-port \$((20000 + i)) http://198.18.100.\$(( i % 250 + 1 ))/); \
        rc=\$?; [ \$rc = 45 ] && out=busy; [ -n \"\$out\" ] || out=fail; \
        echo \$((20000 + i)) \$out; done" > "$1/traffic-$2.txt"
}

cut() { ip -n "$P-sw" link set "p-$1" "$2"; }

# Scenario A: 2 tiers, s1 cut and back.
A=$tmp/a
setup 2 "$A"
wait_holders "$A"
sleep 1
traffic "$A" before
echo "cut s1 $(now)" >> "$A/events"
cut s1 down
wait_holders "$A" s1
traffic "$A" after
echo "back s1 $(now)" >> "$A/events"
cut s1 up
wait_holders "$A"
sleep 1
echo "end - $(now)" >> "$A/events"
teardown

# Scenario B: 3 tiers, s1 and s2 cut at once.
B=$tmp/b
setup 3 "$B"
wait_holders "$B"
sleep 1
traffic "$B" before
echo "cut s1,s2 $(now)" >> "$B/events"
cut s1 down; cut s2 down
wait_holders "$B" s1 s2
traffic "$B" after
echo "back s1,s2 $(now)" >> "$B/events"
cut s1 up; cut s2 up
wait_holders "$B"
sleep 1
echo "end - $(now)" >> "$B/events"
teardown

python3 - "$N" "$A" "$B" <<'PY'
import json, sys, datetime
n = int(sys.argv[1])

def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()

def load(d):
    plan = json.load(open(f"{d}/plan.json"))
    mac = {f"s{i}": "02:00:00:00:00:%02x" % (16 + i) for i in range(1, n + 1)}
    who = {m: s for s, m in mac.items()}
    claims = []
    for line in open(f"{d}/arp.ndjson"):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("proto") == "arp" and v.get("dir") != "out" and v["opcode"] == 1 \
                and v["sender_ip"] == v["target_ip"] and v["sender_mac"] in who:
            claims.append((ts(v["ts"]), v["sender_ip"], who[v["sender_mac"]]))
    events = [l.split() for l in open(f"{d}/events")]
    events = [(k, w.split(","), float(t)) for k, w, t in events]
    traffic = {}
    for phase in ("before", "after"):
        traffic[phase] = dict(l.split()[:2] for l in open(f"{d}/traffic-{phase}.txt") if len(l.split()) >= 2)
    busy = {p for m in traffic.values() for p, s in m.items() if s == "busy"}
    for m in traffic.values():
        for p in busy:
            m.pop(p, None)
    return plan, claims, events, traffic

def first_claim(claims, addr, server, after):
    return next((t for t, a, s in claims if a == addr and s == server and t >= after), None)

def double_claims(claims, start, end):
    runs = {}
    for t, a, s in claims:
        if start <= t < end:
            r = runs.setdefault(a, [])
            if r and r[-1][0] == s:
                r[-1][1] += 1
            else:
                r.append([s, 1])
    bad = 0
    for a, r in runs.items():
        kept = []
        for i, (s, c) in enumerate(r):
            crossed = c == 1 and 0 < i < len(r) - 1 and r[i - 1][0] == r[i + 1][0]
            if not crossed and (not kept or kept[-1] != s):
                kept.append(s)
        bad += len(kept) - len(set(kept))
    return bad

def report(title, d, timeout_ms):
    plan, claims, events, traffic = load(d)
    (_, dead, t_cut), (_, _, t_back), (_, _, t_end) = events
    lines = [f"{title}: {n} servers, {len(plan['addresses'])} addresses, cut {'+'.join(dead)}"]
    delays = []
    for a in plan["addresses"]:
        if a["servers"][0] in dead:
            new = next(s for s in a["servers"] if s not in dead)
            t = first_claim(claims, a["addr"], new, t_cut)
            delays.append((t - t_cut) * 1000 if t else float("inf"))
    delays.sort()
    med = delays[len(delays) // 2]
    lines.append(f"  failover (cut → claim by the next tier seen on the router), {len(delays)} addresses: "
                 f"median {med:.0f} ms, max {max(delays):.0f} ms; "
                 f"max ÷ timeout ({timeout_ms} ms) = {max(delays) / timeout_ms:.2f}")
    b, f = traffic["before"], traffic["after"]
    count = lambda m: {s: sum(1 for v in m.values() if v == s) for s in sorted(set(m.values()))}
    surv = [f"s{i}" for i in range(1, n + 1) if f"s{i}" not in dead]
    even = 1 / len(surv)
    # Addresses: who took each of the dead servers' addresses (from the capture).
    took = {}
    for a in plan["addresses"]:
        if a["servers"][0] in dead:
            new = next(s for s in a["servers"] if s not in dead)
            took[new] = took.get(new, 0) + 1
    lines.append("  the dead servers' addresses taken over: "
                 + ", ".join(f"{s} {took.get(s, 0)}" for s in surv))
    # Flows: the same flows before and after; where did the dead servers' flows go?
    moved = [f.get(p) for p, s in b.items() if s in dead]
    shares = {s: sum(1 for x in moved if x == s) / len(moved) for s in surv} if moved else {}
    worst = max(abs(x - even) / even for x in shares.values()) if shares else float("nan")
    lines.append(f"  requests before {count(b)}, after {count(f)} "
                 f"(flows whose source port was still busy left out of both)")
    lines.append(f"  share of the dead servers' {len(moved)} flows each survivor absorbed: "
                 + ", ".join(f"{s} {x:.0%}" for s, x in shares.items())
                 + f" (even {even:.0%}; worst {worst:.0%} off even: ECMP hash spread over "
                 + f"{sum(took.values())} addresses)")
    lost = sum(1 for x in moved if x not in surv)
    lines.append(f"  of them unanswered after the failover: {lost}")
    back = []
    for a in plan["addresses"]:
        if a["servers"][0] in dead:
            t = first_claim(claims, a["addr"], a["servers"][0], t_back)
            back.append((t - t_back) * 1000 if t else float("inf"))
    lines.append(f"  return (link up → primary's claim seen on the router): max {max(back):.0f} ms over {len(back)} addresses")
    dbl = sum(double_claims(claims, s, e) for s, e in ((t_cut, t_back), (t_back, t_end)))
    lines.append(f"  double claims (an address claimed back and forth within a phase): {dbl} "
                 f"in {sum(1 for c in claims if t_cut <= c[0] < t_end)} claims")
    return "\n".join(lines)

print(report("A (2 tiers, single failure)", sys.argv[2], 350))
print(report("B (3 tiers, double failure)", sys.argv[3], 700))
PY
