#!/usr/bin/env bash
# Benchmark (issue 15 P6): `lbctl capture -r` vs `tcpdump -e -n -r` on the same ~260k-packet pcap,
# recorded here from real traffic between two throwaway namespaces (TCP echo with small
# segments, UDP echo; tcpdump -s 200). Checks that both print the same lines, then reports the
# median of RUNS wall times each and the ratio lbctl/tcpdump (target ≤ 0.5).
#   sudo bench/capture-read.sh [RUNS] [PCAP]     (an existing PCAP skips the recording)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 77; }
command -v tcpdump >/dev/null || { echo "needs tcpdump" >&2; exit 77; }
cargo build --release --quiet
lbctl=$PWD/target/release/lbctl
tmp=$(mktemp -d)
A="lbc-cap-a-$$"; B="lbc-cap-b-$$"; srv=""
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true; ip netns del "$B" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
pcap=${2:-}
if [ -z "$pcap" ]; then
    pcap=$tmp/big.pcap
    ip netns add "$A"; ip netns add "$B"
    ip link add va netns "$A" type veth peer name vb netns "$B"
    for n in "$A" "$B"; do ip -n "$n" link set lo up; done
    ip -n "$A" link set va up; ip -n "$B" link set vb up
    ip -n "$A" addr add 198.18.0.1/24 dev va; ip -n "$B" addr add 198.18.0.2/24 dev vb
    ip netns exec "$B" python3 -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", 5001)); s.listen(50)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("198.18.0.2", 5002))
def udp():
    while True:
        d, a = u.recvfrom(2000); u.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
def echo(c):
    while True:
        d = c.recv(700)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
' & srv=$!
    sleep 0.5
    ip netns exec "$A" tcpdump -U -n -s 200 -c 260000 -i va -w "$pcap" 2>/dev/null & td=$!
    sleep 1
    ip netns exec "$A" python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.2)
for k in range(75):
    c = socket.create_connection(("198.18.0.2", 5001)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(1500):
        c.sendall(b"x" * (100 + i % 500)); c.recv(2000)
    c.close()
    for i in range(300):
        u.sendto(b"y" * (20 + i % 100), ("198.18.0.2", 5002))
        try: u.recv(2000)
        except Exception: pass
' || true
    sleep 1; kill "$td" 2>/dev/null || true; wait "$td" 2>/dev/null || true
fi
n=$(tcpdump -n -r "$pcap" 2>/dev/null | wc -l)
tcpdump -e -n -r "$pcap" > "$tmp/tcpdump.txt" 2>/dev/null
"$lbctl" capture -r "$pcap" > "$tmp/lbctl.txt" 2>/dev/null
cmp -s "$tmp/tcpdump.txt" "$tmp/lbctl.txt" || { echo "outputs differ:"; diff "$tmp/tcpdump.txt" "$tmp/lbctl.txt" | head; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_of() {
    for _ in $(seq "$RUNS"); do
        s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N)
        awk -v s="$s" -v e="$e" 'BEGIN {printf "%.4f\n", e - s}'
    done | median
}
t_tcpdump=$(time_of tcpdump -e -n -r "$pcap")
t_lbctl=$(time_of "$lbctl" capture -r "$pcap")
echo "packets: $n (identical output)"
echo "tcpdump -e -n -r: ${t_tcpdump}s (median of $RUNS)"
echo "lbctl capture -r: ${t_lbctl}s (median of $RUNS)"
awk -v a="$t_lbctl" -v b="$t_tcpdump" 'BEGIN {printf "ratio lbctl/tcpdump: %.3f\n", a / b}'
