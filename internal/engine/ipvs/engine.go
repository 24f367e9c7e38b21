// Package ipvs is the kernel engine: it programs the Linux kernel's own IP
// Virtual Server table (the ip_vs modules) over generic netlink, as ipvsadm
// and keepalived do, so every forwarding method and scheduler the kernel
// has is served by the kernel, and ipvsadm reads the same table.
//
// The IPVS generic-netlink family is spoken through
// github.com/cloudflare/ipvs (services, real servers with their tunnel
// options, 64-bit counters and rates, timeouts); what it lacks (zeroing
// counters, flushing the table) is sent in genl.go on the same
// github.com/mdlayher/genetlink. Connections are read from
// /proc/net/ip_vs_conn, as ipvsadm -Lnc does.
//
// # Ownership
//
// The kernel's table may hold services gvsd did not add (ipvsadm, another
// tool). As keepalived, the engine owns what it added: it lists, edits,
// zeroes and removes only those, and leaves the others alone, unless
// Options.Flush (keepalived's lvs_flush) clears the whole table when the
// engine starts, or Options.FlushOnStop (lvs_flush_onstop) when it stops.
// Without FlushOnStop, Close removes the services the engine added.
package ipvs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"

	kipvs "github.com/cloudflare/ipvs"

	"github.com/gvs-lb/gvs/internal/engine"
	table "github.com/gvs-lb/gvs/internal/ipvs"
)

// Options configure the engine.
type Options struct {
	// Flush clears the kernel's whole IPVS table when the engine starts
	// (keepalived's lvs_flush), services gvsd did not add included.
	Flush bool
	// FlushOnStop clears the whole table when the engine stops
	// (lvs_flush_onstop); without it, Close removes only what it added.
	FlushOnStop bool
}

// Engine drives the kernel's IPVS table.
type Engine struct {
	log  *slog.Logger
	opts Options

	mu    sync.Mutex
	c     kipvs.Client
	g     *genl
	order []table.ServiceKey                        // owned services, in the order added
	owned map[table.ServiceKey]*table.ServiceConfig // what the engine put in the kernel
}

var _ engine.Engine = (*Engine)(nil)

// New connects to the kernel's IPVS family. It fails with an error that
// says what to load when the kernel has no ip_vs.
func New(log *slog.Logger, opts Options) (*Engine, error) {
	g, err := dialGenl()
	if err != nil {
		return nil, fmt.Errorf("the kernel has no IPVS (generic netlink family \"IPVS\": %v): load the ip_vs module (modprobe ip_vs) or run gvsd --engine xdp or proxy", err)
	}
	c, err := kipvs.New()
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("connecting to the kernel's IPVS: %w", err)
	}
	e := &Engine{log: log, opts: opts, c: c, g: g, owned: map[table.ServiceKey]*table.ServiceConfig{}}
	if opts.Flush {
		if err := g.flush(); err != nil {
			e.close()
			return nil, fmt.Errorf("flushing the kernel's IPVS table (lvs_flush): %w", err)
		}
		log.Info("flushed the kernel's IPVS table (lvs_flush)")
	}
	return e, nil
}

// Name is "ipvs".
func (e *Engine) Name() string { return "ipvs" }

// CheckDest refuses what the kernel's IPVS cannot do (see CheckDest).
func (e *Engine) CheckDest(svc *table.Service, d *table.Dest) error { return CheckDest(svc, d) }

// CheckDest refuses what the kernel's IPVS cannot do: FullNAT and the
// PROXY protocol are GVS's, served by the xdp and proxy engines. gvsd -t
// checks a configuration with it, without an engine.
func CheckDest(svc *table.Service, d *table.Dest) error {
	if svc.ProxyProtocol != 0 {
		return errors.New("the PROXY protocol is not in the kernel's IPVS: run gvsd --engine proxy for it")
	}
	if len(svc.LocalAddrs) > 0 || d.Method == table.FullNAT {
		return errors.New("FullNAT (--fullnat) is not in the kernel's IPVS: run gvsd --engine xdp for it")
	}
	return nil
}

// Apply makes the batch's changes in the kernel, in order; when one fails
// the ones made are undone, in reverse.
func (e *Engine) Apply(batch []table.Command) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range batch {
		switch c.Op {
		case table.OpAddService, table.OpEditService, table.OpDelService,
			table.OpAddDest, table.OpEditDest, table.OpDelDest, table.OpSetTimeout:
		default:
			return fmt.Errorf("%s is not a change an engine applies", c.Op)
		}
	}
	var undo []func() error
	for _, c := range batch {
		u, err := e.apply(c)
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				if uerr := undo[i](); uerr != nil {
					e.log.Error("undoing a refused batch in the kernel's IPVS table", "error", uerr)
				}
			}
			return fmt.Errorf("%s: %w", describe(c), err)
		}
		undo = append(undo, u)
	}
	return nil
}

func describe(c table.Command) string {
	switch {
	case c.Dest != nil && c.Service != nil:
		return fmt.Sprintf("%s %s -> %s", c.Op, c.Service.ServiceKey, c.Dest.AddrPort())
	case c.Service != nil:
		return fmt.Sprintf("%s %s", c.Op, c.Service.ServiceKey)
	}
	return string(c.Op)
}

// apply makes one change and returns what undoes it.
func (e *Engine) apply(c table.Command) (undo func() error, err error) {
	if c.Op == table.OpSetTimeout {
		if c.Timeouts == nil {
			return nil, errors.New("no timeouts given")
		}
		old, err := e.c.Config()
		if err != nil {
			return nil, err
		}
		t := *c.Timeouts
		if err := e.c.SetConfig(kipvs.Config{TCPTimeout: t.TCP, TCPFinTimeout: t.TCPFin, UDPTimeout: t.UDP}); err != nil {
			return nil, err
		}
		return func() error { return e.c.SetConfig(old) }, nil
	}
	if c.Service == nil {
		return nil, errors.New("no service given")
	}
	k := c.Service.ServiceKey
	cur := e.owned[k]
	switch c.Op {
	case table.OpAddService:
		if cur != nil {
			return nil, table.ErrServiceExists
		}
		if err := e.g.newService(c.Service); err != nil {
			return nil, serviceError(c.Service, err)
		}
		e.owned[k] = &table.ServiceConfig{Service: *c.Service}
		e.order = append(e.order, k)
		return func() error { return e.removeService(k) }, nil
	case table.OpEditService:
		if cur == nil {
			return nil, table.ErrNoService
		}
		old := cur.Service
		if err := e.g.setService(c.Service); err != nil {
			return nil, serviceError(c.Service, err)
		}
		cur.Service = *c.Service
		return func() error {
			cur.Service = old
			return e.g.setService(&old)
		}, nil
	case table.OpDelService:
		if cur == nil {
			return nil, table.ErrNoService
		}
		if err := e.removeService(k); err != nil {
			return nil, err
		}
		return func() error { return e.restoreService(cur) }, nil
	}

	if c.Dest == nil {
		return nil, errors.New("no real server given")
	}
	if cur == nil {
		return nil, table.ErrNoService
	}
	ks := kService(&cur.Service)
	d := *c.Dest
	i := slices.IndexFunc(cur.Dests, func(o table.Dest) bool { return o.AddrPort() == d.AddrPort() })
	switch c.Op {
	case table.OpAddDest:
		if i >= 0 {
			return nil, table.ErrDestExists
		}
		if err := e.c.CreateDestination(ks, kDest(&d)); err != nil {
			return nil, destError(err)
		}
		cur.Dests = append([]table.Dest{d}, cur.Dests...)
		return func() error { return e.removeDest(cur, d) }, nil
	case table.OpEditDest:
		if i < 0 {
			return nil, table.ErrNoDest
		}
		old := cur.Dests[i]
		if err := e.c.UpdateDestination(ks, kDest(&d)); err != nil {
			return nil, destError(err)
		}
		cur.Dests[i] = d
		return func() error {
			if j := slices.IndexFunc(cur.Dests, func(o table.Dest) bool { return o.AddrPort() == old.AddrPort() }); j >= 0 {
				cur.Dests[j] = old
			}
			return e.c.UpdateDestination(ks, kDest(&old))
		}, nil
	case table.OpDelDest:
		if i < 0 {
			return nil, table.ErrNoDest
		}
		old := cur.Dests[i]
		if err := e.removeDest(cur, old); err != nil {
			return nil, err
		}
		return func() error {
			if err := e.c.CreateDestination(ks, kDest(&old)); err != nil {
				return err
			}
			cur.Dests = append([]table.Dest{old}, cur.Dests...)
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown change %q", c.Op)
}

func (e *Engine) removeService(k table.ServiceKey) error {
	sc := e.owned[k]
	if err := e.c.RemoveService(kService(&sc.Service)); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	delete(e.owned, k)
	e.order = slices.DeleteFunc(e.order, func(o table.ServiceKey) bool { return o == k })
	return nil
}

// restoreService adds a removed service again, with its real servers (in
// the kernel's order: each new one goes first, so the last is added first).
func (e *Engine) restoreService(sc *table.ServiceConfig) error {
	if err := e.g.newService(&sc.Service); err != nil {
		return err
	}
	for i := len(sc.Dests) - 1; i >= 0; i-- {
		if err := e.c.CreateDestination(kService(&sc.Service), kDest(&sc.Dests[i])); err != nil {
			return err
		}
	}
	e.owned[sc.ServiceKey] = sc
	e.order = append(e.order, sc.ServiceKey)
	return nil
}

func (e *Engine) removeDest(sc *table.ServiceConfig, d table.Dest) error {
	if err := e.c.RemoveDestination(kService(&sc.Service), kDest(&d)); err != nil {
		return destError(err)
	}
	sc.Dests = slices.DeleteFunc(sc.Dests, func(o table.Dest) bool { return o.AddrPort() == d.AddrPort() })
	return nil
}

// serviceError says what a refused service change means.
func serviceError(s *table.Service, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT) && s.PE != "":
		// The kernel loads ip_vs_<name> and ip_vs_pe_<name> itself;
		// ENOENT means it could not load one of them.
		return fmt.Errorf("the kernel has no %q scheduler or no %q persistence engine: load ip_vs_%s and ip_vs_pe_%s (modprobe), or check the names", s.Scheduler, s.PE, s.Scheduler, s.PE)
	case errors.Is(err, syscall.ENOENT):
		// The kernel loads ip_vs_<name> itself; ENOENT means it could not.
		return fmt.Errorf("the kernel has no %q scheduler: its module ip_vs_%s is not installed or cannot be loaded (modprobe ip_vs_%s)", s.Scheduler, s.Scheduler, s.Scheduler)
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("the kernel's IPVS table already has %s, added outside gvsd (ipvsadm?): delete it (ipvsadm -D) or set lvs_flush to clear the table at start: %w", s.ServiceKey, table.ErrServiceExists)
	}
	return err
}

func destError(err error) error {
	switch {
	case errors.Is(err, syscall.EEXIST):
		return table.ErrDestExists
	case errors.Is(err, syscall.ENOENT):
		return table.ErrNoDest
	}
	return err
}

// kService names a service as the library sends it in the commands that
// read only the key (real servers, removal, lookups); services themselves
// are added and edited by genl.newService and setService.
func kService(s *table.Service) kipvs.Service {
	ks := kipvs.Service{
		Scheduler: s.Scheduler,
		FWMark:    s.FWMark,
		Family:    kipvs.AddressFamily(family(s.Addr)),
	}
	if !s.IsFWMark() {
		ks.Address = s.Addr.Unmap()
		ks.Port = s.Port
		ks.Protocol = kipvs.Protocol(s.Proto)
	}
	return ks
}

var methods = map[table.Method]kipvs.ForwardType{
	table.Masq:   kipvs.Masquerade,
	table.Route:  kipvs.DirectRoute,
	table.Tunnel: kipvs.Tunnel,
}

// kDest is a real server as the library sends it.
func kDest(d *table.Dest) kipvs.Destination {
	return kipvs.Destination{
		Address:        d.Addr.Unmap(),
		Port:           d.Port,
		Family:         kipvs.AddressFamily(family(d.Addr)),
		FwdMethod:      methods[d.Method],
		Weight:         uint32(d.Weight),
		UpperThreshold: d.UThreshold,
		LowerThreshold: d.LThreshold,
		TunnelType:     kipvs.TunnelType(d.TunType),
		TunnelPort:     d.TunPort,
		TunnelFlags:    kipvs.TunnelFlags(d.TunFlags),
	}
}

// Status reads the owned services' counters, rates and real servers from
// the kernel; services in the order added, real servers in the kernel's.
func (e *Engine) Status() []table.ServiceStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]table.ServiceStatus, 0, len(e.order))
	for _, k := range e.order {
		out = append(out, e.status(e.owned[k]))
	}
	return out
}

// StatusOf reads the one owned service key names from the kernel.
func (e *Engine) StatusOf(key table.ServiceKey) (table.ServiceStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sc := e.owned[key]
	if sc == nil {
		return table.ServiceStatus{}, false
	}
	return e.status(sc), true
}

// status reads sc's counters, rates and real servers from the kernel;
// e.mu is held.
func (e *Engine) status(sc *table.ServiceConfig) table.ServiceStatus {
	k := sc.ServiceKey
	ks := kService(&sc.Service)
	st := table.ServiceStatus{Service: sc.Service}
	if got, err := e.c.Service(ks); err == nil {
		st.Flags = uint32(got.Flags)
		st.Stats, st.Rates = stats(got.Stats64)
	} else {
		e.log.Warn("reading a service from the kernel's IPVS table", "service", k, "error", err)
	}
	dests, err := e.c.Destinations(ks)
	if err != nil {
		e.log.Warn("reading real servers from the kernel's IPVS table", "service", k, "error", err)
	}
	for _, kd := range dests {
		st.Dests = append(st.Dests, destStatus(kd))
	}
	return st
}

func destStatus(kd kipvs.DestinationExtended) table.DestStatus {
	d := table.DestStatus{
		Dest: table.Dest{
			Addr:       kd.Address,
			Port:       kd.Port,
			Weight:     int32(kd.Weight),
			UThreshold: kd.UpperThreshold,
			LThreshold: kd.LowerThreshold,
			TunType:    table.TunType(kd.TunnelType),
			TunPort:    kd.TunnelPort,
			TunFlags:   uint16(kd.TunnelFlags),
		},
		ActiveConns:  kd.ActiveConnections,
		InactConns:   kd.InactiveConnections,
		PersistConns: kd.PersistentConnections,
	}
	for m, f := range methods {
		if f == kd.FwdMethod&0x7 {
			d.Method = m
		}
	}
	d.Stats, d.Rates = stats(kd.Stats64)
	return d
}

func stats(s kipvs.Stats) (table.Stats, table.Rates) {
	return table.Stats{Conns: s.Connections, InPkts: s.IncomingPackets, OutPkts: s.OutgoingPackets,
			InBytes: s.IncomingBytes, OutBytes: s.OutgoingBytes},
		table.Rates{CPS: s.ConnectionRate, InPPS: s.IncomingPacketRate, OutPPS: s.OutgoingPacketRate,
			InBPS: s.IncomingByteRate, OutBPS: s.OutgoingByteRate}
}

// Conns lists the kernel's connection table (all of it: connections carry
// no owner), as ipvsadm -Lnc.
func (e *Engine) Conns() []table.Conn {
	conns, err := readConns(procConns)
	if err != nil {
		e.log.Warn("reading the kernel's IPVS connections", "error", err)
	}
	return conns
}

// Zero clears the counters of one owned service, or of all owned ones.
func (e *Engine) Zero(key *table.ServiceKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := e.order
	if key != nil {
		keys = []table.ServiceKey{*key}
	}
	for _, k := range keys {
		if e.owned[k] == nil {
			continue
		}
		if err := e.g.zero(&k); err != nil {
			e.log.Warn("zeroing counters in the kernel's IPVS table", "service", k, "error", err)
		}
	}
}

// Close removes the services the engine added (or, with FlushOnStop, the
// whole table). The kernel keeps forwarding established connections of
// removed services until they end; ctx is not waited on.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	if e.opts.FlushOnStop {
		err = e.g.flush()
	} else {
		for _, k := range slices.Clone(e.order) {
			err = errors.Join(err, e.removeService(k))
		}
	}
	e.order, e.owned = nil, map[table.ServiceKey]*table.ServiceConfig{}
	return errors.Join(err, e.close())
}

func (e *Engine) close() error {
	var err error
	if cl, ok := e.c.(interface{ Close() error }); ok {
		err = cl.Close()
	}
	return errors.Join(err, e.g.Close())
}
