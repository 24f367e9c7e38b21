package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is a VRRP instance state.
type State uint8

// States of RFC 5798 section 6.4, plus keepalived's FAULT and STOP.
const (
	StateInit State = iota
	StateBackup
	StateMaster
	StateFault
	StateStop
)

var stateNames = [...]string{"INIT", "BACKUP", "MASTER", "FAULT", "STOP"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText makes State JSON-friendly.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseState parses keepalived's state names.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown VRRP state %q (want MASTER or BACKUP)", s)
}

// EventKind is what happened to a machine.
type EventKind uint8

// Events fed to Machine.Step.
const (
	EvStartup  EventKind = iota + 1 // the instance starts
	EvTimer                         // the deadline (Machine.Deadline) passed
	EvAdvert                        // a valid advert arrived (Event.Advert, Event.From)
	EvShutdown                      // the instance stops
	EvFault                         // a tracked object failed
	EvRecover                       // all tracked objects are good again
	EvPriority                      // the effective priority changed (Event.Priority)
	EvGoMaster                      // sync group: a peer instance became MASTER
	EvGoBackup                      // sync group: a peer instance became BACKUP
)

// Event is one input of the state machine.
type Event struct {
	Kind     EventKind
	Advert   *Advert
	From     netip.Addr // source address of the advert
	Priority uint8      // new effective priority for EvPriority
}

// ActionKind is what the machine asks its driver to do.
type ActionKind uint8

// Actions returned by Machine.Step, to be carried out in order.
const (
	ActSendAdvert ActionKind = iota + 1 // send an advert with Action.Priority
	ActAddVIPs                          // add the virtual addresses
	ActDelVIPs                          // remove the virtual addresses
	ActGratuitous                       // start the gratuitous ARP / NA bursts
	ActNotify                           // state changed to Action.State: run notify scripts
)

// Action is one output of the state machine.
type Action struct {
	Kind     ActionKind
	Priority uint8
	State    State
}

func (a Action) String() string {
	switch a.Kind {
	case ActSendAdvert:
		return fmt.Sprintf("send(%d)", a.Priority)
	case ActAddVIPs:
		return "addvips"
	case ActDelVIPs:
		return "delvips"
	case ActGratuitous:
		return "garp"
	case ActNotify:
		return "notify(" + a.State.String() + ")"
	}
	return "?"
}

// MachineConfig is what the state machine needs from the instance.
type MachineConfig struct {
	Version      uint8
	Priority     uint8         // configured priority; 255 = address owner
	AdvertInt    time.Duration // our advert interval
	Preempt      bool          // false with nopreempt
	PreemptDelay time.Duration
	Primary      netip.Addr // our primary address, compared on equal priority
}

// Machine is the VRRP state machine of one instance. It does no I/O and
// reads no clock: Step takes the time and returns the actions; the driver
// calls Step(EvTimer) once Deadline has passed.
type Machine struct {
	cfg            MachineConfig
	state          State
	prio           uint8         // effective priority
	masterAdverInt time.Duration // learnt from the master (v3)
	masterAddr     netip.Addr
	masterPrio     uint8
	deadline       time.Time
	preemptPending bool
	preemptAt      time.Time
}

// NewMachine returns a machine in INIT.
func NewMachine(cfg MachineConfig) *Machine {
	return &Machine{cfg: cfg, state: StateInit, prio: cfg.Priority, masterAdverInt: cfg.AdvertInt}
}

// State is the current state.
func (m *Machine) State() State { return m.state }

// Priority is the effective priority.
func (m *Machine) Priority() uint8 { return m.prio }

// Master is the address of the current master: ours when MASTER, the last
// accepted advert's source when BACKUP.
func (m *Machine) Master() netip.Addr {
	if m.state == StateMaster {
		return m.cfg.Primary
	}
	return m.masterAddr
}

// Deadline is when the running timer (advert timer as MASTER, master down
// timer as BACKUP) fires; zero when none runs.
func (m *Machine) Deadline() time.Time { return m.deadline }

// SkewTime is RFC 5798's Skew_Time for our effective priority; for v2 it
// is RFC 3768's (256-Priority)/256 seconds.
func (m *Machine) SkewTime() time.Duration {
	if m.cfg.Version == 2 {
		return time.Duration(256-int(m.prio)) * time.Second / 256
	}
	return time.Duration(256-int(m.prio)) * m.masterAdverInt / 256
}

// MasterDownInterval is 3 x Master_Adver_Interval + Skew_Time.
func (m *Machine) MasterDownInterval() time.Duration {
	return 3*m.masterAdverInt + m.SkewTime()
}

func (m *Machine) owner() bool { return m.cfg.Priority == 255 }

// Step feeds one event and returns the actions to carry out.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	switch ev.Kind {
	case EvStartup:
		if m.state != StateInit && m.state != StateStop {
			return nil
		}
		if m.cfg.PreemptDelay > 0 {
			m.preemptPending, m.preemptAt = true, now.Add(m.cfg.PreemptDelay)
		}
		if m.owner() {
			return m.toMaster(now)
		}
		return m.toBackup(now)
	case EvShutdown:
		return m.shutdown()
	case EvFault:
		return m.toFault()
	case EvRecover:
		if m.state != StateFault {
			return nil
		}
		if m.owner() {
			return m.toMaster(now)
		}
		return m.toBackup(now)
	case EvPriority:
		m.prio = ev.Priority
		return nil
	case EvGoMaster:
		if m.state == StateBackup {
			return m.toMaster(now)
		}
		return nil
	case EvGoBackup:
		if m.state == StateMaster {
			return m.toBackup(now)
		}
		return nil
	}
	switch m.state {
	case StateBackup:
		return m.backup(now, ev)
	case StateMaster:
		return m.master(now, ev)
	}
	return nil
}

func (m *Machine) backup(now time.Time, ev Event) []Action {
	switch ev.Kind {
	case EvTimer:
		if now.Before(m.deadline) {
			return nil
		}
		return m.toMaster(now)
	case EvAdvert:
		a := ev.Advert
		if a.Priority == 0 {
			m.deadline = now.Add(m.SkewTime())
			return nil
		}
		if !m.cfg.Preempt || a.Priority >= m.prio || m.delayPreempt(now) {
			if m.cfg.Version == 3 {
				m.masterAdverInt = a.IntervalDuration()
			}
			if a.Priority >= m.prio {
				m.preemptPending = false
			}
			m.masterAddr, m.masterPrio = ev.From, a.Priority
			m.deadline = now.Add(m.MasterDownInterval())
		}
		// A lower priority master with preemption: ignore it, our
		// master down timer takes over.
	}
	return nil
}

// delayPreempt reports whether a lower priority master must still be
// accepted because of preempt_delay.
func (m *Machine) delayPreempt(now time.Time) bool {
	if m.cfg.PreemptDelay <= 0 {
		return false
	}
	if !m.preemptPending {
		m.preemptPending, m.preemptAt = true, now.Add(m.cfg.PreemptDelay)
	}
	return now.Before(m.preemptAt)
}

func (m *Machine) master(now time.Time, ev Event) []Action {
	switch ev.Kind {
	case EvTimer:
		if now.Before(m.deadline) {
			return nil
		}
		m.deadline = now.Add(m.cfg.AdvertInt)
		return []Action{{Kind: ActSendAdvert, Priority: m.prio}}
	case EvAdvert:
		a := ev.Advert
		if a.Priority == 0 {
			m.deadline = now.Add(m.cfg.AdvertInt)
			return []Action{{Kind: ActSendAdvert, Priority: m.prio}}
		}
		if a.Priority > m.prio || (a.Priority == m.prio && addrGreater(ev.From, m.cfg.Primary)) {
			if m.cfg.Version == 3 {
				m.masterAdverInt = a.IntervalDuration()
			}
			m.masterAddr, m.masterPrio = ev.From, a.Priority
			acts := m.toBackup(now)
			m.preemptPending = false
			return acts
		}
		// A lower priority router thinks it is master: assert ourselves
		// at once, as keepalived does.
		m.deadline = now.Add(m.cfg.AdvertInt)
		return []Action{{Kind: ActSendAdvert, Priority: m.prio}}
	}
	return nil
}

func (m *Machine) toMaster(now time.Time) []Action {
	m.state = StateMaster
	m.masterAddr, m.masterPrio = m.cfg.Primary, m.prio
	m.masterAdverInt = m.cfg.AdvertInt
	m.deadline = now.Add(m.cfg.AdvertInt)
	m.preemptPending = false
	return []Action{
		{Kind: ActSendAdvert, Priority: m.prio},
		{Kind: ActAddVIPs},
		{Kind: ActGratuitous},
		{Kind: ActNotify, State: StateMaster},
	}
}

func (m *Machine) toBackup(now time.Time) []Action {
	var acts []Action
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActDelVIPs})
	}
	if m.state == StateInit || m.state == StateFault || m.state == StateStop {
		m.masterAdverInt = m.cfg.AdvertInt
		m.masterAddr = netip.Addr{}
	}
	m.state = StateBackup
	m.deadline = now.Add(m.MasterDownInterval())
	return append(acts, Action{Kind: ActNotify, State: StateBackup})
}

func (m *Machine) toFault() []Action {
	if m.state == StateFault || m.state == StateStop {
		return nil
	}
	var acts []Action
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActSendAdvert, Priority: 0}, Action{Kind: ActDelVIPs})
	}
	m.state = StateFault
	m.deadline = time.Time{}
	m.masterAddr = netip.Addr{}
	return append(acts, Action{Kind: ActNotify, State: StateFault})
}

func (m *Machine) shutdown() []Action {
	if m.state == StateStop {
		return nil
	}
	var acts []Action
	if m.state == StateMaster {
		acts = append(acts, Action{Kind: ActSendAdvert, Priority: 0}, Action{Kind: ActDelVIPs})
	}
	m.state = StateStop
	m.deadline = time.Time{}
	return append(acts, Action{Kind: ActNotify, State: StateStop})
}

// addrGreater compares addresses as unsigned integers in network order.
func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }
