package vrrp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// step is one event at a time offset, with the state and actions expected
// after it.
type step struct {
	at    time.Duration // since the start
	ev    Event
	state State
	acts  string // actions joined by space
}

func adv(prio uint8, from string) Event {
	return Event{Kind: EvAdvert, Advert: &Advert{Version: 3, Priority: prio, Interval: 100}, From: netip.MustParseAddr(from)}
}

func advInt(prio uint8, from string, cs uint16) Event {
	e := adv(prio, from)
	e.Advert.Interval = cs
	return e
}

var (
	startup  = Event{Kind: EvStartup}
	timer    = Event{Kind: EvTimer}
	shutdown = Event{Kind: EvShutdown}
)

func TestMachineSequences(t *testing.T) {
	base := MachineConfig{Version: 3, Priority: 100, AdvertInt: time.Second, Preempt: true,
		Primary: netip.MustParseAddr("198.18.0.2")}
	with := func(f func(c *MachineConfig)) MachineConfig { c := base; f(&c); return c }
	// Master_Down_Interval for priority 100, 1 s: 3 s + 156/256 s
	mdi := 3*time.Second + 156*time.Second/256
	tests := []struct {
		name  string
		cfg   MachineConfig
		steps []step
	}{
		{
			name: "backup becomes master when no advert comes",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{mdi - time.Millisecond, timer, StateBackup, ""},
				{mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
				{mdi + time.Second, timer, StateMaster, "send(100)"},
			},
		},
		{
			name: "address owner is master at once",
			cfg:  with(func(c *MachineConfig) { c.Priority = 255 }),
			steps: []step{
				{0, startup, StateMaster, "send(255) addvips garp notify(MASTER)"},
				{time.Second, adv(254, "198.18.0.9"), StateMaster, "send(255)"},
			},
		},
		{
			name: "higher priority adverts keep us backup",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{time.Second, adv(150, "198.18.0.1"), StateBackup, ""},
				{4 * time.Second, adv(150, "198.18.0.1"), StateBackup, ""},
				{4*time.Second + mdi - time.Millisecond, timer, StateBackup, ""},
				{4*time.Second + mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "priority 0 advert: take over after skew time",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{time.Second, adv(150, "198.18.0.1"), StateBackup, ""},
				{2 * time.Second, adv(0, "198.18.0.1"), StateBackup, ""},
				{2*time.Second + 156*time.Second/256, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "preempt: a lower priority master is ignored and replaced",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{2 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "nopreempt: a lower priority master is kept",
			cfg:  with(func(c *MachineConfig) { c.Preempt = false }),
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{3 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{mdi, timer, StateBackup, ""},
				{3*time.Second + mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "preempt_delay: lower master kept until the delay passes",
			cfg:  with(func(c *MachineConfig) { c.PreemptDelay = 10 * time.Second }),
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{3 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{6 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{9 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""},
				{9*time.Second + mdi - time.Millisecond, timer, StateBackup, ""},
				{11 * time.Second, adv(50, "198.18.0.1"), StateBackup, ""}, // delay over: ignored
				{9*time.Second + mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "master yields to higher priority",
			cfg:  with(func(c *MachineConfig) { c.Priority = 255 }),
			steps: []step{
				{0, startup, StateMaster, "send(255) addvips garp notify(MASTER)"},
				{time.Second, timer, StateMaster, "send(255)"},
				{1500 * time.Millisecond, Event{Kind: EvPriority, Priority: 90}, StateMaster, ""},
				{1600 * time.Millisecond, adv(100, "198.18.0.1"), StateBackup, "delvips notify(BACKUP)"},
			},
		},
		{
			name: "equal priority: higher primary address wins",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{mdi, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
				{mdi + 100*time.Millisecond, adv(100, "198.18.0.1"), StateMaster, "send(100)"},
				{mdi + 200*time.Millisecond, adv(100, "198.18.0.3"), StateBackup, "delvips notify(BACKUP)"},
			},
		},
		{
			name: "master answers a priority 0 advert with its own",
			cfg:  with(func(c *MachineConfig) { c.Priority = 255 }),
			steps: []step{
				{0, startup, StateMaster, "send(255) addvips garp notify(MASTER)"},
				{300 * time.Millisecond, adv(0, "198.18.0.1"), StateMaster, "send(255)"},
				{1200 * time.Millisecond, timer, StateMaster, ""},
				{1300 * time.Millisecond, timer, StateMaster, "send(255)"},
			},
		},
		{
			name: "shutdown as master sends priority 0 and drops the VIPs",
			cfg:  with(func(c *MachineConfig) { c.Priority = 255 }),
			steps: []step{
				{0, startup, StateMaster, "send(255) addvips garp notify(MASTER)"},
				{time.Second, shutdown, StateStop, "send(0) delvips notify(STOP)"},
				{2 * time.Second, timer, StateStop, ""},
				{3 * time.Second, shutdown, StateStop, ""},
			},
		},
		{
			name: "fault and recovery",
			cfg:  with(func(c *MachineConfig) { c.Priority = 255 }),
			steps: []step{
				{0, startup, StateMaster, "send(255) addvips garp notify(MASTER)"},
				{time.Second, Event{Kind: EvFault}, StateFault, "send(0) delvips notify(FAULT)"},
				{2 * time.Second, adv(100, "198.18.0.1"), StateFault, ""},
				{3 * time.Second, timer, StateFault, ""},
				{4 * time.Second, Event{Kind: EvRecover}, StateMaster, "send(255) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "backup learns the master's v3 interval",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{100 * time.Millisecond, advInt(200, "198.18.0.1", 10), StateBackup, ""},
				// 3 x 100 ms + 156 x 100 ms / 256
				{100*time.Millisecond + 300*time.Millisecond + 60937500*time.Nanosecond - time.Millisecond, timer, StateBackup, ""},
				{100*time.Millisecond + 300*time.Millisecond + 60937500*time.Nanosecond, timer, StateMaster, "send(100) addvips garp notify(MASTER)"},
			},
		},
		{
			name: "sync group moves a backup to master and back",
			cfg:  base,
			steps: []step{
				{0, startup, StateBackup, "notify(BACKUP)"},
				{time.Second, Event{Kind: EvGoMaster}, StateMaster, "send(100) addvips garp notify(MASTER)"},
				{2 * time.Second, Event{Kind: EvGoBackup}, StateBackup, "delvips notify(BACKUP)"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(1000, 0)
			m := NewMachine(tt.cfg)
			for i, s := range tt.steps {
				acts := m.Step(t0.Add(s.at), s.ev)
				var got []string
				for _, a := range acts {
					got = append(got, a.String())
				}
				if g := strings.Join(got, " "); g != s.acts || m.State() != s.state {
					t.Fatalf("step %d (%s at %v): state %v, actions %q; want %v, %q",
						i, evName(s.ev), s.at, m.State(), g, s.state, s.acts)
				}
			}
		})
	}
}

func evName(e Event) string {
	switch e.Kind {
	case EvAdvert:
		return fmt.Sprintf("advert prio %d from %s", e.Advert.Priority, e.From)
	case EvTimer:
		return "timer"
	}
	return fmt.Sprintf("event %d", e.Kind)
}

func TestSkewAndMasterDown(t *testing.T) {
	tests := []struct {
		name     string
		version  uint8
		prio     uint8
		interval time.Duration
		skew     time.Duration
		mdi      time.Duration
	}{
		{"v2 prio 100", 2, 100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{"v2 prio 254 interval 3s", 2, 254, 3 * time.Second, 7812500 * time.Nanosecond, 9007812500 * time.Nanosecond},
		{"v3 prio 100 1s", 3, 100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{"v3 prio 200 100ms", 3, 200, 100 * time.Millisecond, 21875 * time.Microsecond, 321875 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(MachineConfig{Version: tt.version, Priority: tt.prio, AdvertInt: tt.interval})
			if m.SkewTime() != tt.skew || m.MasterDownInterval() != tt.mdi {
				t.Fatalf("skew %v mdi %v, want %v %v", m.SkewTime(), m.MasterDownInterval(), tt.skew, tt.mdi)
			}
		})
	}
}
