package ipvs

import (
	"net/netip"
	"slices"
)

// Diff returns the commands that turn the table from into to: deleted
// services first, then edited ones (their removed real servers, changed
// ones, then new ones), then new services with their real servers, then
// the timeouts. Real servers are added last first, so a new service lists
// them in to's order; services and real servers that stay keep their
// place, as they would in the kernel. to need not be normalized. A service
// that to holds twice, or a real server a service of to holds twice, is
// added twice, which the table refuses.
func Diff(from, to *Snapshot) []Command {
	var out []Command
	old := make(map[ServiceKey]*ServiceConfig, len(from.Services))
	for i := range from.Services {
		old[from.Services[i].ServiceKey] = &from.Services[i]
	}
	next := make([]ServiceConfig, 0, len(to.Services))
	keep := make(map[ServiceKey]bool, len(to.Services))
	var twice []Command
	for _, sc := range to.Services {
		normalizeService(&sc.Service)
		if keep[sc.ServiceKey] {
			twice = append(twice, Command{Op: OpAddService, Service: svcCopy(&sc.Service)})
			continue
		}
		ds := make([]Dest, 0, len(sc.Dests))
		seen := make(map[netip.AddrPort]bool, len(sc.Dests))
		for _, d := range sc.Dests {
			normalizeDest(&sc.Service, &d)
			if seen[d.AddrPort()] {
				twice = append(twice, Command{Op: OpAddDest, Service: &Service{ServiceKey: sc.ServiceKey}, Dest: &d})
				continue
			}
			seen[d.AddrPort()] = true
			ds = append(ds, d)
		}
		sc.Dests = ds
		next = append(next, sc)
		keep[sc.ServiceKey] = true
	}
	for _, sc := range from.Services {
		if !keep[sc.ServiceKey] {
			out = append(out, Command{Op: OpDelService, Service: &Service{ServiceKey: sc.ServiceKey}})
		}
	}
	var added []int
	for i := range next {
		sc := &next[i]
		was := old[sc.ServiceKey]
		if was == nil {
			added = append(added, i)
			continue
		}
		key := &Service{ServiceKey: sc.ServiceKey}
		if !was.Service.Equal(&sc.Service) {
			out = append(out, Command{Op: OpEditService, Service: svcCopy(&sc.Service)})
		}
		want := make(map[netip.AddrPort]*Dest, len(sc.Dests))
		for j := range sc.Dests {
			want[sc.Dests[j].AddrPort()] = &sc.Dests[j]
		}
		had := make(map[netip.AddrPort]bool, len(was.Dests))
		for j := range was.Dests {
			d := was.Dests[j]
			had[d.AddrPort()] = true
			if want[d.AddrPort()] == nil {
				out = append(out, Command{Op: OpDelDest, Service: key, Dest: &d})
			}
		}
		for j := range was.Dests {
			if w := want[was.Dests[j].AddrPort()]; w != nil && *w != was.Dests[j] {
				d := *w
				out = append(out, Command{Op: OpEditDest, Service: key, Dest: &d})
			}
		}
		for j := len(sc.Dests) - 1; j >= 0; j-- {
			if !had[sc.Dests[j].AddrPort()] {
				d := sc.Dests[j]
				out = append(out, Command{Op: OpAddDest, Service: key, Dest: &d})
			}
		}
	}
	for _, i := range added {
		sc := &next[i]
		out = append(out, Command{Op: OpAddService, Service: svcCopy(&sc.Service)})
		key := &Service{ServiceKey: sc.ServiceKey}
		for j := len(sc.Dests) - 1; j >= 0; j-- {
			d := sc.Dests[j]
			out = append(out, Command{Op: OpAddDest, Service: key, Dest: &d})
		}
	}
	if from.Timeouts != to.Timeouts {
		t := to.Timeouts
		out = append(out, Command{Op: OpSetTimeout, Timeouts: &t})
	}
	return append(out, twice...)
}

// Equal reports whether two services are configured alike.
func (a *Service) Equal(b *Service) bool {
	return a.ServiceKey == b.ServiceKey && a.Scheduler == b.Scheduler && a.Flags == b.Flags &&
		a.Timeout == b.Timeout && a.Netmask == b.Netmask && a.PE == b.PE &&
		a.ProxyProtocol == b.ProxyProtocol && slices.Equal(a.LocalAddrs, b.LocalAddrs)
}
