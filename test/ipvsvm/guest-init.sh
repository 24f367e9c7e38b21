#!/bin/sh
# PID 1 of the IPVS test VM (packed as /init into the initramfs by build.sh).
#
# Serial ports (mapped to files by run.sh):
#   ttyS0  kernel console (quiet)            -> console.log
#   ttyS1  stdout+stderr of the guest script -> streamed to run.sh's stdout
#   ttyS2  exit status of the guest script   -> status
# The guest script is /guest/cmd (a wrapper run.sh generates around /guest/script
# plus its arguments), supplied as a second cpio archive appended to the initrd.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /sys/fs/cgroup
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /run/netns /run/lock /var/log
ln -sf /proc/self/mounts /etc/mtab 2>/dev/null
hostname gvs-ipvsvm
ip link set lo up

exec </dev/null
OUT=/dev/ttyS1
STATUS=/dev/ttyS2
stty -F $OUT raw -echo 2>/dev/null
stty -F $STATUS raw -echo 2>/dev/null

rc=127
if [ -x /guest/cmd ]; then
    cd /guest
    # own session/process group, stdout+stderr to the output port
    /guest/cmd >$OUT 2>&1
    rc=$?
else
    echo "ipvs-vm init: no /guest/cmd (run the VM via run.sh SCRIPT)" >$OUT 2>&1
fi
echo "IPVS_VM_EXIT=$rc" >$STATUS
sync
echo o >/proc/sysrq-trigger   # immediate power off (qemu exits)
sleep 10
