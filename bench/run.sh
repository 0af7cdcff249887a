#!/usr/bin/env bash
# bench/run.sh — lbctl's benchmark suite: every figure of issue 15 (P1a–P9) against its baseline,
# measured in the same invocation, interleaved (baseline and lbctl alternate, order flipped every
# run), several runs, medians. Prints one table: id, measure, ours, baseline, ratio, goal, met?
#
#   sudo bench/run.sh                 # full sizes (N = 1000 / 10000, M = 65537, …), 3 runs
#   sudo bench/run.sh --runs 5        # more runs
#   sudo bench/run.sh --only P1b,P4   # some figures
#   sudo bench/run.sh --quick         # small sizes, one run: proves the suite works (CI); the
#                                     # "met?" column then says "n/a" — nothing is asserted
#   sudo bench/run.sh --markdown      # the table as Markdown (for BENCHMARKS.md)
#   sudo bench/run.sh --quick --debug # with the debug build (CI: already built, figures meaningless)
#
# Everything happens in namespaces named lbp-<pid>-… (and one lab, lbl-lbp<pid>-…), deleted on
# exit, also on Ctrl-C. Needs root, a release build (built here), nft, ip, tcpdump, ab
# (apache2-utils; P8 is skipped with a note without it) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (network namespaces)" >&2; exit 77; }
args=()
profile=release
for a in "$@"; do
  if [ "$a" = --debug ]; then profile=debug; else args+=("$a"); fi
done
if [ "$profile" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
export LBP_PREFIX="lbp-$$"
export LBP_LAB="lbp$$"
export LBP_BIN="$PWD/target/$profile/lbctl"
LBP_LAB_RUN=$(mktemp -d /tmp/lbp-lab.XXXXXX)
export LBP_LAB_RUN
cleanup() {
  LBCTL_RUN_DIR="$LBP_LAB_RUN" "$LBP_BIN" -q lab down --name "$LBP_LAB" > /dev/null 2>&1 || true
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^($LBP_PREFIX|lbl-$LBP_LAB)-" || true); do
    ip netns pids "$ns" 2> /dev/null | xargs -r kill 2> /dev/null || true
    for _ in $(seq 50); do  # let them finish (lb run writes its status on the way out)
      [ -z "$(ip netns pids "$ns" 2> /dev/null)" ] && break
      sleep 0.1
    done
    ip netns del "$ns" 2> /dev/null || true
  done
  rm -rf "$LBP_LAB_RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
python3 bench/suite.py ${args[@]+"${args[@]}"}
