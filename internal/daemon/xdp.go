package daemon

import (
	"errors"
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
)

// newXDP starts the XDP engine on the --interface interfaces.
func newXDP(opts Options, log *slog.Logger) (engine.Engine, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("the xdp engine needs the interface(s) client packets arrive on: pass --interface NAME (repeat for several)")
	}
	mode := opts.XDPMode
	if mode == "" && anyVeth(opts.Interfaces) {
		// Native XDP on veth attaches, but XDP_TX and redirects are dropped
		// unless the peer runs an XDP program too: generic mode works.
		log.Warn("veth interface: attaching XDP in generic mode (pass --xdp-mode native if the peer runs an XDP program)")
		mode = "generic"
	}
	if opts.DontReleaseIPVS && opts.BPFPin == "" {
		log.Warn("--dont-release-ipvs (-I) needs --bpf-pin: without pins the program goes with gvsd")
	}
	return xdp.New(log.With("engine", "xdp"), xdp.Options{
		Interfaces: opts.Interfaces, Mode: mode,
		PinPath: opts.BPFPin, KeepPinned: opts.DontReleaseIPVS,
		MaxServices: opts.XDPMaxServices, MaxDests: opts.XDPMaxDests, MaxConns: opts.XDPMaxConns,
	})
}

func anyVeth(names []string) bool {
	for _, name := range names {
		if l, err := netlink.LinkByName(name); err == nil && l.Type() == "veth" {
			return true
		}
	}
	return false
}
