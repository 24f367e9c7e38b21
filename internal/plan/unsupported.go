package plan

import "github.com/gvs-lb/gvs/internal/config"

// Keywords gvsd reads (they are keepalived's and a configuration using
// them is valid) but does not run, each with why. Compile warns of each
// one set; internal/config's doc lists them.
var (
	globalUnsupported = map[string]string{
		"vrrp_garp_lower_prio_delay":  "gvsd sends no gratuitous ARPs on a lower-priority advert",
		"vrrp_garp_lower_prio_repeat": "gvsd sends no gratuitous ARPs on a lower-priority advert",
		"vrrp_skip_check_adv_addr":    "gvsd does not compare an advert's addresses with its own",
		"vrrp_strict":                 "gvsd installs no firewall rules and does not enforce RFC 3768's strict checks",
	}
	instanceUnsupported = []struct {
		keyword, why string
		// set reports whether the instance sets it other than global_defs
		// does (which is warned of at its own line).
		set func(in *config.VRRPInstance, g *config.Global) bool
	}{
		{"accept / no_accept", "gvsd installs no firewall rules: the VIPs always accept packets",
			func(in *config.VRRPInstance, _ *config.Global) bool { return in.Accept != nil }},
		{"unicast_ttl", "unicast adverts are sent with TTL 255 (RFC 5798)",
			func(in *config.VRRPInstance, _ *config.Global) bool { return in.UnicastTTL != 0 }},
		{"unicast_peer min_ttl / max_ttl", "adverts must arrive with TTL 255 (RFC 5798)",
			func(in *config.VRRPInstance, _ *config.Global) bool {
				for _, p := range in.UnicastPeers {
					if p.MinTTL != 0 || p.MaxTTL != 0 {
						return true
					}
				}
				return false
			}},
		{"garp_lower_prio_delay / garp_lower_prio_repeat", "gvsd sends no gratuitous ARPs on a lower-priority advert",
			func(in *config.VRRPInstance, g *config.Global) bool {
				return in.GarpLowerPrioDelay != g.VRRPGarpLowerPrioDelay || in.GarpLowerPrioRepeat != g.VRRPGarpLowerPrioRepeat
			}},
		{"skip_check_adv_addr", "gvsd does not compare an advert's addresses with its own",
			func(in *config.VRRPInstance, g *config.Global) bool {
				return in.SkipCheckAdvAddr && !g.VRRPSkipCheckAdvAddr
			}},
		{"strict_mode", "gvsd installs no firewall rules and does not enforce RFC 3768's strict checks",
			func(in *config.VRRPInstance, g *config.Global) bool { return in.StrictMode && !g.VRRPStrict }},
		{"virtual_ipaddress brd, peer, scope, use_vmac, no_track and address flags",
			"gvsd adds each address with its prefix, dev and label only",
			func(in *config.VRRPInstance, _ *config.Global) bool {
				for _, v := range append(in.VirtualIPs[:len(in.VirtualIPs):len(in.VirtualIPs)], in.ExcludedVIPs...) {
					if v.Broadcast.IsValid() || v.Peer.IsValid() || v.Scope != "" || v.UseVMAC || v.NoTrack || len(v.Flags) > 0 {
						return true
					}
				}
				return false
			}},
	}
)

// unsupported warns of every keyword set that gvsd does not run.
func (c *compiler) unsupported() {
	g := &c.cfg.Global
	for kw, why := range globalUnsupported {
		if pos, ok := g.Lines[kw]; ok {
			c.warnf(pos, "%s is not supported by gvsd and is ignored: %s", kw, why)
		}
	}
	for i := range c.cfg.Instances {
		in := &c.cfg.Instances[i]
		for _, u := range instanceUnsupported {
			if u.set(in, g) {
				c.warnf(in.Pos, "vrrp_instance %s: %s is not supported by gvsd and is ignored: %s", in.Name, u.keyword, u.why)
			}
		}
	}
	for i := range c.cfg.VirtualServers {
		vs := &c.cfg.VirtualServers[i]
		if vs.Omega {
			c.warnf(vs.Pos, "virtual server %s: omega is not supported by gvsd and is ignored: notify_down and quorum_down do not run at shutdown", vs.Key())
		}
		for j := range vs.RealServers {
			for k := range vs.RealServers[j].Checkers {
				ch := &vs.RealServers[j].Checkers[k]
				if ch.HTTP == nil {
					continue
				}
				if ch.HTTP.FastRecovery {
					c.warnf(ch.Pos, "%s: fast_recovery is not supported by gvsd and is ignored: a failed check is retried after delay_before_retry", ch.Type)
				}
				if ch.HTTP.TLSCompliant {
					c.warnf(ch.Pos, "%s: tls_compliant changes nothing in gvsd: its TLS connections always end with close_notify", ch.Type)
				}
			}
		}
	}
}
