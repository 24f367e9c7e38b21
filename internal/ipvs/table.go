package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Errors with the wording ipvsadm prints for the kernel's answers.
var (
	ErrServiceExists     = errors.New("Service already exists")
	ErrNoService         = errors.New("No such service")
	ErrServiceNotDefined = errors.New("Service not defined")
	ErrDestExists        = errors.New("Destination already exists")
	ErrNoDest            = errors.New("No such destination")
	ErrNoScheduler       = errors.New("Scheduler or persistence engine not found")
	ErrInvalidTimeout    = errors.New("Invalid timeout value")
	ErrInvalid           = errors.New("Invalid operation.  Possibly wrong module version, address not unicast, ...")
	ErrFamily            = errors.New("Operation not supported with specified address family")
	ErrRange             = errors.New("Numerical result out of range")
)

// Op is a table operation, one per ipvsadm command.
type Op string

// Operations, named after ipvsadm's long options.
const (
	OpAddService  Op = "add-service"    // -A
	OpEditService Op = "edit-service"   // -E
	OpDelService  Op = "delete-service" // -D
	OpClear       Op = "clear"          // -C
	OpAddDest     Op = "add-server"     // -a
	OpEditDest    Op = "edit-server"    // -e
	OpDelDest     Op = "delete-server"  // -d
	OpSetTimeout  Op = "set"            // --set
	OpZero        Op = "zero"           // -Z (counters live in the engine)
)

// Command is one change to the table: what gvsadm sends and -R replays.
type Command struct {
	Op       Op        `json:"op"`
	Service  *Service  `json:"service,omitempty"`
	Dest     *Dest     `json:"dest,omitempty"`
	Timeouts *Timeouts `json:"timeouts,omitempty"`
}

// DestChecker vets a real server before the table takes it, typically the
// running engine refusing a forwarding method it cannot do.
type DestChecker func(svc *Service, d *Dest) error

// Table is the IPVS table. It is safe for concurrent use.
type Table struct {
	mu       sync.Mutex
	services []*entry // in the order added
	byKey    map[ServiceKey]*entry
	timeouts Timeouts
	check    DestChecker
}

type entry struct {
	svc   Service
	dests []Dest // the kernel's order: the most recently added first
}

// NewTable returns an empty table with the kernel's default timeouts. check
// may be nil.
func NewTable(check DestChecker) *Table {
	return &Table{timeouts: DefaultTimeouts, check: check, byKey: map[ServiceKey]*entry{}}
}

// Snapshot is an immutable copy of the table.
type Snapshot struct {
	Services []ServiceConfig `json:"services"`
	Timeouts Timeouts        `json:"timeouts"`
}

// ServiceConfig is a service with its real servers in the kernel's order
// (most recently added first).
type ServiceConfig struct {
	Service
	Dests []Dest `json:"dests"`
}

// Snapshot copies the table.
func (t *Table) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Snapshot{Timeouts: t.timeouts, Services: make([]ServiceConfig, 0, len(t.services))}
	for _, e := range t.services {
		svc := e.svc
		svc.LocalAddrs = slices.Clone(svc.LocalAddrs)
		s.Services = append(s.Services, ServiceConfig{Service: svc, Dests: slices.Clone(e.dests)})
	}
	return s
}

// Timeouts returns the connection timeouts.
func (t *Table) Timeouts() Timeouts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.timeouts
}

// Exec applies one command. OpZero is accepted (it only checks that the
// service exists); the engine clears its counters. A refused command
// changes nothing.
func (t *Table) Exec(c Command) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exec(c, nil)
}

func (t *Table) exec(c Command, tx *Tx) error {
	switch c.Op {
	case OpClear:
		t.clear(tx)
		return nil
	case OpSetTimeout:
		if c.Timeouts == nil {
			return ErrInvalidTimeout
		}
		t.setTimeouts(*c.Timeouts, tx)
		return nil
	}
	if c.Service == nil {
		if c.Op == OpZero {
			return nil
		}
		return fmt.Errorf("%s: no service given", c.Op)
	}
	switch c.Op {
	case OpAddService:
		return t.addService(*c.Service, tx)
	case OpEditService:
		return t.editService(*c.Service, tx)
	case OpDelService:
		return t.delService(c.Service.ServiceKey, tx)
	case OpZero:
		if t.byKey[c.Service.ServiceKey] == nil {
			return ErrNoService
		}
		return nil
	case OpAddDest, OpEditDest, OpDelDest:
		if c.Dest == nil {
			return fmt.Errorf("%s: no real server given", c.Op)
		}
		e := t.byKey[c.Service.ServiceKey]
		if e == nil {
			return ErrServiceNotDefined
		}
		switch c.Op {
		case OpAddDest:
			return t.addDest(e, *c.Dest, tx)
		case OpEditDest:
			return t.editDest(e, *c.Dest, tx)
		default:
			return e.delDest(*c.Dest, tx)
		}
	}
	return fmt.Errorf("unknown operation %q", c.Op)
}

// ValidateService checks a service as the kernel does.
func ValidateService(s *Service) error {
	if !slices.Contains(Schedulers, s.Scheduler) {
		return ErrNoScheduler
	}
	if s.PE != "" && s.PE != "sip" {
		return ErrNoScheduler
	}
	if !s.Addr.IsValid() {
		return ErrInvalid
	}
	if !s.IsFWMark() && s.Proto != TCP && s.Proto != UDP && s.Proto != SCTP {
		return ErrInvalid
	}
	// IPv4 takes any contiguous mask, /0 included (one persistence
	// template for every client); the kernel refuses an IPv6 prefix
	// outside 1..128.
	lo, hi := 0, 32
	if s.IPv6() {
		lo, hi = 1, 128
	}
	if s.Netmask < lo || s.Netmask > hi {
		return ErrInvalid
	}
	if s.ProxyProtocol < 0 || s.ProxyProtocol > 2 {
		return fmt.Errorf("PROXY protocol version %d not supported (want 1 or 2)", s.ProxyProtocol)
	}
	return nil
}

func normalizeService(s *Service) {
	if s.Scheduler == "" {
		s.Scheduler = DefaultScheduler
	}
	if !s.Persistent() {
		// The mask only groups clients of a persistent service; any
		// other service lists with the full one, as the kernel's do.
		s.Netmask = FullNetmask(s.IPv6())
	}
	if s.Addr.Is4In6() {
		s.Addr = s.Addr.Unmap()
	}
	if s.Persistent() && s.Timeout == 0 {
		s.Timeout = DefaultPersistence
	}
	s.Flags |= FlagHashed
}

func (t *Table) addService(s Service, tx *Tx) error {
	normalizeService(&s)
	if err := ValidateService(&s); err != nil {
		return err
	}
	if t.byKey[s.ServiceKey] != nil {
		return ErrServiceExists
	}
	s.LocalAddrs = slices.Clone(s.LocalAddrs)
	e := &entry{svc: s}
	t.services = append(t.services, e)
	t.byKey[s.ServiceKey] = e
	tx.record(func() {
		t.services = t.services[:len(t.services)-1]
		delete(t.byKey, s.ServiceKey)
	}, Command{Op: OpAddService, Service: svcCopy(&s)})
	return nil
}

func (t *Table) editService(s Service, tx *Tx) error {
	normalizeService(&s)
	if err := ValidateService(&s); err != nil {
		return err
	}
	e := t.byKey[s.ServiceKey]
	if e == nil {
		return ErrNoService
	}
	for _, d := range e.dests {
		if err := t.checkDest(&s, &d); err != nil {
			return err
		}
	}
	s.LocalAddrs = slices.Clone(s.LocalAddrs)
	old := e.svc
	e.svc = s
	tx.record(func() { e.svc = old }, Command{Op: OpEditService, Service: svcCopy(&s)})
	return nil
}

func (t *Table) delService(k ServiceKey, tx *Tx) error {
	e := t.byKey[k]
	if e == nil {
		return ErrNoService
	}
	i := slices.Index(t.services, e)
	t.services = slices.Delete(t.services, i, i+1)
	delete(t.byKey, k)
	tx.record(func() {
		t.services = slices.Insert(t.services, i, e)
		t.byKey[k] = e
	}, Command{Op: OpDelService, Service: &Service{ServiceKey: k}})
	return nil
}

func (t *Table) clear(tx *Tx) {
	services, byKey := t.services, t.byKey
	t.services, t.byKey = nil, map[ServiceKey]*entry{}
	if tx == nil {
		return
	}
	changes := make([]Command, len(services))
	for i, e := range services {
		changes[i] = Command{Op: OpDelService, Service: &Service{ServiceKey: e.svc.ServiceKey}}
	}
	tx.record(func() { t.services, t.byKey = services, byKey }, changes...)
}

// ValidateDest checks a real server as the kernel does.
func ValidateDest(s *Service, d *Dest) error {
	if d.Weight < 0 {
		return ErrInvalid
	}
	if d.LThreshold > d.UThreshold {
		return ErrRange
	}
	if !unicast(d.Addr) {
		return ErrInvalid
	}
	if d.Addr.Is4() != s.Addr.Is4() && d.Method != Tunnel {
		return ErrFamily
	}
	return nil
}

// limitedBroadcast is 255.255.255.255, which the kernel's address type
// lookup calls broadcast on every host.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// unicast reports whether a real server may have addr: the kernel refuses
// (EINVAL) what is not unicast, as checked on Linux 6.1: the unspecified
// address, multicast and the limited broadcast. (It also refuses a
// subnet's broadcast address configured on the director, which the table
// cannot know.)
func unicast(addr netip.Addr) bool {
	return addr.IsValid() && !addr.IsUnspecified() && !addr.IsMulticast() && addr != limitedBroadcast
}

func (t *Table) checkDest(s *Service, d *Dest) error {
	if err := ValidateDest(s, d); err != nil {
		return err
	}
	if t.check != nil {
		return t.check(s, d)
	}
	return nil
}

// normalizeDest keeps the port as given, like the kernel: ipvsadm itself
// gives a real server without a port the service's port.
func normalizeDest(_ *Service, d *Dest) {
	d.Addr = d.Addr.Unmap()
}

func (t *Table) addDest(e *entry, d Dest, tx *Tx) error {
	normalizeDest(&e.svc, &d)
	if err := t.checkDest(&e.svc, &d); err != nil {
		return err
	}
	if e.index(d) >= 0 {
		return ErrDestExists
	}
	old := e.dests
	e.dests = slices.Insert(slices.Clip(e.dests), 0, d)
	tx.record(func() { e.dests = old }, Command{Op: OpAddDest, Service: &Service{ServiceKey: e.svc.ServiceKey}, Dest: &d})
	return nil
}

func (t *Table) editDest(e *entry, d Dest, tx *Tx) error {
	normalizeDest(&e.svc, &d)
	if err := t.checkDest(&e.svc, &d); err != nil {
		return err
	}
	i := e.index(d)
	if i < 0 {
		return ErrNoDest
	}
	old := e.dests[i]
	e.dests[i] = d
	tx.record(func() { e.dests[i] = old }, Command{Op: OpEditDest, Service: &Service{ServiceKey: e.svc.ServiceKey}, Dest: &d})
	return nil
}

func (e *entry) delDest(d Dest, tx *Tx) error {
	normalizeDest(&e.svc, &d)
	i := e.index(d)
	if i < 0 {
		return ErrNoDest
	}
	old := e.dests
	e.dests = slices.Delete(slices.Clone(e.dests), i, i+1)
	d = old[i]
	tx.record(func() { e.dests = old }, Command{Op: OpDelDest, Service: &Service{ServiceKey: e.svc.ServiceKey}, Dest: &d})
	return nil
}

func (e *entry) index(d Dest) int {
	return slices.IndexFunc(e.dests, func(x Dest) bool { return x.Addr == d.Addr && x.Port == d.Port })
}

func (t *Table) setTimeouts(to Timeouts, tx *Tx) {
	old := t.timeouts
	defer func() {
		if t.timeouts != old {
			now := t.timeouts
			tx.record(func() { t.timeouts = old }, Command{Op: OpSetTimeout, Timeouts: &now})
		}
	}()
	// ipvsadm --set: a zero leaves that timeout unchanged.
	if to.TCP != 0 {
		t.timeouts.TCP = to.TCP
	}
	if to.TCPFin != 0 {
		t.timeouts.TCPFin = to.TCPFin
	}
	if to.UDP != 0 {
		t.timeouts.UDP = to.UDP
	}
}

// Replace makes the table hold exactly the snapshot's services and
// timeouts, for rolling back a change the engine refused and for applying a
// reloaded configuration. The snapshot is validated first; on error the
// table is unchanged.
func (t *Table) Replace(s *Snapshot) error {
	next := make([]*entry, 0, len(s.Services))
	byKey := make(map[ServiceKey]*entry, len(s.Services))
	for _, sc := range s.Services {
		e := &entry{svc: sc.Service}
		normalizeService(&e.svc)
		if err := ValidateService(&e.svc); err != nil {
			return fmt.Errorf("%s: %w", e.svc.ServiceKey, err)
		}
		for _, d := range sc.Dests {
			normalizeDest(&e.svc, &d)
			if err := t.checkDest(&e.svc, &d); err != nil {
				return fmt.Errorf("%s -> %s: %w", e.svc.ServiceKey, d.AddrPort(), err)
			}
			if e.index(d) >= 0 {
				return fmt.Errorf("%s -> %s: %w", e.svc.ServiceKey, d.AddrPort(), ErrDestExists)
			}
			e.dests = append(e.dests, d)
		}
		if byKey[e.svc.ServiceKey] != nil {
			return fmt.Errorf("%s: %w", e.svc.ServiceKey, ErrServiceExists)
		}
		e.svc.LocalAddrs = slices.Clone(e.svc.LocalAddrs)
		next = append(next, e)
		byKey[e.svc.ServiceKey] = e
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.services, t.byKey = next, byKey
	t.timeouts = s.Timeouts
	return nil
}

func svcCopy(s *Service) *Service {
	c := *s
	c.LocalAddrs = slices.Clone(s.LocalAddrs)
	return &c
}

// Tx is a group of commands applied to a table that can be undone as one,
// and the changes they made, for the engine. Begin one with Table.Begin;
// the table must not be changed otherwise until Commit or Rollback.
type Tx struct {
	t       *Table
	undo    []func()
	changes []Command
}

// Begin starts a transaction.
func (t *Table) Begin() *Tx { return &Tx{t: t} }

// Exec applies one command as Table.Exec does, remembering how to undo it.
func (x *Tx) Exec(c Command) error {
	x.t.mu.Lock()
	defer x.t.mu.Unlock()
	return x.t.exec(c, x)
}

// Changes are the changes the transaction's commands made, in order, in
// the table's normalized form: services and real servers as the table
// holds them, a clear as one delete-service per service, --set as the
// resulting timeouts, and nothing for a zero or a --set that changed
// nothing. Real-server changes and delete-service carry only the
// service's key.
func (x *Tx) Changes() []Command { return x.changes }

// Rollback undoes every change of the transaction, newest first.
func (x *Tx) Rollback() {
	x.t.mu.Lock()
	defer x.t.mu.Unlock()
	for i := len(x.undo) - 1; i >= 0; i-- {
		x.undo[i]()
	}
	x.undo, x.changes = nil, nil
}

func (x *Tx) record(undo func(), changes ...Command) {
	if x == nil {
		return
	}
	x.undo = append(x.undo, undo)
	x.changes = append(x.changes, changes...)
}
