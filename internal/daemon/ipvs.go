package daemon

import (
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/engine"
	kernel "github.com/gvs-lb/gvs/internal/engine/ipvs"
)

// newIPVS starts the kernel engine. keepalived.conf's lvs_flush and
// lvs_flush_onstop decide whether it may clear services gvsd did not add;
// they are read here because the engine starts before the configuration
// is applied.
func newIPVS(opts Options, log *slog.Logger) (engine.Engine, error) {
	var ko kernel.Options
	if opts.ConfigFile != "" {
		cfg, _, err := config.Load(opts.ConfigFile)
		if err != nil {
			return nil, err
		}
		ko = kernelOptions(cfg)
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
