package plan

import (
	"net/netip"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Service is one IPVS service of a virtual_server with what its checkers
// need.
type Service struct {
	// Block is the virtual_server it comes from, for messages.
	Block *config.VirtualServer `json:"-"`
	// Service is the IPVS service: scheduler, flags, persistence.
	Service ipvs.Service
	// Check is the pool the checkers keep: each real server as IPVS
	// holds it when up, with its finished checker specs, the sorry
	// server, the quorum and the scripts.
	Check check.VirtualServer
	// alpha marks the real servers (as Check.RealServers) that start
	// down.
	alpha []bool
}

// Key is the service's key.
func (s *Service) Key() ipvs.ServiceKey { return s.Service.ServiceKey }

// Dests are the real servers as the service is first installed, in
// configuration order: those that start up at their weight, those that
// start down left out (at weight 0 under inhibit_on_failure), or the
// sorry server alone while the quorum is not met. alive, when it names a
// real server (by its Dest's address and port), says whether it starts
// up instead of its alpha setting: a service restarted by a reload keeps
// the health its real servers had.
func (s *Service) Dests(alive map[netip.AddrPort]bool) []ipvs.Dest {
	var out []ipvs.Dest
	weight := 0
	for i, rs := range s.Check.RealServers {
		down := s.alpha[i]
		if up, ok := alive[rs.Dest.AddrPort()]; ok {
			down = !up
		}
		d := rs.Dest
		if down {
			if !rs.Inhibit {
				continue
			}
			d.Weight = 0
		}
		weight += int(d.Weight)
		out = append(out, d)
	}
	if s.Check.SorryServer != nil && weight < s.Check.Quorum {
		return []ipvs.Dest{s.Check.SorryServer.Dest}
	}
	return out
}

// services compiles the virtual servers.
func (c *compiler) services() []Service {
	scs, _, err := c.cfg.Services()
	if err != nil {
		c.add(err)
		return nil
	}
	var out []Service
	for i := range c.cfg.VirtualServers {
		vs := &c.cfg.VirtualServers[i]
		keys, err := c.cfg.ServiceKeys(vs)
		if err != nil {
			c.errorf(vs.Pos, "%v", err)
			continue
		}
		rss, alpha := c.realServers(vs)
		for _, key := range keys {
			s := Service{Block: vs, alpha: alpha, Check: check.VirtualServer{
				Service: key, Quorum: vs.Quorum, Hysteresis: vs.Hysteresis,
				QuorumUp: scriptCmd(vs.QuorumUp), QuorumDown: scriptCmd(vs.QuorumDown),
				HASuspend: vs.HASuspend,
			}}
			for j, rs := range rss {
				rs.Dest = vs.RealServers[j].Dest(key)
				s.Check.RealServers = append(s.Check.RealServers, rs)
			}
			if rs := vs.SorryServer; rs != nil {
				s.Check.SorryServer = &check.RealServer{Dest: rs.Dest(key), Inhibit: rs.InhibitOnFailure}
			}
			if len(scs) == 0 || scs[0].ServiceKey != key {
				c.errorf(vs.Pos, "virtual server %s: planned out of order (a bug in gvsd)", key)
				return nil
			}
			s.Service = scs[0].Service
			scs = scs[1:]
			out = append(out, s)
		}
	}
	return out
}

// realServers compiles the real servers of vs (without their Dest, which
// depends on the service) and which of them start down.
func (c *compiler) realServers(vs *config.VirtualServer) ([]check.RealServer, []bool) {
	var out []check.RealServer
	var alpha []bool
	for i := range vs.RealServers {
		rs := &vs.RealServers[i]
		crs := check.RealServer{Inhibit: rs.InhibitOnFailure,
			NotifyUp: scriptCmd(rs.NotifyUp), NotifyDown: scriptCmd(rs.NotifyDown)}
		for j := range rs.Checkers {
			crs.Checks = append(crs.Checks, c.checker(&rs.Checkers[j], rs)...)
		}
		out = append(out, crs)
		alpha = append(alpha, rs.Alpha)
	}
	return out, alpha
}

// add records a configuration error: an *Error or Errors.
func (c *compiler) add(err error) {
	switch e := err.(type) {
	case *config.Error:
		c.errs = append(c.errs, e)
	case config.Errors:
		c.errs = append(c.errs, e...)
	default:
		c.errs = append(c.errs, &config.Error{Msg: err.Error()})
	}
}
