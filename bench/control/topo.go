package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/gvs-lb/gvs/bench/internal/topo"
)

// The xdp engine's topology, two namespaces and one veth pair:
//
//	director eth0 198.18.1.1/24 ── eth0 198.18.1.10 … 198.18.1.73  rs
//
// gvsd runs in the director namespace attached to its eth0. Every real
// server address lives on the rs namespace's eth0, so the kernel there
// answers the director's ARP requests for each of them. No packet is
// forwarded: the benchmark measures the control plane, the table and the
// next-hop resolution that go with it.
const (
	directorAddr = "198.18.1.1"
	namespacePfx = "gvsc"
	cmdTimeout   = topo.CmdTimeout
)

var topoSeq atomic.Uint32

// xdpTopo is one instance of the topology.
type xdpTopo struct {
	dir, rs string // namespace names
	ns      topo.Namespaces
}

// newTopo builds the namespaces with the real servers' addresses; on
// error, what was made is removed.
func newTopo(ctx context.Context, rsAddrs []string) (t *xdpTopo, err error) {
	topo.RemoveStale(ctx, namespacePfx)
	id := fmt.Sprintf("%s-%d-%d", namespacePfx, os.Getpid(), topoSeq.Add(1))
	t = &xdpTopo{dir: id + "-dir", rs: id + "-rs"}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, ns := range []string{t.dir, t.rs} {
		if err := t.ns.Add(ctx, ns); err != nil {
			return nil, err
		}
	}
	if err := topo.Veth(ctx, t.dir, "eth0", t.rs, "eth0", 0); err != nil {
		return nil, err
	}
	// One `ip -batch` per namespace: 64 addresses in one process.
	var b strings.Builder
	for _, a := range rsAddrs {
		fmt.Fprintf(&b, "addr add %s/24 dev eth0\n", a)
	}
	b.WriteString("link set eth0 up\n")
	if err := topo.Batch(ctx, t.rs, b.String()); err != nil {
		return nil, err
	}
	if err := topo.Batch(ctx, t.dir, "addr add "+directorAddr+"/24 dev eth0\nlink set eth0 up\n"); err != nil {
		return nil, err
	}
	return t, nil
}

// close deletes the namespaces, and with them the veth pair and the XDP
// program attached to it.
func (t *xdpTopo) close() { t.ns.Close() }
