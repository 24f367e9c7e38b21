package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Apply makes the program serve exactly the snapshot's services. Real
// servers that stay keep their index, so established connections go on;
// removed ones stop taking new connections and keep forwarding theirs
// until they expire. Scheduler tables are written to the half the program
// does not read, then switched with one update of the service entry.
func (e *Engine) Apply(snap *ipvs.Snapshot) error {
	for i := range snap.Services {
		sc := &snap.Services[i]
		if err := checkService(&sc.Service); err != nil {
			return fmt.Errorf("%s: %w", sc.ServiceKey, err)
		}
		for j := range sc.Dests {
			if err := e.CheckDest(&sc.Service, &sc.Dests[j]); err != nil {
				return fmt.Errorf("%s -> %s: %w", sc.ServiceKey, sc.Dests[j].AddrPort(), err)
			}
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return errors.New("xdp engine: closing")
	}
	e.timeouts = snap.Timeouts
	seen := map[ipvs.ServiceKey]bool{}
	var order []ipvs.ServiceKey
	for i := range snap.Services {
		sc := &snap.Services[i]
		seen[sc.ServiceKey] = true
		order = append(order, sc.ServiceKey)
		s := e.svcs[sc.ServiceKey]
		if s == nil {
			idx, err := e.allocSvc()
			if err != nil {
				return err
			}
			s = &svcState{index: idx, all: map[netip.AddrPort]*destState{}}
			e.svcs[sc.ServiceKey] = s
			e.resetStats(e.objs.SvcStats, idx)
			delete(e.svcBase, idx)
			e.est[estKey{svc: true, index: idx}] = &estimator{}
			if err := e.objs.Cursors.Update(idx, uint64(0), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("xdp engine: resetting the cursor: %w", err)
			}
		}
		s.cfg = sc.Service
		if err := e.applyDests(s, sc.Dests); err != nil {
			return err
		}
		if err := e.writeService(s); err != nil {
			return err
		}
	}
	for k, s := range e.svcs {
		if seen[k] {
			continue
		}
		key := svcKeyOf(k)
		if err := e.objs.Services.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("xdp engine: deleting %s: %w", k, err)
		}
		for _, d := range s.all {
			d.inService = false
			e.writeDest(d)
		}
		s.dests = nil
		delete(e.svcs, k)
		e.retired = append(e.retired, s)
	}
	e.order = order
	e.warnForwarding(snap)
	return nil
}

// warnForwarding logs, once per family, when NAT or FullNAT servers are
// configured while the kernel does not forward that family: the program's
// FIB lookups then fail and the replies cannot be sent.
func (e *Engine) warnForwarding(snap *ipvs.Snapshot) {
	for i := range snap.Services {
		sc := &snap.Services[i]
		for _, d := range sc.Dests {
			if d.Method != ipvs.Masq && d.Method != ipvs.FullNAT {
				continue
			}
			f, key := "/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"
			if !d.Addr.Unmap().Is4() {
				f, key = "/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"
			}
			if e.warned[key] {
				continue
			}
			if b, err := os.ReadFile(f); err == nil && strings.TrimSpace(string(b)) == "0" {
				e.log.Warn("NAT and FullNAT need forwarding; enable it with sysctl -w "+key+"=1", "service", sc.ServiceKey.String())
				e.warned[key] = true
			}
		}
	}
}

// applyDests updates a service's real servers, in the snapshot's (the
// kernel's) order.
func (e *Engine) applyDests(s *svcState, ds []ipvs.Dest) error {
	inSnap := map[netip.AddrPort]bool{}
	s.dests = s.dests[:0]
	for _, cfg := range ds {
		ap := cfg.AddrPort()
		inSnap[ap] = true
		d := s.all[ap]
		if d == nil {
			idx, err := e.allocDest()
			if err != nil {
				return err
			}
			d = &destState{index: idx, svc: s, lastWeight: cfg.Weight}
			s.all[ap] = d
			e.dests[idx] = d
			e.resetStats(e.objs.DestStats, idx)
			delete(e.destBase, idx)
			e.est[estKey{index: idx}] = &estimator{}
			if err := e.objs.Loads.Update(idx, lbDestLoad{}, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("xdp engine: resetting counters: %w", err)
			}
		} else if cfg.Weight != 0 {
			d.lastWeight = cfg.Weight
		}
		old := d.cfg
		d.cfg = cfg
		d.inService = true
		if upper := cfg.UThreshold; upper == 0 || upper > old.UThreshold {
			e.clearOverload(d.index)
		}
		if err := e.resolve(d); err != nil {
			e.log.Warn("real server not reachable yet", "dest", ap, "err", err)
		}
		if err := e.writeDest(d); err != nil {
			return err
		}
		s.dests = append(s.dests, d)
	}
	for ap, d := range s.all {
		if !inSnap[ap] && d.inService {
			d.inService = false
			if err := e.writeDest(d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) clearOverload(idx uint32) {
	var l lbDestLoad
	if e.objs.Loads.Lookup(idx, &l) == nil && l.Overloaded != 0 {
		l.Overloaded = 0
		e.objs.Loads.Update(idx, l, ebpf.UpdateAny)
	}
}

// writeDest writes a real server's entry.
func (e *Engine) writeDest(d *destState) error {
	addr, fam := addrWords(d.cfg.Addr)
	info := lbDestInfo{
		Addr:       addr,
		Ifindex:    uint32(d.ifindex),
		Weight:     d.cfg.Weight,
		Uthreshold: d.cfg.UThreshold,
		Svc:        d.svc.index,
		Port:       be16(d.cfg.Port),
		TunPort:    be16(d.cfg.TunPort),
		Family:     fam,
		Flags:      destInUse,
		Mtu:        uint32(d.mtu),
	}
	if d.inService {
		info.Flags |= destAvailable
	}
	switch d.cfg.Method {
	case ipvs.Masq:
		info.Method = methodNAT
	case ipvs.FullNAT:
		info.Method = methodFullNAT
	case ipvs.Tunnel:
		info.Method = methodTunnel
		if d.cfg.TunType == ipvs.TunGUE {
			info.TunType = tunGUE
		}
	default:
		info.Method = methodRoute
	}
	if len(d.dmac) == 6 && len(d.smac) == 6 {
		copy(info.Dmac[:], d.dmac)
		copy(info.Smac[:], d.smac)
		info.Flags |= destHaveMAC
	}
	if err := e.objs.Dests.Update(d.index, info, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdp engine: writing real server %s: %w", d.cfg.AddrPort(), err)
	}
	return nil
}

// writeService writes the table to the idle half, then the service entry
// that points the program at it.
func (e *Engine) writeService(s *svcState) error {
	tds := make([]tableDest, 0, len(s.dests))
	for _, d := range s.dests {
		tds = append(tds, tableDest{index: d.index, addr: d.cfg.AddrPort(), weight: d.cfg.Weight, lastWeight: d.lastWeight})
	}
	tab, err := buildTable(s.cfg.Scheduler, tds)
	if err != nil {
		return fmt.Errorf("%s: %w", s.cfg.ServiceKey, err)
	}
	gen := s.gen ^ 1
	base := (s.index*2 + gen) * tabSize
	keys := make([]uint32, len(tab))
	for i := range tab {
		keys[i] = base + uint32(i)
	}
	if len(tab) > 0 {
		if _, err := e.objs.Tables.BatchUpdate(keys, tab, nil); err != nil {
			for i := range tab {
				if err := e.objs.Tables.Update(keys[i], tab[i], ebpf.UpdateAny); err != nil {
					return fmt.Errorf("xdp engine: writing the scheduler table: %w", err)
				}
			}
		}
	}
	info := lbSvcInfo{
		Index:  s.index,
		Sched:  schedKinds[s.cfg.Scheduler],
		Gen:    gen,
		TabLen: uint32(len(tab)),
	}
	if s.cfg.Flags&ipvs.SchedFlag1 != 0 {
		info.Flags |= svcFallback
	}
	if s.cfg.Flags&ipvs.SchedFlag2 != 0 {
		info.Flags |= svcHashPort
	}
	if onePacket(&s.cfg) {
		info.Flags |= svcOnePacket
	}
	_, fam := addrWords(s.cfg.Addr)
	if s.cfg.Persistent() {
		info.Flags |= svcPersistent
		info.Ptimeout = s.cfg.Timeout
		info.Pmask = maskWords(s.cfg.Netmask, fam)
	}
	for _, a := range s.cfg.LocalAddrs {
		w, f := addrWords(a)
		if f != fam || info.Nladdrs >= maxLocalAddrs {
			continue
		}
		info.Laddr[info.Nladdrs] = w
		info.Nladdrs++
	}
	key := svcKeyOf(s.cfg.ServiceKey)
	if err := e.objs.Services.Update(&key, &info, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdp engine: writing %s: %w", s.cfg.ServiceKey, err)
	}
	if s.cfg.Scheduler == "wrr" && !slicesEqual(s.table, tab) {
		// The kernel's wrr starts over from the list head on a change.
		e.objs.Cursors.Update(s.index, uint64(0), ebpf.UpdateAny)
	}
	s.gen = gen
	s.table = tab
	return nil
}

func slicesEqual(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// resetStats zeroes a per-CPU stats slot being reused.
func (e *Engine) resetStats(m *ebpf.Map, idx uint32) {
	zero := make([]lbStats, runtime.NumCPU())
	if n, err := ebpf.PossibleCPU(); err == nil {
		zero = make([]lbStats, n)
	}
	m.Update(idx, zero, ebpf.UpdateAny)
}

// Flags and methods, as in bpf/xdp_lb.h.
const (
	svcPersistent = 0x1
	svcFallback   = 0x2
	svcHashPort   = 0x4
	svcOnePacket  = 0x8

	destInUse     = 0x1
	destAvailable = 0x2
	destHaveMAC   = 0x4

	methodRoute   = 0
	methodTunnel  = 1
	methodNAT     = 2
	methodFullNAT = 3
	tunGUE        = 1
)
