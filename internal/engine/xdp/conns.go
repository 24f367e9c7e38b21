package xdp

import (
	"errors"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

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
// services nobody refers to any more.
func (e *Engine) expire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := monotonic()
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

	var dead []lbConnKey
	live := map[lbConnKey]bool{}         // NAT forward entries that stay
	replies := map[lbConnKey]lbConnKey{} // reply entry -> its forward key
	err := e.walkConns(func(k *lbConnKey, v *lbConnVal) {
		if v.Flags&connReply != 0 {
			// A reply entry lives and dies with its forward entry. One
			// younger than orphanAge may belong to a connection being
			// made right now (its forward entry comes second).
			if now-v.LastSeen > uint64(orphanAge) && v.LastSeen < now {
				replies[*k] = pairKey(k, v)
			}
			return
		}
		age := time.Duration(int64(now - v.LastSeen))
		if v.LastSeen > now {
			age = 0
		}
		if age > e.timeout(v.State) {
			dead = append(dead, *k)
			if v.Flags&connNAT != 0 {
				dead = append(dead, pairKey(k, v))
			}
			return
		}
		if v.Flags&connNAT != 0 {
			live[*k] = true
		}
		c := counts[v.Dest]
		if v.State == lbConnStateST_ESTABLISHED {
			c.active++
		} else {
			c.inactive++
		}
		counts[v.Dest] = c
		svcRefs[v.Svc] = true
		if m, ok := masks[v.Svc]; ok {
			ck := ctlKey{svc: v.Svc}
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
	for rk, fk := range replies {
		if !live[fk] {
			dead = append(dead, rk)
		}
	}
	e.deleteConns(dead)

	var pk lbPersistKey
	var pv lbPersistVal
	var deadT []lbPersistKey
	pt := e.objs.Persist.Iterate()
	for pt.Next(&pk, &pv) {
		to := time.Duration(e.persistTimeout(pk.Svc)) * time.Second
		age := time.Duration(int64(now - pv.LastSeen))
		if pv.LastSeen > now {
			age = 0
		}
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

	for idx, d := range e.dests {
		c := counts[idx]
		e.setLoad(d, c)
		if !d.inService && c.active+c.inactive+c.persist == 0 {
			e.freeDest(d)
		}
	}
	e.counts = counts
	kept := e.retired[:0]
	for _, s := range e.retired {
		if svcRefs[s.index] || len(s.all) > 0 {
			kept = append(kept, s)
			continue
		}
		e.svcUsed[s.index] = false
		delete(e.est, estKey{svc: true, index: s.index})
	}
	e.retired = kept
}

// setLoad writes the counted connections and clears the overload mark
// the way ip_vs_unbind_dest does.
func (e *Engine) setLoad(d *destState, c destCounts) {
	var l lbDestLoad
	if err := e.objs.Loads.Lookup(d.index, &l); err != nil {
		return
	}
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
	e.objs.Loads.Update(d.index, l, ebpf.UpdateAny)
}

func (e *Engine) freeDest(d *destState) {
	e.objs.Dests.Update(d.index, lbDestInfo{}, ebpf.UpdateAny)
	delete(e.dests, d.index)
	delete(d.svc.all, d.cfg.AddrPort())
	delete(e.est, estKey{index: d.index})
	e.destUsed[d.index] = false
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

// walkConns calls f for every entry of the connection map, read in
// batches (BPF_MAP_LOOKUP_BATCH): one system call per connBatch entries
// where iterating costs two per entry. f must not keep k or v.
func (e *Engine) walkConns(f func(k *lbConnKey, v *lbConnVal)) error {
	keys := make([]lbConnKey, connBatch)
	vals := make([]lbConnVal, connBatch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := e.objs.Conns.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			f(&keys[i], &vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// deleteConns deletes entries in batches; one already gone (the LRU map
// evicted it) stops a batch, which goes on after it.
func (e *Engine) deleteConns(keys []lbConnKey) {
	for len(keys) > 0 {
		n, err := e.objs.Conns.BatchDelete(keys, nil)
		if err == nil {
			return
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			e.log.Warn("deleting expired connections", "err", err)
			return
		}
		keys = keys[min(n+1, len(keys)):]
	}
}

// Conns lists connections and persistence templates as ipvsadm -Lnc.
func (e *Engine) Conns() []ipvs.Conn {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := monotonic()
	var out []ipvs.Conn
	err := e.walkConns(func(k *lbConnKey, v *lbConnVal) {
		d := e.dests[v.Dest]
		if d == nil || v.Flags&connReply != 0 {
			return
		}
		out = append(out, ipvs.Conn{
			Proto:   ipvs.Protocol(k.Proto),
			Client:  netip.AddrPortFrom(wordsAddr(k.Saddr, k.Family), be16(k.Sport)),
			Virtual: netip.AddrPortFrom(wordsAddr(k.Daddr, k.Family), be16(k.Dport)),
			Dest:    d.cfg.AddrPort(),
			State:   stateName(v.State),
			Expires: expiresMS(e.timeout(v.State), now, v.LastSeen),
		})
	})
	if err != nil {
		e.log.Warn("listing connections", "err", err)
	}
	var pk lbPersistKey
	var pv lbPersistVal
	pt := e.objs.Persist.Iterate()
	for pt.Next(&pk, &pv) {
		d := e.dests[pv.Dest]
		s := e.svcByIndex(pk.Svc)
		if d == nil || s == nil {
			continue
		}
		out = append(out, ipvs.Conn{
			Proto:   s.cfg.Proto,
			Client:  netip.AddrPortFrom(wordsAddr(pk.Addr, uint8(pk.Family)), 0),
			Virtual: s.cfg.AddrPort(),
			Dest:    d.cfg.AddrPort(),
			State:   "NONE",
			Expires: expiresMS(time.Duration(s.cfg.Timeout)*time.Second, now, pv.LastSeen),
		})
	}
	if err := pt.Err(); err != nil && !errors.Is(err, ebpf.ErrIterationAborted) {
		e.log.Warn("listing persistence templates", "err", err)
	}
	return out
}

func expiresMS(to time.Duration, now, last uint64) int64 {
	left := to - time.Duration(int64(now-last))
	if last > now {
		left = to
	}
	return max(left.Milliseconds(), 0)
}
