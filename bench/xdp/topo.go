package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
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
	cmdTimeout   = 30 * time.Second
	namespacePfx = "gvsb"
)

// topo is one instance of the topology.
type topo struct {
	cli, dir, rs string // namespace names

	cliIfindex int              // client eth0
	dirMAC0    net.HardwareAddr // director eth0
	dirMAC1    net.HardwareAddr // director eth1
	dirIf1     int              // director eth1
	rsMAC      net.HardwareAddr // real server eth0
	rsIfindex  int

	made []string
}

// newTopo builds the namespaces; queues is the number of veth queues.
// On error, what was made is removed.
func newTopo(ctx context.Context, id string, queues int) (t *topo, err error) {
	t = &topo{
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
		if err := run(ctx, "ip", "netns", "add", ns); err != nil {
			return nil, err
		}
		t.made = append(t.made, ns)
		if err := t.in(ctx, ns, "ip", "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	q := fmt.Sprint(queues)
	veth := func(a, aIf, b, bIf string) error {
		return run(ctx, "ip", "link", "add", "name", aIf, "netns", a, "numtxqueues", q, "numrxqueues", q,
			"type", "veth", "peer", "name", bIf, "netns", b, "numtxqueues", q, "numrxqueues", q)
	}
	if err := veth(t.cli, "eth0", t.dir, "eth0"); err != nil {
		return nil, err
	}
	if err := veth(t.dir, "eth1", t.rs, "eth0"); err != nil {
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
		if err := t.in(ctx, s[0], s[1], s[2:]...); err != nil {
			return nil, err
		}
	}
	var l linkInfo
	if l, err = t.link(ctx, t.cli, "eth0"); err != nil {
		return nil, err
	}
	t.cliIfindex = l.index
	if l, err = t.link(ctx, t.dir, "eth0"); err != nil {
		return nil, err
	}
	t.dirMAC0 = l.mac
	if l, err = t.link(ctx, t.dir, "eth1"); err != nil {
		return nil, err
	}
	t.dirMAC1, t.dirIf1 = l.mac, l.index
	if l, err = t.link(ctx, t.rs, "eth0"); err != nil {
		return nil, err
	}
	t.rsMAC, t.rsIfindex = l.mac, l.index
	// A permanent neighbour: no ARP while the real server drops IP.
	if err := t.in(ctx, t.dir, "ip", "neigh", "replace", rsAddr, "lladdr", t.rsMAC.String(), "dev", "eth1", "nud", "permanent"); err != nil {
		return nil, err
	}
	return t, nil
}

// close deletes the namespaces, and with them every interface and
// program attached inside.
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

func (t *topo) in(ctx context.Context, ns, name string, args ...string) error {
	return run(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

type linkInfo struct {
	index int
	mac   net.HardwareAddr
}

func (t *topo) link(ctx context.Context, ns, dev string) (linkInfo, error) {
	out, err := output(ctx, "ip", "-n", ns, "-j", "link", "show", "dev", dev)
	if err != nil {
		return linkInfo{}, err
	}
	var ls []struct {
		Ifindex int    `json:"ifindex"`
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		return linkInfo{}, fmt.Errorf("reading %s in %s from ip -j: %v (%s)", dev, ns, err, out)
	}
	mac, err := net.ParseMAC(ls[0].Address)
	if err != nil {
		return linkInfo{}, fmt.Errorf("%s in %s: %w", dev, ns, err)
	}
	return linkInfo{index: ls[0].Ifindex, mac: mac}, nil
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
