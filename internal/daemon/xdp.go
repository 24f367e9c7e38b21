package daemon

import (
	"errors"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/engine"
)

func newXDP(opts Options, log *slog.Logger) (engine.Engine, error) {
	return nil, errors.New("the xdp engine is not built into this gvsd yet; use --engine proxy")
}
