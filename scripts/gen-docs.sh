#!/usr/bin/env bash
# gen-docs.sh — (re)generate the checked-in man pages and shell completions from the CLI
# definition (`lbctl gen`), or check that the checked-in copies are up to date.
#
#   scripts/gen-docs.sh           regenerate man/ and completions/ in place
#   scripts/gen-docs.sh --check   regenerate into a temp dir and `diff -r` against the checked-in
#                                 copies; exit 1 (with the diff) when they are stale
#
# Files: man/*.1 (one page per command), completions/lbctl.bash, completions/_lbctl (zsh),
# completions/lbctl.fish. Needs no root and touches nothing outside the repository and $TMPDIR.
set -euo pipefail

mode=write
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cargo build --quiet --bin lbctl
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
lbctl="${target_dir:-$root/target}/debug/lbctl"
[ -x "$lbctl" ] || { echo "gen-docs: $lbctl not found after build" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lbctl-gen-docs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/man" "$tmp/completions"
"$lbctl" gen man "$tmp/man"
"$lbctl" gen completions bash > "$tmp/completions/lbctl.bash"
"$lbctl" gen completions zsh  > "$tmp/completions/_lbctl"
"$lbctl" gen completions fish > "$tmp/completions/lbctl.fish"

if [ "$mode" = check ]; then
  status=0
  for d in man completions; do
    if [ ! -d "$d" ]; then
      echo "gen-docs: $d/ is missing; run scripts/gen-docs.sh and commit the result" >&2
      status=1
    elif ! diff -ru "$d" "$tmp/$d"; then
      echo "gen-docs: $d/ is stale; run scripts/gen-docs.sh and commit the result" >&2
      status=1
    fi
  done
  [ "$status" -eq 0 ] && echo "gen-docs: man/ and completions/ are up to date"
  exit "$status"
fi

for d in man completions; do
  rm -rf "$d"
  cp -r "$tmp/$d" "$d"
done
echo "gen-docs: wrote $(ls man | wc -l) man pages and $(ls completions | wc -l) completion files"
