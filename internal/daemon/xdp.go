package daemon

import (
	"errors"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
)

// newXDP starts the XDP engine on the --interface interfaces.
func newXDP(opts Options, log *slog.Logger) (engine.Engine, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("the xdp engine needs the interface(s) client packets arrive on: pass --interface NAME (repeat for several)")
	}
	return xdp.New(log.With("engine", "xdp"), xdp.Options{Interfaces: opts.Interfaces, Mode: opts.XDPMode})
}
