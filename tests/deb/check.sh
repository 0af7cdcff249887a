#!/usr/bin/env bash
# tests/deb/check.sh — the Debian package and the systemd units, as CI checks them (a step of
# scripts/test.sh). Never installs anything onto this host:
#
#   1. build the .deb from the debug binary (scripts/build-deb.sh --debug; the release build
#      `make deb` does is the same packaging, only slower) — or check DEB when given;
#   2. lintian: no error, warning or pedantic tag (the overrides it ships say why; info tags
#      are printed);
#   3. the contents: every path the README lists, man pages gzipped, the hook links;
#   4. `dpkg -x` into a temp dir, then from there: `lbctl --version`, `man -l` on a page, and the
#      ifupdown hook through all four phases inside a network namespace of its own
#      (`lbt-deb-<pid>`, deleted afterwards) with LBCTL pointing at the extracted binary;
#   5. systemd-analyze on the shipped units: `security --offline=yes` exposure <= 3.0 each
#      (scores printed) and `verify` clean (in a private mount namespace where the extracted
#      lbctl is overlaid onto /usr/sbin, so ExecStart= resolves; man pages from the package).
#
#   sudo tests/deb/check.sh [DEB]
#
# Needs root (namespace, mounts), dpkg-dev, lintian, man-db, systemd (systemd-analyze; it need
# not be running), iproute2, nftables. Exit 0 only when everything passed.
set -euo pipefail
exec </dev/null

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ "$(id -u)" -ne 0 ]; then
  echo "check.sh: needs root (network namespace, private mounts): sudo $0" >&2
  exit 2
fi
for tool in dpkg-deb lintian man systemd-analyze ip nft unshare; do
  command -v "$tool" >/dev/null 2>&1 || { echo "check.sh: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lbctl-deb-check.XXXXXX")
ns="lbt-deb-$$"
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
ok() { echo "  ok    $*"; }
bad() { echo "  FAIL  $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION CMD… : run, report
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then ok "$what"; else bad "$what"; sed 's/^/        /' "$tmp/out"; fi
}

# --- 1. build ---------------------------------------------------------------------------------
echo "=== check.sh: the package"
if [ "$#" -gt 0 ]; then
  deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
  deb=$(scripts/build-deb.sh --debug --out "$tmp/out-deb")
fi
[ -f "$deb" ] || { echo "check.sh: no .deb at '$deb'" >&2; exit 1; }
echo "  deb   $deb ($(du -h "$deb" | cut -f1), $(dpkg-deb -f "$deb" Version), installed size \
$(dpkg-deb -f "$deb" Installed-Size) KiB)"
echo "  Depends: $(dpkg-deb -f "$deb" Depends)"
echo "  Recommends: $(dpkg-deb -f "$deb" Recommends)"

# --- 2. lintian -------------------------------------------------------------------------------
# Errors, warnings and pedantic tags fail; info tags are shown (spelling-error-in-binary can
# fire on random bytes of optimised machine code, e.g. "wTH" in a release build). The shipped
# overrides (each with its reason) are listed too so the log shows what was silenced.
lintian -I -E --pedantic --show-overrides "$deb" >"$tmp/lintian" 2>&1 || true
grep -v -e '^running with root privileges' "$tmp/lintian" >"$tmp/tags" || true
if grep -q -E '^[EWPX]: ' "$tmp/tags"; then
  bad "lintian: tags"
  sed 's/^/        /' "$tmp/tags"
else
  ok "lintian: no error, warning or pedantic tag ($(grep -c '^O: ' "$tmp/tags" || true) justified" \
    "overrides, $(grep -c '^I: ' "$tmp/tags" || true) info tags)"
  sed 's/^/        /' "$tmp/tags"
fi

# --- 3. contents ------------------------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' >"$tmp/contents"
missing=()
for path in /usr/sbin/lbctl /usr/share/man/man1/lbctl.1.gz /usr/share/man/man1/lbctl-vip-add.1.gz \
  /usr/share/bash-completion/completions/lbctl /usr/share/zsh/vendor-completions/_lbctl \
  /usr/share/fish/vendor_completions.d/lbctl.fish /lib/systemd/system/lbctl@.service \
  /lib/systemd/system/lbctl-lb@.service /usr/libexec/lbctl/ifupdown-hook \
  /etc/network/if-pre-up.d/lbctl /etc/network/if-up.d/lbctl /etc/network/if-down.d/lbctl \
  /etc/network/if-post-down.d/lbctl /etc/lbctl/lb/ /usr/share/doc/lbctl/copyright \
  /usr/share/doc/lbctl/changelog.Debian.gz /usr/share/doc/lbctl/examples/backend-nft.toml \
  /usr/share/doc/lbctl/examples/lb-run-example.toml; do
  grep -qxF "$path" "$tmp/contents" || missing+=("$path")
done
pages=$(grep -c '^/usr/share/man/man1/lbctl.*\.1\.gz$' "$tmp/contents" || true)
if [ "${#missing[@]}" -eq 0 ] && [ "$pages" -eq "$(ls man/*.1 | wc -l)" ]; then
  ok "contents: all listed paths, $pages man pages"
else
  bad "contents: missing ${missing[*]:-nothing} ($pages man pages)"
fi

# --- 4. extracted: binary, man page, ifupdown hook ---------------------------------------------
dest="$tmp/root"
dpkg -x "$deb" "$dest"
lbctl="$dest/usr/sbin/lbctl"
version=$("$lbctl" --version 2>&1 || true)
if [ "$version" = "lbctl $(sed -n '/^version = /{s/^version = "\(.*\)"/\1/p;q}' Cargo.toml)" ]; then
  ok "lbctl --version from the package: $version"
else
  bad "lbctl --version: '$version'"
fi
MANWIDTH=100 man -l "$dest/usr/share/man/man1/lbctl-vip-add.1.gz" >"$tmp/man" 2>&1 || true
if grep -q '^ *lbctl vip add ' "$tmp/man" && grep -q '^EXIT STATUS' "$tmp/man" \
  && grep -q '^EXAMPLES' "$tmp/man" && grep -q -- '--netns' "$tmp/man"; then
  ok "man -l lbctl-vip-add.1.gz: synopsis 'lbctl vip add', global options, EXIT STATUS, EXAMPLES"
else
  bad "man -l lbctl-vip-add.1.gz"
  sed 's/^/        /' "$tmp/man"
fi

hook="$dest/usr/libexec/lbctl/ifupdown-hook"
for d in if-pre-up.d if-up.d if-down.d if-post-down.d; do
  target=$(readlink "$dest/etc/network/$d/lbctl" || true)
  [ "$target" = /usr/libexec/lbctl/ifupdown-hook ] || bad "/etc/network/$d/lbctl -> '$target'"
done

# The hook as ifupdown runs it (run-parts with MODE/PHASE/IFACE/IF_* in the environment), in a
# namespace of its own holding an eth0 (one end of a veth pair) with the real IP.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add eth0 type veth peer name eth0p
ip -n "$ns" addr add 198.18.0.11/24 dev eth0
ip -n "$ns" link set eth0p up
ip -n "$ns" link set eth0 up
hook_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LBCTL="$lbctl" LBCTL_RUN_DIR="$tmp/run"
          IFACE=eth0 ADDRFAM=inet METHOD=static
          IF_LBCTL_VIP="198.18.0.100 2001:db8::100" IF_LBCTL_REAL_IP=198.18.0.11)
phase() { ip netns exec "$ns" "${hook_env[@]}" MODE="$1" PHASE="$2" "$hook"; }
vips_on_lo() { ip -n "$ns" -o addr show dev lo | grep -c -E ' (198\.18\.0\.100/32|2001:db8::100/128) ' || true; }
arp_table() { ip netns exec "$ns" nft list table arp lbctl >/dev/null 2>&1 && echo yes || echo no; }

check "hook start/pre-up: ARP suppression first" phase start pre-up
[ "$(arp_table)" = yes ] && [ "$(vips_on_lo)" = 0 ] && ok "  arp table present, no VIP yet" \
  || bad "  after pre-up: arp table $(arp_table), $(vips_on_lo) VIPs on lo"
check "hook start/post-up: the VIPs" phase start post-up
[ "$(vips_on_lo)" = 2 ] && ok "  198.18.0.100/32 and 2001:db8::100/128 on lo" \
  || bad "  after post-up: $(vips_on_lo) VIPs on lo"
check "hook stop/pre-down: VIPs removed" phase stop pre-down
[ "$(vips_on_lo)" = 0 ] && ok "  no VIP on lo" || bad "  after pre-down: $(vips_on_lo) VIPs on lo"
check "hook stop/post-down: ARP suppression undone" phase stop post-down
[ "$(arp_table)" = no ] && ok "  arp table gone" || bad "  after post-down: arp table $(arp_table)"
# A stanza without lbctl options: nothing runs (LBCTL would fail if it did).
check "hook: stanza without lbctl-* options is left alone" \
  ip netns exec "$ns" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LBCTL=/bin/false IFACE=eth0 \
  MODE=start PHASE=post-up "$hook"
# Package removed (links gone, but a copied hook left behind): warn, do not fail ifup.
check "hook: missing lbctl is a warning, not a failed ifup" \
  ip netns exec "$ns" "${hook_env[@]}" LBCTL=/nonexistent/lbctl MODE=start PHASE=post-up "$hook"

# --- 5. systemd units -------------------------------------------------------------------------
echo "=== check.sh: systemd units"
for unit in "$dest"/lib/systemd/system/*.service; do
  name=$(basename "$unit")
  line=$(systemd-analyze security --offline=yes "$unit" 2>&1 | grep 'Overall exposure level' || true)
  score=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
  if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }'; then
    ok "systemd-analyze security $name: exposure $score (<= 3.0)"
  else
    bad "systemd-analyze security $name: '${line:-no score}'"
  fi
done
# verify: ExecStart=/usr/sbin/lbctl must exist, Documentation=man: pages must resolve. The
# extracted lbctl is overlaid onto /usr/sbin in a private mount namespace (the host's /usr is
# never written); man finds the package's pages through MANPATH.
verify() {
  unshare -m sh -ec '
    mount --make-rprivate /
    mount -t overlay overlay -o "lowerdir=$1/usr/sbin:/usr/sbin" /usr/sbin
    MANPATH="$1/usr/share/man" systemd-analyze verify "$1"/lib/systemd/system/*.service
  ' sh "$dest"
}
if verify >"$tmp/verify" 2>&1 && ! [ -s "$tmp/verify" ]; then
  ok "systemd-analyze verify: both units clean (ExecStart, man pages, directives)"
else
  bad "systemd-analyze verify"
  sed 's/^/        /' "$tmp/verify"
fi

echo
if [ "$failures" -ne 0 ]; then
  echo "check.sh: $failures check(s) FAILED"
  exit 1
fi
echo "check.sh: all passed ($(basename "$deb"))"
