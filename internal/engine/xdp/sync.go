package xdp

import (
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Connection synchronization (gvsadm --start-daemon, keepalived's
// lvs_sync_daemon): a master lists its connections, a backup installs
// them so that their packets keep going to the same real servers after a
// failover, where a non-SYN packet that misses the table would not be
// scheduled.
//
//   - DR, TUN and NAT connections are synchronized. A NAT connection gets
//     its reply entry too. FullNAT connections are not: their local
//     address and port are not in the kernel's sync format (the master
//     skips and counts them).
//   - A received connection is bound to the backup's real server with the
//     same address and port in the same virtual service, forwarded with
//     the backup's method for it; one whose service or real server the
//     backup lacks is skipped and counted.
//   - The received timeout is kept by placing the entry's last-seen time
//     so that it expires when the master's copy would; the first packet
//     through the backup restarts the local timer.
//   - Persistence templates are synchronized too, as the kernel's:
//     the master lists its persist entries (client address as masked,
//     port 0, the service and real server), the backup writes them into
//     its persist map under its own service and real server indexes, so
//     that after a failover a persistent client's new connections go to
//     the same real server. The backup masks the address again with its
//     own netmask and keeps the received timeout (at most its own: the
//     program counts a template's age forward only). A template of a
//     port-zero or FTP service arrives without ports (the kernel's form):
//     it is matched to the port-zero service, else the one on port 21,
//     and to the real server by address. A firewall-mark service's
//     connections and templates carry its mark, as the kernel's do: the
//     backup puts them under its firewall-mark service of that mark and
//     the client's family.

var _ engine.Syncer = (*Engine)(nil)

// SyncConns lists the connections (not NAT reply entries) and the
// persistence templates for a sync master.
func (e *Engine) SyncConns() []engine.SyncConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.connList()
	e.eachTemplate(func(s *svcState, d *destState, client netip.Addr, age time.Duration) {
		c := engine.SyncConn{
			Proto:    s.cfg.Proto,
			Client:   netip.AddrPortFrom(client, 0),
			Virtual:  s.cfg.AddrPort(),
			Dest:     d.cfg.AddrPort(),
			Method:   d.cfg.Method,
			Template: true,
			State:    "NONE",
			Timeout:  time.Duration(s.cfg.Timeout) * time.Second,
			Idle:     age,
		}
		if s.cfg.IsFWMark() {
			c.FWMark, c.Virtual = s.cfg.FWMark, netip.AddrPort{}
		}
		out = append(out, c)
	})
	return out
}

// InstallSynced installs connections received from a sync master.
func (e *Engine) InstallSynced(conns []engine.SyncConn) (installed, skipped int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now, mono := connClock(), coarseMonotonic()
	for _, c := range conns {
		ok := false
		if c.Template {
			ok = e.installTemplate(&c, mono)
		} else {
			ok = e.installSynced(&c, now)
		}
		if ok {
			installed++
		} else {
			skipped++
		}
	}
	return installed, skipped
}

func (e *Engine) installSynced(c *engine.SyncConn, now uint32) bool {
	var s *svcState
	if c.FWMark != 0 {
		s = e.svcs[fwmarkKey(c.FWMark, c.Client.Addr())]
	}
	if s == nil {
		s = e.svcs[ipvs.ServiceKey{Proto: c.Proto, Addr: c.Virtual.Addr(), Port: c.Virtual.Port()}]
	}
	if s == nil {
		return false
	}
	d := s.all[c.Dest]
	if d == nil {
		// A real server of port 0 (the packet's port), which the kernel
		// sends with the connection's port.
		d = s.all[netip.AddrPortFrom(c.Dest.Addr(), 0)]
	}
	if d == nil || d.cfg.Method == ipvs.FullNAT {
		return false
	}
	st, ok := stateByName(c.State)
	if !ok {
		return false
	}
	cw, fam := addrWords(c.Client.Addr())
	vw, vfam := addrWords(c.Virtual.Addr())
	if fam != vfam {
		return false
	}
	k := lbConnKey{Saddr: cw, Daddr: vw, Sport: be16(c.Client.Port()), Dport: be16(c.Virtual.Port()), Proto: uint8(c.Proto), Family: fam}
	v := lbConnVal{State: st, LastSeen: seenAgo(now, syncedAge(c.Timeout, e.timeout(st))), Dest: uint16(d.index), Svc: uint16(s.index)}
	if d.cfg.Method == ipvs.Masq {
		dw, _ := addrWords(d.cfg.Addr)
		v.Flags = connNAT
		v.Xsaddr, v.Xsport = cw, k.Sport
		v.Xdaddr, v.Xdport = dw, be16(d.cfg.Port)
		r := v
		r.Flags = connNAT | connReply
		r.Xsaddr, r.Xsport = vw, k.Dport
		r.Xdaddr, r.Xdport = cw, k.Sport
		rk := pairKey(&k, &v)
		if err := e.putConn(&rk, &r, ebpf.UpdateAny); err != nil {
			e.log.Debug("installing a synced NAT reply entry", "err", err)
			return false
		}
	}
	if err := e.putConn(&k, &v, ebpf.UpdateAny); err != nil {
		e.log.Debug("installing a synced connection", "err", err)
		return false
	}
	return true
}

// installTemplate writes a received persistence template into the
// persist map (now is on the program's clock, see coarseMonotonic).
func (e *Engine) installTemplate(c *engine.SyncConn, now uint64) bool {
	key := ipvs.ServiceKey{Proto: c.Proto, Addr: c.Virtual.Addr(), Port: c.Virtual.Port()}
	if c.FWMark != 0 {
		key = fwmarkKey(c.FWMark, c.Client.Addr())
	}
	s := e.svcs[key]
	if s == nil && key.Port == 0 && !key.IsFWMark() {
		key.Port = ftpPort
		s = e.svcs[key]
	}
	if s == nil || !s.cfg.Persistent() {
		return false
	}
	d := s.all[c.Dest]
	if d == nil && c.Dest.Port() == 0 {
		for _, o := range s.all {
			if o.cfg.Addr == c.Dest.Addr() {
				d = o
				break
			}
		}
	}
	if d == nil {
		return false
	}
	cw, fam := addrWords(c.Client.Addr())
	if _, sfam := addrWords(s.cfg.Addr); fam != sfam {
		return false
	}
	m := maskWords(s.cfg.Netmask, fam)
	pk := lbPersistKey{Svc: s.index, Family: uint32(fam)}
	for i := range pk.Addr {
		pk.Addr[i] = cw[i] & m[i]
	}
	age := max(syncedAge(c.Timeout, time.Duration(s.cfg.Timeout)*time.Second), 0)
	pv := lbPersistVal{LastSeen: now - min(uint64(age), now), Dest: d.index}
	if err := e.objs.Persist.Update(&pk, &pv, ebpf.UpdateAny); err != nil {
		e.log.Debug("installing a synced persistence template", "err", err)
		return false
	}
	return true
}

// coarseMonotonic is bpf_ktime_get_coarse_ns's clock, the one the
// program stamps templates with and counts their age on, unsigned: a
// template stamped from the finer clock could be ahead of the program's
// reading and look expired.
func coarseMonotonic() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts)
	return uint64(ts.Nano())
}

// ftpPort is the kernel's FTPPORT, whose persistence templates carry no
// ports.
const ftpPort = 21

// syncedAge is how long ago the last packet of an installed entry is to
// be, so that an entry whose local timeout is local expires after the
// received timeout: negative (in the future) when the master's timeout is
// longer.
func syncedAge(received, local time.Duration) time.Duration {
	if received <= 0 {
		return 0
	}
	return local - received
}

// seenAgo is the last_seen of an entry whose last packet was age before
// now (both on the connection clock; a negative age is in the future).
func seenAgo(now uint32, age time.Duration) uint32 {
	return now - uint32(int32(age>>connClockShift))
}

func stateByName(name string) (lbConnState, bool) {
	for _, st := range []lbConnState{lbConnStateST_ESTABLISHED, lbConnStateST_SYN_SENT, lbConnStateST_SYN_RECV,
		lbConnStateST_FIN_WAIT, lbConnStateST_TIME_WAIT, lbConnStateST_CLOSE, lbConnStateST_CLOSE_WAIT,
		lbConnStateST_LAST_ACK, lbConnStateST_LISTEN, lbConnStateST_SYNACK, lbConnStateST_UDP} {
		if stateName(st) == name {
			return st, true
		}
	}
	return 0, false
}
