package main

import (
	"context"
	"fmt"
	"net"

	"github.com/gvs-lb/gvs/bench/internal/topo"
)

// The benchmark topology, three namespaces and two veth pairs:
//
//	client eth0 198.18.0.100 ── eth0 198.18.0.1  director  eth1 198.18.1.1 ── eth0 198.18.1.11 rs
//
// Client flows come from 198.19.0.0/16 to the VIP 198.18.0.200 port 80.
// The director forwards them out of eth1 to the real server, where
// xdp_sink counts and drops them. Only addresses of 198.18.0.0/15 are
// used, inside namespaces made here.
const (
	clientAddr   = "198.18.0.100"
	director0    = "198.18.0.1"
	director1    = "198.18.1.1"
	rsAddr       = "198.18.1.11"
	vipAddr      = "198.18.0.200"
	vipPort      = 80
	flowBase     = "198.19.0.0"
	namespacePfx = "gvsb"
)

// xdpTopo is one instance of the topology.
type xdpTopo struct {
	cli, dir, rs string // namespace names

	cliIfindex int              // client eth0
	dirMAC0    net.HardwareAddr // director eth0
	dirMAC1    net.HardwareAddr // director eth1
	dirIf1     int              // director eth1
	rsMAC      net.HardwareAddr // real server eth0
	rsIfindex  int

	ns topo.Namespaces
}

// newTopo builds the namespaces; queues is the number of veth queues.
// On error, what was made is removed.
func newTopo(ctx context.Context, id string, queues int) (t *xdpTopo, err error) {
	topo.RemoveStale(ctx, namespacePfx)
	t = &xdpTopo{
		cli: fmt.Sprintf("%s-%s-cli", namespacePfx, id),
		dir: fmt.Sprintf("%s-%s-dir", namespacePfx, id),
		rs:  fmt.Sprintf("%s-%s-rs", namespacePfx, id),
	}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, ns := range []string{t.cli, t.dir, t.rs} {
		if err := t.ns.Add(ctx, ns); err != nil {
			return nil, err
		}
	}
	if err := topo.Veth(ctx, t.cli, "eth0", t.dir, "eth0", queues); err != nil {
		return nil, err
	}
	if err := topo.Veth(ctx, t.dir, "eth1", t.rs, "eth0", queues); err != nil {
		return nil, err
	}
	steps := [][]string{
		{t.cli, "ip", "addr", "add", clientAddr + "/24", "dev", "eth0"},
		{t.cli, "ip", "link", "set", "eth0", "up"},
		{t.dir, "ip", "addr", "add", director0 + "/24", "dev", "eth0"},
		{t.dir, "ip", "addr", "add", director1 + "/24", "dev", "eth1"},
		{t.dir, "ip", "link", "set", "eth0", "up"},
		{t.dir, "ip", "link", "set", "eth1", "up"},
		{t.dir, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
			"net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0"},
		{t.rs, "ip", "addr", "add", rsAddr + "/24", "dev", "eth0"},
		{t.rs, "ip", "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := topo.In(ctx, s[0], s[1], s[2:]...); err != nil {
			return nil, err
		}
	}
	var l topo.Link
	if l, err = topo.LinkOf(ctx, t.cli, "eth0"); err != nil {
		return nil, err
	}
	t.cliIfindex = l.Index
	if l, err = topo.LinkOf(ctx, t.dir, "eth0"); err != nil {
		return nil, err
	}
	t.dirMAC0 = l.MAC
	if l, err = topo.LinkOf(ctx, t.dir, "eth1"); err != nil {
		return nil, err
	}
	t.dirMAC1, t.dirIf1 = l.MAC, l.Index
	if l, err = topo.LinkOf(ctx, t.rs, "eth0"); err != nil {
		return nil, err
	}
	t.rsMAC, t.rsIfindex = l.MAC, l.Index
	// A permanent neighbour: no ARP while the real server drops IP.
	if err := topo.In(ctx, t.dir, "ip", "neigh", "replace", rsAddr, "lladdr", t.rsMAC.String(), "dev", "eth1", "nud", "permanent"); err != nil {
		return nil, err
	}
	return t, nil
}

// close deletes the namespaces, and with them every interface and
// program attached inside.
func (t *xdpTopo) close() { t.ns.Close() }
