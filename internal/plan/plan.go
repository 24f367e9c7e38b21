// Package plan compiles a parsed keepalived.conf (internal/config) into
// the runtime plan gvsd runs: the IPVS services with their real servers,
// the finished checker specs of internal/check, the VRRP instances and
// sync groups of internal/vrrp with their trackers, and the sync daemon.
//
// Compile is a pure function and the one place where keepalived's
// defaults are settled and the configuration is validated for running:
// every message carries the file:line of the block it is about, and the
// runtime packages take the specs as they are. gvsd -t is Compile (with
// the engine's own checks), and a reload applies only a plan it made.
package plan

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/script"
)

// Plan is everything a keepalived.conf asks gvsd to run.
type Plan struct {
	// Services are the IPVS services of the virtual servers, in
	// configuration order (a virtual_server_group makes several).
	Services []Service
	// Timeouts are lvs_timeouts; a zero keeps the running value.
	Timeouts ipvs.Timeouts
	// VRRP are the units that run and restart as one: a lone
	// vrrp_instance, or a vrrp_sync_group with its instances; sorted by
	// name.
	VRRP []VRRPUnit
	// Sync is lvs_sync_daemon, nil when not set.
	Sync *SyncDaemon
	// TrackFiles are the track_file blocks with init_file: gvsd creates
	// (or, with overwrite, rewrites) each file at start and reload.
	TrackFiles []TrackFileInit
	// NotifyFIFOs are notify_fifo, vrrp_notify_fifo and lvs_notify_fifo.
	NotifyFIFOs []NotifyFIFO
}

// TrackFileInit is a track_file's init_file.
type TrackFileInit struct {
	Pos       config.Pos `json:"-"`
	Name      string
	Path      string
	Value     int64
	Overwrite bool
}

func (c *compiler) trackFiles() []TrackFileInit {
	var out []TrackFileInit
	for _, f := range c.cfg.TrackFiles {
		if f.InitFile {
			out = append(out, TrackFileInit{Pos: f.Pos, Name: f.Name, Path: f.File, Value: f.InitValue, Overwrite: f.InitOverwrite})
		}
	}
	return out
}

// Compile turns cfg into the plan gvsd runs. The error is a *config.Error
// or config.Errors (file:line each); the warnings name what gvsd reads
// but does not do, each at its line.
func Compile(cfg *config.Config) (*Plan, []config.Warning, error) {
	c := &compiler{cfg: cfg}
	p := &Plan{Timeouts: cfg.Global.LVSTimeouts}
	p.Services = c.services()
	p.VRRP = c.vrrp()
	p.Sync = c.syncDaemon(p.VRRP)
	p.TrackFiles = c.trackFiles()
	p.NotifyFIFOs = c.notifyFIFOs()
	c.unsupported()
	slices.SortStableFunc(c.warns, func(a, b config.Warning) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
	switch len(c.errs) {
	case 0:
		return p, c.warns, nil
	case 1:
		return nil, c.warns, c.errs[0]
	}
	return nil, c.warns, c.errs
}

// compiler collects the messages of one Compile.
type compiler struct {
	cfg   *config.Config
	errs  config.Errors
	warns []config.Warning
}

func (c *compiler) errorf(pos config.Pos, format string, args ...any) {
	c.errs = append(c.errs, &config.Error{File: pos.File, Line: pos.Line, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) warnf(pos config.Pos, format string, args ...any) {
	c.warns = append(c.warns, config.Warning{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// scriptCmd is a script as the runtime runs it: the command line and the
// user config.Load resolved for it; a disabled script is no script.
func scriptCmd(s *config.Script) script.Cmd {
	if s == nil || s.Disabled != "" {
		return script.Cmd{}
	}
	return script.Cmd{Line: s.Cmd, RunAs: &script.Credential{UID: s.UID, GID: s.GID}}
}
