// Package enginetest is the conformance suite of the engine contract
// (package engine): black-box scenarios that every engine must pass, run
// through real connections from a client to real servers. An engine's
// tests call Run with a function that sets up the engine and the network
// around it; a new engine gets the scenarios by writing that function.
package enginetest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Engine is the part of engine.Engine the scenarios drive; it may be an
// engine in another process (behind a control socket in a namespace).
type Engine interface {
	Apply(batch []ipvs.Command) error
	Status() []ipvs.ServiceStatus
	Zero(key *ipvs.ServiceKey)
}

// Setup is an engine serving nothing yet, real servers and a client.
type Setup struct {
	Engine Engine
	// Services are virtual services the engine can serve (scheduler and
	// flags are set by the scenarios), at least two.
	Services []ipvs.ServiceKey
	// Dests are at least two real servers for any of Services, with the
	// forwarding method the engine uses. Each answers a TCP connection
	// with its name on a line ("RS1\n") and then echoes what it reads.
	Dests []ipvs.Dest
	// Names are the real servers' names, as Dests.
	Names []string
	// Dial connects a client to a virtual service, giving up after a few
	// seconds.
	Dial func(ap netip.AddrPort) (net.Conn, error)
	// RemovedServerDropsConnections marks an engine whose deleted real
	// server's established connections stop (the kernel's IPVS drops
	// their packets, as keepalived users know it): RemovedServerKeeps-
	// Connections then checks only that it gets no new ones.
	RemovedServerDropsConnections bool
}

// Run runs every scenario as a subtest, each on a fresh setup.
func Run(t *testing.T, setup func(t *testing.T) *Setup) {
	for _, sc := range []struct {
		name string
		run  func(t *testing.T, s *Setup)
	}{
		{"AddEditRemove", addEditRemove},
		{"WeightZeroDrains", weightZeroDrains},
		{"RemovedServerKeepsConnections", removedServerKeepsConnections},
		{"RefusedBatchChangesNothing", refusedBatchChangesNothing},
		{"RecreatedServiceIsNew", recreatedServiceIsNew},
		{"Counters", counters},
		{"NoServerRefuses", noServerRefuses},
	} {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, setup(t)) })
	}
}

func svc(k ipvs.ServiceKey, sched string) *ipvs.Service {
	s := &ipvs.Service{ServiceKey: k, Scheduler: sched, Netmask: 32, Flags: ipvs.FlagHashed}
	if k.IPv6() {
		s.Netmask = 128
	}
	return s
}

func addService(k ipvs.ServiceKey, sched string) ipvs.Command {
	return ipvs.Command{Op: ipvs.OpAddService, Service: svc(k, sched)}
}

func destOp(op ipvs.Op, k ipvs.ServiceKey, d ipvs.Dest, weight int32) ipvs.Command {
	d.Weight = weight
	return ipvs.Command{Op: op, Service: &ipvs.Service{ServiceKey: k}, Dest: &d}
}

func apply(t *testing.T, s *Setup, batch ...ipvs.Command) {
	t.Helper()
	if err := s.Engine.Apply(batch); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// conn is a client connection through the engine.
type conn struct {
	c      net.Conn
	r      *bufio.Reader
	server string
}

func dial(t *testing.T, s *Setup, k ipvs.ServiceKey) (*conn, error) {
	t.Helper()
	c, err := s.Dial(k.AddrPort())
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the real server's name: %w", err)
	}
	return &conn{c: c, r: r, server: strings.TrimSpace(name)}, nil
}

func mustDial(t *testing.T, s *Setup, k ipvs.ServiceKey) *conn {
	t.Helper()
	c, err := dial(t, s, k)
	if err != nil {
		t.Fatalf("connecting to %s: %v", k, err)
	}
	t.Cleanup(func() { c.c.Close() })
	return c
}

// echo checks that the connection still carries data both ways.
func (c *conn) echo(t *testing.T) {
	t.Helper()
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write([]byte("ping\n")); err != nil {
		t.Fatalf("connection to %s: writing: %v", c.server, err)
	}
	if got, err := c.r.ReadString('\n'); err != nil || got != "ping\n" {
		t.Fatalf("connection to %s: echo %q, %v", c.server, got, err)
	}
}

// servers connects n times, closing each connection, and returns the
// real servers' names in order.
func servers(t *testing.T, s *Setup, k ipvs.ServiceKey, n int) []string {
	t.Helper()
	var out []string
	for range n {
		c, err := dial(t, s, k)
		if err != nil {
			t.Fatalf("connecting to %s: %v", k, err)
		}
		out = append(out, c.server)
		c.c.Close()
	}
	return out
}

// refused checks that nothing serves k.
func refused(t *testing.T, s *Setup, k ipvs.ServiceKey) {
	t.Helper()
	if c, err := dial(t, s, k); err == nil {
		c.c.Close()
		t.Fatalf("%s answered from %s, want no service", k, c.server)
	}
}

// refusedAtConnect checks that a connect() to k fails with "connection
// refused", as kernel IPVS answers a connection no real server can take:
// not accepted and then reset, not dropped to time out.
func refusedAtConnect(t *testing.T, s *Setup, k ipvs.ServiceKey) {
	t.Helper()
	c, err := dial(t, s, k)
	if err == nil {
		c.c.Close()
		t.Fatalf("%s answered from %s, want the connect refused", k, c.server)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: %v, want the connect refused (ECONNREFUSED)", k, err)
	}
}

// listing is the engine's status without counters: services and their
// real servers (address and weight), in order.
func listing(s *Setup) string {
	var b strings.Builder
	for _, st := range s.Engine.Status() {
		fmt.Fprintf(&b, "%s %s:", st.ServiceKey, st.Scheduler)
		for _, d := range st.Dests {
			fmt.Fprintf(&b, " %s/%d", d.AddrPort(), d.Weight)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func wantListing(t *testing.T, s *Setup, want string) {
	t.Helper()
	if got := listing(s); got != want {
		t.Fatalf("engine lists\n%s\nwant\n%s", got, want)
	}
}

func line(k ipvs.ServiceKey, sched string, ds ...string) string {
	return fmt.Sprintf("%s %s: %s\n", k, sched, strings.Join(ds, " "))
}

func dl(d ipvs.Dest, w int32) string { return fmt.Sprintf("%s/%d", d.AddrPort(), w) }

func addEditRemove(t *testing.T, s *Setup) {
	k := s.Services[0]
	d1, d2 := s.Dests[0], s.Dests[1]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, d1, 1), destOp(ipvs.OpAddDest, k, d2, 1))
	wantListing(t, s, line(k, "rr", dl(d2, 1), dl(d1, 1)))
	got := servers(t, s, k, 4)
	slices.Sort(got)
	if want := []string{s.Names[0], s.Names[0], s.Names[1], s.Names[1]}; !slices.Equal(got, want) {
		t.Fatalf("rr over two real servers chose %v, want each twice", got)
	}

	edited := svc(k, "wrr")
	apply(t, s, ipvs.Command{Op: ipvs.OpEditService, Service: edited}, destOp(ipvs.OpEditDest, k, d1, 3))
	wantListing(t, s, line(k, "wrr", dl(d2, 1), dl(d1, 3)))
	n1 := 0
	for _, name := range servers(t, s, k, 8) {
		if name == s.Names[0] {
			n1++
		}
	}
	if n1 != 6 {
		t.Fatalf("wrr 3:1 sent %d of 8 connections to the weight 3 server, want 6", n1)
	}

	apply(t, s, destOp(ipvs.OpDelDest, k, d2, 0))
	wantListing(t, s, line(k, "wrr", dl(d1, 3)))
	for _, name := range servers(t, s, k, 3) {
		if name != s.Names[0] {
			t.Fatalf("a deleted real server (%s) got a new connection", name)
		}
	}

	apply(t, s, ipvs.Command{Op: ipvs.OpDelService, Service: &ipvs.Service{ServiceKey: k}})
	wantListing(t, s, "")
	refused(t, s, k)
}

func weightZeroDrains(t *testing.T, s *Setup) {
	k := s.Services[0]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, s.Dests[0], 1), destOp(ipvs.OpAddDest, k, s.Dests[1], 1))
	held := mustDial(t, s, k)
	i := slices.Index(s.Names, held.server)
	apply(t, s, destOp(ipvs.OpEditDest, k, s.Dests[i], 0))
	for _, name := range servers(t, s, k, 4) {
		if name == held.server {
			t.Fatalf("%s has weight 0 and got a new connection", name)
		}
	}
	held.echo(t)
}

func removedServerKeepsConnections(t *testing.T, s *Setup) {
	k := s.Services[0]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, s.Dests[0], 1), destOp(ipvs.OpAddDest, k, s.Dests[1], 1))
	held := mustDial(t, s, k)
	i := slices.Index(s.Names, held.server)
	other := s.Dests[1-i]
	apply(t, s, destOp(ipvs.OpDelDest, k, s.Dests[i], 0))
	wantListing(t, s, line(k, "rr", dl(other, 1)))
	for _, name := range servers(t, s, k, 3) {
		if name != s.Names[1-i] {
			t.Fatalf("the deleted real server %s got a new connection", name)
		}
	}
	if s.RemovedServerDropsConnections {
		return
	}
	held.echo(t)
}

func refusedBatchChangesNothing(t *testing.T, s *Setup) {
	k, k2 := s.Services[0], s.Services[1]
	d1, d2 := s.Dests[0], s.Dests[1]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, d1, 1))
	before := listing(s)
	for _, batch := range [][]ipvs.Command{
		// A change that does not fit what the engine serves, last.
		{destOp(ipvs.OpAddDest, k, d2, 1), addService(k2, "rr"), destOp(ipvs.OpAddDest, k2, d1, 1),
			{Op: ipvs.OpEditService, Service: svc(ipvs.ServiceKey{Proto: k.Proto, Addr: k.Addr, Port: 9}, "rr")}},
		{destOp(ipvs.OpEditDest, k, d1, 5), destOp(ipvs.OpAddDest, k, d1, 1)},
		{ipvs.Command{Op: ipvs.OpDelService, Service: &ipvs.Service{ServiceKey: k}}, addService(k, "rr"), addService(k, "rr")},
		// A scheduler no engine has.
		{destOp(ipvs.OpAddDest, k, d2, 1), addService(k2, "no-such-scheduler")},
	} {
		if err := s.Engine.Apply(batch); err == nil {
			t.Fatalf("Apply(%v) took a batch it should refuse", batch)
		}
		wantListing(t, s, before)
	}
	for _, name := range servers(t, s, k, 3) {
		if name != s.Names[0] {
			t.Fatalf("after refused batches, %s got a connection", name)
		}
	}
	refused(t, s, k2)
}

func recreatedServiceIsNew(t *testing.T, s *Setup) {
	k, k2 := s.Services[0], s.Services[1]
	d1, d2 := s.Dests[0], s.Dests[1]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, d1, 1), addService(k2, "rr"), destOp(ipvs.OpAddDest, k2, d1, 1))
	servers(t, s, k, 2)
	// Deleted and added again in one batch: listed last, with what the
	// batch gave it and no counters.
	apply(t, s, ipvs.Command{Op: ipvs.OpDelService, Service: &ipvs.Service{ServiceKey: k}}, addService(k, "rr"), destOp(ipvs.OpAddDest, k, d2, 1))
	wantListing(t, s, line(k2, "rr", dl(d1, 1))+line(k, "rr", dl(d2, 1)))
	for _, st := range s.Engine.Status() {
		if st.ServiceKey == k && st.Stats.Conns != 0 {
			t.Fatalf("the recreated service counts %d connections of the old one", st.Stats.Conns)
		}
	}
	for _, name := range servers(t, s, k, 2) {
		if name != s.Names[1] {
			t.Fatalf("the recreated service sent a connection to %s", name)
		}
	}
}

// noServerRefuses: a service without a real server that can take a new
// connection refuses it at connect, whether it has none or all are at
// weight 0; one that can serves the next connection, and a connection
// established before the pause goes on.
func noServerRefuses(t *testing.T, s *Setup) {
	k := s.Services[0]
	d1, d2 := s.Dests[0], s.Dests[1]
	apply(t, s, addService(k, "rr"))
	refusedAtConnect(t, s, k)
	apply(t, s, destOp(ipvs.OpAddDest, k, d1, 1), destOp(ipvs.OpAddDest, k, d2, 1))
	held := mustDial(t, s, k)
	apply(t, s, destOp(ipvs.OpEditDest, k, d1, 0), destOp(ipvs.OpEditDest, k, d2, 0))
	refusedAtConnect(t, s, k)
	held.echo(t)
	apply(t, s, destOp(ipvs.OpEditDest, k, d2, 1))
	for _, name := range servers(t, s, k, 2) {
		if name != s.Names[1] {
			t.Fatalf("%s has weight 0 and got a new connection", name)
		}
	}
	held.echo(t)
}

func counters(t *testing.T, s *Setup) {
	k := s.Services[0]
	apply(t, s, addService(k, "rr"), destOp(ipvs.OpAddDest, k, s.Dests[0], 1), destOp(ipvs.OpAddDest, k, s.Dests[1], 1))
	servers(t, s, k, 4)
	conns := func() (svc uint64, dests []uint64) {
		for _, st := range s.Engine.Status() {
			if st.ServiceKey == k {
				svc = st.Stats.Conns
				for _, d := range st.Dests {
					dests = append(dests, d.Stats.Conns)
				}
			}
		}
		return svc, dests
	}
	eventually(t, "4 connections counted, 2 per real server", func() bool {
		n, ds := conns()
		return n == 4 && slices.Equal(ds, []uint64{2, 2})
	})
	s.Engine.Zero(&k)
	eventually(t, "the counters zeroed", func() bool {
		n, ds := conns()
		return n == 0 && slices.Equal(ds, []uint64{0, 0})
	})
	// An edit keeps a real server's counters.
	servers(t, s, k, 2)
	apply(t, s, destOp(ipvs.OpEditDest, k, s.Dests[0], 2))
	eventually(t, "counters kept across an edit", func() bool {
		n, ds := conns()
		return n == 2 && slices.Equal(ds, []uint64{1, 1})
	})
}

// eventually polls cond for up to 5 s: counters reach the status a little
// after the connection (the proxy updates them on its tick).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not so after 5 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
