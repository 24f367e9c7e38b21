package main

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/cloudflare/ipvs"
)

// rsPool is how many distinct real-server addresses the services share:
// service i uses pool entries 4i … 4i+3 (mod rsPool), so real servers are
// shared by many services, as on a real director, and each has its own
// next hop to resolve on the xdp engine.
const rsPool = 64

// layout is where one engine's services and real servers live.
type layout struct {
	engine string
	port   int    // every service's and real server's port
	method string // gvsadm's forwarding flag
	lvs    string // keepalived.conf lvs_method
	vipNet string // first two octets of the VIPs
	rsNet  string // first three octets of the real servers
	rsBase int    // last octet of the first real server
}

var layouts = map[string]layout{
	// Loopback: the proxy binds every VIP (127.0.0.0/8 is local) on a port
	// above 1024, so no root is needed. Nothing listens at the real
	// servers; no traffic is sent. The port is replaced by a free one for
	// each row.
	"proxy": {engine: "proxy", port: 18080, method: "-m", lvs: "NAT", vipNet: "127.77", rsNet: "127.78.0", rsBase: 1},
	// The namespace topology of topo.go; DR, the xdp engine's plainest
	// method (next hop = the real server's MAC, which needs its ARP reply).
	"xdp": {engine: "xdp", port: 80, method: "-g", lvs: "DR", vipNet: "198.19", rsNet: "198.18.1", rsBase: 10},
	// The kernel's table in the IPVS VM: the xdp engine's addresses, NAT
	// (-m), no interface or traffic needed.
	"ipvs": {engine: "ipvs", port: 80, method: "-m", lvs: "NAT", vipNet: "198.19", rsNet: "198.18.1", rsBase: 10},
}

// vip is service i's address and port (i < 62,500).
func (l layout) vip(i int) string { return fmt.Sprintf("%s:%d", l.vipAddr(i), l.port) }

func (l layout) vipAddr(i int) string { return fmt.Sprintf("%s.%d.%d", l.vipNet, i/250, 1+i%250) }

func (l layout) rsAddr(j int) string { return fmt.Sprintf("%s.%d", l.rsNet, l.rsBase+j%rsPool) }

// rs is the k-th real server of service i.
func (l layout) rs(i, k int) string { return fmt.Sprintf("%s:%d", l.rsAddr(4*i+k), l.port) }

func (l layout) rsAddrs() []string {
	var a []string
	for j := range rsPool {
		a = append(a, l.rsAddr(j))
	}
	return a
}

// rules is the `gvsadm -R` input for services first … last-1, each with
// servers real servers of weight 1.
func (l layout) rules(sched string, first, last, servers int) []byte {
	var b bytes.Buffer
	for i := first; i < last; i++ {
		fmt.Fprintf(&b, "-A -t %s -s %s\n", l.vip(i), sched)
		for k := range servers {
			fmt.Fprintf(&b, "-a -t %s -r %s %s -w 1\n", l.vip(i), l.rs(i, k), l.method)
		}
	}
	return b.Bytes()
}

// keepalivedConf is service 0: its first real server has a MISC_CHECK that
// passes while flagFile exists, checked every 100 ms; the others have no
// checker and stay up.
func (l layout) keepalivedConf(sched string, servers int, flagFile string) []byte {
	var b bytes.Buffer
	addr, port := l.vipAddr(0), l.port
	fmt.Fprintf(&b, "virtual_server %s %d {\n\tdelay_loop 0.1\n\tlvs_sched %s\n\tlvs_method %s\n\tprotocol TCP\n", addr, port, sched, l.lvs)
	for k := range servers {
		fmt.Fprintf(&b, "\treal_server %s %d {\n\t\tweight 1\n", l.rsAddr(k), port)
		if k == 0 {
			fmt.Fprintf(&b, "\t\tMISC_CHECK {\n\t\t\tmisc_path \"/usr/bin/test -e %s\"\n\t\t\tmisc_timeout 5\n\t\t}\n", flagFile)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// fullConf is keepalived.conf of services 0 … services-1, each with
// servers real servers of weight 1 and no checker, so that every real
// server is up at once; the second real server of service heavier (-1:
// none) has weight 2, the one edit a reload is timed with.
func (l layout) fullConf(sched string, services, servers, heavier int) []byte {
	var b bytes.Buffer
	for i := range services {
		fmt.Fprintf(&b, "virtual_server %s %d {\n\tlvs_sched %s\n\tlvs_method %s\n\tprotocol TCP\n", l.vipAddr(i), l.port, sched, l.lvs)
		for k := range servers {
			w := 1
			if i == heavier && k == 1 {
				w = 2
			}
			fmt.Fprintf(&b, "\treal_server %s %d {\n\t\tweight %d\n\t}\n", l.rsAddr(4*i+k), l.port, w)
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

// kernelService is service i as github.com/cloudflare/ipvs names it.
func (l layout) kernelService(i int) ipvs.Service {
	return ipvs.Service{Address: netip.MustParseAddr(l.vipAddr(i)), Port: uint16(l.port), Family: ipvs.INET, Protocol: ipvs.TCP}
}

// kernelRS is the k-th real server of service i.
func (l layout) kernelRS(i, k int) netip.AddrPort {
	return netip.MustParseAddrPort(l.rs(i, k))
}
