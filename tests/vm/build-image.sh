#!/bin/bash
# vm/build-image.sh CACHE_DIR — kernel + initramfs for the real-IPVS test lane.
#
# Produces CACHE_DIR/image/{vmlinuz,initramfs.cpio.gz,KVER,modules.order}.
#
# * The Debian cloud kernel (.deb) is fetched with `apt-get download` into
#   CACHE_DIR/debs and reused on later runs (no download when a matching .deb is
#   already there; set LBVM_KDEB=/path/to.deb to force a specific one).
#   Nothing is installed: the package is unpacked with `dpkg -x`.
# * The package ships no modules.dep, so the dependencies of each wanted module
#   are read from the module's own `depends=` modinfo string and loaded first.
# * The initramfs holds busybox-static (applet links), ipvsadm plus the shared
#   libraries it links against, the modules in load order and vm/init.
#   The scenario binary is NOT part of it: run-ipvs-lane.sh appends it as a
#   second cpio archive, so changing the binary never rebuilds this image.
#
# The image is rebuilt only when an input changed (this script, vm/init, the
# kernel .deb, busybox, ipvsadm, the module list); a stamp file records them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${1:?usage: build-image.sh CACHE_DIR}
mkdir -p "$CACHE"; CACHE=$(cd "$CACHE" && pwd)
DEBS=$CACHE/debs
OUT=$CACHE/image
mkdir -p "$DEBS" "$OUT"

# Schedulers present as modules in the Debian 6.1 cloud kernel (twos is 6.2+;
# a missing scheduler is skipped with a note, not an error).
SCHEDULERS="rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"
WANT="ip_vs ${LBVM_EXTRA_MODULES:-ip_vs_pe_sip virtio_pci virtio_net}"
for s in $SCHEDULERS; do WANT+=" ip_vs_$s"; done

log() { echo "build-image: $*" >&2; }
need() { command -v "$1" > /dev/null || { log "missing tool '$1' (apt-get install -y $2)"; exit 2; }; }
need dpkg-deb dpkg; need cpio cpio; need gzip gzip
need busybox busybox-static; need ipvsadm ipvsadm

# --- 1. kernel package ------------------------------------------------------
KDEB=${LBVM_KDEB:-}
if [ -z "$KDEB" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2> /dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}' || true)
  if [ -n "$pkg" ]; then
    KDEB=$(ls -1 "$DEBS/${pkg}"_*.deb 2> /dev/null | sort -V | tail -1 || true)
    if [ -z "$KDEB" ]; then
      log "downloading $pkg into $DEBS"
      (cd "$DEBS" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
      KDEB=$(ls -1 "$DEBS/${pkg}"_*.deb 2> /dev/null | sort -V | tail -1 || true)
    fi
  fi
  # offline / apt lists missing: fall back to whatever cloud kernel is cached
  [ -n "$KDEB" ] || KDEB=$(ls -1 "$DEBS"/linux-image-*-cloud-amd64_*.deb 2> /dev/null | sort -V | tail -1 || true)
  [ -n "$KDEB" ] || { log "no kernel .deb: apt-get download failed and $DEBS is empty (try apt-get update)"; exit 2; }
fi
[ -f "$KDEB" ] || { log "kernel package $KDEB not found"; exit 2; }

BUSYBOX=$(command -v busybox)
IPVSADM=$(command -v ipvsadm)
stamp_now=$(
  {
    echo "deb $(basename "$KDEB") $(stat -c %s "$KDEB")"
    echo "want $WANT"
    sha256sum "$HERE/build-image.sh" "$HERE/init" "$BUSYBOX" "$IPVSADM"
  } | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$stamp_now" ] &&
   [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initramfs.cpio.gz" ]; then
  log "image up to date ($OUT)"
  exit 0
fi

# --- 2. unpack ----------------------------------------------------------------
WORK=$CACHE/build
rm -rf "$WORK"; mkdir -p "$WORK/kernel"
dpkg-deb -x "$KDEB" "$WORK/kernel"
KVER=$(ls -1 "$WORK/kernel/lib/modules" | head -1)
MODROOT=$WORK/kernel/lib/modules/$KVER
cp "$WORK/kernel/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
log "kernel $KVER from $(basename "$KDEB")"

# --- 3. rootfs ----------------------------------------------------------------
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules}
if ldd "$BUSYBOX" > /dev/null 2>&1; then log "$BUSYBOX is dynamic; install busybox-static"; exit 2; fi
cp "$BUSYBOX" "$ROOT/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  # a busybox -> busybox link would make the kernel's exec of /init loop (ELOOP)
  case $applet in busybox) continue ;; esac
  ln -s busybox "$ROOT/bin/$applet"
done

cp "$IPVSADM" "$ROOT/sbin/ipvsadm"
ldd "$IPVSADM" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u |
while read -r lib; do
  mkdir -p "$ROOT$(dirname "$lib")"
  cp -L "$lib" "$ROOT$lib"
done
# ipvsadm without -n resolves names; keep lookups local and fast
printf 'hosts: files\nservices: files\n' > "$ROOT/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' > "$ROOT/etc/hosts"
: > "$ROOT/etc/services"

# --- 4. modules, dependencies first --------------------------------------------
ko_path() {  # module name -> file ('-' and '_' are the same to the kernel)
  local pat; pat=$(echo "$1" | sed 's/[-_]/[-_]/g')
  find "$MODROOT/kernel" -regextype posix-extended -regex ".*/${pat}\.ko(\.xz|\.zst|\.gz)?" | head -1
}
ko_cat() {
  case $1 in
    *.ko.xz) xz -dc "$1" ;; *.ko.zst) zstd -dcq "$1" ;; *.ko.gz) gzip -dc "$1" ;; *) cat "$1" ;;
  esac
}
builtin_mod() { tr '-' '_' < "$MODROOT/modules.builtin" | grep -q "/$(echo "$1" | tr '-' '_')\.ko$"; }

declare -A DONE=()
ORDER=()
add_module() {
  local m=$1 f d
  m=$(echo "$m" | tr '-' '_')
  [ -n "${DONE[$m]:-}" ] && return 0
  DONE[$m]=1
  f=$(ko_path "$m")
  if [ -z "$f" ]; then
    builtin_mod "$m" && return 0
    log "note: module $m not in $KVER, skipped"
    return 0
  fi
  for d in $(ko_cat "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$d"
  done
  ko_cat "$f" > "$ROOT/lib/modules/$m.ko"
  ORDER+=("$m")
}
for m in $WANT; do add_module "$m"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/lib/modules/order"
printf '%s\n' "${ORDER[@]}" > "$OUT/modules.order"
echo "$KVER" > "$OUT/KVER"
log "modules (${#ORDER[@]}): ${ORDER[*]}"

install -m 0755 "$HERE/init" "$ROOT/init"

(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
echo "$stamp_now" > "$OUT/stamp"
rm -rf "$WORK"
log "wrote $OUT/vmlinuz ($(stat -c %s "$OUT/vmlinuz") B) and $OUT/initramfs.cpio.gz ($(stat -c %s "$OUT/initramfs.cpio.gz") B)"
