package ipvsadm

import (
	"fmt"
	"io"
	"strings"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// WriteVersion writes the -v line. ipvsadm 1.31 is the version gvsadm
// follows; scripts that parse "v1.31" keep working.
func WriteVersion(w io.Writer, prog string) {
	fmt.Fprintf(w, "%s v1.31 (gvsadm: ipvsadm 1.31 compatible, IPVS v1.2.1 as served by gvsd)\n", prog)
}

// WriteHelp writes the -h text.
func WriteHelp(w io.Writer, prog string) {
	WriteVersion(w, prog)
	text := `Usage:
  P -A|-E SERVICE [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [--pe ENGINE] [-b FLAGS]
        [--proxy-protocol 1|2] [--laddr ADDR[,ADDR...]]
  P -D SERVICE
  P -C
  P -R < RULES
  P -S [-n]
  P -a|-e SERVICE -r SERVER [-g|-i|-m|--fullnat] [-w WEIGHT] [-x UPPER] [-y LOWER] [TUNNEL]
  P -d SERVICE -r SERVER
  P -L|-l [SERVICE] [LIST-OPTIONS]
  P -Z [SERVICE]
  P --set TCP TCPFIN UDP
  P --start-daemon master|backup [DAEMON-OPTIONS]
  P --stop-daemon master|backup
  P -h

gvsadm is ipvsadm for gvsd: the same commands, options and output, sent to
the gvsd daemon over its admin socket ($GVS_SOCKET, default ` + "/run/gvs/gvsd.sock" + `).

Commands (long or short form):
  --add-service     -A   add a virtual service
  --edit-service    -E   change a virtual service (options not given are reset)
  --delete-service  -D   delete a virtual service and its real servers
  --clear           -C   delete every virtual service
  --restore         -R   read commands, one per line, from standard input
  --save            -S   write the table as commands -R reads back
  --add-server      -a   add a real server to a service
  --edit-server     -e   change a real server
  --delete-server   -d   delete a real server
  --list            -L, -l   list the table (the default with no arguments)
  --zero            -Z   zero the counters of one service, or of all
  --set TCP TCPFIN UDP   set the connection timeouts in seconds (0: unchanged)
  --start-daemon STATE   start the connection sync daemon: master multicasts
                         this director's connections, backup installs them
                         (xdp engine; DR, TUN and NAT connections)
  --stop-daemon STATE    stop it
  --help            -h   this text
  --version         -v   the version

SERVICE is one of:
  --tcp-service  -t ADDR:PORT    a TCP service
  --udp-service  -u ADDR:PORT    a UDP service
  --sctp-service    ADDR:PORT    an SCTP service
  --fwmark-service -f MARK       packets with firewall mark MARK (> 0); add -6 for IPv6
  ADDR is a numeric IPv4 address, [IPv6] in brackets, or localhost (gvsadm
  does not resolve host names); PORT is a number or a service name (http, https,
  ssh, smtp, domain, ...).

Service options:
  --scheduler    -s SCHED     one of SCHEDS; default wlc
  --persistent   -p [TIMEOUT] send a client to the same real server for TIMEOUT
                              seconds (default 360)
  --netmask      -M NETMASK   persistence granularity: an IPv4 mask such as
                              255.255.255.0, or an IPv6 prefix length
  --pe           ENGINE       persistence engine: sip
  --sched-flags  -b FLAGS     comma-separated: sh-fallback, sh-port, mh-fallback,
                              mh-port, flag-1, flag-2, flag-3
  --ops          -o           one-packet scheduling (UDP)
  --ipv6         -6           the firewall-mark service is IPv6 (after -f)
  --proxy-protocol 1|2        (GVS) send a PROXY protocol v1 or v2 header to the
                              real servers (proxy engine)
  --laddr ADDR[,ADDR...]      (GVS) local addresses FullNAT uses as sources

Real server options:
  --real-server  -r ADDR[:PORT]  the real server; PORT defaults to the service's
  --gatewaying   -g           direct routing (the default)
  --ipip         -i           tunneling
  --masquerading -m           NAT
  --fullnat                   (GVS) FullNAT: source and destination rewritten
  --weight       -w WEIGHT    capacity, 0 takes no new connections; default 1
  --u-threshold  -x UPPER     stop sending new connections at UPPER connections
  --l-threshold  -y LOWER     resume below LOWER connections
  --tun-type     TYPE         ipip (default), gue or gre, with -i
  --tun-port     PORT         the GUE destination port (required for gue)
  --tun-nocsum, --tun-csum, --tun-remcsum   tunnel checksum (gue; gre: the first two)

Daemon options:
  --mcast-interface IFACE     the interface of the sync messages; default eth0
  --syncid ID                 0-255; a backup with 0 accepts every master
  --sync-maxlen LEN           largest message (UDP payload); default from the MTU
  --mcast-group ADDR          default 224.0.0.81 (IPv6: give a group)
  --mcast-port PORT           default 8848
  --mcast-ttl TTL             default 1

List options:
  --numeric      -n           numeric addresses and ports
  --connection   -c           the connection table
  --stats                     packet and byte counters
  --rate                      rates per second
  --exact                     exact numbers, not K/M/G
  --thresholds                the -x and -y thresholds
  --persistent-conn           persistent connection counts
  --tun-info                  tunnel settings
  --timeout                   the timeouts (tcp tcpfin udp)
  --daemon                    the running sync daemons
  --nosort                    in gvsd's order, not sorted
  --sort                      sorted (the default)
`
	text = strings.ReplaceAll(text, "  P ", "  "+prog+" ")
	text = strings.ReplaceAll(text, "SCHEDS", strings.Join(ipvs.Schedulers, "|"))
	io.WriteString(w, text)
}
