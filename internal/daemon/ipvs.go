package daemon

import (
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/engine"
	kernel "github.com/gvs-lb/gvs/internal/engine/ipvs"
)

// newIPVS starts the kernel engine. keepalived.conf's lvs_flush and
// lvs_flush_onstop (in first, the configuration as loaded; nil without
// one) decide whether it may clear services gvsd did not add; they are
// needed before the configuration is applied.
func newIPVS(first *loaded, log *slog.Logger) (engine.Engine, error) {
	var ko kernel.Options
	if first != nil {
		ko = kernelOptions(first.cfg)
	}
	eng, err := kernel.New(log.With("engine", "ipvs"), ko)
	if err != nil {
		return nil, fmt.Errorf("ipvs engine: %w", err)
	}
	return eng, nil
}

// kernelOptions are the kernel engine's options from keepalived.conf.
func kernelOptions(cfg *config.Config) kernel.Options {
	return kernel.Options{Flush: cfg.Global.LVSFlush, FlushOnStop: cfg.Global.LVSFlushOnStop}
}
