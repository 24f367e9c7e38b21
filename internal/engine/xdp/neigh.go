package xdp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// neighWait bounds how long Apply waits, in all, for new real servers'
// MAC addresses.
const neighWait = time.Second

// hopKey is what a real server's next hop depends on: its address, and
// whether it must be on a directly connected network (direct routing).
type hopKey struct {
	addr   netip.Addr
	direct bool
}

func hopKeyOf(d *ipvs.Dest) hopKey {
	return hopKey{addr: d.Addr.Unmap(), direct: d.Method == ipvs.Route}
}

// nextHop is where the program sends a real server's packets: the egress
// interface and MAC addresses, and the path's MTU. For DR they are the
// real server's own (it must be on a directly connected network). For
// TUN they are the next hop's: the program asks the FIB first
// (bpf_fib_lookup), which answers only where forwarding is enabled;
// elsewhere it uses these.
type nextHop struct {
	ifindex    int
	hop        netip.Addr // the neighbour: the real server, or the gateway
	smac, dmac net.HardwareAddr
	mtu        int
	err        error // why there is none yet (with hop set: only its MAC is missing)
}

// findNextHops resolves the next hops of keys over netlink: one route
// lookup per address, one neighbour listing and one link lookup per
// interface. Neighbours the kernel has no usable entry for are made to be
// resolved (a UDP packet to the discard port); with wait, it waits for
// them up to neighWait in all. It takes no engine lock.
func findNextHops(keys []hopKey, wait bool) map[hopKey]*nextHop {
	out := make(map[hopKey]*nextHop, len(keys))
	links := map[int]netlink.Link{}
	type pending struct {
		nh *nextHop
		ip net.IP
	}
	var missing []pending
	for _, k := range keys {
		if out[k] != nil {
			continue
		}
		nh := &nextHop{}
		out[k] = nh
		ip := net.IP(k.addr.AsSlice())
		routes, err := netlink.RouteGet(ip)
		if err != nil || len(routes) == 0 {
			nh.err = fmt.Errorf("no route to %s: %v", k.addr, err)
			continue
		}
		r := routes[0]
		hop := ip
		if r.Gw != nil {
			if k.direct {
				nh.err = fmt.Errorf("direct routing to %s needs it on a directly connected network, but it is routed via %s", k.addr, r.Gw)
				continue
			}
			hop = r.Gw
		}
		l := links[r.LinkIndex]
		if l == nil {
			if l, err = netlink.LinkByIndex(r.LinkIndex); err != nil {
				nh.err = err
				continue
			}
			links[r.LinkIndex] = l
		}
		nh.ifindex = r.LinkIndex
		nh.mtu = l.Attrs().MTU
		if r.MTU > 0 {
			nh.mtu = r.MTU
		}
		nh.smac = l.Attrs().HardwareAddr
		nh.hop, _ = netip.AddrFromSlice(hop)
		nh.hop = nh.hop.Unmap()
		missing = append(missing, pending{nh, hop})
	}
	deadline := time.Now().Add(neighWait)
	for round := 0; len(missing) > 0; round++ {
		neighs := neighbourTables{}
		left := missing[:0]
		for _, m := range missing {
			mac, fresh := neighs.lookup(m.nh.ifindex, m.ip)
			if mac != nil {
				m.nh.dmac = mac
				if !fresh && round == 0 {
					poke(m.ip)
				}
				continue
			}
			if round == 0 {
				poke(m.ip)
			}
			left = append(left, m)
		}
		missing = left
		if len(missing) == 0 || !wait || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range missing {
		m.nh.err = fmt.Errorf("no MAC address for %s yet (ARP/ND pending)", m.ip)
	}
	return out
}

// neighbourTables caches the kernel's neighbour entries per interface and
// family for one pass.
type neighbourTables map[[2]int][]netlink.Neigh

func (t neighbourTables) lookup(linkIndex int, ip net.IP) (mac net.HardwareAddr, fresh bool) {
	fam := netlink.FAMILY_V4
	if ip.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	k := [2]int{linkIndex, fam}
	ns, ok := t[k]
	if !ok {
		ns, _ = netlink.NeighList(linkIndex, fam)
		t[k] = ns
	}
	for _, n := range ns {
		if !n.IP.Equal(ip) || len(n.HardwareAddr) != 6 {
			continue
		}
		switch {
		case n.State&(unix.NUD_REACHABLE|unix.NUD_PERMANENT|unix.NUD_NOARP) != 0:
			return n.HardwareAddr, true
		case n.State&(unix.NUD_STALE|unix.NUD_DELAY|unix.NUD_PROBE) != 0:
			return n.HardwareAddr, false
		}
	}
	return nil, false
}

// setNextHop gives d the next hop found for it, also one whose MAC
// address is still missing (the neighbour's netlink event brings it
// later). It reports whether the real server's entry changed.
//
// since is e.neighSeq from before nh was looked up: a neighbour event
// applied since then is newer than nh's MAC address.
func (e *Engine) setNextHop(d *destState, nh *nextHop, since uint64) bool {
	if nh == nil || !nh.hop.IsValid() {
		return false
	}
	dmac := nh.dmac
	if d.hop == nh.hop && d.ifindex == nh.ifindex && (dmac == nil || d.macSeq > since) {
		dmac = d.dmac // not in the kernel's table this time, or an event's is newer
	}
	if d.ifindex != nh.ifindex && !e.txPorts[nh.ifindex] {
		// The kernel drops an interface's entry when the interface goes,
		// and a new interface never gets an old one's index.
		if e.objs.TxPorts.Update(uint32(nh.ifindex), uint32(nh.ifindex), ebpf.UpdateAny) == nil {
			if e.txPorts == nil {
				e.txPorts = map[int]bool{}
			}
			e.txPorts[nh.ifindex] = true
		}
	}
	changed := d.ifindex != nh.ifindex || d.mtu != nh.mtu || string(d.smac) != string(nh.smac) || string(d.dmac) != string(dmac)
	e.indexHop(d, nh.hop)
	d.ifindex, d.mtu, d.smac, d.dmac = nh.ifindex, nh.mtu, nh.smac, dmac
	return changed
}

// indexHop records that d's next hop is hop, for neighbourChanged.
func (e *Engine) indexHop(d *destState, hop netip.Addr) {
	if d.hop == hop {
		return
	}
	if ds := e.byHop[d.hop]; ds != nil {
		delete(ds, d)
		if len(ds) == 0 {
			delete(e.byHop, d.hop)
		}
	}
	d.hop = hop
	if !hop.IsValid() {
		return
	}
	if e.byHop[hop] == nil {
		e.byHop[hop] = map[*destState]bool{}
	}
	e.byHop[hop][d] = true
}

// poke sends one UDP datagram to the discard port, which makes the kernel
// resolve (or confirm) the neighbour on the way.
func poke(ip net.IP) {
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: ip, Port: 9})
	if err != nil {
		return
	}
	c.Write([]byte{0})
	c.Close()
}

// watchNeighbours follows the kernel's neighbour and route changes until
// ctx ends. A neighbour's new MAC address goes straight to the real
// servers that use it as their next hop (no netlink request); a neighbour
// deleted is resolved again; a route change, once the routes have been
// quiet for routeSettle, re-resolves every real server (refreshNeighbours).
// When the subscription fails or loses events (the socket's buffer
// overflowed) it subscribes again and re-resolves everything. It runs in
// the network namespace the engine was started in.
func (e *Engine) watchNeighbours(ctx context.Context) {
	for {
		err := e.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("following neighbour and route changes: subscribing again", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// routeSettle is how long route changes must pause before the next hops
// are resolved again: a routing daemon changes many routes at once.
const routeSettle = 100 * time.Millisecond

func (e *Engine) watch(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	neighs := make(chan netlink.NeighUpdate, 256)
	routes := make(chan netlink.RouteUpdate, 256)
	if err := netlink.NeighSubscribeWithOptions(neighs, done, netlink.NeighSubscribeOptions{ErrorCallback: fail}); err != nil {
		return fmt.Errorf("neighbour subscription: %w", err)
	}
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: fail}); err != nil {
		return fmt.Errorf("route subscription: %w", err)
	}
	e.refreshNeighbours() // what changed before the subscriptions
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case u, ok := <-neighs:
			if !ok {
				return errors.New("neighbour subscription closed")
			}
			if ip := e.neighbourChanged(u); ip != nil {
				poke(ip)
			}
		case _, ok := <-routes:
			if !ok {
				return errors.New("route subscription closed")
			}
			if settle == nil {
				settle = time.After(routeSettle)
			}
		case <-settle:
			settle = nil
			e.refreshNeighbours()
		}
	}
}

// neighbourChanged applies a neighbour event to the real servers whose
// next hop it is. It returns the neighbour's address when it is gone and
// must be resolved again.
func (e *Engine) neighbourChanged(u netlink.NeighUpdate) net.IP {
	ip, ok := netip.AddrFromSlice(u.IP)
	if !ok {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.byHop[ip.Unmap()]
	if len(ds) == 0 {
		return nil
	}
	usable := unix.NUD_REACHABLE | unix.NUD_PERMANENT | unix.NUD_NOARP | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE
	if u.Type == unix.RTM_DELNEIGH {
		return u.IP
	}
	if u.State&usable == 0 || len(u.HardwareAddr) != 6 {
		return nil
	}
	for d := range ds {
		if d.ifindex != u.LinkIndex || string(d.dmac) == string(u.HardwareAddr) {
			continue
		}
		e.log.Debug("next hop's MAC address changed", "dest", d.cfg.AddrPort(), "hop", ip, "mac", u.HardwareAddr)
		d.dmac = slices.Clone(u.HardwareAddr)
		e.neighSeq++
		d.macSeq = e.neighSeq
		if err := e.writeDest(d); err != nil {
			e.log.Error("updating a real server's next hop", "err", err)
		}
	}
	return nil
}

// refreshNeighbours re-resolves every real server in service, so a MAC
// or route that changed, or was missing, reaches the program. The
// netlink work is done without the engine's lock.
func (e *Engine) refreshNeighbours() {
	e.mu.Lock()
	var keys []hopKey
	for _, d := range e.dests {
		if d.inService {
			keys = append(keys, hopKeyOf(&d.cfg))
		}
	}
	since := e.neighSeq
	e.mu.Unlock()
	hops := findNextHops(keys, false)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dests {
		if !d.inService {
			continue
		}
		nh := hops[hopKeyOf(&d.cfg)]
		if nh != nil && nh.err != nil {
			e.log.Debug("neighbour", "dest", d.cfg.AddrPort(), "err", nh.err)
		}
		if e.setNextHop(d, nh, since) {
			e.writeDest(d)
		}
	}
}

// setTunnelSources writes the outer source prefixes of tunnels.
func (e *Engine) setTunnelSources() error {
	p4, p6 := e.opts.TunnelSource4, e.opts.TunnelSource6
	if (!p4.IsValid() || !p6.IsValid()) && len(e.opts.Interfaces) > 0 {
		l, err := netlink.LinkByName(e.opts.Interfaces[0])
		if err == nil {
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
			for _, a := range addrs {
				ip, ok := netip.AddrFromSlice(a.IP)
				if !ok || ip.IsLinkLocalUnicast() {
					continue
				}
				ip = ip.Unmap()
				if ip.Is4() && !p4.IsValid() {
					p4 = netip.PrefixFrom(ip, 32)
				} else if ip.Is6() && !p6.IsValid() {
					p6 = netip.PrefixFrom(ip, 128)
				}
			}
		}
	}
	c, err := tunnelConfig(p4, p6)
	if err != nil {
		return err
	}
	if err := e.objs.Cfg.Update(uint32(0), c, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdp engine: writing the tunnel source: %w", err)
	}
	return nil
}

func tunnelConfig(p4, p6 netip.Prefix) (lbConfig, error) {
	var c lbConfig
	if p4.IsValid() {
		if !p4.Addr().Is4() {
			return c, errors.New("the IPv4 tunnel source must be an IPv4 prefix")
		}
		w, _ := addrWords(p4.Masked().Addr())
		c.Src4 = w[0]
		m := maskWords(p4.Bits(), afInet)
		c.Src4Hostmask = ^m[0]
	}
	if p6.IsValid() {
		if !p6.Addr().Is6() || p6.Addr().Is4In6() {
			return c, errors.New("the IPv6 tunnel source must be an IPv6 prefix")
		}
		w, _ := addrWords(p6.Masked().Addr())
		c.Src6 = w
		m := maskWords(max(p6.Bits(), 96), afInet6)
		c.Src6Hostmask = ^m[3]
	}
	return c, nil
}

// resolveMissing makes the kernel resolve the neighbours the program
// found none for (a NAT reply towards a client the director never talked
// to), so that the retransmitted packet finds one.
func (e *Engine) resolveMissing() {
	var k lbNeighKey
	var v uint64
	var keys []lbNeighKey
	it := e.objs.NeighMiss.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	for i := range keys {
		e.objs.NeighMiss.Delete(&keys[i])
		a := wordsAddr(keys[i].Addr, uint8(keys[i].Family))
		e.log.Debug("resolving a neighbour the data path missed", "addr", a)
		poke(net.IP(a.AsSlice()))
	}
}
