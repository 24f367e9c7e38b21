package ipvs

import (
	"errors"
	"net/netip"
	"testing"
)

func svcKey(addr string, port uint16) ServiceKey {
	return ServiceKey{Proto: TCP, Addr: netip.MustParseAddr(addr), Port: port}
}

func dest(addr string, port uint16, w int32) *Dest {
	return &Dest{Addr: netip.MustParseAddr(addr), Port: port, Method: Masq, Weight: w}
}

func TestTableCommands(t *testing.T) {
	vip := svcKey("198.18.0.10", 80)
	vip6 := ServiceKey{Proto: UDP, Addr: netip.MustParseAddr("2001:db8::10"), Port: 53}
	fwm := ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 7}
	tests := []struct {
		name string
		cmds []Command
		want error // from the last command
	}{
		{"add service", []Command{{Op: OpAddService, Service: &Service{ServiceKey: vip, Scheduler: "rr"}}}, nil},
		{"add service twice", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
		}, ErrServiceExists},
		{"unknown scheduler", []Command{{Op: OpAddService, Service: &Service{ServiceKey: vip, Scheduler: "xx"}}}, ErrNoScheduler},
		{"edit missing service", []Command{{Op: OpEditService, Service: &Service{ServiceKey: vip}}}, ErrNoService},
		{"delete missing service", []Command{{Op: OpDelService, Service: &Service{ServiceKey: vip}}}, ErrNoService},
		{"add dest to missing service", []Command{{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, 1)}}, ErrServiceNotDefined},
		{"add dest twice", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, 1)},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, 3)},
		}, ErrDestExists},
		{"edit missing dest", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpEditDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, 1)},
		}, ErrNoDest},
		{"delete missing dest", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpDelDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, 1)},
		}, ErrNoDest},
		{"negative weight", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("198.18.1.11", 80, -1)},
		}, ErrInvalid},
		{"broadcast dest", []Command{ // Linux 6.1: ipvsadm -a -r 255.255.255.255:80 says ErrInvalid's words
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("255.255.255.255", 80, 1)},
		}, ErrInvalid},
		{"multicast dest", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("224.0.0.1", 80, 1)},
		}, ErrInvalid},
		{"zeronet dest", []Command{ // Linux 6.1 takes 0.1.2.3, refuses 0.0.0.0
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("0.1.2.3", 80, 1)},
		}, nil},
		{"broadcast service", []Command{ // the kernel does not check a virtual address
			{Op: OpAddService, Service: &Service{ServiceKey: svcKey("255.255.255.255", 80)}},
		}, nil},
		{"lower threshold above upper", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: &Dest{Addr: netip.MustParseAddr("198.18.1.11"), Port: 80, UThreshold: 5, LThreshold: 9}},
		}, ErrRange},
		// ipvsadm -a ... -y 7 without -x: the kernel compares with an
		// upper threshold of 0 and refuses it (recorded on 6.1).
		{"lower threshold without upper", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: &Dest{Addr: netip.MustParseAddr("198.18.1.11"), Port: 80, LThreshold: 7}},
		}, ErrRange},
		{"IPv6 dest for IPv4 NAT service", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: dest("2001:db8::11", 80, 1)},
		}, ErrFamily},
		{"IPv6 service", []Command{
			{Op: OpAddService, Service: &Service{ServiceKey: vip6, Scheduler: "sh"}},
			{Op: OpAddDest, Service: &Service{ServiceKey: vip6}, Dest: dest("2001:db8::11", 53, 1)},
		}, nil},
		{"fwmark service", []Command{{Op: OpAddService, Service: &Service{ServiceKey: fwm, Scheduler: "rr"}}}, nil},
		{"netmask out of range", []Command{{Op: OpAddService, Service: &Service{ServiceKey: vip, Flags: FlagPersistent, Netmask: 33}}}, ErrInvalid},
		{"IPv4 netmask /0", []Command{{Op: OpAddService, Service: &Service{ServiceKey: vip, Flags: FlagPersistent, Netmask: 0}}}, nil},
		{"IPv6 netmask /0", []Command{{Op: OpAddService, Service: &Service{ServiceKey: vip6, Flags: FlagPersistent, Netmask: 0}}}, ErrInvalid},
		{"zero missing service", []Command{{Op: OpZero, Service: &Service{ServiceKey: vip}}}, ErrNoService},
		{"zero all", []Command{{Op: OpZero}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(nil)
			var err error
			for _, c := range tt.cmds {
				err = tab.Exec(c)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestTableDefaultsAndOrder(t *testing.T) {
	tab := NewTable(nil)
	vip := svcKey("198.18.0.10", 80)
	must := func(c Command) {
		t.Helper()
		if err := tab.Exec(c); err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
	}
	must(Command{Op: OpAddService, Service: &Service{ServiceKey: vip, Flags: FlagPersistent, Netmask: 32}})
	must(Command{Op: OpAddService, Service: &Service{ServiceKey: svcKey("198.18.0.11", 80), Netmask: 8}})
	for _, a := range []string{"198.18.1.11", "198.18.1.12", "198.18.1.13"} {
		must(Command{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: &Dest{Addr: netip.MustParseAddr(a), Port: 80, Weight: 1}})
	}
	must(Command{Op: OpEditDest, Service: &Service{ServiceKey: vip}, Dest: &Dest{Addr: netip.MustParseAddr("198.18.1.12"), Port: 80, Weight: 5}})
	must(Command{Op: OpSetTimeout, Timeouts: &Timeouts{TCP: 60}})

	snap := tab.Snapshot()
	s := snap.Services[0]
	if s.Scheduler != "wlc" || s.Timeout != 360 || s.Netmask != 32 {
		t.Errorf("defaults: scheduler %q timeout %d netmask %d, want wlc 360 32", s.Scheduler, s.Timeout, s.Netmask)
	}
	if m := snap.Services[1].Netmask; m != 32 {
		t.Errorf("a service that is not persistent has netmask %d, want the full 32", m)
	}
	var order []string
	for _, d := range s.Dests {
		order = append(order, d.AddrPort().String())
	}
	want := []string{"198.18.1.13:80", "198.18.1.12:80", "198.18.1.11:80"}
	if len(order) != 3 || order[0] != want[0] || order[1] != want[1] || order[2] != want[2] {
		t.Errorf("dest order %v, want the most recently added first %v", order, want)
	}
	if s.Dests[1].Weight != 5 {
		t.Errorf("edited weight %d, want 5", s.Dests[1].Weight)
	}
	if got := snap.Timeouts; got != (Timeouts{TCP: 60, TCPFin: 120, UDP: 300}) {
		t.Errorf("timeouts %+v, want 60 120 300", got)
	}
	snap.Services[0].Dests[0].Weight = 99
	if tab.Snapshot().Services[0].Dests[0].Weight == 99 {
		t.Error("a snapshot shares memory with the table")
	}
}

func TestTableCheckerAndReplace(t *testing.T) {
	refuse := errors.New("refused by engine")
	tab := NewTable(func(_ *Service, d *Dest) error {
		if d.Method == Route {
			return refuse
		}
		return nil
	})
	vip := svcKey("198.18.0.10", 80)
	if err := tab.Exec(Command{Op: OpAddService, Service: &Service{ServiceKey: vip}}); err != nil {
		t.Fatal(err)
	}
	d := dest("198.18.1.11", 80, 1)
	d.Method = Route
	if err := tab.Exec(Command{Op: OpAddDest, Service: &Service{ServiceKey: vip}, Dest: d}); !errors.Is(err, refuse) {
		t.Fatalf("checker not consulted: %v", err)
	}
	good := tab.Snapshot()
	bad := &Snapshot{Timeouts: DefaultTimeouts, Services: []ServiceConfig{
		{Service: Service{ServiceKey: vip}}, {Service: Service{ServiceKey: vip}},
	}}
	if err := tab.Replace(bad); !errors.Is(err, ErrServiceExists) {
		t.Fatalf("Replace with a duplicate service: %v", err)
	}
	if len(tab.Snapshot().Services) != len(good.Services) {
		t.Fatal("a refused Replace changed the table")
	}
}

func TestSchedFlagsString(t *testing.T) {
	tests := []struct {
		name  string
		sched string
		flags uint32
		want  string
	}{
		{"sh both", "sh", SchedFlag1 | SchedFlag2, "sh-fallback,sh-port"},
		{"mh port", "mh", SchedFlag2, "mh-port"},
		{"rr flag", "rr", SchedFlag1, "flag-1"},
		{"none", "sh", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Service{Scheduler: tt.sched, Flags: tt.flags}
			if got := s.SchedFlagsString(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
