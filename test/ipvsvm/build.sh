#!/bin/bash
# Build the IPVS test VM of test/ipvsvm: a Debian bookworm stock kernel
# (linux-image-amd64, 6.1.x, IPVS as modules) plus a minimal Debian rootfs
# packed as an initramfs.  Everything comes from the Debian archive configured
# for apt on this host; nothing else is downloaded.
#
# Idempotent: every step leaves a stamp in $IPVS_VM_CACHE (default /tmp/gvs-ipvsvm)
# and is skipped when its inputs did not change.  `build.sh --force` rebuilds all.
#
# Outputs (in $IPVS_VM_CACHE):
#   vmlinuz          kernel to boot
#   initramfs.cpio   rootfs + /init + kernel modules subset (uncompressed newc cpio)
#   kver             kernel release string, e.g. 6.1.0-56-amd64
#   packages.txt     guest package manifest (name version), kernel.stamp: kernel .deb used
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${IPVS_VM_CACHE:-/tmp/gvs-ipvsvm}
SUITE=${IPVS_VM_SUITE:-bookworm}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

# Packages installed into the guest rootfs (debootstrap --variant=minbase --include=...).
# The Go test binaries are static (CGO_ENABLED=0) and need none of them; the
# tests drive ipvsadm, keepalived, ip, iptables-restore and curl.
GUEST_PKGS=(ipvsadm keepalived iproute2 iptables kmod iputils-ping curl busybox procps psmisc)

# Kernel module subtrees (relative to /lib/modules/$KVER/kernel) copied into the guest.
# net/ (all of netfilter/ipvs, bridge, sched, ...) plus what those depend on.
MOD_DIRS=(net lib crypto arch/x86/crypto drivers/net drivers/virtio drivers/firmware
          drivers/char/hw_random drivers/block fs/9p fs/netfs fs/fuse fs/overlayfs)
# ...but not these (big, useless in the VM).
MOD_EXCLUDE=(net/wireless net/mac80211 net/bluetooth drivers/net/wireless
             drivers/net/ethernet drivers/net/usb drivers/net/can drivers/net/wwan
             drivers/net/ieee802154 drivers/net/hamradio drivers/net/wan drivers/net/arcnet
             drivers/net/fddi drivers/net/appletalk drivers/net/hippi)

log() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
T0=$SECONDS

[ "$(id -u)" = 0 ] || { echo "build.sh must run as root (debootstrap, chroot, device nodes)" >&2; exit 1; }
mkdir -p "$CACHE/debs"
exec 9>"$CACHE/.build.lock"; flock 9   # serialize concurrent builds (run.sh calls build.sh)

# --- 1. host tools ---------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap        >/dev/null || need+=(debootstrap)
command -v cpio               >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  log "installing host packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# Mirror: the first http(s) URI apt uses for the main Debian archive on this host.
MIRROR=${IPVS_VM_MIRROR:-$(
  { grep -h -E '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -h -E '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } \
  | grep -E '^https?://' | grep -v -E 'security|updates' | grep -E '/debian/?$' | head -n1 || true)}
[ -n "$MIRROR" ] || { echo "no Debian mirror found in the apt sources; set IPVS_VM_MIRROR" >&2; exit 1; }

# --- 2. kernel (linux-image-amd64 -> linux-image-6.1.0-NN-amd64) --------------------
# IPVS_VM_KERNEL_SUITE takes the kernel from another suite of the same mirror
# (bookworm-backports: 6.12), through apt with package lists of its own.
KSUITE=${IPVS_VM_KERNEL_SUITE:-}
APT_OPTS=()
if [ -n "$KSUITE" ]; then
  A="$CACHE/apt-$KSUITE"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $KSUITE main" > "$A/sources.list"
  APT_OPTS=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache")
fi
if [ ! -s "$CACHE/kernel.stamp" ] || [ $FORCE = 1 ] || [ -n "${IPVS_VM_REFRESH_KERNEL:-}" ] ||
   [ "$(cat "$CACHE/kernel.suite" 2>/dev/null)" != "$KSUITE" ]; then
  apt-get "${APT_OPTS[@]}" update -qq || true
  KPKG=$(apt-cache "${APT_OPTS[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  [ -n "$KPKG" ] || { echo "cannot resolve linux-image-amd64 dependency" >&2; exit 1; }
  log "kernel package: $KPKG"
  (cd "$CACHE/debs" && rm -f "$KPKG"_*.deb && apt-get "${APT_OPTS[@]}" download -q "$KPKG" >&2 2>/dev/null ||
     apt-get "${APT_OPTS[@]}" download "$KPKG" >&2)
  DEB=$(ls "$CACHE/debs/$KPKG"_*.deb | head -n1)
  rm -rf "$CACHE/kernel"; mkdir -p "$CACHE/kernel"
  dpkg-deb -x "$DEB" "$CACHE/kernel"
  KVER=$(ls "$CACHE/kernel/lib/modules" | head -n1)
  cp "$CACHE/kernel/boot/vmlinuz-$KVER" "$CACHE/vmlinuz"
  echo "$KVER" > "$CACHE/kver"
  echo "$(basename "$DEB")" > "$CACHE/kernel.stamp"
  echo "$KSUITE" > "$CACHE/kernel.suite"
fi
KVER=$(cat "$CACHE/kver")
log "kernel: $KVER ($(cat "$CACHE/kernel.stamp"))"

# --- 3. rootfs via debootstrap --------------------------------------------------------
ROOTFS_KEY="$SUITE $MIRROR ${GUEST_PKGS[*]}"
if [ ! -f "$CACHE/rootfs.stamp" ] || [ "$(cat "$CACHE/rootfs.stamp")" != "$ROOTFS_KEY" ] || [ $FORCE = 1 ]; then
  log "debootstrap $SUITE from $MIRROR (minbase + ${#GUEST_PKGS[@]} packages)"
  rm -rf "$CACHE/rootfs" "$CACHE/rootfs.stamp"
  inc=$(IFS=,; echo "${GUEST_PKGS[*]}")
  debootstrap --variant=minbase --include="$inc" "$SUITE" "$CACHE/rootfs" "$MIRROR" \
    > "$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log" >&2; exit 1; }
  echo "$ROOTFS_KEY" > "$CACHE/rootfs.stamp"
fi
[ -s "$CACHE/packages.txt" ] && [ "$CACHE/packages.txt" -nt "$CACHE/rootfs.stamp" ] || \
  chroot "$CACHE/rootfs" dpkg-query -W -f '${Package} ${Version}\n' > "$CACHE/packages.txt"

# --- 4. stage: rootfs copy, trimmed, + modules + /init ----------------------------------
STAGE_KEY="$(cat "$CACHE/rootfs.stamp" "$CACHE/kernel.stamp" | md5sum | cut -c1-32) \
$(cat "$HERE/build.sh" "$HERE/guest-init.sh" | md5sum | cut -c1-32)"
if [ ! -f "$CACHE/initramfs.cpio" ] || [ "$(cat "$CACHE/stage.stamp" 2>/dev/null)" != "$STAGE_KEY" ] || [ $FORCE = 1 ]; then
  log "staging initramfs tree"
  S="$CACHE/stage"
  rm -rf "$S"; cp -a "$CACHE/rootfs" "$S"
  # trim: apt caches/lists, docs, manpages, locales (keeps image ~half size)
  rm -rf "$S"/var/cache/apt/archives/*.deb "$S"/var/cache/apt/*.bin "$S"/var/lib/apt/lists/* \
         "$S"/usr/share/doc/* "$S"/usr/share/man/* "$S"/usr/share/info/* "$S"/usr/share/locale/* \
         "$S"/var/log/* "$S"/debootstrap
  # kernel modules: copy the full tree, depmod it (the .deb ships no modules.dep),
  # keep MOD_DIRS minus MOD_EXCLUDE plus their dependencies (modules.dep lists
  # transitive deps, so one pass suffices), drop the rest, depmod again.
  # depmod is the guest's own (kmod may be absent on the host); Debian's System.map
  # is a placeholder, so no -F/-e symbol check is possible.
  M="$S/lib/modules/$KVER"; K="$CACHE/kernel/lib/modules/$KVER"
  rm -rf "$M"; mkdir -p "$S/lib/modules"; cp -a "$K" "$M"
  chroot "$S" /sbin/depmod -a "$KVER"
  (
    cd "$M"
    for d in "${MOD_DIRS[@]}"; do if [ -d "kernel/$d" ]; then find "kernel/$d" -name "*.ko*"; fi; done \
      | grep -v -E "^kernel/($(IFS='|'; echo "${MOD_EXCLUDE[*]}"))/" | sort -u > want.base
    awk -F': *' 'NR==FNR {want[$1]=1; next} ($1 in want) {print $1; n=split($2, d, " "); for (i=1;i<=n;i++) print d[i]}' \
      want.base modules.dep | sort -u > want.all
    find kernel -name '*.ko*' | sort > have
    comm -23 have want.all | xargs -r rm -f
    find kernel -type d -empty -delete
    echo "modules: kept $(wc -l < want.all) of $(wc -l < have) ($(( $(wc -l < want.all) - $(wc -l < want.base) )) pulled in as dependencies)" > "$CACHE/modules.log"
    rm -f want.base want.all have
  )
  log "$(cat "$CACHE/modules.log")"
  chroot "$S" /sbin/depmod -a "$KVER"
  mkdir -p "$S/boot"; cp "$CACHE/kernel/boot/config-$KVER" "$S/boot/"
  # guest configuration
  echo gvs-ipvsvm > "$S/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tgvs-ipvsvm\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$S/etc/hosts"
  : > "$S/etc/resolv.conf"
  mkdir -p "$S/guest" "$S/run/netns" "$S/etc/keepalived"
  install -m 0755 "$HERE/guest-init.sh" "$S/init"
  log "packing initramfs.cpio"
  (cd "$S" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
     | cpio --null -o -H newc --quiet --reproducible) > "$CACHE/initramfs.cpio.tmp"
  mv "$CACHE/initramfs.cpio.tmp" "$CACHE/initramfs.cpio"
  echo "$STAGE_KEY" > "$CACHE/stage.stamp"
  rm -rf "$S"
fi

log "done in $((SECONDS - T0))s: $CACHE/vmlinuz ($KVER), $CACHE/initramfs.cpio ($(du -h "$CACHE/initramfs.cpio" | cut -f1))"
