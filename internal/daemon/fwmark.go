package daemon

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/fwmark"
	"github.com/gvs-lb/gvs/internal/plan"
)

// fwmarkClassifier is an engine that classifies new connections for its
// firewall-mark services by rules given in iptables' terms (the xdp
// engine: XDP runs before iptables marks a packet).
type fwmarkClassifier interface {
	SetFWMarkRules(*fwmark.Rules) error
}

// fwmarkRules keeps the engine's firewall-mark rules current with the
// files of --fwmark-rules and --fwmark-rules6.
type fwmarkRules struct {
	path4, path6 string
	eng          fwmarkClassifier
	log          *slog.Logger
}

// startFWMarkRules loads the rules files into eng; nil without files.
func startFWMarkRules(opts Options, eng engine.Engine, log *slog.Logger) (*fwmarkRules, error) {
	if opts.FWMarkRules == "" && opts.FWMarkRules6 == "" {
		return nil, nil
	}
	c, ok := eng.(fwmarkClassifier)
	if !ok {
		why := fmt.Sprintf("--fwmark-rules and --fwmark-rules6 are for the xdp engine, which cannot read the marks iptables sets; the %s engine", eng.Name())
		if eng.Name() == "ipvs" {
			return nil, errors.New(why + " reads the kernel's own marks: load the rules with iptables-restore instead")
		}
		if opts.Engine == "auto" {
			log.Warn(why + " serves no firewall-mark service; rules ignored")
			return nil, nil
		}
		return nil, errors.New(why + " serves no firewall-mark service")
	}
	f := &fwmarkRules{path4: opts.FWMarkRules, path6: opts.FWMarkRules6, eng: c, log: log}
	rs, err := fwmark.Load(f.path4, f.path6)
	if err != nil {
		return nil, err
	}
	if err := c.SetFWMarkRules(rs); err != nil {
		return nil, err
	}
	log.Info("firewall-mark rules loaded", "files", rs.Files(), "entries", len(rs.Entries()))
	return f, nil
}

// reload re-reads the rules files (SIGHUP); files with an error leave the
// running rules in place.
func (f *fwmarkRules) reload() {
	if f == nil {
		return
	}
	rs, err := fwmark.Load(f.path4, f.path6)
	if err == nil {
		err = f.eng.SetFWMarkRules(rs)
	}
	if err != nil {
		f.log.Error("firewall-mark rules reload refused, still running the previous rules: " + err.Error())
		return
	}
	f.log.Info("firewall-mark rules reloaded", "files", rs.Files(), "entries", len(rs.Entries()))
}

// checkFWMarkRules is gvsd -t's check of the rules files for engine: their
// errors, and a warning for every firewall-mark service whose mark no
// rule sets (the xdp engine gives it no connections).
func checkFWMarkRules(opts Options, p *plan.Plan) ([]config.Warning, error) {
	xdp := opts.Engine == "xdp" || opts.Engine == "auto"
	if !xdp {
		if opts.FWMarkRules != "" || opts.FWMarkRules6 != "" {
			return nil, fmt.Errorf("--fwmark-rules and --fwmark-rules6 are for the xdp engine, not --engine %s", opts.Engine)
		}
		return nil, nil
	}
	rs, err := fwmark.Load(opts.FWMarkRules, opts.FWMarkRules6)
	if err != nil {
		return nil, err
	}
	var out []config.Warning
	if p == nil {
		return nil, nil
	}
	for i := range p.Services {
		s := &p.Services[i]
		if k := s.Service.ServiceKey; k.IsFWMark() && !rs.Sets(k.IPv6(), k.FWMark) {
			flag := "--fwmark-rules"
			if k.IPv6() {
				flag = "--fwmark-rules6"
			}
			out = append(out, config.Warning{Pos: s.Block.Pos, Msg: fmt.Sprintf(
				"virtual server %s: no rule of %s sets mark %d, so the xdp engine gives it no connections: add -j MARK --set-mark %d rules for its addresses and ports", k, flag, k.FWMark, k.FWMark)})
		}
	}
	return out, nil
}
