#!/bin/bash
# vm/capture-fixtures.sh — regenerate src/ipvs/testdata/ from real ipvsadm output.
#
# Boots the lane VM once per vm/fixtures/probeN.sh (run as /lbvm-test instead
# of the scenario binary), then cuts the console log into one file per
# listing: the text between "$ ipvsadm ..." and "rc=N", with the "|" line
# ends removed. When a command ran several times the longest output is kept.
# The unit tests in src/ipvs/text_tests.rs compare lbctl's formatter with these.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CRATE=$(cd "$HERE/.." && pwd)
OUT=$CRATE/src/ipvs/testdata
CACHE=${LBVM_CACHE:-$CRATE/target/vm-cache}
mkdir -p "$OUT"

extract() {  # console-file tag
  awk -v out="$OUT" -v tag="$2" '
    BEGIN {
      n["ipvsadm -Ln"] = "list";              n["ipvsadm -S -n"] = "save"
      n["ipvsadm -Ln --stats"] = "stats";      n["ipvsadm -Ln --rate"] = "rate"
      n["ipvsadm -Ln --thresholds"] = "thresholds"
      n["ipvsadm -Ln --persistent-conn"] = "persistent-conn"
      n["ipvsadm -Ln --tun-info"] = "tun-info"; n["ipvsadm -Ln --exact --stats"] = "stats-exact"
      n["ipvsadm -Ln -t 198.18.0.100:80"] = "list-one"; n["ipvsadm -Ln --timeout"] = "timeout"
    }
    /^\$ / { cmd = substr($0, 3); buf = ""; lines = 0; inside = 1; next }
    inside && /^rc=[0-9]+$/ {
      inside = 0
      if ((cmd in n) && lines >= best[cmd]) { best[cmd] = lines; text[cmd] = buf }
      next
    }
    inside { sub(/\|$/, ""); buf = buf $0 "\n"; lines++ }
    END { for (c in text) { f = out "/" tag "-" n[c] ".txt"; printf "%s", text[c] > f; close(f); print "wrote " f } }
  ' "$1"
}

for probe in "$HERE"/fixtures/probe*.sh; do
  tag=$(basename "$probe" .sh)
  LBVM_TEST_BIN=$probe "$HERE/run-ipvs-lane.sh" > /dev/null
  extract "$CACHE/run/console.txt" "$tag"
done
