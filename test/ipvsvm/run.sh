#!/bin/bash
# Boot the IPVS test VM, run SCRIPT (with ARGS) as root inside it, stream its
# stdout+stderr to our stdout, power off, and exit with SCRIPT's exit status.
#
#   test/ipvsvm/run.sh SCRIPT [ARGS...]
#
# Environment knobs:
#   IPVS_VM_ACCEL    auto (default) | tcg | kvm   -- kvm only with kvm_intel/kvm_amd loaded (a PVM /dev/kvm hangs a stock kernel)
#   IPVS_VM_MEM      guest RAM (default 2G)        IPVS_VM_SMP   vCPUs (default 2)
#   IPVS_VM_TIMEOUT  seconds before the VM is killed (default 600)  -> exit 124
#   IPVS_VM_SHARE    host directory copied into the guest as /guest/share (read-write copy)
#   IPVS_VM_APPEND   extra kernel command-line arguments
#   IPVS_VM_CONSOLE  1 = print the guest kernel console log to stderr afterwards
#   IPVS_VM_KEEP     1 = keep the per-run temp dir (console.log, output.log, status)
#   IPVS_VM_CACHE    build cache (default /tmp/gvs-ipvsvm)
# Exit status: SCRIPT's status; 124 timeout; 125 VM died without reporting a status.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${IPVS_VM_CACHE:-/tmp/gvs-ipvsvm}

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2
fi
SCRIPT=$1; shift
[ -f "$SCRIPT" ] || { echo "run.sh: no such script: $SCRIPT" >&2; exit 2; }

if [ ! -f "$CACHE/initramfs.cpio" ] || [ ! -f "$CACHE/vmlinuz" ]; then
  echo "run.sh: no VM image in $CACHE, running build.sh first (about 1 minute)" >&2
  "$HERE/build.sh" >&2
elif [ "$(id -u)" = 0 ]; then
  # no-op (~0.03 s) unless build.sh / guest-init.sh / the package list changed
  mkdir -p "$CACHE"
  "$HERE/build.sh" 2>"$CACHE/last-build.log" >&2 || { cat "$CACHE/last-build.log" >&2; exit 1; }
fi

ACCEL=${IPVS_VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
  # Only real VMX/SVM KVM can run a stock kernel. /dev/kvm backed by kvm_pvm (as on
  # this host) hangs right after the kernel decompressor, so fall back to TCG.
  if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
    ACCEL=kvm
  else
    ACCEL=tcg
  fi
fi
case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
  *) echo "run.sh: IPVS_VM_ACCEL must be auto, kvm or tcg" >&2; exit 2 ;;
esac

mkdir -p "$CACHE/runs"
RUN=$(mktemp -d "$CACHE/runs/run.XXXXXX")
QPID=
cleanup() {
  [ -n "$QPID" ] && kill "$QPID" 2>/dev/null || true
  if [ "${IPVS_VM_KEEP:-0}" = 1 ]; then echo "run.sh: kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Second initramfs archive with /guest/{script,cmd,share}; the kernel unpacks
# concatenated cpio archives in order, so this overlays the base image.
mkdir -p "$RUN/extra/guest"
install -m 0755 "$SCRIPT" "$RUN/extra/guest/script"
{ printf '#!/bin/sh\nexec /guest/script'; for a in "$@"; do printf " '%s'" "${a//\'/\'\\\'\'}"; done; echo; } \
  > "$RUN/extra/guest/cmd"
chmod 0755 "$RUN/extra/guest/cmd"
if [ -n "${IPVS_VM_SHARE:-}" ]; then cp -a "$IPVS_VM_SHARE" "$RUN/extra/guest/share"; fi
(cd "$RUN/extra" && find . -mindepth 1 | cpio -o -H newc --quiet --owner root:root) > "$RUN/extra.cpio"
cat "$CACHE/initramfs.cpio" "$RUN/extra.cpio" > "$RUN/initrd"

touch "$RUN/console.log" "$RUN/output.log" "$RUN/status"
timeout --kill-after=10 "${IPVS_VM_TIMEOUT:-600}" \
  qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
    "${ACCEL_ARGS[@]}" -m "${IPVS_VM_MEM:-2G}" -smp "${IPVS_VM_SMP:-2}" \
    -kernel "$CACHE/vmlinuz" -initrd "$RUN/initrd" \
    -append "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off ${IPVS_VM_APPEND:-}" \
    -serial "file:$RUN/console.log" -serial "file:$RUN/output.log" -serial "file:$RUN/status" \
    </dev/null >"$RUN/qemu.log" 2>&1 &
QPID=$!
tail -n +1 -f --pid=$QPID "$RUN/output.log"
qrc=0; wait $QPID || qrc=$?
QPID=

if [ "${IPVS_VM_CONSOLE:-0}" = 1 ]; then
  { echo "----- guest console -----"; cat "$RUN/console.log"; echo "----- qemu -----"; cat "$RUN/qemu.log"; } >&2
fi
st=$(grep -a -o 'IPVS_VM_EXIT=[0-9]*' "$RUN/status" | head -n1 | cut -d= -f2 || true)
if [ -n "$st" ]; then exit "$st"; fi
if [ $qrc = 124 ] || [ $qrc = 137 ]; then
  echo "run.sh: VM timed out after ${IPVS_VM_TIMEOUT:-600}s (accel=$ACCEL)" >&2; rc=124
else
  echo "run.sh: VM exited (qemu rc=$qrc, accel=$ACCEL) without reporting a status" >&2; rc=125
fi
echo "----- last guest console lines -----" >&2; tail -n 30 "$RUN/console.log" >&2
cat "$RUN/qemu.log" >&2
exit $rc
