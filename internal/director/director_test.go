package director

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

var lo = netip.MustParseAddr("127.0.0.1")

// newDirector serves with a real proxy engine on loopback.
func newDirector(t *testing.T) *Director {
	t.Helper()
	e := proxy.New(nil, proxy.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return New(e, slog.New(slog.DiscardHandler))
}

func freeKey(t *testing.T) ipvs.ServiceKey {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ipvs.ServiceKey{Proto: ipvs.TCP, Addr: lo, Port: ln.Addr().(*net.TCPAddr).AddrPort().Port()}
}

// unbindable is a service the proxy engine cannot listen on: the address
// is not one of this host's.
var unbindable = ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 80}

// realServer answers each connection with "rs\n"; it returns its port.
func realServer(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("rs\n"))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort().Port()
}

// fetch connects to a service and returns what the real server said.
func fetch(t *testing.T, k ipvs.ServiceKey) string {
	t.Helper()
	c, err := net.Dial("tcp", k.AddrPort().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func addSvc(k ipvs.ServiceKey) ipvs.Command {
	return ipvs.Command{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: k, Scheduler: "rr"}}
}

func addDest(k ipvs.ServiceKey, port uint16) ipvs.Command {
	return ipvs.Command{Op: ipvs.OpAddDest, Service: &ipvs.Service{ServiceKey: k}, Dest: &ipvs.Dest{Addr: lo, Port: port, Method: ipvs.Masq, Weight: 1}}
}

// listings are the table's and the engine's services and real servers;
// they must always agree.
func listings(t *testing.T, d *Director) string {
	t.Helper()
	table := d.Snapshot()
	served := engine.Serving(d.engine)
	show := func(s *ipvs.Snapshot) string {
		var b strings.Builder
		for _, sc := range s.Services {
			fmt.Fprintf(&b, "%s:", sc.ServiceKey)
			for _, x := range sc.Dests {
				fmt.Fprintf(&b, " %d/%d", x.Port, x.Weight)
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if a, b := show(table), show(served); a != b {
		t.Fatalf("the table lists\n%s\nthe engine serves\n%s", a, b)
	}
	return show(table)
}

func TestExecStopsAtTheFirstRefused(t *testing.T) {
	d := newDirector(t)
	a, b := freeKey(t), freeKey(t)
	err := d.Exec([]ipvs.Command{addSvc(a), addDest(a, 9001), addDest(a, 9001), addSvc(b)})
	var ce *wire.CommandError
	if !errors.As(err, &ce) || ce.Index != 2 || ce.Msg != ipvs.ErrDestExists.Error() {
		t.Fatalf("Exec: %v, want command 2 refused with %q", err, ipvs.ErrDestExists)
	}
	if got, want := listings(t, d), fmt.Sprintf("%s: 9001/1\n", a); got != want {
		t.Fatalf("after Exec:\n%s\nwant\n%s", got, want)
	}
}

func TestEngineRefusalIsFoundAndRolledBack(t *testing.T) {
	d := newDirector(t)
	a, b := freeKey(t), freeKey(t)
	rs := realServer(t)
	cmds := []ipvs.Command{addSvc(a), addDest(a, rs), addSvc(unbindable), addDest(unbindable, 9002), addSvc(b)}

	err := d.Exec(cmds)
	var ce *wire.CommandError
	if !errors.As(err, &ce) || ce.Index != 2 || !strings.Contains(ce.Msg, "not an address of this host") {
		t.Fatalf("Exec: %v, want command 2 refused by the engine", err)
	}
	if got, want := listings(t, d), fmt.Sprintf("%s: %d/1\n", a, rs); got != want {
		t.Fatalf("after Exec:\n%s\nwant\n%s", got, want)
	}
	if got := fetch(t, a); got != "rs\n" {
		t.Fatalf("the command before the refused one is not served: %q", got)
	}

	d.Exec([]ipvs.Command{{Op: ipvs.OpClear}})
	errs := d.ExecEach(cmds)
	for i, err := range errs {
		if (err != nil) != (i == 2 || i == 3) {
			t.Errorf("ExecEach: command %d: %v", i, err)
		}
	}
	if !errors.Is(errs[3], ipvs.ErrServiceNotDefined) {
		t.Errorf("ExecEach: adding a server to the refused service: %v", errs[3])
	}
	if got, want := listings(t, d), fmt.Sprintf("%s: %d/1\n%s:\n", a, rs, b); got != want {
		t.Fatalf("after ExecEach:\n%s\nwant\n%s", got, want)
	}
}

func TestReplace(t *testing.T) {
	d := newDirector(t)
	a, b, c := freeKey(t), freeKey(t), freeKey(t)
	if err := d.Exec([]ipvs.Command{addSvc(a), addDest(a, 9001), addDest(a, 9002), addSvc(b), addDest(b, 9003)}); err != nil {
		t.Fatal(err)
	}
	snap := d.Snapshot()
	// One weight changes, b goes, c comes.
	snap.Services[0].Dests[1].Weight = 5
	snap.Services[1] = ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: c, Scheduler: "wlc"}, Dests: []ipvs.Dest{{Addr: lo, Port: 9004, Method: ipvs.Masq, Weight: 1}}}
	if err := d.Replace(snap); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s: 9002/1 9001/5\n%s: 9004/1\n", a, c)
	if got := listings(t, d); got != want {
		t.Fatalf("after Replace:\n%s\nwant\n%s", got, want)
	}

	bad := d.Snapshot()
	bad.Services = append(bad.Services, ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: unbindable, Scheduler: "rr"}})
	bad.Services[0].Dests[0].Weight = 9
	err := d.Replace(bad)
	if err == nil || !strings.HasPrefix(err.Error(), unbindable.String()+":") {
		t.Fatalf("Replace with a service the engine refuses: %v, want an error naming it first", err)
	}
	if got := listings(t, d); got != want {
		t.Fatalf("a refused Replace changed the table or the engine:\n%s\nwant\n%s", got, want)
	}
	dup := d.Snapshot()
	dup.Services = append(dup.Services, dup.Services[0])
	if err := d.Replace(dup); !errors.Is(err, ipvs.ErrServiceExists) {
		t.Fatalf("Replace with a service twice: %v", err)
	}
}

func TestUpdate(t *testing.T) {
	d := newDirector(t)
	a := freeKey(t)
	if err := d.Exec([]ipvs.Command{addSvc(a), addDest(a, 9001)}); err != nil {
		t.Fatal(err)
	}
	err := d.Update(func(tx *ipvs.Tx) error { return tx.Exec(addDest(a, 9001)) })
	if !errors.Is(err, ipvs.ErrDestExists) {
		t.Fatalf("Update keeps the table's error for the checkers: %v", err)
	}
	if err := d.Update(func(tx *ipvs.Tx) error {
		c := addDest(a, 9001)
		c.Op, c.Dest.Weight = ipvs.OpEditDest, 0
		return tx.Exec(c)
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := listings(t, d), fmt.Sprintf("%s: 9001/0\n", a); got != want {
		t.Fatalf("after Update:\n%s\nwant\n%s", got, want)
	}
}

// TestReplaceFrom: the new table is built from the one current in the
// same batch, and committed runs only when the engine took it.
func TestReplaceFrom(t *testing.T) {
	d := newDirector(t)
	a, b := freeKey(t), freeKey(t)
	if err := d.Exec([]ipvs.Command{addSvc(a), addDest(a, 9001)}); err != nil {
		t.Fatal(err)
	}
	committed := 0
	err := d.ReplaceFrom(func(cur *ipvs.Snapshot) *ipvs.Snapshot {
		if len(cur.Services) != 1 || cur.Services[0].ServiceKey != a {
			t.Errorf("build was handed %+v, want the table holding %s", cur.Services, a)
		}
		next := *cur
		next.Services = append(slices.Clone(cur.Services), ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: b, Scheduler: "rr"}})
		return &next
	}, func() { committed++ })
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s: 9001/1\n%s:\n", a, b)
	if got := listings(t, d); got != want || committed != 1 {
		t.Fatalf("after ReplaceFrom (committed %d times):\n%s\nwant\n%s", committed, got, want)
	}
	err = d.ReplaceFrom(func(cur *ipvs.Snapshot) *ipvs.Snapshot {
		next := *cur
		next.Services = append(slices.Clone(cur.Services), ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: unbindable, Scheduler: "rr"}})
		return &next
	}, func() { committed++ })
	if err == nil || committed != 1 {
		t.Fatalf("ReplaceFrom with a service the engine refuses: %v, committed %d times; want an error and no commit", err, committed)
	}
	if got := listings(t, d); got != want {
		t.Fatalf("a refused ReplaceFrom changed the table:\n%s\nwant\n%s", got, want)
	}
}
