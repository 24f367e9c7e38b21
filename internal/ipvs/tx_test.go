package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
)

// listing is a table's services and real servers, in order, for
// comparing tables.
func listing(s *Snapshot) string {
	out := fmt.Sprintf("timeouts %+v\n", s.Timeouts)
	for _, sc := range s.Services {
		out += fmt.Sprintf("%s %s %#x:", sc.ServiceKey, sc.Scheduler, sc.Flags)
		for _, d := range sc.Dests {
			out += fmt.Sprintf(" %s/%d", d.AddrPort(), d.Weight)
		}
		out += "\n"
	}
	return out
}

func mustExec(t *testing.T, tb interface{ Exec(Command) error }, cmds ...Command) {
	t.Helper()
	for _, c := range cmds {
		if err := tb.Exec(c); err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
	}
}

func TestTxRollbackRestoresTheTable(t *testing.T) {
	a, b, c := svcKey("198.18.0.10", 80), svcKey("198.18.0.11", 80), svcKey("198.18.0.12", 80)
	tb := NewTable(nil)
	mustExec(t, tb,
		Command{Op: OpAddService, Service: &Service{ServiceKey: a, Scheduler: "rr"}},
		Command{Op: OpAddDest, Service: &Service{ServiceKey: a}, Dest: dest("198.18.1.1", 80, 1)},
		Command{Op: OpAddDest, Service: &Service{ServiceKey: a}, Dest: dest("198.18.1.2", 80, 2)},
		Command{Op: OpAddService, Service: &Service{ServiceKey: b, Scheduler: "wlc"}},
		Command{Op: OpAddService, Service: &Service{ServiceKey: c, Scheduler: "sh"}},
	)
	before := listing(tb.Snapshot())
	tx := tb.Begin()
	mustExec(t, tx,
		Command{Op: OpEditDest, Service: &Service{ServiceKey: a}, Dest: dest("198.18.1.1", 80, 0)},
		Command{Op: OpDelDest, Service: &Service{ServiceKey: a}, Dest: dest("198.18.1.2", 80, 0)},
		Command{Op: OpAddDest, Service: &Service{ServiceKey: a}, Dest: dest("198.18.1.3", 80, 5)},
		Command{Op: OpDelService, Service: &Service{ServiceKey: b}},
		Command{Op: OpEditService, Service: &Service{ServiceKey: c, Scheduler: "mh"}},
		Command{Op: OpSetTimeout, Timeouts: &Timeouts{TCP: 5}},
		Command{Op: OpClear},
		Command{Op: OpAddService, Service: &Service{ServiceKey: b, Scheduler: "rr"}},
	)
	if err := tx.Exec(Command{Op: OpAddService, Service: &Service{ServiceKey: b}}); !errors.Is(err, ErrServiceExists) {
		t.Fatalf("adding a service twice in a transaction: %v", err)
	}
	tx.Rollback()
	if got := listing(tb.Snapshot()); got != before {
		t.Fatalf("after Rollback the table lists\n%s\nwant\n%s", got, before)
	}
	// The key index is back too.
	mustExec(t, tb, Command{Op: OpAddDest, Service: &Service{ServiceKey: b}, Dest: dest("198.18.1.9", 80, 1)})
	if err := tb.Exec(Command{Op: OpAddService, Service: &Service{ServiceKey: c}}); !errors.Is(err, ErrServiceExists) {
		t.Fatalf("after Rollback: %v", err)
	}
}

func TestTxChanges(t *testing.T) {
	a, b := svcKey("198.18.0.10", 80), svcKey("198.18.0.11", 80)
	tb := NewTable(nil)
	mustExec(t, tb, Command{Op: OpAddService, Service: &Service{ServiceKey: b, Scheduler: "rr"}})
	tx := tb.Begin()
	mustExec(t, tx,
		Command{Op: OpAddService, Service: &Service{ServiceKey: a}},
		Command{Op: OpAddDest, Service: &Service{ServiceKey: a, Scheduler: "ignored"}, Dest: &Dest{Addr: netip.MustParseAddr("::ffff:198.18.1.1"), Port: 80, Weight: 1}},
		Command{Op: OpZero, Service: &Service{ServiceKey: a}},
		Command{Op: OpSetTimeout, Timeouts: &Timeouts{UDP: 7}},
		Command{Op: OpSetTimeout, Timeouts: &Timeouts{UDP: 7}},
		Command{Op: OpClear},
	)
	to := DefaultTimeouts
	to.UDP = 7
	key := func(k ServiceKey) *Service { return &Service{ServiceKey: k} }
	want := []Command{
		{Op: OpAddService, Service: &Service{ServiceKey: a, Scheduler: "wlc", Netmask: 32, Flags: FlagHashed}},
		{Op: OpAddDest, Service: key(a), Dest: &Dest{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 1}},
		{Op: OpSetTimeout, Timeouts: &to},
		{Op: OpDelService, Service: key(b)},
		{Op: OpDelService, Service: key(a)},
	}
	if got := tx.Changes(); !reflect.DeepEqual(got, want) {
		t.Fatalf("changes\n%s\nwant\n%s", describeAll(got), describeAll(want))
	}
}

func describeAll(cmds []Command) string {
	out := ""
	for _, c := range cmds {
		out += fmt.Sprintf("%s", c.Op)
		if c.Service != nil {
			out += fmt.Sprintf(" %+v", *c.Service)
		}
		if c.Dest != nil {
			out += fmt.Sprintf(" %+v", *c.Dest)
		}
		if c.Timeouts != nil {
			out += fmt.Sprintf(" %+v", *c.Timeouts)
		}
		out += "\n"
	}
	return out
}

func TestDiff(t *testing.T) {
	a, b, c := svcKey("198.18.0.10", 80), svcKey("198.18.0.11", 80), svcKey("198.18.0.12", 80)
	d := func(addr string, w int32) Dest { return *dest(addr, 80, w) }
	from := &Snapshot{Timeouts: DefaultTimeouts, Services: []ServiceConfig{
		{Service: Service{ServiceKey: a, Scheduler: "rr"}, Dests: []Dest{d("198.18.1.2", 1), d("198.18.1.1", 1)}},
		{Service: Service{ServiceKey: b, Scheduler: "rr"}, Dests: []Dest{d("198.18.1.1", 1)}},
	}}
	to := &Snapshot{Timeouts: Timeouts{TCP: 60, TCPFin: 10, UDP: 30}, Services: []ServiceConfig{
		{Service: Service{ServiceKey: c, Scheduler: "mh"}, Dests: []Dest{d("198.18.1.5", 1), d("198.18.1.4", 2)}},
		{Service: Service{ServiceKey: a, Scheduler: "wrr"}, Dests: []Dest{d("198.18.1.3", 1), d("198.18.1.2", 4)}},
	}}
	tb := NewTable(nil)
	if err := tb.Replace(from); err != nil {
		t.Fatal(err)
	}
	cmds := Diff(tb.Snapshot(), to)
	mustExec(t, tb, cmds...)
	// Services that stay keep their place, new ones come last; a new
	// service lists its real servers as given.
	want := "timeouts {TCP:60 TCPFin:10 UDP:30}\n" +
		"TCP 198.18.0.10:80 wrr 0x2: 198.18.1.3:80/1 198.18.1.2:80/4\n" +
		"TCP 198.18.0.12:80 mh 0x2: 198.18.1.5:80/1 198.18.1.4:80/2\n"
	if got := listing(tb.Snapshot()); got != want {
		t.Fatalf("after Diff's commands the table lists\n%s\nwant\n%s", got, want)
	}
	if n := len(Diff(tb.Snapshot(), to)); n != 0 {
		t.Fatalf("Diff of a table with itself has %d commands", n)
	}
	// Only what changed: one real server's weight is one command.
	to.Services[1].Dests[1].Weight = 0
	if got := Diff(tb.Snapshot(), to); len(got) != 1 || got[0].Op != OpEditDest || got[0].Dest.Weight != 0 {
		t.Fatalf("Diff of one weight: %s", describeAll(got))
	}
}
