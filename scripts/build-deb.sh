#!/usr/bin/env bash
# build-deb.sh — build lbctl's Debian package from this tree (what `make deb` runs) and print the
# path of the .deb it wrote (the only line on stdout; progress goes to stderr).
#
#   scripts/build-deb.sh              release build (cargo build --release), then the package
#   scripts/build-deb.sh --debug      package the debug binary instead (what the test does: no
#                                     second, slow build; the binary is stripped either way)
#   scripts/build-deb.sh --out DIR    write the .deb into DIR (default: <target dir>/debian)
#
# No debhelper and no root: the tree is staged in a temp dir and packed with
# `dpkg-deb --root-owner-group --build`. Needs cargo, dpkg-dev (dpkg-shlibdeps), binutils
# (strip) and gzip. Package contents (also listed in the README):
#   /usr/sbin/lbctl
#   /usr/share/man/man1/lbctl*.1.gz                           one page per command
#   /usr/share/bash-completion/completions/lbctl
#   /usr/share/zsh/vendor-completions/_lbctl
#   /usr/share/fish/vendor_completions.d/lbctl.fish
#   /lib/systemd/system/lbctl@.service, lbctl-lb@.service     hardened, not enabled
#   /usr/libexec/lbctl/ifupdown-hook                          linked from
#   /etc/network/if-{pre-up,up,down,post-down}.d/lbctl
#   /etc/lbctl/, /etc/lbctl/lb/                               for the units' profiles
#   /usr/share/doc/lbctl/{README.md.gz,changelog.gz,changelog.Debian.gz,copyright}
#   /usr/share/doc/lbctl/examples/*.toml                      the profiles/ directory
set -euo pipefail

profile=release
out=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--debug] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "build-deb: $*" >&2; }

if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
for tool in cargo dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null 2>&1 || {
    say "$tool not found (apt-get install dpkg-dev binutils gzip; Rust: https://rustup.rs)"
    exit 2
  }
done

target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
target_dir=${target_dir:-$root/target}
out=${out:-$target_dir/debian}

upstream=$(sed -n '/^version = /{s/^version = "\(.*\)"/\1/p;q}' Cargo.toml)
version="$upstream-1"
arch=$(dpkg --print-architecture)
maintainer="${DEBFULLNAME:-lbctl maintainers} <${DEBEMAIL:-lbctl@example.org}>"
# Reproducible: file times and the changelog date come from the last commit.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

if [ "$profile" = release ]; then
  say "cargo build --release --bin lbctl"
  cargo build --quiet --release --bin lbctl >&2
else
  say "cargo build --bin lbctl"
  cargo build --quiet --bin lbctl >&2
fi
bin="$target_dir/$profile/lbctl"
[ -x "$bin" ] || { say "$bin not found after the build"; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lbctl-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg="$work/lbctl"
umask 022

# --- files ------------------------------------------------------------------------------------
install -D -m 0755 "$bin" "$pkg/usr/sbin/lbctl"
# what dh_strip does
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$pkg/usr/sbin/lbctl"

install -d "$pkg/usr/share/man/man1"
for page in man/*.1; do
  gzip -9n < "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"
done
chmod 0644 "$pkg"/usr/share/man/man1/*

install -D -m 0644 completions/lbctl.bash "$pkg/usr/share/bash-completion/completions/lbctl"
install -D -m 0644 completions/_lbctl "$pkg/usr/share/zsh/vendor-completions/_lbctl"
install -D -m 0644 completions/lbctl.fish "$pkg/usr/share/fish/vendor_completions.d/lbctl.fish"

install -D -m 0644 contrib/systemd/lbctl@.service "$pkg/lib/systemd/system/lbctl@.service"
install -D -m 0644 contrib/systemd/lbctl-lb@.service "$pkg/lib/systemd/system/lbctl-lb@.service"

install -D -m 0755 contrib/ifupdown/lbctl "$pkg/usr/libexec/lbctl/ifupdown-hook"
for d in if-pre-up.d if-up.d if-down.d if-post-down.d; do
  install -d "$pkg/etc/network/$d"
  ln -s /usr/libexec/lbctl/ifupdown-hook "$pkg/etc/network/$d/lbctl"
done
install -d "$pkg/etc/lbctl/lb"

doc="$pkg/usr/share/doc/lbctl"
install -d "$doc/examples"
install -m 0644 profiles/*.toml "$doc/examples/"
gzip -9n < README.md > "$doc/README.md.gz"
gzip -9n < CHANGELOG.md > "$doc/changelog.gz"
cat > "$work/changelog.Debian" <<EOF
lbctl ($version) unstable; urgency=medium

  * Package built from the lbctl tree by scripts/build-deb.sh (make deb).
    The upstream changes are in changelog.gz.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
gzip -9n < "$work/changelog.Debian" > "$doc/changelog.Debian.gz"
first_year=$(git log --format=%cd --date=format:%Y 2>/dev/null | tail -n 1)   # oldest commit (no early-closing pipe under pipefail)
last_year=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)
years=${first_year:-$last_year}
[ "$years" = "$last_year" ] || years="$years-$last_year"
cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lbctl
Comment: The binary statically links Rust crates from crates.io (clap, tokio, rtnetlink,
 netlink-packet-*, nftables, serde, toml, indicatif, libc, anyhow, thiserror, futures, ipnet
 and their dependencies), all under MIT and/or Apache-2.0 terms; Cargo.lock lists them.

Files: *
Copyright: $years lbctl contributors
License: Apache-2.0

License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 except in compliance with the License. You may obtain a copy of the License at
 .
 https://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software distributed under the
 License is distributed on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND,
 either express or implied. See the License for the specific language governing permissions
 and limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0 can be found in
 "/usr/share/common-licenses/Apache-2.0".
EOF
chmod 0644 "$doc/copyright"

# Each override says why (lintian shows the comment with the tag it silences).
install -d "$pkg/usr/share/lintian/overrides"
cat > "$pkg/usr/share/lintian/overrides/lbctl" <<'EOF'
# Built from the project tree, not uploaded to the Debian archive: there is no ITP bug to close.
lbctl: initial-upload-closes-no-bugs [usr/share/doc/lbctl/changelog.Debian.gz:1]
# A Rust binary: _FORTIFY_SOURCE is a C preprocessor feature that Rust code never goes through;
# Rust's own buffer accesses are bounds-checked.
lbctl: hardening-no-fortify-functions [usr/sbin/lbctl]
# "iif" is the kernel's and ip-rule(8)'s name for a route lookup's input interface, not a typo.
lbctl: spelling-error-in-binary iif if [usr/sbin/lbctl]
# Section 1 on purpose: lbctl has unprivileged commands too (gen, lab status, lb maglev,
# capture -r, --dry-run planning), and its pages are one per subcommand like git's.
lbctl: manual-page-for-system-command [usr/sbin/lbctl]
EOF
chmod 0644 "$pkg/usr/share/lintian/overrides/lbctl"

# --- control ----------------------------------------------------------------------------------
# Shared-library dependencies as dh_shlibdeps computes them (dpkg-shlibdeps wants a
# debian/control next to it).
mkdir -p "$work/debian"
printf 'Source: lbctl\n\nPackage: lbctl\nArchitecture: any\n' > "$work/debian/control"
shlibs=$(cd "$work" && dpkg-shlibdeps -O -e lbctl/usr/sbin/lbctl 2>/dev/null \
  | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { say "dpkg-shlibdeps found no dependencies"; exit 2; }

install -d "$pkg/DEBIAN"
installed_size=$(du -s -k --apparent-size "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: lbctl
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $shlibs, iproute2, nftables
Recommends: tcpdump, ifupdown
Section: net
Priority: optional
Description: Direct Server Return (DSR) load balancing: backends, diagnosis, balancer
 lbctl sets up Linux hosts as DSR load-balancing backends: VIPs on lo without
 ARP flux, source policy routing for replies, reverse-path filtering. Each step
 is one idempotent, reversible command that prints the ip/nft/sysctl lines it
 stands for and rolls back on failure; profiles describe a whole backend.
 .
 It also diagnoses a DSR set-up (lbctl doctor), captures packets without
 libpcap, drives kernel IPVS in direct-routing mode (ipvsadm-compatible) and
 runs a small balancer daemon with health checks (IPVS, or nftables with
 Maglev hashing). "lbctl lab demo" builds a whole DSR network in throwaway
 network namespaces.
 .
 Includes man pages, bash/zsh/fish completions, an ifupdown hook (lbctl-*
 options in /etc/network/interfaces) and hardened systemd units
 (lbctl@.service, lbctl-lb@.service).
EOF
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/md5sums"

find "$pkg" -depth -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$(cd "$out" && pwd)/lbctl_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >&2
say "wrote $deb ($(du -h "$deb" | cut -f1))"
echo "$deb"
