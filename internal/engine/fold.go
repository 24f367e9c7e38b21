package engine

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Update is what a batch does to one service.
type Update struct {
	Key ipvs.ServiceKey
	// Config is the service with its real servers after the batch, in the
	// kernel's order; nil when the batch deletes it.
	Config *ipvs.ServiceConfig
	// Existed says the engine served the service before the batch.
	Existed bool
	// Recreated says the batch deleted the service and added it again:
	// it is a new service (fresh counters, new real servers).
	Recreated bool
}

// Added reports whether the engine is to start serving the service: a new
// one, or one deleted and added again.
func (u *Update) Added() bool { return u.Config != nil && (!u.Existed || u.Recreated) }

// Removed reports whether the engine is to stop serving the service (or
// the old one of a recreated service).
func (u *Update) Removed() bool { return u.Existed && (u.Config == nil || u.Recreated) }

// Plan is a batch folded per service.
type Plan struct {
	// Updates are the touched services, in the order first touched.
	Updates []*Update
	// Added are the services the engine is to start serving, in the order
	// the batch added them (last add-service): they go after the others.
	Added []ipvs.ServiceKey
	// Timeouts are the new timeouts, nil when the batch sets none.
	Timeouts *ipvs.Timeouts
}

// Fold applies batch to the current configuration of the services it
// touches, which cur returns (false: the engine does not serve it), and
// returns each one's result. It refuses a change that does not fit, with
// the table's error and the change's position; then the engine must change
// nothing.
func Fold(batch []ipvs.Command, cur func(ipvs.ServiceKey) (ipvs.ServiceConfig, bool)) (*Plan, error) {
	p := &Plan{}
	byKey := map[ipvs.ServiceKey]*Update{}
	addedAt := map[ipvs.ServiceKey]int{}
	get := func(k ipvs.ServiceKey) *Update {
		if u := byKey[k]; u != nil {
			return u
		}
		u := &Update{Key: k}
		if sc, ok := cur(k); ok {
			sc.Dests = slices.Clone(sc.Dests)
			u.Config, u.Existed = &sc, true
		}
		byKey[k] = u
		p.Updates = append(p.Updates, u)
		return u
	}
	for i, c := range batch {
		refuse := func(err error) (*Plan, error) {
			return nil, fmt.Errorf("change %d (%s): %w", i+1, describe(c), err)
		}
		if c.Op == ipvs.OpSetTimeout {
			if c.Timeouts == nil {
				return refuse(ipvs.ErrInvalidTimeout)
			}
			t := *c.Timeouts
			p.Timeouts = &t
			continue
		}
		if c.Service == nil {
			return refuse(fmt.Errorf("no service given"))
		}
		u := get(c.Service.ServiceKey)
		switch c.Op {
		case ipvs.OpAddService:
			if u.Config != nil {
				return refuse(ipvs.ErrServiceExists)
			}
			svc := *c.Service
			svc.LocalAddrs = slices.Clone(svc.LocalAddrs)
			u.Config = &ipvs.ServiceConfig{Service: svc}
			u.Recreated = u.Existed
			addedAt[u.Key] = i
			continue
		case ipvs.OpEditService:
			if u.Config == nil {
				return refuse(ipvs.ErrNoService)
			}
			svc := *c.Service
			svc.LocalAddrs = slices.Clone(svc.LocalAddrs)
			u.Config.Service = svc
			continue
		case ipvs.OpDelService:
			if u.Config == nil {
				return refuse(ipvs.ErrNoService)
			}
			u.Config = nil
			continue
		case ipvs.OpAddDest, ipvs.OpEditDest, ipvs.OpDelDest:
		default:
			return refuse(fmt.Errorf("not a change an engine makes"))
		}
		if u.Config == nil {
			return refuse(ipvs.ErrServiceNotDefined)
		}
		if c.Dest == nil {
			return refuse(fmt.Errorf("no real server given"))
		}
		sc := u.Config
		j := destIndex(sc.Dests, c.Dest.AddrPort())
		switch c.Op {
		case ipvs.OpAddDest:
			if j >= 0 {
				return refuse(ipvs.ErrDestExists)
			}
			sc.Dests = slices.Insert(sc.Dests, 0, *c.Dest)
		case ipvs.OpEditDest:
			if j < 0 {
				return refuse(ipvs.ErrNoDest)
			}
			sc.Dests[j] = *c.Dest
		default:
			if j < 0 {
				return refuse(ipvs.ErrNoDest)
			}
			sc.Dests = slices.Delete(sc.Dests, j, j+1)
		}
	}
	for _, u := range p.Updates {
		if u.Added() {
			p.Added = append(p.Added, u.Key)
		}
	}
	slices.SortStableFunc(p.Added, func(a, b ipvs.ServiceKey) int { return addedAt[a] - addedAt[b] })
	return p, nil
}

func destIndex(ds []ipvs.Dest, ap netip.AddrPort) int {
	return slices.IndexFunc(ds, func(d ipvs.Dest) bool { return d.AddrPort() == ap })
}

// describe names a change in an error: "add-server TCP 198.18.0.1:80 -> 198.18.1.1:80".
func describe(c ipvs.Command) string {
	s := string(c.Op)
	if c.Service != nil {
		s += " " + c.Service.ServiceKey.String()
	}
	if c.Dest != nil {
		s += " -> " + c.Dest.AddrPort().String()
	}
	return s
}
