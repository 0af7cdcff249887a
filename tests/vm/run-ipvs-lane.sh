#!/bin/bash
# vm/run-ipvs-lane.sh — the real-kernel IPVS lane.
#
# Builds the static scenario binary (tests/vm/lbvm-ipvs-test, a workspace member) and a
# static lbctl, the VM image
# (vm/build-image.sh, cached), boots QEMU with pure emulation (TCG, -M pc),
# and turns the serial-console markers into an exit status:
#   0   pass: "LBVM: RESULT pass", no failed CHECK, /lbvm-test exited 0
#   1   fail: anything else, including a timeout or a boot that never reached
#       /init (the console tail is printed)
#   77  skip: QEMU cannot run on this machine at all (loud message on stderr)
#
# Environment:
#   LBVM_CACHE     cache dir for the kernel .deb and the image (default: target/vm-cache)
#   LBVM_TIMEOUT   seconds for the whole VM run (default 240)
#   LBVM_TEST_BIN  use this prebuilt static binary instead of building one
#   LBVM_LBCTL_BIN a prebuilt static lbctl for /bin/lbctl (default: built with the scenario)
#   LBVM_TEST_ARGS arguments for the scenario binary (kernel cmdline, space separated)
#   LBVM_NO_APT=1  never try apt-get install for missing host packages
#   CARGO_JOBS     -j for cargo (default 1: the machine is shared)
#   LBVM_QEMU      QEMU binary (default qemu-system-x86_64)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CRATE=$(cd "$HERE/../.." && pwd)
CACHE=${LBVM_CACHE:-$CRATE/target/vm-cache}
TIMEOUT=${LBVM_TIMEOUT:-240}
TARGET=x86_64-unknown-linux-gnu
QEMU=${LBVM_QEMU:-qemu-system-x86_64}

say() { echo "lane: $*" >&2; }
skip77() {
  {
    echo "######################################################################"
    echo "### SKIP (77): the IPVS VM lane cannot run on this machine:"
    echo "###   $*"
    echo "### Nothing was tested. Install qemu-system-x86 (TCG is enough) to run it."
    echo "######################################################################"
  } >&2
  exit 77
}
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# --- host packages ------------------------------------------------------------
missing=()
command -v "$QEMU" > /dev/null || missing+=(qemu-system-x86)
command -v busybox > /dev/null && ! ldd "$(command -v busybox)" > /dev/null 2>&1 || missing+=(busybox-static)
command -v ipvsadm > /dev/null || missing+=(ipvsadm)
command -v cpio > /dev/null || missing+=(cpio)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "${LBVM_NO_APT:-0}" != 1 ] && command -v apt-get > /dev/null && [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null 2>&1 ||
      { apt-get update > /dev/null 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" > /dev/null 2>&1; } ||
      say "apt-get install ${missing[*]} failed"
  fi
fi
command -v "$QEMU" > /dev/null || skip77 "$QEMU is not installed and could not be installed"
if ! "$QEMU" -accel help 2> /dev/null | grep -qx tcg; then
  skip77 "$QEMU does not run or does not offer the TCG accelerator"
fi
for t in busybox ipvsadm cpio; do
  command -v $t > /dev/null || { say "FAIL: host tool $t missing (apt-get install busybox-static ipvsadm cpio)"; exit 1; }
done

# --- image --------------------------------------------------------------------
t0=$(now)
"$HERE/build-image.sh" "$CACHE" || { say "FAIL: vm/build-image.sh failed"; exit 1; }
IMG=$CACHE/image
say "image ready in $(elapsed "$t0")s"

# --- scenario binary and lbctl ---------------------------------------------------------
# Both static, from one cargo invocation: the scenario (/lbvm-test) and the real lbctl CLI
# (/bin/lbctl), which the scenario's cli.* checks run. With LBVM_TEST_BIN, only
# LBVM_LBCTL_BIN (if set) is added.
BIN=${LBVM_TEST_BIN:-}
LBCTL_BIN=${LBVM_LBCTL_BIN:-}
if [ -z "$BIN" ]; then
  t0=$(now)
  # the explicit --target keeps crt-static away from proc-macros and build scripts
  (cd "$CRATE" && RUSTFLAGS='-C target-feature=+crt-static' \
     cargo build --release -j "${CARGO_JOBS:-1}" --target "$TARGET" \
       -p lbvm-ipvs-test --bin lbvm-ipvs-test -p lbctl --bin lbctl) ||
    { say "FAIL: cargo build of the static binaries failed"; exit 1; }
  BIN=$CRATE/target/$TARGET/release/lbvm-ipvs-test
  LBCTL_BIN=${LBCTL_BIN:-$CRATE/target/$TARGET/release/lbctl}
  say "static binaries built in $(elapsed "$t0")s (scenario $(stat -c %s "$BIN") B, lbctl $(stat -c %s "$LBCTL_BIN") B)"
fi
for b in "$BIN" $LBCTL_BIN; do
  [ -x "$b" ] || { say "FAIL: no executable $b"; exit 1; }
  if ldd "$b" 2>&1 | grep -q '=>'; then
    say "FAIL: $b is dynamically linked; the VM has no Rust runtime libraries"; exit 1
  fi
done

RUN=$CACHE/run
rm -rf "$RUN"; mkdir -p "$RUN/extra/bin"
cp "$BIN" "$RUN/extra/lbvm-test"; chmod 0755 "$RUN/extra/lbvm-test"
files=lbvm-test
if [ -n "$LBCTL_BIN" ]; then
  cp "$LBCTL_BIN" "$RUN/extra/bin/lbctl"; chmod 0755 "$RUN/extra/bin/lbctl"
  files="$files bin/lbctl"    # no "bin" entry: the image's /bin (busybox applets) stays as it is
fi
# shellcheck disable=SC2086
(cd "$RUN/extra" && printf '%s\n' $files | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$RUN/extra.cpio.gz"
# the kernel unpacks concatenated archives in order: the image, then the binary
cat "$IMG/initramfs.cpio.gz" "$RUN/extra.cpio.gz" > "$RUN/initrd.cpio.gz"

# --- boot -------------------------------------------------------------------------
cmdline="console=ttyS0 quiet panic=-1"
[ -n "${LBVM_TEST_ARGS:-}" ] && cmdline+=" LBVM_TEST_ARGS=\"$LBVM_TEST_ARGS\""
LOG=$RUN/console.log
say "booting QEMU (TCG, -M pc), timeout ${TIMEOUT}s, console log $LOG"
t0=$(now)
timeout --kill-after=10 "$TIMEOUT" "$QEMU" \
  -M pc -accel tcg -cpu max -m 384 -smp 1 \
  -nodefaults -no-user-config -nographic -serial stdio -no-reboot \
  -kernel "$IMG/vmlinuz" -initrd "$RUN/initrd.cpio.gz" -append "$cmdline" \
  < /dev/null > "$LOG" 2>&1
qrc=$?
wall=$(elapsed "$t0")
# drop CRs and the terminal escape sequences SeaBIOS/the kernel emit
tr -d '\r' < "$LOG" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1b[c78]//g' > "$RUN/console.txt"
C=$RUN/console.txt

tail_console() {
  echo "---- last 40 console lines ($LOG) ----" >&2
  tail -40 "$C" >&2
  echo "--------------------------------------" >&2
}

if ! grep -aq '^LBVM: BOOT' "$C"; then
  # QEMU itself failed to start (bad option, no memory, ...): that is not a test
  # failure but an environment problem, unless it got as far as a kernel.
  if [ "$qrc" -ne 0 ] && [ "$qrc" -ne 124 ] && [ "$qrc" -ne 137 ] && ! grep -aq 'Linux version\|Decompressing\|Booting' "$C"; then
    tail_console
    skip77 "$QEMU exited with rc=$qrc before starting the guest"
  fi
fi

grep -a '^LBVM: ' "$C"
boot_at=$(sed -n 's/^LBVM: BOOT uptime=\([0-9.]*\).*/\1/p' "$C" | head -1)
exit_at=$(sed -n 's/^LBVM: EXIT rc=[0-9]* uptime=\([0-9.]*\).*/\1/p' "$C" | head -1)
say "qemu wall ${wall}s (rc=$qrc), /init at guest uptime ${boot_at:-?}s, test done at ${exit_at:-?}s"

fail=""
[ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ] && fail="timed out after ${TIMEOUT}s"
grep -aq '^LBVM: BOOT' "$C" || fail="${fail:-the guest never reached /init}"
grep -aq '^LBVM: RESULT pass' "$C" || fail="${fail:-no 'LBVM: RESULT pass' marker}"
grep -aq '^LBVM: RESULT fail' "$C" && fail="${fail:-RESULT fail}"
nfail=$(grep -ac '^LBVM: CHECK .* FAIL' "$C")
[ "$nfail" -eq 0 ] || fail="${fail:-$nfail failed checks}"
grep -aq '^LBVM: EXIT rc=0' "$C" || fail="${fail:-scenario exit status not 0}"
nok=$(grep -ac '^LBVM: CHECK .* ok' "$C")

if [ -n "$fail" ]; then
  tail_console
  say "FAIL: $fail ($nok checks ok, $nfail failed)"
  exit 1
fi
say "PASS: $nok checks ok"
exit 0
