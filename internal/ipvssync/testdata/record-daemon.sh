#!/bin/bash
modprobe ip_vs 2>/dev/null
ip link add eth0 type dummy; ip link set eth0 up; ip addr add 198.18.0.1/24 dev eth0
ip link add eth1 type dummy; ip link set eth1 mtu 9000 up; ip addr add 198.18.1.1/24 dev eth1
c() { echo "=== $*"; ipvsadm "$@"; echo "--- rc=$?"; }
c -L --daemon
c --start-daemon master
c -L --daemon
c --start-daemon master --mcast-interface eth1
c --stop-daemon master
c --stop-daemon master
c --start-daemon master --mcast-interface eth1 --syncid 7
c -L --daemon
c --start-daemon backup --mcast-interface eth0 --syncid 0
c -L --daemon
c -Ln --daemon
c --stop-daemon backup
c --stop-daemon master
c --start-daemon backup --mcast-interface eth1 --syncid 3 --sync-maxlen 1400 --mcast-group 224.0.0.99 --mcast-port 9000 --mcast-ttl 3
c -L --daemon
c --stop-daemon backup
c --start-daemon master --mcast-interface eth0 --mcast-group ff02::1:2
c -L --daemon
c --stop-daemon master
c --start-daemon master --mcast-interface nosuch0
c --start-daemon backup --mcast-interface lo --syncid 5 --sync-maxlen 100
c -L --daemon
c --stop-daemon backup
c --start-daemon foo
c --stop-daemon
c --start-daemon master --syncid 256
c -L --daemon -n
echo DONE
