package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// neighWait bounds how long Apply waits for a new real server's MAC.
const neighWait = time.Second

// resolve finds the egress interface and MAC addresses for a real server.
// For DR they are the real server's own (it must be on a directly
// connected network). For TUN they are the next hop's: the program asks
// the FIB first (bpf_fib_lookup), which answers only where forwarding is
// enabled; elsewhere it uses these.
func (e *Engine) resolve(d *destState) error {
	ip := net.IP(d.cfg.Addr.Unmap().AsSlice())
	routes, err := netlink.RouteGet(ip)
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("no route to %s: %v", d.cfg.Addr, err)
	}
	r := routes[0]
	nh := ip
	if r.Gw != nil {
		if d.cfg.Method == ipvs.Route {
			return fmt.Errorf("direct routing to %s needs it on a directly connected network, but it is routed via %s", d.cfg.Addr, r.Gw)
		}
		nh = r.Gw
	}
	mac, err := neighbour(r.LinkIndex, nh, !d.tried)
	d.tried = true
	if err != nil {
		return err
	}
	if d.ifindex != r.LinkIndex {
		e.objs.TxPorts.Update(uint32(r.LinkIndex), uint32(r.LinkIndex), ebpf.UpdateAny)
	}
	d.ifindex = r.LinkIndex
	l, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return err
	}
	d.mtu = l.Attrs().MTU
	if r.MTU > 0 {
		d.mtu = r.MTU
	}
	d.smac = l.Attrs().HardwareAddr
	d.dmac = mac
	return nil
}

// neighbour returns the MAC address of ip on the link. When the kernel has
// no usable entry it makes the kernel resolve one by sending a UDP packet
// to the discard port, and waits a little when wait is set.
func neighbour(linkIndex int, ip net.IP, wait bool) (net.HardwareAddr, error) {
	deadline := time.Now().Add(neighWait)
	poked := false
	for {
		if mac, fresh := lookupNeigh(linkIndex, ip); mac != nil {
			if !fresh && !poked {
				poke(ip)
			}
			return mac, nil
		}
		if !poked {
			poke(ip)
			poked = true
		}
		if !wait || time.Now().After(deadline) {
			return nil, fmt.Errorf("no MAC address for %s yet (ARP/ND pending)", ip)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lookupNeigh(linkIndex int, ip net.IP) (mac net.HardwareAddr, fresh bool) {
	fam := netlink.FAMILY_V4
	if ip.To4() == nil {
		fam = netlink.FAMILY_V6
	}
	ns, err := netlink.NeighList(linkIndex, fam)
	if err != nil {
		return nil, false
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

// refreshNeighbours re-resolves every real server, so a MAC that changed
// or was missing reaches the program, and next hops stay in the table.
func (e *Engine) refreshNeighbours() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.dests {
		if !d.inService {
			continue
		}
		old := string(d.dmac)
		if err := e.resolve(d); err != nil {
			e.log.Debug("neighbour", "dest", d.cfg.AddrPort(), "err", err)
			continue
		}
		if string(d.dmac) != old {
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
