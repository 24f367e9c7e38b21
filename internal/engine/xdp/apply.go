package xdp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Apply makes the batch's changes (see package engine), all or none.
// Everything that can refuse the batch is checked before anything is
// written: the services and real servers the engine cannot forward, its
// capacity, and the scheduler tables of the touched services, which are
// built then. Next hops of new real servers are resolved over netlink
// before the engine's lock is taken. Only the touched services' entries
// and tables are written. Real servers that stay keep their index, so
// established connections go on; removed ones stop taking new
// connections and keep forwarding theirs until they expire. Scheduler
// tables are written to the half the program does not read, then
// switched with one update of the service entry. Only a failure of the
// kernel's map updates, which do not fail on these array and hash maps of
// fixed keys, could stop a batch half way.
func (e *Engine) Apply(batch []ipvs.Command) error {
	keys, since := e.newHops(batch)
	hops := findNextHops(keys, true)

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return errors.New("xdp engine: closing")
	}
	p, err := engine.Fold(batch, func(k ipvs.ServiceKey) (ipvs.ServiceConfig, bool) {
		s := e.svcs[k]
		if s == nil {
			return ipvs.ServiceConfig{}, false
		}
		return s.config(), true
	})
	if err != nil {
		return err
	}
	if err := e.check(p); err != nil {
		return err
	}

	gone := map[ipvs.ServiceKey]bool{} // deleted, or deleted and added again
	for _, u := range p.Updates {
		if u.Removed() {
			e.retire(u.Key)
			gone[u.Key] = true
		}
	}
	// The real servers first, written in batches (flushDests), then the
	// tables and service entries that point at them.
	var ws destWrites
	changed := make([]*svcState, 0, len(p.Updates))
	for _, u := range p.Updates {
		if u.Config == nil {
			continue
		}
		s := e.svcs[u.Key]
		if s == nil {
			s = e.revive(u.Key) // a previous gvsd's, from the pinned maps
		}
		if s == nil {
			idx, _ := e.allocSvc() // check counted the free slots
			s = &svcState{index: idx, all: map[netip.AddrPort]*destState{}}
			e.svcs[u.Key] = s
			e.resetStats(e.objs.SvcStats, idx)
			delete(e.svcBase, idx)
			e.est[estKey{svc: true, index: idx}] = &estimator{}
			if err := e.objs.Cursors.Update(idx, uint64(0), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("xdp engine: resetting the cursor: %w", err)
			}
		}
		s.cfg = u.Config.Service
		e.applyDests(s, u.Config.Dests, hops, since, &ws)
		changed = append(changed, s)
		e.warnForwarding(u.Config)
	}
	if err := e.flushDests(&ws); err != nil {
		return err
	}
	for _, s := range changed {
		if err := e.writeService(s); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		e.order = slices.DeleteFunc(e.order, func(k ipvs.ServiceKey) bool { return gone[k] })
	}
	e.order = append(e.order, p.Added...)
	if p.Timeouts != nil {
		e.timeouts = *p.Timeouts
	}
	return e.syncClassifier()
}

// newHops lists the real servers of the batch whose next hop the engine
// has not looked for: new ones, and ones whose method changed. One it
// could not resolve yet is left to the periodic refresh, so that a
// checker's verdict on a server that does not answer ARP does not wait.
// It also returns e.neighSeq, for setNextHop.
func (e *Engine) newHops(batch []ipvs.Command) ([]hopKey, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var keys []hopKey
	deleted := map[ipvs.ServiceKey]bool{} // its real servers come back new
	for _, c := range batch {
		if c.Op == ipvs.OpDelService && c.Service != nil {
			deleted[c.Service.ServiceKey] = true
		}
		if (c.Op != ipvs.OpAddDest && c.Op != ipvs.OpEditDest) || c.Service == nil || c.Dest == nil {
			continue
		}
		if s := e.svcs[c.Service.ServiceKey]; s != nil && !deleted[c.Service.ServiceKey] {
			if d := s.all[c.Dest.AddrPort()]; d != nil && hopKeyOf(&d.cfg) == hopKeyOf(c.Dest) {
				continue
			}
		}
		keys = append(keys, hopKeyOf(c.Dest))
	}
	return keys, e.neighSeq
}

// check refuses a plan the engine cannot serve, changing nothing. The
// scheduler tables are built later, by writeService, for which check
// makes sure they can be.
func (e *Engine) check(p *engine.Plan) error {
	newSvcs, newDests := 0, 0
	for _, u := range p.Updates {
		sc := u.Config
		if sc == nil {
			continue
		}
		if err := checkService(&sc.Service); err != nil {
			return fmt.Errorf("%s: %w", sc.ServiceKey, err)
		}
		var s *svcState
		if !u.Added() {
			s = e.svcs[u.Key]
		} else {
			newSvcs++
		}
		for j := range sc.Dests {
			cfg := &sc.Dests[j]
			if err := e.CheckDest(&sc.Service, cfg); err != nil {
				return fmt.Errorf("%s -> %s: %w", sc.ServiceKey, cfg.AddrPort(), err)
			}
			if s == nil || s.all[cfg.AddrPort()] == nil {
				newDests++
			}
		}
		if err := checkTable(sc.Scheduler, sc.Dests); err != nil {
			return fmt.Errorf("%s: %w", sc.ServiceKey, err)
		}
	}
	if newSvcs > e.svcIdx.left {
		return e.tooManyServices()
	}
	if newDests > e.destIdx.left {
		return e.tooManyDests()
	}
	return nil
}

// retire stops serving a service: its entry goes, its real servers take
// no new connections, and its indexes stay reserved while its
// connections live.
func (e *Engine) retire(k ipvs.ServiceKey) {
	s := e.svcs[k]
	key := svcKeyOf(k)
	if err := e.objs.Services.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		e.log.Error("deleting a service entry", "service", k.String(), "error", err)
	}
	for _, d := range s.all {
		d.inService = false
		e.writeDest(d)
	}
	s.dests = nil
	delete(e.svcs, k)
	e.deleteTable(s.index * 2)
	e.deleteTable(s.index*2 + 1)
	delete(e.idle, s)
	e.retired = append(e.retired, s)
}

// config is the service with its real servers, as engine.Fold wants it.
func (s *svcState) config() ipvs.ServiceConfig {
	sc := ipvs.ServiceConfig{Service: s.cfg, Dests: make([]ipvs.Dest, len(s.dests))}
	sc.LocalAddrs = slices.Clone(sc.LocalAddrs)
	for i, d := range s.dests {
		sc.Dests[i] = d.cfg
	}
	return sc
}

// warnForwarding logs, once per family, when NAT or FullNAT servers are
// configured while the kernel does not forward that family: the program's
// FIB lookups then fail and the replies cannot be sent.
func (e *Engine) warnForwarding(sc *ipvs.ServiceConfig) {
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

// applyDests updates a service's real servers, in the kernel's order.
// New real servers, and ones whose method changed, take the next hop
// found for them in hops. Their entries go to ws, for flushDests.
func (e *Engine) applyDests(s *svcState, ds []ipvs.Dest, hops map[hopKey]*nextHop, since uint64, ws *destWrites) {
	inSnap := map[netip.AddrPort]bool{}
	s.dests = s.dests[:0]
	for _, cfg := range ds {
		ap := cfg.AddrPort()
		inSnap[ap] = true
		d := s.all[ap]
		fresh := d == nil || hopKeyOf(&d.cfg) != hopKeyOf(&cfg)
		if d == nil {
			idx, _ := e.allocDest() // check counted the free slots
			d = &destState{index: idx, svc: s, lastWeight: cfg.Weight}
			s.all[ap] = d
			e.dests[idx] = d
			ws.fresh = append(ws.fresh, idx)
			delete(e.destBase, idx)
			e.est[estKey{index: idx}] = &estimator{}
		} else {
			if cfg.Weight != 0 {
				d.lastWeight = cfg.Weight
			}
			if upper := cfg.UThreshold; upper == 0 || upper > d.cfg.UThreshold {
				e.clearOverload(d.index)
			}
		}
		d.cfg = cfg
		d.inService = true
		if fresh {
			nh := hops[hopKeyOf(&cfg)]
			if nh != nil && nh.err != nil {
				e.log.Warn("real server not reachable yet", "dest", ap, "err", nh.err)
			}
			e.setNextHop(d, nh, since)
		}
		ws.add(d.index, e.destInfo(d))
		s.dests = append(s.dests, d)
	}
	for ap, d := range s.all {
		if !inSnap[ap] && d.inService {
			d.inService = false
			ws.add(d.index, e.destInfo(d))
		}
	}
}

// destWrites are the real-server entries a batch writes, and the new
// real servers whose counters and loads start at zero: flushDests writes
// them in a few system calls (a restore of 40,000 real servers made
// 120,000 otherwise).
type destWrites struct {
	keys  []uint32
	infos []lbDestInfo
	fresh []uint32
}

func (ws *destWrites) add(idx uint32, info lbDestInfo) {
	ws.keys = append(ws.keys, idx)
	ws.infos = append(ws.infos, info)
}

// flushDests writes ws, in batches, or one element at a time where the
// kernel refuses batches.
func (e *Engine) flushDests(ws *destWrites) error {
	if len(ws.fresh) > 0 {
		ncpu, err := ebpf.PossibleCPU()
		if err != nil {
			return fmt.Errorf("xdp engine: %w", err)
		}
		if _, err := e.objs.DestStats.BatchUpdate(ws.fresh, make([]lbStats, len(ws.fresh)*ncpu), nil); err != nil {
			for _, idx := range ws.fresh {
				e.resetStats(e.objs.DestStats, idx)
			}
		}
		if _, err := e.objs.Loads.BatchUpdate(ws.fresh, make([]lbDestLoad, len(ws.fresh)), nil); err != nil {
			for _, idx := range ws.fresh {
				if err := e.objs.Loads.Update(idx, lbDestLoad{}, ebpf.UpdateAny); err != nil {
					return fmt.Errorf("xdp engine: resetting counters: %w", err)
				}
			}
		}
	}
	if len(ws.keys) == 0 {
		return nil
	}
	if _, err := e.objs.Dests.BatchUpdate(ws.keys, ws.infos, nil); err != nil {
		for i, idx := range ws.keys {
			if err := e.objs.Dests.Update(idx, &ws.infos[i], ebpf.UpdateAny); err != nil {
				return fmt.Errorf("xdp engine: writing real server %s: %w", e.dests[idx].cfg.AddrPort(), err)
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
	info := e.destInfo(d)
	if err := e.objs.Dests.Update(d.index, info, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdp engine: writing real server %s: %w", d.cfg.AddrPort(), err)
	}
	return nil
}

// destInfo is a real server's entry in the dests map.
func (e *Engine) destInfo(d *destState) lbDestInfo {
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
		info.TunType = tunTypeOf(&d.cfg)
	default:
		info.Method = methodRoute
	}
	if len(d.dmac) == 6 && len(d.smac) == 6 {
		copy(info.Dmac[:], d.dmac)
		copy(info.Smac[:], d.smac)
		info.Flags |= destHaveMAC
	}
	return info
}

// writeService builds the service's scheduler table (check made sure it
// can be) and writes it as a new table of the generation the program does
// not read, then the service entry that switches the program to it. An
// rr/wrr service's table is its list with a header, and its cursor
// switches the walk to it (writeWalk). The table it replaces is deleted
// two expiry ticks later (dropIdleTables), when no packet can be reading
// it any more.
func (e *Engine) writeService(s *svcState) error {
	tds := make([]tableDest, len(s.dests))
	for i, d := range s.dests {
		tds[i] = tableDest{index: d.index, addr: d.cfg.AddrPort(), weight: d.cfg.Weight, lastWeight: d.lastWeight}
	}
	tab, err := buildTable(s.cfg.Scheduler, tds, &e.scratch)
	if err != nil {
		return fmt.Errorf("xdp engine: %s: %w", s.cfg.ServiceKey, err)
	}
	kind := schedKinds[s.cfg.Scheduler]
	gen := s.gen ^ 1
	tabLen := len(tab)
	if kind == lbSchedKindSCHED_WRR {
		if err := e.writeWalk(s, gen, tab); err != nil {
			return err
		}
		tabLen += wrrHdr
	} else {
		s.walk = ""
		if err := e.putTable(s.index*2+gen, tab); err != nil {
			return fmt.Errorf("xdp engine: writing the scheduler table of %s: %w", s.cfg.ServiceKey, err)
		}
	}
	info := lbSvcInfo{
		Index:  s.index,
		Sched:  kind,
		Gen:    gen,
		TabLen: uint32(tabLen),
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
	s.gen = gen
	s.table = nil
	if kind == lbSchedKindSCHED_WRR {
		s.table = tab // the walk's next change starts from it
	}
	e.idle[s] = e.tick
	return nil
}

// putTable makes tab a table map of its own and puts it into the tables
// map at key, in chunks of tabChunk slots (the last one filled up with
// noDest).
func (e *Engine) putTable(key uint32, tab []uint32) error {
	n := max(1, (len(tab)+tabChunk-1)/tabChunk)
	sc := &e.scratch
	if cap(sc.chunks) < n {
		sc.chunks = make([][tabChunk]uint32, n)
		sc.keys = make([]uint32, n)
		for i := range sc.keys {
			sc.keys[i] = uint32(i)
		}
	}
	chunks, keys := sc.chunks[:n], sc.keys[:n] // handed to the kernel as they are
	for i := range n * tabChunk {
		d := uint32(noDest)
		if i < len(tab) {
			d = tab[i]
		}
		chunks[i/tabChunk][i%tabChunk] = d
	}
	spec := *e.tableSpec
	spec.MaxEntries = uint32(n)
	m, err := ebpf.NewMap(&spec)
	if err != nil {
		return err
	}
	defer m.Close() // the tables map keeps it
	if _, err := m.BatchUpdate(keys, chunks, nil); err != nil {
		for i := range keys {
			if err := m.Update(keys[i], &chunks[i], ebpf.UpdateAny); err != nil {
				return err
			}
		}
	}
	return e.objs.Tables.Update(key, m, ebpf.UpdateAny)
}

// dropIdleTables deletes the tables that stopped being live at least one
// full expiry interval ago: a packet takes microseconds, so none still
// reads them. Until then a service holds two tables.
func (e *Engine) dropIdleTables() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tick++
	for s, since := range e.idle {
		if e.tick < since+2 {
			continue
		}
		if e.svcs[s.cfg.ServiceKey] == s {
			e.deleteTable(s.index*2 + (s.gen ^ 1))
		}
		delete(e.idle, s)
	}
}

func (e *Engine) deleteTable(key uint32) {
	if err := e.objs.Tables.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		e.log.Error("deleting a scheduler table", "error", err)
	}
}

// resetStats zeroes a per-CPU stats slot being reused.
func (e *Engine) resetStats(m *ebpf.Map, idx uint32) {
	if e.zeroStats == nil {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			n = runtime.NumCPU()
		}
		e.zeroStats = make([]lbStats, n)
	}
	m.Update(idx, e.zeroStats, ebpf.UpdateAny)
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
	tunGRE        = 2 // TUN_GRE
	tunGRECsum    = 3 // TUN_GRE_CSUM
	tunGUECsum    = 4 // TUN_GUE_CSUM
	tunFlagCsum   = 1 // ipvs.Dest.TunFlags: IP_VS_TUNNEL_ENCAP_FLAG_CSUM (--tun-csum)
)

// tunTypeOf is the header the program puts in front of a TUN real
// server's packets (dest_info.tun_type).
func tunTypeOf(d *ipvs.Dest) uint8 {
	csum := d.TunFlags&tunFlagCsum != 0
	switch {
	case d.TunType == ipvs.TunGUE && csum:
		return tunGUECsum
	case d.TunType == ipvs.TunGUE:
		return tunGUE
	case d.TunType == ipvs.TunGRE && csum:
		return tunGRECsum
	case d.TunType == ipvs.TunGRE:
		return tunGRE
	}
	return 0
}

// tunOf is tunTypeOf's inverse: the tunnel type and flags of a
// dest_info.tun_type.
func tunOf(t uint8) (ipvs.TunType, uint16) {
	switch t {
	case tunGUE:
		return ipvs.TunGUE, 0
	case tunGUECsum:
		return ipvs.TunGUE, tunFlagCsum
	case tunGRE:
		return ipvs.TunGRE, 0
	case tunGRECsum:
		return ipvs.TunGRE, tunFlagCsum
	}
	return ipvs.TunIPIP, 0
}
