package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
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
	cmdTimeout   = 30 * time.Second
)

var topoSeq atomic.Uint32

// topo is one instance of the topology.
type topo struct {
	dir, rs string // namespace names
	made    []string
}

// newTopo builds the namespaces with the real servers' addresses; on
// error, what was made is removed.
func newTopo(ctx context.Context, rsAddrs []string) (t *topo, err error) {
	id := fmt.Sprintf("%s-%d-%d", namespacePfx, os.Getpid(), topoSeq.Add(1))
	t = &topo{dir: id + "-dir", rs: id + "-rs"}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	for _, ns := range []string{t.dir, t.rs} {
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		t.made = append(t.made, ns)
		if err := run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	if err := run(ctx, "ip", "link", "add", "name", "eth0", "netns", t.dir, "type", "veth", "peer", "name", "eth0", "netns", t.rs); err != nil {
		return nil, err
	}
	// One `ip -batch` per namespace: 64 addresses in one process.
	var b strings.Builder
	for _, a := range rsAddrs {
		fmt.Fprintf(&b, "addr add %s/24 dev eth0\n", a)
	}
	b.WriteString("link set eth0 up\n")
	if err := runStdin(ctx, b.String(), "ip", "-n", t.rs, "-batch", "-"); err != nil {
		return nil, err
	}
	if err := runStdin(ctx, "addr add "+directorAddr+"/24 dev eth0\nlink set eth0 up\n", "ip", "-n", t.dir, "-batch", "-"); err != nil {
		return nil, err
	}
	return t, nil
}

// close deletes the namespaces, and with them the veth pair and the XDP
// program attached to it.
func (t *topo) close() {
	for _, ns := range t.made {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		}
		cancel()
	}
	t.made = nil
}

func run(ctx context.Context, name string, args ...string) error {
	return runStdin(ctx, "", name, args...)
}

func runStdin(ctx context.Context, stdin, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
