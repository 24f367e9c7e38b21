package config

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Services turns the virtual servers into IPVS services, as keepalived
// would first install them: a virtual_server_group expands to one service
// per address (and port) or fwmark; real servers start up (weight as
// configured) unless alpha is set, in which case they start down: left
// out, or with weight 0 under inhibit_on_failure. When the servers that
// start up weigh less than the quorum and a sorry_server is set, the
// sorry server is the only destination. Each service's Dests are in
// configuration order. The timeouts are lvs_timeouts; a zero leaves the
// kernel's value. Every value returned is a fresh copy.
func (c *Config) Services() ([]ipvs.ServiceConfig, ipvs.Timeouts, error) {
	var out []ipvs.ServiceConfig
	var errs Errors
	seen := map[ipvs.ServiceKey]Pos{}
	total := 0
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		fail := func(format string, args ...any) {
			errs = append(errs, &Error{File: vs.Pos.File, Line: vs.Pos.Line, Msg: fmt.Sprintf(format, args...)})
		}
		keys, err := c.ServiceKeys(vs)
		if err != nil {
			fail("%s", err)
			continue
		}
		if total += len(keys); total > maxServices {
			fail("the virtual servers expand to more than %d services", maxServices)
			break
		}
		if total += len(keys) * (len(vs.RealServers) + 1); total > maxServices*16 {
			fail("the virtual servers expand to more than %d real-server entries", maxServices*16)
			break
		}
		for _, k := range keys {
			if first, dup := seen[k]; dup {
				fail("virtual server %s is already defined at %s", k, first)
				continue
			}
			seen[k] = vs.Pos
			svc := ipvs.Service{
				ServiceKey:    k,
				Scheduler:     vs.Sched,
				Flags:         vs.SchedFlags,
				PE:            vs.PersistenceEngine,
				ProxyProtocol: vs.ProxyProtocol,
				Netmask:       vs.PersistenceGranularity,
			}
			if vs.PersistenceTimeout > 0 {
				svc.Flags |= ipvs.FlagPersistent
				svc.Timeout = vs.PersistenceTimeout
			}
			if svc.Netmask == 0 {
				svc.Netmask = 32
				if k.IPv6() {
					svc.Netmask = 128
				}
			}
			if g, ok := c.LocalAddrGroup(vs.LocalAddrGroup); ok {
				svc.LocalAddrs = slices.Clone(g.Addrs)
			}
			if err := ipvs.ValidateService(&svc); err != nil {
				fail("virtual server %s: %v", k, err)
				continue
			}
			sc := ipvs.ServiceConfig{Service: svc}
			for _, d := range initialDests(vs, k) {
				if err := ipvs.ValidateDest(&svc, &d); err != nil {
					fail("virtual server %s, real server %s: %v", k, d.AddrPort(), err)
					continue
				}
				sc.Dests = append(sc.Dests, d)
			}
			out = append(out, sc)
		}
	}
	switch len(errs) {
	case 0:
		return out, c.Global.LVSTimeouts, nil
	case 1:
		return nil, ipvs.Timeouts{}, errs[0]
	}
	return nil, ipvs.Timeouts{}, errs
}

// maxServices bounds the IPVS services a configuration may ask for.
const maxServices = 1 << 16

// ServiceKeys lists the IPVS services a virtual server stands for.
func (c *Config) ServiceKeys(vs *VirtualServer) ([]ipvs.ServiceKey, error) {
	family := func(v6 bool) netip.Addr {
		if v6 {
			return netip.IPv6Unspecified()
		}
		return netip.IPv4Unspecified()
	}
	switch {
	case vs.FWMark != 0:
		return []ipvs.ServiceKey{{FWMark: vs.FWMark, Addr: family(vs.IPv6)}}, nil
	case vs.Group == "":
		return []ipvs.ServiceKey{{Proto: vs.Protocol, Addr: vs.Addr, Port: vs.Port}}, nil
	}
	g, ok := c.VSGroup(vs.Group)
	if !ok {
		return nil, fmt.Errorf("no virtual_server_group named %q", vs.Group)
	}
	var keys []ipvs.ServiceKey
	for _, m := range g.Members {
		if m.FWMark != 0 {
			keys = append(keys, ipvs.ServiceKey{FWMark: m.FWMark, Addr: family(m.IPv6 || vs.IPv6)})
			continue
		}
		for a := m.Addr; a.IsValid(); a = a.Next() {
			keys = append(keys, ipvs.ServiceKey{Proto: vs.Protocol, Addr: a, Port: m.Port})
			if a == m.Last || len(keys) > maxServices {
				break
			}
		}
	}
	return keys, nil
}

// initialDests are the real servers of vs in service key as keepalived
// first installs them: real servers start up (at their weight) unless
// alpha is set, in which case they start down: left out, or at weight 0
// under inhibit_on_failure. When the servers that start up weigh less
// than the quorum and a sorry server is set, it is the only one.
func initialDests(vs *VirtualServer, key ipvs.ServiceKey) []ipvs.Dest {
	var dests []ipvs.Dest
	weight := 0
	for i := range vs.RealServers {
		rs := &vs.RealServers[i]
		d := rs.Dest(key)
		if rs.Alpha {
			if !rs.InhibitOnFailure {
				continue
			}
			d.Weight = 0
		}
		weight += int(d.Weight)
		dests = append(dests, d)
	}
	if vs.SorryServer != nil && weight < vs.Quorum {
		return []ipvs.Dest{vs.SorryServer.Dest(key)}
	}
	return dests
}

// Dest is the real server as IPVS holds it in the service key, at its
// configured weight. The kernel gives direct-routed and tunnelled servers
// the service's port (none for fwmark services), and so do NAT servers
// written without one.
func (rs *RealServer) Dest(key ipvs.ServiceKey) ipvs.Dest {
	d := ipvs.Dest{
		Addr:       rs.Addr,
		Port:       rs.Port,
		Method:     rs.Forwarding.Method.IPVS(),
		Weight:     rs.Weight,
		UThreshold: rs.UThreshold,
		LThreshold: rs.LThreshold,
		TunType:    rs.Forwarding.TunType,
		TunPort:    rs.Forwarding.TunPort,
		TunFlags:   rs.Forwarding.TunFlags,
	}
	if d.Port == 0 || (d.Method != ipvs.Masq && d.Method != ipvs.FullNAT) {
		d.Port = key.Port
	}
	return d
}
