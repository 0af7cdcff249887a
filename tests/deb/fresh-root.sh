#!/usr/bin/env bash
# tests/deb/fresh-root.sh — the README's two ways in, on a fresh Debian 12 root (debootstrap
# minbase from the configured mirror, then chroot). Manual, not part of CI (it takes ~5-10
# minutes and needs the Debian mirror):
#
#   sudo tests/deb/fresh-root.sh [DEB]
#
#   A. the package: `apt-get install ./lbctl_….deb` (Depends resolved from the mirror), then
#      `lbctl --version`, `man lbctl-vip-add`, `lbctl lab demo`;
#   B. the first command: a user `demo` owns a copy of this checkout (git archive HEAD); root runs
#      `scripts/demo.sh` with SUDO_USER=demo, as `sudo` would: it must install what is missing
#      with apt-get, build as `demo` (target/ owned by demo) and run the demo as root.
#      When https://sh.rustup.rs cannot be reached (a closed network), demo's Rust toolchain is
#      this host's, linked read-only into ~demo/.cargo/bin, and the rustup download itself is NOT
#      exercised (said loudly).
#
# Everything happens in a private mount namespace (proc, sys, dev, a tmpfs /run inside the
# root); the lab's namespaces exist only while the demo runs. LBCTL_FRESH_ROOT=DIR reuses an
# existing debootstrap (default: a new one in a temp dir, removed at the end).
set -euo pipefail
exec </dev/null

repo=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh-root.sh: needs root: sudo $0" >&2; exit 2; }
command -v debootstrap >/dev/null 2>&1 || { echo "fresh-root.sh: apt-get install debootstrap" >&2; exit 2; }

keep=0
if [ -n "${LBCTL_FRESH_ROOT:-}" ]; then
  fresh=$LBCTL_FRESH_ROOT
  keep=1
else
  fresh=$(mktemp -d "${TMPDIR:-/tmp}/lbt-deb-root.XXXXXX")
fi
cleanup() { [ "$keep" = 1 ] || rm -rf --one-file-system "$fresh"; }
trap cleanup EXIT

if [ ! -x "$fresh/usr/bin/apt-get" ]; then
  mirror=$(sed -n '/^URIs: */{s///p;q}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "=== fresh-root: debootstrap --variant=minbase bookworm $fresh $mirror"
  debootstrap --variant=minbase bookworm "$fresh" "$mirror" >"$fresh.debootstrap.log" 2>&1 \
    || { tail -20 "$fresh.debootstrap.log"; exit 1; }
  rm -f "$fresh.debootstrap.log"
fi

deb=${1:-}
if [ -z "$deb" ]; then
  deb=$("$repo/scripts/build-deb.sh" --debug)
fi
cp "$deb" "$fresh/tmp/lbctl.deb"

# B's checkout and user.
chroot "$fresh" sh -c 'id demo >/dev/null 2>&1 || useradd -m -s /bin/bash demo'
rm -rf "$fresh/home/demo/lbctl"
mkdir -p "$fresh/home/demo/lbctl"
git -C "$repo" archive HEAD | tar -x -C "$fresh/home/demo/lbctl"
chroot "$fresh" chown -R demo:demo /home/demo/lbctl
# This host's own local CAs (e.g. an intercepting proxy's): the chroot's ca-certificates, which
# demo.sh installs, must trust the same HTTPS endpoints (crates.io) this host does.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  mkdir -p "$fresh/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$fresh/usr/local/share/ca-certificates/"
  echo "fresh-root: copied this host's local CAs into the root:" /usr/local/share/ca-certificates/*.crt
fi

toolchain=
if ! curl -sSf --max-time 15 -o /dev/null https://sh.rustup.rs 2>/dev/null; then
  rustc_path=$(rustc --print sysroot 2>/dev/null || true)
  if [ -z "$rustc_path" ] || [ ! -x "$rustc_path/bin/cargo" ]; then
    echo "fresh-root.sh: sh.rustup.rs unreachable and no host toolchain to lend" >&2
    exit 1
  fi
  toolchain=$rustc_path
  echo "!!! fresh-root: https://sh.rustup.rs is unreachable: demo gets this host's toolchain" \
       "($toolchain, read-only) and the rustup download is NOT tested !!!"
fi

echo "=== fresh-root: in the chroot"
unshare -m bash -s "$fresh" "$toolchain" <<'EOS'
set -euo pipefail
fresh=$1 toolchain=$2
mount --make-rprivate /
# The root must be a mount point of its own: `ip netns` makes / a slave mount in the chroot.
mount --bind "$fresh" "$fresh"
mount -t proc proc "$fresh/proc"
mount -t sysfs sysfs "$fresh/sys"
mount --rbind /dev "$fresh/dev"
mount -t tmpfs tmpfs "$fresh/run"
cp /etc/resolv.conf "$fresh/etc/resolv.conf"
if [ -n "$toolchain" ]; then
  mkdir -p "$fresh/opt/host-rust"
  mount --bind -o ro "$toolchain" "$fresh/opt/host-rust"
  mount -o remount,bind,ro "$fresh/opt/host-rust"
  chroot "$fresh" runuser -u demo -- sh -c 'mkdir -p ~/.cargo/bin &&
    for t in cargo rustc rustdoc; do ln -sf /opt/host-rust/bin/$t ~/.cargo/bin/$t; done'
fi
in_root() { chroot "$fresh" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 "$@"; }

echo "--- A. the package"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/lbctl.deb man-db >/dev/null
in_root dpkg -s lbctl | sed -n 's/^\(Status\|Version\|Depends\): /  &/p'
in_root lbctl --version
in_root man -P cat lbctl-vip-add | sed -n '1,8p'
in_root ls -l /etc/network/if-up.d/lbctl /lib/systemd/system/lbctl@.service
in_root lbctl lab demo --requests 10 | tail -n 3
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq lbctl >/dev/null
in_root sh -c '! command -v lbctl && ! [ -e /etc/network/if-up.d/lbctl ]' >/dev/null
echo "  purged: no lbctl, no hook links left"

echo "--- B. sudo scripts/demo.sh as the user demo"
in_root env SUDO_USER=demo bash /home/demo/lbctl/scripts/demo.sh --requests 10 | tail -n 3
owner=$(chroot "$fresh" stat -c %U /home/demo/lbctl/target/debug/lbctl)   # the chroot's user names
echo "  target/debug/lbctl is owned by: $owner"
[ "$owner" = demo ]
EOS
echo "=== fresh-root: passed"
