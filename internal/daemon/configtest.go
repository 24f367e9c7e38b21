package daemon

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/gvs-lb/gvs/internal/config"
	kernel "github.com/gvs-lb/gvs/internal/engine/ipvs"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/plan"
)

// DefaultConfigFile is keepalived's default configuration path.
const DefaultConfigFile = "/etc/keepalived/keepalived.conf"

// ConfigTest checks a keepalived.conf as `keepalived -t` does (gvsd -t),
// for the engine gvsd would run (opts.Engine: proxy, xdp, ipvs or auto),
// with the firewall-mark rules files of opts, prints what it found to out
// and returns keepalived's exit code.
func ConfigTest(path string, opts Options, out io.Writer) int {
	if path == "" {
		path = DefaultConfigFile
	}
	_, p, warnings, err := checkConfig(path, opts.Engine)
	if w, ferr := checkFWMarkRules(opts, p); ferr != nil {
		err = errors.Join(err, ferr)
	} else {
		warnings = append(warnings, w...)
	}
	security := 0
	for _, w := range warnings {
		fmt.Fprintf(out, "%s: warning: %s\n", w.Pos, w.Msg)
		if w.Security {
			security++
		}
	}
	if err != nil {
		fmt.Fprintln(out, err)
	}
	if security > 0 {
		// keepalived -t's exit code for script security wins over its
		// other configuration errors.
		fmt.Fprintf(out, "%s: scripts would run without enable_script_security (gvsd runs them)\n", path)
		return config.ExitConfigTestSecurity
	}
	if err != nil {
		return config.TestExitCode(err)
	}
	fmt.Fprintf(out, "%s: configuration OK\n", path)
	return config.ExitOK
}

// checkConfig is the configuration test: gvsd -t reports its result and a
// reload (SIGHUP) applies the plan only when it passes, so a reload
// refuses exactly what -t refuses. It loads the file, compiles it
// (plan.Compile) and checks the plan against engine (proxy, xdp, ipvs or
// auto). err is nil when the test passes (exit 0); else it is what
// config.TestExitCode maps to the exit code, with file:line in each
// message. The warnings are the complaints that do not fail the test.
//
// The lines keepalived's own config test counts as errors although
// keepalived runs with them (Warning.KeepalivedError: a block never
// closed, as in a file cut short while it was written) fail the test too.
// gvsd still starts with them, as keepalived does, but never reloads
// them.
func checkConfig(path, engine string) (*config.Config, *plan.Plan, []config.Warning, error) {
	cfg, all, err := config.Load(path)
	var warnings []config.Warning
	var strict config.Errors
	for _, w := range all {
		// Script security is keepalived -t's exit 6, not an error a
		// reload refuses: keepalived runs such scripts.
		if w.KeepalivedError && !w.Security {
			strict = append(strict, &config.Error{File: w.Pos.File, Line: w.Pos.Line, Msg: w.Msg})
			continue
		}
		warnings = append(warnings, w)
	}
	if err != nil {
		return nil, nil, warnings, err
	}
	if len(strict) > 0 {
		return nil, nil, warnings, strict
	}
	p, w, err := plan.Compile(cfg)
	warnings = append(warnings, w...)
	if err != nil {
		return nil, nil, warnings, err
	}
	w, err = checkEngine(cfg, p, engine)
	warnings = append(warnings, w...)
	if err != nil {
		return nil, nil, warnings, err
	}
	return cfg, p, warnings, nil
}

// checkEngine refuses the virtual and real servers the engine cannot
// serve, each at its line, as the engine would refuse them at start.
// With auto, gvsd runs the xdp engine and falls back to the proxy engine
// when XDP cannot attach: what only the xdp engine serves is a warning.
func checkEngine(cfg *config.Config, p *plan.Plan, engine string) ([]config.Warning, error) {
	type check struct {
		service func(*ipvs.Service) error
		dest    func(*ipvs.Service, *ipvs.Dest) error
	}
	proxyCheck := check{func(*ipvs.Service) error { return nil }, proxy.CheckDest}
	xdpCheck := check{xdp.CheckService, xdp.CheckDest}
	ipvsCheck := check{func(*ipvs.Service) error { return nil }, kernel.CheckDest}
	refused := func(c check) config.Errors {
		var errs config.Errors
		fail := func(pos config.Pos, format string, args ...any) {
			errs = append(errs, &config.Error{File: pos.File, Line: pos.Line, Msg: fmt.Sprintf(format, args...)})
		}
		for i := range p.Services {
			s := &p.Services[i]
			vs := s.Block
			if err := c.service(&s.Service); err != nil {
				fail(vs.Pos, "virtual server %s: %v", s.Key(), err)
				continue
			}
			rss := s.Check.RealServers
			pos := func(j int) config.Pos { return vs.RealServers[j].Pos }
			if sorry := s.Check.SorryServer; sorry != nil {
				rss = append(slices.Clip(rss), *sorry)
				pos = func(j int) config.Pos {
					if j == len(vs.RealServers) {
						return vs.SorryServer.Pos
					}
					return vs.RealServers[j].Pos
				}
			}
			for j := range rss {
				d := rss[j].Dest
				if err := c.dest(&s.Service, &d); err != nil {
					fail(pos(j), "virtual server %s, real server %s: %v", s.Key(), d.AddrPort(), err)
				}
			}
		}
		return errs
	}
	switch engine {
	case "proxy", "":
		if errs := refused(proxyCheck); len(errs) > 0 {
			return nil, errs
		}
		return proxyUnserved(p), nil
	case "xdp":
		if errs := refused(xdpCheck); len(errs) > 0 {
			return nil, errs
		}
		return xdpIgnores(cfg), nil
	case "ipvs":
		if errs := refused(ipvsCheck); len(errs) > 0 {
			return nil, errs
		}
	case "auto":
		if errs := refused(xdpCheck); len(errs) > 0 {
			return nil, errs
		}
		warnings := xdpIgnores(cfg)
		for _, e := range refused(proxyCheck) {
			warnings = append(warnings, config.Warning{Pos: config.Pos{File: e.File, Line: e.Line},
				Msg: e.Msg + " (--engine auto: gvsd refuses this when XDP cannot attach and the proxy engine runs)"})
		}
		return warnings, nil
	default:
		return nil, fmt.Errorf("unknown engine %q (want proxy, xdp, ipvs or auto)", engine)
	}
	return nil, nil
}

// proxyUnserved warns of the virtual servers the proxy engine keeps and
// lists but does not serve (firewall-mark, SCTP), naming the engine that
// does.
func proxyUnserved(p *plan.Plan) []config.Warning {
	var out []config.Warning
	for i := range p.Services {
		s := &p.Services[i]
		if why := proxy.Unserved(s.Service.ServiceKey); why != "" {
			out = append(out, config.Warning{Pos: s.Block.Pos, Msg: fmt.Sprintf("virtual server %s: %s", s.Key(), why)})
		}
	}
	return out
}

// xdpIgnores warns of what only the proxy engine does.
func xdpIgnores(cfg *config.Config) []config.Warning {
	var out []config.Warning
	for _, vs := range cfg.VirtualServers {
		if vs.ProxyProtocol != 0 {
			out = append(out, config.Warning{Pos: vs.Pos, Msg: "proxy_protocol is sent by the proxy engine only: " +
				"the xdp engine forwards the client's packets and ignores it (FullNAT passes the client's address in the TOA option)"})
		}
	}
	return out
}
