package sched

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// service drives a scheduler as the kernel's ip_vs_ctl does: servers are
// added at the head of the list and the scheduler hears of each change.
type service struct {
	t     testing.TB
	s     Scheduler
	dests []*Dest // kernel list order: most recently added first
}

func newService(t testing.TB, name string, flags uint32) *service {
	t.Helper()
	s, err := New(name, flags)
	if err != nil {
		t.Fatal(err)
	}
	return &service{t: t, s: s}
}

// add adds a real server "198.19.0.N:80" (or any "addr:port") of weight w.
func (v *service) add(addr string, w int32) *Dest {
	v.t.Helper()
	d := NewDest(ipvs.Dest{Addr: netip.MustParseAddrPort(full(addr)).Addr(),
		Port: netip.MustParseAddrPort(full(addr)).Port(), Weight: w})
	v.dests = append([]*Dest{d}, v.dests...)
	v.s.Update(v.dests)
	return d
}

func (v *service) addAll(spec string) {
	v.t.Helper()
	for _, f := range strings.Fields(spec) {
		a, w, _ := strings.Cut(f, "/")
		n := int32(0)
		for _, c := range w {
			n = n*10 + int32(c-'0')
		}
		v.add(a, n)
	}
}

func (v *service) get(addr string) *Dest {
	v.t.Helper()
	for _, d := range v.dests {
		if d.Addr.String() == full(addr) {
			return d
		}
	}
	v.t.Fatalf("no real server %s", addr)
	return nil
}

func (v *service) del(addr string) {
	d := v.get(addr)
	d.MarkRemoved()
	v.dests = removeDest(v.dests, d)
	v.s.Update(v.dests)
}

func removeDest(l []*Dest, d *Dest) []*Dest {
	out := []*Dest{}
	for _, x := range l {
		if x != d {
			out = append(out, x)
		}
	}
	return out
}

func (v *service) setWeight(addr string, w int32) {
	v.get(addr).SetWeight(w)
	v.s.Update(v.dests)
}

// conn schedules one connection and, like a TCP SYN in the kernel (the
// SYN_RECV state counts as active), binds it as active. It returns the
// chosen server's short name, or "-" for none.
func (v *service) conn(client, virtual string) string {
	c := Conn{Client: netip.MustParseAddrPort(client), Virtual: netip.MustParseAddrPort(virtual)}
	d := v.s.Schedule(c)
	if d == nil {
		return "-"
	}
	d.Bind(Active)
	return short(d)
}

// seq makes n connections from one client and returns the choices.
func (v *service) seq(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = v.conn("198.18.0.2:40000", "198.18.200.10:80")
	}
	return strings.Join(out, " ")
}

// full expands the short names the tests use: "11" is 198.19.0.11:80.
func full(a string) string {
	if !strings.Contains(a, ".") && !strings.Contains(a, ":") {
		return "198.19.0." + a + ":80"
	}
	return a
}

func short(d *Dest) string {
	s := d.Addr.Addr().String()
	if strings.HasPrefix(s, "198.19.0.") && d.Addr.Port() == 80 {
		return strings.TrimPrefix(s, "198.19.0.")
	}
	return d.Addr.String()
}

// change makes one recorded ipvsadm change: add N W [X], del N or
// edit N W [X] (N the real server's short name, W its weight, X its
// upper threshold).
func (v *service) change(args []string) {
	v.t.Helper()
	num := func(i int) int32 {
		if i >= len(args) {
			return 0
		}
		n, err := strconv.ParseInt(args[i], 10, 32)
		if err != nil {
			v.t.Fatalf("bad change %q", args)
		}
		return int32(n)
	}
	switch args[0] {
	case "add":
		d := NewDest(ipvs.Dest{Addr: netip.MustParseAddrPort(full(args[1])).Addr(), Port: 80, Weight: num(2), UThreshold: uint32(num(3))})
		v.dests = append([]*Dest{d}, v.dests...)
		v.s.Update(v.dests)
	case "del":
		v.del(args[1])
	case "edit":
		d := v.get(args[1])
		d.SetWeight(num(2))
		d.SetThresholds(uint32(num(3)), 0)
		v.s.Update(v.dests)
	default:
		v.t.Fatalf("bad change %q", args)
	}
}
