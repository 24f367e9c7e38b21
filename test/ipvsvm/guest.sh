#!/bin/bash
# Runs inside the IPVS VM (test/ipvsvm/run.sh guest.sh, with IPVS_VM_SHARE
# holding the test binaries and bin/{gvsd,gvsadm,rs}): every *.test binary,
# verbose, and exits non-zero when one fails.
set -u
cd /guest/share
export GVS_IPVS_VM=1 GVS_BIN=/guest/share/bin PATH=/guest/share/bin:$PATH
echo "GUEST kernel $(uname -r), $(ipvsadm --version 2>&1), $(keepalived --version 2>&1 | head -n1)"
modprobe ip_vs || { echo "GUEST modprobe ip_vs failed"; exit 1; }
rc=0
for t in *.test; do
	echo "=== $t"
	start=$SECONDS
	if ./"$t" -test.v -test.count=1 -test.timeout=10m; then
		echo "GUEST $t: ok ($((SECONDS - start)) s)"
	else
		echo "GUEST $t: FAIL ($((SECONDS - start)) s)"
		rc=1
	fi
done
exit $rc
