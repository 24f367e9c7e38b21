package xdp

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// The kernel's fixed TCP state timeouts (ip_vs_proto_tcp.c) for the
// states ipvsadm --set does not change.
const (
	timeoutSynRecv   = 60 * time.Second
	timeoutTimeWait  = 120 * time.Second
	timeoutClose     = 10 * time.Second
	timeoutCloseWait = 60 * time.Second
	timeoutLastAck   = 30 * time.Second
	timeoutListen    = 120 * time.Second
	timeoutSynAck    = 120 * time.Second
)

// orphanAge is how long a reply entry without its forward entry (which
// the LRU map may evict) stays before it is deleted.
const orphanAge = 2 * time.Second

// conn_val.flags, as in bpf/xdp_lb.h.
const (
	connReply = 0x1
	connNAT   = 0x2
	connTOA   = 0x4
)

// connClockShift is CONN_CLOCK_SHIFT of bpf/xdp_lb.h: a connection's
// last_seen is bpf_ktime_get_coarse_ns() >> connClockShift in 32 bits
// (units of 4.19 ms).
const connClockShift = 22

// connClock is the connection clock now.
func connClock() uint32 { return uint32(monotonic() >> connClockShift) }

// idle is how long before now (both on the connection clock) last was.
// The difference is signed, so the 32-bit clock may wrap; a last after
// now (the program wrote it after Go read the clock) is no time.
func idle(now, last uint32) time.Duration {
	d := int32(now - last)
	if d < 0 {
		return 0
	}
	return time.Duration(d) << connClockShift
}

// monotonic is bpf_ktime_get_ns's clock.
func monotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// timeout is how long a connection in state st lives without packets.
func (e *Engine) timeout(st lbConnState) time.Duration {
	to := e.timeouts
	if d, ok := e.opts.StateTimeouts[stateName(st)]; ok && st != lbConnStateST_ESTABLISHED && st != lbConnStateST_FIN_WAIT && st != lbConnStateST_UDP {
		return d
	}
	switch st {
	case lbConnStateST_ESTABLISHED:
		return time.Duration(to.TCP) * time.Second
	case lbConnStateST_SYN_RECV, lbConnStateST_SYN_SENT:
		return timeoutSynRecv
	case lbConnStateST_FIN_WAIT:
		return time.Duration(to.TCPFin) * time.Second
	case lbConnStateST_TIME_WAIT:
		return timeoutTimeWait
	case lbConnStateST_UDP:
		return time.Duration(to.UDP) * time.Second
	case lbConnStateST_CLOSE_WAIT:
		return timeoutCloseWait
	case lbConnStateST_LAST_ACK:
		return timeoutLastAck
	case lbConnStateST_LISTEN:
		return timeoutListen
	case lbConnStateST_SYNACK:
		return timeoutSynAck
	}
	return timeoutClose
}

// pairKey is the key of the other entry of a NAT or FullNAT connection:
// the entry's x tuple (how its packets leave) reversed.
func pairKey(k *lbConnKey, v *lbConnVal) lbConnKey {
	return lbConnKey{Saddr: v.Xdaddr, Daddr: v.Xsaddr, Sport: v.Xdport, Dport: v.Xsport, Proto: k.Proto, Family: k.Family}
}

type ctlKey struct {
	svc  uint32
	addr [4]uint32
}

// expire deletes connections and persistence templates idle longer than
// their timeout, then sets each real server's counters from what is left
// (correcting what the program counted, including entries the LRU map
// evicted by itself) and frees the indexes of removed servers and
// services nobody refers to any more. It counts the entries left for
// State.
func (e *Engine) expire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now, clock := monotonic(), connClock()
	counts := map[uint32]destCounts{}
	svcRefs := map[uint32]bool{}
	controlled := map[ctlKey]bool{}
	masks := map[uint32][4]uint32{}
	for _, s := range e.svcs {
		if s.cfg.Persistent() {
			_, fam := addrWords(s.cfg.Addr)
			masks[s.index] = maskWords(s.cfg.Netmask, fam)
		}
	}

	var dead, deadNAT []lbConnKey
	live := map[lbConnKey]bool{}         // NAT forward entries that stay
	owner := map[lbConnKey]lbConnKey{}   // reply entry -> its forward key
	replies := map[lbConnKey]lbConnKey{} // the same, for those past orphanAge
	entries := map[uint8]int{}           // by family
	err := e.walkConns(func(k *lbConnKey, v *lbConnVal) {
		entries[k.Family]++
		if v.Flags&connReply != 0 {
			// A reply entry lives and dies with its forward entry. One
			// younger than orphanAge may belong to a connection being
			// made right now (its forward entry comes second).
			owner[*k] = pairKey(k, v)
			if idle(clock, v.LastSeen) > orphanAge {
				replies[*k] = owner[*k]
			}
			return
		}
		if idle(clock, v.LastSeen) > e.timeout(v.State) {
			dead = append(dead, *k)
			if v.Flags&connNAT != 0 {
				deadNAT = append(deadNAT, *k, pairKey(k, v))
			}
			return
		}
		if v.Flags&connNAT != 0 {
			live[*k] = true
		}
		dest, svc := uint32(v.Dest), uint32(v.Svc)
		c := counts[dest]
		if v.State == lbConnStateST_ESTABLISHED {
			c.active++
		} else {
			c.inactive++
		}
		counts[dest] = c
		svcRefs[svc] = true
		if m, ok := masks[svc]; ok {
			ck := ctlKey{svc: svc}
			for i := range ck.addr {
				ck.addr[i] = k.Saddr[i] & m[i]
			}
			controlled[ck] = true
		}
	})
	if err != nil {
		// Counters from a partial walk would be wrong: the next tick
		// tries again.
		e.log.Warn("expiring connections", "err", err)
		return
	}
	// A dead connection's reply entry goes with it unless a newer
	// connection took it over (reply_takeover in bpf/xdp_nat.h): then it
	// points at that one.
	for i := 0; i < len(deadNAT); i += 2 {
		if fk, rk := deadNAT[i], deadNAT[i+1]; owner[rk] == fk {
			dead = append(dead, rk)
			delete(replies, rk)
		}
	}
	for rk, fk := range replies {
		if !live[fk] {
			dead = append(dead, rk)
		}
	}
	e.deleteConns(dead)
	for i := range dead {
		entries[dead[i].Family]--
	}
	e.entries4, e.entries6 = entries[afInet], entries[afInet6]

	var pk lbPersistKey
	var pv lbPersistVal
	var deadT []lbPersistKey
	pt := e.objs.Persist.Iterate()
	for pt.Next(&pk, &pv) {
		to := time.Duration(e.persistTimeout(pk.Svc)) * time.Second
		age := persistAge(now, pv.LastSeen)
		// A template lives on while it controls connections, as the
		// kernel restarts its timer.
		if age > to && !controlled[ctlKey{svc: pk.Svc, addr: pk.Addr}] {
			deadT = append(deadT, pk)
			continue
		}
		c := counts[pv.Dest]
		c.persist++
		counts[pv.Dest] = c
		svcRefs[pk.Svc] = true
	}
	for i := range deadT {
		e.objs.Persist.Delete(&deadT[i])
	}

	loads, err := e.readLoads()
	if err != nil {
		e.log.Warn("reading the real servers' counters", "err", err)
		return
	}
	freedDests, freedSvcs := map[uint32]bool{}, map[uint32]bool{}
	for idx, d := range e.dests {
		c := counts[idx]
		e.setLoad(d, c, loads[idx])
		if !d.inService && c.active+c.inactive+c.persist == 0 {
			e.freeDest(d)
			freedDests[idx] = true
		}
	}
	e.counts = counts
	kept := e.retired[:0]
	for _, s := range e.retired {
		if svcRefs[s.index] || len(s.all) > 0 {
			kept = append(kept, s)
			continue
		}
		e.svcIdx.put(s.index)
		delete(e.est, estKey{svc: true, index: s.index})
		freedSvcs[s.index] = true
	}
	e.retired = kept
	e.purgeLocality(freedDests, freedSvcs)
}

// setLoad writes the counted connections and clears the overload mark
// the way ip_vs_unbind_dest does; l is the entry as it was read. An entry
// that would not change is not written.
func (e *Engine) setLoad(d *destState, c destCounts, l lbDestLoad) {
	old := l
	l.Active, l.Inactive = int64(c.active), int64(c.inactive)
	total := uint32(c.active + c.inactive)
	upper, lower := d.cfg.UThreshold, d.cfg.LThreshold
	if l.Overloaded != 0 {
		switch {
		case lower != 0:
			if total < lower {
				l.Overloaded = 0
			}
		case upper != 0:
			if total*4 < upper*3 {
				l.Overloaded = 0
			}
		default:
			l.Overloaded = 0
		}
	}
	if l != old {
		e.objs.Loads.Update(d.index, l, ebpf.UpdateAny)
	}
}

// readLoads reads every real server's counters in batches (one system
// call per connBatch entries rather than one per real server), into a
// buffer kept for the next pass, indexed by real server.
func (e *Engine) readLoads() ([]lbDestLoad, error) {
	n := e.destIdx.size()
	if len(e.loadBuf) != n {
		e.loadBuf = make([]lbDestLoad, n)
	}
	keys := make([]uint32, connBatch)
	vals := make([]lbDestLoad, connBatch)
	var cursor ebpf.MapBatchCursor
	for {
		got, err := e.objs.Loads.BatchLookup(&cursor, keys, vals, nil)
		for i := range got {
			if keys[i] < uint32(n) {
				e.loadBuf[keys[i]] = vals[i]
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return e.loadBuf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (e *Engine) freeDest(d *destState) {
	e.objs.Dests.Update(d.index, lbDestInfo{}, ebpf.UpdateAny)
	delete(e.dests, d.index)
	e.indexHop(d, netip.Addr{})
	delete(d.svc.all, d.cfg.AddrPort())
	delete(e.est, estKey{index: d.index})
	e.destIdx.put(d.index)
}

func (e *Engine) persistTimeout(svc uint32) uint32 {
	if s := e.svcByIndex(svc); s != nil {
		return s.cfg.Timeout
	}
	return 0
}

func (e *Engine) svcByIndex(idx uint32) *svcState {
	for _, s := range e.svcs {
		if s.index == idx {
			return s
		}
	}
	for _, s := range e.retired {
		if s.index == idx {
			return s
		}
	}
	return nil
}

// connBatch is how many connection entries one system call reads.
const connBatch = 4096

// The connections are in two maps: IPv4 ones in Conns4 under a 16-byte
// key (which the kernel hashes faster than the 40-byte one), IPv6 ones in
// Conns. Go code sees every key as an lbConnKey.

// key4 is k (an IPv4 key) in Conns4's form.
func key4(k *lbConnKey) lbConnKey4 {
	return lbConnKey4{Saddr: k.Saddr[0], Daddr: k.Daddr[0], Sport: k.Sport, Dport: k.Dport, Proto: k.Proto}
}

// keyOf4 is the inverse of key4.
func keyOf4(k *lbConnKey4) lbConnKey {
	return lbConnKey{Saddr: [4]uint32{k.Saddr}, Daddr: [4]uint32{k.Daddr}, Sport: k.Sport, Dport: k.Dport, Proto: k.Proto, Family: afInet}
}

// putConn writes one connection entry into its family's map.
func (e *Engine) putConn(k *lbConnKey, v *lbConnVal, flags ebpf.MapUpdateFlags) error {
	if k.Family == afInet {
		k4 := key4(k)
		return e.objs.Conns4.Update(&k4, v, flags)
	}
	return e.objs.Conns.Update(k, v, flags)
}

// walkConns calls f for every entry of the connection maps, read in
// batches (BPF_MAP_LOOKUP_BATCH): one system call per connBatch entries
// where iterating costs two per entry. f must not keep k or v.
func (e *Engine) walkConns(f func(k *lbConnKey, v *lbConnVal)) error {
	vals := make([]lbConnVal, connBatch)
	keys4 := make([]lbConnKey4, connBatch)
	err := walkBatches(e.objs.Conns4, keys4, vals, func(i int) {
		k := keyOf4(&keys4[i])
		f(&k, &vals[i])
	})
	if err != nil {
		return err
	}
	keys := make([]lbConnKey, connBatch)
	return walkBatches(e.objs.Conns, keys, vals, func(i int) { f(&keys[i], &vals[i]) })
}

// walkBatches reads m in batches into keys and vals and calls f with the
// index of each entry read.
func walkBatches[K any](m *ebpf.Map, keys []K, vals []lbConnVal, f func(i int)) error {
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			f(i)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// deleteConns deletes entries from their family's map.
func (e *Engine) deleteConns(keys []lbConnKey) {
	var k4 []lbConnKey4
	var k6 []lbConnKey
	for i := range keys {
		if keys[i].Family == afInet {
			k4 = append(k4, key4(&keys[i]))
		} else {
			k6 = append(k6, keys[i])
		}
	}
	deleteBatches(e.log, e.objs.Conns4, k4)
	deleteBatches(e.log, e.objs.Conns, k6)
}

// deleteBatches deletes keys from m in batches; one already gone (the LRU
// map evicted it) stops a batch, which goes on after it.
func deleteBatches[K any](log *slog.Logger, m *ebpf.Map, keys []K) {
	for len(keys) > 0 {
		n, err := m.BatchDelete(keys, nil)
		if err == nil {
			return
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			log.Warn("deleting expired connections", "err", err)
			return
		}
		keys = keys[min(n+1, len(keys)):]
	}
}

// Conns lists connections and persistence templates as ipvsadm -Lnc.
func (e *Engine) Conns() []ipvs.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ipvs.Conn
	for _, c := range e.connList() {
		out = append(out, ipvs.Conn{Proto: c.Proto, Client: c.Client, Virtual: c.Virtual, Dest: c.Dest,
			State: c.State, Expires: expiresMS(c.Timeout, c.Idle)})
	}
	e.eachTemplate(func(s *svcState, d *destState, client netip.Addr, age time.Duration) {
		out = append(out, ipvs.Conn{
			Proto:   s.cfg.Proto,
			Client:  netip.AddrPortFrom(client, 0),
			Virtual: s.cfg.AddrPort(),
			Dest:    d.cfg.AddrPort(),
			State:   "NONE",
			Expires: expiresMS(time.Duration(s.cfg.Timeout)*time.Second, age),
		})
	})
	return out
}

// connList lists the connections (not NAT reply entries) of the known
// real servers, as Conns and a sync master show them. e.mu is held.
func (e *Engine) connList() []engine.SyncConn {
	now := connClock()
	var out []engine.SyncConn
	err := e.walkConns(func(k *lbConnKey, v *lbConnVal) {
		d := e.dests[uint32(v.Dest)]
		if d == nil || v.Flags&connReply != 0 {
			return
		}
		out = append(out, engine.SyncConn{
			Proto:   ipvs.Protocol(k.Proto),
			Client:  netip.AddrPortFrom(wordsAddr(k.Saddr, k.Family), be16(k.Sport)),
			Virtual: netip.AddrPortFrom(wordsAddr(k.Daddr, k.Family), be16(k.Dport)),
			Dest:    d.cfg.AddrPort(),
			Method:  d.cfg.Method,
			FWMark:  d.svc.cfg.FWMark,
			State:   stateName(v.State),
			Timeout: e.timeout(v.State),
			Idle:    idle(now, v.LastSeen),
		})
	})
	if err != nil {
		e.log.Warn("listing connections", "err", err)
	}
	return out
}

// eachTemplate calls f with each persistence template of a known service
// and real server: the client address (masked) and the time since it was
// last used. e.mu is held.
func (e *Engine) eachTemplate(f func(s *svcState, d *destState, client netip.Addr, age time.Duration)) {
	now := monotonic()
	var pk lbPersistKey
	var pv lbPersistVal
	it := e.objs.Persist.Iterate()
	for it.Next(&pk, &pv) {
		d := e.dests[pv.Dest]
		s := e.svcByIndex(pk.Svc)
		if d == nil || s == nil {
			continue
		}
		f(s, d, wordsAddr(pk.Addr, uint8(pk.Family)), persistAge(now, pv.LastSeen))
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		e.log.Warn("listing persistence templates", "err", err)
	}
}

// expiresMS is what is left of timeout to after age, in milliseconds.
func expiresMS(to, age time.Duration) int64 {
	return max((to - age).Milliseconds(), 0)
}

// persistAge is how long before now (bpf_ktime_get_ns's clock) a
// persistence template was last used at last.
func persistAge(now, last uint64) time.Duration {
	if last > now {
		return 0
	}
	return time.Duration(now - last)
}
